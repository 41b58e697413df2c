/**
 * The baselines as predictors: each turns a valid/test record into a prediction line in the
 * format `infer` writes (eval/predictions.ts), so `eval` scores them exactly like a model.
 *
 * What an item baseline ranks (sequential and direct records), as `infer` does for a model:
 * - under `sampled`: the record's `candidates`, every one scored;
 * - under `full` (or a record without candidates): all items of the pool, the best `top` of them
 *   (open recommendation). With `excludeSeen` (default) the items of the user's history are left
 *   out of this ranking; candidate lists are ranked as they are (their negatives are unseen items
 *   by construction, so exclusion could only drop a repeated positive).
 *
 * The user's history is the record's own `history` (at test time it includes the validation
 * item: the model's prompt shows it too), or the training history when the record has none.
 * Ties: score, then popularity, then pool order (popularity.ts).
 *
 * @module
 */

import type { TextRecord } from "../data/types.ts";
import { tasksAnswering } from "../data/tasks.ts";
import type { EntityIndex } from "../eval/entities.ts";
import type { PredictionLine, RankedEntity } from "../eval/predictions.ts";
import type { Protocol } from "../eval/protocol.ts";
import type { EvalTask } from "../eval/score.ts";
import { Rng } from "../random.ts";
import type { SasrecOptions } from "../sasrec/train.ts";
import { historyIds } from "./histories.ts";
import { DEFAULT_ITEM_KNN, ItemKnn } from "./itemknn.ts";
import { orderItems, popularityCounts, topItems } from "./popularity.ts";
import { BiasRating, DEFAULT_BIAS_RATING, ratedItem, type TrainingRating } from "./rating.ts";
import { TextRetrieval, type TrainingText } from "./retrieval.ts";
import type { Progress } from "../io/progress.ts";
import { type MfOptions, trainMf } from "./mf.ts";

/** The baselines `eval --baseline` knows. */
export const BASELINES = ["pop", "itemknn", "random", "mean", "sasrec", "mf", "retrieval"] as const;
/** One baseline's name. */
export type BaselineName = typeof BASELINES[number];

/**
 * The task families each baseline answers: the item rankers every family whose answer is an item,
 * `mean` and `mf` every family whose answer is a rating, `retrieval` every family whose answer is
 * text (lib/data/tasks.ts).
 */
export const BASELINE_TASKS: Record<BaselineName, readonly EvalTask[]> = {
  pop: tasksAnswering("item"),
  itemknn: tasksAnswering("item"),
  random: tasksAnswering("item"),
  mean: tasksAnswering("rating"),
  sasrec: tasksAnswering("item"),
  mf: tasksAnswering("rating"),
  retrieval: tasksAnswering("text"),
};

/** A method that predicts records without a model. */
export interface Baseline {
  /** The baseline's name (`pop`, `itemknn`, ...). */
  readonly name: BaselineName;
  /** The task families it answers; it returns undefined for other records. */
  readonly tasks: readonly EvalTask[];
  /** Returns the prediction line for `record`, or undefined when it does not answer its task. */
  predict(record: TextRecord): PredictionLine | undefined;
  /**
   * Why it can answer no record of `tasks` (some of its own) when it learned nothing to answer
   * them with (retrieval: no training text of them), naming the file; undefined otherwise.
   */
  unanswerable?(tasks: readonly EvalTask[]): string | undefined;
}

/** What the baselines learn from (training data only). */
export interface BaselineData {
  /** The dataset's entity pool, indexed (pool ids). */
  pool: EntityIndex;
  /** Training interactions by user (histories.ts). */
  histories: ReadonlyMap<string, Int32Array>;
  /** Training ratings (rating.ts); needed by `mean` only. */
  ratings?: readonly TrainingRating[];
  /** The rating scale predictions are clipped to. */
  ratingScale?: readonly [number, number] | null;
  /** Training texts of the text tasks (retrieval.ts); needed by `retrieval` only. */
  texts?: readonly TrainingText[];
  /** The file the texts are read from (train.jsonl), for the message when a task has none. */
  textsFile?: string;
}

/** Defaults of the optional {@linkcode BaselineOptions}. */
export const DEFAULT_BASELINE: Readonly<{
  top: number;
  excludeSeen: boolean;
  seed: number;
  neighbors: number;
  recency: number;
  damping: number;
}> = Object.freeze({
  top: 20,
  excludeSeen: true,
  seed: 0,
  neighbors: DEFAULT_ITEM_KNN.neighbors,
  recency: DEFAULT_ITEM_KNN.recency,
  damping: DEFAULT_BIAS_RATING.damping,
});

/** Options of {@linkcode createBaseline}; defaults in {@linkcode DEFAULT_BASELINE}. */
export interface BaselineOptions {
  /** The protocol the predictions are for. */
  protocol: Protocol;
  /** Length of a ranking over all items. */
  top?: number;
  /** Leave the user's history out of rankings over all items. */
  excludeSeen?: boolean;
  /** `random`: the seed. */
  seed?: number;
  /** `itemknn`: neighbours kept per item (0 = all). */
  neighbors?: number;
  /** `itemknn`: recency decay in (0, 1]. */
  recency?: number;
  /** `mean`: bias damping. */
  damping?: number;
  /** `mf`: the model and its training (mf.ts); `seed` seeds it too. */
  mf?: MfOptions;
  /** `sasrec`: the model and its training (sasrec.ts); `seed` seeds it too. */
  sasrec?: SasrecOptions;
  /** Names the record's file in errors; default "records". */
  file?: string;
}

