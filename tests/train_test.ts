/**
 * Training behaviour: the schedule, LoRA's PEFT initialization, gradient accumulation, loss falling
 * on the built-in demo dataset (LoRA and full) with validation loss reported, a diverging run
 * stopping with its last good checkpoint kept, and resume refusing changed settings.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { openDataset } from "../lib/data/dataset.ts";
import { OptionError, UsageError } from "../lib/errors.ts";
import { configJson, glmDecoderConfig, parseConfig } from "../lib/model/config.ts";
import { SafetensorsFile } from "../lib/model/safetensors.ts";
import { loadModel, randomWeights, saveWeights } from "../lib/model/weights.ts";
import type { TensorData } from "../lib/onnx/graph.ts";
import { Rng } from "../lib/random.ts";
import { Session } from "../lib/runtime/session.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { BatchStream, lossTokens, tokenizeSplit } from "../lib/train/data.ts";
import { batchFeeds } from "../lib/train/engine.ts";
import { initLora, type LoraConfig, loraShapes } from "../lib/model/lora.ts";
import { ADAPTER_FILES, loadAdapter } from "../lib/model/adapter.ts";
import { readMetrics } from "../lib/train/outputs.ts";
import { biasCorrections, learningRate } from "../lib/train/schedule.ts";
import { buildGradGraph, trainNames } from "../lib/train/train_graph.ts";
import { train, TrainingDiverged } from "../lib/train/trainer.ts";
import { readCheckpoint, writeCheckpoint } from "../lib/train/checkpoint.ts";
import { loadForInference } from "../lib/generate/load.ts";
import { demoDataset, smallConfig, TOKENIZER, writeSmallModel } from "./helpers/train.ts";
import { withTempDir } from "./helpers/temp.ts";

const QKV: LoraConfig = { rank: 8, alpha: 16, dropout: 0, targets: ["query_key_value"] };

Deno.test("the schedule warms up linearly, then decays by cosine or linearly to 10% of the peak", () => {
  const s = { lr: 1e-3, warmup: 10, totalSteps: 110 };
  assert.equal(learningRate(1, s), 1e-4);
  assert.equal(learningRate(10, s), 1e-3);
  assert.ok(Math.abs(learningRate(60, s) - 0.55e-3) < 1e-12); // cosine midpoint: (1 + 0.1) / 2
  assert.ok(Math.abs(learningRate(110, s) - 1e-4) < 1e-12);
  assert.ok(Math.abs(learningRate(60, { ...s, kind: "linear" }) - 0.55e-3) < 1e-12);
  assert.ok(Math.abs(learningRate(35, { ...s, kind: "linear" }) - 0.775e-3) < 1e-12);
  assert.equal(learningRate(80, { ...s, kind: "constant" }), 1e-3);
  // Without warmup the first step has the peak (a one-step run too), the last 10% of it.
  assert.equal(learningRate(1, { lr: 1e-3, warmup: 0, totalSteps: 1 }), 1e-3);
  const noWarmup = { lr: 1e-3, warmup: 0, totalSteps: 4, kind: "linear" as const };
  const rates = [1, 2, 3, 4].map((t) => learningRate(t, noWarmup));
  [1e-3, 0.7e-3, 0.4e-3, 1e-4].forEach((want, i) => assert.ok(Math.abs(rates[i] - want) < 1e-12));
  // A run that is all warmup rises to the peak at its last step and never decays.
  const allWarmup = { lr: 1e-3, warmup: 4, totalSteps: 4 };
  assert.deepEqual([1, 2, 3, 4].map((t) => learningRate(t, allWarmup)), [
    2.5e-4,
    5e-4,
    7.5e-4,
    1e-3,
  ]);
  const [bc1, bc2] = biasCorrections(2, 0.9, 0.999);
  assert.ok(Math.abs(bc1 - 0.19) < 1e-12 && Math.abs(bc2 - 0.001999) < 1e-12);
});

Deno.test("LoRA starts as PEFT does: A uniform within 1/sqrt(in), B zero, one adapter per seed", async () => {
  const config = await smallConfig();
  const a = initLora(config, QKV, new Rng(4));
  const b = initLora(config, QKV, new Rng(4));
  for (const [name, shape] of loraShapes(config, QKV)) {
    const data = a.get(name)!;
    assert.equal(data.length, shape[0] * shape[1]);
    assert.deepEqual(data, b.get(name));
    if (name.endsWith("lora_B.weight")) assert.ok(data.every((x) => x === 0));
    else {
      const bound = 1 / Math.sqrt(config.hiddenSize);
      assert.ok(data.every((x) => Math.abs(x) <= bound));
      assert.ok(Math.max(...data) > 0.8 * bound && Math.min(...data) < -0.8 * bound);
    }
  }
});

Deno.test("gradient accumulation over two halves equals the gradient of the whole batch", async () => {
  const config = await smallConfig({ hiddenSize: 16 });
  const weights = randomWeights(config, new Rng(2));
  const tokenizer = await TextTokenizer.load(TOKENIZER);
  const records = (await tokenizeSplit(await openDataset(await demoDataset()), "train", tokenizer))
    .slice(0, 64);
  const stream = new BatchStream(records, tokenizer.special, {
    batchSize: 8,
    seed: 3,
    collator: { maxLength: 64 },
  });
  const whole = stream.batch(0);
  // The same examples, split in two micro-batches (padded to the same length, rows 0-3 and 4-7).
  const rows = (from: number, to: number) => {
    const l = whole.length;
    const b = to - from;
    return {
      batchSize: b,
      length: l,
      inputIds: whole.inputIds.slice(from * l, to * l),
      positionIds: whole.positionIds.slice(from * 2 * l, to * 2 * l),
      sep: whole.sep.slice(from, to),
      labels: whole.labels.slice(from * l, to * l),
      lossMask: whole.lossMask.slice(from * l, to * l),
    };
  };
  const halves = [rows(0, 4), rows(4, 8)];
  const { graph, params } = buildGradGraph({ config, weights, lora: null }, { accumulate: true });
  const session = await Session.create(graph, { device: "cpu", threads: 1 });
  try {
    const base: Record<string, TensorData> = {};
    for (const p of params) {
      base[p.name] = { dtype: "float32", shape: p.shape, data: weights.get(p.name)! };
      base[trainNames.acc(p.name)] = {
        dtype: "float32",
        shape: p.shape,
        data: new Float32Array(p.shape.reduce((a, b) => a * b, 1)),
      };
    }
    const one = (x: number): TensorData => ({
      dtype: "float32",
      shape: [1],
      data: Float32Array.of(x),
    });
    const full = await session.run({ ...base, ...batchFeeds(whole), loss_scale: one(1) });
    const total = lossTokens(whole);
    let acc = { ...base };
    let loss = 0;
    for (const half of halves) {
      const scale = lossTokens(half) / total;
      const out = await session.run({ ...acc, ...batchFeeds(half), loss_scale: one(scale) });
      loss += scale * (out.loss.data as Float32Array)[0];
      acc = { ...acc };
      for (const p of params) acc[trainNames.acc(p.name)] = out[trainNames.grad(p.name)];
    }
    assert.ok(Math.abs(loss - (full.loss.data as Float32Array)[0]) < 1e-5);
    let worst = 0;
    let largest = 0;
    for (const p of params) {
      const a = acc[trainNames.acc(p.name)].data as Float32Array;
      const b = full[trainNames.grad(p.name)].data as Float32Array;
      for (let i = 0; i < a.length; i++) {
        worst = Math.max(worst, Math.abs(a[i] - b[i]));
        largest = Math.max(largest, Math.abs(b[i]));
      }
    }
    assert.ok(largest > 1e-3, `gradients too small to tell (${largest})`);
    assert.ok(worst < 1e-5 * Math.max(1, largest), `accumulated vs whole: ${worst}`);
  } finally {
    await session.release();
  }
});

/** A base model whose word embeddings have std `embeddingStd` (the rest std 0.02). */
async function baseModel(dir: string, embeddingStd: number) {
  const config = await smallConfig();
  const weights = randomWeights(config, new Rng(1));
  const table = weights.get("glm.word_embeddings.weight")!;
  for (let i = 0; i < table.length; i++) table[i] *= embeddingStd / 0.02;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(configJson(config)));
  await Deno.copyFile(TOKENIZER, join(dir, "tokenizer.json"));
  await saveWeights(join(dir, "model.safetensors"), config, weights);
}

