/**
 * Outputs that never cost a user their data. Every command that writes a file or directory
 * claims it here first, and a claim:
 *
 * 1. refuses, even with `--force`, an output that is or contains one of the run's inputs, an
 *    existing entry of an input directory, or a directory no output may replace (the root, the
 *    current and home directories, an input's directory, a repository); a file output never
 *    replaces a directory; a symbolic link is followed, and named as a link in messages;
 * 2. takes the output's exclusive lock (lib/io/lock.ts), so a second run on it is refused;
 * 3. removes what killed runs left there (temporaries, an old directory moved aside);
 * 4. refuses to replace anything this tool did not write, unless `force` (which a refusal
 *    suggests only where it would replace the tool's own work): a directory must be
 *    empty or hold an ownership marker ({@linkcode OUTPUT_MARKER}: the command that wrote it and
 *    every file it wrote) naming the same command and covering every entry; a file must be empty
 *    or be recognised by the command's `recognize` (its own format, e.g. a predictions file).
 *
 * The work is then written to a temporary sibling and renamed into place when complete (lib/io/
 * atomic.ts), and the temporary is removed on failure, SIGINT or SIGTERM.
 *
 * @module
 */

import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { type Describe, InputError, worded } from "../errors.ts";
import {
  isTemporaryName,
  removeStaleTemporaries,
  replaceWith,
  tempName,
  temporaryRenamed,
  writeFileAtomic,
} from "./atomic.ts";
import { onSignal, removeOnSignal } from "./cleanup.ts";
import { missingDirs, removeCreated, removeCreatedSync } from "./fs.ts";
import { toIoError, withIo } from "./io_error.ts";
import { OutputLock } from "./lock.ts";

/** The ownership marker inside every directory this tool writes. */
export const OUTPUT_MARKER = ".recsysllm-output.json";

/** What the ownership marker says. */
export interface OutputMarker {
  /** Always `recsysllm`. */
  tool: "recsysllm";
  /** The command that wrote the directory (`textualize`, `init`, `pretrain`, ...). */
  command: string;
  /** Every entry the command wrote in the directory (the marker itself aside). */
  files: string[];
}

/** The output is not the tool's to replace, or contains an input. The CLI exits 1. */
export class OutputRefused extends InputError {
  /** The error's name, as stacks show it. */
  override name = "OutputRefused";
}

/** Options of a claim. */
export interface ClaimOptions {
  /** The command writing (named in the marker and the lock). */
  command: string;
  /** Replace what is there even when this tool did not write it (`--force`). */
  force?: boolean;
  /**
   * The option that named the output (default `out`): messages name it, and a command re-words
   * them with its flag (`withFlagNames`).
   */
  option?: string;
  /** Inputs of the run: the output must not be, or contain, any of them. */
  inputs?: readonly (string | undefined)[];
  /**
   * Whether an existing output (file, or directory without a marker) is this tool's own work, in
   * a format only it writes (a predictions file, an older dataset directory). Default: no.
   */
  recognize?: (path: string) => Promise<boolean>;
}

/**
 * What is at `path` (the link itself; with `follow`, where links lead: a directory reached through
 * one is a directory), or undefined when nothing is; other faults are IoErrors naming `path`.
 */
async function lstatOrUndefined(
  path: string,
  follow = false,
): Promise<Deno.FileInfo | undefined> {
  try {
    return await (follow ? Deno.stat(path) : Deno.lstat(path));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw toIoError(error, path, "cannot read");
  }
}

async function realOrResolved(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    return resolve(path);
  }
}

/**
 * Whether the path `inner` is `outer` or inside it (as written, links not followed).
 *
 * @example
 * ```ts
 * within("runs/a/merged", "runs/a"); // true
 * within("runs/a-merged", "runs/a"); // false
 * ```
 */
