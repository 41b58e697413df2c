/**
 * Scoring known answers: the log-likelihood of `[S]` + answer + `[E]` given part A, for ranking a
 * record's candidates (direct and sequential recommendation under the sampled protocol) and for
 * the rating task (each rating value scored as the text the collator would build for it). Many
 * answers of many prompts go through one run of the scoring graph, all sharing their prompt's
 * part-A cache.
 *
 * Positions are the collator's for the answer as a training target: inter at the mask, intra 1
 * for `[S]` and 1 + (index in its unit) for the rest (docs/method.md section 6). For an entity that
 * is 2 .. n + 1, which is also what the dynamic position rule gives along the trie, so a
 * candidate's score equals the score beam search gives the same item.
 *
 * @module
 */

import { encodeEntity, tokenizeRecord } from "../collate/mod.ts";
import type { TextRecord } from "../data/types.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { ANSWER_QUANTUM, paddedLength, type PromptInput, type StepModel } from "./step_model.ts";

/** An answer's tokens after `[S]` and their intra-positions. */
export interface AnswerTokens {
  /** The answer's token ids. */
  ids: Int32Array;
  /** Each token's intra-position (its position inside the span). */
  intra: Int32Array;
}

/** The answer tokens of an entity (its canonical tokens, intra 2 .. n + 1). */
export function entityAnswer(tokenizer: TextTokenizer, entity: string): AnswerTokens {
  const ids = encodeEntity(tokenizer, entity);
  return { ids, intra: Int32Array.from(ids, (_, i) => i + 2) };
}

/**
 * The answer tokens of a text target (a rating `"4"`, a sentence) exactly as the collator encodes
 * a one-segment text target: `" " + text` cut into sentences, each token its own unit (intra 2).
 */
export function textAnswer(tokenizer: TextTokenizer, text: string): AnswerTokens {
  const record = {
    id: "answer",
    segments: [{ text: "." }],
    target: [{ text }],
  } as unknown as TextRecord;
  const t = tokenizeRecord(tokenizer, record);
  const from = t.unitStart[t.promptUnits];
  const ids = t.ids.slice(from);
  const intra = new Int32Array(ids.length);
  for (let u = t.promptUnits; u < t.unitStart.length - 1; u++) {
    for (let i = t.unitStart[u]; i < t.unitStart[u + 1]; i++) {
      intra[i - from] = i - t.unitStart[u] + 2;
    }
  }
  return { ids, intra };
}

/** Default of {@linkcode ScoreOptions.tokensPerRun}. */
export const DEFAULT_TOKENS_PER_RUN = 2048;

/** Options of {@linkcode scoreAnswers}. */
export interface ScoreOptions {
  /** Id of `[S]`. */
  sop: number;
  /** Id of `[E]`. */
  eop: number;
  /**
   * Most tokens (rows x row length) in one run (`DEFAULT_TOKENS_PER_RUN`): the graph holds log-softmax rows
   * of the vocabulary for each, so this bounds memory.
   */
  tokensPerRun?: number;
}

/**
 * For each prompt, the log-likelihood of each of its answers: sum of log p(token) over the
 * answer's tokens and the final `[E]`, given part A and `[S]`. Answers are scored in runs of
 * several per prompt for every prompt at once.
 *
 * @example
 * ```ts
 * import type { TextRecord } from "../data/types.ts";
 * import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
 * import type { PromptInput, StepModel } from "./step_model.ts";
 *
 * declare const record: TextRecord, tokenizer: TextTokenizer;
 * declare const decoder: StepModel, partA: PromptInput;
 * const answers = record.candidates!.map((c) => entityAnswer(tokenizer, c));
 * const [scores] = await scoreAnswers(decoder, [partA], [answers], tokenizer.special);
 * ```
 */
