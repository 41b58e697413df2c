/**
 * Predictions for task records: each record's part A is encoded as the collator encodes a prompt
 * (its answer's `[MASK]` in place, truncated to the model's length with room for the answer), and
 * the answer is produced by the method that fits its task:
 *
 * - sequential, direct (item tasks), protocol `full`: trie-constrained beam search over every item
 *   of the pool (items.ts), the top-k items with their log-probabilities; with item tokens (the
 *   first token decides the item) every item ranked exactly in one step (exact_rank.ts);
 * - the same tasks, protocol `sampled`: the record's candidates ranked by their log-likelihood
 *   (score.ts), the top-k of them;
 * - the same tasks with `rerank`: a first stage's candidates for the record (rerank.ts), ranked by
 *   the fusion of its scores with the model's (each item's exact score with item tokens, else its
 *   title's log-likelihood); each entry also carries `lm_score`, `first_score` and
 *   `first_rank` (its place in the first stage's list);
 * - rating: each rating value of the dataset (manifest `rating_values`) scored as the text the
 *   collator builds for it; `rating` is the expected value under the renormalised likelihoods,
 *   `most_likely` the likeliest value;
 * - explanation, review: generated text (text.ts), decoded without special tokens and trimmed.
 *
 * With `excludeSeen`, the user's earlier items (`record.history`) are never predicted (neither
 * over the pool nor among candidates).
 *
 * Records are processed in batches of one kind, sorted by prompt length (less padding); the
 * predictions come back in the records' order. The output lines are the predictions format of
 * lib/eval/predictions.ts.
 *
 * @module
 */

import {
  encodePromptPartA,
  firstTokenOfItems,
  minimumPromptLength,
  promptKeepsHead,
  type TokenizedRecord,
  tokenizeRecord,
} from "../collate/mod.ts";
import type { TextRecord } from "../data/types.ts";
import { ANSWERED_TASKS, type AnsweredTask, answerOf } from "../data/tasks.ts";
import { formatRating } from "../data/text.ts";
import { InputError, OptionError } from "../errors.ts";
import type { PredictionLine } from "../eval/predictions.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { DEFAULT_ITEM_SEARCH, searchItems } from "./items.ts";
import { itemLogProbs, rankItemsExact } from "./exact_rank.ts";
import { firstStageOf, type FirstStageRanking, fuseScores } from "./rerank.ts";
import { exclusionOf, type Pool } from "../collate/pool.ts";
import {
  type AnswerTokens,
  DEFAULT_TOKENS_PER_RUN,
  entityAnswer,
  rankByScore,
  ratingFromScores,
  scoreAnswers,
  textAnswer,
} from "./score.ts";
import { paddedLength, PART_A_QUANTUM, type PromptInput, type StepModel } from "./step_model.ts";
import { DEFAULT_TEXT, generateText } from "./text.ts";

/** The task families infer answers: every family with an answer (lib/data/tasks.ts). */
export const INFER_TASKS: readonly InferTask[] = ANSWERED_TASKS;
/** One of them. */
export type InferTask = AnsweredTask;

/** How item tasks are ranked: over every item (`full`) or among the record's candidates. */
export const INFER_PROTOCOLS = ["full", "sampled"] as const;
/** One ranking protocol. */
export type InferProtocol = typeof INFER_PROTOCOLS[number];

/** The options of {@linkcode PredictOptions} that count something: whole numbers, at least 1. */
export const PREDICT_COUNTS = ["batchSize", "topK", "beams", "textBeams", "maxNewTokens"] as const;

/**
 * The fewest tokens a generated text is given before a prompt's head is cut for it, where the
 * model's length cannot hold the whole prompt and `--max-new-tokens` (a short sentence).
 */
export const MIN_TEXT_ROOM = 16;

/** Defaults of {@linkcode PredictOptions}, from the searches they configure. */
export const DEFAULT_PREDICT = Object.freeze({
  protocol: "full" as InferProtocol,
  topK: DEFAULT_ITEM_SEARCH.topK,
  beams: DEFAULT_ITEM_SEARCH.beams,
  excludeSeen: false,
  trieSoftmax: false,
  forcedRuns: false,
  batchSize: 8,
  maxNewTokens: DEFAULT_TEXT.maxTokens,
  textBeams: DEFAULT_TEXT.beams,
  tokensPerRun: DEFAULT_TOKENS_PER_RUN,
});