export function within(inner: string, outer: string): boolean {
  const rel = relative(outer, inner);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/** Resolves a trailing chain of symbolic links at `path` (at most 40), without needing the target. */
async function followLinks(path: string): Promise<string> {
  let at = resolve(path);
  for (let hop = 0; hop < 40; hop++) {
    const info = await lstatOrUndefined(at);
    if (!info?.isSymlink) return at;
    const target = await withIo(at, "cannot read the link", () => Deno.readLink(at));
    at = resolve(dirname(at), target);
  }
  throw new InputError(`${path}: too many levels of symbolic links`);
}

/** `path` as messages name it: with the place a link leads to, when it is a link. */
function shown(path: string, target: string): string {
  return target === resolve(path) ? path : `${path} (a link to ${target})`;
}

/** The directories no output may be or contain, whatever the flags: name and real path. */
async function protectedDirs(options: ClaimOptions): Promise<[string, string][]> {
  const dirs: [string, string][] = [["the file-system root", "/"]];
  try {
    dirs.push(["the current directory", await realOrResolved(Deno.cwd())]);
  } catch { /* no current directory (removed): nothing to protect there */ }
  let home: string | undefined;
  try {
    home = Deno.env.get("HOME");
  } catch { /* no permission to read the environment */ }
  if (home) dirs.push(["your home directory", await realOrResolved(home)]);
  for (const input of options.inputs ?? []) {
    if (input === undefined || input === "-") continue;
    const real = await realOrResolved(input);
    dirs.push([`the directory of the input ${input}`, dirname(real)]);
  }
  return dirs;
}

/**
 * Refuses an output that is or contains an input, or an existing entry of an input directory (a
 * file of the dataset being read), or that holds a directory no
 * output may replace (the root, the current or home directory, an input's directory), with or
 * without `force`: no flag can make such a write safe, so the message suggests none.
 */
async function checkInputs(path: string, target: string, options: ClaimOptions): Promise<void> {
  const out = await realOrResolved(target);
  for (const input of options.inputs ?? []) {
    if (input === undefined || input === "-") continue;
    const real = await realOrResolved(input);
    if (within(real, out)) {
      const what = resolve(input) === resolve(path) ? "is" : "contains";
      throw refusedAs(
        options,
        (flag) =>
          `${flag} ${shown(path, target)} ${what} the input ${input}: writing there would ` +
          `destroy it; choose another ${flag}`,
      );
    }
    if (
      out !== real && within(out, real) && (await lstatOrUndefined(real))?.isDirectory &&
      (await lstatOrUndefined(out)) !== undefined
    ) {
      throw refusedAs(
        options,
        (flag) =>
          `${flag} ${shown(path, target)} is part of the input directory ${input}: replacing ` +
          `it would change an input of this run; choose another ${flag}`,
      );
    }
  }
  for (const [name, dir] of await protectedDirs(options)) {
    if (within(dir, out)) {
      throw refusedAs(
        options,
        (flag) =>
          `${flag} ${shown(path, target)} ${out === dir ? "is" : "contains"} ${name} ` +
          `(${dir}): recsysllm never replaces it; choose another ${flag}`,
      );
    }
  }
}

/** Reads the marker of directory `dir`, or undefined when there is none (or it is not ours). */
export async function readMarker(dir: string): Promise<OutputMarker | undefined> {
  try {
    const marker = JSON.parse(await Deno.readTextFile(join(dir, OUTPUT_MARKER)));
    if (
      marker?.tool === "recsysllm" && typeof marker.command === "string" &&
      Array.isArray(marker.files) && marker.files.every((f: unknown) => typeof f === "string")
    ) return marker;
  } catch { /* no marker, or not one of ours */ }
  return undefined;
}

/** Writes the marker of `dir`: `command` wrote `files` there. */
export async function writeMarker(dir: string, command: string, files: string[]): Promise<void> {
  const marker: OutputMarker = { tool: "recsysllm", command, files: [...files].sort() };
  // Atomic: a disk full must not leave an empty marker, which reads as a directory not ours.
  await withIo(
    join(dir, OUTPUT_MARKER),
    "cannot write",
    () => writeFileAtomic(join(dir, OUTPUT_MARKER), JSON.stringify(marker) + "\n"),
  );
}

async function entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  } catch (error) {
    throw toIoError(error, dir, "cannot list");
  }
  return names.sort();
}

/** Why the tool may not replace an existing output, and whether `--force` loses only its own work. */
interface Refusal {
  why: string;
  /** Whether everything `--force` would replace is recsysllm's own output. */
  ownWork: boolean;
  /** The entries recsysllm did not write, where known. */
  foreign?: string[];
}

