/**
 * Trains the baselines of one `eval` run from a dataset's files: the training histories from
 * valid.jsonl and test.jsonl (histories.ts), the training ratings and texts from train.jsonl
 * (rating.ts, retrieval.ts), the validation ratings that `mf` early-stops on from valid.jsonl,
 * each read once however many baselines are asked for, and only when one of them needs it.
 *
 * @module
 */

import { join } from "node:path";
import type { Dataset } from "../data/dataset.ts";
import { readRecords, trainsThroughValid, tuneUsersOf } from "../data/dataset.ts";
import { UserSample } from "../data/user_sample.ts";
import type { Split, TextRecord } from "../data/types.ts";
import type { Progress } from "../io/progress.ts";
import { pathExists } from "../io/fs.ts";
import { EntityIndex } from "../eval/entities.ts";
import {
  type Baseline,
  type BaselineName,
  type BaselineOptions,
  createBaseline,
  createMfBaseline,
} from "./baseline.ts";
import { TrainingHistories } from "./histories.ts";
import { TrainingRatings } from "./rating.ts";
import { TrainingTexts } from "./retrieval.ts";
import { tasksAnswering } from "../data/tasks.ts";
import { createSasrecBaseline } from "./sasrec.ts";

/** The baselines that learn from the training histories. */
const BASELINE_USES_HISTORIES: ReadonlySet<BaselineName> = new Set([
  "pop",
  "itemknn",
  "random",
  "sasrec",
]);

/**
 * Returns each baseline of `names` (duplicates once) trained on `data`, by name; `split` is the
 * split to be scored (SASRec ranks its records while it loads).
 *
 * @example
 * ```ts
 * import { openDataset } from "../data/dataset.ts";
 *
 * const data = await openDataset("runs/beauty");
 * const baselines = await loadBaselines(data, ["pop", "itemknn"], { protocol: "full", top: 20 });
 * baselines.get("pop")?.tasks; // ["sequential", "direct"]
 * ```
 */
export async function loadBaselines(
  data: Dataset,
  names: readonly BaselineName[],
  options: BaselineOptions,
  progress?: Progress,
  split: Split = "test",
): Promise<Map<BaselineName, Baseline>> {
  const out = new Map<BaselineName, Baseline>();
  if (names.length === 0) return out;
  const pool = new EntityIndex(data.entities);
  // SASRec refits on the validation items itself (sasrec.ts), from the histories before them;
  // the other item baselines learn what the model learned: through the validation item when the
  // dataset was textualized with `--train-through valid`.
  const histories = new TrainingHistories(pool);
  const throughValid = trainsThroughValid(data);
  // A refit that kept tuning users out (textualize --tune-users): those learn without it.
  const tune = tuneUsersOf(data);
  const tuning = tune &&
    new UserSample({ ...tune, users: data.manifest.users ?? 0 });
  const modelHistories = throughValid
    ? new TrainingHistories(pool, {
      throughValid: tuning ? (user) => !tuning.has(user) : true,
    })
    : histories;
  if (names.some((n) => BASELINE_USES_HISTORIES.has(n))) {
    for (const split of ["valid", "test"] as const) {
      const file = join(data.dir, `${split}.jsonl`);
      if (!(await pathExists(file))) continue;
      progress?.update(`reading training histories from ${split}.jsonl`);
      for await (const record of readRecords(data, split)) {
        for (const h of new Set([histories, modelHistories])) {
          if (split === "valid") h.addValid(record, file);
          else h.addTest(record, file);
        }
      }
    }
  }
  const ratings = new TrainingRatings();
  const texts = new TrainingTexts(tasksAnswering("text"));
  const wantsRatings = names.includes("mean") || names.includes("mf");
  const trainFile = join(data.dir, "train.jsonl");
  if ((wantsRatings || names.includes("retrieval")) && await pathExists(trainFile)) {
    progress?.update("reading training ratings and texts from train.jsonl");
    for await (const record of readRecords(data, "train")) {
      ratings.add(record);
      texts.add(record);
    }
  }
  const trained = {
    pool,
    histories: modelHistories.byUser,
    ratings: ratings.list,
    ratingScale: data.manifest.rating_scale,
    texts: texts.list,
    textsFile: trainFile,
  };
  for (const name of new Set(names)) {
    if (name === "mf") {
      // Early stopping on the validation ratings, unless they are training data (the refit).
      const validation = new TrainingRatings();
      if (!throughValid && await pathExists(join(data.dir, "valid.jsonl"))) {
        progress?.update("reading validation ratings from valid.jsonl");
        for await (const record of readRecords(data, "valid")) validation.add(record);
      }
      out.set(
        name,
        await createMfBaseline(ratings.list, validation.list, {
          ...options.mf,
          seed: options.mf?.seed ?? options.seed,
          scale: data.manifest.rating_scale,
        }, progress),
      );
      continue;
    }
    if (name !== "sasrec") {
      out.set(name, createBaseline(name, trained, options));
      continue;
    }
    // SASRec early-stops on valid.jsonl and ranks the records of `split` before scoring. On a
    // refit that kept tuning users out, it learns what the model learned (every other user's
    // validation item) and early-stops on the tuning users: one model for both splits.
    const hasValid = await pathExists(join(data.dir, "valid.jsonl"));
    const held = throughValid && tuning ? tuning : undefined;
    const learnedValidation = held !== undefined;
    const validation = !hasValid
      ? undefined
      : held
      ? onlyUsers(readRecords(data, "valid"), (user) => held.has(user))
      : readRecords(data, "valid");
    out.set(
      name,
      await createSasrecBaseline(
        { ...trained, histories: (learnedValidation ? modelHistories : histories).byUser },
        options,
        {
          validation,
          records: readRecords(data, split),
          scoresTest: split === "test",
          learnedValidation,
        },
        progress,
      ),
    );
  }
  return out;
}

/** The records of `records` whose user `keep` accepts. */
async function* onlyUsers(
  records: AsyncIterable<TextRecord>,
  keep: (user: string) => boolean,
): AsyncIterable<TextRecord> {
  for await (const record of records) if (keep(record.user)) yield record;
}
