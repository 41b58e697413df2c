/**
 * SASRec as a baseline of `eval` (lib/sasrec has the model): trained on the same training
 * histories as the other item baselines (histories.ts: every interaction before the validation
 * target, so neither the validation nor the test target is ever a training item), early-stopped
 * on the validation records' NDCG@10, then asked for every item record of the split being
 * scored, in batches, before scoring starts.
 *
 * What it ranks, as the other item baselines: the record's own history is the model's input
 * (at test time it includes the validation item, as a model's prompt does), or the training
 * history when the record has none. Under `full` (or without candidates) it ranks ALL items, the
 * user's history left out unless `excludeSeen` is false, and keeps the best `top`; under
 * `sampled`, the record's candidates by score (ties: popularity, then pool order).
 *
 * Items are numbered for the model 1..V in pool order (0 is its padding item).
 *
 * @module
 */

import type { TextRecord } from "../data/types.ts";
import type { EntityIndex } from "../eval/entities.ts";
import type { PredictionLine } from "../eval/predictions.ts";
import type { Progress } from "../io/progress.ts";
import { formatSeconds } from "../io/progress.ts";
import { OptionError } from "../errors.ts";
import type { SasrecConfig } from "../sasrec/model.ts";
import { type RankQuery, SasrecRanker } from "../sasrec/rank.ts";
import {
  DEFAULT_SASREC,
  DEFAULT_SASREC_SIZE,
  DEFAULT_SASREC_TRAIN,
  type SasrecOptions,
  type SasrecValidation,
  type TrainedSasrec,
  trainSasrec,
} from "../sasrec/train.ts";
import {
  type Baseline,
  type BaselineData,
  type BaselineOptions,
  DEFAULT_BASELINE,
} from "./baseline.ts";
import { historyIds } from "./histories.ts";
import { inputError, optionName } from "../errors.ts";
import { itemIdsSha256 } from "../model/item_rows.ts";
import { readSavedSasrec, type SavedSasrecInfo, trainedOnSha256 } from "./sasrec_saved.ts";
import { orderItems, popularityCounts } from "./popularity.ts";

/** Where the SASRec baseline reads its records. */
export interface SasrecSources {
  /** The validation split's records (for early stopping); absent: no early stopping. */
  validation?: AsyncIterable<TextRecord>;
  /** The records of the split being scored (each item record gets a prediction). */
  records: AsyncIterable<TextRecord>;
  /**
   * The records are the test split's: their inputs end with the validation item, so (with the
   * `refit` option) the model that ranks them is trained on histories that end with it too.
   */
  scoresTest?: boolean;
  /**
   * The training histories already end with the validation item wherever the model may learn it
   * (a refit dataset whose tuning users keep theirs out; `validation` then holds only theirs):
   * SASRec learns what the language model learned and early-stops on the tuning users, and the
   * same model ranks both splits (no refit).
   */
  learnedValidation?: boolean;
}

/** The SASRec baseline, with its model and what it was trained on. */
export interface SasrecBaseline extends Baseline {
  /** The trained SASRec model. */
  model: TrainedSasrec;
  /**
   * The training sequences the ranking model saw, by user (pool ids, oldest first): the
   * training histories, or with a refit those followed by the user's validation item.
   */
  trainedOn: ReadonlyMap<string, Int32Array>;
  /** Whether the ranking model is the refit one (trained for the early-stopped epoch count). */
  refit: boolean;
  /** What a saved copy records of it (sasrec_saved.ts; `eval --save-baselines`). */
  saved: Omit<SavedSasrecInfo, "config">;
}

const ITEM_TASKS: readonly string[] = ["sequential", "direct"];

/** Pool ids <-> the model's item indices (1..V). */
class ItemNumbering {
  readonly #index: Int32Array;
  readonly pool: EntityIndex;