/** Version-control directories: a directory holding one is never replaced, even with `--force`. */
const VCS_DIRS = [".git", ".hg", ".svn"];

/**
 * The checkpoint of a training run (`pretrain --out`): a directory holding one is a run that
 * `--resume` continues, never replaced by another output (`--merge`, `init --force`), even with
 * `--force`.
 */
export const TRAINING_CHECKPOINT = "checkpoint.safetensors";

/** The log a training run writes from its first step (what a run without a checkpoint holds). */
const RUN_LOG = "metrics.jsonl";

/**
 * Removes the run directory `dir` a claim made when it holds nothing but `allowed` names and
 * temporaries (a run that never got going); synchronous, for an interrupt's clean-up too. Never
 * throws.
 */
function removeBareRunDir(dir: string, allowed: readonly string[]): void {
  try {
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    if (names.every((n) => allowed.includes(n) || isTemporaryName(n))) {
      Deno.removeSync(dir, { recursive: true });
    }
  } catch { /* gone, or not ours to report */ }
}

/** Why the tool may not replace the directory `path`, or undefined when it may. */
async function foreignDir(path: string, options: ClaimOptions): Promise<Refusal | undefined> {
  const names = (await entries(path)).filter((n) => !isTemporaryName(n));
  if (names.length === 0) return undefined;
  const marker = await readMarker(path);
  if (marker === undefined) {
    if (options.recognize && (await options.recognize(path))) return undefined;
    return {
      why: `holds files recsysllm did not write (${listed(names)})`,
      ownWork: false,
      foreign: names,
    };
  }
  const known = new Set([...marker.files, OUTPUT_MARKER]);
  const foreign = names.filter((n) => !known.has(n));
  if (foreign.length > 0) {
    return {
      why: `holds files recsysllm ${marker.command} did not write (${listed(foreign)})`,
      ownWork: false,
      foreign,
    };
  }
  if (marker.command !== options.command) {
    return {
      why: `holds the output of recsysllm ${marker.command}, not of ${options.command}`,
      ownWork: true,
    };
  }
  return undefined;
}

/** Refuses, even with `--force`, to replace a directory that holds a version-control directory. */
async function checkVcs(path: string, target: string, options: ClaimOptions): Promise<void> {
  const names = await entries(target);
  const vcs = VCS_DIRS.find((n) => names.includes(n));
  if (vcs) {
    throw refusedAs(
      options,
      (flag) =>
        `${shown(path, target)}: holds ${vcs} (a repository): recsysllm never replaces it; ` +
        `choose another ${flag}`,
    );
  }
}

/** Refuses, even with `--force`, to replace a directory that holds a training run. */
async function checkTrainingRun(
  path: string,
  target: string,
  options: ClaimOptions,
): Promise<void> {
  if (!(await entries(target)).includes(TRAINING_CHECKPOINT)) return;
  throw refusedAs(
    options,
    (flag) =>
      `${shown(path, target)}: holds a training run (${TRAINING_CHECKPOINT}): recsysllm never ` +
      `replaces it; choose another ${flag}`,
  );
}

/** An {@linkcode OutputRefused} whose message names the output's option (and others). */
function refusedAs(options: ClaimOptions, describe: Describe): OutputRefused {
  return worded(new OutputRefused(""), options.option ?? "out", describe);
}

function listed(names: string[]): string {
  const shown = names.slice(0, 3).join(", ");
  return names.length > 3 ? `${shown} and ${names.length - 3} more` : shown;
}

function refused(
  path: string,
  refusal: Refusal,
  options: ClaimOptions,
  force = "to replace it",
): OutputRefused {
  // force is suggested only where all it would replace is the tool's own work.
  return refusedAs(
    options,
    (flag, nameOf) =>
      `${path}: ${refusal.why}; ` +
      (refusal.ownWork
        ? `choose another ${flag}, or pass ${nameOf("force")} ${force}`
        : `choose another ${flag}, or move those files away first`),
  );
}