/** Options of {@linkcode Predictor}; defaults in {@linkcode DEFAULT_PREDICT}. */
export interface PredictOptions {
  /** Item tasks: `full` (beam search over the pool) or `sampled` (rank candidates). */
  protocol?: InferProtocol;
  /** Items returned per record. */
  topK?: number;
  /** Beams of the item search. */
  beams?: number;
  /** Never predict the user's earlier items. */
  excludeSeen?: boolean;
  /** Item search: scores under the trie's softmax (ItemSearchOptions.trieSoftmax). */
  trieSoftmax?: boolean;
  /**
   * Item search: feed a run of tokens the trie forces in one model run (ItemSearchOptions
   * .forcedRuns; the top-k is the same, the last digits of scores then depend on the batch).
   */
  forcedRuns?: boolean;
  /** Prompts decoded together. */
  batchSize?: number;
  /** Text tasks: most generated tokens. */
  maxNewTokens?: number;
  /** Text tasks: beams (1: greedy). */
  textBeams?: number;
  /** Longest sequence (part A + answer) the model takes. */
  maxLength: number;
  /** The dataset's rating values (manifest `rating_values`), for the rating task. */
  ratingValues?: readonly number[];
  /** Scoring: most tokens per run. */
  tokensPerRun?: number;
  /** Item tasks: rerank a first stage's candidates instead of ranking every item (rerank.ts). */
  rerank?: RerankOptions;
}

/** A first stage to rerank (rerank.ts). */
export interface RerankOptions {
  /** Each record's candidates, by record id (readFirstStage). */
  stage: ReadonlyMap<string, FirstStageRanking>;
  /** Its file, for error messages. */
  file: string;
  /** The model's weight in the fusion, in [0, 1] (rerank.ts). */
  weight: number;
  /**
   * Rerank at most this many candidates of each record: the first stage's best, counted after
   * `excludeSeen` left the history out (as `eval --tune-rerank` counts them). Default: all.
   */
  top?: number;
}

/** What the predictor needs besides options. */
export interface PredictorParts {
  /**
   * The model that scores the next token; or several decoders of the same model (each in its own
   * worker, worker_decoder.ts), which then answer batches at once. The lines are the same
   * whichever decoder answers a batch: a record's scores do not depend on its batch.
   */
  model: StepModel | readonly StepModel[];
  /** The tokenizer of the model. */
  tokenizer: TextTokenizer;
  /** The dataset's item and entity tries. */
  pool: Pool;
}

/**
 * One output line: the predictions format (lib/eval/predictions.ts) plus, for ratings, the
 * likeliest value.
 */
export type InferLine = PredictionLine & { most_likely?: number };

type Mode = "items" | "candidates" | "rerank" | "rating" | "text";

interface Job {
  index: number;
  record: TextRecord;
  prompt: PromptInput;
  /** Text: the most new tokens that fit the model's length after the prompt. */
  maxTokens?: number;
}

const round = (x: number) => Math.round(x * 1e6) / 1e6;

/** Where {@linkcode atRecord} marks an error with the index of the record it is about. */
const RECORD_INDEX = Symbol("record index");

/** `f()`, an InputError it throws marked as about record `index` of the call's records. */
function atRecord<T>(index: number, f: () => T): T {
  try {
    return f();
  } catch (error) {
    if (error instanceof InputError) Object.assign(error, { [RECORD_INDEX]: index });
    throw error;
  }
}

/**
 * The index, in the records given to {@linkcode Predictor.predict}, of the record an InputError
 * it threw is about (a malformed record), so a caller can say where that record is; undefined for
 * any other error.
 *
 * @example
 * ```ts
 * declare const error: unknown;
 * recordIndexOf(error); // 3: the fourth record given to predict
 * ```
 */
export function recordIndexOf(error: unknown): number | undefined {
  if (!(error instanceof InputError)) return undefined;
  return (error as { [RECORD_INDEX]?: number })[RECORD_INDEX];
}

