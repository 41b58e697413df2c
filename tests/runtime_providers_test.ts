import assert from "node:assert/strict";
import { join } from "node:path";
import {
  findLibrary,
  missingLibraries,
  readElfDynamic,
  type SearchPath,
} from "../lib/runtime/shared_libraries.ts";
import {
  CUDA_MANIFEST,
  cudaProblem,
  gpuDeviceProblem,
  webgpuProblem,
} from "../lib/runtime/providers.ts";
import { ortInstallProblem, ortRepair } from "../lib/runtime/ort_install.ts";
import { runProcess } from "./helpers/process.ts";
import { elfSharedObject, type ElfSpec } from "./helpers/elf_writer.ts";
import { withTempDir } from "./helpers/temp.ts";

/** Nothing but `dirs` is searched (the machine's own libraries play no part). */
const only = (...dirs: string[]): SearchPath => ({
  ldLibraryPath: dirs,
  cache: [],
  defaultDirs: [],
});

async function writeElf(path: string, spec: ElfSpec): Promise<void> {
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await Deno.writeFile(path, elfSharedObject(spec));
}

Deno.test("the ELF reader lists what readelf lists for the system's own libraries", async () => {
  const libs = ["libstdc++.so.6", "libm.so.6"].map((n) =>
    findLibrary(n, { rpath: [], runpath: [] }, "/")
  ).filter((p) => p !== undefined);
  assert.ok(libs.length > 0, "no libstdc++.so.6 or libm.so.6 on this machine");
  for (const path of libs) {
    const ours = readElfDynamic(path);
    assert.ok(ours.needed.includes("libc.so.6"), `${path}: ${ours.needed}`);
    let text: string;
    try {
      text = (await runProcess(["readelf", "-d", path])).stdout;
    } catch {
      continue; // no binutils: the libc.so.6 check above still ran
    }
    const theirs = [...text.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) =>
      m[1]
    );
    assert.deepEqual(ours.needed, theirs, path);
    assert.equal(ours.soname, text.match(/\(SONAME\)\s+Library soname: \[([^\]]+)\]/)?.[1]);
  }
});

Deno.test("the ELF reader rejects what is not a 64-bit ELF object, naming the file", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "libnot.so");
    await Deno.writeTextFile(path, "INPUT(-lc)\n"); // a linker script, as libc.so is
    assert.throws(() => readElfDynamic(path), new RegExp(`${path}: not an ELF file`));
  });
});

Deno.test("missing libraries are found through RUNPATH $ORIGIN and followed transitively", async () => {
  await withTempDir(async (dir) => {
    const top = join(dir, "libtop.so");
    await writeElf(top, {
      needed: ["libnear.so.1", "libabsent.so.13", "libloaded.so.1"],
      runpath: "$ORIGIN/sub",
    });
    await writeElf(join(dir, "sub", "libnear.so.1"), { needed: ["libdeeper.so.2"] });
    const search = { ...only(), loaded: ["libloaded.so.1"] };
    assert.deepEqual(readElfDynamic(top).runpath, ["$ORIGIN/sub"]);
    assert.deepEqual(missingLibraries(top, search), [
      { name: "libdeeper.so.2", neededBy: "libnear.so.1" },
      { name: "libabsent.so.13", neededBy: "libtop.so" },
    ]);
    // Put both where LD_LIBRARY_PATH points, and nothing is missing.
    await writeElf(join(dir, "extra", "libabsent.so.13"), { needed: [] });
    await writeElf(join(dir, "extra", "libdeeper.so.2"), { needed: [] });
    assert.deepEqual(missingLibraries(top, { ...search, ...only(join(dir, "extra")) }), []);
    // The loader's cache lists full paths.
    assert.equal(
      findLibrary("libabsent.so.13", { rpath: [], runpath: [] }, dir, {
        ...only(),
        cache: [join(dir, "extra", "libabsent.so.13")],
      }),
      join(dir, "extra", "libabsent.so.13"),
    );
  });
});

async function providers(dir: string, cudaNeeds: string[]): Promise<void> {
  await writeElf(join(dir, "libonnxruntime_providers_shared.so"), { needed: [] });
  await writeElf(join(dir, "libonnxruntime_providers_cuda.so"), { needed: cudaNeeds });
}