/** A claimed output: locked, checked, with a temporary to write into. */
export interface OutputClaim {
  /** The output's path. */
  readonly path: string;
  /** The temporary sibling to write (a file path, or a directory that exists). */
  readonly tmp: string;
  /** The lock held on the output (none for a device or pipe written as it is). */
  readonly lock?: OutputLock;
  /** Puts the temporary in place (for directories, with the marker), atomically. */
  commit(): Promise<void>;
  /** Removes the temporary (if still there) and releases the lock; safe to call twice. */
  close(): Promise<void>;
}

async function claim(
  path: string,
  kind: "file" | "dir",
  options: ClaimOptions,
): Promise<OutputClaim> {
  if (kind === "file") {
    // A device, pipe or socket (`--out /dev/null`, `--out >(gzip > x.gz)`) is written as it is:
    // it has nothing to replace atomically and nothing to lock beside it (`/dev/.null.lock`),
    // and renaming a file over it would replace the device itself.
    const info = await lstatOrUndefined(path, true);
    if (info && !info.isFile && !info.isDirectory) return await directClaim(path, options);
  }
  // A link is followed: the output lands where it points, and the link stays.
  const target = await followLinks(path);
  const name = shown(path, target);
  await checkInputs(path, target, options);
  const parent = dirname(target);
  // The directories made for the output, removed again (when empty) if it is never committed.
  let madeDirs: string[] = [];
  if (kind === "dir") {
    madeDirs = await missingDirs(parent);
    await withIo(
      parent,
      "cannot create the directory",
      () => Deno.mkdir(parent, { recursive: true }),
    );
  } else if (!(await lstatOrUndefined(parent, true))?.isDirectory) {
    throw new InputError(`${name}: cannot write: its directory does not exist`);
  }
  const lock = await OutputLock.acquire(target, options.command).catch(async (error) => {
    await removeCreated(madeDirs);
    throw error;
  });
  let tmp: string | undefined;
  let forget = () => {};
  try {
    await removeStaleTemporaries(target);
    const info = await lstatOrUndefined(target);
    if (info && kind === "file" && info.isDirectory) {
      throw refusedAs(
        options,
        (flag) =>
          `${name}: is a directory; a file output never replaces a directory: choose another ` +
          flag,
      );
    }
    if (info?.isDirectory) {
      await checkVcs(path, target, options);
      await checkTrainingRun(path, target, options);
    }
    if (info && !options.force) {
      let refusal: Refusal | undefined;
      if (kind === "dir") {
        refusal = info.isDirectory
          ? await foreignDir(target, options)
          : { why: "is a file, not a directory recsysllm wrote", ownWork: false };
      } else if (info.size > 0 && !(options.recognize && (await options.recognize(target)))) {
        refusal = { why: `is not a file recsysllm ${options.command} wrote`, ownWork: false };
      }
      if (refusal) throw refused(name, refusal, options);
    }
    tmp = tempName(target);
    forget = removeOnSignal(tmp);
    // Synchronously: never after the clean-up of a signal that came while it was under way.
    if (kind === "dir") {
      await withIo(path, "cannot write", () => Promise.resolve(Deno.mkdirSync(tmp!)));
    }
  } catch (error) {
    forget();
    if (tmp) await Deno.remove(tmp, { recursive: true }).catch(() => {});
    lock.release();
    await removeCreated(madeDirs);
    throw error;
  }
  const temporary = tmp;
  let closed = false;
  let committed = false;
  // Interrupted before it is put in place: the directories made for it go too (when empty).
  const forgetDirs = onSignal(() => {
    if (!committed) removeCreatedSync(madeDirs);
  });
  return {
    path,
    tmp: temporary,
    lock,
    async commit() {
      if (kind === "dir") {
        const files = (await entries(temporary)).filter((n) => n !== OUTPUT_MARKER);
        await writeMarker(temporary, options.command, files);
        await replaceWith(temporary, target);
      } else {
        await withIo(path, "cannot write", () => Deno.rename(temporary, target));
      }
      committed = true;
    },
    async close() {
      if (closed) return;
      closed = true;
      await Deno.remove(temporary, { recursive: true }).catch(() => {});
      forget();
      forgetDirs();
      lock.release();
      // The directories made for it, when it was never put in place (and they are empty).
      if (!committed) await removeCreated(madeDirs);
    },
  };
}

