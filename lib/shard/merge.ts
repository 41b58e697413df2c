/**
 * Merging the parts of a sharded run into exactly what one unsharded run writes: predictions
 * files (infer, eval --save-baselines) or dataset directories (textualize). Everything that can
 * be checked before writing is checked first (one run, every shard once, each file present with
 * the size its sidecar records); the bytes' SHA-256 is checked while they are copied, and the
 * output appears only when complete, so a refused or failed merge writes nothing.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { createHash } from "node:crypto";
import { inputError } from "../errors.ts";
import { writeOutputDir, writeOutputFile } from "../io/safe_output.ts";
import { syncFile } from "../io/fs.ts";
import { withIo } from "../io/io_error.ts";
import {
  checkPartSet,
  type PartManifest,
  type ReadPart,
  readPart,
  refuseReplacingPart,
  removeReplacedSidecar,
  sha256Hex,
  sidecarPath,
} from "./part.ts";

/** What a merge wrote. */
export interface MergeSummary {
  /** The merged output (a file or directory). */
  out: string;
  /** What produced the parts. */
  kind: PartManifest["kind"];
  /** The number of parts merged. */
  shards: number;
  /** Lines written, by file name. */
  lines: Record<string, number>;
}

/** Yields the lines of a file as bytes, each with its `\n` (the last one without, if so). */
async function* rawLines(path: string): AsyncGenerator<Uint8Array> {
  const file = await Deno.open(path, { read: true });
  let pending = new Uint8Array(0);
  for await (const chunk of file.readable) {
    let data = chunk;
    if (pending.length > 0) {
      data = new Uint8Array(pending.length + chunk.length);
      data.set(pending);
      data.set(chunk, pending.length);
    }
    let start = 0;
    for (let i = data.indexOf(10); i >= 0; i = data.indexOf(10, start)) {
      yield data.slice(start, i + 1);
      start = i + 1;
    }
    pending = data.slice(start);
  }
  if (pending.length > 0) yield pending;
}

/** Buffered byte output to the claim's file (a new temporary, or a device or pipe as it is). */
class ByteWriter {
  #parts: Uint8Array[] = [];
  #size = 0;
  // Every fault names the file (the claim then names the output the temporary stands for).
  private constructor(readonly file: Deno.FsFile, readonly path: string) {}

  static async create(path: string): Promise<ByteWriter> {
    const file = await withIo(
      path,
      "cannot write",
      () => Deno.open(path, { write: true, create: true, truncate: true }),
    );
    return new ByteWriter(file, path);
  }

