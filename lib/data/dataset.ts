/**
 * Reading a textualized dataset directory (train/valid/test JSONL, `entities.json`,
 * `manifest.json`) for the later stages. Records are streamed; the pool and manifest are small.
 *
 * @module
 */

import { join } from "node:path";
import { inputError } from "../errors.ts";
import { readJsonLines } from "../io/lines.ts";
import type { EntityEntry, Manifest, Split, TextRecord } from "./types.ts";
import { SPLITS } from "./types.ts";

/** An opened dataset directory. */
export interface Dataset {
  dir: string;
  manifest: Manifest;
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
    throw inputError(path, undefined, (error as Error).message);
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
  const manifest = await readJson<Manifest>(join(dir, "manifest.json"));
  const entities = await readJson<EntityEntry[]>(join(dir, "entities.json"));
  if (!Array.isArray(entities)) {
    throw inputError(join(dir, "entities.json"), undefined, "expected a JSON array");
  }
  return { dir, manifest, entities };
}

/** Streams the records of one split, checking each has the fields every stage relies on. */
export async function* readRecords(data: Dataset, split: Split): AsyncGenerator<TextRecord> {
  if (!SPLITS.includes(split)) throw inputError(data.dir, undefined, `unknown split "${split}"`);
  const path = join(data.dir, `${split}.jsonl`);
  for await (const { number, value } of readJsonLines<TextRecord>(path)) {
    if (
      typeof value !== "object" || value === null || typeof value.id !== "string" ||
      !Array.isArray(value.segments)
    ) {
      throw inputError(path, number, "not a record (needs at least id and segments)");
    }
    yield value;
  }
}
