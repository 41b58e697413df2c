/**
 * The sidecar manifest of a shard's part, `PART.shard.json` next to a part file (or `shard.json`
 * inside a part directory): which shard of which run the part is, and, for each file, the size
 * and SHA-256 of its bytes and the place of its lines in the unsharded output.
 *
 * Places are keys: for predictions the index of the record in the split file, for a dataset
 * directory the rank of the user in the dataset. Lines of a part come in key order, several lines
 * may share one key (a user's records), and two parts never hold the same key; merging is then a
 * walk over the keys that takes each key's lines from the part that has them. Keys are stored as
 * pairs `[step, lines]`: the first key is the first step, each next key the previous plus its
 * step, so a part of a million records stays a few megabytes.
 *
 *     {"format": "recsysllm-shard", "version": 1, "kind": "infer",
 *      "shard": {"index": 2, "count": 7, "hash": "sha256(user)[0:8] big-endian mod n"},
 *      "run": {...what must agree between parts...}, "run_sha256": "...",
 *      "files": {"pred.jsonl": {"bytes": 81234, "sha256": "...", "lines": 310,
 *                               "key_space": 2174, "keys": [3, 1, 5, 1, ...]}},
 *      "written_by": {...informative: device, threads, host...}}
 *
 * The sidecar is written after the part itself (both atomically), so a part without one is
 * incomplete and a merge refuses it.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { InputError, inputError, worded } from "../errors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { type Shard, SHARD_HASH } from "./shard.ts";

/** What produced a part. */
export type PartKind = "infer" | "baseline" | "textualize";

/** One file of a part. */
export interface PartFile {
  /** The file's size in bytes. */
  bytes: number;
  /** The SHA-256 of its contents, hex. */
  sha256: string;
  /** The number of lines. */
  lines: number;
  /** The number of keys of the unsharded output (records of the split, users of the dataset). */
  key_space: number;
  /** `[step, lines]` pairs (see the module docs). */
  keys: number[];
}

/** The sidecar of a part. */
export interface PartManifest {
  /** Always `recsysllm-shard`. */
  format: "recsysllm-shard";
  /** Version of the sidecar format. */
  version: 1;
  /** What produced the part. */
  kind: PartKind;
  /** This part's shard, with the assignment rule ({@linkcode SHARD_HASH}). */
  shard: Shard & { hash: string };
  /** Everything that must be the same for parts of one run: model, data, flags. */
  run: Record<string, unknown>;
  /** SHA-256 of `run` as canonical JSON. */
  run_sha256: string;
  /** Files by name: the name of the file the merge writes (inside the output, for directories). */
  files: Record<string, PartFile>;
  /** Files of this part that are not merged line by line (name -> SHA-256), checked on merge. */
  own_files?: Record<string, string>;
  /** Informative only (device, threads): not compared. */
  written_by?: Record<string, unknown>;
}

/** The sidecar of a part file; the sidecar inside a part directory is `shard.json`. */
export function sidecarPath(part: string, isDir: boolean): string {
  return isDir ? join(part, "shard.json") : `${part}.shard.json`;
}

/** JSON with object keys sorted, so equal values have equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_, v) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]))
        : v,
  );
}

/** SHA-256 (hex) of text or bytes. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** SHA-256 (hex) and size of a file, read as a stream; undefined when it does not exist. */
export async function fileDigest(
  path: string,
): Promise<{ bytes: number; sha256: string } | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw inputError(path, undefined, `cannot read: ${(error as Error).message}`);
  }
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of file.readable) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { bytes, sha256: hash.digest("hex") };
}

/**
 * Collects the keys of the lines written to one file of a part, and its bytes' hash.
 *
 * @example
 * ```ts
 * declare const line: string;
 * const keys = new PartFileKeys();
 * keys.add(17, line); // a line of the record at index 17
 * keys.file(2174);    // the PartFile entry for a split of 2174 records
 * ```
 */
export class PartFileKeys {
  readonly #pairs: number[] = [];
  readonly #hash = createHash("sha256");
  readonly #encoder = new TextEncoder();
  #last = -1;
  #lines = 0;
  #bytes = 0;

  /** Records that `text` (one or more whole lines) was written for `key`. */
  add(key: number, text: string, lines = 1): void {
    if (key < this.#last) {
      throw new RangeError(`keys must not decrease: ${key} after ${this.#last}`);
    }
    if (key === this.#last && this.#pairs.length > 0) {
      this.#pairs[this.#pairs.length - 1] += lines;
    } else {
      this.#pairs.push(this.#pairs.length === 0 ? key : key - this.#last, lines);
      this.#last = key;
    }
    const bytes = this.#encoder.encode(text);
    this.#hash.update(bytes);
    this.#bytes += bytes.length;
    this.#lines += lines;
  }

