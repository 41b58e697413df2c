/**
 * Writing files and directories so that nothing is ever left half-written: everything goes to a
 * temporary sibling first and is renamed into place when complete (rename is atomic on one file
 * system). A crash or kill -9 leaves either the old content or the new, plus at worst a stray
 * temporary that the next write of the same output removes ({@linkcode removeStaleTemporaries});
 * SIGINT and SIGTERM remove the temporaries at once (lib/io/cleanup.ts). File-system faults are
 * {@linkcode IoError}s naming the path.
 *
 * These are the mechanics; what may be replaced at all (ownership, `--force`, locks) is decided
 * by lib/io/safe_output.ts.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { InputError } from "../errors.ts";
import { removeOnSignal } from "./cleanup.ts";
import { faultPoint } from "./fault.ts";
import { IoError, toIoError, withIo, withIoSync } from "./io_error.ts";
import { siblingStem } from "./names.ts";

/** The marker every temporary name carries after the output's name: `.NAME.tmp-…`. */
const TMP = ".tmp-";

/** Bytes a temporary's name adds to its output's: `.`, the marker, the tag, a suffix. */
const TEMP_EXTRA = 48;

/** `.NAME.tmp-`: how every temporary of `path` starts (NAME shortened when very long). */
function tempPrefix(path: string): string {
  return `.${siblingStem(basename(path), TEMP_EXTRA)}${TMP}`;
}

/** A fresh temporary name next to `path`: `.NAME.tmp-PID-TIME-RANDOM` (+ `suffix`). */
export function tempName(path: string, suffix = ""): string {
  const tag = `${Deno.pid}-${Date.now().toString(36)}-${
    Math.floor(Math.random() * 1e9).toString(36)
  }`;
  return join(dirname(path), `${tempPrefix(path)}${tag}${suffix}`);
}

/** Whether `name` (a directory entry) is a temporary of this module. */
export function isTemporaryName(name: string): boolean {
  return name.startsWith(".") && name.includes(TMP);
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

/** Writes `data` to `path` atomically (temporary file, fsync, rename). */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = tempName(path);
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const forget = removeOnSignal(tmp);
  try {
    await withIo(path, "cannot write", async () => {
      // Created synchronously: an interrupt's clean-up runs between tasks, so it never runs
      // while an asynchronous open is about to create the file it has just removed.
      const file = Deno.openSync(tmp, { write: true, createNew: true });
      try {
        await writeAll(file, bytes);
        await file.sync();
      } finally {
        file.close();
      }
      await Deno.rename(tmp, path);
    });
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  } finally {
    forget();
  }
}

/** Synchronous {@linkcode writeFileAtomic}, for small files written from hot paths. */
export function writeFileAtomicSync(path: string, data: Uint8Array | string): void {
  const tmp = tempName(path);
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const forget = removeOnSignal(tmp);
  try {
    withIoSync(path, "cannot write", () => {
      Deno.writeFileSync(tmp, bytes, { createNew: true });
      Deno.renameSync(tmp, path);
    });
  } catch (error) {
    try {
      Deno.removeSync(tmp);
    } catch { /* already gone */ }
    throw error;
  } finally {
    forget();
  }
}

/**
 * Removes the temporaries of `path` that earlier runs left (`.NAME.tmp-*` next to it), after
 * restoring an old directory a run killed mid-replacement had moved aside. Call it only while
 * holding the output's lock (lib/io/lock.ts), so no live writer's temporary is touched.
 */
export async function removeStaleTemporaries(path: string): Promise<void> {
  const dir = dirname(path) || ".";
  const prefix = tempPrefix(path);
  const stale: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.name.startsWith(prefix)) stale.push(entry.name);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw toIoError(error, dir, "cannot list");
  }
  // A kill between the two renames of replaceDir leaves the old output aside and nothing in its
  // place: put the newest old one back, so the output is never lost.
  const olds = stale.filter((n) => n.endsWith("-old")).sort();
  if (olds.length > 0 && !(await exists(path))) {
    const newest = olds.pop()!;
    await withIo(path, "cannot restore", () => Deno.rename(join(dir, newest), path));
    stale.splice(stale.indexOf(newest), 1);
  }
  for (const name of stale) {
    await withIo(
      join(dir, name),
      "cannot remove a stale temporary",
      () =>
        Deno.remove(join(dir, name), { recursive: true }).catch((error) => {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        }),
    );
  }
}

