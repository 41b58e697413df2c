/**
 * The offline bundle (tools/bundle.ts), built uncompressed (xz takes a minute; the compressed
 * size is what `deno task bundle` reports) and unpacked into a fresh directory, run with an empty
 * DENO_DIR, another HOME, a bare environment and, where `unshare -n` works (as root), no network
 * at all. Also setup-cuda inside the bundle, from a package file made here.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type ProcessRun, runProcess } from "./helpers/process.ts";
import { providerPackage } from "./helpers/package_files.ts";
import { withTempDir } from "./helpers/temp.ts";
import { findLibrary } from "../lib/runtime/shared_libraries.ts";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const denoConfig = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
const NAME = `recsysllm-${denoConfig.version}-linux-x64`;
const supported = Deno.build.os === "linux" && Deno.build.arch === "x86_64";

function run(cmd: string, args: string[], env?: Record<string, string>): Promise<ProcessRun> {
  return runProcess([cmd, ...args], { env, clearEnv: env !== undefined });
}

/** Whether this process may take away its own network (`unshare -n`, root only). */
async function canUnshare(): Promise<boolean> {
  try {
    return (await run("unshare", ["-n", "true"])).code === 0;
  } catch {
    return false;
  }
}

Deno.test({
  name: "the bundle runs from a fresh directory with no network, no Deno cache, no deno on PATH",
  ignore: !supported,
  async fn() {
    await withTempDir(async (dir) => {
      const archive = join(dir, "bundle.tar");
      const built = await run(Deno.execPath(), [
        "run",
        "-A",
        join(ROOT, "tools/bundle.ts"),
        "--compression",
        "none",
        "--out",
        archive,
      ]);
      assert.equal(built.code, 0, built.stderr);
      const report = JSON.parse(built.stdout.trim().split("\n").pop()!);
      assert.equal(report.bytes, (await Deno.stat(archive)).size);
      assert.equal(
        report.packages["onnxruntime-node"],
        denoConfig.imports["onnxruntime-node"].split("@").pop(),
      );

      const listing = (await run("tar", ["tf", archive])).stdout.split("\n");
      const binaries = listing.filter((p) => /\.(node|so[.\d]*|dylib|dll)$/.test(p));
      assert.deepEqual(binaries.map((p) => p.replace(/^.*\/bin\/napi-v6\//, "")).sort(), [
        "linux/x64/libonnxruntime.so.1",
        "linux/x64/onnxruntime_binding.node",
      ]);
      assert.ok(listing.includes(`${NAME}/app/fixtures/demo/interactions.csv`));
      // One modification time for every entry: two builds of a tree are the same bytes.
      const times = new Set(
        (await run("tar", ["tvf", archive, "--full-time"], { TZ: "UTC" })).stdout.trim().split("\n")
          .map((line) => line.split(/\s+/).slice(3, 5).join(" ")),
      );
      assert.deepEqual([...times], ["2026-01-01 00:00:00"]);
      assert.ok(!listing.some((p) => p.includes("node_modules/.deno")));

      // A fresh place: only the archive, an empty DENO_DIR, a HOME without a cache.
      const fresh = join(dir, "fresh");
      await Deno.mkdir(fresh);
      assert.equal((await run("tar", ["xf", archive, "-C", fresh])).code, 0);
      await Deno.remove(archive);
      const home = join(dir, "home");
      const denoDir = join(dir, "deno-dir");
      await Deno.mkdir(home);
      await Deno.mkdir(denoDir);
      const env = { HOME: home, DENO_DIR: denoDir, PATH: "/usr/bin:/bin", NO_COLOR: "1" };
      const offline = await canUnshare();
      const launcher = join(fresh, NAME, "recsysllm");
      const recsysllm = (...args: string[]) =>
        offline ? run("unshare", ["-n", launcher, ...args], env) : run(launcher, args, env);

      const version = await recsysllm("--version");
      assert.equal(version.code, 0, version.stderr);
      assert.equal(version.stdout.trim(), `recsysllm ${denoConfig.version}`);

      const out = join(dir, "demo");
      const demo = await recsysllm("demo", "--steps", "2", "--limit", "2", "--out", out);
      assert.equal(demo.code, 0, demo.stderr);
      assert.match(demo.stdout, /\| method \| HR@1 /);
      const evaluation = JSON.parse(await Deno.readTextFile(join(out, "eval.json")));
      assert.ok(evaluation, "eval.json");

      // setup-cuda in the bundle, offline, from package files: the bundle's own onnxruntime
      // relabeled as the CUDA runtime's version (the real 1.29.0 packages and provider are 300
      // MB), and a stand-in provider that needs CUDA's libraries. A process asking for cuda then
      // loads that runtime, and names the CUDA libraries this machine lacks.
      const cudaVersion = "1.29.0";
      const relabeled = async (name: string) => {
        const root = join(dir, `pkg-${name}`);
        await Deno.mkdir(root);
        await run("cp", [
          "-r",
          join(fresh, NAME, "app", "node_modules", name),
          join(root, "package"),
        ]);
        const meta = JSON.parse(await Deno.readTextFile(join(root, "package", "package.json")));
        meta.version = cudaVersion;
        await Deno.writeTextFile(join(root, "package", "package.json"), JSON.stringify(meta));
        for (const version of [join(root, "package/dist/version.js")]) {
          if (name !== "onnxruntime-node") continue;
          const text = await Deno.readTextFile(version);
          await Deno.writeTextFile(version, text.replace(/'\d+\.\d+\.\d+'/, `'${cudaVersion}'`));
        }
        const file = join(dir, `${name}.tar`);
        assert.equal((await run("tar", ["cf", file, "-C", root, "package"])).code, 0);
        return file;
      };
      const needs = ["libcublas.so.13", "libcudart.so.13", "libcuda.so.1"];
      const providerFile = await providerPackage(dir, cudaVersion, needs);
      const from = [await relabeled("onnxruntime-node"), await relabeled("onnxruntime-common")];
      const setup = await recsysllm(
        "setup-cuda",
        ...[...from, providerFile].flatMap((f) => ["--from", f]),
      );
      assert.equal(setup.code, 0, setup.stderr);
      const installed = JSON.parse(setup.stdout.trim());
      assert.equal(installed.onnxruntime, cudaVersion);
      assert.equal(installed.setup_cuda, join(fresh, NAME, "app", ".cuda-runtime", "node_modules"));

      // The demo's dataset and model, trained on a device whose provider cannot load.
      const cuda = await recsysllm(
        "pretrain",
        "--data",
        join(out, "data"),
        "--model",
        join(out, "model"),
        "--out",
        join(dir, "run-cuda"),
        "--full",
        "--steps",
        "1",
        "--device",
        "cuda",
      );
      assert.equal(cuda.code, 1, cuda.stderr);
      const line = cuda.stderr.split("\n").find((l) => l.includes("device cuda cannot be used"));
      assert.ok(line, cuda.stderr);
      const missing = needs.filter((n) => !findLibrary(n, { rpath: [], runpath: [] }, "/"));
      if (missing.length > 0) {
        assert.ok(line.includes(`${missing.join(", ")} not found (needed by`), line);
      } else {
        assert.match(line, /were all found/); // a CUDA machine: our stand-in provider is no library
      }
    });
  },
});

Deno.test({
  name: "bundle --deno refuses a path that is not a deno binary before staging anything",
  ignore: !supported,
  async fn() {
    await withTempDir(async (dir) => {
      const text = join(dir, "notes.txt");
      await Deno.writeTextFile(text, "not a program\n");
      const cases: [string, RegExp][] = [
        [join(dir, "absent"), /--deno .*absent: cannot read it/],
        [text, /--deno .*notes\.txt: not a linux executable \(no ELF header\)/],
      ];
      for (const [deno, message] of cases) {
        const out = join(dir, "bundle.tar");
        const built = await run(Deno.execPath(), [
          ...["run", "-A", join(ROOT, "tools/bundle.ts"), "--compression", "none"],
          ...["--deno", deno, "--out", out],
        ]);
        assert.equal(built.code, 1, built.stderr);
        assert.match(built.stderr, message);
        assert.doesNotMatch(built.stderr, /\n\s+at /, "a stack trace");
        await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
      }
    });
  },
});

Deno.test({
  name: "the bundle built from another directory installs nothing there and writes --out there",
  ignore: !supported,
  async fn() {
    await withTempDir(async (dir) => {
      // Another project's directory: `deno install` run there would install its packages.
      await Deno.writeTextFile(
        join(dir, "package.json"),
        JSON.stringify({ dependencies: { semver: "7.8.6" } }),
      );
      const built = await runProcess([
        ...[Deno.execPath(), "run", "-A", join(ROOT, "tools/bundle.ts")],
        ...["--compression", "none", "--out", "bundle.tar"],
      ], { cwd: dir });
      assert.equal(built.code, 0, built.stderr);
      assert.equal(
        JSON.parse(built.stdout.trim()).bytes,
        (await Deno.stat(join(dir, "bundle.tar"))).size,
      );
      const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
      assert.deepEqual(names, ["bundle.tar", "package.json"]);
    });
  },
});
