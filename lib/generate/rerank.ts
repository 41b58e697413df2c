/**
 * Two-stage ranking: a first stage (SASRec, item-kNN, any method that writes the predictions
 * format) proposes each record's candidates with its scores, and the language model reranks them
 * by a log-linear fusion of the two:
 *
 *     fused(i) = (1 - w) * first(i) + w * lm(i)
 *
 * where `first(i)` is the first stage's score (SASRec's: the logit of item i, a log-probability
 * up to the record's normaliser) and `lm(i)` the language model's log-probability of item i. For
 * scores that are log-probabilities up to a per-record constant this is a weighted product of
 * the two models' distributions (a product of experts), which ranks the same whatever the
 * constants: only `w` is tuned (on the validation split). `w = 1` is the language model alone on
 * the first stage's candidates, `w = 0` the first stage's own order.
 *
 * The first stage's file is read once (records by id, their candidates as pool indices); the
 * reranking itself happens in infer.ts, where the model's scores are.
 *
 * @module
 */

import { InputError, inputError, optionName } from "../errors.ts";
import { checkPredictionLine } from "../eval/predictions.ts";
import type { ItemPool } from "../collate/pool.ts";
import { readJsonLines } from "../io/lines.ts";
import { type Split, SPLITS } from "../data/types.ts";

/**
 * The weight of the language model in the fusion when none is given: the best on 5,814 Amazon
 * Beauty validation users with SASRec as the first stage (docs/results.md, issue 27); tune it on
 * your own validation split with `eval --tune-rerank`.
 */
export const DEFAULT_RERANK_WEIGHT = 0.2;

/** One record's candidates from the first stage, best first. */
export interface FirstStageRanking {
  /** [candidates] pool item indices (ItemPool.items order). */
  items: Int32Array;
  /** [candidates] the first stage's scores (higher is better). */
  scores: Float64Array;
}

/** Options of {@linkcode readFirstStage}. */
export interface ReadFirstStageOptions {
  /**
   * Keep at most this many candidates of each record (its best, history included). Default: all.
   * infer reads every candidate and cuts after `excludeSeen` (RerankOptions.top), as the tuning
   * counts them.
   */
  top?: number;
  /** Keep only the records whose id this accepts (those the run answers). Default: all. */
  keep?: (id: string) => boolean;
}

/**
 * Reads a first stage's predictions (the JSONL format of lib/eval/predictions.ts) into each
 * record's candidates. Every entry must name an item of `pool` (by `item_id`, else by `entity`)
 * and carry a finite `score`; anything else is an InputError naming the file and line, as is a
 * record id given twice.
 *
 * @example
 * ```ts
 * import type { ItemPool } from "../collate/pool.ts";
 *
 * declare const pool: ItemPool;
 * const stage = await readFirstStage("runs/base/sasrec.jsonl", pool, { top: 50 });
 * stage.get("u12/sequential/seq-1/test")?.items; // pool indices of the user's 50 candidates, best first
 * ```
 */
export async function readFirstStage(
  path: string,
  pool: Pick<ItemPool, "ids" | "index">,
  options: ReadFirstStageOptions = {},
): Promise<Map<string, FirstStageRanking>> {
  const byId = new Map<string, number>();
  pool.ids.forEach((id, i) => byId.set(id, i));
  const top = options.top ?? Infinity;
  const out = new Map<string, FirstStageRanking>();
  for await (const { number, value } of readJsonLines(path)) {
    const line = checkPredictionLine(value, path, number);
    if (options.keep && !options.keep(line.id)) continue;
    if (out.has(line.id)) throw inputError(path, number, `record "${line.id}" is given twice`);
    if (!Array.isArray(line.predictions) || line.predictions.length === 0) {
      // A record left without candidates would be answered with nothing, as a miss.
      throw inputError(path, number, `record "${line.id}": no candidates (no "predictions")`);
    }
    const entries = line.predictions.slice(0, top);
    const items = new Int32Array(entries.length);
    const scores = new Float64Array(entries.length);
    const listed = new Map<number, number>(); // item -> its first place in the list
    entries.forEach((entry, i) => {
      const item = entry.item_id !== undefined
        ? byId.get(entry.item_id)
        : pool.index.get(entry.entity);
      if (item === undefined) {
        const name = entry.item_id !== undefined
          ? `item id "${entry.item_id}"`
          : `"${entry.entity}"`;
        throw inputError(path, number, `predictions[${i}]: ${name} is not an item of the dataset`);
      }
      if (typeof entry.score !== "number" || !Number.isFinite(entry.score)) {
        throw inputError(
          path,
          number,
          `predictions[${i}] has no finite "score" (the fusion needs the first stage's scores)`,
        );
      }
      const first = listed.get(item);
      if (first !== undefined) {
        // Reranked twice it would be written twice, with two scores.
        throw inputError(
          path,
          number,
          `predictions[${i}]: ${pool.ids[item]} is listed twice (first at predictions[${first}])`,
        );
      }
      listed.set(item, i);
      items[i] = item;
      scores[i] = entry.score;
    });
    out.set(line.id, { items, scores });
  }
  return out;
}