/**
 * Refuses the trie's softmax under the sampled protocol, which scores its candidates under the
 * vocabulary's softmax (a title-only model would silently ignore the option, an item-token one
 * apply it): an OptionError of `trieSoftmax`.
 *
 * @example
 * ```ts
 * checkTrieSoftmax("full", true); // fine
 * checkTrieSoftmax("sampled", false); // fine
 * ```
 */
export function checkTrieSoftmax(
  protocol: InferProtocol,
  trieSoftmax: boolean | undefined,
): void {
  if (!trieSoftmax || protocol === "full") return;
  throw new OptionError(
    "trieSoftmax",
    (name, nameOf) =>
      `${name} scores the item search over all items (${nameOf("protocol")} full); ` +
      "the sampled protocol scores its candidates under the vocabulary's softmax",
  );
}

/**
 * Refuses the trie's softmax with a rerank of titles (no item tokens): reranking scores the
 * candidates' titles under the vocabulary's softmax; only an item token (one step over every item)
 * has a trie softmax to rerank by. An OptionError of `trieSoftmax`.
 *
 * @example
 * ```ts
 * checkRerankSoftmax({ rerank: true, trieSoftmax: true, itemTokens: true }); // fine
 * checkRerankSoftmax({ rerank: false, trieSoftmax: true, itemTokens: false }); // fine
 * ```
 */
export function checkRerankSoftmax(
  options: { rerank: boolean; trieSoftmax: boolean | undefined; itemTokens: boolean },
): void {
  if (!options.rerank || !options.trieSoftmax || options.itemTokens) return;
  throw new OptionError(
    "trieSoftmax",
    (name, nameOf) =>
      `${name} with ${nameOf("rerank")} needs a dataset with item tokens; ` +
      "titles are reranked under the vocabulary's softmax",
  );
}

/**
 * Predicts answers for task records with one model.
 *
 * @example
 * ```ts
 * import type { TextRecord } from "../data/types.ts";
 * import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
 * import type { Pool } from "../collate/pool.ts";
 * import type { StepModel } from "./step_model.ts";
 *
 * declare const decoder: StepModel, tokenizer: TextTokenizer, pool: Pool, records: TextRecord[];
 * const predictor = new Predictor({ model: decoder, tokenizer, pool }, { maxLength: 512 });
 * const lines = await predictor.predict(records); // one PredictionLine per record, in order
 * ```
 */
