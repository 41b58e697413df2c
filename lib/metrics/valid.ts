/**
 * The valid-output rate of item tasks (docs/method.md section 10: "the share of outputs that are
 * valid items"). An output is one distinct entry among the first k of a prediction list (repeats
 * ignored, as in ranking.ts); it is valid when it names an item of the dataset's entity pool.
 * A method that decodes under the entity trie scores 1; free-text generation may not.
 *
 * @module
 */

/** Counts of outputs looked at and outputs that were valid. */
export interface ValidCount {
  /** Outputs that named an item of the pool. */
  valid: number;
  /** Outputs looked at (at most k distinct entries). */
  total: number;
}

/**
 * Returns how many of the first `k` distinct entries of `ranked` satisfy `isValid`, and how
 * many were looked at (fewer than k for a shorter list; 0 for an empty one).
 *
 * @example
 * ```ts
 * validOutputs(["A", "nonsense", "A", "B"], 3, (e) => e === "A" || e === "B");
 * // {valid: 2, total: 3}: "A", "nonsense", "B" (the second "A" is a repeat)
 * ```
 */
export function validOutputs<T>(
  ranked: ArrayLike<T>,
  k: number,
  isValid: (entry: T) => boolean,
): ValidCount {
  const seen = new Set<T>();
  let valid = 0;
  for (let i = 0; i < ranked.length && seen.size < k; i++) {
    const entry = ranked[i];
    if (seen.has(entry)) continue;
    seen.add(entry);
    if (isValid(entry)) valid++;
  }
  return { valid, total: seen.size };
}

/** Returns valid / total summed over `counts`, or 0 when no output was looked at. */
export function validRate(counts: Iterable<ValidCount>): number {
  let valid = 0;
  let total = 0;
  for (const c of counts) {
    valid += c.valid;
    total += c.total;
  }
  return total > 0 ? valid / total : 0;
}