  constructor(pool: EntityIndex) {
    this.pool = pool;
    this.#index = new Int32Array(pool.size);
    pool.items.forEach((id, i) => (this.#index[id] = i + 1));
  }

  get numItems(): number {
    return this.pool.items.length;
  }

  index(poolIds: ArrayLike<number>): Int32Array {
    return Int32Array.from(poolIds, (id) => this.#index[id]);
  }

  poolId = (index: number): number => this.pool.items[index - 1];
}

/**
 * The validation users: for each user's first item record of the validation split with an item
 * target, its history (the training history) and the target.
 */
export async function validationUsers(
  records: AsyncIterable<TextRecord>,
  pool: EntityIndex,
  file = "valid.jsonl",
): Promise<{ users: string[]; histories: Int32Array[]; targets: number[] }> {
  const seen = new Set<string>();
  const users: string[] = [];
  const histories: Int32Array[] = [];
  const targets: number[] = [];
  for await (const record of records) {
    if (!ITEM_TASKS.includes(record.task) || seen.has(record.user)) continue;
    const target = record.target?.find((s) => "entity" in s);
    const id = target && "entity" in target ? pool.id(target.entity) : -1;
    const history = historyIds(record, pool, file);
    if (!pool.isItem(id) || history === undefined) continue;
    seen.add(record.user);
    users.push(record.user);
    histories.push(history);
    targets.push(id);
  }
  return { users, histories, targets };
}

/** The model configuration for a pool and options. */
export function sasrecConfig(pool: EntityIndex, options: SasrecOptions = {}): SasrecConfig {
  return {
    numItems: pool.items.length,
    hidden: options.hidden ?? DEFAULT_SASREC_SIZE.hidden,
    blocks: options.blocks ?? DEFAULT_SASREC_SIZE.blocks,
    heads: options.heads ?? DEFAULT_SASREC_SIZE.heads,
    maxLength: options.maxLength ?? DEFAULT_SASREC_SIZE.maxLength,
  };
}

/**
 * Trains SASRec on `data.histories` (early stopping on `sources.validation`) and predicts every
 * item record of `sources.records`; returns the baseline (and the trained model).
 *
 * @example
 * ```ts
 * import { openDataset, readRecords } from "../data/dataset.ts";
 * import type { TextRecord } from "../data/types.ts";
 * import { EntityIndex } from "../eval/entities.ts";
 * import { TrainingHistories } from "./histories.ts";
 *
 * const data = await openDataset("runs/beauty");
 * const pool = new EntityIndex(data.entities);
 * const histories = new TrainingHistories(pool); // filled from valid.jsonl and test.jsonl
 * declare const record: TextRecord;
 * const sasrec = await createSasrecBaseline(
 *   { pool, histories: histories.byUser },
 *   { protocol: "full", top: 20, sasrec: { epochs: 50 } },
 *   { validation: readRecords(data, "valid"), records: readRecords(data, "test") },
 * );
 * sasrec.predict(record); // {id, user, task, template, predictions: [{entity, score}, ...]}
 * ```
 */
export async function createSasrecBaseline(
  data: BaselineData,
  options: BaselineOptions,
  sources: SasrecSources,
  progress?: Progress,
): Promise<SasrecBaseline> {
  const pool = data.pool;
  const numbering = new ItemNumbering(pool);
  const sasrec = options.sasrec ?? {};
  const config = sasrecConfig(pool, sasrec);
  const users = [...data.histories.keys()];
  const sequences = users.map((u) => numbering.index(data.histories.get(u)!));

  let validation: SasrecValidation | undefined;
  let validTargets = new Map<string, number>();
  if (sources.validation) {
    progress?.update("sasrec: reading the validation records");
    const valid = await validationUsers(sources.validation, pool);
    if (valid.histories.length > 0) {
      validation = {
        histories: valid.histories.map((h) => numbering.index(h)),
        targets: numbering.index(valid.targets),
      };
      validTargets = new Map(valid.users.map((u, i) => [u, valid.targets[i]]));
    }
  }
  if (sources.learnedValidation && sources.validation && !validation && !sasrec.model) {
    // Early stopping would silently be off: every epoch trained, the last weights kept.
    throw inputError(
      "valid.jsonl",
      undefined,
      "no item record of a tuning user (held out by textualize) for SASRec to early-stop on",
    );
  }
  // What a saved copy records: its items (pool order, as the item table's), and how it was
  // trained (the defaults, then the options given).
  const itemsSha256 = itemIdsSha256(Array.from(pool.items, (id) => pool.sourceId(id)));
  let settings: Record<string, unknown> = { ...DEFAULT_SASREC_TRAIN, seed: options.seed };
  for (const [key, value] of Object.entries(sasrec)) {
    if (value !== undefined && !["onEpoch", "model", "threads", "device"].includes(key)) {
      settings[key] = value;
    }
  }
  const refit = (sasrec.refit ?? DEFAULT_SASREC.refit) && sources.scoresTest === true &&
    validTargets.size > 0 && !sources.learnedValidation;
  if (sasrec.refitEpochs !== undefined && !refit) {
    // Before any training; eval refuses the first two causes before reading anything.
    const cause = !(sasrec.refit ?? DEFAULT_SASREC.refit)
      ? "the refit is off"
      : sources.scoresTest !== true
      ? "the records scored are not the test split's"
      : sources.learnedValidation
      ? "the histories it learns already end with the validation items (a refit dataset with " +
        "tuning users: one early-stopped model ranks both splits)"
      : "there is no validation record with an item target (valid.jsonl) to refit on";
    throw new OptionError(
      "sasrecRefitEpochs",
      (name) => `${name} sets the epochs of SASRec's refit for the test split, but ${cause}`,
    );
  }
  // The test records' inputs end with the validation item: the model that ranks them learns
  // from it too (the test target is never seen).
  const refitOn = refit
    ? users.map((u, i) => {
      const target = validTargets.get(u);
      return target === undefined
        ? sequences[i]
        : Int32Array.from([...sequences[i], ...numbering.index([target])]);
    })
    : undefined;
  if (sasrec.model !== undefined) {
    const trainedOn = refitOn ?? sequences;
    return ranked(await savedModel(sasrec.model, trainedOn), trainedOn);
  }
  // Early stopping (unless the refit's epochs are given), then the refit for the test split.
  const model = sasrec.refitEpochs === undefined
    ? await earlyStopped(config, sequences, validation, options.seed, sasrec, progress)
    : undefined;
  if (!refitOn) return ranked(model!, sequences);
  const epochs = sasrec.refitEpochs ?? model!.bestEpoch;
  // For as many epochs as early stopping chose.
  const trainedOn = refitOn;
  progress?.log(
    `sasrec: refit for the test split: ${epochs} epochs on the histories followed by ` +
      `their validation item (${validTargets.size} users)` +
      (model ? "" : ", the epochs given (no early stopping)"),
  );
  const refitModel = await trainSasrec(
    config,
    trainedOn,
    { seed: options.seed, ...sasrec, epochs, patience: 0 },
    undefined,
    (point) =>
      progress?.log(
        `sasrec: refit epoch ${point.epoch}/${epochs}: loss ${point.loss.toFixed(4)} ` +
          `[${formatSeconds(point.seconds)}]`,
      ),
    (epoch, step, steps, loss) =>
      progress?.update(
        `sasrec: refit epoch ${epoch}, step ${step}/${steps}, loss ${loss.toFixed(4)}`,
      ),
  );
  return ranked(refitModel, trainedOn);

  /**
   * The model saved at `path` (sasrec_saved.ts), which must be the one this eval would train:
   * the same items and the same training sequences `trainedOn`.
   */
  async function savedModel(path: string, trainedOn: Int32Array[]): Promise<TrainedSasrec> {
    progress?.update(`sasrec: reading the saved model ${path}`);
    const { info, weights } = await readSavedSasrec(path);
    if (info.item_ids_sha256 !== itemsSha256) {
      throw inputError(
        path,
        undefined,
        `its SASRec numbers another list of items (${info.config.numItems}, sha256 ` +
          `${String(info.item_ids_sha256).slice(0, 12)}...) than this dataset's ` +
          `${pool.items.length}: save it from an eval of this dataset`,
      );
    }
    if (info.trained_on_sha256 !== trainedOnSha256(users, trainedOn)) {
      const learned = (n: number, refit: boolean, held: boolean) =>
        `${n} users' training histories` +
        (refit
          ? " followed by their validation item"
          : held
          ? " with every validation item but the tuning users'"
          : "");
      // A refit for the test split against the validation split's model: the flag that ranks
      // with the early-stopped model is the way out.
      const noRefit = refit && info.trained_on_sha256 === trainedOnSha256(users, sequences)
        ? `, or give ${optionName("sasrecNoRefit")} to rank with the early-stopped model`
        : "";
      throw inputError(
        path,
        undefined,
        `its SASRec learned other sequences (${
          learned(info.users, info.refit, info.learned_validation)
        }) than this eval's would (${learned(users.length, refit, !!sources.learnedValidation)})` +
          `: save it from an eval of the same dataset and split, or train it here${noRefit}`,
      );
    }
    settings = info.settings;
    progress?.log(
      `sasrec: ranking with the saved model ${path} (epoch ${info.best_epoch}, ` +
        `${info.refit ? "refit, " : ""}${info.users} users; trained with ` +
        `${JSON.stringify(info.settings)}), not training one`,
    );
    return { config: info.config, weights, curve: [], bestEpoch: info.best_epoch, steps: 0 };
  }

  /** The baseline that ranks with `ranking`, trained on `trainedOn`. */
  async function ranked(
    ranking: TrainedSasrec,
    trainedOn: Int32Array[],
  ): Promise<SasrecBaseline> {
    const lines = await predictRecords(
      ranking,
      numbering,
      data,
      options,
      sources.records,
      progress,
    );
    return {
      name: "sasrec",
      tasks: ["sequential", "direct"],
      model: ranking,
      refit,
      trainedOn: new Map(users.map((u, i) => [u, Int32Array.from(trainedOn[i], numbering.poolId)])),
      saved: {
        item_ids_sha256: itemsSha256,
        trained_on_sha256: trainedOnSha256(users, trainedOn),
        users: users.length,
        best_epoch: ranking.bestEpoch,
        refit,
        learned_validation: !!sources.learnedValidation,
        settings,
      },
      predict(record) {
        if (!ITEM_TASKS.includes(record.task)) return undefined;
        return lines.get(record.id);
      },
    };
  }
}

/** SASRec trained on `sequences`, early-stopped on `validation` (progress as it goes). */
async function earlyStopped(
  config: SasrecConfig,
  sequences: Int32Array[],
  validation: SasrecValidation | undefined,
  seed: number | undefined,
  sasrec: SasrecOptions,
  progress?: Progress,
): Promise<TrainedSasrec> {
  progress?.log(
    `sasrec: training on ${sequences.length} users' histories, ${config.numItems} items` +
      (validation ? `, early stopping on ${validation.targets.length} validation users` : ""),
  );
  const model = await trainSasrec(
    config,
    sequences,
    { seed, ...sasrec },
    validation,
    (point, best) => {
      const metrics = point.ndcg10 === undefined
        ? ""
        : `, valid NDCG@10 ${point.ndcg10.toFixed(4)} HR@10 ${point.hr10!.toFixed(4)}` +
          (best ? " (best)" : "");
      progress?.log(
        `sasrec: epoch ${point.epoch}: loss ${point.loss.toFixed(4)}${metrics} ` +
          `[${formatSeconds(point.seconds)}]`,
      );
      sasrec.onEpoch?.(point, best);
    },
    (epoch, step, steps, loss) =>
      progress?.update(`sasrec: epoch ${epoch}, step ${step}/${steps}, loss ${loss.toFixed(4)}`),
  );
  progress?.log(`sasrec: using the weights of epoch ${model.bestEpoch}`);
  return model;
}

/** Ranks for every item record of `records`: the prediction lines by record id. */
async function predictRecords(
  model: TrainedSasrec,
  numbering: ItemNumbering,
  data: BaselineData,
  options: BaselineOptions,
  records: AsyncIterable<TextRecord>,
  progress?: Progress,
): Promise<Map<string, PredictionLine>> {
  const pool = data.pool;
  const file = options.file ?? "records";
  const top = options.top ?? DEFAULT_BASELINE.top;
  const excludeSeen = options.excludeSeen ?? DEFAULT_BASELINE.excludeSeen;
  const popularity = popularityCounts(data.histories.values(), pool.size);
  // Records that ask the same question (one user's templates) share one query.
  const queries: RankQuery[] = [];
  const byKey = new Map<string, number>();
  const asked: { record: TextRecord; query: number; candidates?: number[] }[] = [];
  for await (const record of records) {
    if (!ITEM_TASKS.includes(record.task)) continue;
    const history = historyIds(record, pool, file) ?? data.histories.get(record.user) ??
      new Int32Array(0);
    const candidates = options.protocol === "sampled" && Array.isArray(record.candidates)
      ? record.candidates.map((c) => pool.id(c)).filter((id) => pool.isItem(id))
      : undefined;
    const key = `${history.join(",")}|${excludeSeen}|${candidates?.join(",") ?? "-"}`;
    let query = byKey.get(key);
    if (query === undefined) {
      const items = numbering.index(history);
      query = queries.push({
        history: items,
        exclude: excludeSeen ? items : undefined,
        candidates: candidates ? numbering.index(candidates) : undefined,
      }) - 1;
      byKey.set(key, query);
    }
    asked.push({ record, query, candidates });
  }
  progress?.update(`sasrec: ranking all items for ${queries.length} histories`);
  const ranker = await SasrecRanker.create(model.config, {
    k: top,
    threads: options.sasrec?.threads,
  });
  let results;
  try {
    results = await ranker.rank(model.weights, queries);
  } finally {
    await ranker.release();
  }
  const lines = new Map<string, PredictionLine>();
  for (const { record, query, candidates } of asked) {
    const result = results[query];
    let predictions;
    if (candidates) {
      const score = new Map(candidates.map((id, i) => [id, result.candidateScores[i]]));
      predictions = orderItems(candidates, (id) => score.get(id)!, popularity)
        .map((id) => pool.ranked(id, score.get(id)!));
    } else {
      predictions = Array.from(
        result.items,
        (index, i) => pool.ranked(numbering.poolId(index), result.scores[i]),
      );
    }
    lines.set(record.id, {
      id: record.id,
      user: record.user,
      task: record.task,
      template: record.template,
      predictions,
    });
  }
  return lines;
}
