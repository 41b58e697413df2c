/**
 * onnxruntime, loaded once per process for the session layer, with its telemetry off
 * (`telemetry_off.ts` runs first). `session.ts` and `tensor.ts` get it from here, never directly.
 *
 * Two runtimes can be installed, and a process loads exactly one (both carry a
 * `libonnxruntime.so.1`, and the dynamic loader would hand the second the first's):
 *
 * - onnxruntime-node of `deno.json` (1.30.0), for the CPU and WebGPU;
 * - the CUDA runtime that `deno task setup-cuda` installs in `.cuda-runtime/` at the project root
 *   (onnxruntime-node 1.29.0 with the CUDA provider of the same version beside its library: the
 *   only CUDA provider on the npm registry is 1.29.0's, and it must match the core exactly), or
 *   the onnxruntime-node package directory that `RECSYSLLM_CUDA_RUNTIME` names.
 *
 * The first session of the process decides: `cuda` and `auto` load the CUDA runtime where one is
 * installed, every other device (and every device where none is) the default one. The default
 * stays 1.30.0 because 1.29.0 measured slower on the CPU (docs/devices.md).
 *
 * @module
 */

import "./telemetry_off.ts";
import { createRequire } from "node:module";
import type * as OrtModule from "onnxruntime-node";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { cudaRuntimePackage } from "./providers.ts";
import { ortInstallProblem, ortRepair } from "./ort_install.ts";
import { InputError } from "../errors.ts";

/** The onnxruntime-node module. */
export type Ort = typeof OrtModule;

let loaded: { ort: Ort; cuda: boolean } | undefined;

/**
 * onnxruntime for a process whose first session asks for `device`: loaded on the first call,
 * the same module on every later call.
 */
export async function loadOrt(device: string): Promise<Ort> {
  if (loaded) return loaded.ort;
  const cuda = device === "cuda" || device === "auto" ? cudaRuntimePackage() : undefined;
  let ort: Ort;
  try {
    ort = cuda
      ? createRequire(import.meta.url)(cuda) as Ort
      : await import("onnxruntime-node") as Ort;
  } catch (error) {
    // A broken install (a library deleted or for another machine, an archive half unpacked),
    // not a bug: one line, naming what is wrong where the loader's own words do not.
    const reason = String((error as Error)?.message ?? error).split("\n")[0];
    const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
    let problem: string | undefined;
    try {
      problem = ortInstallProblem(cuda ?? defaultPackage());
    } catch { /* no package to look into: the loader's words alone */ }
    throw new InputError(
      `onnxruntime could not be loaded${cuda ? ` from ${cuda}` : ""}: ${problem ?? reason} ` +
        `(install it again: ${ortRepair(root, cuda !== undefined)})`,
    );
  }
  loaded = { ort, cuda: cuda !== undefined };
  return ort;
}

/** The default onnxruntime-node package directory (onnxruntime-node/dist/index.js's parent's). */
function defaultPackage(): string {
  return dirname(dirname(fileURLToPath(import.meta.resolve("onnxruntime-node"))));
}

/** The loaded onnxruntime (after {@linkcode loadOrt}); throws before. */
export function loadedOrt(): Ort {
  if (!loaded) throw new Error("onnxruntime is not loaded yet (no session was created)");
  return loaded.ort;
}

/** Whether this process runs the CUDA runtime of setup-cuda (undefined: nothing loaded yet). */
export function usesCudaRuntime(): boolean | undefined {
  return loaded?.cuda;
}

/** The loaded onnxruntime's version (`1.30.0`), or undefined before the first session. */
export function runtimeVersion(): string | undefined {
  return loaded?.ort.env.versions.node;
}
