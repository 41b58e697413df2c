/**
 * Item-kNN: item-item cosine similarity from co-occurrence in users' training histories, and a
 * user's score for an item = the sum of its similarities to the user's history items.
 *
 * - Each user's training history counts as a set: n(i) = users whose history holds i,
 *   co(i, j) = users whose history holds both, sim(i, j) = co(i, j) / sqrt(n(i) n(j)).
 * - `neighbors` > 0 keeps only each item's that many most similar items (ties by pool order).
 * - score(u, j) = sum over the distinct items h of u's history of w(h) sim(h, j), where
 *   w(h) = recency^(steps from the end of the history to h's last occurrence): recency 1 (the
 *   default) weighs every history item the same, 0.8 favours the recent ones.
 *
 * @module
 */

/** Defaults of {@linkcode ItemKnnOptions}: every neighbour, no recency weighting. */
export const DEFAULT_ITEM_KNN: Readonly<Required<ItemKnnOptions>> = Object.freeze({
  neighbors: 0,
  recency: 1,
});

/** Options of {@linkcode ItemKnn}; defaults in {@linkcode DEFAULT_ITEM_KNN}. */
export interface ItemKnnOptions {
  /** Keep this many nearest neighbours per item; 0 keeps all co-occurring items. */
  neighbors?: number;
  /** Recency decay in (0, 1] per step back in the history (1: no weighting). */
  recency?: number;
}

function distinctSorted(history: ArrayLike<number>): Int32Array {
  return Int32Array.from(new Set(Array.from(history))).sort();
}

/**
 * An item-kNN model over pool ids.
 *
 * @example
 * ```ts
 * const knn = new ItemKnn([Int32Array.of(0, 1), Int32Array.of(0, 2)], 3);
 * knn.similarity(0, 1); // 1 / sqrt(2 * 1)
 * const scores = new Float64Array(3);
 * knn.score(Int32Array.of(1), scores); // touched ids [0]; scores[0] = 1 / sqrt(2)
 * ```
 */
export class ItemKnn {
  /** CSR neighbour lists: item i's neighbours are neighbor[offset[i] .. offset[i + 1]). */
  readonly #offset: Int32Array;
  readonly #neighbor: Int32Array;
  readonly #similarity: Float64Array;
  readonly #recency: number;

  /** Builds the similarities from `histories` (pool ids) for a pool of `poolSize` entities. */
  constructor(
    histories: Iterable<ArrayLike<number>>,
    poolSize: number,
    options: ItemKnnOptions = {},
  ) {
    this.#recency = options.recency ?? DEFAULT_ITEM_KNN.recency;
    if (!(this.#recency > 0 && this.#recency <= 1)) {
      throw new RangeError(`item-kNN recency must be in (0, 1], got ${this.#recency}`);
    }
    const sets = [...histories].map(distinctSorted);
    const users = new Float64Array(poolSize);
    let pairCount = 0;
    for (const set of sets) {
      for (const id of set) users[id]++;
      pairCount += (set.length * (set.length - 1)) / 2;
    }
    // Every co-occurring pair (a < b) as the number a * poolSize + b, sorted: equal keys are
    // adjacent, so a run's length is co(a, b). Cheaper than a map for millions of pairs.
    const keys = new Float64Array(pairCount);
    let k = 0;
    for (const set of sets) {
      for (let x = 0; x < set.length; x++) {
        for (let y = x + 1; y < set.length; y++) keys[k++] = set[x] * poolSize + set[y];
      }
    }
    keys.sort();
    const pairs: number[] = []; // a, b, co triples
    const degree = new Int32Array(poolSize);
    for (let start = 0; start < keys.length;) {
      let end = start + 1;
      while (end < keys.length && keys[end] === keys[start]) end++;
      const a = Math.floor(keys[start] / poolSize);
      const b = keys[start] - a * poolSize;
      pairs.push(a, b, end - start);
      degree[a]++;
      degree[b]++;
      start = end;
    }
    let offset: Int32Array = new Int32Array(poolSize + 1);
    for (let i = 0; i < poolSize; i++) offset[i + 1] = offset[i] + degree[i];
    let neighbor: Int32Array = new Int32Array(offset[poolSize]);
    let similarity: Float64Array = new Float64Array(offset[poolSize]);
    const fill = offset.slice(0, poolSize);
    for (let p = 0; p < pairs.length; p += 3) {
      const [a, b, co] = [pairs[p], pairs[p + 1], pairs[p + 2]];
      const sim = co / Math.sqrt(users[a] * users[b]);
      neighbor[fill[a]] = b;
      similarity[fill[a]++] = sim;
      neighbor[fill[b]] = a;
      similarity[fill[b]++] = sim;
    }
    const keep = options.neighbors ?? DEFAULT_ITEM_KNN.neighbors;
    if (keep > 0) [offset, neighbor, similarity] = truncate(offset, neighbor, similarity, keep);
    this.#offset = offset;
    this.#neighbor = neighbor;
    this.#similarity = similarity;
  }

  /** Returns sim(a, b) (0 when they never co-occur or b is not among a's kept neighbours). */
  similarity(a: number, b: number): number {
    for (let p = this.#offset[a]; p < this.#offset[a + 1]; p++) {
      if (this.#neighbor[p] === b) return this.#similarity[p];
    }
    return 0;
  }

  /**
   * Adds the scores of every item for a user with training/query `history` (pool ids, oldest
   * first) into `scores` (length = pool size, zero on entry) and returns the ids it touched
   * (those with a positive score). Reset `scores[id] = 0` for them before the next call.
   */
  score(history: ArrayLike<number>, scores: Float64Array): number[] {
    const weight = new Map<number, number>();
    for (let p = history.length - 1; p >= 0; p--) {
      // The latest occurrence of an item decides its weight.
      if (!weight.has(history[p])) {
        weight.set(history[p], this.#recency ** (history.length - 1 - p));
      }
    }
    const touched: number[] = [];
    for (const [item, w] of weight) {
      for (let p = this.#offset[item]; p < this.#offset[item + 1]; p++) {
        const j = this.#neighbor[p];
        if (scores[j] === 0) touched.push(j);
        scores[j] += w * this.#similarity[p];
      }
    }
    return touched;
  }
}

function truncate(
  offset: Int32Array,
  neighbor: Int32Array,
  similarity: Float64Array,
  keep: number,
): [Int32Array, Int32Array, Float64Array] {
  const size = offset.length - 1;
  const newOffset = new Int32Array(size + 1);
  const kept: number[] = [];
  for (let i = 0; i < size; i++) {
    const slots = Array.from({ length: offset[i + 1] - offset[i] }, (_, s) => offset[i] + s);
    slots.sort((x, y) => similarity[y] - similarity[x] || neighbor[x] - neighbor[y]);
    const chosen = slots.slice(0, keep);
    kept.push(...chosen);
    newOffset[i + 1] = newOffset[i] + chosen.length;
  }
  return [
    newOffset,
    Int32Array.from(kept, (s) => neighbor[s]),
    Float64Array.from(kept, (s) => similarity[s]),
  ];
}
