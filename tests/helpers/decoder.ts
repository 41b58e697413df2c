// Shared by the decoder-family tests: a tiny config of every family (as config.json objects, so
// parsing is exercised), noisy random weights (far from an init, so every tensor matters) and
// random batches with rotary positions.
import type { Batch } from "../../lib/collate/types.ts";
import {
  blockOf,
  type DecoderConfig,
  type DecoderFamily,
  decoderWeightShapes,
  type FamilyName,
  INTRA_TABLE,
} from "../../lib/model/families/config.ts";
import { glmDecoderConfig } from "../../lib/model/config.ts";
import { ADDED_ROWS } from "../../lib/model/families/decoder.ts";
import { ropePositionIds } from "../../lib/model/families/positions.ts";
import { parseDecoderConfig } from "../../lib/model/families/registry.ts";
import type { Weights } from "../../lib/model/weights.ts";
import { Rng } from "../../lib/random.ts";

const common = {
  vocab_size: 29,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 64,
  rope_theta: 10000,
  rms_norm_eps: 1e-6,
  intra_position_rows: 6,
};

/** config.json objects of a tiny model of each family, GQA everywhere, each variant on. */
export const TINY_JSON: Record<DecoderFamily, Record<string, unknown>> = {
  llama: {
    ...common,
    model_type: "llama",
    attention_bias: true,
    tie_word_embeddings: false,
    rope_scaling: {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 16,
    },
  },
  mistral: { ...common, model_type: "mistral", sliding_window: null, num_key_value_heads: 1 },
  qwen2: { ...common, model_type: "qwen2", tie_word_embeddings: true },
  qwen3: { ...common, model_type: "qwen3", head_dim: 6, tie_word_embeddings: true },
  glm: { ...common, model_type: "glm", head_dim: 8, partial_rotary_factor: 0.5 },
  glm4: { ...common, model_type: "glm4", head_dim: 8, partial_rotary_factor: 0.5 },
};

/** The parsed tiny configs. */
export const TINY: Record<DecoderFamily, DecoderConfig> = Object.fromEntries(
  Object.entries(TINY_JSON).map(([k, v]) => [k, parseDecoderConfig(v, `tiny ${k}`)]),
) as Record<DecoderFamily, DecoderConfig>;

/**
 * Every family as a row: the tiny decoders and a tiny THUDM GLM of the same width, normalised
 * as the loader normalises it.
 */
export const FAMILY_TABLE: Record<FamilyName, DecoderConfig> = {
  thudm_glm: glmDecoderConfig({
    vocabSize: 29,
    hiddenSize: 16,
    numLayers: 2,
    numHeads: 4,
    maxSequenceLength: 63,
    layernormEpsilon: 1e-5,
  }),
  ...TINY,
};

/** Noisy weights: matrices std 0.3, norms around 1, biases std 0.1; optional intra table/rows. */
export function noisyDecoderWeights(
  config: DecoderConfig,
  seed: number,
  extra: { intra?: boolean; addedRows?: number } = {},
): Weights {
  const rng = new Rng(seed);
  const weights: Weights = new Map();
  const shapes = decoderWeightShapes(config);
  // GLM's position tables are its own weights; a rotary family's intra table is the method's.
  if (extra.intra && blockOf(config).positions === "rotary") {
    shapes.set(INTRA_TABLE, [config.intraRows, config.hiddenSize]);
  }
  if (extra.addedRows) {
    shapes.set(ADDED_ROWS.embed, [extra.addedRows, config.hiddenSize]);
    if (!config.tieWordEmbeddings) {
      shapes.set(ADDED_ROWS.head, [extra.addedRows, config.hiddenSize]);
    }
  }
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const norm = name.endsWith("norm.weight");
    const std = norm || name.endsWith(".bias") ? 0.1 : 0.3;
    for (let i = 0; i < n; i++) data[i] = (norm ? 1 : 0) + std * rng.normal();
    weights.set(name, data);
  }
  return weights;
}

/** A random batch as the collator shapes it (part A, spans in part B, right padding). */
export function decoderBatch(
  vocab: number,
  seps: number[],
  length: number,
  seed: number,
  pads: number[] = [],
): Batch & { ropePositionIds: Int32Array } {
  const rng = new Rng(seed);
  const B = seps.length;
  const L = length;
  const batch: Batch = {
    batchSize: B,
    length: L,
    inputIds: new Int32Array(B * L),
    positionIds: new Int32Array(B * 2 * L),
    sep: Int32Array.from(seps),
    labels: new Int32Array(B * L).fill(-100),
    lossMask: new Float32Array(B * L),
  };
  for (let b = 0; b < B; b++) {
    const real = L - (pads[b] ?? 0);
    const sep = seps[b];
    let intra = 0;
    let mask = rng.int(sep);
    for (let t = 0; t < real; t++) {
      const at = b * L + t;
      batch.inputIds[at] = rng.int(vocab);
      if (t < sep) {
        batch.positionIds[b * 2 * L + t] = t;
        batch.positionIds[b * 2 * L + L + t] = rng.int(3);
      } else {
        if (t > sep && rng.float() < 0.3) { // a new span at a later mask
          mask = Math.min(sep - 1, mask + 1 + rng.int(2));
          intra = 0;
        }
        intra += 1;
        batch.positionIds[b * 2 * L + t] = mask;
        batch.positionIds[b * 2 * L + L + t] = intra;
        batch.labels[at] = rng.int(vocab);
        batch.lossMask[at] = 1;
      }
    }
  }
  return { ...batch, ropePositionIds: ropePositionIds(batch) };
}

/** Feeds of a decoder forward graph. */
export function decoderFeeds(batch: ReturnType<typeof decoderBatch>, withLoss = true) {
  const { batchSize: B, length: L } = batch;
  const feeds: Record<
    string,
    { dtype: "int32" | "float32"; shape: number[]; data: Int32Array | Float32Array }
  > = {
    input_ids: { dtype: "int32", shape: [B, L], data: batch.inputIds },
    position_ids: { dtype: "int32", shape: [B, 2, L], data: batch.positionIds },
    rope_position_ids: { dtype: "int32", shape: [B, L], data: batch.ropePositionIds },
    sep: { dtype: "int32", shape: [B], data: batch.sep },
  };
  if (withLoss) {
    feeds.labels = { dtype: "int32", shape: [B, L], data: batch.labels };
    feeds.loss_mask = { dtype: "float32", shape: [B, L], data: batch.lossMask };
  }
  return feeds;
}

/** max |a - b| / max(max |b|, 1e-12): the relative error used by the family tests. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let worst = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return worst / Math.max(scale, 1e-12);
}
