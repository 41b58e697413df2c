/**
 * Exact ranking over every item when the first token of an item entity decides the item (item
 * tokens, docs/method.md section 13): one decoding step, `[S]` after each prompt's part A, gives
 * the next token's log-probabilities, and item i's score is that of its first token. No beam: the
 * top-k is exact whatever k, and one step costs what the beam search's first step costs.
 *
 * Scores: the vocabulary's log-probability of the item's token, or with `trieSoftmax` its
 * log-probability among the items (renormalised over every item's first token, the trie's root,
 * so the items' probabilities sum to 1). The order is the same either way. Under the trie's
 * softmax the beam search over the same trie gives the same items and scores (each later token of
 * an item is forced, so it costs nothing): tested in tests/item_tokens_test.ts.
 *
 * Not here: the beam search over title tokens, which stays for title-only pools (items.ts).
 *
 * @module
 */

import type { Exclusion, ItemPool } from "../collate/pool.ts";
import type { RankedItems } from "./items.ts";
import type { PromptInput, StepModel } from "./step_model.ts";

/** Options of {@linkcode rankItemsExact}. */
export interface ExactRankOptions {
  /** The items ranked. */
  pool: ItemPool;
  /** [items] the first token of each item, each a different token (`firstTokenOfItems`). */
  firstTokens: Int32Array;
  /** Id of `[S]`. */
  sop: number;
  /** Items returned per prompt. Default 10. */
  topK?: number;
  /** Per prompt: the items it must not return (exclusionOf: their end nodes), or null. */
  exclusions?: readonly (Exclusion | null)[];
  /** Scores among the items (see the module docs) instead of the vocabulary's. */
  trieSoftmax?: boolean;
}

/** Per pool: the trie node where each item ends (what an Exclusion names). */
const endNodes = new WeakMap<ItemPool, Int32Array>();

function itemEndNodes(pool: ItemPool): Int32Array {
  let ends = endNodes.get(pool);
  if (!ends) {
    ends = Int32Array.from(pool.tokens, (t) => pool.trie.walk(t));
    endNodes.set(pool, ends);
  }
  return ends;
}

/**
 * The top-k items of each prompt by their first token's log-probability (see the module docs).
 * A `firstTokens` of another length than the pool's items, or with a token past the model's
 * rows, is a RangeError.
 *
 * @example
 * ```ts
 * import { firstTokenOfItems } from "../collate/mod.ts";
 * import type { Pool } from "../collate/pool.ts";
 * import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
 * import type { PromptInput, StepModel } from "./step_model.ts";
 *
 * declare const decoder: StepModel, partA: PromptInput, pool: Pool, tokenizer: TextTokenizer;
 * const firstTokens = firstTokenOfItems(pool.items.tokens);
 * if (firstTokens) {
 *   const [ranked] = await rankItemsExact(decoder, [partA], {
 *     pool: pool.items, firstTokens, sop: tokenizer.special.sop, topK: 10,
 *   });
 *   Array.from(ranked.items, (i) => pool.items.items[i]); // entity strings, best first
 * }
 * ```
 */
export async function rankItemsExact(
  model: StepModel,
  prompts: readonly PromptInput[],
  options: ExactRankOptions,
): Promise<RankedItems[]> {
  const { pool, firstTokens } = options;
  const topK = options.topK ?? 10;
  const n = firstTokens.length;
  if (n !== pool.items.length) {
    throw new RangeError(`${n} first tokens for ${pool.items.length} items`);
  }
  if (!(topK >= 1)) throw new RangeError("topK must be at least 1");
  const all = await itemLogProbs(model, prompts, options);
  const ends = options.exclusions?.some((e) => e !== null) ? itemEndNodes(pool) : null;
  return all.map((scores, p) => {
    const exclusion = options.exclusions?.[p] ?? null;
    return topOf(scores, topK, exclusion && ends ? (i) => exclusion.ends.has(ends[i]) : null);
  });
}

/** Options of {@linkcode itemLogProbs}. */
export interface ItemLogProbOptions {
  /** [items] the first token of each item, each a different token (`firstTokenOfItems`). */
  firstTokens: Int32Array;
  /** Id of `[S]`. */
  sop: number;
  /** Scores among the items (see the module docs) instead of the vocabulary's. */
  trieSoftmax?: boolean;
}

/**
 * Every item's score for each prompt (see the module docs): [prompts][items], item i's score the
 * log-probability of `firstTokens[i]` after `[S]`. What {@linkcode rankItemsExact} ranks, and
 * what a reranker reads a first stage's candidates from (rerank.ts). A token past the model's
 * rows is a RangeError.
 *
 * @example
 * ```ts
 * import type { PromptInput, StepModel } from "./step_model.ts";
 *
 * declare const decoder: StepModel, partA: PromptInput, firstTokens: Int32Array, sop: number;
 * const [scores] = await itemLogProbs(decoder, [partA], { firstTokens, sop, trieSoftmax: true });
 * scores.length === firstTokens.length; // one log-probability per item
 * ```
 */
export async function itemLogProbs(
  model: StepModel,
  prompts: readonly PromptInput[],
  options: ItemLogProbOptions,
): Promise<Float64Array[]> {
  const { firstTokens, sop } = options;
  const n = firstTokens.length;
  const V = model.vocabSize;
  for (const t of firstTokens) {
    if (!(t >= 0 && t < V)) throw new RangeError(`first token ${t} is past the model's ${V} rows`);
  }
  const P = prompts.length;
  if (P === 0) return [];
  await model.prefill(prompts);
  // `[S]` for every prompt, one row each: exactly the beam search's first step.
  const logp = await model.step({
    perPrompt: 1,
    ids: new Int32Array(P).fill(sop),
    inter: Int32Array.from(prompts, (p) => p.maskIndex),
    intra: new Int32Array(P).fill(1),
    beamIndex: new Int32Array(P),
    oneRowEach: true,
  });
  const out: Float64Array[] = [];
  for (let p = 0; p < P; p++) {
    const offset = p * V;
    let norm = 0;
    if (options.trieSoftmax) {
      // The log of the mass of every item's token (the trie's root), as the beam search takes it.
      let max = -Infinity;
      for (let i = 0; i < n; i++) max = Math.max(max, logp[offset + firstTokens[i]]);
      let sum = 0;
      for (let i = 0; i < n; i++) sum += Math.exp(logp[offset + firstTokens[i]] - max);
      norm = max + Math.log(sum);
    }
    const scores = new Float64Array(n);
    for (let i = 0; i < n; i++) scores[i] = logp[offset + firstTokens[i]] - norm;
    out.push(scores);
  }
  return out;
}

/** The `k` best of `scores` (ties: the lower index first), skipping those `skip` names. */
function topOf(
  scores: Float64Array,
  k: number,
  skip: ((item: number) => boolean) | null,
): RankedItems {
  const items = new Int32Array(k);
  const best = new Float64Array(k);
  let count = 0;
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i];
    if (count === k && s <= best[k - 1]) continue;
    if (skip !== null && skip(i)) continue;
    let j = count < k ? count++ : k - 1;
    while (j > 0 && best[j - 1] < s) {
      best[j] = best[j - 1];
      items[j] = items[j - 1];
      j--;
    }
    best[j] = s;
    items[j] = i;
  }
  return { items: items.slice(0, count), scores: best.slice(0, count) };
}