const RUN = { steps: 40, batchSize: 8, maxLength: 128, valBatches: 4, seed: 1, threads: 2 };

Deno.test("full training: the loss falls well below its start and val_loss is reported", async () => {
  await withTempDir(async (dir) => {
    const data = await demoDataset();
    await writeSmallModel(join(dir, "base"), await smallConfig());
    const out = join(dir, "full");
    const summary = await train({
      data,
      model: join(dir, "base"),
      out,
      lora: null,
      lr: 1e-2,
      ...RUN,
      saveEvery: 20,
    });
    const metrics = await readMetrics(join(out, "metrics.jsonl"));
    console.log(
      `  full: val_loss ${summary.initialValLoss?.toFixed(3)} -> ${summary.valLoss?.toFixed(3)}, ` +
        `loss ${metrics[0].loss.toFixed(3)} -> ${summary.lastLoss.toFixed(3)}`,
    );
    assert.equal(metrics.length, 40);
    assert.deepEqual(metrics.filter((l) => l.val_loss !== undefined).map((l) => l.step), [20, 40]);
    const lastFive = metrics.slice(-5).reduce((a, l) => a + l.loss, 0) / 5;
    const firstFive = metrics.slice(0, 5).reduce((a, l) => a + l.loss, 0) / 5;
    assert.ok(lastFive < firstFive - 1, `training loss ${firstFive} -> ${lastFive}`);
    assert.ok(summary.valLoss! < summary.initialValLoss! - 1.5);
    // The run directory is a complete model directory that loads as a base model.
    const trained = await loadModel(out);
    assert.equal(trained.config.hiddenSize, 32);
    assert.match(
      await Deno.readTextFile(join(out, "loss.svg")),
      /<svg[^]*<polyline[^]*val_loss[^]*<\/svg>/,
    );
    assert.deepEqual(
      await Deno.readFile(join(out, "tokenizer.json")),
      await Deno.readFile(TOKENIZER),
    );
  });
});

