/**
 * Free text generation inside the answer's span (explanations, review summaries): greedy decoding
 * or beam search, up to a length limit, ending at `[E]`. Every new token gets the mask's
 * inter-position and the intra-position of the dynamic position rule over the trie of every
 * entity of the pool (docs/method.md section 7), so a title the model writes out is positioned as
 * an entity.
 *
 * Tokens the model may not write: the special tokens other than `[E]` and ids the tokenizer does
 * not have (a model's embedding may have spare rows), given as `allowed`.
 *
 * Beam search keeps the `beams` best unfinished hypotheses by total log-probability; a hypothesis
 * that takes `[E]` among the step's best is finished; a prompt stops when it has `beams` finished
 * ones or at the length limit. The answer is the finished hypothesis with the best mean
 * log-probability per token (`[E]` counted), since totals always favour the shortest text; with
 * one beam that is plain greedy decoding. At the length limit without a finished hypothesis, the
 * best unfinished one is returned (`finished: false`).
 *
 * @module
 */

import type { EntityTrie } from "../collate/mod.ts";
import { TRIE_ROOT } from "../collate/mod.ts";
import type { PromptInput, StepModel } from "./step_model.ts";

/** Defaults of {@linkcode TextOptions}: greedy decoding of at most 64 tokens. */
export const DEFAULT_TEXT = Object.freeze({ beams: 1, maxTokens: 64 });

/** Options of {@linkcode generateText}; defaults in {@linkcode DEFAULT_TEXT}. */
export interface TextOptions {
  /** Id of `[S]`. */
  sop: number;
  /** Id of `[E]`. */
  eop: number;
  /** Trie of the pool's entities (the dynamic position rule). */
  trie: EntityTrie;
  /** [V] 1 for tokens the model may write (`[E]` included). */
  allowed: Uint8Array;
  /** Most tokens before `[E]`. */
  maxTokens?: number;
  /** Most tokens before `[E]` for each prompt, where fewer than `maxTokens` fit its model. */
  maxTokensEach?: readonly number[];
  /** Beams per prompt (default 1: greedy). */
  beams?: number;
}

/** The text generated for one prompt. */
export interface GeneratedText {
  /** Its tokens, without `[E]`. */
  tokens: Int32Array;
  /** Sum of the log-probabilities of the tokens (and of `[E]` when finished). */
  score: number;
  /** Whether it ended with `[E]` (false: cut at the length limit). */
  finished: boolean;
}

interface Hypothesis {
  tokens: number[];
  score: number;
  /** Dynamic position state after the last token. */
  node: number;
  intra: number;
  row: number;
}

/** The `count` best allowed tokens of one log-probability row, best first. */
function topTokens(
  logp: Float32Array,
  offset: number,
  vocab: number,
  allowed: Uint8Array,
  count: number,
): number[] {
  const best: number[] = [];
  for (let v = 0; v < vocab; v++) {
    if (allowed[v] === 0) continue;
    const s = logp[offset + v];
    if (best.length === count && s <= logp[offset + best[count - 1]]) continue;
    let i = best.length < count ? best.length : count - 1;
    if (best.length < count) best.push(v);
    while (i > 0 && logp[offset + best[i - 1]] < s) {
      best[i] = best[i - 1];
      i--;
    }
    best[i] = v;
  }
  return best;
}

const mean = (h: { tokens: number[]; score: number }, ended: boolean) =>
  h.score / (h.tokens.length + (ended ? 1 : 0) || 1);

/**
 * Generates the answer text of each prompt (see the module docs).
 *
 * @example
 * ```ts
 * import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
 * import type { Pool } from "../collate/pool.ts";
 * import type { PromptInput, StepModel } from "./step_model.ts";
 *
 * declare const decoder: StepModel, partA: PromptInput, pool: Pool, tokenizer: TextTokenizer;
 * declare const allowed: Uint8Array;
 * const { sop, eop } = tokenizer.special;
 * const [out] = await generateText(decoder, [partA], { sop, eop, trie: pool.entities, allowed });
 * tokenizer.decode(out.tokens, { skipSpecial: true }).trim();
 * ```
 */