  async write(bytes: Uint8Array): Promise<void> {
    this.#parts.push(bytes);
    this.#size += bytes.length;
    if (this.#size >= 1 << 20) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#size === 0) return;
    const all = new Uint8Array(this.#size);
    let at = 0;
    for (const p of this.#parts) {
      all.set(p, at);
      at += p.length;
    }
    this.#parts = [];
    this.#size = 0;
    await withIo(this.path, "cannot write", async () => {
      let written = 0;
      while (written < all.length) written += await this.file.write(all.subarray(written));
    });
  }

  async close(): Promise<void> {
    try {
      await this.flush();
      await withIo(this.path, "cannot write", () => syncFile(this.file));
    } finally {
      this.file.close();
    }
  }
}

function partFile(part: ReadPart, name: string): string {
  return part.isDir ? join(part.path, name) : part.path;
}

/** Checks what can be checked before writing: sizes and the keys of every file. */
async function planFile(parts: readonly ReadPart[], name: string) {
  const space = parts[0].manifest.files[name].key_space;
  const owner = new Int32Array(space).fill(-1);
  const lines = new Int32Array(space);
  for (const [p, part] of parts.entries()) {
    const entry = part.manifest.files[name];
    const path = partFile(part, name);
    if (entry === undefined) {
      throw inputError(part.path, undefined, `its sidecar lists no ${name}`);
    }
    if (entry.key_space !== space) {
      throw inputError(
        part.path,
        undefined,
        `${name} has ${entry.key_space} keys, ${parts[0].path} ${space}: parts of another run`,
      );
    }
    let size: number;
    try {
      size = (await Deno.stat(path)).size;
    } catch {
      throw inputError(path, undefined, "is missing (its sidecar lists it)");
    }
    if (size !== entry.bytes) {
      throw inputError(path, undefined, `has ${size} bytes, its sidecar says ${entry.bytes}`);
    }
    let key = 0;
    for (let j = 0; j < entry.keys.length; j += 2) {
      key = j === 0 ? entry.keys[0] : key + entry.keys[j];
      if (key >= space || (j > 0 && entry.keys[j] === 0)) {
        throw inputError(part.path, undefined, `${name}: malformed keys in its sidecar`);
      }
      if (owner[key] >= 0) {
        throw inputError(
          part.path,
          undefined,
          `${name}: holds lines of key ${key}, which ${parts[owner[key]].path} holds too`,
        );
      }
      owner[key] = p;
      lines[key] = entry.keys[j + 1];
    }
  }
  return { owner, lines };
}

async function mergeFile(
  parts: readonly ReadPart[],
  name: string,
  plan: { owner: Int32Array; lines: Int32Array },
  out: string,
): Promise<number> {
  const readers = parts.map((part) => rawLines(partFile(part, name)));
  const hashes = parts.map(() => createHash("sha256"));
  const writer = await ByteWriter.create(out);
  let written = 0;
  try {
    for (let key = 0; key < plan.owner.length; key++) {
      const p = plan.owner[key];
      if (p < 0) continue;
      for (let l = 0; l < plan.lines[key]; l++) {
        const next = await readers[p].next();
        if (next.done) {
          throw inputError(
            partFile(parts[p], name),
            undefined,
            "has fewer lines than its sidecar says",
          );
        }
        hashes[p].update(next.value);
        await writer.write(next.value);
        written++;
      }
    }
    for (const [p, reader] of readers.entries()) {
      if (!(await reader.next()).done) {
        throw inputError(
          partFile(parts[p], name),
          undefined,
          "has more lines than its sidecar says",
        );
      }
      if (hashes[p].digest("hex") !== parts[p].manifest.files[name].sha256) {
        throw inputError(
          partFile(parts[p], name),
          undefined,
          "its bytes are not those its sidecar records (changed after it was written)",
        );
      }
    }
  } finally {
    for (const reader of readers) await reader.return(undefined);
    await writer.close();
  }
  return written;
}

/**
 * Merges `paths` (part files or part directories, or their sidecars) into `out`. Refuses, with
 * one InputError and nothing written, parts that are not of one run, a shard given twice or
 * missing, and files that are not what their sidecar records.
 *
 * @example
 * ```ts
 * await mergeParts(["pred-00000-of-00002.jsonl", "pred-00001-of-00002.jsonl"], "pred.jsonl");
 * ```
 */
export async function mergeParts(
  paths: readonly string[],
  out: string,
  options: MergeOptions = {},
): Promise<MergeSummary> {
  const parts: ReadPart[] = [];
  for (const path of paths) parts.push(await readPart(path));
  checkPartSet(parts, true);
  parts.sort((a, b) => a.manifest.shard.index - b.manifest.shard.index);
  const outPath = out.replace(/(.)\/+$/, "$1");
  for (const part of parts) {
    if (resolve(part.path) === resolve(outPath)) {
      throw inputError(out, undefined, "is one of the parts; merge into another path");
    }
  }
  const replacedSidecar = await refuseReplacingPart(outPath, {
    force: options.force,
    doing: "merging over it",
    output: parts[0].isDir ? "directory" : "file",
  });
  if (!parts[0].isDir) {
    // A part file holds one file, whatever name its run gave the output (--out may differ
    // between shards): merge it under one name.
    for (const part of parts) {
      const entries = Object.values(part.manifest.files);
      if (entries.length !== 1) {
        throw inputError(part.path, undefined, "its sidecar must list exactly one file");
      }
      part.manifest.files = { [Object.keys(parts[0].manifest.files)[0]]: entries[0] };
    }
  }
  const names = Object.keys(parts[0].manifest.files).sort();
  const plans = new Map<string, Awaited<ReturnType<typeof planFile>>>();
  for (const name of names) plans.set(name, await planFile(parts, name));
  for (const part of parts) {
    for (const name of Object.keys(part.manifest.files)) {
      if (!plans.has(name)) {
        throw inputError(part.path, undefined, `lists ${name}, ${parts[0].path} does not`);
      }
    }
  }
  // Claimed like every output (lib/io/safe_output.ts): locked, and replaced only when it holds
  // what this tool wrote (a dataset, a predictions file) unless `force`; never a part.
  // The parts' sidecars are inputs too: `--out` on one would destroy the part set.
  const kind = parts[0].manifest.kind;
  const claimOptions = {
    force: options.force,
    inputs: parts.flatMap((p) => [p.path, sidecarPath(p.path, p.isDir)]),
    // The command that writes such a file (a baseline's predictions: eval --save-baselines).
    command: parts[0].isDir ? "textualize" : kind === "baseline" ? "eval" : kind,
    recognize: parts[0].isDir ? options.recognize?.dir : options.recognize?.file,
  };
  const lines: Record<string, number> = {};
  const summary = {
    out,
    kind: parts[0].manifest.kind,
    shards: parts.length,
    lines,
  };
  if (!parts[0].isDir) {
    const name = names[0];
    await writeOutputFile(outPath, claimOptions, async (tmp) => {
      lines[name] = await mergeFile(parts, name, plans.get(name)!, tmp);
      // A part --force replaces loses its sidecar too (it would describe bytes gone).
      await removeReplacedSidecar(replacedSidecar);
    });
    return summary;
  }
  const same = (parts[0].manifest.run.same_files ?? {}) as Record<string, string>;
  await writeOutputDir(outPath, claimOptions, async (dir) => {
    for (const name of names) {
      lines[name] = await mergeFile(parts, name, plans.get(name)!, join(dir, name));
    }
    for (const [name, sha256] of Object.entries(same)) {
      const bytes = await Deno.readFile(join(parts[0].path, name)).catch(() => {
        throw inputError(join(parts[0].path, name), undefined, "is missing (its sidecar lists it)");
      });
      if (createHash("sha256").update(bytes).digest("hex") !== sha256) {
        throw inputError(
          join(parts[0].path, name),
          undefined,
          "its bytes are not those its sidecar records (changed after it was written)",
        );
      }
      await withIo(join(dir, name), "cannot write", () => Deno.writeFile(join(dir, name), bytes));
    }
    const mergers = options.ownFiles?.[parts[0].manifest.kind] ?? {};
    for (const name of Object.keys(parts[0].manifest.own_files ?? {}).sort()) {
      const merger = mergers[name];
      if (!merger) {
        throw inputError(parts[0].path, undefined, `${name}: no way to merge this part file`);
      }
      const text = await mergeOwnFile(parts, name, merger, options.onWarning ?? (() => {}));
      await withIo(
        join(dir, name),
        "cannot write",
        () => Deno.writeTextFile(join(dir, name), text),
      );
    }
  });
  return summary;
}

/**
 * Joins the texts of a file every part has its own version of (its SHA-256 in `own_files`), such
 * as a dataset's manifest.json, whose counts are added up: `texts` in shard order, `run` the
 * parts' common run record.
 */
export type OwnFileMerger = (
  texts: string[],
  run: Record<string, unknown>,
  warn: (message: string) => void,
) => string;

/** Options of {@linkcode mergeParts}. */
export interface MergeOptions {
  /** How to join the own files of parts, by part kind, then file name. */
  ownFiles?: Partial<Record<PartManifest["kind"], Record<string, OwnFileMerger>>>;
  /** Replace `out` even when this tool did not write it (`--force`). */
  force?: boolean;
  /** Told what a merger finds worth a warning (a merged dataset's empty test split). */
  onWarning?: (message: string) => void;
  /**
   * Whether an existing `out` without an ownership marker is this tool's own output and may be
   * replaced: a dataset directory (`dir`), a predictions file (`file`). Default: never.
   */
  recognize?: {
    dir?: (path: string) => Promise<boolean>;
    file?: (path: string) => Promise<boolean>;
  };
}

async function mergeOwnFile(
  parts: readonly ReadPart[],
  name: string,
  merger: OwnFileMerger,
  warn: (message: string) => void,
): Promise<string> {
  const texts: string[] = [];
  for (const part of parts) {
    const path = join(part.path, name);
    const text = await Deno.readTextFile(path).catch(() => {
      throw inputError(path, undefined, "is missing (its sidecar lists it)");
    });
    if (sha256Hex(text) !== part.manifest.own_files?.[name]) {
      throw inputError(
        path,
        undefined,
        "its bytes are not those its sidecar records (changed after it was written)",
      );
    }
    texts.push(text);
  }
  return merger(texts, parts[0].manifest.run, warn);
}