export class Predictor {
  readonly #parts: Omit<PredictorParts, "model">;
  readonly #models: readonly StepModel[];
  readonly #options: Required<Omit<PredictOptions, "ratingValues" | "rerank">> & {
    ratingValues: readonly number[];
    rerank?: RerankOptions;
  };
  readonly #allowed: Uint8Array;
  readonly #longestItem: number;
  /** With item tokens: each item's first token, which decides it (exact_rank.ts); else null. */
  readonly #firstTokens: Int32Array | null;
  #ratingAnswers?: AnswerTokens[];

  /** A predictor over `parts`, with `options` filled from the defaults. */
  constructor(parts: PredictorParts, options: PredictOptions) {
    this.#parts = parts;
    this.#models = Array.isArray(parts.model) ? parts.model : [parts.model as StepModel];
    if (this.#models.length === 0) throw new RangeError("a predictor needs at least one model");
    this.#options = {
      protocol: options.protocol ?? DEFAULT_PREDICT.protocol,
      topK: options.topK ?? DEFAULT_PREDICT.topK,
      beams: options.beams ?? DEFAULT_PREDICT.beams,
      excludeSeen: options.excludeSeen ?? DEFAULT_PREDICT.excludeSeen,
      trieSoftmax: options.trieSoftmax ?? DEFAULT_PREDICT.trieSoftmax,
      forcedRuns: options.forcedRuns ?? DEFAULT_PREDICT.forcedRuns,
      batchSize: options.batchSize ?? DEFAULT_PREDICT.batchSize,
      maxNewTokens: options.maxNewTokens ?? DEFAULT_PREDICT.maxNewTokens,
      textBeams: options.textBeams ?? DEFAULT_PREDICT.textBeams,
      tokensPerRun: options.tokensPerRun ?? DEFAULT_PREDICT.tokensPerRun,
      maxLength: options.maxLength,
      ratingValues: options.ratingValues ?? [],
      rerank: options.rerank,
    };
    checkTrieSoftmax(this.#options.protocol, this.#options.trieSoftmax);
    // Counts the batches step through: 0 (or NaN) would loop for ever.
    for (const key of PREDICT_COUNTS) {
      const value = this.#options[key];
      if (!(Number.isInteger(value) && value >= 1)) {
        throw new RangeError(`${key} must be a whole number >= 1 (got ${value})`);
      }
    }
    const { tokenizer } = parts;
    const model = this.#models[0];
    // Text may use every ordinary token of the tokenizer, and [E] to stop.
    const allowed = new Uint8Array(model.vocabSize);
    const known = Math.min(tokenizer.vocabSize, model.vocabSize);
    for (let v = 0; v < known; v++) allowed[v] = tokenizer.isSpecial(v) ? 0 : 1;
    allowed[tokenizer.special.eop] = 1;
    this.#allowed = allowed;
    let longest = 0;
    for (const t of parts.pool.items.tokens) longest = Math.max(longest, t.length);
    this.#longestItem = longest;
    this.#firstTokens = tokenizer.entityTokens ? firstTokenOfItems(parts.pool.items.tokens) : null;
    checkRerankSoftmax({
      rerank: options.rerank !== undefined,
      trieSoftmax: options.trieSoftmax,
      itemTokens: this.#firstTokens !== null,
    });
  }

  #mode(record: TextRecord): Mode {
    // How a record is answered follows from its family's answer kind (lib/data/tasks.ts).
    switch (answerOf(record.task)) {
      case "item":
        if (this.#options.rerank) return "rerank";
        return this.#options.protocol === "full" ? "items" : "candidates";
      case "rating":
        return "rating";
      case "text":
        return "text";
      default:
        throw new InputError(
          `record "${record.id}": task "${record.task}" has no answer to predict`,
        );
    }
  }

  #ratings(): AnswerTokens[] {
    if (!this.#ratingAnswers) {
      if (this.#options.ratingValues.length === 0) {
        throw new InputError(
          "manifest.json: no rating_values, so rating records cannot be answered",
        );
      }
      this.#ratingAnswers = this.#options.ratingValues.map((v) =>
        textAnswer(this.#parts.tokenizer, formatRating(v))
      );
    }
    return this.#ratingAnswers;
  }

  /** Room part A must leave for `[S]` and the answer of a record of `mode`. */
  #reserve(mode: Mode): number {
    switch (mode) {
      // Every item mode alike, and as training leaves room (the collator's itemRoom): one
      // (record, item) pair gets one layout, so one score, whatever the protocol.
      case "items":
      case "rerank":
      case "candidates":
        return 1 + this.#longestItem;
      case "rating": {
        let longest = 0;
        for (const a of this.#ratings()) longest = Math.max(longest, a.ids.length);
        return 1 + longest;
      }
      case "text":
        return 1 + this.#options.maxNewTokens;
    }
  }

  /** Refuses a record without candidates, or whose candidates are not distinct pool items. */
  #checkCandidates(record: TextRecord): void {
    const where = `record "${record.id}"`;
    if (!Array.isArray(record.candidates)) {
      throw new InputError(
        `${where}: no candidates to rank (the sampled protocol needs the user's line in the ` +
          `dataset's candidates.jsonl)`,
      );
    }
    const seen = new Set<string>();
    for (const c of record.candidates) {
      if (!this.#parts.pool.items.index.has(c)) {
        throw new InputError(
          `${where}: candidate ${JSON.stringify(c)} is not an item of entities.json`,
        );
      }
      if (seen.has(c)) {
        throw new InputError(`${where}: candidate ${JSON.stringify(c)} is listed twice`);
      }
      seen.add(c);
    }
  }

  /**
   * The text's room in tokens where the model's length cannot hold the prompt and
   * `maxNewTokens` (undefined where it can). The prompt's head (its user, item and instruction)
   * matters more than the text's length: its history goes first, then the text is shortened,
   * to as few as {@linkcode MIN_TEXT_ROOM} tokens; only where even that would cut the head is the
   * head cut (the collator's rule, from the start) for all the room there is.
   */
  #textRoom(tokenized: TokenizedRecord): number | undefined {
    const { maxLength, maxNewTokens } = this.#options;
    const headKept = (room: number) => promptKeepsHead(tokenized, 1 + room, maxLength);
    if (headKept(maxNewTokens)) return undefined;
    // The most room that keeps the head: headKept is true up to some room, false past it.
    let [lo, hi] = [0, maxNewTokens]; // headKept(lo) (or lo 0), !headKept(hi)
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (headKept(mid)) lo = mid;
      else hi = mid;
    }
    if (lo >= Math.min(maxNewTokens, MIN_TEXT_ROOM)) return lo;
    const room = maxLength - minimumPromptLength(tokenized) - 1;
    return room >= 1 ? Math.min(room, maxNewTokens) : undefined;
  }

  /** The prediction line of each record, in order. */
  async predict(
    records: readonly TextRecord[],
    onBatch?: (answered: number) => void,
  ): Promise<InferLine[]> {
    const { tokenizer } = this.#parts;
    const groups = new Map<Mode, Job[]>();
    records.forEach((record, index) => {
      const { mode, tokenized } = atRecord(index, () => {
        const mode = this.#mode(record);
        if (mode === "candidates") this.#checkCandidates(record);
        return { mode, tokenized: tokenizeRecord(tokenizer, record) };
      });
      let reserve = this.#reserve(mode);
      let maxTokens: number | undefined;
      if (mode === "text") {
        const room = this.#textRoom(tokenized);
        if (room !== undefined) [reserve, maxTokens] = [1 + room, room];
      }
      const partA = encodePromptPartA(tokenized, tokenizer.special, {
        maxLength: this.#options.maxLength,
        reserve,
      });
      const job = { index, record, prompt: partA, maxTokens };
      const list = groups.get(mode);
      if (list) list.push(job);
      else groups.set(mode, [job]);
    });
    // Full batches of prompts in order of padded length (less padding): part A is padded to a
    // multiple of PART_A_QUANTUM, whose multiples all give a prompt the same bits, so a record's
    // output is the same whichever records share its batch, and whichever decoder answers it.
    const batches: { mode: Mode; jobs: Job[] }[] = [];
    for (const [mode, jobs] of groups) {
      const padded = (job: Job) => paddedLength(job.prompt.ids.length, PART_A_QUANTUM);
      const sorted = [...jobs].sort((a, b) => padded(a) - padded(b) || a.index - b.index);
      for (let at = 0; at < sorted.length; at += this.#options.batchSize) {
        batches.push({ mode, jobs: sorted.slice(at, at + this.#options.batchSize) });
      }
    }
    const out = new Array<InferLine>(records.length);
    let answered = 0;
    let next = 0;
    let failed = false;
    // Each decoder takes the next batch as soon as it is free.
    const lane = async (model: StepModel) => {
      while (next < batches.length && !failed) {
        const { mode, jobs } = batches[next++];
        try {
          const lines = await this.#run(model, mode, jobs);
          jobs.forEach((job, i) => (out[job.index] = lines[i]));
          answered += jobs.length;
          onBatch?.(answered); // a failure here (progress to a closed pipe) stops every lane too
        } catch (error) {
          failed = true;
          throw error;
        }
      }
    };
    const lanes = await Promise.allSettled(this.#models.map(lane));
    for (const l of lanes) if (l.status === "rejected") throw l.reason;
    return out;
  }

  async #run(model: StepModel, mode: Mode, jobs: Job[]): Promise<InferLine[]> {
    const { tokenizer, pool } = this.#parts;
    const o = this.#options;
    const prompts = jobs.map((j) => j.prompt);
    const { sop, eop } = tokenizer.special;
    const head = (r: TextRecord): InferLine => ({
      id: r.id,
      user: r.user,
      task: r.task,
      template: r.template,
    });
    if (mode === "items") {
      const exclusions = jobs.map((j) =>
        o.excludeSeen ? exclusionOf(pool.items, j.record.history ?? []) : null
      );
      // Item tokens: the first token decides the item, so one step ranks every item exactly.
      const ranked = this.#firstTokens
        ? await rankItemsExact(model, prompts, {
          pool: pool.items,
          firstTokens: this.#firstTokens,
          sop,
          topK: o.topK,
          exclusions,
          trieSoftmax: o.trieSoftmax,
        })
        : await searchItems(model, prompts, {
          pool: pool.items,
          sop,
          eop,
          beams: o.beams,
          topK: o.topK,
          exclusions,
          trieSoftmax: o.trieSoftmax,
          forcedRuns: o.forcedRuns,
        });
      return jobs.map((j, i) => ({
        ...head(j.record),
        predictions: Array.from(ranked[i].items, (item, r) => ({
          entity: pool.items.items[item],
          item_id: pool.items.ids[item],
          score: round(ranked[i].scores[r]),
        })),
      }));
    }
    if (mode === "rerank") return await this.#rerank(model, jobs, head);
    if (mode === "candidates") {
      const lists = jobs.map((j) => {
        const seen = o.excludeSeen ? new Set(j.record.history ?? []) : null;
        return j.record.candidates!.filter((c) => seen === null || !seen.has(c));
      });
      let scores: ArrayLike<number>[];
      if (this.#firstTokens) {
        // Item tokens: a candidate scores what exact ranking gives it (its first token), so one
        // item has one score under both protocols.
        const all = await itemLogProbs(model, prompts, {
          firstTokens: this.#firstTokens,
          sop,
          trieSoftmax: o.trieSoftmax,
        });
        scores = lists.map((list, p) =>
          Float64Array.from(list, (c) => all[p][pool.items.index.get(c)!])
        );
      } else {
        scores = await scoreAnswers(
          model,
          prompts,
          lists.map((list) => list.map((c) => entityAnswer(tokenizer, c))),
          { sop, eop, tokensPerRun: o.tokensPerRun },
        );
      }
      return jobs.map((j, i) => ({
        ...head(j.record),
        predictions: Array.from(rankByScore(scores[i]).subarray(0, o.topK), (c) => ({
          entity: lists[i][c],
          item_id: pool.items.ids[pool.items.index.get(lists[i][c])!],
          score: round(scores[i][c]),
        })),
      }));
    }
    if (mode === "rating") {
      const answers = this.#ratings();
      const scores = await scoreAnswers(model, prompts, jobs.map(() => answers), {
        sop,
        eop,
        tokensPerRun: o.tokensPerRun,
      });
      return jobs.map((j, i) => {
        const r = ratingFromScores(scores[i], o.ratingValues);
        return { ...head(j.record), rating: round(r.expected), most_likely: r.mostLikely };
      });
    }
    const texts = await generateText(model, prompts, {
      sop,
      eop,
      trie: pool.entities,
      allowed: this.#allowed,
      maxTokens: o.maxNewTokens,
      maxTokensEach: jobs.map((j) => j.maxTokens ?? o.maxNewTokens),
      beams: o.textBeams,
    });
    return jobs.map((j, i) => ({
      ...head(j.record),
      text: wholeText(tokenizer, texts[i].tokens, texts[i].finished).trim(),
    }));
  }

  /** The first stage's candidates of each job, reranked by the fusion (rerank.ts). */
  async #rerank(
    model: StepModel,
    jobs: Job[],
    head: (r: TextRecord) => InferLine,
  ): Promise<InferLine[]> {
    const { tokenizer, pool } = this.#parts;
    const o = this.#options;
    const { stage, file, weight, top = Infinity } = o.rerank!;
    const candidates = jobs.map((j) => {
      const ranking = firstStageOf(stage, j.record.id, file);
      const seen = o.excludeSeen ? new Set(j.record.history ?? []) : null;
      // The best `top` of the candidates the model may answer: cut after the history is left
      // out, so that N means what the tuning's N means (its first_rank counts without history).
      const keep: number[] = [];
      for (let c = 0; c < ranking.items.length && keep.length < top; c++) {
        if (seen === null || !seen.has(pool.items.items[ranking.items[c]])) keep.push(c);
      }
      return {
        items: Int32Array.from(keep, (c) => ranking.items[c]),
        first: Float64Array.from(keep, (c) => ranking.scores[c]),
      };
    });
    const prompts = jobs.map((j) => j.prompt);
    const { sop, eop } = tokenizer.special;
    let lm: Float64Array[];
    if (this.#firstTokens) {
      // Item tokens: every item's exact score in one step; the candidates' are read from it.
      const all = await itemLogProbs(model, prompts, {
        firstTokens: this.#firstTokens,
        sop,
        trieSoftmax: o.trieSoftmax,
      });
      lm = candidates.map((c, p) => Float64Array.from(c.items, (item) => all[p][item]));
    } else {
      const scores = await scoreAnswers(
        model,
        prompts,
        candidates.map((c) =>
          Array.from(c.items, (item) => entityAnswer(tokenizer, pool.items.items[item]))
        ),
        { sop, eop, tokensPerRun: o.tokensPerRun },
      );
      lm = scores.map((s) => Float64Array.from(s));
    }
    return jobs.map((j, p) => {
      const { items, first } = candidates[p];
      const fused = fuseScores(first, lm[p], weight);
      return {
        ...head(j.record),
        predictions: Array.from(rankByScore(fused).subarray(0, o.topK), (c) => ({
          entity: pool.items.items[items[c]],
          item_id: pool.items.ids[items[c]],
          score: round(fused[c]),
          lm_score: round(lm[p][c]),
          first_score: round(first[c]),
          // Its place in the first stage's list (the history left out): the tuning restores
          // that order exactly, ties included, and sees whether the list was cut.
          first_rank: c,
        })),
      };
    });
  }
}

/**
 * How many of the last bytes of `bytes` start a UTF-8 character they do not finish (0 to 3; 0
 * also where they are not the start of any character).
 */
function unfinishedBytes(bytes: readonly number[]): number {
  for (let k = 1; k <= Math.min(3, bytes.length); k++) {
    const lead = bytes[bytes.length - k];
    if (lead >= 0x80 && lead < 0xc0) continue; // a continuation byte: the start is further back
    const length = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (length <= k) return 0;
    try {
      // Streaming, a decoder holds back a valid start and refuses an invalid one (E0 80).
      new TextDecoder("utf-8", { fatal: true })
        .decode(Uint8Array.from(bytes.slice(-k)), { stream: true });
      return k;
    } catch {
      return 0;
    }
  }
  return 0;
}

/**
 * The text of `tokens`; a text the length limit cut (`finished` false) ends at its last whole
 * character: the model may have stopped inside one, which decodes to U+FFFD at the end. The
 * token that starts it may also hold whole characters before it (Qwen3's `ー` and the first two
 * bytes of `ダ`), and those are kept.
 *
 * @example
 * ```ts
 * import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
 * declare const tokenizer: TextTokenizer;
 * wholeText(tokenizer, tokenizer.encode(" caf\u00e9").slice(0, -1), false); // " caf"
 * ```
 */
export function wholeText(
  tokenizer: TextTokenizer,
  tokens: ArrayLike<number>,
  finished: boolean,
): string {
  const ids = Array.from(tokens);
  const full = tokenizer.decode(ids, { skipSpecial: true });
  if (finished || !full.endsWith("\uFFFD")) return full;
  // Byte tokens (Llama 2's `<0xE2>`) decode as one run, a U+FFFD a byte where the run is not
  // UTF-8, covering even its whole characters: the text without the unfinished character's bytes
  // reads as it should. A UTF-8 character spans at most 4 bytes: at most 3 are unfinished.
  const bytes: number[] = [];
  for (let i = ids.length - 1; i >= 0 && bytes.length < 3; i--) {
    const byte = tokenizer.byteOf(ids[i]);
    if (byte === undefined) break;
    bytes.unshift(byte);
  }
  if (bytes.length > 0) {
    const unfinished = unfinishedBytes(bytes);
    return unfinished === 0
      ? full
      : tokenizer.decode(ids.slice(0, ids.length - unfinished), { skipSpecial: true });
  }
  // A byte-level tokenizer spells the unfinished character as one U+FFFD at the end, made of at
  // most 3 tokens: without them the text ends cleanly.
  for (let drop = 1; drop <= Math.min(3, ids.length); drop++) {
    const text = tokenizer.decode(ids.slice(0, ids.length - drop), { skipSpecial: true });
    if (!text.endsWith("\uFFFD")) return full.slice(0, -1);
  }
  return full; // a replacement character the model wrote on purpose
}
