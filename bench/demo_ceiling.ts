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
 * Each split is also broken down by how the purchase was drawn (`by_draw`): a follow-up of the
 * previous item's series (`followed`), from the user's categories while a follow-up was left
 * (`preferred`), or with none left (`free`). With `DEMO_PREDICTIONS=NAME=FILE,...` (prediction
 * files of the sequential task, as infer or eval --save-baselines write them) each file's HR@10 and
 * NDCG@10 are reported the same way, on the split of its records: where a method loses to the
 * ceiling.
 *
 *     deno task bench demo_ceiling
 *     DEMO_PREDICTIONS=sasrec=first-valid/sasrec.jsonl,model=valid.jsonl deno task bench demo_ceiling
 *
 * @module
 */

import { type DemoTruth, generateDemo } from "../fixtures/demo/generate.ts";
import { readJsonLines } from "../lib/io/lines.ts";
import { hitAt, ndcgAt, targetRank } from "../lib/metrics/ranking.ts";

const round = (x: number) => Math.round(x * 1e4) / 1e4;
const DRAWS = ["followed", "preferred", "free"] as const;

/** HR@5, NDCG@5, HR@10 and NDCG@10 of some users, and how many. */
export interface ListFigures {
  users: number;
  "HR@5": number;
  "NDCG@5": number;
  "HR@10": number;
  "NDCG@10": number;
}

/** HR@k and NDCG@k (k 5 and 10) of ranked lists against the truth, over all and by draw. */
export function scoreLists(
  rows: { truth: DemoTruth; ranked: readonly string[] }[],
): ListFigures & { by_draw: Record<string, ListFigures> } {
  const part = (kept: typeof rows): ListFigures => {
    const sums: Record<string, number> = { "HR@5": 0, "NDCG@5": 0, "HR@10": 0, "NDCG@10": 0 };
    for (const { truth, ranked } of kept) {
      const rank = targetRank(ranked, truth.item);
      for (const k of [5, 10]) {
        sums[`HR@${k}`] += hitAt(rank, k);
        sums[`NDCG@${k}`] += ndcgAt(rank, k);
      }
    }
    const n = Math.max(kept.length, 1);
    const mean = (key: string) => round(sums[key] / n);
    return {
      users: kept.length,
      "HR@5": mean("HR@5"),
      "NDCG@5": mean("NDCG@5"),
      "HR@10": mean("HR@10"),
      "NDCG@10": mean("NDCG@10"),
    };
  };
  return {
    ...part(rows),
    by_draw: Object.fromEntries(
      DRAWS.map((d) => [d, part(rows.filter((r) => r.truth.draw === d))]),
    ),
  };
}

/** Each `NAME=FILE` of DEMO_PREDICTIONS scored against the truth of its records' split. */
async function scorePredictions(truth: DemoTruth[], spec: string) {
  const out: Record<string, unknown> = {};
  for (const entry of spec.split(",").filter((e) => e.trim() !== "")) {
    const at = entry.indexOf("=");
    if (at <= 0) throw new Error(`DEMO_PREDICTIONS: "${entry}" is not NAME=FILE`);
    const [name, file] = [entry.slice(0, at), entry.slice(at + 1)];
    const rows: { truth: DemoTruth; ranked: string[] }[] = [];
    let split = "";
    const byUser = new Map(truth.map((t) => [`${t.split}/${t.user}`, t]));
    for await (const { value } of readJsonLines(file)) {
      const line = value as { id: string; user: string; task: string; predictions: unknown[] };
      if (line.task !== "sequential") continue;
      split = line.id.endsWith("/test") ? "test" : "valid";
      const t = byUser.get(`${split}/${line.user}`);
      if (!t) throw new Error(`${file}: user ${line.user} is not a demo user`);
      const ranked = (line.predictions as { item_id: string }[]).map((p) => p.item_id);
      rows.push({ truth: t, ranked });
    }
    out[name] = { split, ...scoreLists(rows) };
  }
  return out;
}

/** Runs the benchmark once and returns its figures. */
export async function run(): Promise<Record<string, unknown>> {
  const { truth } = generateDemo(undefined, undefined, { truth: true });
  const figures: Record<string, unknown> = {};
  for (const split of ["test", "valid"] as const) {
    const rows = truth.filter((t) => t.split === split);
    const ranked = scoreLists(
      rows.map((t) => ({ truth: t, ranked: t.ranking.map((r) => r.item) })),
    );
    const { by_draw, ...all } = ranked;
    const error = (f: (x: number) => number) =>
      rows.reduce((a, t) => a + f(t.expectedRating - t.rating), 0) / rows.length;
    figures[split] = {
      ...all,
      rating_RMSE: round(Math.sqrt(error((x) => x * x))),
      rating_MAE: round(error(Math.abs)),
      by_draw,
    };
  }
  const spec = Deno.env.get("DEMO_PREDICTIONS");
  if (spec) figures.predictions = await scorePredictions(truth, spec);
  return figures;
}