Deno.test("LoRA training: the loss falls well below its start, only the adapter (and its tokenizer) is written", async () => {
  await withTempDir(async (dir) => {
    const data = await demoDataset();
    // Word embeddings of std 0.3 (a frozen std-0.02 table caps every logit near 0, so no adapter
    // could make a prediction through it; a pretrained model's embeddings are larger).
    await baseModel(join(dir, "base"), 0.3);
    const out = join(dir, "lora");
    const summary = await train({
      data,
      model: join(dir, "base"),
      out,
      lora: QKV,
      lr: 3e-2,
      ...RUN,
      saveEvery: 40,
    });
    const metrics = await readMetrics(join(out, "metrics.jsonl"));
    const firstFive = metrics.slice(0, 5).reduce((a, l) => a + l.loss, 0) / 5;
    const lastFive = metrics.slice(-5).reduce((a, l) => a + l.loss, 0) / 5;
    console.log(
      `  LoRA: val_loss ${summary.initialValLoss?.toFixed(3)} -> ${summary.valLoss?.toFixed(3)}, ` +
        `loss (mean of 5 steps) ${firstFive.toFixed(3)} -> ${lastFive.toFixed(3)}`,
    );
    assert.ok(summary.valLoss! < summary.initialValLoss! - 1.5, JSON.stringify(summary));
    assert.ok(lastFive < firstFive - 1, `training loss ${firstFive} -> ${lastFive}`);
    const files = [...Deno.readDirSync(out)].map((e) => e.name).sort();
    assert.deepEqual(files, [
      ".recsysllm-output.json",
      "adapter_config.json",
      "adapter_model.safetensors",
      "checkpoint.safetensors",
      "loss.svg",
      "metrics.jsonl",
      "recsysllm_adapter.json", // the attention rule it trained with
      "tokenizer.json",
    ]);
    const adapter = await SafetensorsFile.open(join(out, "adapter_model.safetensors"));
    assert.deepEqual(
      adapter.names().sort(),
      [...loraShapes(await smallConfig(), QKV).keys()].sort(),
    );
  });
});

