/**
 * A buffered text file writer for large outputs (JSONL): strings are collected and written in
 * chunks of about a megabyte, so writing a line costs no system call. Not atomic by itself:
 * write into a directory built with `buildDirAtomic`, or a temporary file.
 *
 * @module
 */

import { withIo } from "./io_error.ts";
import { syncFile } from "./fs.ts";

const encoder = new TextEncoder();

/**
 * Writes text to a new file through a buffer.
 *
 * @example
 * ```ts
 * declare const dir: string, record: { id: string };
 * const out = await TextFileWriter.create(`${dir}/train.jsonl`);
 * await out.write(JSON.stringify(record) + "\n");
 * await out.close();
 * ```
 */
export class TextFileWriter {
  readonly #file: Deno.FsFile;
  readonly #path: string;
  readonly #limit: number;
  #parts: string[] = [];
  #size = 0;
  #bytes = 0;
  #closed = false;

  private constructor(file: Deno.FsFile, path: string, limit: number) {
    this.#file = file;
    this.#path = path;
    this.#limit = limit;
  }

  /**
   * Creates (or truncates) `path`; `bufferChars` sets the flush threshold (default 1 Mi).
   * File-system faults here and in every later call are IoErrors naming `label` (default
   * `path`; the output's name when `path` is its temporary).
   */
  static async create(
    path: string,
    bufferChars = 1 << 20,
    label = path,
  ): Promise<TextFileWriter> {
    const file = await withIo(
      label,
      "cannot write",
      () => Deno.open(path, { write: true, create: true, truncate: true }),
    );
    return new TextFileWriter(file, label, bufferChars);
  }

  /** Bytes written to the file so far (flushed data only). */
  get bytes(): number {
    return this.#bytes;
  }

  /** Appends `text`; writes the buffer out when it is full. */
  async write(text: string): Promise<void> {
    this.#parts.push(text);
    this.#size += text.length;
    if (this.#size >= this.#limit) await this.flush();
  }

  /** Writes out whatever is buffered. */
  async flush(): Promise<void> {
    if (this.#parts.length === 0) return;
    const bytes = encoder.encode(this.#parts.join(""));
    this.#parts = [];
    this.#size = 0;
    await withIo(this.#path, "cannot write", async () => {
      let written = 0;
      while (written < bytes.length) written += await this.#file.write(bytes.subarray(written));
    });
    this.#bytes += bytes.length;
  }

  /** Flushes, syncs and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.flush();
      await withIo(this.#path, "cannot write", () => syncFile(this.#file));
    } finally {
      this.#closed = true;
      this.#file.close();
    }
  }
}
