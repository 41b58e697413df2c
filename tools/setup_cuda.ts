/**
 * `deno task setup-cuda` (`./recsysllm setup-cuda` in the offline bundle): installs the CUDA
 * runtime that `--device cuda` (and `auto`) loads, in `.cuda-runtime/node_modules/` at the project
 * root (`lib/runtime/ort.ts` says how a process picks it):
 *
 * - onnxruntime-node 1.29.0 and onnxruntime-common 1.29.0 (linux-x64 binaries only), because the
 *   only CUDA execution provider on the npm registry is 1.29.0's and a provider must match its
 *   onnxruntime exactly; the default onnxruntime-node (1.30.0) stays for the CPU and WebGPU,
 *   being faster on the CPU (docs/devices.md);
 * - `libonnxruntime_providers_cuda.so` and `libonnxruntime_providers_shared.so` beside that
 *   runtime's library, where onnxruntime looks for them, from the Unity package
 *   `com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9` (onnxruntime-node's own install script
 *   downloads them from GitHub, which fails on machines without internet).
 *
 * Online the three packages are fetched with `npm pack` (npm checks their integrity). Offline,
 * fetch them elsewhere (`npm pack onnxruntime-node@1.29.0 onnxruntime-common@1.29.0
 * com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9`) and pass each with `--from`. The provider's
 * version string is checked inside the library before anything is installed, and recorded with
 * the files' SHA-256 in `libonnxruntime_providers_cuda.json`. The runtime is assembled under a
 * temporary name and renamed into place; a runtime an earlier setup-cuda made is replaced, a
 * directory it did not make is never touched. Prints one JSON line, then which CUDA libraries
 * the provider still cannot find, if any.
 *
 *     deno task setup-cuda [--from FILE.tgz]... [--runtime DIR]
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { basename, dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  CUDA_MANIFEST,
  CUDA_PROVIDER_FILES,
  type CudaManifest,
  cudaProblem,
  defaultCudaRuntimePackage,
  packageLibraryDir,
} from "../lib/runtime/providers.ts";

/** The onnxruntime version of the CUDA runtime, and the npm packages that make it up. */
export const CUDA_RUNTIME = {
  onnxruntime: "1.29.0",
  packages: {
    "onnxruntime-node": "1.29.0",
    "onnxruntime-common": "1.29.0",
    "com.github.asus4.onnxruntime.linux-x64-gpu": "0.4.9",
  } as Record<string, string>,
  provider: "com.github.asus4.onnxruntime.linux-x64-gpu",
};
/** Where the provider libraries sit inside the provider package. */
export const PACKAGE_DIR = "package/Plugins/Linux/x64";
/** The file that marks a runtime directory as made by setup-cuda (so it may be replaced). */
const MARKER = ".made-by-setup-cuda";

const USAGE =
  `Usage: deno task setup-cuda [flags]     (the one-file release: recsysllm setup-cuda [flags])

Installs the CUDA runtime of --device cuda: onnxruntime-node 1.29.0 with the CUDA provider of
the same version beside its library, from the npm registry (${
    Object.entries(CUDA_RUNTIME.packages).map(([n, v]) => `${n}@${v}`).join(", ")
  }).

Flags:
  --from FILE.tgz   one of those packages as a file (npm pack elsewhere, for machines offline);
                    may be given once per package; the others are fetched with npm pack
  --runtime DIR     where to install (default: .cuda-runtime/node_modules at the project root;
                    elsewhere, set RECSYSLLM_CUDA_RUNTIME=DIR/onnxruntime-node when running)`;

/** A one-line failure: printed by the entry point, after the temporary files are removed. */
class Failure extends Error {
  constructor(message: string, readonly code = 1) {
    super(message);
  }
}

function fail(message: string, code = 1): never {
  throw new Failure(message, code);
}

