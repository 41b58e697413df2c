/**
 * `deno task setup-cuda --from FILE --dir DIR` on a stand-in onnxruntime-node layout: installs the
 * provider only when it is built for that onnxruntime version, and records what it installed.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CUDA_MANIFEST } from "../lib/runtime/providers.ts";
import { elfSharedObject } from "./elf_writer.ts";
import { withTempDir } from "./temp_dir.ts";

const SCRIPT = new URL("../tools/setup_cuda.ts", import.meta.url).pathname;
const supported = Deno.build.os === "linux" && Deno.build.arch === "x86_64";

/** onnxruntime-node@`version`'s library directory, and a provider package built for `builtFor`. */
async function layout(dir: string, version: string, builtFor: string) {
  const ortDir = join(dir, "onnxruntime-node", "bin", "napi-v6", "linux", "x64");
  await Deno.mkdir(ortDir, { recursive: true });
  await Deno.writeTextFile(
    join(dir, "onnxruntime-node", "package.json"),
    JSON.stringify({ name: "onnxruntime-node", version }),
  );
  const plugins = join(dir, "pkg", "package", "Plugins", "Linux", "x64");
  await Deno.mkdir(plugins, { recursive: true });
  await Deno.writeTextFile(
    join(dir, "pkg", "package", "package.json"),
    '{"name":"p","version":"2"}',
  );
  const cuda = elfSharedObject({ needed: ["libcudart.so.13"] });
  await Deno.writeFile(
    join(plugins, "libonnxruntime_providers_cuda.so"),
    new Uint8Array([...cuda, ...new TextEncoder().encode(`\0${builtFor}\0`)]),
  );
  await Deno.writeFile(
    join(plugins, "libonnxruntime_providers_shared.so"),
    elfSharedObject({ needed: [] }),
  );
  const tgz = join(dir, "p.tgz");
  const tar = await new Deno.Command("tar", {
    args: ["czf", tgz, "-C", join(dir, "pkg"), "package"],
  })
    .output();
  assert.ok(tar.success);
  return { ortDir, tgz };
}

async function setup(tgz: string, ortDir: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT, "--from", tgz, "--dir", ortDir],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test({
  name: "setup-cuda installs a provider built for this onnxruntime and records it",
  ignore: !supported,
  async fn() {
    await withTempDir(async (dir) => {
      const { ortDir, tgz } = await layout(dir, "1.29.0", "1.29.0");
      const r = await setup(tgz, ortDir);
      assert.equal(r.code, 0, r.stderr);
      const report = JSON.parse(r.stdout);
      assert.equal(report.onnxruntime, "1.29.0");
      assert.equal(report.package, "p@2");
      const manifest = JSON.parse(await Deno.readTextFile(join(ortDir, CUDA_MANIFEST)));
      const bytes = await Deno.readFile(join(ortDir, "libonnxruntime_providers_cuda.so"));
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
      const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
      assert.equal(manifest.sha256["libonnxruntime_providers_cuda.so"], hex);
      assert.equal(manifest.onnxruntime, "1.29.0");
      // No temporary files left beside onnxruntime's library.
      const names = [...Deno.readDirSync(ortDir)].map((e) => e.name).sort();
      assert.deepEqual(names, [
        CUDA_MANIFEST,
        "libonnxruntime_providers_cuda.so",
        "libonnxruntime_providers_shared.so",
      ]);
    });
  },
});

Deno.test({
  name: "setup-cuda refuses a provider built for another onnxruntime version, installing nothing",
  ignore: !supported,
  async fn() {
    await withTempDir(async (dir) => {
      const { ortDir, tgz } = await layout(dir, "1.30.0", "1.29.0");
      const r = await setup(tgz, ortDir);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /^setup-cuda: p\.tgz: its libonnxruntime_providers_cuda\.so is not built for onnxruntime 1\.30\.0/,
      );
      assert.deepEqual([...Deno.readDirSync(ortDir)], []);
    });
  },
});
