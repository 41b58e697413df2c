/**
 * Every family as one table: THUDM's GLM and the decoders (llama, mistral, qwen2, qwen3, GLM-4),
 * each a tiny model with noisy weights, and the same properties checked row by row through the
 * one seam (`modelFamily`, `buildDecoderForwardGraph`, the training graphs, LoRA and the model
 * writer), so a feature cannot exist for one family only:
 * - cached decoding (prefill, beam steps with reordering, target scoring) equals the full forward;
 * - full training and LoRA on every linear module (with the special-token rows, and a rotary
 *   family's intra table) have float64 gradients equal to central finite differences;
 * - an adapter applied by its hook equals the same adapter merged into the weights, and a model
 *   written by the one writer loads back to the same logits;
 * - a prompt's log-probabilities have the same bits alone and beside another prompt (sharded runs
 *   merge to the unsharded output byte for byte).
 * The families' own references (the GLM loop reference, the decoders' loop reference) stay in
 * model_glm_test.ts and model_decoder_test.ts.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CachedDecoder } from "../lib/generate/decoder.ts";
import { rowPrompts } from "../lib/generate/step_model.ts";
import { mergeAdapter } from "../lib/model/adapter.ts";
import { writeModelFiles } from "../lib/model/families/merge.ts";
import { modelFamily } from "../lib/model/family.ts";
import { blockOf, type DecoderConfig } from "../lib/model/families/config.ts";
import { type AttentionMode, buildDecoderForwardGraph } from "../lib/model/families/decoder.ts";
import { loadAnyModel } from "../lib/model/load_any.ts";
import {
  initLora,
  type LoraConfig,
  loraHook,
  loraTargetTable,
  resolveLoraTargets,
} from "../lib/model/lora.ts";
import type { Weights } from "../lib/model/weights.ts";
import type { TensorData } from "../lib/onnx/graph.ts";
import { Rng } from "../lib/random.ts";
import { Session } from "../lib/runtime/session.ts";
import { buildGradGraph, trainNames } from "../lib/train/train_graph.ts";
import {
  decoderBatch,
  decoderFeeds,
  FAMILY_TABLE,
  noisyDecoderWeights,
} from "./helpers/decoder.ts";
import { compareWithFiniteDifferences } from "./helpers/grad_check.ts";
import { withTempDir } from "./helpers/temp.ts";

/** Feeds of `graph` only (a learned-position family takes no rotary positions). */
function feedsOf(session: Session, feeds: Record<string, TensorData>): Record<string, TensorData> {
  return Object.fromEntries(
    Object.entries(feeds).filter(([name]) => session.inputNames.includes(name)),
  );
}

const prompts = [
  { ids: [5, 9, 2, 20, 7], inter: [0, 1, 2, 3, 4], intra: [0, 1, 2, 0, 0], maskIndex: 3 },
  { ids: [7, 1, 1, 22], inter: [0, 1, 2, 3], intra: [0, 0, 1, 0], maskIndex: 1 },
];

/** Log-softmax rows of the full forward over part A + `fed`, at the fed tokens. */
async function fullLogProbs(
  session: Session,
  prompt: typeof prompts[number],
  fed: { ids: number[]; intra: number[] },
  vocab: number,
): Promise<number[][]> {
  const n = fed.ids.length;
  const ids = [...prompt.ids, ...fed.ids];
  const L = ids.length;
  const inter = [...prompt.inter, ...fed.ids.map(() => prompt.maskIndex)];
  const rope = [...prompt.inter, ...fed.ids.map((_, t) => prompt.maskIndex + t + 1)];
  const i32 = (shape: number[], xs: number[]): TensorData => ({
    dtype: "int32",
    shape,
    data: Int32Array.from(xs),
  });
  const out = await session.run(feedsOf(session, {
    input_ids: i32([1, L], ids),
    position_ids: i32([1, 2, L], [...inter, ...prompt.intra, ...fed.intra]),
    rope_position_ids: i32([1, L], rope),
    sep: i32([1], [prompt.ids.length]),
  }));
  const logits = out.logits.data as Float32Array;
  return Array.from({ length: n }, (_, t) => {
    const r = Array.from(
      logits.subarray((prompt.ids.length + t) * vocab, (prompt.ids.length + t + 1) * vocab),
    );
    const max = Math.max(...r);
    const lse = max + Math.log(r.reduce((a, v) => a + Math.exp(v - max), 0));
    return r.map((v) => v - lse);
  });
}

function worst(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i] - b[i]));
  return w;
}

/** Special-token rows every row of the table trains and decodes with. */
const ADDED = 2;

