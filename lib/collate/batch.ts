/**
 * Batching collated examples into the model's {@linkcode Batch} (flat row-major typed arrays):
 * right padding with `[PAD]` (both positions 0, label -100, loss mask 0), and optional length
 * bucketing so that examples of similar length share a batch and little is padded.
 *
 * @module
 */

import type { Rng } from "../random.ts";
import type { CollatedExample } from "./example.ts";
import type { Batch } from "./types.ts";

/** Options of {@linkcode makeBatch}. */
export interface BatchOptions {
  /** Pad every example to exactly this length (an example longer than it is a RangeError). */
  length?: number;
  /** Round the padded length up to a multiple of this (e.g. 8 for tensor cores). Default 1. */
  multipleOf?: number;
}

/**
 * Pads `examples` on the right with the `pad` id into one batch. The padded length is the longest
 * example (rounded up to `multipleOf`), or `options.length`.
 *
 * @example
 * ```ts
 * import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
 * import type { CollatedExample } from "./example.ts";
 *
 * declare const examples: CollatedExample[], tokenizer: TextTokenizer;
 * const batch = makeBatch(examples, tokenizer.special.pad, { multipleOf: 8 });
 * batch.inputIds.length === batch.batchSize * batch.length; // true
 * ```
 */
export function makeBatch(
  examples: readonly CollatedExample[],
  pad: number,
  options: BatchOptions = {},
): Batch {
  const batchSize = examples.length;
  if (batchSize === 0) throw new RangeError("a batch needs at least one example");
  let longest = 0;
  for (const example of examples) longest = Math.max(longest, example.length);
  const multiple = Math.max(1, options.multipleOf ?? 1);
  const length = options.length ?? Math.ceil(longest / multiple) * multiple;
  if (longest > length) {
    throw new RangeError(`an example has ${longest} tokens, more than the batch length ${length}`);
  }
  const inputIds = new Int32Array(batchSize * length).fill(pad);
  const positionIds = new Int32Array(batchSize * 2 * length);
  const sep = new Int32Array(batchSize);
  const labels = new Int32Array(batchSize * length).fill(-100);
  const lossMask = new Float32Array(batchSize * length);
  for (let b = 0; b < batchSize; b++) {
    const example = examples[b];
    const row = b * length;
    inputIds.set(example.inputIds, row);
    positionIds.set(example.inter, 2 * row);
    positionIds.set(example.intra, 2 * row + length);
    labels.set(example.labels, row);
    lossMask.fill(1, row + example.sep, row + example.length);
    sep[b] = example.sep;
  }
  return { batchSize, length, inputIds, positionIds, sep, labels, lossMask };
}

/**
 * Groups example indices `0..lengths.length-1` into batches of `batchSize` (the last may be
 * smaller) with similar lengths: the indices are shuffled, cut into windows of `window` batches,
 * sorted by length inside each window, cut into batches, and the batches shuffled. Every choice
 * comes from `rng`, so a seed gives the same plan everywhere.
 *
 * @example
 * ```ts
 * import { Rng } from "../random.ts";
 * import type { CollatedExample } from "./example.ts";
 * import type { TokenizedRecord } from "./tokenize.ts";
 *
 * declare const records: TokenizedRecord[], seed: number, pad: number;
 * declare function collateOne(index: number): CollatedExample;
 * const plan = bucketByLength(records.map((r) => r.ids.length), 16, Rng.derive(seed, "epoch", 0));
 * for (const indices of plan) makeBatch([...indices].map(collateOne), pad);
 * ```
 */
export function bucketByLength(
  lengths: ArrayLike<number>,
  batchSize: number,
  rng: Rng,
  window = 50,
): Int32Array[] {
  if (!(Number.isInteger(batchSize) && batchSize >= 1)) {
    throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  }
  const n = lengths.length;
  const indices = rng.shuffle(Int32Array.from({ length: n }, (_, i) => i));
  const span = Math.max(1, window) * batchSize;
  const batches: Int32Array[] = [];
  for (let lo = 0; lo < n; lo += span) {
    // Sort by length, ties by index, so the plan does not depend on the sort's stability.
    const part = Array.from(indices.subarray(lo, Math.min(n, lo + span)))
      .sort((a, b) => lengths[a] - lengths[b] || a - b);
    for (let i = 0; i < part.length; i += batchSize) {
      batches.push(Int32Array.from(part.slice(i, i + batchSize)));
    }
  }
  return rng.shuffle(batches);
}