export async function scoreAnswers(
  model: StepModel,
  prompts: readonly PromptInput[],
  answers: readonly (readonly AnswerTokens[])[],
  options: ScoreOptions,
): Promise<Float64Array[]> {
  const P = prompts.length;
  const scores = answers.map((list) => new Float64Array(list.length));
  if (P === 0) return scores;
  // Rows of one run share one length T, a multiple of ANSWER_QUANTUM: answers are grouped by
  // their padded length (not padded to the longest of the run), so an answer's score does not
  // depend on the other answers or prompts it is scored with.
  const byLength = new Map<number, number[][]>();
  answers.forEach((list, q) => {
    list.forEach((a, i) => {
      const T = paddedLength(a.ids.length + 1, ANSWER_QUANTUM);
      let perPrompt = byLength.get(T);
      if (!perPrompt) byLength.set(T, perPrompt = answers.map(() => []));
      perPrompt[q].push(i);
    });
  });
  if (byLength.size === 0) return scores;
  await model.prefill(prompts);
  const budget = options.tokensPerRun ?? DEFAULT_TOKENS_PER_RUN;
  for (const T of [...byLength.keys()].sort((a, b) => a - b)) {
    const chosen = byLength.get(T)!;
    let most = 0;
    for (const list of chosen) most = Math.max(most, list.length);
    const perRun = Math.max(1, Math.min(most, Math.floor(budget / (P * T))));
    for (let start = 0; start < most; start += perRun) {
      const k = Math.min(perRun, most - start);
      const n = P * k;
      const ids = new Int32Array(n * T);
      const inter = new Int32Array(n * T);
      const intra = new Int32Array(n * T);
      const targets = new Int32Array(n * T);
      for (let q = 0; q < P; q++) {
        inter.fill(prompts[q].maskIndex, q * k * T, (q + 1) * k * T);
        for (let j = 0; j < k; j++) {
          const at = (q * k + j) * T;
          ids[at] = options.sop;
          intra[at] = 1;
          const i = chosen[q][start + j];
          if (i === undefined) continue; // padding row: its result is not read
          const a = answers[q][i];
          ids.set(a.ids, at + 1);
          intra.set(a.intra, at + 1);
          targets.set(a.ids, at);
          targets[at + a.ids.length] = options.eop;
        }
      }
      const logp = await model.scoreTargets({
        perPrompt: k,
        length: T,
        ids,
        inter,
        intra,
        targets,
      });
      for (let q = 0; q < P; q++) {
        for (let j = 0; j < k; j++) {
          const i = chosen[q][start + j];
          if (i === undefined) continue;
          const at = (q * k + j) * T;
          const len = answers[q][i].ids.length + 1;
          let sum = 0;
          for (let t = 0; t < len; t++) sum += logp[at + t];
          scores[q][i] = sum;
        }
      }
    }
  }
  return scores;
}

/** Indices of `scores` from the highest score to the lowest (ties keep their order). */
export function rankByScore(scores: ArrayLike<number>): Int32Array {
  const order = Int32Array.from({ length: scores.length }, (_, i) => i);
  return order.sort((a, b) => scores[b] - scores[a] || a - b);
}

/** A predicted rating from the log-likelihoods of the rating values. */
export interface RatingPrediction {
  /** Sum of value x probability, the probabilities renormalised over the values. */
  expected: number;
  /** The value with the highest likelihood (the first one on a tie). */
  mostLikely: number;
  /** [values] the renormalised probabilities. */
  probabilities: Float64Array;
}

/**
 * The expected and the most likely rating from `scores` (log-likelihood of each of `values`).
 *
 * @example
 * ```ts
 * ratingFromScores(Float64Array.of(Math.log(0.1), Math.log(0.3)), [4, 5]);
 * // { expected: 4.75, mostLikely: 5, probabilities: [0.25, 0.75] }
 * ```
 */
export function ratingFromScores(
  scores: ArrayLike<number>,
  values: readonly number[],
): RatingPrediction {
  if (scores.length !== values.length || values.length === 0) {
    throw new RangeError("one score per rating value, at least one value");
  }
  let max = -Infinity;
  let best = 0;
  for (let i = 0; i < scores.length; i++) {
    if (scores[i] > max) {
      max = scores[i];
      best = i;
    }
  }
  const probabilities = new Float64Array(values.length);
  let total = 0;
  for (let i = 0; i < scores.length; i++) total += probabilities[i] = Math.exp(scores[i] - max);
  let expected = 0;
  for (let i = 0; i < scores.length; i++) {
    probabilities[i] /= total;
    expected += probabilities[i] * values[i];
  }
  return { expected, mostLikely: values[best], probabilities };
}
