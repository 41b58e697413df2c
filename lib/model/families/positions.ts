/**
 * Rotary positions of the decoder families (docs/method.md section 11): a part A token's is its
 * inter-position; a part B token's is its span's mask index plus its offset in the span (1 for
 * `[S]`, 2 for the next token, ...), so a span reads to the rotary attention as if it continued
 * right after its mask. Padding (intra-position 0 in part B) gets 0.
 *
 * @module
 */

/** Position ids of a batch as the collator builds them. */
export interface PositionBatch {
  batchSize: number;
  length: number;
  /** [B, 2, L]: inter then intra. */
  positionIds: ArrayLike<number>;
  /** [B]. */
  sep: ArrayLike<number>;
}

/**
 * `rope_position_ids` [B, L] of a collated batch. A new span starts at `sep` and wherever the
 * inter-position (the span's mask index) changes.
 *
 * @example
 * ```ts
 * // docs/method.md section 6's worked example: part A of 5, spans at masks 0 and 3
 * // inter 0 1 2 3 4 | 0 0 0 0 3 3, intra 0 1 2 0 0 | 1 2 3 4 1 2
 * // rope  0 1 2 3 4 | 1 2 3 4 4 5
 * ```
 */
export function ropePositionIds(batch: PositionBatch): Int32Array {
  const { batchSize: B, length: L, positionIds, sep } = batch;
  const out = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    let offset = 0;
    for (let t = 0; t < L; t++) {
      const inter = positionIds[b * 2 * L + t];
      const intra = positionIds[b * 2 * L + L + t];
      if (t < sep[b]) {
        out[b * L + t] = inter;
        continue;
      }
      if (intra === 0) continue; // padding
      const newSpan = t === sep[b] || inter !== positionIds[b * 2 * L + t - 1];
      offset = newSpan ? 1 : offset + 1;
      out[b * L + t] = inter + offset;
    }
  }
  return out;
}
