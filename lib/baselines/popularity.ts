/**
 * Most-popular: every user gets the items ranked by their number of training interactions
 * (histories.ts says which interactions those are: never a validation or test target). Each
 * occurrence in a history counts, so a repeated purchase counts twice. Ties go to the item
 * listed first in `entities.json`.
 *
 * @module
 */

/**
 * Returns the number of training interactions of every pool id (index = id).
 *
 * @example
 * ```ts
 * popularityCounts([Int32Array.of(0, 1), Int32Array.of(0)], 3); // Float64Array [2, 1, 0]
 * ```
 */
export function popularityCounts(
  histories: Iterable<ArrayLike<number>>,
  poolSize: number,
): Float64Array {
  const counts = new Float64Array(poolSize);
  for (const history of histories) {
    for (let i = 0; i < history.length; i++) counts[history[i]]++;
  }
  return counts;
}

/**
 * Returns `ids` ordered by `score` descending, then `popularity` descending, then id ascending
 * (pool order): the one tie rule of every baseline.
 */
export function orderItems(
  ids: ArrayLike<number>,
  score: (id: number) => number,
  popularity: Float64Array,
): number[] {
  return Array.from(ids).sort((a, b) =>
    score(b) - score(a) || popularity[b] - popularity[a] || a - b
  );
}
