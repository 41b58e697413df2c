/**
 * Tuning a two-stage ranking's fusion (lib/generate/rerank.ts) on a validation split: given each
 * record's candidates with both scores (`infer --rerank FILE --rerank-weight 1 --top-k N` writes
 * every candidate with `lm_score` and `first_score`) and the record's target, the HR@k and NDCG@k
 * of every weight w and candidate count n of a grid, without running the model again.
 *
 * @module
 */

import type { PredictionLine } from "./predictions.ts";

/** One record's candidates (the first stage's order) with both scores, and its target. */
export interface FusionRecord {
  /** [candidates] item ids, in the first stage's order (best first). */
  items: string[];
  /** [candidates] the first stage's scores. */
  first: Float64Array;
  /** [candidates] the language model's log-probabilities. */
  lm: Float64Array;
  /** The target's item id. */
  target: string;
}

/** One point of the grid. */
export interface FusionPoint {
  /** The model's weight. */
  weight: number;
  /** Candidates of each record (the first stage's best n). */
  top: number;
  /** HR@k and NDCG@k for each k asked, e.g. `{"HR@10": 0.1, "NDCG@10": 0.05}`. */
  metrics: Record<string, number>;
}

/**
 * The fusion records of reranked prediction lines: each line's entries back in the first
 * stage's order (by `first_score`, descending; ties by the order given), with `targets` giving
 * each record's target item id. Lines without both scores, or without a target, are an Error.
 *
 * @example
 * ```ts
 * const [r] = fusionRecords(
 *   [{ id: "u1", predictions: [
 *     { entity: "A", item_id: "a", score: -1, lm_score: -1, first_score: 2 },
 *     { entity: "B", item_id: "b", score: -2, lm_score: -4, first_score: 3 },
 *   ] }],
 *   new Map([["u1", "a"]]),
 * );
 * r.items; // ["b", "a"]: the first stage's order
 * ```
 */
export function fusionRecords(
  lines: readonly PredictionLine[],
  targets: ReadonlyMap<string, string>,
): FusionRecord[] {
  return lines.map((line) => {
    const target = targets.get(line.id);
    if (target === undefined) throw new Error(`record "${line.id}": no target`);
    const entries = (line.predictions ?? []).map((e, i) => ({ e, i }));
    for (const { e } of entries) {
      if (typeof e.lm_score !== "number" || typeof e.first_score !== "number") {
        throw new Error(`record "${line.id}": an entry without lm_score and first_score`);
      }
    }
    entries.sort((a, b) => b.e.first_score! - a.e.first_score! || a.i - b.i);
    return {
      items: entries.map(({ e }) => e.item_id ?? e.entity),
      first: Float64Array.from(entries, ({ e }) => e.first_score!),
      lm: Float64Array.from(entries, ({ e }) => e.lm_score!),
      target,
    };
  });
}

/**
 * HR@k and NDCG@k (one relevant item: 1 / log2(rank + 2)) of every weight and candidate count,
 * averaged over `records`.
 *
 * @example
 * ```ts
 * declare const records: FusionRecord[];
 * const points = fusionGrid(records, { weights: [0, 0.5, 1], tops: [20, 50], ks: [10] });
 * points.sort((a, b) => b.metrics["NDCG@10"] - a.metrics["NDCG@10"])[0]; // the best
 * ```
 */
export function fusionGrid(
  records: readonly FusionRecord[],
  grid: { weights: readonly number[]; tops: readonly number[]; ks: readonly number[] },
): FusionPoint[] {
  const out: FusionPoint[] = [];
  for (const top of grid.tops) {
    for (const weight of grid.weights) {
      const sums: Record<string, number> = {};
      for (const k of grid.ks) sums[`HR@${k}`] = sums[`NDCG@${k}`] = 0;
      for (const r of records) {
        const n = Math.min(top, r.items.length);
        const t = r.items.indexOf(r.target);
        if (t < 0 || t >= n) continue;
        const fused = (i: number) => (1 - weight) * r.first[i] + weight * r.lm[i];
        // The target's rank among the first n: how many score higher, or equal and earlier.
        const s = fused(t);
        let rank = 0;
        for (let i = 0; i < n; i++) {
          if (i !== t && (fused(i) > s || (fused(i) === s && i < t))) rank++;
        }
        for (const k of grid.ks) {
          if (rank < k) {
            sums[`HR@${k}`] += 1;
            sums[`NDCG@${k}`] += 1 / Math.log2(rank + 2);
          }
        }
      }
      const metrics: Record<string, number> = {};
      for (const [key, sum] of Object.entries(sums)) {
        metrics[key] = records.length === 0 ? 0 : sum / records.length;
      }
      out.push({ weight, top, metrics });
    }
  }
  return out;
}