/** Removes every temporary (`.*.tmp-*`) inside directory `dir` (a locked run directory). */
export async function removeTemporariesIn(dir: string): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    if (isTemporaryName(entry.name)) {
      await Deno.remove(join(dir, entry.name), { recursive: true }).catch(() => {});
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw toIoError(error, path, "cannot read");
  }
}

/**
 * Puts the complete directory (or file) `tmp` in the place of `path`: whatever is at `path` is
 * moved aside, `tmp` renamed in, and the old one removed.
 *
 * The two renames run back to back with no await between them, so a SIGINT or SIGTERM (whose
 * handler runs on the event loop) is handled before the swap or after it, never between: either
 * the old output or the new one is at `path` when the handler runs, and the handler removes only
 * temporaries (the new one before the swap, the old one after). A kill -9 between the renames
 * leaves the old output aside and nothing at `path`; the next {@linkcode removeStaleTemporaries}
 * puts it back.
 */
export async function replaceWith(tmp: string, path: string): Promise<void> {
  if (!(await exists(path))) {
    faultPoint("swap-start");
    await withIo(path, "cannot write", () => Deno.rename(tmp, path));
    return;
  }
  const old = tempName(path, "-old");
  faultPoint("swap-start");
  withIoSync(path, "cannot replace", () => {
    Deno.renameSync(path, old);
    faultPoint("swap-aside");
    try {
      Deno.renameSync(tmp, path);
    } catch (error) {
      Deno.renameSync(old, path);
      throw error;
    }
    faultPoint("swap-in-place");
  });
  // The new output is in place: from now on a signal removes the old one, not leaves it behind.
  const forget = removeOnSignal(old);
  try {
    faultPoint("swap-removing-old");
    await withIo(old, "cannot remove the old output", () => Deno.remove(old, { recursive: true }));
  } finally {
    forget();
  }
}

/**
 * `error` with the temporary `tmp` in its message replaced by the output `path` it stands for, so
 * a fault inside a temporary directory names what the user asked to write.
 */
export function temporaryRenamed(caught: unknown, tmp: string, path: string): unknown {
  const error = toIoError(caught);
  if (!(error instanceof InputError) || !error.message.includes(tmp)) return error;
  const message = error.message.replaceAll(tmp, path);
  return error instanceof IoError
    ? new IoError(message, error.path?.replace(tmp, path), error.code, { cause: error })
    : new InputError(message, { cause: error });
}

/**
 * Builds a directory atomically: `build` fills a fresh temporary directory next to `path`, which
 * then replaces `path` (an existing directory there is removed only after the new one is complete).
 * If `build` throws (or the process gets SIGINT/SIGTERM), the temporary directory is removed and
 * `path` is untouched. Whether `path` may be replaced is the caller's question
 * (lib/io/safe_output.ts asks it).
 *
 * @example
 * ```ts
 * await buildDirAtomic("out/beauty", async (dir) => {
 *   await Deno.writeTextFile(`${dir}/manifest.json`, "{}");
 * });
 * ```
 */
export async function buildDirAtomic(
  path: string,
  build: (dir: string) => Promise<void>,
): Promise<void> {
  const parent = dirname(path) || ".";
  await withIo(
    parent,
    "cannot create the directory",
    () => Deno.mkdir(parent, { recursive: true }),
  );
  const tmp = tempName(path);
  const forget = removeOnSignal(tmp);
  try {
    // Synchronously, as writeFileAtomic creates its file: never after the clean-up of a signal.
    await withIo(path, "cannot write", () => Promise.resolve(Deno.mkdirSync(tmp)));
    try {
      await build(tmp);
      await replaceWith(tmp, path);
    } catch (error) {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      throw temporaryRenamed(toIoError(error, path, "cannot write"), tmp, path);
    }
  } finally {
    forget();
  }
}
