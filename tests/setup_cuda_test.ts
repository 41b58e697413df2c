/**
 * `deno task setup-cuda --from ... --runtime DIR` with stand-in package files (the real ones are
 * 300 MB): assembles the CUDA runtime only when the provider is built for its onnxruntime
 * version, records what it installed, keeps linux-x64 binaries only, never touches a directory
 * it did not make.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CUDA_MANIFEST } from "../lib/runtime/providers.ts";
import { type ProcessRun, runProcess } from "./helpers/process.ts";
import { packageFile, providerPackage } from "./helpers/package_files.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("../tools/setup_cuda.ts", import.meta.url));
const supported = Deno.build.os === "linux" && Deno.build.arch === "x86_64";
const PROVIDER = "com.github.asus4.onnxruntime.linux-x64-gpu";

async function standIns(dir: string, builtFor: string): Promise<string[]> {
  return [
    await packageFile(dir, { name: "onnxruntime-node", version: "1.29.0" }, {
      "dist/index.js": "module.exports = {};\n",
      "bin/napi-v6/linux/x64/libonnxruntime.so.1": "stand-in",
      "bin/napi-v6/darwin/arm64/libonnxruntime.1.dylib": "not for linux",
      "script/install.js": "not needed",
    }),
    await packageFile(dir, { name: "onnxruntime-common", version: "1.29.0" }, {
      "dist/cjs/index.js": "module.exports = {};\n",
    }),
    await providerPackage(dir, builtFor, ["libcudart.so.13"]),
  ];
}

function setup(files: string[], runtime: string): Promise<ProcessRun> {
  return runProcess([
    ...[Deno.execPath(), "run", "-A", SCRIPT],
    ...files.flatMap((f) => ["--from", f]),
    ...["--runtime", runtime],
  ]);
}

async function tree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const rel = prefix + e.name;
    if (e.isDirectory) out.push(...await tree(join(dir, e.name), rel + "/"));
    else out.push(rel);
  }
  return out.sort();
}

Deno.test({
  name: "setup-cuda assembles the CUDA runtime with the provider beside its library",
  ignore: !supported,
  async fn() {
    await withTempDir(async (dir) => {
      const runtime = join(dir, "cuda", "node_modules");
      const r = await setup(await standIns(dir, "1.29.0"), runtime);
      assert.equal(r.code, 0, r.stderr);
      const report = JSON.parse(r.stdout);
      assert.equal(report.onnxruntime, "1.29.0");
      assert.equal(report.provider, `${PROVIDER}@0.4.9`);
      const lib = "onnxruntime-node/bin/napi-v6/linux/x64";
      assert.deepEqual(await tree(runtime), [
        ".made-by-setup-cuda",
        "onnxruntime-common/dist/cjs/index.js",
        "onnxruntime-common/package.json",
        "onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1",
        `${lib}/${CUDA_MANIFEST}`,
        `${lib}/libonnxruntime_providers_cuda.so`,
        `${lib}/libonnxruntime_providers_shared.so`,
        "onnxruntime-node/dist/index.js",
        "onnxruntime-node/package.json",
      ]);
      const manifest = JSON.parse(await Deno.readTextFile(join(runtime, lib, CUDA_MANIFEST)));
      const bytes = await Deno.readFile(join(runtime, lib, "libonnxruntime_providers_cuda.so"));
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
      const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
      assert.equal(manifest.sha256["libonnxruntime_providers_cuda.so"], hex);
      // A second run replaces the runtime it made, named with a trailing slash as completion
      // writes it; nothing is left beside it.
      const again = await setup(await standIns(dir, "1.29.0"), `${runtime}/`);
      assert.equal(again.code, 0, again.stderr);
      assert.equal((await tree(runtime)).length, 9);
      assert.deepEqual(
        (await tree(join(dir, "cuda"))).filter((p) => !p.startsWith("node_modules/")),
        [],
      );
    });
  },
});

Deno.test({
  name: "setup-cuda refuses a provider built for another onnxruntime, and a directory not its own",
  ignore: !supported,
  async fn() {
    await withTempDir(async (dir) => {
      const runtime = join(dir, "cuda", "node_modules");
      const r = await setup(await standIns(dir, "1.28.0"), runtime);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /^setup-cuda: com\.github\.asus4\.onnxruntime\.linux-x64-gpu-0\.4\.9\.tar: its libonnxruntime_providers_cuda\.so is not built for onnxruntime 1\.29\.0/,
      );
      assert.deepEqual(await tree(dir).then((t) => t.filter((p) => p.startsWith("cuda/"))), []);
      await Deno.mkdir(runtime, { recursive: true });
      await Deno.writeTextFile(join(runtime, "mine.txt"), "the user's");
      const again = await setup(await standIns(dir, "1.29.0"), runtime);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /exists and was not made by setup-cuda/);
      assert.deepEqual(await tree(join(dir, "cuda")), ["node_modules/mine.txt"]);
    });
  },
});
