/**
 * The predictions JSONL format that `infer` writes and the baselines produce, and reading it
 * for `eval`: one JSON object a line,
 *
 *     {"id": "u12/sequential/seq-3/test", "user": "12", "task": "sequential", "template": "seq-3",
 *      "predictions": [{"entity": "Alpha Lipstick", "item_id": "B001", "score": -0.41}, ...]}
 *     {"id": "u12/rating/rating-1/test", ..., "rating": 4.2, "text": "4.2"}
 *     {"id": "u12/explanation/explanation-1/test", ..., "text": "great color and it lasts"}
 *
 * `id` (required) names a record of the split; `user`, `task`, `template` are informative (a
 * `task` that contradicts the record is an error); `predictions` is the ranked list, best first,
 * for item tasks, each entry naming its item by `item_id` (the dataset's item id, as in
 * `entities.json`: what eval matches first) and `entity` (the text; what eval matches when there is
 * no `item_id`); `rating` a number for the rating task (when absent, a `text` that is a plain
 * number is read as the rating); `text` the generated text for explanation and review.
 *
 * Stored compactly: entity strings become pool ids (see entities.ts), so a file of 100-item
 * candidate rankings for every user fits in memory.
 *
 * @module
 */

import { inputError } from "../errors.ts";
import type { Task } from "../data/types.ts";
import { readJsonLines } from "../io/lines.ts";
import type { EntityIndex } from "./entities.ts";
import { firstLine } from "../io/safe_output.ts";

/** One ranked entry of a prediction list. */
export interface RankedEntity {
  /** The entity string as in `entities.json` (anything else counts as an invalid output). */
  entity: string;
  /**
   * The dataset's item id (`entities.json`'s `id`). When present it names the item, whatever
   * `entity` says (a title cut or made unique for the prompt); an id not in the pool is invalid.
   */
  item_id?: string;
  /** The method's score (higher is better); informative, the list order is what counts. */
  score?: number;
  /** A reranking's language-model score of the entry (infer --rerank); informative. */
  lm_score?: number;
  /** A reranking's first-stage score of the entry (infer --rerank); informative. */
  first_score?: number;
  /** A reranking's place of the entry in the first stage's list, from 0 (infer --rerank). */
  first_rank?: number;
}

/** One line of a predictions JSONL file. */
export interface PredictionLine {
  /** The id of the record predicted. */
  id: string;
  /** The record's user, when the method wrote it. */
  user?: string;
  /** The record's task family, when the method wrote it. */
  task?: Task;
  /** The record's template id, when the method wrote it. */
  template?: string;
  /** Item tasks: the ranked entities, best first. */
  predictions?: RankedEntity[];
  /** Rating task: the predicted rating (clipped to the scale when scored). */
  rating?: number | null;
  /** Explanation and review: the generated text. */
  text?: string | null;
}

/** A prediction as `eval` keeps it. */
export interface StoredPrediction {
  /** Line number in its file, for error messages. */
  line: number;
  /** Its file (as labelled), for error messages; absent for predictions not read from a file. */
  file?: string;
  /** The task the line claims, if any. */
  task?: string;
  /**
   * The ranked entities as pool ids, in the given order. A string not in the pool gets a
   * negative id (-1, -2, ... by first appearance in this list), so distinct invalid outputs stay
   * distinct and a repeated one is still a repeat.
   */
  ranked: Int32Array;
  /** The predicted rating, or null when the line has none that is a number. */
  rating: number | null;
  /** The generated text, or null. */
  text: string | null;
}

const PLAIN_NUMBER = /^\s*[-+]?(\d+(\.\d*)?|\.\d+)\s*$/;

/**
 * Checks that a parsed JSON line is a prediction and returns it typed; anything else is an
 * InputError naming `file` and `line`.
 */
