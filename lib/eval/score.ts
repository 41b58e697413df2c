/**
 * Scoring one method's predictions on one split, record by record, into per-task metrics with a
 * per-template and a seen/held-out breakdown (docs/method.md section 10). Pure: records and
 * predictions in, numbers out; reading files and choosing methods is run.ts's business.
 *
 * Per task family:
 * - sequential, direct: HR@k and NDCG@k (k > 1; NDCG@1 equals HR@1) of the target under the
 *   protocol (protocol.ts), and `valid`, the share of the first max(k) distinct outputs that are
 *   items of the pool, counted on the method's list before any protocol restriction.
 * - rating: RMSE and MAE of the predictions clipped to the manifest's rating scale, over the
 *   predictions that hold a number; `valid` is the share that do.
 * - explanation, review: corpus BLEU-4 (and for review BLEU-2, the published protocol's) and mean
 *   per-pair ROUGE-1/2/L F-scores, x100, of the generated text against the target's text
 *   (segments joined); no text scores as empty.
 *
 * A record without a prediction is not scored; it is counted in its task's `missing`.
 *
 * @module
 */

import { inputError } from "../errors.ts";
import type { TextRecord } from "../data/types.ts";
import { ANSWERED_TASKS, type AnsweredTask, tasksAnswering } from "../data/tasks.ts";
import { addBleuStats, bleuFromStats, bleuStats, emptyBleuStats } from "../metrics/bleu.ts";
import { hitAt, ndcgAt, targetRank } from "../metrics/ranking.ts";
import { RatingErrors } from "../metrics/rating.ts";
import { RougeSums } from "../metrics/rouge.ts";
import { validOutputs } from "../metrics/valid.ts";
import { words } from "../metrics/words.ts";
import type { EntityIndex } from "./entities.ts";
import type { StoredPrediction } from "./predictions.ts";
import { type Protocol, protocolRanking } from "./protocol.ts";

/** The task families `eval` scores, in report order: every family with an answer (tasks.ts). */
export const EVAL_TASKS: readonly EvalTask[] = ANSWERED_TASKS;
/** A task family `eval` scores. */
export type EvalTask = AnsweredTask;

// How a family is scored follows from its answer kind: ranking, rating error, or text overlap.
const ITEM_TASKS: readonly string[] = tasksAnswering("item");
const TEXT_TASKS: readonly string[] = tasksAnswering("text");

/** What every method of one run is scored under. */
export interface ScoreOptions {
  /** The ranking protocol: `full` or `sampled`. */
  protocol: Protocol;
  /** The cut-offs, ascending and distinct (1, 5, 10). */
  ks: readonly number[];
  /** Ratings are clipped to [min, max]; null: no clipping. */
  ratingScale: readonly [number, number] | null;
  /** Ids of the templates held out of training (manifest.templates[].heldOut). */
  heldOut: ReadonlySet<string>;
}

/** A record of the split with what scoring needs, prepared once for all methods. */
export interface PreparedRecord {
  /** The record's id. */
  id: string;
  /** The record's task family. */
  task: EvalTask;
  /** The record's template id. */
  template: string;
  /** True when the template was held out of training (zero-shot). */
  heldOut: boolean;
  /** Item tasks: the target's pool id. */
  target: number;
  /** Item tasks under `sampled`: the candidates' pool ids. */
  candidates?: Int32Array;
  /** Rating task: the true rating. */
  rating?: number;
  /** Text tasks: the reference's words. */
  reference?: string[];
}

/** Metric values by name (`HR@5`, `RMSE`, `BLEU-4`, ..., `count`); null where undefined. */
export type Metrics = Record<string, number | null>;

/** One task's results for one method. */
export interface TaskResult {
  /** Over all its scored records, `count` included. */
  metrics: Metrics;
  /** Records of the task that had no prediction. */
  missing: number;
  /** The same metrics per template id. */
  templates: Record<string, Metrics>;
  /** Over the templates seen in training; absent when none were scored. */
  seen?: Metrics;
  /** Over the held-out (zero-shot) templates; absent when none were scored. */
  heldOut?: Metrics;
}

/** One method's results by task; tasks it scored nothing on (and did not miss) are absent. */
export type MethodResult = Partial<Record<EvalTask, TaskResult>>;

function entityOf(segments: TextRecord["target"]): string | undefined {
  for (const segment of segments ?? []) if ("entity" in segment) return segment.entity;
  return undefined;
}

function textOf(segments: TextRecord["target"]): string {
  return (segments ?? []).map((s) => "entity" in s ? s.entity : s.text).join("");
}