Deno.test("a diverging run stops with one line and keeps its last good checkpoint", async () => {
  await withTempDir(async (dir) => {
    const data = await demoDataset();
    await writeSmallModel(join(dir, "base"), await smallConfig());
    const out = join(dir, "run");
    const error = await train({
      data,
      model: join(dir, "base"),
      out,
      lora: null,
      lr: 1e37,
      clip: 0,
      // Without decay (lr x decay must stay below 1): the rate alone makes the run diverge.
      weightDecay: 0,
      ...RUN,
      valBatches: 0,
      steps: 30,
      saveEvery: 1,
    }).then(() => undefined, (e) => e);
    assert.ok(error instanceof TrainingDiverged, String(error));
    assert.ok(!error.message.includes("\n"));
    const step = Number(/^step (\d+): the (loss|gradient norm) is/.exec(error.message)?.[1]);
    assert.ok(step >= 2, error.message);
    const file = await SafetensorsFile.open(join(out, "checkpoint.safetensors"));
    const state = JSON.parse(file.metadata.state);
    assert.equal(state.step, step - 1);
    for (const name of file.names()) {
      const t = await file.tensor(name);
      assert.ok((t.data as Float32Array).every(Number.isFinite), `${name} is not finite`);
    }
    // Validated after each step, the same run stops at its first: the validation loss is NaN,
    // where before it was logged as null and the step saved as a good checkpoint.
    const validated = join(dir, "validated");
    const stopped = await train({
      data,
      model: join(dir, "base"),
      out: validated,
      lora: null,
      lr: 1e37,
      clip: 0,
      weightDecay: 0,
      ...RUN,
      steps: 30,
      saveEvery: 1,
      valEvery: 1,
    }).then(() => undefined, (e) => e);
    assert.ok(stopped instanceof TrainingDiverged, String(stopped));
    assert.match(stopped.message, /^step 1: the validation loss is NaN; training stopped/);
    await assert.rejects(Deno.stat(join(validated, "checkpoint.safetensors")));
  });
});

Deno.test("a full run resumed with more steps says to go on with --full from its directory", async () => {
  await withTempDir(async (dir) => {
    const data = await demoDataset();
    await writeSmallModel(join(dir, "base"), await smallConfig());
    const options = {
      data,
      model: join(dir, "base"),
      out: join(dir, "run"),
      lora: null,
      ...RUN,
      steps: 2,
      batchSize: 2,
      valBatches: 0,
    };
    await train(options);
    // A trained model given as --model alone would default to LoRA: the hint keeps it full.
    await assert.rejects(
      () => train({ ...options, resume: true, steps: 3 }),
      (e) =>
        e instanceof UsageError &&
        /start a new run with (--)?full (--)?model .*run$/.test(e.message),
    );
  });
});

/** A two-step LoRA run of a hidden-16 model written into `dir`/base, out to `dir`/run. */
async function shortLoraRun(dir: string, valBatches: number) {
  await writeSmallModel(join(dir, "base"), await smallConfig({ hiddenSize: 16 }));
  return {
    data: await demoDataset(),
    model: join(dir, "base"),
    out: join(dir, "run"),
    lora: QKV,
    lr: 1e-3,
    ...RUN,
    steps: 2,
    valBatches,
  };
}