export function checkPredictionLine(value: unknown, file: string, line: number): PredictionLine {
  const fail = (problem: string) => inputError(file, line, problem);
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw fail('not a prediction (expected a JSON object with an "id")');
  }
  const p = value as Record<string, unknown>;
  if (typeof p.id !== "string" || p.id === "") throw fail('"id" must be a non-empty string');
  for (const key of ["user", "task", "template"]) {
    if (p[key] !== undefined && typeof p[key] !== "string") {
      throw fail(`"${key}" must be a string`);
    }
  }
  if (p.predictions !== undefined) {
    if (!Array.isArray(p.predictions)) throw fail('"predictions" must be an array');
    p.predictions.forEach((entry, i) => {
      if (typeof entry !== "object" || entry === null || typeof entry.entity !== "string") {
        throw fail(`predictions[${i}] must be an object with a string "entity"`);
      }
      if (entry.item_id !== undefined && typeof entry.item_id !== "string") {
        throw fail(`predictions[${i}].item_id must be a string`);
      }
      if (entry.score !== undefined && entry.score !== null && typeof entry.score !== "number") {
        throw fail(`predictions[${i}].score must be a number`);
      }
    });
  }
  if (p.rating !== undefined && p.rating !== null) {
    if (typeof p.rating !== "number" || !Number.isFinite(p.rating)) {
      throw fail('"rating" must be a finite number');
    }
  }
  if (p.text !== undefined && p.text !== null && typeof p.text !== "string") {
    throw fail('"text" must be a string');
  }
  return p as unknown as PredictionLine;
}

/**
 * Returns the compact form of a prediction line (pool ids for its entities, its rating as a
 * number or null, its text or null).
 */
export function storePrediction(
  prediction: PredictionLine,
  pool: EntityIndex,
  line = 0,
): StoredPrediction {
  const entries = prediction.predictions ?? [];
  const ranked = new Int32Array(entries.length);
  const unknown = new Map<string, number>();
  for (let i = 0; i < entries.length; i++) {
    const itemId = entries[i].item_id;
    // An id names the item; its text may differ (cut, made unique). Unknown ones stay distinct.
    const name = itemId === undefined ? entries[i].entity : `\u0000item_id:${itemId}`;
    let id = itemId === undefined ? pool.id(name) : pool.itemIdToId(itemId);
    if (id < 0) {
      id = unknown.get(name) ?? -(unknown.size + 1);
      unknown.set(name, id);
    }
    ranked[i] = id;
  }
  let rating: number | null = null;
  if (typeof prediction.rating === "number") rating = prediction.rating;
  else if (typeof prediction.text === "string" && PLAIN_NUMBER.test(prediction.text)) {
    rating = Number(prediction.text);
  }
  return {
    line,
    task: prediction.task,
    ranked,
    rating,
    text: typeof prediction.text === "string" ? prediction.text : null,
  };
}

/**
 * Reads a predictions file into a map by record id. Malformed lines and a second prediction for
 * the same id are InputErrors naming the file (as `label`) and line; a missing file too. With
 * `into`, the predictions are added to that map (several files, such as the parts of a sharded
 * run, make one method; a record predicted in two of them is an error naming both).
 *
 * @example
 * ```ts
 * import type { Dataset } from "../data/dataset.ts";
 * import { EntityIndex } from "./entities.ts";
 *
 * declare const data: Dataset;
 * const byId = await readPredictions("runs/beauty/pred.jsonl", new EntityIndex(data.entities));
 * byId.get("u12/sequential/seq-3/test")?.ranked; // Int32Array of pool ids, best first
 * ```
 */
export async function readPredictions(
  path: string,
  pool: EntityIndex,
  label = path,
  into: Map<string, StoredPrediction> = new Map(),
): Promise<Map<string, StoredPrediction>> {
  const byId = into;
  for await (const { number, value } of readJsonLines(path, label)) {
    const prediction = checkPredictionLine(value, label, number);
    const earlier = byId.get(prediction.id);
    if (earlier) {
      const where = earlier.file === undefined || earlier.file === label
        ? `line ${earlier.line}`
        : `${earlier.file} line ${earlier.line}`;
      throw inputError(
        label,
        number,
        `a second prediction for record "${prediction.id}" (the first is on ${where})`,
      );
    }
    byId.set(prediction.id, { ...storePrediction(prediction, pool, number), file: label });
  }
  return byId;
}

/**
 * Whether `path` is a predictions file (what infer and `eval --save-baselines` write): its first
 * line is an answer (`id`, `task`, and no `segments`, which a dataset record has).
 */
export async function isPredictionsFile(path: string): Promise<boolean> {
  // A line lists up to --top-k items: 1,000 long titles make one of 100 KB and more.
  const line = await firstLine(path, 1 << 24);
  if (line === undefined) return false;
  try {
    const value = JSON.parse(line);
    return typeof value === "object" && value !== null && typeof value.id === "string" &&
      typeof value.task === "string" && !("segments" in value);
  } catch {
    return false;
  }
}
