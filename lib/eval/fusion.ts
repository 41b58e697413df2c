/**
 * Tuning a two-stage ranking's fusion (lib/generate/rerank.ts) on a validation split: given each
 * record's candidates with both scores (`infer --rerank FILE --rerank-weight 1 --top-k N` writes
 * every candidate with `lm_score` and `first_score`) and the record's target, the HR@k and NDCG@k
 * of every weight w and candidate count n of a grid, without running the model again.
 *
 * @module
 */

import { join } from "node:path";
import {
  openDataset,
  readRecords,
  refitValidError,
  splitHolding,
  trainsThroughValid,
  tuneUsersOf,
} from "../data/dataset.ts";
import { RecordSelection } from "../data/selection.ts";
import type { Split } from "../data/types.ts";
import { InputError, inputError, OptionError, optionName, quote } from "../errors.ts";
import { readJsonLines } from "../io/lines.ts";
import { checkPredictionLine, type PredictionLine } from "./predictions.ts";

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
      if (!hasBothScores(e)) {
        throw new Error(`record "${line.id}": an entry without lm_score and first_score`);
      }
    }
    if (entries.every(({ e }) => Number.isInteger(e.first_rank))) {
      // The first stage's own order, ties as it broke them.
      entries.sort((a, b) => a.e.first_rank! - b.e.first_rank!);
    } else {
      // Files written before first_rank: the first stage's order rebuilt from its scores.
      entries.sort((a, b) => b.e.first_score! - a.e.first_score! || a.i - b.i);
    }
    return {
      items: entries.map(({ e }) => e.item_id ?? e.entity),
      first: Float64Array.from(entries, ({ e }) => e.first_score!),
      lm: Float64Array.from(entries, ({ e }) => e.lm_score!),
      target,
    };
  });
}

/**
 * Throws when `line`'s entries record their first-stage places (`first_rank`) and some place is
 * missing: infer wrote it with a top-k below the first stage's candidates, and a grid point over
 * more candidates than it holds would score a part of them as the whole.
 */
function checkWholeList(line: PredictionLine, file: string, number: number): void {
  const ranks = (line.predictions ?? []).map((e) => e.first_rank);
  if (!ranks.every((r) => Number.isInteger(r))) return; // written before first_rank
  const sorted = (ranks as number[]).sort((a, b) => a - b);
  if (sorted.every((r, i) => r === i)) return;
  throw inputError(
    file,
    number,
    `record "${line.id}" holds ${sorted.length} of the first stage's candidates (places up to ` +
      `${sorted.at(-1)! + 1}): write it with infer ${optionName("topK")} at least the first ` +
      `stage's candidate count, so the tuning sees them all`,
  );
}

/**
 * Throws when `line` was not written with the model's weight 1 (its `score` is not its
 * `lm_score`): under a weight near 0 its entries keep the first stage's order, so a list cut by
 * infer's top-k would hold the first places and pass {@linkcode checkWholeList}.
 */
function checkModelOrder(line: PredictionLine, file: string, number: number): void {
  const entry = (line.predictions ?? []).find((e) => e.score !== e.lm_score);
  if (entry === undefined) return;
  throw inputError(
    file,
    number,
    `record "${line.id}": its scores are not the model's (score ${entry.score}, lm_score ` +
      `${entry.lm_score}): write it with infer ${optionName("rerankWeight")} 1, so that every ` +
      "candidate is kept in the model's order",
  );
}

const hasBothScores = (e: { lm_score?: unknown; first_score?: unknown }) =>
  typeof e.lm_score === "number" && Number.isFinite(e.lm_score) &&
  typeof e.first_score === "number" && Number.isFinite(e.first_score);

/**
 * HR@k and NDCG@k (one relevant item: 1 / log2(rank + 2)) of every weight and candidate count,
 * averaged over `records`. A count above the longest list is that list's length (every count
 * past it scores the same lists, so the best could name a count no list reached: infer would
 * then rerank more candidates than were tuned on); each count is scored once.
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
  grid: FusionGridSpec,
): FusionPoint[] {
  const out: FusionPoint[] = [];
  const longest = records.reduce((m, r) => Math.max(m, r.items.length), 0);
  const tops = [...new Set(grid.tops.map((top) => Math.min(top, Math.max(1, longest))))];
  for (const top of tops) {
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

/** The grid `eval --tune-rerank` searches: the weight in steps of 0.05, the first stage's best n. */
export const RERANK_GRID: Readonly<FusionGridSpec> = {
  weights: Array.from({ length: 21 }, (_, i) => i / 20),
  tops: [10, 20, 50, 100],
  ks: [5, 10],
};