/**
 * The fused scores of one record's candidates (see the module docs): `(1 - w) * first + w * lm`.
 *
 * @example
 * ```ts
 * fuseScores(Float64Array.of(2, 1), Float64Array.of(-3, -1), 0.5); // [-0.5, 0]
 * ```
 */
export function fuseScores(
  first: Float64Array,
  lm: Float64Array,
  weight: number,
): Float64Array {
  if (first.length !== lm.length) {
    throw new RangeError(`${first.length} first-stage scores for ${lm.length} model scores`);
  }
  if (!(weight >= 0 && weight <= 1)) throw new RangeError(`weight ${weight} is not in [0, 1]`);
  // At the ends one side only: 0 * -Infinity (an item the model cannot produce) is NaN.
  if (weight === 0) return Float64Array.from(first);
  if (weight === 1) return Float64Array.from(lm);
  return Float64Array.from(first, (s, i) => (1 - weight) * s + weight * lm[i]);
}

/** The first stage's ranking of `id`, or an InputError naming `file` when it has none. */
export function firstStageOf(
  stage: ReadonlyMap<string, FirstStageRanking>,
  id: string,
  file: string,
): FirstStageRanking {
  const ranking = stage.get(id);
  if (!ranking) {
    // Record ids end with their split (textualize): a first stage of another split says so.
    const theirs = stage.keys().next().value?.split("/").at(-1);
    const ours = id.split("/").at(-1);
    const hint = theirs !== undefined && theirs !== ours && SPLITS.includes(theirs as Split)
      ? `; its records are of the ${theirs} split`
      : "";
    throw new InputError(
      `${file}: no candidates for record "${id}" (rerank needs every record${hint})`,
    );
  }
  return ranking;
}

/**
 * The weight and candidate count a tuning chose: the `best` of `eval --tune-rerank`'s JSON
 * (lib/eval/fusion.ts). A file that is not such JSON is an InputError naming it, and so is a
 * tuning made on the test split (eval refuses to make one now; an older one chose its weight by
 * the figures it would report).
 *
 * @example
 * ```ts
 * const { weight, top } = await readRerankTuning("runs/fusion.json");
 * ```
 */
export async function readRerankTuning(file: string): Promise<{ weight: number; top: number }> {
  let json: unknown;
  try {
    json = JSON.parse(await Deno.readTextFile(file));
  } catch (error) {
    throw inputError(
      file,
      undefined,
      `not a tuning (eval's ${optionName("tuneRerank")} JSON): ${(error as Error).message}`,
    );
  }
  const best = (json as { best?: { weight?: unknown; top?: unknown } })?.best;
  const weight = best?.weight, top = best?.top;
  if (
    typeof weight !== "number" || !(weight >= 0 && weight <= 1) ||
    typeof top !== "number" || !Number.isInteger(top) || top < 1
  ) {
    throw inputError(
      file,
      undefined,
      'no "best" with a weight in [0, 1] and a whole "top" (what eval ' +
        `${optionName("tuneRerank")} writes)`,
    );
  }
  if ((json as { split?: unknown }).split === "test") {
    throw inputError(
      file,
      undefined,
      "tuned on the test split, whose figures it would choose: tune on the validation split " +
        `(eval ${optionName("tuneRerank")} with ${optionName("split")} valid)`,
    );
  }
  return { weight, top };
}
