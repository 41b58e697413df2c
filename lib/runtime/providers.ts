/**
 * Why a GPU execution provider cannot load, in one sentence that names what is missing. CUDA:
 * onnxruntime loads `libonnxruntime_providers_shared.so` and `libonnxruntime_providers_cuda.so`
 * from the directory of its own library (`deno task setup-cuda` puts them there), built for
 * exactly its own version (recorded by setup-cuda in {@linkcode CUDA_MANIFEST}), and the CUDA
 * provider needs CUDA's libraries and the driver's `libcuda.so.1`. WebGPU on Linux needs the
 * Vulkan loader `libvulkan.so.1`.
 *
 * @example
 * ```ts
 * cudaProblem({ dir: ortLibraryDir(), version: "1.29.0" });
 * // "libcublasLt.so.13, libcublas.so.13 not found (needed by libonnxruntime_providers_cuda.so; ...)"
 * ```
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { findLibrary, missingLibraries, type SearchPath } from "./shared_libraries.ts";

/** The provider libraries the CUDA execution provider needs beside onnxruntime's library. */
export const CUDA_PROVIDER_FILES = [
  "libonnxruntime_providers_shared.so",
  "libonnxruntime_providers_cuda.so",
] as const;

/** The file setup-cuda writes beside the provider libraries: their version and origin. */
export const CUDA_MANIFEST = "libonnxruntime_providers_cuda.json";

/** What {@linkcode CUDA_MANIFEST} holds. */
export interface CudaManifest {
  /** The onnxruntime version the providers were built for. */
  onnxruntime: string;
  /** The npm package (name@version) they came from. */
  package: string;
  /** SHA-256 of each provider file, hex. */
  sha256: Record<string, string>;
}

/** Where setup-cuda installs the CUDA runtime, under the project root (the bundle's `app/`). */
export const CUDA_RUNTIME_DIR = ".cuda-runtime";

/** The directory of onnxruntime's native library inside an onnxruntime-node package directory. */
export function packageLibraryDir(pkg: string): string {
  const os = Deno.build.os === "windows" ? "win32" : Deno.build.os;
  const arch = Deno.build.arch === "x86_64" ? "x64" : "arm64";
  return join(pkg, "bin", "napi-v6", os, arch);
}

/** The directory of onnxruntime's native library inside the default onnxruntime-node. */
export function ortLibraryDir(): string {
  // onnxruntime-node/dist/index.js -> onnxruntime-node
  return packageLibraryDir(
    dirname(dirname(fileURLToPath(import.meta.resolve("onnxruntime-node")))),
  );
}

/** The onnxruntime-node package directory where setup-cuda puts the CUDA runtime. */
export function defaultCudaRuntimePackage(): string {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  return join(root, CUDA_RUNTIME_DIR, "node_modules", "onnxruntime-node");
}

/**
 * The CUDA runtime's onnxruntime-node package directory where one is installed:
 * `RECSYSLLM_CUDA_RUNTIME` when set, else {@linkcode defaultCudaRuntimePackage}.
 */
export function cudaRuntimePackage(): string | undefined {
  let pkg: string | undefined;
  try {
    pkg = Deno.env.get("RECSYSLLM_CUDA_RUNTIME");
  } catch { /* no env permission */ }
  pkg ||= defaultCudaRuntimePackage();
  return exists(join(pkg, "package.json")) ? pkg : undefined;
}

/** Whether `path` exists (synchronously; false where it cannot be looked at). */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function readManifest(dir: string): CudaManifest | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(join(dir, CUDA_MANIFEST))) as CudaManifest;
  } catch {
    return undefined;
  }
}

const SEARCHED = "searched LD_LIBRARY_PATH, /etc/ld.so.cache and the system library directories";

/** Where onnxruntime's library is and which version it is. */
export interface OrtLocation {
  /** The directory holding `libonnxruntime.so.1`. */
  dir: string;
  /** onnxruntime's version (`ort.env.versions.node`). */
  version: string;
}

/**
 * Why the CUDA provider would not load beside onnxruntime at `where`, or undefined when every
 * file and library it needs is found (then onnxruntime's own log has the reason).
 */
export function cudaProblem(where: OrtLocation, search: SearchPath = {}): string | undefined {
  if (Deno.build.os !== "linux") return undefined;
  const absent = CUDA_PROVIDER_FILES.filter((f) => !exists(join(where.dir, f)));
  if (absent.length > 0) {
    return `${
      absent.join(" and ")
    } not found beside onnxruntime ${where.version} (${where.dir}): ` +
      "run `deno task setup-cuda` (`./recsysllm setup-cuda` in the bundle)";
  }
  const manifest = readManifest(where.dir);
  if (manifest && manifest.onnxruntime !== where.version) {
    return `the CUDA provider in ${where.dir} is for onnxruntime ${manifest.onnxruntime}, ` +
      `this onnxruntime is ${where.version}: run \`deno task setup-cuda\` again`;
  }
  const provider = join(where.dir, "libonnxruntime_providers_cuda.so");
  // The provider is loaded into a process that already has onnxruntime's own library.
  const missing = missingLibraries(provider, { loaded: ["libonnxruntime.so.1"], ...search });
  if (missing.length === 0) return undefined;
  const by = [...new Set(missing.map((m) => m.neededBy))].join(", ");
  const driver = missing.some((m) => m.name === "libcuda.so.1") ? " and the NVIDIA driver" : "";
  return `${missing.map((m) => m.name).join(", ")} not found (needed by ${by}; ${SEARCHED}): ` +
    `install CUDA 13 (cudart, cuBLAS, cuRAND)${driver}, or add the directory that holds them ` +
    "to LD_LIBRARY_PATH (pip's nvidia-*-cu13 wheels keep them in site-packages/nvidia/*/lib)";
}

/** Why WebGPU would not load on this Linux machine (no Vulkan loader), or undefined. */
export function webgpuProblem(search: SearchPath = {}): string | undefined {
  if (Deno.build.os !== "linux") return undefined;
  if (findLibrary("libvulkan.so.1", { rpath: [], runpath: [] }, "/", search)) return undefined;
  return `libvulkan.so.1 not found (${SEARCHED}): install the Vulkan loader ` +
    "(Debian: libvulkan1) and a GPU driver with Vulkan support";
}

/**
 * Why `auto` should not try WebGPU on this Linux machine: no GPU device node (`/dev/dri/renderD*`,
 * `/dev/nvidia*`) under `dev`, so Vulkan could only be a software driver (Mesa's lavapipe), where
 * Dawn prints its complaints (XDG_RUNTIME_DIR, shader limits) on stderr before the CPU runs
 * anyway. Undefined when a GPU node exists (or off Linux). `--device webgpu` still tries.
 */
export function gpuDeviceProblem(dev = "/dev"): string | undefined {
  if (Deno.build.os !== "linux") return undefined;
  const names = (dir: string) => {
    try {
      return [...Deno.readDirSync(dir)].map((e) => e.name);
    } catch {
      return [];
    }
  };
  if (names(join(dev, "dri")).some((n) => n.startsWith("renderD"))) return undefined;
  if (names(dev).some((n) => /^nvidia\d+$/.test(n))) return undefined;
  return `no GPU device (${join(dev, "dri", "renderD*")}, ${join(dev, "nvidia*")}): ` +
    "WebGPU would only find a software driver";
}
