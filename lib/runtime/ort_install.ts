/**
 * Why onnxruntime-node's native files cannot load, and how to put them back for the way the
 * toolkit was installed: the loader's own message for a library that is there but built for
 * another machine is "No such file or directory", and no single fix fits a checkout (whose
 * `deno install` sees the package installed and restores nothing), the one-file release (which
 * unpacks once, then never again while its folder is complete) and the offline bundle.
 *
 * Not here: loading onnxruntime (`ort.ts`) or why a GPU provider cannot load (`providers.ts`).
 *
 * @example
 * ```ts
 * ortInstallProblem("/app/node_modules/onnxruntime-node");
 * // "libonnxruntime.so.1 is built for aarch64, not this machine's x86_64 (in /app/...)"
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { exists, packageLibraryDir } from "./providers.ts";
import { readElfDynamic } from "./shared_libraries.ts";

/** ELF `e_machine` of the architectures onnxruntime-node ships for Linux. */
const MACHINES: Record<number, string> = { 62: "x86_64", 183: "aarch64" };

/** The native files onnxruntime-node loads on this operating system. */
function nativeFiles(): string[] {
  return Deno.build.os === "linux"
    ? ["onnxruntime_binding.node", "libonnxruntime.so.1"]
    : ["onnxruntime_binding.node"];
}

/**
 * What is wrong with the native files of the onnxruntime-node package directory `pkg` on this
 * machine (missing, damaged, or built for another architecture), or undefined where nothing is.
 */
export function ortInstallProblem(pkg: string): string | undefined {
  const dir = packageLibraryDir(pkg);
  if (!exists(dir)) {
    return `onnxruntime-node has no native library for ${Deno.build.os}-${Deno.build.arch} ` +
      `(${dir} does not exist)`;
  }
  for (const name of nativeFiles()) {
    const path = join(dir, name);
    if (!exists(path)) return `${name} is missing from ${dir}`;
    if (Deno.build.os !== "linux") continue;
    let machine: number;
    try {
      machine = readElfDynamic(path).machine;
    } catch {
      return `${name} in ${dir} is damaged (not a shared library)`;
    }
    const built = MACHINES[machine] ?? `machine ${machine}`;
    if (built !== Deno.build.arch) {
      return `${name} is built for ${built}, not this machine's ${Deno.build.arch} (in ${dir})`;
    }
  }
  return undefined;
}

/**
 * How to install onnxruntime again, for a toolkit whose root (the folder of `main.ts`) is
 * `root`: in the one-file release (a `.complete` beside the root) remove the unpacked folder so
 * the next run unpacks it again; in the offline bundle (`bin/deno` beside it) unpack the archive
 * again; in a checkout remove node_modules and run deno install. `cuda`: the CUDA runtime of
 * setup-cuda, which setup-cuda installs again, wherever the toolkit is.
 */
export function ortRepair(root: string, cuda: boolean): string {
  if (cuda) return "run setup-cuda again";
  const home = join(root, "..");
  if (exists(join(home, ".complete"))) {
    return `remove ${home}: the release unpacks itself again on its next run`;
  }
  if (exists(join(home, "bin", "deno"))) return `unpack the bundle again over ${home}`;
  return `remove ${join(root, "node_modules")} and run deno install in ${root}`;
}
