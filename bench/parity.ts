/**
 * Device parity check (not a speed benchmark, so not in BENCHES): `deno task bench parity
 * --device cuda` runs the same graphs on the CPU and on the device and compares, on the tiny
 * configuration (vocab 8000, hidden 256, 4 layers) with seeded random weights,
 *
 * - the forward graph's logits [B, L, V] and loss on the benchmarks' synthetic batch;
 * - one LoRA training step's updated tensors (adapter weights and both AdamW moments) and loss;
 * - the top-10 items of 20-beam constrained search for 8 users of the built-in demo data
 *   (fixtures/demo, 294 items, a BPE tokenizer trained on their titles).
 *
 * Float32 tolerance: |device - cpu| <= 1e-4 + 1e-3 * |cpu|, elementwise (reduction order
 * differs between kernels, and CUDA's MatMul may use TF32 on Ampere and newer GPUs, which alone
 * gives relative errors near 1e-3). Top-10 lists are compared as lists and as sets: with random
 * weights, items whose scores tie to float32 precision may swap places, which the overlap
 * figure shows apart from real disagreement. `--device cpu` compares the CPU with itself (all
 * differences 0): that is what the test suite checks.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TextRecord } from "../lib/data/types.ts";
import { parseCsv } from "../lib/data/csv.ts";
import { CachedDecoder } from "../lib/generate/decoder.ts";
import { Predictor } from "../lib/generate/infer.ts";
import { buildPool } from "../lib/collate/pool.ts";
import { readLines } from "../lib/io/lines.ts";
import { presetConfig } from "../lib/model/config.ts";
import { buildForwardGraph } from "../lib/model/glm.ts";
import { randomWeights } from "../lib/model/weights.ts";
import type { TensorData } from "../lib/onnx/graph.ts";
import { Rng } from "../lib/random.ts";
import { type Device, Session } from "../lib/runtime/session.ts";
import { trainByteLevelBpe } from "../lib/tokenizer/train_bpe.ts";
import { SPECIAL_TOKENS, TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { DEFAULT_LORA, initLora } from "../lib/model/lora.ts";
import { buildTrainStepGraph, trainNames } from "../lib/train/train_graph.ts";
import type { BenchOptions } from "./main.ts";
import { syntheticBatch } from "./synthetic_batch.ts";

const THREADS = 2;
const USERS = 8;
const ABS = 1e-4;
const REL = 1e-3;
const DEMO = fileURLToPath(new URL("../fixtures/demo/", import.meta.url));

/** Largest absolute difference, largest difference relative to the CPU value, and the pass. */
export interface Difference {
  max_abs: number;
  max_rel: number;
  within_tolerance: boolean;
}

/** Compares `got` against `want` elementwise under the float32 tolerance above. */
export function compare(want: ArrayLike<number>, got: ArrayLike<number>): Difference {
  if (want.length !== got.length) throw new Error(`lengths ${want.length} and ${got.length}`);
  let maxAbs = 0;
  let maxRel = 0;
  let ok = true;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= ABS + REL * Math.abs(want[i]))) ok = false; // NaN fails too
    if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Infinity : d;
    const rel = d / Math.max(Math.abs(want[i]), 1e-6);
    if (rel > maxRel) maxRel = rel;
  }
  return { max_abs: maxAbs, max_rel: Number(maxRel.toPrecision(3)), within_tolerance: ok };
}

function merge(parts: Difference[]): Difference {
  return {
    max_abs: Math.max(...parts.map((p) => p.max_abs)),
    max_rel: Math.max(...parts.map((p) => p.max_rel)),
    within_tolerance: parts.every((p) => p.within_tolerance),
  };
}

async function onBoth<T>(
  device: Device,
  make: (device: Device) => Promise<{ result: T; ranOn: string }>,
): Promise<{ cpu: T; dev: T; ranOn: string }> {
  const cpu = (await make("cpu")).result;
  const { result: dev, ranOn } = await make(device);
  return { cpu, dev, ranOn };
}

async function forwardParity(device: Device) {
  const config = presetConfig("tiny", 8000);
  const weights = randomWeights(config, new Rng(1));
  const feeds = syntheticBatch(config.vocabSize);
  const { graph } = buildForwardGraph({ config, weights, outputs: "both" });
  const { cpu, dev, ranOn } = await onBoth(device, async (d) => {
    const session = await Session.create(graph, { device: d, threads: THREADS });
    const out = await session.run(feeds);
    await session.release();
    return { result: out, ranOn: session.device };
  });
  return {
    ranOn,
    logits: compare(cpu.logits.data as Float32Array, dev.logits.data as Float32Array),
    loss: compare(cpu.loss.data as Float32Array, dev.loss.data as Float32Array),
  };
}

