/**
 * Small file-system questions the commands ask before they write: does a path exist, is a
 * directory empty. Errors other than "not found" (permissions, I/O) are thrown, not swallowed.
 *
 * @module
 */

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
