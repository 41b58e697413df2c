/**
 * Small file-system questions the commands ask before they write: does a path exist, is a
 * directory empty. Errors other than "not found" (permissions, I/O) are thrown, not swallowed.
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { inputError } from "../errors.ts";

/** Whether `path` exists (a file, directory or link). */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Whether `path` is missing or an empty directory (so writing there loses nothing). */
export async function isMissingOrEmptyDir(path: string): Promise<boolean> {
  try {
    for await (const _ of Deno.readDir(path)) return false;
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return true;
    throw error;
  }
}

/**
 * The JSON value in the file `path`. A missing file, an unreadable one and malformed JSON are
 * one-line InputErrors naming the path; `notFound` words the first (default "file not found").
 *
 * @example
 * ```ts
 * const config = await readJsonFile("model/config.json");
 * ```
 */
export async function readJsonFile(path: string, notFound = "file not found"): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw inputError(path, undefined, notFound);
    throw inputError(path, undefined, `cannot read: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw inputError(path, undefined, `not valid JSON (${(error as Error).message})`);
  }
}

/**
 * Flushes `file` to disk when it is a regular file; a device or pipe (`--out /dev/null`, a
 * process substitution) has nothing to sync, and `fsync` on it fails with EINVAL.
 */
export async function syncFile(file: Deno.FsFile): Promise<void> {
  if ((await file.stat()).isFile) await file.sync();
}

/** The directories of `dir` and above that do not exist, deepest first. */
export async function missingDirs(dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (let at = resolve(dir); !(await pathExists(at)); at = dirname(at)) missing.push(at);
  return missing;
}

/**
 * Removes the directories `created` (deepest first) that are empty: a run that failed leaves
 * nothing of its own behind, and never removes what another wrote there meanwhile.
 */
export async function removeCreated(created: readonly string[]): Promise<void> {
  for (const dir of created) {
    try {
      await Deno.remove(dir);
    } catch {
      return; // not empty (another run's files), or gone
    }
  }
}

/** {@linkcode removeCreated}, synchronously: for the clean-up of an interrupt. */
export function removeCreatedSync(created: readonly string[]): void {
  for (const dir of created) {
    try {
      Deno.removeSync(dir);
    } catch {
      return; // not empty, or gone
    }
  }
}