Deno.test("a CUDA provider that cannot load names what is missing, in one line", async () => {
  await withTempDir(async (dir) => {
    const where = { dir, version: "1.29.0" };
    const none = cudaProblem(where, only());
    assert.match(
      none!,
      /^libonnxruntime_providers_shared\.so and libonnxruntime_providers_cuda\.so not found beside onnxruntime 1\.29\.0 .*setup-cuda/,
    );
    await providers(dir, ["libcublas.so.13", "libcudart.so.13", "libcuda.so.1"]);
    const problem = cudaProblem(where, only())!;
    assert.ok(!problem.includes("\n"), problem);
    assert.match(
      problem,
      /^libcublas\.so\.13, libcudart\.so\.13, libcuda\.so\.1 not found \(needed by libonnxruntime_providers_cuda\.so; .*NVIDIA driver.*LD_LIBRARY_PATH/,
    );
    // CUDA found in a directory on LD_LIBRARY_PATH (say, pip's nvidia wheels): only the driver left.
    await writeElf(join(dir, "cuda", "libcublas.so.13"), { needed: ["libcublasLt.so.13"] });
    await writeElf(join(dir, "cuda", "libcublasLt.so.13"), { needed: [] });
    await writeElf(join(dir, "cuda", "libcudart.so.13"), { needed: [] });
    assert.match(cudaProblem(where, only(join(dir, "cuda")))!, /^libcuda\.so\.1 not found/);
    await writeElf(join(dir, "cuda", "libcuda.so.1"), { needed: [] });
    assert.equal(cudaProblem(where, only(join(dir, "cuda"))), undefined);
  });
});

Deno.test("a CUDA provider set up for another onnxruntime version is named as such", async () => {
  await withTempDir(async (dir) => {
    await providers(dir, []);
    const manifest = { onnxruntime: "1.29.0", package: "p@1", sha256: {} };
    await Deno.writeTextFile(join(dir, CUDA_MANIFEST), JSON.stringify(manifest));
    assert.equal(cudaProblem({ dir, version: "1.29.0" }, only()), undefined);
    assert.match(
      cudaProblem({ dir, version: "1.30.0" }, only())!,
      /is for onnxruntime 1\.29\.0, this onnxruntime is 1\.30\.0: run `deno task setup-cuda` again$/,
    );
  });
});

Deno.test("WebGPU without the Vulkan loader names libvulkan.so.1", async () => {
  await withTempDir(async (dir) => {
    assert.match(webgpuProblem(only(dir))!, /^libvulkan\.so\.1 not found \(.*\): install/);
    await writeElf(join(dir, "libvulkan.so.1"), { needed: [] });
    assert.equal(webgpuProblem(only(dir)), undefined);
  });
});

Deno.test("auto skips WebGPU, quietly, where no GPU device node exists (software Vulkan only)", async () => {
  await withTempDir(async (dev) => {
    assert.match(gpuDeviceProblem(dev)!, /^no GPU device \(.*dri\/renderD\*, .*nvidia\*\)/);
    await Deno.mkdir(join(dev, "dri"));
    await Deno.writeTextFile(join(dev, "dri", "card0"), ""); // a display, no render node
    assert.ok(gpuDeviceProblem(dev));
    await Deno.writeTextFile(join(dev, "nvidia0"), "");
    assert.equal(gpuDeviceProblem(dev), undefined);
    await Deno.remove(join(dev, "nvidia0"));
    await Deno.writeTextFile(join(dev, "dri", "renderD128"), "");
    assert.equal(gpuDeviceProblem(dev), undefined);
  });
  // End to end, on this machine: a session with --device auto prints nothing on stderr.
  const code = `
    import { Session } from "${new URL("../lib/runtime/session.ts", import.meta.url).href}";
    import { Graph } from "${new URL("../lib/onnx/graph.ts", import.meta.url).href}";
    const g = new Graph("tiny");
    const x = g.input("x", "float32", [1]);
    g.output(g.neg(x), "y");
    const s = await Session.create(g, { device: "auto" });
    console.log(s.device);
  `;
  const out = await runProcess([Deno.execPath(), "eval", code], {
    env: Object.fromEntries(
      Object.entries(Deno.env.toObject()).filter(([k]) => k !== "RECSYSLLM_ORT_LOG"),
    ),
    clearEnv: true,
  });
  const stderr = out.stderr;
  assert.ok(out.code === 0, stderr);
  if (out.stdout.trim() === "cpu") assert.equal(stderr, "");
});

Deno.test("an onnxruntime that cannot be loaded is a one-line input error, not a bug", async () => {
  await withTempDir(async (dir) => {
    // A runtime package whose library is gone: what a half-unpacked or damaged install leaves.
    const pkg = join(dir, "onnxruntime-node");
    await Deno.mkdir(pkg);
    await Deno.writeTextFile(
      join(pkg, "package.json"),
      '{"name":"onnxruntime-node","main":"x.js"}',
    );
    const script = join(dir, "load.ts");
    const ort = new URL("../lib/runtime/ort.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { loadOrt } from "${ort}";\n` +
        `try { await loadOrt("cuda"); } catch (e) { console.log(e.name + ": " + e.message); }\n`,
    );
    const run = await runProcess([Deno.execPath(), "run", "-A", "--quiet", script], {
      env: { RECSYSLLM_CUDA_RUNTIME: pkg },
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stdout.trim(),
      new RegExp(
        `^InputError: onnxruntime could not be loaded from ${pkg}: .*\\(install it again: .*\\)$`,
      ),
    );
  });
});

Deno.test({
  name: "onnxruntime's native files missing, damaged or built for another machine are named",
  ignore: Deno.build.os !== "linux" || Deno.build.arch !== "x86_64",
  async fn() {
    await withTempDir(async (pkg) => {
      const dir = join(pkg, "bin", "napi-v6", "linux", "x64");
      assert.match(
        ortInstallProblem(pkg)!,
        /has no native library for linux-x86_64 \(.* does not exist\)$/,
      );
      await Deno.mkdir(dir, { recursive: true });
      const x64 = elfSharedObject({ needed: [] });
      await Deno.writeFile(join(dir, "onnxruntime_binding.node"), x64);
      assert.equal(ortInstallProblem(pkg), `libonnxruntime.so.1 is missing from ${dir}`);
      // The loader says "No such file or directory" of this one, which is there.
      const arm64 = x64.slice();
      new DataView(arm64.buffer).setUint16(18, 183, true);
      await Deno.writeFile(join(dir, "libonnxruntime.so.1"), arm64);
      assert.equal(
        ortInstallProblem(pkg),
        `libonnxruntime.so.1 is built for aarch64, not this machine's x86_64 (in ${dir})`,
      );
      await Deno.writeTextFile(join(dir, "libonnxruntime.so.1"), "half unpacked");
      assert.match(ortInstallProblem(pkg)!, /libonnxruntime\.so\.1 in .* is damaged/);
      await Deno.writeFile(join(dir, "libonnxruntime.so.1"), x64);
      assert.equal(ortInstallProblem(pkg), undefined);
    });
  },
});

Deno.test("the fix for a broken onnxruntime is the one for the way the toolkit was installed", async () => {
  await withTempDir(async (dir) => {
    const root = join(dir, "app");
    await Deno.mkdir(join(dir, "bin"), { recursive: true });
    // A checkout: `deno install` alone restores nothing of a package it sees installed.
    assert.equal(
      ortRepair(root, false),
      `remove ${join(root, "node_modules")} and run deno install in ${root}`,
    );
    assert.equal(ortRepair(root, true), "run setup-cuda again");
    // The offline bundle: bin/deno beside app/.
    await Deno.writeTextFile(join(dir, "bin", "deno"), "");
    assert.equal(ortRepair(root, false), `unpack the bundle again over ${dir}`);
    // The one-file release: running it again unpacks nothing while .complete is there.
    await Deno.writeTextFile(join(dir, ".complete"), "");
    assert.equal(
      ortRepair(root, false),
      `remove ${dir}: the release unpacks itself again on its next run`,
    );
  });
});
