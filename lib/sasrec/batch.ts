/**
 * SASRec's batches: users' item sequences (item indices 1..V, oldest first) as the int32 tensors
 * of the graphs in `model.ts`. Windows are left-padded to the batch's longest (at most
 * `maxLength`) and positions are right-aligned (the latest item is at maxLength - 1), so a
 * batch of short sequences is a short tensor, not a 50-wide one.
 *
 * @module
 */

/** The tensors of one training batch. */
export interface TrainBatch {
  batchSize: number;
  /** L: the longest input window of the batch. */
  length: number;
  /** [B*L] item indices, 0 = padding (left). */
  items: Int32Array;
  /** [B*L] positions. */
  positions: Int32Array;
  /** [M] the rows (b * L + t) that carry a loss: every real input position. */
  rows: Int32Array;
  /** [M] the next item of each such row, 0-based (item index - 1). */
  targets: Int32Array;
}

/**
 * The training window of a sequence: its last maxLength + 1 items (inputs are all but the last,
 * targets all but the first). Returns undefined for a sequence too short to predict anything.
 */
export function trainingWindow(sequence: Int32Array, maxLength: number): Int32Array | undefined {
  if (sequence.length < 2) return undefined;
  return sequence.subarray(Math.max(0, sequence.length - (maxLength + 1)));
}

/**
 * One training batch of `windows` (each from {@linkcode trainingWindow}): position t of a window
 * reads item t and predicts item t + 1.
 *
 * @example
 * ```ts
 * const batch = trainingBatch([Int32Array.of(3, 1, 2)], 50);
 * // items [3, 1], positions [48, 49], rows [0, 1], targets [0, 1] (items 1 and 2, 0-based)
 * ```
 */
export function trainingBatch(windows: readonly Int32Array[], maxLength: number): TrainBatch {
  let length = 1;
  let m = 0;
  for (const w of windows) {
    length = Math.max(length, w.length - 1);
    m += w.length - 1;
  }
  const b = windows.length;
  const items = new Int32Array(b * length);
  const positions = new Int32Array(b * length);
  const rows = new Int32Array(m);
  const targets = new Int32Array(m);
  let r = 0;
  windows.forEach((w, i) => {
    const n = w.length - 1;
    const offset = i * length + (length - n);
    for (let t = 0; t < n; t++) {
      items[offset + t] = w[t];
      positions[offset + t] = maxLength - n + t;
      rows[r] = offset + t;
      targets[r++] = w[t + 1] - 1;
    }
  });
  return { batchSize: b, length, items, positions, rows, targets };
}

/** The tensors of one ranking batch: each history's last `maxLength` items. */
export interface RankBatch {
  batchSize: number;
  length: number;
  /** [B*L] item indices, left-padded with 0. */
  items: Int32Array;
  /** [B*L] positions, the latest item at maxLength - 1. */
  positions: Int32Array;
}

/**
 * One ranking batch: each history's last `maxLength` items, left-padded, so the model's state
 * after the last column is the state after the user's latest item.
 */
export function rankingBatch(
  histories: readonly ArrayLike<number>[],
  maxLength: number,
): RankBatch {
  let length = 1;
  for (const h of histories) length = Math.max(length, Math.min(h.length, maxLength));
  const b = histories.length;
  const items = new Int32Array(b * length);
  const positions = new Int32Array(b * length);
  histories.forEach((h, i) => {
    const n = Math.min(h.length, maxLength);
    const offset = i * length + (length - n);
    for (let t = 0; t < n; t++) {
      items[offset + t] = h[h.length - n + t];
      positions[offset + t] = maxLength - n + t;
    }
  });
  return { batchSize: b, length, items, positions };
}
