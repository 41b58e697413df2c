// The stages of `train` one by one (the whole run is tests/train_test.ts).
import assert from "node:assert/strict";
import { UsageError } from "../lib/errors.ts";
import { runSchedule, runSizes, type TrainOptions } from "../lib/train/trainer.ts";
import { DEFAULT_ADAMW } from "../lib/train/train_graph.ts";

const OPTIONS: TrainOptions = { data: "d", model: "m", out: "o", lora: null, lr: 1e-3 };

Deno.test("runSizes fills the defaults and rejects sizes that cannot work", () => {
  const sizes = runSizes(OPTIONS);
  assert.deepEqual(
    { ...sizes, adamw: undefined },
    {
      batchSize: 8,
      gradAccum: 1,
      seed: 0,
      saveEvery: 100,
      valBatches: 8,
      valEvery: 100,
      adamw: undefined,
    },
  );
  assert.deepEqual(sizes.adamw, DEFAULT_ADAMW);
  assert.equal(runSizes({ ...OPTIONS, saveEvery: 7 }).valEvery, 7);
  assert.equal(runSizes({ ...OPTIONS, weightDecay: 0 }).adamw.weightDecay, 0);
  assert.throws(() => runSizes({ ...OPTIONS, batchSize: 0 }), UsageError);
  assert.throws(() => runSizes({ ...OPTIONS, gradAccum: 1.5 }), UsageError);
  assert.throws(() => runSizes({ ...OPTIONS, merge: "x" }), /needs a LoRA run/);
  // A merge inside the run would be written into the run's own files.
  const lora = { rank: 2, alpha: 4, dropout: 0, targets: ["qkv"] };
  assert.throws(
    () => runSizes({ ...OPTIONS, lora, out: "runs/a", merge: "runs/a/merged" }),
    /merge runs\/a\/merged lies inside out runs\/a/,
  );
  assert.equal(runSizes({ ...OPTIONS, lora, out: "runs/a", merge: "runs/a-merged" }).gradAccum, 1);
  // Only the sequence objective keeps entities in part A: elsewhere the cap does nothing.
  assert.throws(
    () => runSizes({ ...OPTIONS, sequenceMaxKeep: 1 }),
    /sequenceMaxKeep shapes the sequence objective; objective is mix/,
  );
  assert.equal(runSizes({ ...OPTIONS, objective: "sequence", sequenceMaxKeep: 1 }).gradAccum, 1);
  // Validation paced but turned off: one of the two is a mistake.
  assert.throws(
    () => runSizes({ ...OPTIONS, valBatches: 0, valEvery: 5 }),
    /valEvery paces validation, which valBatches 0 turns off/,
  );
});

Deno.test("runSchedule: epochs over micro-batches, warmup as a share, a positive lr", () => {
  // 10 batches an epoch, 2 epochs, 3 micro-batches a step: ceil(20 / 3) = 7 steps.
  const s = runSchedule({ ...OPTIONS, epochs: 2, warmupShare: 0.3 }, 10, 3);
  assert.deepEqual(s, { lr: 1e-3, warmup: 2, totalSteps: 7, kind: "cosine" });
  assert.equal(runSchedule({ ...OPTIONS, steps: 5, warmup: 1 }, 10, 3).totalSteps, 5);
  assert.throws(() => runSchedule({ ...OPTIONS, lr: 0 }, 10, 1), /lr must be positive/);
  assert.equal(runSchedule({ ...OPTIONS, steps: 5, warmup: 5 }, 10, 1).warmup, 5);
  assert.throws(
    () => runSchedule({ ...OPTIONS, steps: 5, warmup: 10 }, 10, 1),
    /warmup 10 is longer than the run's 5 steps/,
  );
  assert.throws(() => runSchedule({ ...OPTIONS, steps: 0 }, 10, 1), UsageError);
  // Decoupled decay of lr x decay >= 1 flips the weights' sign and grows them every step.
  assert.throws(
    () => runSchedule({ ...OPTIONS, steps: 5, lr: 1e-3, weightDecay: 1000 }, 10, 1),
    /weightDecay 1000 with lr 0.001 scales the weights by 0 a step/,
  );
  assert.equal(runSchedule({ ...OPTIONS, steps: 5, lr: 1e-3, weightDecay: 999 }, 10, 1).lr, 1e-3);
});
