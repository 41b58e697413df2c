/**
 * Trains the baselines of one `eval` run from a dataset's files: the training histories from
 * valid.jsonl and test.jsonl (histories.ts), the training ratings from train.jsonl (rating.ts),
 * each read once however many baselines are asked for, and only when one of them needs it.
 *
 * @module
 */

import { join } from "node:path";
import type { Dataset } from "../data/dataset.ts";
import { readRecords, trainsThroughValid } from "../data/dataset.ts";
import type { Split } from "../data/types.ts";
import type { Progress } from "../io/progress.ts";
import { pathExists } from "../io/fs.ts";
import { EntityIndex } from "../eval/entities.ts";
import {
  type Baseline,
  type BaselineName,
  type BaselineOptions,
  createBaseline,
} from "./baseline.ts";
import { TrainingHistories } from "./histories.ts";
import { TrainingRatings } from "./rating.ts";
import { createSasrecBaseline } from "./sasrec.ts";

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
  const modelHistories = throughValid ? new TrainingHistories(pool, { throughValid }) : histories;
  if (names.some((n) => n !== "mean")) {
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
  if (names.includes("mean") && await pathExists(join(data.dir, "train.jsonl"))) {
    progress?.update("reading training ratings from train.jsonl");
    for await (const record of readRecords(data, "train")) ratings.add(record);
  }
  const trained = {
    pool,
    histories: modelHistories.byUser,
    ratings: ratings.list,
    ratingScale: data.manifest.rating_scale,
  };
  for (const name of new Set(names)) {
    if (name !== "sasrec") {
      out.set(name, createBaseline(name, trained, options));
      continue;
    }
    // SASRec early-stops on valid.jsonl and ranks the records of `split` before scoring.
    const hasValid = await pathExists(join(data.dir, "valid.jsonl"));
    out.set(
      name,
      await createSasrecBaseline({ ...trained, histories: histories.byUser }, options, {
        validation: hasValid ? readRecords(data, "valid") : undefined,
        records: readRecords(data, split),
        scoresTest: split === "test",
      }, progress),
    );
  }
  return out;
}