async function run(cmd: string, args: string[], cwd?: string): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      fail(`${cmd} not found${cmd === "npm" ? ": offline, pass every package with --from" : ""}`);
    }
    throw error;
  }
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").pop() ?? "";
    fail(`${cmd} ${args.join(" ")} failed (exit ${out.code}): ${err}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Whether the library's bytes contain `version` as a NUL-terminated string of its own. */
export function carriesVersion(bytes: Uint8Array, version: string): boolean {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .indexOf(`\0${version}\0`, 0, "latin1") >= 0;
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** The name and version in a package file's package.json. */
async function packageOf(file: string, work: string): Promise<{ name: string; version: string }> {
  const dir = await Deno.makeTempDir({ dir: work });
  await run("tar", ["-xf", file, "-C", dir, "package/package.json"]);
  const meta = JSON.parse(await Deno.readTextFile(join(dir, "package", "package.json")));
  return { name: meta.name, version: meta.version };
}

/** Unpacks `file` (an npm package) into `to`, only `members` of it (all when empty). */
async function unpack(file: string, to: string, members: string[] = []): Promise<void> {
  const dir = await Deno.makeTempDir({ dir: dirname(to) });
  await run("tar", ["-xf", file, "-C", dir, ...members]);
  await Deno.rename(join(dir, "package"), to);
  await Deno.remove(dir, { recursive: true });
}

/** Parses the flags; an unknown or malformed one is a usage error (exit 2). */
function parseSetupArgs(args: string[]): { from?: string[]; runtime?: string; help?: boolean } {
  try {
    return parseArgs({
      args,
      options: {
        from: { type: "string", multiple: true },
        runtime: { type: "string" },
        help: { type: "boolean" },
      },
      strict: true,
    }).values;
  } catch (error) {
    fail(`${(error as Error).message.split("\n")[0]} (see --help)`, 2);
  }
}

/**
 * Stage 1: a file for each package of {@linkcode CUDA_RUNTIME}, by name: those given with
 * --from (checked to be one of them, at the version needed), the rest fetched into `work` with
 * `npm pack`.
 */
async function packageFiles(from: string[], work: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const file of from) {
    const { name, version } = await packageOf(file, work);
    if (CUDA_RUNTIME.packages[name] === undefined) {
      fail(
        `${file}: package ${name} is not one of ${Object.keys(CUDA_RUNTIME.packages).join(", ")}`,
      );
    }
    if (name !== CUDA_RUNTIME.provider && version !== CUDA_RUNTIME.packages[name]) {
      fail(`${file}: ${name}@${version}, the CUDA runtime needs ${CUDA_RUNTIME.packages[name]}`);
    }
    files.set(name, file);
  }
  for (const [name, version] of Object.entries(CUDA_RUNTIME.packages)) {
    if (files.has(name)) continue;
    console.error(`setup-cuda: npm pack ${name}@${version} ...`);
    const out = (await run("npm", ["pack", `${name}@${version}`, "--silent"], work)).trim();
    files.set(name, join(work, out.split("\n").pop()!));
  }
  return files;
}

/**
 * Stage 2a: onnxruntime-node (its linux-x64 binaries only) and onnxruntime-common unpacked into
 * `stage`. Returns the native library's folder and the onnxruntime version.
 */
async function unpackRuntime(
  stage: string,
  files: Map<string, string>,
): Promise<{ libDir: string; version: string }> {
  await Deno.mkdir(stage, { recursive: true });
  const node = join(stage, "onnxruntime-node");
  await unpack(files.get("onnxruntime-node")!, node, [
    "package/package.json",
    "package/dist",
    "package/bin/napi-v6/linux/x64",
  ]);
  await unpack(files.get("onnxruntime-common")!, join(stage, "onnxruntime-common"));
  const libDir = packageLibraryDir(node);
  const version = JSON.parse(await Deno.readTextFile(join(node, "package.json"))).version;
  return { libDir, version };
}

/**
 * Stage 2b: the provider libraries from the provider package into `libDir`, the CUDA one checked
 * to carry onnxruntime's `version`, and the manifest of their SHA-256 beside them.
 */
async function installProvider(
  files: Map<string, string>,
  work: string,
  libDir: string,
  version: string,
): Promise<CudaManifest> {
  const providerDir = join(work, "provider");
  await Deno.mkdir(providerDir);
  const provider = files.get(CUDA_RUNTIME.provider)!;
  const members = CUDA_PROVIDER_FILES.map((f) => `${PACKAGE_DIR}/${f}`);
  await run("tar", ["-xf", provider, "-C", providerDir, "package/package.json", ...members]);
  const meta = JSON.parse(await Deno.readTextFile(join(providerDir, "package", "package.json")));
  const manifest: CudaManifest = {
    onnxruntime: version,
    package: `${meta.name}@${meta.version}`,
    sha256: {},
  };
  for (const file of CUDA_PROVIDER_FILES) {
    const bytes = await Deno.readFile(join(providerDir, PACKAGE_DIR, file));
    if (file === "libonnxruntime_providers_cuda.so" && !carriesVersion(bytes, version)) {
      fail(
        `${basename(provider)}: its ${file} is not built for onnxruntime ${version} (the ` +
          "version string is absent); the provider must match onnxruntime exactly",
      );
    }
    manifest.sha256[file] = await sha256(bytes);
    await Deno.writeFile(join(libDir, file), bytes, { mode: 0o755 });
  }
  await Deno.writeTextFile(join(libDir, CUDA_MANIFEST), JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}

/**
 * Stage 3: the assembled `stage` renamed to `runtime`; a runtime there is replaced only when an
 * earlier setup-cuda made it (its marker file), anything else there is an error.
 */
async function replaceRuntime(stage: string, runtime: string): Promise<void> {
  if (await exists(runtime)) {
    if (!(await exists(join(runtime, MARKER)))) {
      fail(`${runtime} exists and was not made by setup-cuda; choose another --runtime`);
    }
    const old = `${runtime}.old-${Date.now()}`;
    await Deno.rename(runtime, old);
    await Deno.rename(stage, runtime);
    await Deno.remove(old, { recursive: true });
  } else {
    await Deno.rename(stage, runtime);
  }
}

/** Stage 4: the JSON line on stdout, then whether the provider finds every CUDA library. */
function report(runtime: string, version: string, manifest: CudaManifest): void {
  const installedLib = packageLibraryDir(join(runtime, "onnxruntime-node"));
  const problem = cudaProblem({ dir: installedLib, version });
  console.log(JSON.stringify({
    setup_cuda: runtime,
    onnxruntime: version,
    provider: manifest.package,
    library_dir: installedLib,
    ready: problem === undefined,
  }));
  console.error(
    problem
      ? `setup-cuda: installed; --device cuda still cannot load: ${problem}`
      : "setup-cuda: installed; every library the CUDA provider needs was found",
  );
}

/**
 * Fetches the packages, assembles the runtime beside its final place and renames it in; the
 * temporary folders are removed whatever happens.
 */
async function main(): Promise<void> {
  const values = parseSetupArgs(Deno.args);
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    fail("the CUDA provider on the npm registry is for linux-x64 only");
  }
  // Resolved: `DIR/` (as completion writes it) would put the staging copy inside DIR.
  const runtime = resolve(values.runtime ?? dirname(defaultCudaRuntimePackage()));
  const work = await Deno.makeTempDir({ prefix: "recsysllm-setup-cuda-" });
  const stage = `${runtime}.partial-${Date.now()}`;
  try {
    const files = await packageFiles(values.from ?? [], work);
    const { libDir, version } = await unpackRuntime(stage, files);
    const manifest = await installProvider(files, work, libDir, version);
    await Deno.writeTextFile(join(stage, MARKER), "made by setup-cuda; replaced by its next run\n");
    await replaceRuntime(stage, runtime);
    report(runtime, version, manifest);
  } finally {
    await Deno.remove(work, { recursive: true });
    if (await exists(stage)) await Deno.remove(stage, { recursive: true });
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    if (!(error instanceof Failure)) throw error;
    console.error(`setup-cuda: ${error.message}`);
    Deno.exit(error.code);
  }
}
