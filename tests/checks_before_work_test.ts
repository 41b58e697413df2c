/**
 * What a run could refuse from its options and inputs alone is refused before its long work
 * (SASRec's training, loading the model, tokenizing the records), not after it: each run here
 * fails, and its progress shows that the long step never started.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type CliRun, runCliProcess } from "./helpers/cli.ts";
import { processTempDir, withTempDir } from "./helpers/temp.ts";

const DATA = fileURLToPath(new URL("../fixtures/eval/tiny", import.meta.url));

/** A tiny GLM on fixtures/eval/tiny, made once. */
const MODEL = await (async () => {
  const model = join(await processTempDir(), "model");
  const run = await runCliProcess(["init", "--data", DATA, "--preset", "tiny", "--out", model]);
  assert.equal(run.code, 0, run.stderr);
  return model;
})();

/** Asserts that `run` failed saying `message`, and that its progress never showed `step`. */
function refusedBefore(run: CliRun, message: RegExp, step: RegExp): void {
  assert.notEqual(run.code, 0, run.stderr);
  assert.match(run.stderr, message);
  assert.doesNotMatch(run.stderr, step, run.stderr);
}

const SASREC_TRAINS = /sasrec: training/;

Deno.test("eval: a missing or malformed predictions file is refused before SASRec trains", async () => {
  await withTempDir(async (dir) => {
    const missing = join(dir, "missing.jsonl");
    const eval_ = (file: string) =>
      runCliProcess(["eval", "--data", DATA, "--baseline", "sasrec", "--predictions", file]);
    refusedBefore(await eval_(missing), /missing\.jsonl: file not found/, SASREC_TRAINS);
    const bad = join(dir, "bad.jsonl");
    await Deno.writeTextFile(bad, '{"id":\n');
    refusedBefore(await eval_(bad), /bad\.jsonl line 1: not valid JSON/, SASREC_TRAINS);
  });
});

Deno.test("eval: --tasks that no baseline answers are refused before SASRec trains", async () => {
  const run = await runCliProcess([
    ...["eval", "--data", DATA, "--baseline", "sasrec", "--tasks", "rating"],
  ]);
  refusedBefore(run, /no method answers the tasks asked \(--tasks rating/, SASREC_TRAINS);
});

Deno.test("infer: a malformed --rerank first stage is refused before the model loads", async () => {
  await withTempDir(async (dir) => {
    const stage = join(dir, "stage.jsonl");
    await Deno.writeTextFile(stage, '{"id":"x","predictions":[]}\n');
    const run = await runCliProcess([
      ...["infer", "--model", MODEL, "--data", DATA, "--tasks", "sequential"],
      ...["--rerank", stage, "--out", join(dir, "out.jsonl")],
    ]);
    refusedBefore(run, /stage\.jsonl line 1: record "x": no candidates/, /infer: loading/);
  });
});

const MODEL_LOADS = /loading the base model/;

Deno.test("pretrain: --lr x --weight-decay, --warmup past --steps, a task without records: refused before the model loads", async () => {
  await withTempDir(async (dir) => {
    const pretrain = (...args: string[]) =>
      runCliProcess([
        ...["pretrain", "--model", MODEL, "--data", DATA, "--out", join(dir, "run")],
        ...args,
      ]);
    refusedBefore(
      await pretrain("--steps", "2", "--lr", "0.5", "--weight-decay", "2"),
      /--weight-decay 2 with --lr 0\.5/,
      MODEL_LOADS,
    );
    refusedBefore(
      await pretrain("--steps", "2", "--warmup", "5"),
      /--warmup 5 is longer than the run's 2 steps/,
      MODEL_LOADS,
    );
    // fixtures/eval/tiny has no training review record (its manifest's counts say so).
    refusedBefore(
      await pretrain("--steps", "2", "--task-weights", "review=1"),
      /--task-weights: no training record has the task "review"/,
      MODEL_LOADS,
    );
  });
});

Deno.test("pretrain --resume with other settings is refused before the model loads", async () => {
  await withTempDir(async (dir) => {
    const pretrain = (...args: string[]) =>
      runCliProcess([
        ...["pretrain", "--model", MODEL, "--data", DATA, "--out", join(dir, "run")],
        ...["--val-batches", "0", ...args],
      ]);
    const first = await pretrain("--steps", "1", "--quiet");
    assert.equal(first.code, 0, first.stderr);
    refusedBefore(
      await pretrain("--steps", "1", "--resume", "--batch-size", "3"),
      /cannot resume .* with different settings \(batchSize: 8 -> 3\)/,
      MODEL_LOADS,
    );
    refusedBefore(
      await pretrain("--steps", "2", "--resume"),
      /different settings \(schedule: .*; to train on from its weights/,
      MODEL_LOADS,
    );
    // Full training resumed as LoRA: the method is named, not the rate it changes by default.
    refusedBefore(
      await pretrain("--steps", "1", "--resume", "--lora"),
      /different settings \(lora: null -> \{/,
      MODEL_LOADS,
    );
    // The same settings resume as before.
    const again = await pretrain("--steps", "1", "--resume");
    assert.equal(again.code, 0, again.stderr);
  });
});