/** The points a fusion grid scores: weights, candidate counts, and the k of HR@k / NDCG@k. */
export interface FusionGridSpec {
  /** The model's weights in the fusion, each in [0, 1]. */
  weights: readonly number[];
  /** Candidates of each record (the first stage's best n). */
  tops: readonly number[];
  /** Cut-offs of HR@k and NDCG@k (10 must be among them: the best is chosen by NDCG@10). */
  ks: readonly number[];
}

/** What {@linkcode tuneRerank} finds: every point and the best by NDCG@10 (then HR@10). */
export interface RerankTuning {
  /** The reranked predictions file read. */
  file: string;
  /** The split its records are of. */
  split: string;
  /** Records scored. */
  records: number;
  /** The best point: its `weight` and `top` are what `infer --rerank-tuned` uses. */
  best: FusionPoint;
  /** Every point of the grid. */
  points: FusionPoint[];
}

/**
 * Reads `file` (infer --rerank ... --rerank-weight 1 on records of `split` of the dataset in
 * `dataDir`: every candidate with both scores) and scores every point of `grid` against the
 * records' targets. A line naming no record of the split with an item target is an error
 * naming the file.
 *
 * @example
 * ```ts
 * const tuning = await tuneRerank("runs/valid-reranked.jsonl", "runs/data", "valid");
 * tuning.best.weight; // the model's weight in the fusion that ranked best
 * ```
 */
export async function tuneRerank(
  file: string,
  dataDir: string,
  split: Split,
  grid: FusionGridSpec = RERANK_GRID,
  tasks?: readonly string[],
): Promise<RerankTuning> {
  if (split === "test") {
    // The figures to report are the test split's: a weight chosen on them is chosen by them.
    throw new OptionError(
      "split",
      (name) =>
        `the fusion is tuned on the validation split, then applied to test: give ${name} valid`,
    );
  }
  const data = await openDataset(dataDir);
  const ids = new Map<string, string>();
  for (const e of data.entities) if (e.kind === "item") ids.set(e.entity, e.id);
  let lines: PredictionLine[] = [];
  const lineOf = new Map<string, number>();
  for await (const { number, value } of readJsonLines(file)) {
    const line = checkPredictionLine(value, file, number);
    const earlier = lineOf.get(line.id);
    if (earlier !== undefined) {
      throw inputError(
        file,
        number,
        `a second line for record "${line.id}" (first on line ${earlier})`,
      );
    }
    lineOf.set(line.id, number);
    for (const entry of line.predictions ?? []) {
      // Ranked by item id, the target's: an entry without one names its item by its entity.
      if (entry.item_id !== undefined) continue;
      const id = ids.get(entry.entity);
      const pool = join(dataDir, "entities.json");
      if (id === undefined) {
        throw inputError(file, number, `entity ${quote(entry.entity)} is not an item of ${pool}`);
      }
      entry.item_id = id;
    }
    if (!(line.predictions ?? []).every((e) => hasBothScores(e))) {
      throw inputError(
        file,
        number,
        "an entry without lm_score and first_score (write it with infer " +
          `${optionName("rerank")} FILE ${optionName("rerankWeight")} 1 ` +
          `${optionName("topK")} N)`,
      );
    }
    checkWholeList(line, file, number);
    checkModelOrder(line, file, number);
    lines.push(line);
  }
  if (lines.length === 0) throw inputError(file, undefined, "no lines: nothing to tune on");
  const wanted = new Set(lines.map((l) => l.id));
  const targets = new Map<string, string>();
  const otherTask = new Set<string>();
  // A refit's validation items are training data, but for the users it kept out to tune on.
  const refit = split === "valid" && trainsThroughValid(data);
  const tune = tuneUsersOf(data);
  const tuneUsers = tune && new RecordSelection(data.manifest, { sample: tune });
  for await (const r of readRecords(data, split)) {
    if (!wanted.has(r.id)) continue;
    if (refit && !tuneUsers?.wanted(r)) throw refitValidError(data);
    if (tasks && !tasks.includes(r.task)) otherTask.add(r.id); // not tuned on
    const first = r.target?.[0];
    if (first && "entity" in first) targets.set(r.id, ids.get(first.entity) ?? first.entity);
  }
  if (otherTask.size > 0) lines = lines.filter((l) => !otherTask.has(l.id));
  if (lines.length === 0) {
    throw inputError(file, undefined, "no lines of the tasks asked: nothing to tune on");
  }
  for (const line of lines) {
    if (!targets.has(line.id)) {
      const elsewhere = await splitHolding(data, line.id, split);
      const hint = elsewhere === "test"
        ? " (it is a test record: tune on the validation split's, infer " +
          `${optionName("split")} valid)`
        : elsewhere
        ? ` (it is a ${elsewhere} record; tune on the ${elsewhere} split)`
        : "";
      throw new InputError(
        `${file}: record "${line.id}" is not an item record of the ${split} split of ` +
          `${dataDir}${hint}`,
      );
    }
  }
  const points = fusionGrid(fusionRecords(lines, targets), grid);
  const best =
    [...points].sort((a, b) =>
      b.metrics["NDCG@10"] - a.metrics["NDCG@10"] || b.metrics["HR@10"] - a.metrics["HR@10"]
    )[0];
  return { file, split, records: lines.length, best, points };
}