/**
 * Returns `record` prepared for scoring, or undefined when `eval` does not score its task
 * (`profile`). Data that breaks the contract (an item target or candidate not in the pool, a
 * target outside its candidates, no candidates under `sampled`, a rating record without its
 * rating) is an InputError naming `file` and the record.
 */
export function prepareRecord(
  record: TextRecord,
  pool: EntityIndex,
  options: ScoreOptions,
  file: string,
): PreparedRecord | undefined {
  if (!(EVAL_TASKS as readonly string[]).includes(record.task)) return undefined;
  const fail = (problem: string) =>
    inputError(file, undefined, `record "${record.id}": ${problem}`);
  const prepared: PreparedRecord = {
    id: record.id,
    task: record.task as EvalTask,
    template: record.template,
    heldOut: options.heldOut.has(record.template),
    target: -1,
  };
  if (ITEM_TASKS.includes(record.task)) {
    const target = entityOf(record.target);
    if (target === undefined) throw fail("has no target entity");
    prepared.target = pool.id(target);
    if (!pool.isItem(prepared.target)) throw fail(`target "${target}" is not an item of the pool`);
    if (options.protocol === "sampled") {
      if (!Array.isArray(record.candidates)) {
        throw fail("has no candidates (needed by the sampled protocol)");
      }
      prepared.candidates = Int32Array.from(record.candidates, (c) => {
        const id = pool.id(c);
        if (id < 0) throw fail(`candidate "${c}" is not in the entity pool`);
        return id;
      });
      if (!prepared.candidates.includes(prepared.target)) {
        throw fail("its target is not among its candidates");
      }
    }
  } else if (record.task === "rating") {
    if (typeof record.rating !== "number" || !Number.isFinite(record.rating)) {
      throw fail('has no numeric "rating"');
    }
    prepared.rating = record.rating;
  } else {
    prepared.reference = words(textOf(record.target));
  }
  return prepared;
}

/** Running sums of one group of records (a task, a template, or seen/held-out). */
class GroupScore {
  count = 0;
  readonly hits: Float64Array;
  readonly gains: Float64Array;
  validOutputs = 0;
  totalOutputs = 0;
  readonly errors: RatingErrors;
  ratingsGiven = 0;
  readonly bleu = emptyBleuStats(4);
  readonly rouge = new RougeSums();

  constructor(ks: number, scale: readonly [number, number] | null) {
    this.hits = new Float64Array(ks);
    this.gains = new Float64Array(ks);
    this.errors = new RatingErrors(scale);
  }

  metrics(task: EvalTask, ks: readonly number[]): Metrics {
    const out: Metrics = {};
    const mean = (sum: number, n: number) => n > 0 ? sum / n : null;
    if (ITEM_TASKS.includes(task)) {
      ks.forEach((k, i) => {
        out[`HR@${k}`] = mean(this.hits[i], this.count);
        if (k > 1) out[`NDCG@${k}`] = mean(this.gains[i], this.count);
      });
      // No records: undefined; records that all had empty lists: no valid output at all.
      out.valid = this.count === 0
        ? null
        : this.totalOutputs > 0
        ? this.validOutputs / this.totalOutputs
        : 0;
    } else if (task === "rating") {
      out.RMSE = this.errors.count > 0 ? this.errors.rmse : null;
      out.MAE = this.errors.count > 0 ? this.errors.mae : null;
      out.valid = mean(this.ratingsGiven, this.count);
    } else if (TEXT_TASKS.includes(task)) {
      const rouge = this.rouge.mean();
      out["BLEU-4"] = this.count > 0 ? 100 * bleuFromStats(this.bleu).bleu : null;
      if (task === "review") {
        // The published protocol for review summaries (P5, the RecSysLLM paper): BLEU-2, from the
        // same counts' first two orders.
        const two = {
          ...this.bleu,
          matches: this.bleu.matches.slice(0, 2),
          possible: this.bleu.possible.slice(0, 2),
        };
        out["BLEU-2"] = this.count > 0 ? 100 * bleuFromStats(two).bleu : null;
      }
      out["ROUGE-1"] = this.count > 0 ? 100 * rouge.rouge1.f : null;
      out["ROUGE-2"] = this.count > 0 ? 100 * rouge.rouge2.f : null;
      out["ROUGE-L"] = this.count > 0 ? 100 * rouge.rougeL.f : null;
    }
    out.count = this.count;
    return out;
  }
}

