/**
 * Item tokens (docs/method.md section 13, `textualize --item-tokens`): one new token per item of
 * the dataset's pool, with which the item's entity starts, so the first token generated for an
 * item entity is a softmax over all the items (SASRec's full cross-entropy inside the language
 * model), with the title and the rest of the prompt as context.
 *
 * Where the ids live: right after every id of the model's tokenizer, its appended special tokens
 * included (`TextTokenizer.vocabSize`), in the order of the items in `entities.json` (sorted by
 * entity string: assigned without looking at the interactions). They are a function of the
 * tokenizer and the dataset directory, so every stage that opens both (init, collate, pretrain,
 * infer) derives the same ids; nothing else is stored. The model needs `vocabSize + items` rows:
 * `init` draws them for the project's GLM, and a decoder family gets them as the added rows of
 * section 11 (trained with the adapter and saved in it), because the tokenizer it is loaded with
 * counts them.
 *
 * Because the ids are positions in one dataset's item list, a model's item rows name that
 * dataset's items only: {@linkcode itemTokenDigest} is what a model records of the list its rows
 * were made for (`init` in `config.json`, `pretrain` in a decoder adapter's settings and in full
 * runs' `config.json`), and {@linkcode checkItemTokens} refuses a model whose record is another
 * dataset's, where another list of as many items or fewer would otherwise load and answer with
 * other items.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import { type Dataset, itemTokenMode, openDataset } from "../data/dataset.ts";
import type { ItemTokenMode } from "../data/record_options.ts";
import { inputError, optionName } from "../errors.ts";
import { TextTokenizer } from "../tokenizer/tokenizer.ts";

/** The name of item `id`'s token (what `decode` shows for it). */
export function itemTokenName(id: string): string {
  return `<item:${id}>`;
}

/**
 * `tokenizer` with the dataset's item tokens when its manifest asks for them (`item_tokens`
 * `title` or `only`), else `tokenizer` itself.
 *
 * @example
 * ```ts
 * import type { Dataset } from "../data/dataset.ts";
 * import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
 *
 * declare const base: TextTokenizer, data: Dataset;
 * const tokenizer = withItemTokens(base, data);
 * tokenizer.vocabSize - base.vocabSize; // the number of items, or 0
 * ```
 */
export function withItemTokens(tokenizer: TextTokenizer, data: Dataset): TextTokenizer {
  const mode = itemTokenMode(data);
  if (mode === "none") return tokenizer;
  const items = data.entities.filter((e) => e.kind === "item");
  return tokenizer.withEntityTokens(
    items.map((e) => ({ entity: e.entity, name: itemTokenName(e.id) })),
    { titles: mode === "title" },
  );
}

/**
 * Loads the tokenizer `file` and, when `dataDir` is given, adds that dataset's item tokens
 * ({@linkcode withItemTokens}): the tokenizer a stage that reads the dataset works with.
 */
export async function loadTokenizerFor(file: string, dataDir?: string): Promise<TextTokenizer> {
  const tokenizer = await TextTokenizer.load(file);
  return dataDir === undefined ? tokenizer : withItemTokens(tokenizer, await openDataset(dataDir));
}

/**
 * The item each first token decides: when every item's tokens start with a token no other item
 * starts with (item tokens do that), `[items]` that first token per item, else null (titles
 * that share a first token need the beam search over the trie).
 */
export function firstTokenOfItems(tokens: readonly Int32Array[]): Int32Array | null {
  const first = new Int32Array(tokens.length);
  const seen = new Set<number>();
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i][0];
    if (seen.has(t)) return null;
    seen.add(t);
    first[i] = t;
  }
  return first;
}

/**
 * What a model records of the item tokens its rows were made for (`recsysllm_item_tokens` in
 * `config.json`, `item_tokens` in `recsysllm_adapter.json`).
 */
export interface ItemTokenDigest {
  /** How item entities were tokenized (`textualize --item-tokens`). */
  mode: Exclude<ItemTokenMode, "none">;
  /** Items, so rows. */
  count: number;
  /**
   * SHA-256 (hex) of the item ids as a JSON array in `entities.json` order: the order that gives
   * each item its token id.
   */
  sha256: string;
}

