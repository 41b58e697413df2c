/**
 * Streaming a text file line by line, plain or gzip-compressed (detected from its first bytes,
 * not its name), with 1-based line numbers and strict UTF-8: a line that is not valid UTF-8 is an
 * {@linkcode InputError} naming the file and line. Memory stays at one read chunk plus one line.
 *
 * @module
 */

import { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { inputError } from "../errors.ts";
import { toIoError } from "./io_error.ts";

/** One line of a file, without its line break (a trailing `\r` is removed too). */
export interface Line {
  /** 1-based line number in the (decompressed) file. */
  number: number;
  /** The line's text. */
  text: string;
}

async function openBytes(path: string, label: string): Promise<ReadableStream<Uint8Array>> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw inputError(label, undefined, "file not found");
    if (error instanceof Deno.errors.PermissionDenied) {
      throw inputError(label, undefined, "permission denied");
    }
    throw toIoError(error, label, "cannot open");
  }
  if ((await file.stat()).isDirectory) {
    file.close();
    throw inputError(label, undefined, "is a directory; a file was expected");
  }
  const bytes = await withHead(file.readable, 2, label);
  const gzipped = bytes.head[0] === 0x1f && bytes.head[1] === 0x8b;
  return gzipped ? gunzip(bytes.stream) : bytes.stream;
}

/**
 * The decompressed bytes of a gzip stream of one or more members: `cat a.gz b.gz`, bgzip and
 * appending writers make several, which `zcat` reads whole (the web's DecompressionStream stops
 * after the first). A read error of the source reaches the reader.
 */
function gunzip(source: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const compressed = Readable.fromWeb(source as never);
  const inflate = createGunzip();
  compressed.on("error", (error) => inflate.destroy(error));
  return Readable.toWeb(compressed.pipe(inflate)) as unknown as ReadableStream<Uint8Array>;
}

/**
 * The first `size` bytes of `source` (fewer when it is shorter), and a stream of all its bytes,
 * those first ones included. They are read, not sought back, so a pipe works as a file does.
 */
async function withHead(
  source: ReadableStream<Uint8Array<ArrayBuffer>>,
  size: number,
  label: string,
): Promise<{ head: Uint8Array; stream: ReadableStream<Uint8Array<ArrayBuffer>> }> {
  const reader = source.getReader();
  let head = new Uint8Array(0);
  let done = false;
  try {
    while (head.length < size && !done) {
      const next = await reader.read();
      if (next.done) done = true;
      else head = concat([head, next.value]);
    }
  } catch (error) {
    throw toIoError(error, label, "cannot read");
  }
  const stream = new ReadableStream<Uint8Array<ArrayBuffer>>({
    start(controller) {
      if (head.length > 0) controller.enqueue(head);
      if (done) controller.close();
    },
    async pull(controller) {
      const next = await reader.read();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return { head, stream };
}

/**
 * Yields the lines of `path`. `label` names the file in error messages (defaults to `path`).
 *
 * @example
 * ```ts
 * for await (const { number, text } of readLines("reviews.json.gz")) {
 *   if (text.trim() === "") continue;
 *   JSON.parse(text); // parse errors should name `number`
 * }
 * ```
 */
export async function* readLines(path: string, label = path): AsyncGenerator<Line> {
  const stream = await openBytes(path, label);
  const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
  // The start of a line that spans chunks, as the chunks themselves: joined once when the line
  // ends, so a line of many megabytes costs one copy, not one per chunk.
  let pending: Uint8Array[] = [];
  let number = 0;
  const decode = (bytes: Uint8Array): string => {
    number++;
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 0x0d) end--;
    try {
      return decoder.decode(bytes.subarray(0, end));
    } catch {
      throw inputError(label, number, "not valid UTF-8 text");
    }
  };
  try {
    for await (const chunk of stream) {
      let start = 0;
      for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, start)) {
        let piece = chunk.subarray(start, i);
        if (pending.length > 0) {
          piece = concat([...pending, piece]);
          pending = [];
        }
        const text = decode(piece);
        yield { number, text };
        start = i + 1;
      }
      if (start < chunk.length) pending.push(chunk.subarray(start).slice());
    }
  } catch (error) {
    const zlibCode = (error as { code?: unknown })?.code;
    if (typeof zlibCode === "string" && zlibCode.startsWith("Z_")) {
      throw inputError(label, undefined, `corrupt gzip data (${(error as Error).message})`);
    }
    throw toIoError(error, label, "cannot read");
  }
  if (pending.length > 0) {
    const text = decode(concat(pending));
    yield { number, text };
  }
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Yields the parsed JSON value of every non-blank line of a JSONL file; a line that is not JSON
 * is an {@linkcode InputError} naming the file and line.
 */
export async function* readJsonLines<T = unknown>(
  path: string,
  label = path,
): AsyncGenerator<{ number: number; value: T }> {
  for await (const { number, text } of readLines(path, label)) {
    if (text.trim() === "") continue;
    let value: T;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw inputError(label, number, `not valid JSON (${(error as Error).message})`);
    }
    yield { number, value };
  }
}