const EMPTY = new Int32Array(0);

/** Ranks items for records given a scoring rule; shared by pop, itemknn and random. */
class ItemRanker {
  readonly #data: BaselineData;
  readonly #options: BaselineOptions;
  readonly #popularity: Float64Array;
  readonly #byPopularity: number[];

  constructor(data: BaselineData, options: BaselineOptions) {
    this.#data = data;
    this.#options = options;
    this.#popularity = popularityCounts(data.histories.values(), data.pool.size);
    this.#byPopularity = orderItems(data.pool.items, () => 0, this.#popularity);
  }

  get popularity(): Float64Array {
    return this.#popularity;
  }

  /** Length of a ranking over all items. */
  get top(): number {
    return this.#options.top ?? DEFAULT_BASELINE.top;
  }

  historyOf(record: TextRecord): Int32Array {
    return historyIds(record, this.#data.pool, this.#options.file ?? "records") ??
      this.#data.histories.get(record.user) ?? EMPTY;
  }

  /** The candidate ids when the record is ranked over its candidates, else undefined. */
  candidatesOf(record: TextRecord): number[] | undefined {
    if (!Array.isArray(record.candidates)) return undefined;
    if (this.#options.protocol !== "sampled") return undefined;
    return record.candidates.map((c) => this.#data.pool.id(c)).filter((id) => id >= 0);
  }

  /** The excluded ids of a ranking over all items. */
  excludedFor(history: Int32Array): ReadonlySet<number> {
    return (this.#options.excludeSeen ?? DEFAULT_BASELINE.excludeSeen)
      ? new Set(history)
      : new Set();
  }

  /**
   * Ranks over all items: `first` (already ordered, best first) and then the rest by
   * popularity, without excluded ids, cut at `top`.
   */
  allItems(first: readonly number[], excluded: ReadonlySet<number>): number[] {
    const top = this.top;
    const out: number[] = [];
    const taken = new Set<number>();
    for (const list of [first, this.#byPopularity]) {
      for (const id of list) {
        if (out.length >= top) return out;
        if (excluded.has(id) || taken.has(id) || !this.#data.pool.isItem(id)) continue;
        taken.add(id);
        out.push(id);
      }
    }
    return out;
  }

  line(record: TextRecord, ids: readonly number[], score: (id: number) => number): PredictionLine {
    const predictions: RankedEntity[] = ids.map((id) => this.#data.pool.ranked(id, score(id)));
    return {
      id: record.id,
      user: record.user,
      task: record.task,
      template: record.template,
      predictions,
    };
  }
}

function popularityBaseline(data: BaselineData, options: BaselineOptions): Baseline {
  const ranker = new ItemRanker(data, options);
  const score = (id: number) => ranker.popularity[id];
  return {
    name: "pop",
    tasks: BASELINE_TASKS.pop,
    predict(record) {
      if (!BASELINE_TASKS.pop.includes(record.task as EvalTask)) return undefined;
      const candidates = ranker.candidatesOf(record);
      const ids = candidates
        ? orderItems(candidates, score, ranker.popularity)
        : ranker.allItems([], ranker.excludedFor(ranker.historyOf(record)));
      return ranker.line(record, ids, score);
    },
  };
}

function itemKnnBaseline(data: BaselineData, options: BaselineOptions): Baseline {
  const ranker = new ItemRanker(data, options);
  const knn = new ItemKnn(data.histories.values(), data.pool.size, options);
  const scores = new Float64Array(data.pool.size);
  const score = (id: number) => scores[id];
  return {
    name: "itemknn",
    tasks: BASELINE_TASKS.itemknn,
    predict(record) {
      if (!BASELINE_TASKS.itemknn.includes(record.task as EvalTask)) return undefined;
      const history = ranker.historyOf(record);
      const touched = knn.score(history, scores);
      const candidates = ranker.candidatesOf(record);
      let ids: number[];
      if (candidates) {
        ids = orderItems(candidates, score, ranker.popularity);
      } else {
        const excluded = ranker.excludedFor(history);
        const skip = (id: number) => excluded.has(id);
        ids = ranker.allItems(
          topItems(touched, score, ranker.popularity, ranker.top, skip),
          excluded,
        );
      }
      const line = ranker.line(record, ids, score);
      for (const id of touched) scores[id] = 0;
      return line;
    },
  };
}

function randomBaseline(data: BaselineData, options: BaselineOptions): Baseline {
  const ranker = new ItemRanker(data, options);
  const seed = options.seed ?? DEFAULT_BASELINE.seed;
  return {
    name: "random",
    tasks: BASELINE_TASKS.random,
    predict(record) {
      if (!BASELINE_TASKS.random.includes(record.task as EvalTask)) return undefined;
      // One stream per record, so a record's ranking does not depend on which others are scored.
      const rng = Rng.derive(seed, "random-baseline", record.id);
      const candidates = ranker.candidatesOf(record);
      let ids: number[];
      if (candidates) {
        ids = rng.shuffle(candidates);
      } else {
        const items = data.pool.items;
        const excluded = ranker.excludedFor(ranker.historyOf(record));
        const want = Math.min(items.length, ranker.top + excluded.size);
        // Floyd's sample is a uniform subset in a biased order: shuffled, a uniform ranking.
        const drawn = rng.shuffle(rng.sample(items.length, want));
        ids = ranker.allItems(drawn.map((i) => items[i]), excluded);
      }
      const rank = new Map(ids.map((id, i) => [id, ids.length - i]));
      return ranker.line(record, ids, (id) => rank.get(id)!);
    },
  };
}

function meanBaseline(data: BaselineData, options: BaselineOptions): Baseline {
  const model = new BiasRating(data.ratings ?? [], {
    damping: options.damping,
    scale: data.ratingScale ?? null,
  });
  return {
    name: "mean",
    tasks: BASELINE_TASKS.mean,
    predict(record) {
      if (!BASELINE_TASKS.mean.includes(record.task as EvalTask)) return undefined;
      const item = ratedItem(record) ?? "";
      const rating = model.predict(record.user, item);
      return {
        id: record.id,
        user: record.user,
        task: record.task,
        template: record.template,
        rating,
      };
    },
  };
}

function retrievalBaseline(data: BaselineData): Baseline {
  const model = new TextRetrieval(data.texts ?? []);
  return {
    name: "retrieval",
    tasks: BASELINE_TASKS.retrieval,
    predict(record) {
      if (!BASELINE_TASKS.retrieval.includes(record.task as EvalTask)) return undefined;
      const text = model.retrieve(record.task, record.user, ratedItem(record) ?? "");
      if (text === undefined) return undefined;
      return {
        id: record.id,
        user: record.user,
        task: record.task,
        template: record.template,
        text,
      };
    },
    unanswerable(tasks) {
      if (tasks.some((t) => model.has(t))) return undefined;
      return `retrieval has no training text of ${tasks.join(" or ")} to retrieve from ` +
        `(${data.textsFile ?? "its training data"} has no such record)`;
    },
  };
}

/**
 * Returns the baseline `name` trained on `data` (all but `sasrec` and `mf`, which train on the
 * engine for a while: {@linkcode createSasrecBaseline}, {@linkcode createMfBaseline}).
 *
 * @example
 * ```ts
 * import type { TextRecord } from "../data/types.ts";
 * import type { EntityIndex } from "../eval/entities.ts";
 *
 * declare const pool: EntityIndex, histories: Map<string, Int32Array>, record: TextRecord;
 * const pop = createBaseline("pop", { pool, histories }, { protocol: "full", top: 10 });
 * pop.predict(record); // {id, user, task, template, predictions: [{entity, score}, ...]}
 * ```
 */
export function createBaseline(
  name: BaselineName,
  data: BaselineData,
  options: BaselineOptions,
): Baseline {
  switch (name) {
    case "pop":
      return popularityBaseline(data, options);
    case "itemknn":
      return itemKnnBaseline(data, options);
    case "random":
      return randomBaseline(data, options);
    case "mean":
      return meanBaseline(data, options);
    case "retrieval":
      return retrievalBaseline(data);
    case "sasrec":
      throw new Error("sasrec is trained asynchronously: use createSasrecBaseline (sasrec.ts)");
    case "mf":
      throw new Error("mf is trained asynchronously: use createMfBaseline (baseline.ts)");
  }
}

/**
 * The `mf` baseline of `eval`: biased MF trained on `ratings`, early-stopped on `validation`,
 * answering every rating record with its prediction for the record's user and item.
 *
 * @example
 * ```ts
 * import type { TrainingRating } from "./rating.ts";
 *
 * declare const train: TrainingRating[], valid: TrainingRating[];
 * const mf = await createMfBaseline(train, valid, { scale: [1, 5] });
 * mf.tasks; // ["rating"]
 * ```
 */
export async function createMfBaseline(
  ratings: readonly TrainingRating[],
  validation: readonly TrainingRating[],
  options: MfOptions = {},
  progress?: Progress,
): Promise<Baseline> {
  const model = await trainMf(ratings, options, validation, (epoch, loss, rmse) =>
    progress?.update(
      `mf: epoch ${epoch}, loss ${loss.toFixed(4)}` +
        (rmse === undefined ? "" : `, validation RMSE ${rmse.toFixed(4)}`),
    ));
  return {
    name: "mf",
    tasks: BASELINE_TASKS.mf,
    predict(record) {
      if (!BASELINE_TASKS.mf.includes(record.task as EvalTask)) return undefined;
      const rating = model.predict(record.user, ratedItem(record) ?? "");
      return {
        id: record.id,
        user: record.user,
        task: record.task,
        template: record.template,
        rating,
      };
    },
  };
}
