/**
 * Stand-in npm package files for the setup-cuda tests (not a test file itself): a tar with
 * `package/package.json` and the files given, and a provider package whose CUDA library is a
 * small ELF object carrying a version string.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runProcess } from "./process.ts";
import { elfSharedObject } from "./elf_writer.ts";

const PROVIDER = "com.github.asus4.onnxruntime.linux-x64-gpu";

/** An npm package file (`package/...` inside a tar) with `files` beside its package.json. */
export async function packageFile(
  dir: string,
  meta: { name: string; version: string },
  files: Record<string, Uint8Array | string>,
): Promise<string> {
  // Staged beside the tar and removed once it is packed (calls on one directory run in turn).
  const root = join(dir, ".package-staging");
  await Deno.mkdir(join(root, "package"), { recursive: true });
  await Deno.writeTextFile(join(root, "package", "package.json"), JSON.stringify(meta));
  for (const [path, data] of Object.entries(files)) {
    await Deno.mkdir(join(root, "package", path, ".."), { recursive: true });
    if (typeof data === "string") await Deno.writeTextFile(join(root, "package", path), data);
    else await Deno.writeFile(join(root, "package", path), data);
  }
  const file = join(dir, `${meta.name}-${meta.version}.tar`);
  const tar = await runProcess(["tar", "cf", file, "-C", root, "package"]);
  assert.ok(tar.code === 0, tar.stderr);
  await Deno.remove(root, { recursive: true });
  return file;
}

/** A stand-in provider package whose CUDA library carries `builtFor` and needs `needs`. */
export function providerPackage(dir: string, builtFor: string, needs: string[]): Promise<string> {
  const cuda = elfSharedObject({ needed: needs });
  const version = new TextEncoder().encode(`\0${builtFor}\0`);
  return packageFile(dir, { name: PROVIDER, version: "0.4.9" }, {
    "Plugins/Linux/x64/libonnxruntime_providers_cuda.so": new Uint8Array([...cuda, ...version]),
    "Plugins/Linux/x64/libonnxruntime_providers_shared.so": elfSharedObject({ needed: [] }),
  });
}