async function cachedEqualsFull(config: DecoderConfig, attention: AttentionMode) {
  const weights = noisyDecoderWeights(config, 6, { intra: true, addedRows: ADDED });
  const V = config.vocabSize + ADDED;
  const family = modelFamily({ config, weights }, { attention, addedRows: ADDED });
  const decoder = await CachedDecoder.create(family, { device: "cpu", threads: 1 });
  const { graph } = buildDecoderForwardGraph({
    config,
    weights,
    outputs: "logits",
    attention,
    addedRows: ADDED,
  });
  const full = await Session.create(graph, { device: "cpu", threads: 1 });
  try {
    await decoder.prefill(prompts.map((p) => ({
      ids: Int32Array.from(p.ids),
      inter: Int32Array.from(p.inter),
      intra: Int32Array.from(p.intra),
      maskIndex: p.maskIndex,
    })));
    const K = 3;
    let rows = Array.from(
      { length: 2 * K },
      () => ({ ids: [] as number[], intra: [] as number[] }),
    );
    // The second step feeds an added row (id V - 1); the last two pack prompts of different
    // numbers of rows (2 and 1, then 1 and 2), as a beam search with pruned beams does.
    const steps: { ids: number[]; intra: number[]; beam: number[]; rows?: number[] }[] = [
      { ids: [3, 3, 3, 3, 3, 3], intra: [1, 1, 1, 1, 1, 1], beam: [0, 0, 0, 0, 0, 0] },
      { ids: [8, V - 1, 4, 2, 6, 9], intra: [2, 2, 2, 2, 2, 2], beam: [0, 1, 2, 3, 4, 5] },
      { ids: [1, 12, 12, 5, 7, 7], intra: [3, 2, 3, 3, 2, 4], beam: [1, 0, 0, 5, 3, 3] },
      { ids: [6, 2, 11], intra: [4, 3, 5], beam: [2, 0, 4], rows: [2, 1] },
      { ids: [9, 4, 1], intra: [5, 6, 6], beam: [1, 2, 2], rows: [1, 2] },
    ];
    for (const [s, step] of steps.entries()) {
      rows = step.beam.map((b, r) => ({
        ids: [...(s === 0 ? [] : rows[b].ids), step.ids[r]],
        intra: [...(s === 0 ? [] : rows[b].intra), step.intra[r]],
      }));
      const input = {
        perPrompt: K,
        rows: step.rows ? Int32Array.from(step.rows) : undefined,
        ids: Int32Array.from(step.ids),
        inter: new Int32Array(0),
        intra: Int32Array.from(step.intra),
        beamIndex: Int32Array.from(step.beam),
      };
      const promptOf = rowPrompts(input, prompts.length);
      input.inter = Int32Array.from(promptOf, (q) => prompts[q].maskIndex);
      const logp = await decoder.step(input);
      for (let r = 0; r < step.ids.length; r++) {
        const want = await fullLogProbs(full, prompts[promptOf[r]], rows[r], V);
        const err = worst(logp.subarray(r * V, (r + 1) * V), want[want.length - 1]);
        assert.ok(err < 1e-4, `step ${s} row ${r}: differs by ${err}`);
      }
    }
    const T = 3;
    const ids = [3, 8, 1, 3, 4, 2, 3, 9, 9, 3, 2, 5];
    const intra = [1, 2, 3, 1, 2, 2, 1, 2, 3, 1, 2, 3];
    const targets = [8, 1, 4, 4, 2, 6, 9, 9, 10, 2, 5, V - 2];
    const scores = await decoder.scoreTargets({
      perPrompt: 2,
      length: T,
      ids: Int32Array.from(ids),
      inter: Int32Array.from(ids, (_, i) => prompts[Math.floor(i / (2 * T))].maskIndex),
      intra: Int32Array.from(intra),
      targets: Int32Array.from(targets),
    });
    for (let r = 0; r < 4; r++) {
      const want = await fullLogProbs(full, prompts[Math.floor(r / 2)], {
        ids: ids.slice(r * T, r * T + T),
        intra: intra.slice(r * T, r * T + T),
      }, V);
      for (let t = 0; t < T; t++) {
        const err = Math.abs(scores[r * T + t] - want[t][targets[r * T + t]]);
        assert.ok(err < 1e-4, `score row ${r} token ${t}: differs by ${err}`);
      }
    }
  } finally {
    await decoder.release();
    await full.release();
  }
}

