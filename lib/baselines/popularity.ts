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

/**
 * Returns the best `k` of `ids` in the order {@linkcode orderItems} gives, skipping ids for
 * which `skip` is true, without sorting them all (item-kNN touches thousands of items per user
 * and keeps 20).
 *
 * @example
 * ```ts
 * topItems([3, 1, 2], (id) => id, new Float64Array(4), 2); // [3, 2]
 * ```
 */
export function topItems(
  ids: ArrayLike<number>,
  score: (id: number) => number,
  popularity: Float64Array,
  k: number,
  skip?: (id: number) => boolean,
): number[] {
  // a ranks before b: higher score, then more popular, then lower id (a total order)
  const before = (a: number, b: number) =>
    (score(a) - score(b) || popularity[a] - popularity[b] || b - a) > 0;
  const out: number[] = [];
  if (k <= 0) return out;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (skip?.(id)) continue;
    if (out.length === k && !before(id, out[k - 1])) continue;
    let j = out.length < k ? out.push(id) - 1 : k - 1;
    while (j > 0 && before(id, out[j - 1])) {
      out[j] = out[j - 1];
      j--;
    }
    out[j] = id;
  }
  return out;
}
