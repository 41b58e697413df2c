/**
 * `deno task setup-cuda` (`./recsysllm setup-cuda` in the offline bundle): puts onnxruntime's
 * CUDA execution provider libraries (`libonnxruntime_providers_cuda.so` and
 * `libonnxruntime_providers_shared.so`) beside onnxruntime's own library, where onnxruntime looks
 * for them, so that `--device cuda` can load. onnxruntime-node's own install script would
 * download them from GitHub, which fails on machines without internet; the same providers are
 * published on the npm registry inside a Unity package (see {@linkcode PROVIDER_PACKAGES}).
 *
 * Online, the package is fetched with `npm pack` (npm checks its integrity). Offline, fetch it
 * elsewhere (`npm pack com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9`) and pass the `.tgz`
 * with `--from`. The provider must be built for exactly the installed onnxruntime version: the
 * version string is checked inside the library before anything is installed, and recorded in
 * `libonnxruntime_providers_cuda.json` beside it (the runtime names a mismatch). Files are
 * written under temporary names and renamed. Prints one JSON line; then says which CUDA
 * libraries the provider still cannot find, if any.
 *
 *     deno task setup-cuda [--from FILE.tgz] [--dir DIR]
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import {
  CUDA_MANIFEST,
  CUDA_PROVIDER_FILES,
  type CudaManifest,
  cudaProblem,
  ortLibraryDir,
} from "../lib/runtime/providers.ts";

/** npm packages that carry the linux-x64 CUDA provider, by the onnxruntime version they fit. */
export const PROVIDER_PACKAGES: Record<string, string> = {
  "1.29.0": "com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9",
};
/** Where the provider libraries sit inside those packages. */
export const PACKAGE_DIR = "package/Plugins/Linux/x64";

const USAGE = `Usage: deno task setup-cuda [flags]

Puts onnxruntime's CUDA provider libraries beside onnxruntime's library, from the npm registry
(${Object.entries(PROVIDER_PACKAGES).map(([v, p]) => `${p} for onnxruntime ${v}`).join("; ")}).

Flags:
  --from FILE.tgz   the package file, fetched elsewhere with npm pack (for machines offline)
  --dir DIR         where onnxruntime's library is (default: the installed onnxruntime-node's)`;

function fail(message: string, code = 1): never {
  console.error(`setup-cuda: ${message}`);
  Deno.exit(code);
}

async function run(cmd: string, args: string[], cwd?: string): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) fail(`${cmd} not found`);
    throw error;
  }
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").pop() ?? "";
    fail(`${cmd} ${args.join(" ")} failed (exit ${out.code}): ${err}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** The onnxruntime version of the onnxruntime-node whose library is in `dir`. */
export async function ortVersionAt(dir: string): Promise<string> {
  // dir is onnxruntime-node/bin/napi-v6/<os>/<arch>
  const meta = join(dir, "..", "..", "..", "..", "package.json");
  try {
    return JSON.parse(await Deno.readTextFile(meta)).version;
  } catch {
    fail(`${meta}: cannot read onnxruntime-node's version`);
  }
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

if (import.meta.main) {
  let values: { from?: string; dir?: string; help?: boolean };
  try {
    values = parseArgs({
      args: Deno.args,
      options: { from: { type: "string" }, dir: { type: "string" }, help: { type: "boolean" } },
      strict: true,
    }).values;
  } catch (error) {
    fail(`${(error as Error).message.split("\n")[0]} (see --help)`, 2);
  }
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    fail("the CUDA provider on the npm registry is for linux-x64 only");
  }
  const dir = values.dir ?? ortLibraryDir();
  const version = await ortVersionAt(dir);
  const known = PROVIDER_PACKAGES[version];
  if (!known && !values.from) {
    fail(
      `no npm package is known to carry the CUDA provider of onnxruntime ${version} (known: ` +
        `${Object.keys(PROVIDER_PACKAGES).join(", ")}); pass --from a package that does`,
    );
  }

  const work = await Deno.makeTempDir({ prefix: "recsysllm-setup-cuda-" });
  try {
    let tgz = values.from;
    if (!tgz) {
      console.error(`setup-cuda: npm pack ${known} (about 180 MB) ...`);
      const name = (await run("npm", ["pack", known!, "--silent"], work)).trim().split("\n").pop()!;
      tgz = join(work, name);
    }
    const members = CUDA_PROVIDER_FILES.map((f) => `${PACKAGE_DIR}/${f}`);
    await run("tar", ["-xzf", tgz, "-C", work, "package/package.json", ...members]);
    const meta = JSON.parse(await Deno.readTextFile(join(work, "package", "package.json")));
    const source = `${meta.name}@${meta.version}`;
    const manifest: CudaManifest = { onnxruntime: version, package: source, sha256: {} };
    const files: Record<string, Uint8Array> = {};
    for (const file of CUDA_PROVIDER_FILES) {
      files[file] = await Deno.readFile(join(work, PACKAGE_DIR, file));
      manifest.sha256[file] = await sha256(files[file]);
    }
    if (!carriesVersion(files["libonnxruntime_providers_cuda.so"], version)) {
      fail(
        `${basename(tgz)}: its libonnxruntime_providers_cuda.so is not built for onnxruntime ` +
          `${version} (the version string is absent); the provider must match onnxruntime exactly`,
      );
    }
    for (const [file, bytes] of Object.entries(files)) {
      const partial = join(dir, `.${file}.partial`);
      await Deno.writeFile(partial, bytes, { mode: 0o755 });
      await Deno.rename(partial, join(dir, file));
    }
    const partial = join(dir, `.${CUDA_MANIFEST}.partial`);
    await Deno.writeTextFile(partial, JSON.stringify(manifest, null, 2) + "\n");
    await Deno.rename(partial, join(dir, CUDA_MANIFEST));
    const problem = cudaProblem({ dir, version });
    console.log(JSON.stringify({
      setup_cuda: dir,
      onnxruntime: version,
      package: source,
      files: Object.keys(files),
      ready: problem === undefined,
    }));
    console.error(
      problem
        ? `setup-cuda: installed; --device cuda still cannot load: ${problem}`
        : "setup-cuda: installed; every library the CUDA provider needs was found",
    );
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
