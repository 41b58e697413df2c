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
 * @module
 */

import { type Dataset, itemTokenMode, openDataset } from "../data/dataset.ts";
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