async function trainParity(device: Device) {
  const config = presetConfig("tiny", 8000);
  const weights = randomWeights(config, new Rng(1));
  const setup = { config, weights, lora: { ...DEFAULT_LORA } };
  const { graph, params } = buildTrainStepGraph(setup);
  const initial = initLora(config, setup.lora, new Rng(3));
  const feeds: Record<string, TensorData> = {
    ...syntheticBatch(config.vocabSize),
    loss_scale: { dtype: "float32", shape: [1], data: Float32Array.of(1) },
    lr: { dtype: "float32", shape: [], data: Float32Array.of(1e-3) },
    bias_correction1: { dtype: "float32", shape: [], data: Float32Array.of(0.1) },
    bias_correction2: { dtype: "float32", shape: [], data: Float32Array.of(0.001) },
  };
  const updated: string[] = [];
  for (const p of params) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    feeds[p.name] = { dtype: "float32", shape: p.shape, data: initial.get(p.name)!.slice() };
    feeds[trainNames.m(p.name)] = { dtype: "float32", shape: p.shape, data: new Float32Array(n) };
    feeds[trainNames.v(p.name)] = { dtype: "float32", shape: p.shape, data: new Float32Array(n) };
    for (const name of [p.name, trainNames.m(p.name), trainNames.v(p.name)]) {
      updated.push(trainNames.updated(name));
    }
  }
  const { cpu, dev, ranOn } = await onBoth(device, async (d) => {
    const session = await Session.create(graph, { device: d, threads: THREADS });
    const out = await session.run(feeds, [...updated, "loss"]);
    await session.release();
    return { result: out, ranOn: session.device };
  });
  return {
    ranOn,
    tensors: updated.length,
    updated: merge(
      updated.map((n) => compare(cpu[n].data as Float32Array, dev[n].data as Float32Array)),
    ),
    loss: compare(cpu.loss.data as Float32Array, dev.loss.data as Float32Array),
  };
}

async function demoTitles(): Promise<string[]> {
  const titles: string[] = [];
  const path = join(DEMO, "items.csv");
  let header = true;
  for await (const { fields } of parseCsv(readLines(path), { label: path })) {
    if (header) header = false;
    else titles.push(fields[1]);
  }
  return titles;
}

async function topTenParity(device: Device) {
  const items = await demoTitles();
  const json = trainByteLevelBpe(
    [...items, "User 1 bought a, b and c. What will the user buy next?"],
    { vocabSize: 2000, specialTokens: [...SPECIAL_TOKENS] },
  );
  const tokenizer = TextTokenizer.fromJson(json, "parity tokenizer");
  const config = presetConfig("tiny", tokenizer.vocabSize);
  const weights = randomWeights(config, new Rng(1));
  const pool = buildPool(
    tokenizer,
    items.map((entity, i) => ({ entity, kind: "item", id: `${i}` })),
    { vocabSize: config.vocabSize },
  );
  const rng = new Rng(5);
  const records: TextRecord[] = Array.from({ length: USERS }, (_, u) => {
    const history = rng.sample(items.length, 5).map((i) => items[i]);
    return {
      id: `u${u}/seq`,
      task: "sequential",
      template: "seq-1",
      split: "test",
      user: `${u}`,
      segments: [
        { text: `User ${u} bought ` },
        ...history.flatMap((entity, i) => [
          ...(i > 0 ? [{ text: ", " }] : []),
          { entity, kind: "item" },
        ]),
        { text: ". What will the user buy next? " },
        { answer: true },
      ],
      history,
    };
  });
  const { cpu, dev, ranOn } = await onBoth(device, async (d) => {
    const decoder = await CachedDecoder.create({ config, weights }, {
      device: d,
      threads: THREADS,
    });
    try {
      const predictor = new Predictor({ model: decoder, tokenizer, pool }, {
        protocol: "full",
        topK: 10,
        beams: 20,
        batchSize: USERS,
        maxLength: config.maxSequenceLength,
      });
      const lines = await predictor.predict(records);
      return { result: lines.map((l) => l.predictions ?? []), ranOn: decoder.device };
    } finally {
      await decoder.release();
    }
  });
  const top = compareTopTen(cpu, dev);
  return {
    ranOn,
    users: USERS,
    ...top,
  };
}

/** One ranked prediction: its item and score. */
type Ranked = { entity: string; score?: number };

/**
 * The top-10 lists of two devices compared: by their items (a device's last-bit rounding must not
 * read as another item): the share of users with the same items in the same order, the mean share
 * of one list's items in the other, and the scores of the identical lists to the float32
 * tolerance (undefined when no list is identical).
 */
export function compareTopTen(cpu: readonly Ranked[][], dev: readonly Ranked[][]) {
  let same = 0;
  let overlap = 0;
  const scores: Difference[] = [];
  const ids = (list: readonly Ranked[]) => list.map((p) => p.entity);
  for (let u = 0; u < cpu.length; u++) {
    const [a, b] = [ids(cpu[u]), ids(dev[u])];
    if (JSON.stringify(a) === JSON.stringify(b)) {
      same++;
      scores.push(compare(cpu[u].map((p) => p.score ?? NaN), dev[u].map((p) => p.score ?? NaN)));
    }
    const set = new Set(a);
    overlap += b.filter((item) => set.has(item)).length / Math.max(a.length, 1);
  }
  return {
    identical_lists: same / cpu.length,
    overlap: Number((overlap / cpu.length).toFixed(3)),
    scores: scores.length > 0 ? merge(scores) : undefined,
  };
}

/** Runs the comparison; returns its figures. */
export async function run(options: BenchOptions = {}): Promise<Record<string, unknown>> {
  const device = options.device ?? "cpu";
  const forward = await forwardParity(device);
  const train = await trainParity(device);
  const top10 = await topTenParity(device);
  return {
    device: forward.ranOn,
    forward_logits: forward.logits,
    forward_loss: forward.loss,
    train_step_updated: { ...train.updated, tensors: train.tensors },
    train_step_loss: train.loss,
    top10: {
      identical_lists: top10.identical_lists,
      overlap: top10.overlap,
      users: top10.users,
      scores: top10.scores,
    },
    tolerance: { abs: ABS, rel: REL },
    // The top-10 too: every user's items the same, in order, their scores within tolerance.
    within_tolerance: forward.logits.within_tolerance && forward.loss.within_tolerance &&
      train.updated.within_tolerance && train.loss.within_tolerance &&
      top10.identical_lists === 1 && (top10.scores?.within_tolerance ?? false),
  };
}
