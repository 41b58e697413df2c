/**
 * Ranking metrics with one relevant item (leave-one-out): the target's rank in a predicted list,
 * hit rate HR@k and NDCG@k = 1/log2(rank + 1). Not for graded relevance or several targets.
 *
 * Ties and repeats, decided here once for every method: a prediction list is taken in its given
 * order (the method breaks its own score ties); a repeated entry counts only at its first
 * occurrence, so it takes no extra rank; a target that is absent, or ranked below k, or a list
 * shorter than k that lacks it, is a miss (HR 0, NDCG 0); an empty list is a miss.
 *
 * @module
 */

/**
 * Returns the 1-based rank of `target` in `ranked`, counting distinct entries only (a repeat
 * after an entry's first occurrence takes no rank), or `Infinity` when the target is absent.
 *
 * @example
 * ```ts
 * targetRank(["b", "a", "b", "c"], "c"); // 3: the second "b" is ignored
 * targetRank([], "c"); // Infinity
 * ```
 */
export function targetRank<T>(ranked: ArrayLike<T>, target: T): number {
  const seen = new Set<T>();
  for (let i = 0; i < ranked.length; i++) {
    const entry = ranked[i];
    if (entry === target) return seen.size + 1;
    seen.add(entry);
  }
  return Infinity;
}

/** Returns HR@k for one target at `rank`: 1 when rank <= k, else 0. */
export function hitAt(rank: number, k: number): number {
  return rank <= k ? 1 : 0;
}

/**
 * Returns NDCG@k for one relevant target at `rank`: 1/log2(rank + 1) when rank <= k, else 0
 * (the ideal DCG of a single relevant item is 1).
 *
 * @example
 * ```ts
 * ndcgAt(1, 5); // 1
 * ndcgAt(3, 5); // 0.5
 * ndcgAt(6, 5); // 0
 * ```
 */
export function ndcgAt(rank: number, k: number): number {
  return rank <= k ? 1 / Math.log2(rank + 1) : 0;
}

/** Mean HR@k and NDCG@k over a set of ranks, keyed `HR@k` and `NDCG@k`. */
export interface RankingMeans {
  /** The mean of one metric, under its name (`HR@10`, `NDCG@10`, ...). */
  [metric: string]: number;
}

/**
 * Returns the mean HR@k and NDCG@k over `ranks` (one per record) for every k in `ks`; NaN for
 * an empty set.
 *
 * @example
 * ```ts
 * meanRanking([1, 3, Infinity], [1, 5]);
 * // {"HR@1": 1/3, "NDCG@1": 1/3, "HR@5": 2/3, "NDCG@5": (1 + 0.5) / 3}
 * ```
 */
export function meanRanking(ranks: readonly number[], ks: readonly number[]): RankingMeans {
  const out: RankingMeans = {};
  for (const k of ks) {
    let hits = 0;
    let gain = 0;
    for (const rank of ranks) {
      hits += hitAt(rank, k);
      gain += ndcgAt(rank, k);
    }
    out[`HR@${k}`] = hits / ranks.length;
    out[`NDCG@${k}`] = gain / ranks.length;
  }
  return out;
}