async function gradientsMatch(
  config: DecoderConfig,
  lora: LoraConfig | null,
  attention: AttentionMode,
) {
  const weights = noisyDecoderWeights(config, 3, { intra: true, addedRows: ADDED });
  const setup = {
    config,
    weights,
    lora,
    dtype: "float64" as const,
    decoder: { attention, addedRows: ADDED },
  };
  const { graph, params } = buildGradGraph(setup);
  const names = params.map((p) => p.name);
  assert.ok(names.includes("model.embed_tokens.added.weight"), "the special rows train");
  if (blockOf(config).positions === "rotary") {
    assert.ok(names.includes("model.intra_position_embeddings.weight"), "the intra table trains");
  }
  const batch = decoderBatch(config.vocabSize + ADDED, [5, 3], 9, 11, [0, 2]);
  batch.inputIds[1] = config.vocabSize; // an added row as input ...
  batch.labels[7] = config.vocabSize + 1; // ... and as a label
  const session = await Session.create(graph, { device: "cpu", threads: 1 });
  try {
    const feeds: Record<string, TensorData> = {
      ...feedsOf(session, decoderFeeds(batch) as Record<string, TensorData>),
      loss_scale: { dtype: "float64", shape: [1], data: Float64Array.of(1) },
    };
    const rng = new Rng(5);
    for (const p of params) {
      const known = weights.get(p.name);
      const n = p.shape.reduce((a, b) => a * b, 1);
      // LoRA A and B random (B is zero at init, which would hide A's gradient).
      const data = known
        ? Float64Array.from(known)
        : Float64Array.from({ length: n }, () => 0.3 * rng.normal());
      feeds[p.name] = { dtype: "float64", shape: p.shape, data };
    }
    const pairs = params.map((p) => ({ input: p.name, grad: trainNames.grad(p.name) }));
    const result = await compareWithFiniteDifferences(session, feeds, "loss", pairs, {
      maxElements: 3,
    });
    assert.ok(result.largest > 1e-3);
    assert.ok(result.worst < 1e-5, JSON.stringify(result.perTensor));
  } finally {
    await session.release();
  }
}