/**
 * A Markdown table of a tuning: one row per candidate count, NDCG@10 for each weight (the best
 * in bold), then the best point.
 */
export function tuningMarkdown(tuning: RerankTuning): string {
  const weights = [...new Set(tuning.points.map((p) => p.weight))];
  const tops = [...new Set(tuning.points.map((p) => p.top))];
  const out = [
    `Fusion tuned on ${tuning.records} ${tuning.split} records of ${tuning.file}: NDCG@10 by ` +
    "candidates (rows) and the model's weight (columns).",
    "",
    `| top | ${weights.map((w) => w.toFixed(2)).join(" | ")} |`,
    `|---:|${weights.map(() => "---:").join("|")}|`,
  ];
  for (const top of tops) {
    const cells = weights.map((w) => {
      const p = tuning.points.find((q) => q.top === top && q.weight === w)!;
      const v = p.metrics["NDCG@10"].toFixed(4);
      return p === tuning.best ? `**${v}**` : v;
    });
    out.push(`| ${top} | ${cells.join(" | ")} |`);
  }
  const b = tuning.best;
  out.push(
    "",
    `Best: weight ${b.weight}, top ${b.top}: ` +
      Object.entries(b.metrics).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(", ") + ".",
    "",
  );
  return out.join("\n");
}

/** Options of {@linkcode tuneRerankReport}. */
export interface TuneRerankReportOptions {
  /** The reranked predictions (infer --rerank ... --rerank-weight 1 --top-k N). */
  file: string;
  /** The dataset directory. */
  data: string;
  /** The split the file answers. */
  split: string;
  /** `json` or `md`. */
  format: string;
  /** Tune on the records of these tasks only (default: every item record of the file). */
  tasks?: readonly string[];
  /**
   * Other options given with it, which the tuning does not read: none may be (methods to score
   * beside it, `predictions` or `baseline`, least of all: it scores its own file).
   */
  unused?: readonly string[];
}

/**
 * What `eval --tune-rerank` prints: {@linkcode tuneRerank}'s result as JSON, or with `md` as
 * {@linkcode tuningMarkdown}'s table. Methods to score beside it are an OptionError.
 */
export async function tuneRerankReport(options: TuneRerankReportOptions): Promise<string> {
  const unused = options.unused ?? [];
  if (unused.some((o) => ["predictions", "baseline", "name"].includes(o))) {
    throw new OptionError(
      "tuneRerank",
      (name, nameOf) =>
        `${name} scores its own file: give no ${nameOf("predictions")} or ${nameOf("baselines")}`,
    );
  }
  if (unused.length > 0) {
    throw new OptionError(
      "tuneRerank",
      (name, nameOf) =>
        `${name} reads only ${nameOf("data")}, ${nameOf("split")}, ${nameOf("format")} (and ` +
        `${nameOf("tasks")}, whose item records it tunes on): ` +
        `drop ${nameOf(unused[0])}`,
    );
  }
  const { file, data, split, tasks } = options;
  const tuning = await tuneRerank(file, data, split as Split, RERANK_GRID, tasks);
  return options.format === "md" ? tuningMarkdown(tuning) : JSON.stringify(tuning, null, 2);
}
