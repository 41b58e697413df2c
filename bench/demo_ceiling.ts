/**
 * The ceiling of the demo's item and rating tasks: the built-in dataset's generator
 * (fixtures/demo/generate.ts) knows the distribution each user's validation and test purchase was
 * drawn from, and each rating's expected value given the user's hidden tastes. Ranking items by
 * that distribution is the best any recommender can do in expectation (it knows what the data
 * only reveals through purchases), so its HR@k and NDCG@k bound what the demo's methods can reach;
 * the expected ratings bound RMSE and MAE the same way (the noise is 0.6 before rounding).
 *
 * Figures for the leave-one-out test and validation items (600 users each), ranked over every
 * item with the user's history excluded (the generator never sells an item twice), as the demo's
 * baselines rank. Pure arithmetic: a second, no model.
 *
 *     deno task bench demo_ceiling
 *
 * @module
 */

import { generateDemo } from "../fixtures/demo/generate.ts";
import { hitAt, ndcgAt, targetRank } from "../lib/metrics/ranking.ts";

const round = (x: number) => Math.round(x * 1e4) / 1e4;

/** Runs the benchmark once and returns its figures. */
export function run(): Promise<Record<string, unknown>> {
  const { truth } = generateDemo(undefined, undefined, { truth: true });
  const figures: Record<string, unknown> = {};
  for (const split of ["test", "valid"] as const) {
    const rows = truth.filter((t) => t.split === split);
    const sums: Record<string, number> = { "HR@5": 0, "NDCG@5": 0, "HR@10": 0, "NDCG@10": 0 };
    let squared = 0;
    let absolute = 0;
    for (const t of rows) {
      const rank = targetRank(t.ranking.map((r) => r.item), t.item);
      for (const k of [5, 10]) {
        sums[`HR@${k}`] += hitAt(rank, k);
        sums[`NDCG@${k}`] += ndcgAt(rank, k);
      }
      squared += (t.expectedRating - t.rating) ** 2;
      absolute += Math.abs(t.expectedRating - t.rating);
    }
    figures[split] = {
      users: rows.length,
      ...Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, round(v / rows.length)])),
      rating_RMSE: round(Math.sqrt(squared / rows.length)),
      rating_MAE: round(absolute / rows.length),
    };
  }
  return Promise.resolve(figures);
}
