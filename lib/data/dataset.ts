/**
 * Reading a textualized dataset directory (train/valid/test JSONL, `candidates.jsonl`,
 * `entities.json`, `manifest.json`) for the later stages. Records are streamed; the pool, the
 * manifest and one split's candidate lists are held in memory.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { type InputError, inputError, optionName } from "../errors.ts";
import { pathExists } from "../io/fs.ts";
import { toIoError } from "../io/io_error.ts";
import { readJsonLines } from "../io/lines.ts";
import type { CandidateLine, EntityEntry, Manifest, Split, TextRecord } from "./types.ts";
import { SPLITS } from "./types.ts";
import { ITEM_TOKEN_MODES, type ItemTokenMode } from "./record_options.ts";

/** An opened dataset directory. */
export interface Dataset {
  /** The dataset directory. */
  dir: string;
  /** Its `manifest.json`. */
  manifest: Manifest;
  /** Its entity pool, `entities.json`. */
  entities: EntityEntry[];
}

async function readJson<T>(path: string): Promise<T> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw inputError(
        path,
        undefined,
        "file not found (is this a directory written by textualize?)",
      );
    }
    if (error instanceof Deno.errors.NotADirectory) {
      // A file given for the dataset's directory (a predictions file as --data, say).
      throw inputError(dirname(path), undefined, "is a file, not a dataset directory");
    }
    throw toIoError(error, path, "cannot read");
  }
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw inputError(path, undefined, `not valid JSON (${(error as Error).message})`);
  }
}

/**
 * Opens the dataset in `dir`, reading its manifest and entity pool.
 *
 * @example
 * ```ts
 * const data = await openDataset("runs/beauty");
 * for await (const record of readRecords(data, "test")) console.log(record.id);
 * ```
 */
export async function openDataset(dir: string): Promise<Dataset> {
  const manifestPath = join(dir, "manifest.json");
  const manifest = await readJson<Manifest>(manifestPath);
  checkManifestShape(manifest, manifestPath);
  const entitiesPath = join(dir, "entities.json");
  const entities = await readJson<EntityEntry[]>(entitiesPath);
  if (!Array.isArray(entities)) throw inputError(entitiesPath, undefined, "expected a JSON array");
  entities.forEach((entry, i) => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw inputError(entitiesPath, undefined, `entry ${i + 1} is not an object`);
    }
  });
  return { dir, manifest, entities };
}

/**
 * Refuses a `manifest.json` whose parts the later stages walk without looking (an object, its
 * `templates` a list of objects, its `tasks` and `options` objects, its `rating_scale` a pair),
 * each problem one line naming `file`; the values are checked where they are used.
 */
function checkManifestShape(manifest: unknown, file: string): void {
  const isObject = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isObject(manifest)) throw inputError(file, undefined, "expected a JSON object");
  const m = manifest as Record<string, unknown>;
  for (const key of ["tasks", "options"]) {
    if (m[key] !== undefined && m[key] !== null && !isObject(m[key])) {
      throw inputError(file, undefined, `"${key}" must be an object`);
    }
  }
  const scale = m.rating_scale;
  if (
    scale !== undefined && scale !== null &&
    !(Array.isArray(scale) && scale.length === 2 && scale.every(Number.isFinite) &&
      scale[0] <= scale[1])
  ) {
    // eval clips predicted ratings to it: a string or a reversed pair made every rating NaN.
    throw inputError(file, undefined, `"rating_scale" must be null or [lowest, highest]`);
  }
  const templates = m.templates;
  if (templates === undefined || templates === null) return;
  if (!Array.isArray(templates)) throw inputError(file, undefined, `"templates" must be a list`);
  templates.forEach((t, i) => {
    if (!isObject(t) || typeof t.id !== "string") {
      throw inputError(file, undefined, `"templates"[${i}] must be an object with a string "id"`);
    }
  });
}