/**
 * The digest of `data`'s item tokens, or undefined when the dataset has none.
 *
 * @example
 * ```ts
 * import type { Dataset } from "../data/dataset.ts";
 *
 * declare const data: Dataset;
 * itemTokenDigest(data); // { mode: "title", count: 293, sha256: "5be0..." }, or undefined
 * ```
 */
export function itemTokenDigest(data: Dataset): ItemTokenDigest | undefined {
  const mode = itemTokenMode(data);
  if (mode === "none") return undefined;
  const ids = data.entities.filter((e) => e.kind === "item").map((e) => e.id);
  const sha256 = createHash("sha256").update(JSON.stringify(ids)).digest("hex");
  return { mode, count: ids.length, sha256 };
}

/** The JSON object of `digest` (its keys as written to `config.json` and the adapter settings). */
export function itemTokenDigestJson(digest: ItemTokenDigest): Record<string, unknown> {
  return { mode: digest.mode, count: digest.count, sha256: digest.sha256 };
}

/**
 * The digest recorded as `json` under `key` of `file` (undefined when absent); anything else is
 * an InputError naming the file and the key.
 */
export function parseItemTokenDigest(
  json: unknown,
  file: string,
  key: string,
): ItemTokenDigest | undefined {
  if (json === undefined || json === null) return undefined;
  const o = json as Record<string, unknown>;
  const ok = typeof json === "object" && !Array.isArray(json) &&
    (o.mode === "title" || o.mode === "only") &&
    Number.isInteger(o.count) && (o.count as number) >= 0 &&
    typeof o.sha256 === "string" && /^[0-9a-f]{64}$/.test(o.sha256);
  if (!ok) {
    throw inputError(
      file,
      undefined,
      `"${key}" must be {"mode": "title" | "only", "count": items, "sha256": 64 hex digits}`,
    );
  }
  return {
    mode: o.mode as ItemTokenDigest["mode"],
    count: o.count as number,
    sha256: o.sha256 as string,
  };
}

/** Where a recorded digest was read and what a user does when it is not the dataset's. */
export interface ItemTokenSource {
  /** The file that records it (`config.json`, `recsysllm_adapter.json`). */
  file: string;
  /** What to do instead, e.g. "init a model for this dataset". */
  fix: string;
}

/**
 * Refuses a model whose item rows were made for another dataset's items than `data`'s: `recorded`
 * (the model's, from `source.file`) and `data`'s digest must agree where both exist. A model
 * that records none (made before the record, or without item tokens) is accepted, and so is a
 * dataset without item tokens (the rows are then unused).
 *
 * @example
 * ```ts
 * import type { Dataset } from "../data/dataset.ts";
 *
 * declare const data: Dataset, recorded: ItemTokenDigest | undefined;
 * checkItemTokens(recorded, data, {
 *   file: "runs/model/config.json",
 *   fix: "init a model for this dataset",
 * }); // throws an InputError when the rows name another dataset's items
 * ```
 */
export function checkItemTokens(
  recorded: ItemTokenDigest | undefined,
  data: Dataset,
  source: ItemTokenSource,
): void {
  const ours = itemTokenDigest(data);
  if (!recorded || !ours) return;
  const entities = join(data.dir, "entities.json");
  if (recorded.count !== ours.count || recorded.sha256 !== ours.sha256) {
    throw inputError(
      source.file,
      undefined,
      `its item tokens are another dataset's (${recorded.count} items, sha256 ` +
        `${recorded.sha256.slice(0, 12)}...); ${entities} has ${ours.count} items (sha256 ` +
        `${ours.sha256.slice(0, 12)}...): ${source.fix}`,
    );
  }
  if (recorded.mode !== ours.mode) {
    throw inputError(
      source.file,
      undefined,
      `its item tokens were trained with item_tokens "${recorded.mode}"; ` +
        `${join(data.dir, "manifest.json")} has "${ours.mode}": textualize with ${
          optionName("itemTokens")
        } ` +
        `${recorded.mode}, or ${source.fix}`,
    );
  }
}