/** The claim of a device or pipe: written directly, nothing to commit or remove. */
async function directClaim(path: string, options: ClaimOptions): Promise<OutputClaim> {
  await checkInputs(path, resolve(path), options);
  return { path, tmp: path, commit: () => Promise.resolve(), close: () => Promise.resolve() };
}

/**
 * Claims the output file `path` for writing (see the module doc). Write the temporary
 * (`claim.tmp`), then `commit`; `close` in every case.
 */
export function claimOutputFile(path: string, options: ClaimOptions): Promise<OutputClaim> {
  return claim(path, "file", options);
}

/** Claims the output directory `path` to be built whole (`claim.tmp` exists, empty). */
export function claimOutputDir(path: string, options: ClaimOptions): Promise<OutputClaim> {
  return claim(path, "dir", options);
}

/** Runs `work` on the claim's temporary, commits it, and always releases the claim. */
async function completeClaim<T>(
  out: OutputClaim,
  path: string,
  work: (tmp: string) => Promise<T>,
): Promise<T> {
  try {
    const result = await work(out.tmp);
    await out.commit();
    return result;
  } catch (error) {
    throw temporaryRenamed(error, out.tmp, path);
  } finally {
    await out.close();
  }
}

/**
 * Builds the output directory `path` with `build(tmp)` and puts it in place with its marker;
 * nothing is replaced if `build` fails. Returns what `build` returns.
 *
 * @example
 * ```ts
 * await writeOutputDir("runs/data", { command: "textualize", inputs: ["raw.csv"] }, async (dir) => {
 *   await Deno.writeTextFile(`${dir}/manifest.json`, "{}");
 * });
 * ```
 */
export async function writeOutputDir<T>(
  path: string,
  options: ClaimOptions,
  build: (dir: string) => Promise<T>,
): Promise<T> {
  return completeClaim(await claimOutputDir(path, options), path, build);
}

/** Writes the output file `path` with `write(tmp)` and renames it into place when complete. */
export async function writeOutputFile<T>(
  path: string,
  options: ClaimOptions,
  write: (tmp: string) => Promise<T>,
): Promise<T> {
  return completeClaim(await claimOutputFile(path, options), path, write);
}

/** A run directory written in place (not replaced), claimed with {@linkcode claimRunDir}. */
export interface RunDirClaim {
  /** The run directory. */
  readonly path: string;
  /** The lock held on it until {@linkcode RunDirClaim.release}. */
  readonly lock: OutputLock;
  /** Whether this claim created the directory (it did not exist). */
  readonly created: boolean;
  /**
   * Releases the lock. With `removeIfCreated`, a directory this claim created is removed when
   * it holds nothing but what this run wrote (a run that failed before its first checkpoint).
   */
  release(removeIfCreated?: boolean): Promise<void>;
}

/**
 * Claims a directory a command writes in place (a training run: it adds and rewrites its own
 * files, never removes the directory): refused when it contains an input, is locked, or holds
 * files this command did not write (no marker, or entries the marker does not list) unless
 * `force`. `files` are the entries the command may write; they are added to the marker. Stale
 * temporaries inside are removed.
 */