/**
 * Whether the dataset's training records cover each user's validation item too (`textualize
 * --train-through valid`, the refit for the test split): its validation split is then training
 * data, not a held-out measure.
 */
export function trainsThroughValid(data: Dataset): boolean {
  return data.manifest.options?.train_through === "valid";
}

/**
 * The users whose validation item a `--train-through valid` dataset kept out of training
 * (`textualize --tune-users`): the sample's size and seed, or undefined.
 */
export function tuneUsersOf(data: Dataset): { size: number; seed: number } | undefined {
  const t = data.manifest.options?.tune_users as { size?: unknown; seed?: unknown } | undefined;
  return trainsThroughValid(data) && typeof t?.size === "number" && typeof t?.seed === "number"
    ? { size: t.size, seed: t.seed }
    : undefined;
}

/**
 * Refuses the validation split of a `--train-through valid` dataset (its items are training data)
 * unless `sample` is the tuning users it kept out, or a smaller sample of the same seed (which is
 * inside it): what `infer` and `eval` both check before any work.
 */
export function checkValidSplit(
  data: Dataset,
  split: string,
  sample?: { size: number; seed: number },
): void {
  if (split !== "valid" || !trainsThroughValid(data)) return;
  const tune = tuneUsersOf(data);
  const onTuneUsers = tune !== undefined && sample !== undefined && sample.seed === tune.seed &&
    sample.size <= tune.size;
  if (!onTuneUsers) throw refitValidError(data);
}

/**
 * The error for scoring or tuning on the validation split of a `--train-through valid` dataset,
 * whose validation items are training data (only the users `tuneUsersOf` names were kept out).
 */
export function refitValidError(data: Dataset): InputError {
  const tune = tuneUsersOf(data);
  return inputError(
    join(data.dir, "manifest.json"),
    undefined,
    "the validation items are training data here (textualize " +
      `${optionName("trainThrough")} valid): score the test split, or textualize without it ` +
      "to validate" +
      (tune
        ? `, or score the users it kept out (${optionName("sampleUsers")} ${tune.size} ` +
          `${optionName("sampleSeed")} ${tune.seed})`
        : ""),
  );
}

/**
 * How the dataset's item entities are tokenized (`textualize --item-tokens`, the manifest's
 * `options.item_tokens`; `none` when absent). An unknown value is an InputError naming the
 * manifest.
 */
export function itemTokenMode(data: Dataset): ItemTokenMode {
  const mode = data.manifest.options?.item_tokens ?? "none";
  if (!ITEM_TOKEN_MODES.includes(mode as ItemTokenMode)) {
    throw inputError(
      join(data.dir, "manifest.json"),
      undefined,
      `options.item_tokens is ${JSON.stringify(mode)}, not one of ${ITEM_TOKEN_MODES.join(", ")}`,
    );
  }
  return mode as ItemTokenMode;
}

/**
 * The candidate lists of one split by user, as entity strings, from `candidates.jsonl` (empty when
 * the dataset has none, e.g. one written by hand without the sampled protocol in mind).
 */
export async function readCandidates(data: Dataset, split: Split): Promise<Map<string, string[]>> {
  const path = join(data.dir, "candidates.jsonl");
  const byUser = new Map<string, string[]>();
  try {
    await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return byUser;
    throw error;
  }
  const items = new Map<string, string>();
  for (const e of data.entities) if (e.kind === "item") items.set(e.id, e.entity);
  for await (const { number, value } of readJsonLines<CandidateLine>(path)) {
    if (typeof value?.user !== "string" || !Array.isArray(value.items)) {
      throw inputError(path, number, "not a candidate line (needs user, split and items)");
    }
    if (value.split !== split) continue;
    byUser.set(
      value.user,
      value.items.map((id) => {
        const entity = items.get(id);
        if (entity === undefined) {
          throw inputError(path, number, `item id "${id}" is not in entities.json`);
        }
        return entity;
      }),
    );
  }
  return byUser;
}

