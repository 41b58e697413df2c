/**
 * What generation needs from a model, as one small interface: part A of some prompts encoded once,
 * then steps that feed one new token (or a run of T known tokens) to each of N sequences (K per
 * prompt, continuing the rows of the previous step given by a beam index) and return the next
 * token's log-probabilities after each, and a scoring call for known answers. The ONNX decoder (`decoder.ts`) implements it over the cached
 * decoding graphs; tests implement it with a plain function, so the search code here is pure.
 *
 * Not here: any search logic (see `items.ts`, `text.ts`, `score.ts`).
 *
 * @module
 */

/**
 * The steps read part A's caches padded to a multiple of this many tokens (a batch to the
 * longest of its prompts; the prefill encodes each prompt at its own length, lib/generate/decoder.ts).
 * onnxruntime's CPU kernels give a row the same bits whatever the number of rows, but not
 * whatever the padded length: a step's softmax runs over part A's keys then the generated ones,
 * and vector sums take an element in a lane by its position, so part A's length moves the
 * generated keys between lanes. Padding by multiples of 64 (every vector width's multiple) moves
 * them by whole vectors and adds exact zeros, so a prompt gets the same bits at any padded length
 * (tests/infer_batching_test.ts): a record's scores do not depend on the records it happens to be
 * batched with, and batch size, input order and sharding (lib/shard) change no byte of the output.
 */
export const PART_A_QUANTUM = 64;

/** Answers scored together are padded to a multiple of this many tokens, for the same reason. */
export const ANSWER_QUANTUM = 8;

/** `length` rounded up to a multiple of `quantum`. */
export function paddedLength(length: number, quantum: number): number {
  return Math.ceil(length / quantum) * quantum;
}

/** Part A of one prompt as the decoder takes it (what `encodePromptPartA` returns). */
export interface PromptInput {
  /** [La] token ids of part A, the answer's `[MASK]` included. */
  ids: Int32Array;
  /** [La] inter-positions. */
  inter: Int32Array;
  /** [La] intra-positions. */
  intra: Int32Array;
  /** Index of the answer's mask token: the inter-position of every token generated for it. */
  maskIndex: number;
}

/**
 * One decoding step: T new tokens (default one) for each of N sequences, grouped by prompt:
 * `perPrompt` each, or `rows[q]` for prompt q when given (N is then their sum). With T > 1 the
 * tokens of a row are fed together, each attending to those before it, and the step returns the
 * log-probabilities after each of them: what T one-token steps give (a run of tokens the item
 * trie forces, lib/generate/items.ts), in one model run.
 */
export interface StepInput {
  /**
   * K: sequences per prompt (row n continues prompt floor(n / K)), or with `rows` the most rows
   * of any prompt.
   */
  perPrompt: number;
  /**
   * [prompts] the rows of each prompt, between 1 and `perPrompt`, when prompts have different
   * numbers (prompt q's rows follow prompt q - 1's): a beam search feeds its live beams only,
   * not copies that pad every prompt to the widest (default: `perPrompt` each).
   */
  rows?: Int32Array;
  /** T: new tokens per row (default 1). */
  length?: number;
  /** [N * T] the new tokens of each row, row after row. */
  ids: Int32Array;
  /** [N * T] their inter-positions. */
  inter: Int32Array;
  /** [N * T] their intra-positions. */
  intra: Int32Array;
  /**
   * [N] the row of the previous step each row continues (its generated tokens so far); ignored
   * at the first step after a reset, when no token has been generated yet.
   */
  beamIndex: Int32Array;
  /**
   * True when every prompt of this search has one row at every step (one beam): its rows per
   * prompt then never depend on the batch, and the model need not keep one-row products away
   * (lib/generate/decoder.ts).
   */
  oneRowEach?: boolean;
}

/**
 * The prompt of each row of a step over `prompts` prompts: row n's is floor(n / perPrompt), or
 * with `rows` the prompt whose packed rows hold n.
 *
 * @example
 * ```ts
 * rowPrompts({ perPrompt: 3, rows: Int32Array.of(3, 1), ids: new Int32Array(4),
 *   inter: new Int32Array(4), intra: new Int32Array(4), beamIndex: new Int32Array(4) }, 2);
 * // Int32Array [0, 0, 0, 1]
 * ```
 */
export function rowPrompts(input: StepInput, prompts: number): Int32Array {
  const counts = input.rows ?? new Int32Array(prompts).fill(input.perPrompt);
  const out = new Int32Array(counts.reduce((a, c) => a + c, 0));
  let at = 0;
  counts.forEach((c, q) => out.fill(q, at, at += c));
  return out;
}

/** Scoring known continuations: N = prompts * perPrompt rows of T tokens each, from part A. */
export interface ScoreInput {
  /** K: rows per prompt; row n belongs to prompt floor(n / K). */
  perPrompt: number;
  /** T: tokens per row (rows are right-padded to it). */
  length: number;
  /** [N * T] input tokens (`[S]` t1 .. tn, then padding). */
  ids: Int32Array;
  /** [N * T] inter-positions. */
  inter: Int32Array;
  /** [N * T] intra-positions. */
  intra: Int32Array;
  /** [N * T] the token whose log-probability is wanted after each input (t1 .. tn `[E]`, ...). */
  targets: Int32Array;
}

/**
 * A model that decodes inside a span with a cached part A. Stateful: `prefill` sets the prompts,
 * `step` extends the generated tokens, `keepPrompts` drops finished prompts.
 */
export interface StepModel {
  /** V: the size of each log-probability row. */
  readonly vocabSize: number;
  /** Encodes part A of `prompts` (replacing any earlier ones) and forgets generated tokens. */
  prefill(prompts: readonly PromptInput[]): Promise<void>;
  /**
   * Keeps only the prompts at positions `keep` (ascending) of the current list, in that order.
   * Generated tokens stay addressable by their previous row numbers through `beamIndex`.
   */
  keepPrompts(keep: readonly number[]): void;
  /** Forgets the generated tokens; part A stays. */
  resetPast(): void;
  /**
   * Feeds T tokens per row (`input.length`, default 1) and returns the log-softmax of the next
   * token after each, [N, T, V] row-major ([N, V] for one token). The array may be reused by the
   * next call: read it before stepping again.
   */
  step(input: StepInput): Promise<Float32Array>;
  /**
   * Returns the log-probability of each target, [N, T], for rows fed right after part A (the
   * generated tokens are neither used nor changed).
   */
  scoreTargets(input: ScoreInput): Promise<Float32Array>;
}