export async function claimRunDir(
  path: string,
  files: readonly string[],
  options: ClaimOptions,
): Promise<RunDirClaim> {
  // A link is followed: the run is written where it points, and the link stays.
  const target = await followLinks(path);
  await checkInputs(path, target, options);
  const parent = dirname(target);
  // The directories made for the run (its own and those above), removed again if it fails.
  const madeDirs = await missingDirs(parent);
  await withIo(
    parent,
    "cannot create the directory",
    () => Deno.mkdir(parent, { recursive: true }),
  );
  const lock = await OutputLock.acquire(target, options.command).catch(async (error) => {
    await removeCreated(madeDirs);
    throw error;
  });
  let madeTarget = false;
  let forgetDirs = () => {};
  try {
    await removeStaleTemporaries(target);
    const info = await lstatOrUndefined(target);
    let previous: string[] = [];
    if (info && !info.isDirectory) {
      throw refusedAs(
        options,
        (flag) => `${shown(path, target)}: is a file, not a directory; choose another ${flag}`,
      );
    }
    if (info) {
      await checkVcs(path, target, options);
      const refusal = options.force ? undefined : await foreignDir(target, options);
      if (refusal) {
        // Writing into the directory replaces only the entries of the run's own names: foreign
        // files of other names are safe beside it.
        const spared = refusal.foreign !== undefined &&
          !refusal.foreign.some((n) => files.includes(n));
        throw refused(
          shown(path, target),
          { ...refusal, ownWork: refusal.ownWork || spared },
          options,
          "to write into it",
        );
      }
      previous = (await readMarker(path))?.files ?? [];
      for (const name of await entries(path)) {
        if (isTemporaryName(name)) {
          await Deno.remove(join(path, name), { recursive: true }).catch(() => {});
        }
      }
    } else {
      // Where a dangling link points, the link kept (its own path exists: mkdir would fail).
      await withIo(path, "cannot create the directory", () => Deno.mkdir(target));
      madeTarget = true;
    }
    const known = [...new Set([...previous, ...files])];
    // Interrupted before its first checkpoint, a run it made leaves nothing (as a failure would):
    // the directory holding only its marker and log goes, and the directories made above it.
    forgetDirs = onSignal(() => {
      if (madeTarget) removeBareRunDir(target, [OUTPUT_MARKER, RUN_LOG]);
      removeCreatedSync(madeDirs);
    });
    await writeMarker(path, options.command, known);
    const before = new Set(info ? await entries(path) : []);
    const created = info === undefined;
    return {
      path,
      lock,
      created,
      async release(removeIfCreated = false) {
        try {
          // Whatever this run added beyond `files` is its own too: the marker says so.
          const now = await entries(path).catch(() => [] as string[]);
          const added = now.filter((n) =>
            !before.has(n) && !isTemporaryName(n) && n !== OUTPUT_MARKER && !known.includes(n)
          );
          if (added.length > 0) {
            await writeMarker(path, options.command, [...known, ...added]).catch(() => {});
          }
          if (removeIfCreated && created) {
            const known = new Set([...files, OUTPUT_MARKER]);
            const names = await entries(path).catch(() => [] as string[]);
            if (names.every((n) => known.has(n) || isTemporaryName(n))) {
              await Deno.remove(path, { recursive: true }).catch(() => {});
            }
          }
        } finally {
          forgetDirs();
          lock.release();
        }
        if (removeIfCreated && created) await removeCreated(madeDirs);
      },
    };
  } catch (error) {
    forgetDirs();
    // A run that could not start leaves nothing: the directory it made holds only its marker
    // (or not even that, the disk full), and the directories made above it are empty.
    if (madeTarget) removeBareRunDir(target, [OUTPUT_MARKER]);
    lock.release();
    await removeCreated(madeDirs);
    throw error;
  }
}

/** The first line of the file `path` (at most `maxBytes` read), or undefined if unreadable. */
export async function firstLine(path: string, maxBytes = 1 << 16): Promise<string | undefined> {
  const head = await fileHead(path, maxBytes, true);
  if (head === undefined) return undefined;
  const end = head.indexOf("\n");
  return end === -1 ? head : head.slice(0, end);
}

/**
 * The first `maxBytes` of the file `path` as text (to a line break when `toLineBreak`), or
 * undefined when it cannot be read.
 */
export async function fileHead(
  path: string,
  maxBytes: number,
  toLineBreak = false,
): Promise<string | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch {
    return undefined;
  }
  try {
    // Read in chunks, so a large limit costs only what is read.
    const chunks: Uint8Array[] = [];
    let at = 0;
    while (at < maxBytes) {
      const chunk = new Uint8Array(Math.min(1 << 16, maxBytes - at));
      const n = await file.read(chunk);
      if (n === null) break;
      chunks.push(chunk.subarray(0, n));
      at += n;
      if (toLineBreak && chunk.subarray(0, n).includes(0x0a)) break;
    }
    const buffer = new Uint8Array(at);
    let offset = 0;
    for (const chunk of chunks) {
      buffer.set(chunk, offset);
      offset += chunk.length;
    }
    return new TextDecoder().decode(buffer);
  } catch {
    return undefined;
  } finally {
    file.close();
  }
}