/** Each dataset's candidate lists by split, read once however many passes read its records. */
const candidatesRead = new WeakMap<Dataset, Map<Split, Promise<Map<string, string[]>>>>();

/**
 * {@linkcode readCandidates}, read once for `data` (eval reads a split's records two or three
 * times; each pass parsed the whole file again, seconds on Beauty and more than linear in it).
 */
function splitCandidates(data: Dataset, split: Split): Promise<Map<string, string[]>> {
  let bySplit = candidatesRead.get(data);
  if (!bySplit) candidatesRead.set(data, bySplit = new Map());
  let read = bySplit.get(split);
  if (!read) {
    read = readCandidates(data, split);
    bySplit.set(split, read);
    // A failed read (a bad line) is not kept: the next pass reports it again.
    read.catch(() => bySplit!.delete(split));
  }
  return read;
}

/**
 * Streams the records of one split, checking each has the fields every stage relies on, with the
 * user's candidate list (from `candidates.jsonl`) attached to valid/test item-task records.
 */
export async function* readRecords(data: Dataset, split: Split): AsyncGenerator<TextRecord> {
  for await (const { record } of readNumberedRecords(data, split)) yield record;
}

/**
 * {@linkcode readRecords} with each record's line in the split's file (from 1), for messages
 * about a record that name where it is.
 */
export async function* readNumberedRecords(
  data: Dataset,
  split: Split,
): AsyncGenerator<{ line: number; record: TextRecord }> {
  if (!SPLITS.includes(split)) throw inputError(data.dir, undefined, `unknown split "${split}"`);
  const path = join(data.dir, `${split}.jsonl`);
  const candidates = split === "train"
    ? new Map<string, string[]>()
    : await splitCandidates(data, split);
  for await (const { number, value } of readJsonLines<TextRecord>(path)) {
    if (
      typeof value !== "object" || value === null || typeof value.id !== "string" ||
      !Array.isArray(value.segments)
    ) {
      throw inputError(path, number, "not a record (needs at least id and segments)");
    }
    if (
      value.candidates === undefined && (value.task === "sequential" || value.task === "direct")
    ) {
      const list = candidates.get(value.user);
      if (list !== undefined) value.candidates = list;
    }
    yield { line: number, record: value };
  }
}

/**
 * The split other than `except` whose records include `id`, if any: what an error about an id
 * unknown to one split can suggest ("it is a valid record; score the valid split").
 *
 * @example
 * ```ts
 * declare const data: Dataset;
 * await splitHolding(data, "u1/sequential/seq-1/valid", "test"); // "valid"
 * ```
 */
export async function splitHolding(
  data: Dataset,
  id: string,
  except: string,
): Promise<Split | undefined> {
  for (const split of SPLITS) {
    if (split === except || !(await pathExists(join(data.dir, `${split}.jsonl`)))) continue;
    for await (const record of readRecords(data, split)) if (record.id === id) return split;
  }
  return undefined;
}

/** The files of a dataset directory. */
const DATASET_FILES = new Set([
  ...SPLITS.map((s) => `${s}.jsonl`),
  "candidates.jsonl",
  "entities.json",
  "manifest.json",
  "shard.json",
]);

/**
 * Whether `dir` (without an ownership marker) is a dataset directory as textualize (of any
 * version) or `merge` writes it: nothing but dataset files, and a manifest of this toolkit's
 * shape. Such a directory may be replaced by a new dataset.
 */
export async function isDatasetDir(dir: string): Promise<boolean> {
  for await (const entry of Deno.readDir(dir)) {
    if (!DATASET_FILES.has(entry.name)) return false;
  }
  try {
    const manifest = JSON.parse(await Deno.readTextFile(join(dir, "manifest.json")));
    return manifest?.version === 1 && typeof manifest.counts === "object" &&
      Array.isArray(manifest.sources);
  } catch {
    return false;
  }
}
