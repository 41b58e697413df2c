/**
 * The batch the model benchmarks run on (issue figures: batch 8 of 256 random tokens, sep 160):
 * part A is positions 0..sep-1, part B one span at the last mask (inter sep-1, intra 1, 2, ...)
 * whose 96 tokens carry the loss. Seeded, so every run measures the same input.
 *
 * @module
 */

import type { TensorData } from "../lib/onnx/graph.ts";
import { Rng } from "../lib/random.ts";

/** Shape of the benchmark batch. */
export const BATCH = { B: 8, L: 256, SEP: 160 } as const;

/** The forward graph's inputs for the benchmark batch, over a vocabulary of `vocab` ids. */
export function syntheticBatch(vocab: number): Record<string, TensorData> {
  const { B, L, SEP } = BATCH;
  const rng = new Rng(2);
  const ids = Int32Array.from({ length: B * L }, () => rng.int(vocab));
  const pos = new Int32Array(B * 2 * L);
  const labels = new Int32Array(B * L).fill(-100);
  const mask = new Float32Array(B * L);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      pos[b * 2 * L + t] = t < SEP ? t : SEP - 1;
      pos[b * 2 * L + L + t] = t < SEP ? 0 : t - SEP + 1;
      if (t >= SEP) {
        labels[b * L + t] = rng.int(vocab);
        mask[b * L + t] = 1;
      }
    }
  }
  return {
    input_ids: { dtype: "int32", shape: [B, L], data: ids },
    position_ids: { dtype: "int32", shape: [B, 2, L], data: pos },
    sep: { dtype: "int32", shape: [B], data: new Int32Array(B).fill(SEP) },
    labels: { dtype: "int32", shape: [B, L], data: labels },
    loss_mask: { dtype: "float32", shape: [B, L], data: mask },
  };
}