  /** The file's entry, for a key space of `keySpace` keys. */
  file(keySpace: number): PartFile {
    return {
      bytes: this.#bytes,
      sha256: this.#hash.digest("hex"),
      lines: this.#lines,
      key_space: keySpace,
      keys: this.#pairs,
    };
  }
}

/** Builds the sidecar of a part. */
export function partManifest(
  kind: PartKind,
  shard: Shard,
  run: Record<string, unknown>,
  files: Record<string, PartFile>,
  writtenBy?: Record<string, unknown>,
): PartManifest {
  return {
    format: "recsysllm-shard",
    version: 1,
    kind,
    shard: { index: shard.index, count: shard.count, hash: SHARD_HASH },
    run,
    run_sha256: sha256Hex(canonicalJson(run)),
    files,
    ...(writtenBy ? { written_by: writtenBy } : {}),
  };
}

/**
 * Removes the sidecar of an earlier run of the same part, before the new part is renamed into
 * place: a run killed between the two renames then leaves a part without a sidecar (refused as
 * unfinished), never a new part with an old sidecar.
 */
export async function removeSidecar(part: string): Promise<void> {
  await removeReplacedSidecar(sidecarPath(part, false));
}

/**
 * Refuses, unless `force`, an output that is a part of a sharded run (a file beside its
 * `.shard.json`, a directory holding `shard.json`): a claim would replace it as a predictions
 * file or dataset this tool wrote, losing the part and leaving its sidecar describing bytes gone.
 * `doing` says what the caller would do (`merging over it`); `output` is what it writes (a file
 * output looks for a file part only: a directory is refused by the claim, `--force` or not). A
 * link is followed, as the claim follows it. With `force`, returns the sidecar of the file part
 * that will be replaced, for the caller to remove with it (a directory's goes with the
 * directory).
 *
 * @example
 * ```ts
 * await refuseReplacingPart("pred.jsonl", { doing: "writing over it", output: "file" }); // undefined
 * ```
 */
export async function refuseReplacingPart(
  out: string,
  options: { force?: boolean; doing: string; output: "file" | "directory" },
): Promise<string | undefined> {
  const real = await Deno.realPath(out).catch(() => out);
  for (const isDir of options.output === "file" ? [false] : [false, true]) {
    const sidecar = sidecarPath(real, isDir);
    const found = await Deno.lstat(sidecar).then((info) => info.isFile, () => false);
    if (!found) continue;
    if (options.force) return isDir ? undefined : sidecar;
    throw worded(
      new InputError(""),
      "out",
      (flag, nameOf) =>
        `${out}: is a part of a sharded run (${sidecar} describes it): ${options.doing} would ` +
        `lose that part; choose another ${flag}, or pass ${nameOf("force")} to replace it`,
    );
  }
  return undefined;
}

