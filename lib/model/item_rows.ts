/**
 * SASRec's item table as a file of its own (`eval --save-baselines DIR` writes
 * `DIR/sasrec-items.safetensors`), so another model can start from it: `init --item-rows FILE`
 * sets a GLM's item-token rows from it (docs/method.md section 13, the second option).
 *
 * The file holds `item_embedding` [items + 1, hidden] (row 0 is SASRec's padding item, row i + 1
 * item i of the dataset's pool, in entities.json order: the order item tokens take) and, in its
 * metadata, the SHA-256 of the item ids in that order, so a table is never applied to another
 * dataset's items.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { inputError, optionName } from "../errors.ts";
import { SafetensorsFile, writeSafetensors } from "./safetensors.ts";

/** The metadata key that marks a SASRec item table (its value: the JSON of ItemTableInfo). */
export const ITEM_TABLE_KEY = "recsysllm_sasrec_items";

/** What an item table file says about itself. */
export interface ItemTableInfo {
  /** Items (rows after the padding row). */
  items: number;
  /** Columns (SASRec's hidden size). */
  hidden: number;
  /** SHA-256 (hex) of the JSON array of the item ids, in pool order. */
  item_ids_sha256: string;
}

/** The SHA-256 (hex) of `ids` as a JSON array: what a table records of its items. */
export function itemIdsSha256(ids: readonly string[]): string {
  return createHash("sha256").update(JSON.stringify(ids)).digest("hex");
}

/**
 * Writes SASRec's `table` ([ids.length + 1, hidden], row 0 padding) for the items `ids` to
 * `path` (the caller's claimed temporary file; lib/io/safe_output.ts).
 *
 * @example
 * ```ts
 * declare const table: Float32Array, ids: string[];
 * await writeItemTable("runs/base/sasrec-items.safetensors.tmp", table, ids);
 * ```
 */
export async function writeItemTable(
  path: string,
  table: Float32Array,
  ids: readonly string[],
): Promise<void> {
  const rows = ids.length + 1;
  if (table.length % rows !== 0) {
    throw new RangeError(`an item table of ${table.length} values is not ${rows} rows`);
  }
  const info: ItemTableInfo = {
    items: ids.length,
    hidden: table.length / rows,
    item_ids_sha256: itemIdsSha256(ids),
  };
  await writeSafetensors(
    path,
    { item_embedding: { shape: [rows, info.hidden], data: table } },
    { [ITEM_TABLE_KEY]: JSON.stringify(info) },
  );
}

/**
 * Reads an item table and checks it is for the items `ids` (same count, same ids in the same
 * order); anything else is an InputError naming the file. Returns the rows of the items (the
 * padding row dropped), [ids.length, hidden].
 *
 * @example
 * ```ts
 * declare const ids: string[];
 * const { rows, hidden } = await readItemTable("runs/base/sasrec-items.safetensors", ids);
 * rows.length === ids.length * hidden;
 * ```
 */
export async function readItemTable(
  path: string,
  ids: readonly string[],
): Promise<{ rows: Float32Array; hidden: number }> {
  const file = await SafetensorsFile.open(path);
  let info: ItemTableInfo;
  try {
    info = JSON.parse(file.metadata[ITEM_TABLE_KEY] ?? "");
  } catch {
    throw inputError(
      path,
      undefined,
      `not a SASRec item table (eval's ${optionName("saveBaselines")} DIR writes ` +
        "DIR/sasrec-items.safetensors when SASRec is among the baselines)",
    );
  }
  if (info.items !== ids.length || info.item_ids_sha256 !== itemIdsSha256(ids)) {
    throw inputError(
      path,
      undefined,
      `its ${info.items} items are another dataset's (sha256 ${
        String(info.item_ids_sha256).slice(0, 12)
      }...), not this dataset's ${ids.length}: save SASRec's table with this dataset`,
    );
  }
  const shape = [info.items + 1, info.hidden];
  const { tensors } = await file.float32All(new Map([["item_embedding", shape]]));
  const table = tensors.get("item_embedding")!;
  return { rows: table.subarray(info.hidden), hidden: info.hidden };
}

/**
 * Writes `rows` ([items, hidden] from {@linkcode readItemTable}) into `embedding` ([vocab, width])
 * at rows `first .. first + items`: SASRec's first `min(hidden, width)` columns, zeros after
 * them (random values there would add noise to every item's dot product), scaled so that the
 * rows' root mean square over `width` is `rms` (the model's own initial scale: SASRec's table is
 * larger). Only the rows' directions and relative norms carry over, which is what a dot-product
 * output layer reads.
 *
 * @example
 * ```ts
 * const embedding = new Float32Array(10 * 4);
 * placeItemRows(embedding, 4, Float32Array.of(3, 0, 0, 4), 2, 8, 0.02);
 * embedding.slice(32, 40); // rows 8 and 9: [0.0339, 0, 0, 0, 0, 0.0453, 0, 0] (RMS 0.02)
 * ```
 */
export function placeItemRows(
  embedding: Float32Array,
  width: number,
  rows: Float32Array,
  hidden: number,
  first: number,
  rms: number,
): void {
  const items = rows.length / hidden;
  if (!Number.isInteger(items) || (first + items) * width > embedding.length) {
    throw new RangeError(`${items} item rows do not fit from row ${first}`);
  }
  const columns = Math.min(hidden, width);
  let squares = 0;
  for (let i = 0; i < items; i++) {
    for (let c = 0; c < columns; c++) squares += rows[i * hidden + c] ** 2;
  }
  const scale = squares === 0 ? 0 : rms / Math.sqrt(squares / (items * width));
  for (let i = 0; i < items; i++) {
    const to = (first + i) * width, from = i * hidden;
    for (let c = 0; c < width; c++) embedding[to + c] = c < columns ? rows[from + c] * scale : 0;
  }
}