export async function generateText(
  model: StepModel,
  prompts: readonly PromptInput[],
  options: TextOptions,
): Promise<GeneratedText[]> {
  const beams = options.beams ?? DEFAULT_TEXT.beams;
  const maxTokens = options.maxTokens ?? DEFAULT_TEXT.maxTokens;
  if (!(beams >= 1 && maxTokens >= 1)) {
    throw new RangeError("beams and maxTokens must be at least 1");
  }
  const V = model.vocabSize;
  const P = prompts.length;
  if (P === 0) return [];
  await model.prefill(prompts);

  const live: Hypothesis[][] = prompts.map((_, p) => [
    { tokens: [], score: 0, node: -1, intra: 1, row: p },
  ]);
  const done: Hypothesis[][] = prompts.map(() => []);
  let active = Array.from({ length: P }, (_, p) => p);
  let logp = await model.step({
    perPrompt: 1,
    ids: new Int32Array(P).fill(options.sop),
    inter: Int32Array.from(prompts, (p) => p.maskIndex),
    intra: new Int32Array(P).fill(1),
    beamIndex: new Int32Array(P),
    oneRowEach: beams === 1,
  });

  for (let length = 0; active.length > 0; length++) {
    const keep: number[] = [];
    const still: number[] = [];
    for (let q = 0; q < active.length; q++) {
      const p = active[q];
      live[p] = extendBeams(live[p], done[p], logp, V, beams, options);
      const limit = Math.min(maxTokens, options.maxTokensEach?.[p] ?? maxTokens);
      if (done[p].length >= beams || live[p].length === 0 || length + 1 >= limit) continue;
      keep.push(q);
      still.push(p);
    }
    if (still.length === 0) break;
    if (still.length !== active.length) model.keepPrompts(keep);
    active = still;
    logp = await model.step({ ...nextRows(active, live, prompts), oneRowEach: beams === 1 });
  }
  return prompts.map((_, p) => bestText(done[p], live[p]));
}

/**
 * One step of one prompt: each live hypothesis's best `beams` tokens are the candidates, and the
 * best `beams` of all survive; those ending with `[E]` go to `done`. Returns the new live ones.
 */
function extendBeams(
  live: readonly Hypothesis[],
  done: Hypothesis[],
  logp: Float32Array,
  V: number,
  beams: number,
  options: TextOptions,
): Hypothesis[] {
  const { trie, allowed, eop } = options;
  const candidates: { parent: Hypothesis; token: number; score: number }[] = [];
  for (const h of live) {
    for (const token of topTokens(logp, h.row * V, V, allowed, beams)) {
      candidates.push({ parent: h, token, score: h.score + logp[h.row * V + token] });
    }
  }
  candidates.sort((a, b) => b.score - a.score);
  const next: Hypothesis[] = [];
  for (const c of candidates.slice(0, beams)) {
    if (c.token === eop) {
      done.push({ ...c.parent, score: c.score });
      continue;
    }
    // The dynamic position rule (lib/collate/dynamic_positions.ts), on plain fields.
    const h = c.parent;
    let node = h.node >= 0 ? trie.child(h.node, c.token) : -1;
    let intra = h.intra + 1;
    if (node < 0) {
      node = trie.child(TRIE_ROOT, c.token);
      intra = 2;
    }
    // `row` stays the parent's until the rows of the next step are laid out.
    next.push({ tokens: [...h.tokens, c.token], score: c.score, node, intra, row: h.row });
  }
  return next;
}

/**
 * The next step's rows: each active prompt's live hypotheses, packed prompt after prompt (`rows`:
 * their counts; `perPrompt`, the most); each hypothesis's `row` becomes its new row.
 */
function nextRows(
  active: readonly number[],
  live: readonly Hypothesis[][],
  prompts: readonly PromptInput[],
) {
  const rows = Int32Array.from(active, (p) => live[p].length);
  const width = Math.max(...rows);
  const n = rows.reduce((a, c) => a + c, 0);
  const ids = new Int32Array(n);
  const inter = new Int32Array(n);
  const intra = new Int32Array(n);
  const beamIndex = new Int32Array(n);
  let r = 0;
  for (const p of active) {
    for (const h of live[p]) {
      ids[r] = h.tokens[h.tokens.length - 1];
      inter[r] = prompts[p].maskIndex;
      intra[r] = h.intra;
      beamIndex[r] = h.row;
      h.row = r++;
    }
  }
  return { perPrompt: width, rows, ids, inter, intra, beamIndex };
}

/** The finished hypothesis of best mean log-probability, else the best unfinished one. */
function bestText(done: readonly Hypothesis[], live: readonly Hypothesis[]): GeneratedText {
  let best: Hypothesis | undefined;
  for (const h of done) if (!best || mean(h, true) > mean(best, true)) best = h;
  if (best) return { tokens: Int32Array.from(best.tokens), score: best.score, finished: true };
  for (const h of live) if (!best || mean(h, false) > mean(best, false)) best = h;
  return {
    tokens: Int32Array.from(best?.tokens ?? []),
    score: best?.score ?? 0,
    finished: false,
  };
}