/**
 * Scores one method: feed it every prepared record of the split with the method's prediction
 * (or undefined when it has none), then read {@linkcode MethodScorer.result}.
 *
 * @example
 * ```ts
 * import type { EntityIndex } from "./entities.ts";
 * import type { StoredPrediction } from "./predictions.ts";
 *
 * declare const pool: EntityIndex, options: ScoreOptions, prepared: PreparedRecord[];
 * declare const predictions: Map<string, StoredPrediction>;
 * const scorer = new MethodScorer(pool, options);
 * for (const r of prepared) scorer.add(r, predictions.get(r.id));
 * scorer.result().sequential?.metrics["HR@10"];
 * ```
 */
export class MethodScorer {
  readonly #pool: EntityIndex;
  readonly #options: ScoreOptions;
  readonly #tasks: ReadonlySet<string>;
  readonly #groups = new Map<EvalTask, Map<string, GroupScore>>();
  readonly #missing = new Map<EvalTask, number>();
  readonly #maxK: number;

  /**
   * `tasks`: the task families this method answers (a baseline answers only some); records of
   * other tasks are neither scored nor counted missing. Default: all.
   */
  constructor(pool: EntityIndex, options: ScoreOptions, tasks: readonly string[] = EVAL_TASKS) {
    this.#pool = pool;
    this.#options = options;
    this.#tasks = new Set(tasks);
    this.#maxK = Math.max(...options.ks);
  }

  /** Whether this method answers records of `task`. */
  covers(task: string): boolean {
    return this.#tasks.has(task);
  }

  #groupsOf(record: PreparedRecord): GroupScore[] {
    let byKey = this.#groups.get(record.task);
    if (!byKey) this.#groups.set(record.task, byKey = new Map());
    const keys = ["all", `template:${record.template}`, record.heldOut ? "heldOut" : "seen"];
    return keys.map((key) => {
      let group = byKey.get(key);
      if (!group) {
        byKey.set(key, group = new GroupScore(this.#options.ks.length, this.#options.ratingScale));
      }
      return group;
    });
  }

  /** Scores `prediction` for `record`; undefined counts the record as missing. */
  add(record: PreparedRecord, prediction: StoredPrediction | undefined): void {
    if (!this.covers(record.task)) return;
    if (prediction === undefined) {
      this.#missing.set(record.task, (this.#missing.get(record.task) ?? 0) + 1);
      return;
    }
    const groups = this.#groupsOf(record);
    for (const g of groups) g.count++;
    if (ITEM_TASKS.includes(record.task)) {
      const scored = protocolRanking(prediction.ranked, this.#options.protocol, record.candidates);
      const rank = targetRank(scored, record.target);
      const outputs = validOutputs(prediction.ranked, this.#maxK, (id) => this.#pool.isItem(id));
      for (const g of groups) {
        this.#options.ks.forEach((k, i) => {
          g.hits[i] += hitAt(rank, k);
          g.gains[i] += ndcgAt(rank, k);
        });
        g.validOutputs += outputs.valid;
        g.totalOutputs += outputs.total;
      }
    } else if (record.task === "rating") {
      for (const g of groups) {
        if (prediction.rating === null) continue;
        g.ratingsGiven++;
        g.errors.add(prediction.rating, record.rating!);
      }
    } else {
      const hypothesis = words(prediction.text ?? "");
      const stats = bleuStats(hypothesis, record.reference!, 4);
      for (const g of groups) {
        addBleuStats(g.bleu, stats);
        g.rouge.add(hypothesis, record.reference!);
      }
    }
  }

  /** Returns the results so far, by task (in {@linkcode EVAL_TASKS} order). */
  result(): MethodResult {
    const out: MethodResult = {};
    for (const task of EVAL_TASKS) {
      const byKey = this.#groups.get(task);
      const missing = this.#missing.get(task) ?? 0;
      if (!byKey && missing === 0) continue;
      const metricsOf = (key: string) => byKey?.get(key)?.metrics(task, this.#options.ks);
      const empty = new GroupScore(this.#options.ks.length, this.#options.ratingScale);
      const templates: Record<string, Metrics> = {};
      const templateKeys = [...(byKey?.keys() ?? [])].filter((k) => k.startsWith("template:"))
        .sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
      for (const key of templateKeys) templates[key.slice(9)] = metricsOf(key)!;
      const result: TaskResult = {
        metrics: metricsOf("all") ?? empty.metrics(task, this.#options.ks),
        missing,
        templates,
      };
      const seen = metricsOf("seen");
      const heldOut = metricsOf("heldOut");
      if (seen) result.seen = seen;
      if (heldOut) result.heldOut = heldOut;
      out[task] = result;
    }
    return out;
  }
}