Deno.test("a run directory is never overwritten by accident, and resuming checks the settings", async () => {
  await withTempDir(async (dir) => {
    const options = await shortLoraRun(dir, 0);
    await train(options);
    await assert.rejects(
      () => train(options),
      // The library names its option; the command re-words it as --resume.
      (e) => e instanceof OptionError && e.option === "resume" && /pass resume/.test(e.message),
    );
    await assert.rejects(
      () => train({ ...options, resume: true, batchSize: 4 }),
      (e) => e instanceof UsageError && /batchSize: 8 -> 4/.test(e.message),
    );
    await assert.rejects(
      () => train({ ...options, resume: true, dropout: 0.1 }),
      (e) => e instanceof UsageError && /dropout/.test(e.message),
    );
    // A longer run is another schedule: the message says how to train on.
    await assert.rejects(
      () => train({ ...options, resume: true, steps: 3 }),
      (e) =>
        e instanceof UsageError &&
        /schedule: .*; to train on from its weights, start a new run with --adapter .*run$/.test(
          e.message,
        ),
    );
    // Another entities.json (the trie, the room for an item answer) is another run too.
    const data = join(dir, "data-renamed");
    await Deno.mkdir(data);
    for await (const entry of Deno.readDir(options.data)) {
      await Deno.copyFile(join(options.data, entry.name), join(data, entry.name));
    }
    const entities = JSON.parse(await Deno.readTextFile(join(data, "entities.json")));
    const item = entities.find((e: { kind: string }) => e.kind === "item");
    item.entity += " Deluxe";
    await Deno.writeTextFile(join(data, "entities.json"), JSON.stringify(entities));
    await assert.rejects(
      () => train({ ...options, data, resume: true }),
      (e) => e instanceof UsageError && /different settings \(itemsSha256/.test(e.message),
    );
    // Settings that change the tensors' shapes are settings too, not a damaged checkpoint.
    for (const other of [{ lora: { ...QKV, rank: 4 } }, { lora: null }]) {
      await assert.rejects(
        () => train({ ...options, resume: true, ...other }),
        (e) => e instanceof UsageError && /different settings \(.*lora/.test(e.message),
      );
    }
    await assert.rejects(
      () => train({ ...options, out: join(dir, "other"), dropout: 1 }),
      (e) => e instanceof OptionError && e.option === "dropout" && /\[0, 1\)/.test(e.message),
    );
    const notes: string[] = [];
    const again = await train({ ...options, resume: true, onNote: (n) => notes.push(n) });
    assert.ok(again.resumed);
    assert.ok(!notes.some((n) => /validation records/.test(n)), notes.join("\n"));
    // Another validation set: the weights go on, the val_loss curve breaks, and it says so.
    const other = await train({
      ...options,
      resume: true,
      valBatches: options.valBatches + 1,
      onNote: (n) => notes.push(n),
    });
    assert.ok(other.resumed);
    assert.ok(
      notes.some((n) =>
        /validation records, .* differ from the run's: val_loss after step 2/.test(n)
      ),
    );
  });
});

Deno.test("the length a run trained on is recorded, and inference cuts its prompts to it", async () => {
  await withTempDir(async (dir) => {
    const data = await demoDataset();
    const base = join(dir, "base");
    await writeSmallModel(base, await smallConfig({ hiddenSize: 16, maxSequenceLength: 256 }));
    const run = { data, model: base, lr: 1e-3, ...RUN, steps: 1, valBatches: 0, maxLength: 96 };
    await train({ ...run, out: join(dir, "lora"), lora: QKV, merge: join(dir, "merged") });
    await train({ ...run, out: join(dir, "full"), lora: null });
    const json = async (...path: string[]) => JSON.parse(await Deno.readTextFile(join(...path)));
    assert.equal((await json(dir, "lora", "recsysllm_adapter.json")).max_length, 96);
    assert.equal((await json(dir, "merged", "config.json")).recsysllm.max_length, 96);
    assert.equal((await json(dir, "full", "config.json")).recsysllm.max_length, 96);
    const length = async (model: string, adapter?: string) => {
      const loaded = await loadForInference({ model, adapter, device: "cpu", threads: 1 });
      await loaded.decoder.release();
      return loaded.maxLength;
    };
    assert.equal(await length(base), 256, "a model nobody trained: its own maximum");
    assert.equal(await length(base, join(dir, "lora")), 96);
    assert.equal(await length(join(dir, "merged")), 96);
    assert.equal(await length(join(dir, "full")), 96);
  });
});

Deno.test("a finished run resumed again reports the validation loss its log holds", async () => {
  await withTempDir(async (dir) => {
    const options = await shortLoraRun(dir, 1);
    const first = await train(options);
    assert.ok(first.valLoss !== undefined && Number.isFinite(first.valLoss));
    const again = await train({ ...options, resume: true });
    assert.ok(again.resumed);
    assert.equal(again.valLoss, first.valLoss);
    assert.equal(again.lastLoss, first.lastLoss);
  });
});

Deno.test("batches are a function of the seed and the position: the same micro-batch twice", async () => {
  const tokenizer = await TextTokenizer.load(TOKENIZER);
  const records = (await tokenizeSplit(await openDataset(await demoDataset()), "train", tokenizer))
    .slice(0, 100);
  const options = { batchSize: 8, seed: 9, collator: { maxLength: 64 } };
  const a = new BatchStream(records, tokenizer.special, options);
  const b = new BatchStream(records, tokenizer.special, options);
  // Epoch 1's third batch, asked for cold, equals the one reached by walking there.
  for (let m = 0; m < a.perEpoch + 3; m++) a.batch(m);
  assert.deepEqual(b.batch(a.perEpoch + 2), a.batch(a.perEpoch + 2));
  assert.notDeepEqual(a.batch(0).inputIds, a.batch(a.perEpoch).inputIds);
});

Deno.test("full training under causal attention: the model directory records the rule, so it loads as trained", async () => {
  await withTempDir(async (dir) => {
    const data = await demoDataset();
    await writeSmallModel(join(dir, "base"), await smallConfig());
    const run = { data, model: join(dir, "base"), lora: null, ...RUN, steps: 2, valBatches: 0 };
    await train({ ...run, out: join(dir, "causal"), attention: "causal" });
    await train({ ...run, out: join(dir, "prefix") });
    const json = async (name: string) =>
      JSON.parse(await Deno.readTextFile(join(dir, name, "config.json")));
    assert.deepEqual((await json("causal")).recsysllm, { attention: "causal", max_length: 128 });
    assert.deepEqual((await json("prefix")).recsysllm, { max_length: 128 }); // GLM's own rule
    const rule = async (name: string) =>
      glmDecoderConfig((await loadModel(join(dir, name))).config).attention;
    assert.equal(await rule("causal"), "causal");
    assert.equal(await rule("prefix"), "prefix");
    // A GLM config with an unknown rule is refused with the file named.
    const bad = { ...(await json("prefix")), recsysllm: { attention: "sideways" } };
    assert.throws(
      () => parseConfig(bad, "m/config.json"),
      /m\/config\.json: "recsysllm\.attention" must be "prefix" or "causal"/,
    );
    assert.throws(
      () => parseConfig({ ...bad, recsysllm: { max_length: 0 } }, "m/config.json"),
      /m\/config\.json: "recsysllm\.max_length" must be a positive integer/,
    );
  });
});

Deno.test("a GLM adapter records its attention rule, and one continued from it keeps the rule", async () => {
  await withTempDir(async (dir) => {
    const data = await demoDataset();
    await writeSmallModel(join(dir, "base"), await smallConfig());
    const run = { data, model: join(dir, "base"), lora: QKV, ...RUN, steps: 2, valBatches: 0 };
    await train({ ...run, out: join(dir, "a"), attention: "causal" });
    const settings = async (name: string) =>
      JSON.parse(await Deno.readTextFile(join(dir, name, ADAPTER_FILES.settings)));
    assert.equal((await settings("a")).attention, "causal");
    // PEFT's config is unchanged: a GLM adapter without added rows carries no method tensors.
    const peft = JSON.parse(await Deno.readTextFile(join(dir, "a", ADAPTER_FILES.config)));
    assert.equal(peft.task_type, null);
    const config = (await loadModel(join(dir, "base"))).config;
    assert.equal((await loadAdapter(join(dir, "a"), config)).method?.attention, "causal");
    // Continued without naming the rule: trained with the adapter's, and recorded so.
    await train({ ...run, out: join(dir, "b"), adapter: join(dir, "a"), merge: join(dir, "bm") });
    assert.equal((await settings("b")).attention, "causal");
    const merged = JSON.parse(await Deno.readTextFile(join(dir, "bm", "config.json")));
    assert.deepEqual(merged.recsysllm, { attention: "causal", max_length: 128 });
  });
});

Deno.test("a checkpoint that recorded its LoRA targets in another order, or a sequence cap under another objective, resumes", async () => {
  await withTempDir(async (dir) => {
    const base = await shortLoraRun(dir, 0);
    const options = { ...base, lora: { ...QKV, targets: ["query_key_value", "dense"] } };
    await train(options);
    // As a run before 2026-12-07 recorded `--lora-targets dense,qkv`: in the order given.
    const path = join(options.out, "checkpoint.safetensors");
    const file = await SafetensorsFile.open(path);
    const shapes = new Map<string, number[]>();
    for (const name of file.names()) {
      if (name.startsWith("param.")) shapes.set(name.slice(6), [...file.entry(name).shape]);
    }
    const state = await readCheckpoint(path, shapes);
    const settings = state.settings as { lora: { targets: string[] }; sequenceMaxKeep?: number };
    settings.lora.targets = ["dense", "query_key_value"];
    // Also recorded before: a sequence cap under the mix objective, where it did nothing.
    settings.sequenceMaxKeep = 1;
    await writeCheckpoint(path, state, shapes);
    const again = await train({ ...options, resume: true });
    assert.equal(again.resumed, true);
  });
});