/** Logits of the forward graph over one batch. */
async function logitsOf(
  config: DecoderConfig,
  weights: Weights,
  options: { attention: AttentionMode; addedRows: number; lora?: LoraConfig; adapter?: Weights },
): Promise<Float32Array> {
  const { graph } = buildDecoderForwardGraph({
    config,
    weights,
    outputs: "logits",
    attention: options.attention,
    addedRows: options.addedRows,
    linear: options.lora && loraHook(config, options.lora, { weights: options.adapter }),
  });
  const session = await Session.create(graph, { device: "cpu", threads: 1 });
  try {
    const batch = decoderBatch(config.vocabSize + options.addedRows, [4, 6], 8, 2, [1, 0]);
    const feeds = feedsOf(session, decoderFeeds(batch, false) as Record<string, TensorData>);
    return (await session.run(feeds)).logits.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** The log-probabilities of prompt 0's rows after two beam steps, for `batch` prompts. */
async function firstPromptSteps(
  config: DecoderConfig,
  batch: typeof prompts,
): Promise<Float32Array> {
  const weights = noisyDecoderWeights(config, 6, { intra: true });
  const decoder = await CachedDecoder.create(modelFamily({ config, weights }), {
    device: "cpu",
    threads: 2,
  });
  try {
    await decoder.prefill(batch.map((p) => ({
      ids: Int32Array.from(p.ids),
      inter: Int32Array.from(p.inter),
      intra: Int32Array.from(p.intra),
      maskIndex: p.maskIndex,
    })));
    const K = 3;
    const n = batch.length * K;
    const inter = Int32Array.from({ length: n }, (_, r) => batch[Math.floor(r / K)].maskIndex);
    let logp: Float32Array = new Float32Array(0);
    for (const [s, token] of [3, 8].entries()) {
      logp = await decoder.step({
        perPrompt: K,
        ids: Int32Array.from({ length: n }, (_, r) => token + (r % K)),
        inter,
        intra: new Int32Array(n).fill(s + 1),
        beamIndex: Int32Array.from({ length: n }, (_, r) => (s === 0 ? 0 : r)),
      });
    }
    return logp.slice(0, K * decoder.vocabSize);
  } finally {
    await decoder.release();
  }
}

for (const [name, config] of Object.entries(FAMILY_TABLE)) {
  const attention: AttentionMode = config.attention ?? "causal";
  // Every linear module the family has.
  const targets = Object.keys(loraTargetTable(config).targets).filter((t) => {
    try {
      return resolveLoraTargets(config, [t]).length === 1;
    } catch {
      return false; // gate_up_proj where gate_proj and up_proj are separate, or the reverse
    }
  });
  const lora: LoraConfig = { rank: 2, alpha: 4, dropout: 0, targets };

  Deno.test(`${name} (${attention}): cached decoding equals the full forward, added rows included`, () =>
    cachedEqualsFull(config, attention));

  Deno.test(`${name}: a prompt's log-probabilities have the same bits alone and beside another`, async () => {
    const alone = await firstPromptSteps(config, [prompts[0]]);
    const beside = await firstPromptSteps(config, prompts);
    const differing = alone.filter((v, i) => !Object.is(v, beside[i])).length;
    assert.equal(differing, 0, `${differing} of ${alone.length} log-probabilities differ`);
  });

  Deno.test(`${name}: full training and LoRA gradients match finite differences (float64)`, async () => {
    await gradientsMatch(config, null, attention);
    await gradientsMatch(config, lora, attention === "prefix" ? "causal" : "prefix");
  });

  Deno.test(`${name}: rotary tables cut to the run's length give the same logits`, async () => {
    const weights = noisyDecoderWeights(config, 9, { intra: true });
    const options = { attention: "prefix" as const, addedRows: 0 };
    const batch = decoderBatch(config.vocabSize, [4, 6], 8, 2, [1, 0]);
    const longest = Math.max(...batch.ropePositionIds) + 1;
    assert.ok(longest < config.maxPositionEmbeddings);
    assert.deepEqual(
      await logitsOf({ ...config, positionLimit: longest }, weights, options),
      await logitsOf(config, weights, options),
    );
    // And the tables are cut: no constant of the model's maximum rows is left.
    const rowsOf = (c: DecoderConfig) =>
      new Set(
        [
          ...buildDecoderForwardGraph({ config: c, weights, outputs: "logits" }).graph.initializers
            .values(),
        ].map((t) => t.shape[0]),
      );
    if (config.family !== "thudm_glm") {
      assert.ok(rowsOf(config).has(config.maxPositionEmbeddings));
      assert.ok(!rowsOf({ ...config, positionLimit: longest }).has(config.maxPositionEmbeddings));
    }
  });

  Deno.test(`${name}: an adapter by its hook equals it merged; a written model loads to the same logits`, () =>
    withTempDir(async (dir) => {
      const weights = noisyDecoderWeights(config, 9, { intra: true });
      const adapter = initLora(config, lora, new Rng(4));
      const rng = new Rng(8);
      for (const [k, v] of adapter) {
        if (k.includes("lora_B")) { for (let i = 0; i < v.length; i++) v[i] = 0.2 * rng.normal(); }
      }
      const options = { attention, addedRows: 0 };
      const hooked = await logitsOf(config, weights, { ...options, lora, adapter });
      const merged = mergeAdapter(weights, config, { lora, weights: adapter });
      const err = worst(hooked, await logitsOf(config, merged, options));
      assert.ok(err < 1e-4, `hook and merge differ by ${err}`);
      // The writer of every family, then the loader of every family.
      await Deno.writeTextFile(join(dir, "tokenizer.json"), "{}");
      await writeModelFiles(dir, config, merged, {
        addedRows: 0,
        attention,
        tokenizerFile: join(dir, "tokenizer.json"),
      });
      const loaded = await loadAnyModel(dir, { tokenizerIds: 0 });
      assert.equal(loaded.config.family, config.family);
      assert.deepEqual(
        await logitsOf(loaded.config, loaded.weights, options),
        await logitsOf(config, merged, options),
      );
    }));
}

Deno.test("LoRA targets are a set: their order on the command line draws the same adapter", () => {
  for (const config of Object.values(FAMILY_TABLE)) {
    const table = loraTargetTable(config);
    const canonical = resolveLoraTargets(config, []);
    const all = Object.keys(table.targets).filter((t) => {
      try {
        return resolveLoraTargets(config, [t]).length === 1;
      } catch {
        return false;
      }
    });
    const reversed = [...all].reverse();
    assert.deepEqual(resolveLoraTargets(config, reversed), all);
    const draw = (targets: string[]) =>
      initLora(config, { rank: 2, alpha: 4, dropout: 0, targets }, new Rng(4));
    const a = draw(resolveLoraTargets(config, all));
    const b = draw(resolveLoraTargets(config, reversed));
    assert.deepEqual([...a.keys()], [...b.keys()]);
    for (const [name, t] of a) assert.deepEqual(b.get(name), t, name);
    // The default order is the table's already: runs without targets draw as before.
    assert.deepEqual(canonical, table.defaults);
  }
});