/** Removes `sidecar` if it is there (that of a part `--force` replaces). */
export async function removeReplacedSidecar(sidecar: string | undefined): Promise<void> {
  if (sidecar === undefined) return;
  await Deno.remove(sidecar).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

/** Writes the sidecar of a part file (after the part itself is in place). */
export async function writeSidecar(part: string, manifest: PartManifest): Promise<void> {
  await writeFileAtomic(sidecarPath(part, false), JSON.stringify(manifest) + "\n");
}

/** Where a part's sidecar lives and what it says. */
export interface ReadPart {
  /** The part (a file or directory; for a sidecar given, the part it belongs to). */
  path: string;
  /** The path as given: the part, or its sidecar. */
  given: string;
  /** Whether the part is a directory (its sidecar is `shard.json` inside). */
  isDir: boolean;
  /** The sidecar's contents. */
  manifest: PartManifest;
}

function checkManifest(value: unknown, file: string): PartManifest {
  const fail = (problem: string) => inputError(file, undefined, problem);
  const m = value as PartManifest;
  if (typeof m !== "object" || m === null || m.format !== "recsysllm-shard") {
    throw fail('not a shard manifest (no "format": "recsysllm-shard")');
  }
  if (m.version !== 1) throw fail(`shard manifest version ${m.version} is not supported (1 is)`);
  const s = m.shard;
  if (
    !s || !Number.isInteger(s.index) || !Number.isInteger(s.count) || s.index < 0 ||
    s.index >= s.count
  ) throw fail('"shard" must hold an index in 0..count-1');
  if (typeof m.run_sha256 !== "string" || typeof m.files !== "object" || m.files === null) {
    throw fail('"run_sha256" and "files" are required');
  }
  for (const [name, f] of Object.entries(m.files)) {
    if (
      // Counts are whole and not negative: a merge sizes its tables by key_space.
      ![f?.bytes, f?.lines, f?.key_space].every((n) => Number.isInteger(n) && n >= 0) ||
      typeof f.sha256 !== "string" || !Array.isArray(f.keys) || f.keys.length % 2 !== 0 ||
      !f.keys.every((k) => Number.isInteger(k) && k >= 0)
    ) throw fail(`files["${name}"] is malformed`);
  }
  return m;
}

/**
 * Reads the sidecar of a part: `part` is a part file, its `.shard.json`, or a part directory.
 * A part without a sidecar is an InputError (an unfinished or foreign file).
 */
export async function readPart(part: string): Promise<ReadPart> {
  // A part file's sidecar names it; so does a part directory's own shard.json.
  let path = part.endsWith(".shard.json")
    ? part.slice(0, -".shard.json".length)
    : basename(part) === "shard.json"
    ? dirname(part)
    : part;
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw inputError(path, undefined, "not found");
    throw inputError(path, undefined, `cannot read: ${(error as Error).message}`);
  }
  const isDir = info.isDirectory;
  if (isDir) path = path.replace(/(.)\/+$/, "$1");
  const file = sidecarPath(path, isDir);
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw inputError(
        path,
        undefined,
        `not a shard part: ${
          basename(file)
        } is missing (written last, so the part may be unfinished)`,
      );
    }
    throw inputError(file, undefined, `cannot read: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw inputError(file, undefined, "not valid JSON");
  }
  return { path, given: part, isDir, manifest: checkManifest(value, file) };
}

/** The first place where two JSON values differ, as a path (`options.beams`), for messages. */
export function firstDifference(a: unknown, b: unknown, at = ""): string | undefined {
  if (canonicalJson(a) === canonicalJson(b)) return undefined;
  if (a && b && typeof a === "object" && typeof b === "object" && !Array.isArray(a)) {
    const ra = a as Record<string, unknown>;
    const rb = b as Record<string, unknown>;
    for (const key of [...new Set([...Object.keys(ra), ...Object.keys(rb)])].sort()) {
      const found = firstDifference(ra[key], rb[key], at === "" ? key : `${at}.${key}`);
      if (found !== undefined) return found;
    }
  }
  return at === "" ? "(the whole run)" : at;
}

/**
 * Checks that `parts` are the shards of one run, each once. With `complete`, every shard
 * 0..n-1 must be there (what a merge needs); without, some may be absent (eval of a few parts).
 * Each problem is a one-line InputError naming a part.
 */
export function checkPartSet(parts: readonly ReadPart[], complete: boolean): void {
  if (parts.length === 0) throw inputError("merge", undefined, "no parts given");
  const first = parts[0];
  const byIndex = new Map<number, ReadPart>();
  for (const part of parts) {
    const m = part.manifest;
    if (m.kind !== first.manifest.kind || part.isDir !== first.isDir) {
      throw inputError(
        part.path,
        undefined,
        `is a ${m.kind} part, ${first.path} a ${first.manifest.kind} part: they do not merge`,
      );
    }
    if (m.shard.count !== first.manifest.shard.count) {
      throw inputError(
        part.path,
        undefined,
        `is shard ${m.shard.index}/${m.shard.count}, ${first.path} is one of ` +
          `${first.manifest.shard.count} shards: parts of another run`,
      );
    }
    if (m.shard.hash !== first.manifest.shard.hash) {
      throw inputError(
        part.path,
        undefined,
        `assigns users by "${m.shard.hash}", not "${first.manifest.shard.hash}"`,
      );
    }
    if (m.run_sha256 !== first.manifest.run_sha256) {
      const where = firstDifference(m.run, first.manifest.run);
      throw inputError(
        part.path,
        undefined,
        `is from another run than ${first.path} (they differ in ${where})`,
      );
    }
    const twin = byIndex.get(m.shard.index);
    if (twin) {
      throw inputError(
        part.path,
        undefined,
        twin.path === part.path && twin.given !== part.given
          // `merge --out o.jsonl pred-0000*` names each part and its sidecar.
          ? `shard ${m.shard.index}/${m.shard.count} is given twice (the part and its sidecar ` +
            `.shard.json: name the parts only)`
          : `shard ${m.shard.index}/${m.shard.count} is given twice (also ${twin.path})`,
      );
    }
    byIndex.set(m.shard.index, part);
  }
  if (complete) {
    const count = first.manifest.shard.count;
    const missing: number[] = [];
    for (let i = 0; i < count; i++) if (!byIndex.has(i)) missing.push(i);
    if (missing.length > 0) {
      const shown = missing.slice(0, 10).map((i) => `${i}/${count}`).join(", ");
      throw inputError(
        first.path,
        undefined,
        `${missing.length} of ${count} shards are missing (${shown}${
          missing.length > 10 ? ", ..." : ""
        })`,
      );
    }
  }
}
