/**
 * The benchmarks' settings and work directories (bench/settings.ts): a work directory a benchmark
 * did not make is never emptied (`QUALITY_DIR=.` deleted everything under it), and a bad number is
 * an error before any work, naming the variable.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { benchWorkDir, intSetting } from "../bench/settings.ts";
import { passesBestEpoch } from "../bench/quality.ts";
import { InputError } from "../lib/errors.ts";
import { ROOT, runProcess } from "./helpers/process.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

Deno.test("a benchmark's work directory: made, or emptied when a benchmark made it; a user's is refused untouched", async () => {
  await withTempDir(async (tmp) => {
    const dir = join(tmp, "work");
    await benchWorkDir(dir, "QUALITY_DIR");
    await Deno.writeTextFile(join(dir, "run.log"), "old run");
    await benchWorkDir(dir, "QUALITY_DIR");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), [".recsysllm-bench"]);
    // An empty directory becomes one; one with files of the user's is refused, kept as it was.
    const empty = join(tmp, "empty");
    await Deno.mkdir(empty);
    await benchWorkDir(empty, "TEXT_DIR");
    const mine = join(tmp, "mine");
    await Deno.mkdir(mine);
    await Deno.writeTextFile(join(mine, "thesis.txt"), "years of work");
    await assert.rejects(
      () => benchWorkDir(mine, "TEXT_DIR"),
      (error: Error) =>
        error instanceof InputError &&
        /mine: holds files a benchmark did not make \(thesis\.txt\); choose another TEXT_DIR/
          .test(error.message),
    );
    assert.equal(await Deno.readTextFile(join(mine, "thesis.txt")), "years of work");
    await assert.rejects(() => benchWorkDir(join(mine, "thesis.txt"), "TEXT_DIR"), InputError);
    // The benchmark's own default without a mark (an earlier version's, or a link to the user's
    // work): refused too, saying what it may be.
    const older = join(tmp, "recsysllm-bench-quality");
    await Deno.mkdir(join(older, "data"), { recursive: true });
    await assert.rejects(
      () => benchWorkDir(older, "QUALITY_DIR", { isDefault: true }),
      /the default of an earlier version, without its mark: remove it if it is that/,
    );
    assert.deepEqual([...Deno.readDirSync(older)].map((e) => e.name), ["data"]);
  });
});

Deno.test("a whole-number setting: the default when unset, else checked against its range", () => {
  const name = "RECSYSLLM_TEST_SETTING";
  try {
    Deno.env.delete(name);
    assert.equal(intSetting(name, 7, { min: 1 }), 7);
    Deno.env.set(name, "12");
    assert.equal(intSetting(name, 7, { min: 1 }), 12);
    for (const bad of ["abc", "0", "2.5", "1e400"]) {
      Deno.env.set(name, bad);
      assert.throws(
        () => intSetting(name, 7, { min: 1, max: 4096 }),
        new RegExp(
          `^InputError: ${name} is "${bad.replace(".", "\\.")}": a whole number in 1\\.\\.4096$`,
        ),
      );
    }
  } finally {
    Deno.env.delete(name);
  }
});

Deno.test("a benchmark refuses a bad setting in one line, before any work", async () => {
  const bench = fileURLToPath(new URL("../bench/main.ts", import.meta.url));
  const command = [Deno.execPath(), "run", "-A", "--quiet", `--config=${ROOT}deno.json`, bench];
  const run = await runProcess([...command, "infer"], { env: { INFER_BENCH_BATCH: "0" } });
  assert.equal(run.code, 1);
  assert.equal(run.stderr.trim(), 'error: INFER_BENCH_BATCH is "0": a whole number in 1..4096');
  // Another dataset for the quality recipe: a folder in Beauty's layout, else one line.
  await withTempDir(async (dir) => {
    const quality = (env: Record<string, string>) =>
      // QUALITY_STEPS is refused after these two: a check that went missing fails at once, never
      // starts the recipe.
      runProcess([...command, "quality"], {
        env: { QUALITY_DIR: join(dir, "work"), QUALITY_STEPS: "0", ...env },
      });
    const missing = await quality({ QUALITY_DATA: dir });
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr.trim(),
      `error: QUALITY_DATA is "${dir}": it has no sequential_data.txt (Beauty's layout: ` +
        "sequential_data.txt, items.csv)",
    );
    await Deno.writeTextFile(join(dir, "sequential_data.txt"), "1 1 2 3\n");
    await Deno.writeTextFile(join(dir, "items.csv"), "item_id,asin,title\n");
    const seed = await quality({ QUALITY_DATA: dir, QUALITY_SEED: "-1" });
    assert.equal(seed.code, 1);
    assert.equal(seed.stderr.trim(), `error: QUALITY_SEED is "-1": a whole number at least 0`);
    await assert.rejects(() => Deno.stat(join(dir, "work")), Deno.errors.NotFound);
  });
  // A device for a benchmark that runs on the CPU only would label CPU figures as the device's.
  const device = await runProcess([...command, "demo_ceiling", "--device", "cuda"]);
  assert.equal(device.code, 2);
  assert.match(device.stderr, /^error: --device cuda: demo_ceiling runs on the CPU only/);
});

Deno.test("a benchmark that imports files a copy lacks (a --bench bundle: no fixtures/) says so in one line", async () => {
  await withTempDir(async (copy) => {
    for (const dir of ["bench", "lib"]) {
      assert.equal((await runProcess(["cp", "-r", join(ROOT, dir), copy])).code, 0);
    }
    for (const file of ["deno.json", "deno.lock"]) {
      await Deno.copyFile(join(ROOT, file), join(copy, file));
    }
    await Deno.symlink(join(ROOT, "node_modules"), join(copy, "node_modules"));
    const run = await runProcess([
      ...[Deno.execPath(), "run", "-A", "--quiet", `--config=${join(copy, "deno.json")}`],
      ...[join(copy, "bench", "main.ts"), "demo_ceiling"],
    ], { cwd: copy });
    assert.equal(run.code, 1, run.stderr);
    assert.match(
      run.stderr,
      /^error: demo_ceiling needs a file this copy lacks \(Module not found ".*fixtures\/demo\/generate\.ts"\.?\): run it from a clone of the repository\n$/,
    );
  });
});

Deno.test("bench quality gives the test stage the validation stage's best epoch only where eval takes it", () => {
  assert.equal(passesBestEpoch([]), true);
  assert.equal(passesBestEpoch(["--sasrec-epochs=2"]), true);
  // The refit off, or the curve of the early stopping asked for: eval would refuse the count,
  // and only after the pretrain.
  assert.equal(passesBestEpoch(["--sasrec-no-refit"]), false);
  assert.equal(passesBestEpoch(["--sasrec-curve=/tmp/sasrec.svg"]), false);
  assert.equal(passesBestEpoch(["--sasrec-curve", "/tmp/sasrec.jsonl"]), false);
});
