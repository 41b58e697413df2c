// Shared by the model tests: a small random GLM (weights far from the std-0.02 init, so every
// parameter visibly matters) and random batches.
import type { GlmConfig } from "../../lib/model/config.ts";
import { weightShapes } from "../../lib/model/config.ts";
import type { Weights } from "../../lib/model/weights.ts";
import { Rng } from "../../lib/random.ts";
import type { Batch } from "../../lib/collate/types.ts";

export const SMALL: GlmConfig = {
  vocabSize: 37,
  hiddenSize: 16,
  numLayers: 2,
  numHeads: 2,
  maxSequenceLength: 12,
  layernormEpsilon: 1e-5,
};

/** Random weights with std 0.3, LayerNorm weights around 1 and non-zero biases. */
export function noisyWeights(config: GlmConfig, seed: number): Weights {
  const rng = new Rng(seed);
  const weights: Weights = new Map();
  for (const [name, shape] of weightShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const base = name.endsWith("layernorm.weight") ? 1 : 0;
    const std = name.endsWith(".bias") || base ? 0.1 : 0.3;
    for (let i = 0; i < n; i++) data[i] = base + std * rng.normal();
    weights.set(name, data);
  }
  return weights;
}

/**
 * A random batch: part A of length sep[b] (inter 0..sep-1, intra random small), part B with inter
 * positions of part A and intra 1, 2, ...; labels on part B, -100 elsewhere; right padding with
 * position 0 when `pad` is given for a row.
 */
export function randomBatch(
  config: GlmConfig,
  seps: number[],
  length: number,
  seed: number,
  pads: number[] = [],
): Batch {
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
    for (let t = 0; t < L; t++) {
      const at = b * L + t;
      if (t >= real) continue; // padding: id 0, positions 0, no loss
      batch.inputIds[at] = rng.int(config.vocabSize);
      if (t < sep) {
        batch.positionIds[b * 2 * L + t] = t;
        batch.positionIds[b * 2 * L + L + t] = rng.int(3);
      } else {
        intra += 1;
        batch.positionIds[b * 2 * L + t] = rng.int(sep);
        batch.positionIds[b * 2 * L + L + t] = Math.min(intra, config.maxSequenceLength);
        batch.labels[at] = rng.int(config.vocabSize);
        batch.lossMask[at] = 1;
      }
    }
  }
  return batch;
}

/** The feeds of a forward graph for `batch`. */
export function forwardFeeds(batch: Batch, withLoss = true) {
  const { batchSize: B, length: L } = batch;
  const feeds: Record<
    string,
    { dtype: "int32" | "float32"; shape: number[]; data: Int32Array | Float32Array }
  > = {
    input_ids: { dtype: "int32", shape: [B, L], data: batch.inputIds },
    position_ids: { dtype: "int32", shape: [B, 2, L], data: batch.positionIds },
    sep: { dtype: "int32", shape: [B], data: batch.sep },
  };
  if (withLoss) {
    feeds.labels = { dtype: "int32", shape: [B, L], data: batch.labels };
    feeds.loss_mask = { dtype: "float32", shape: [B, L], data: batch.lossMask };
  }
  return feeds;
}

/** The largest absolute difference between two arrays of equal length. */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}
