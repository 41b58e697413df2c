/**
 * Writing files and directories so that nothing is ever left half-written: everything goes to a
 * temporary sibling first and is renamed into place when complete (rename is atomic on one file
 * system). A crash or kill -9 leaves either the old content or the new, plus at worst a stray
 * temporary that the next write of the same path removes.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";

function tempName(path: string): string {
  const tag = `${Deno.pid}-${Date.now().toString(36)}-${
    Math.floor(Math.random() * 1e9).toString(36)
  }`;
  return join(dirname(path), `.${basename(path)}.tmp-${tag}`);
}

/** Writes `data` to `path` atomically (temporary file, fsync, rename). */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = tempName(path);
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
  } finally {
    file.close();
  }
  try {
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
}

/** Synchronous {@linkcode writeFileAtomic}, for small files written from hot paths. */
export function writeFileAtomicSync(path: string, data: Uint8Array | string): void {
  const tmp = tempName(path);
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  Deno.writeFileSync(tmp, bytes);
  try {
    Deno.renameSync(tmp, path);
  } catch (error) {
    try {
      Deno.removeSync(tmp);
    } catch { /* already gone */ }
    throw error;
  }
}

/**
 * Builds a directory atomically: `build` fills a fresh temporary directory next to `path`, which
 * then replaces `path` (an existing directory there is removed only after the new one is complete).
 * If `build` throws, the temporary directory is removed and `path` is untouched.
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
  await Deno.mkdir(dirname(path) || ".", { recursive: true });
  const tmp = tempName(path);
  await Deno.mkdir(tmp);
  try {
    await build(tmp);
  } catch (error) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw error;
  }
  let old: string | undefined;
  try {
    await Deno.lstat(path);
    old = tempName(path) + "-old";
    await Deno.rename(path, old);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await Deno.rename(tmp, path);
  if (old) await Deno.remove(old, { recursive: true });
}
