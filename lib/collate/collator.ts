/**
 * The collator: from a tokenized record to one collated example (docs/method.md sections 5 and 6),
 * with the objective, the spans and the truncation decided here; and the part A of a prompt for
 * inference.
 *
 * Objectives: a record with a target (a task prompt) always has the target as its one span, with
 * `[MASK]` where the answer goes. A document (no target) gets the entity-level (`[MASK]`),
 * sentence-level (`[sMASK]`) or document-level (`[gMASK]`) objective: fixed, or drawn per example
 * with the `mix` probabilities. Default mix entity 0.5 / sentence 0.25 / document 0.25: GLM-10B
 * pretrained with 0.4 / 0.3 / 0.3 (THUDM/GLM config/ds_block_10B.sh: bert-prob 0.4,
 * gap-sentence-prob 0.3); we move weight to the entity-level objective, the one the paper adds
 * for behaviour sequences, and keep the other two equal for text generation (explanations,
 * reviews). A one-unit document cannot have a document-level span (at least one unit must stay
 * in part A), so it gets the entity-level objective instead; the example's `objective` says so.
 * The sequence-level objective (every entity after a random first few, each its own `[MASK]`
 * span; see `spans.ts`) is the dense next-item variant of the entity-level one, for behaviour
 * documents; it is not in the default mix, and a document of fewer than two entities gets the
 * entity-level objective instead.
 *
 * Truncation to `maxLength` (the whole example, parts A and B) never splits a unit:
 * - documents lose whole units from their end, before the spans are drawn (the spans' mask and
 *   `[S]` tokens are counted: when a draw does not fit, the budget shrinks by the excess and the
 *   spans are drawn again from the continuing generator);
 * - task prompts lose their history items oldest first, where the record gives their ages
 *   (`age` of an entity segment, which textualize writes), each with the separator text between
 *   it and a neighbouring history item, whatever order the template lists them in; then (or,
 *   without ages, at once) whole units from their start, but only up to the end of the last
 *   entity before the answer marker: the instruction text after the history, the answer marker
 *   and the target are never cut. A prompt without an entity before its answer cannot be cut at
 *   all.
 * When even that cannot fit (or a document's first unit cannot), it is an InputError naming the
 * record.
 *
 * Randomness: `collate` takes the example's {@linkcode Rng}. Use {@linkcode exampleRng} (seed,
 * epoch, index) so that a run can resume at an exact example and any example can be rebuilt on
 * its own, on any machine.
 *
 * @module
 */

import { answerOf } from "../data/tasks.ts";
import { InputError } from "../errors.ts";
import { Rng } from "../random.ts";
import type { SpecialIds } from "../tokenizer/tokenizer.ts";
import { assembleExample, type CollatedExample, type ExampleObjective } from "./example.ts";
import { entityCount, type SpanOptions, SpanSampler } from "./spans.ts";
import { prefixLength, type TokenizedRecord } from "./tokenize.ts";

/** The masking objectives of documents. */
export const OBJECTIVES = ["entity", "sentence", "document", "sequence"] as const;
/** One masking objective. */
export type Objective = typeof OBJECTIVES[number];

/** Probabilities of the objectives when mixing (normalized; need not sum to 1; absent: 0). */
export type ObjectiveMix = Partial<Record<Objective, number>>;

/** The default mix (see the module docs for why). */
export const DEFAULT_MIX: Readonly<ObjectiveMix> = Object.freeze({
  entity: 0.5,
  sentence: 0.25,
  document: 0.25,
  sequence: 0,
});

/** Defaults of {@linkcode CollatorOptions} (the mix is {@linkcode DEFAULT_MIX}). */
export const DEFAULT_COLLATOR = Object.freeze({
  objective: "mix" as Objective | "mix",
  maxLength: Infinity,
  shuffleSpans: false,
});

/** Options of {@linkcode Collator}; defaults in {@linkcode DEFAULT_COLLATOR}. */
export interface CollatorOptions extends SpanOptions {
  /** One objective for every document, or `mix` to draw one per example. Default `mix`. */
  objective?: Objective | "mix";
  /** Probabilities when `objective` is `mix`. Default {@linkcode DEFAULT_MIX}. */
  mix?: ObjectiveMix;
  /** Longest example (part A + part B) in tokens. Default: no limit. */
  maxLength?: number;
  /** Shuffle the spans in part B (for ablations only; the method keeps them in order). Default false. */
  shuffleSpans?: boolean;
  /**
   * Tokens of the pool's longest item. A prompt whose target is one entity then leaves room for
   * that many, whatever its own target: inference must (it cannot know which item comes), so a
   * too-long prompt is cut alike in training and at inference, for every item it is scored with.
   * Default 0 (room for the record's own target only).
   */
  itemRoom?: number;
}

/**
 * The generator of example `index` of epoch `epoch` for a run seeded `seed`: independent of
 * every other example, so a run resumes exactly at any example.
 */
export function exampleRng(seed: number, epoch: number, index: number): Rng {
  return Rng.derive(seed, "collate", epoch, index);
}

/** Part A of a prompt for inference. */
export interface PromptPartA {
  /** [L] token ids, with the mask token where the answer goes. */
  ids: Int32Array;
  /** [L] inter-positions (0..L-1). */
  inter: Int32Array;
  /** [L] intra-positions (0, or 1..n along an entity). */
  intra: Int32Array;
  /** [L] source unit of each token, -1 for the mask token and the tokenizer's prefix. */
  units: Int32Array;
  /** Index of the mask token: the inter-position of every generated token. */
  maskIndex: number;
  /** L, which is also `sep` for the generation that follows. */
  length: number;
}

/** Where truncation of a task prompt must stop: the end of the last entity before the answer. */
function droppableUnits(record: TokenizedRecord): number {
  for (let u = record.answerAt - 1; u >= 0; u--) {
    if (record.unitEntity[u] === 1) return u + 1;
  }
  return 0;
}

/** What truncation keeps of a task prompt: units `[from, promptUnits)` but the `dropped` ones. */
interface PromptCut {
  /** The first prompt unit kept. */
  from: number;
  /** [U] 1 for a unit dropped after `from` (the oldest history items); absent when none is. */
  dropped?: Uint8Array;
}

/**
 * Whether `record`'s prompt keeps its head (is cut, if at all, by dropping history items only)
 * when `reserve` tokens after its mask must fit in `maxLength`, as {@linkcode encodePromptPartA}
 * cuts it; false where it cannot fit at all.
 *
 * @example
 * ```ts
 * import type { TokenizedRecord } from "./tokenize.ts";
 *
 * declare const record: TokenizedRecord;
 * promptKeepsHead(record, 64, 512); // true unless 64 tokens of text push out more than history
 * ```
 */
export function promptKeepsHead(
  record: TokenizedRecord,
  reserve: number,
  maxLength: number,
): boolean {
  try {
    return promptCut(record, 1 + reserve, maxLength).from === 0;
  } catch (error) {
    if (error instanceof InputError) return false; // it cannot fit at all
    throw error;
  }
}

/**
 * What of `record`'s prompt to keep so that its tokens + `extra` fit in `maxLength`: first the
 * history items with an age, oldest first, each with the separator text between it and a
 * neighbouring history item; then units from the start, up to the end of the last entity before
 * the answer (see the module docs).
 */
function promptCut(record: TokenizedRecord, extra: number, maxLength: number): PromptCut {
  const { unitStart, promptUnits } = record;
  const prefix = prefixLength(record);
  // The prefix is never cut: it counts as the instruction's.
  const promptTokens = unitStart[promptUnits] + prefix;
  if (promptTokens + extra <= maxLength) return { from: 0 };
  const limit = droppableUnits(record);
  let over = promptTokens + extra - maxLength;
  const dropped = record.unitAge ? dropOldest(record, limit, over) : undefined;
  if (dropped) {
    for (let u = 0; u < limit; u++) if (dropped[u]) over -= unitStart[u + 1] - unitStart[u];
    if (over <= 0) return { from: 0, dropped };
  }
  let from = 0;
  while (from < limit && over > 0) {
    if (!dropped?.[from]) over -= unitStart[from + 1] - unitStart[from];
    from++;
  }
  if (over > 0) {
    const kept = promptTokens - unitStart[limit] - prefix;
    throw new InputError(
      `record ${JSON.stringify(record.id)}: needs ${kept + extra + prefix} tokens even without ` +
        `its history (${kept} for the instruction, ${extra} for the mask and answer` +
        `${prefix > 0 ? `, ${prefix} the tokenizer puts first` : ""}), more than the maximum ` +
        `length ${maxLength}`,
    );
  }
  return dropped ? { from, dropped } : { from };
}

/**
 * Drops the aged entities of units `[0, limit)`, oldest first (ties: the one listed first),
 * until `over` tokens are gone or none is left. With each goes the text between it and the next
 * history item still kept (`A; ` of `A; B`), or else the previous one (`; B`), so the list reads
 * whole. Returns the dropped units, or undefined when the record has no aged entity.
 */
function dropOldest(record: TokenizedRecord, limit: number, over: number): Uint8Array | undefined {
  const { unitStart, unitEntity } = record;
  const age = record.unitAge!;
  const aged: number[] = [];
  for (let u = 0; u < limit; u++) if (age[u] >= 0) aged.push(u);
  if (aged.length === 0) return undefined;
  aged.sort((a, b) => age[b] - age[a] || a - b);
  const dropped = new Uint8Array(record.promptUnits);
  const drop = (start: number, end: number) => {
    for (let u = start; u < end; u++) {
      if (!dropped[u]) over -= unitStart[u + 1] - unitStart[u];
      dropped[u] = 1;
    }
  };
  for (const u of aged) {
    if (over <= 0) break;
    let next = u + 1;
    while (next < limit && !unitEntity[next]) next++;
    let previous = u - 1;
    while (previous >= 0 && !unitEntity[previous]) previous--;
    if (next < limit && age[next] >= 0 && !dropped[next]) drop(u, next);
    else if (previous >= 0 && age[previous] >= 0 && !dropped[previous]) drop(previous + 1, u + 1);
    else drop(u, u + 1);
  }
  return dropped;
}

/**
 * Tokens of a task example besides its prompt: the target (or, for a one-entity target, at least
 * `itemRoom`: see {@linkcode CollatorOptions.itemRoom}), its mask and `[S]`.
 */
function taskExtra(record: TokenizedRecord, itemRoom = 0): number {
  const { unitStart, promptUnits } = record;
  const units = unitStart.length - 1;
  const target = unitStart[units] - unitStart[promptUnits];
  const oneEntity = units === promptUnits + 1 && record.unitEntity[promptUnits] === 1;
  return (oneEntity ? Math.max(target, itemRoom) : target) + 2;
}

/**
 * Throws when `record`, having no target, is no document: it marks an answer, or it is the prompt
 * of a task with an answer (sequential, rating, ...; only profile documents, or records of no
 * such task, train without a target), which would otherwise be trained on as a document.
 */
function checkIsDocument(record: TokenizedRecord): void {
  if (record.answerMarked) {
    throw new InputError(
      `record ${JSON.stringify(record.id)}: has an answer marker but no target`,
    );
  }
  if (record.task !== undefined && answerOf(record.task) !== null) {
    throw new InputError(
      `record ${JSON.stringify(record.id)}: a ${record.task} prompt without a target ` +
        `(only profile documents train without one)`,
    );
  }
}

/** Throws when document `record` cannot be collated at all within `maxLength`. */
function checkDocument(record: TokenizedRecord, maxLength: number): void {
  checkIsDocument(record);
  const first = record.unitStart[1];
  const prefix = prefixLength(record);
  if (prefix + first + 2 > maxLength) {
    throw new InputError(
      `record ${JSON.stringify(record.id)}: its first unit has ${first} tokens, ` +
        `more than the maximum length ${maxLength} allows with a mask and [S]` +
        (prefix > 0 ? ` and the ${prefix} token(s) the tokenizer puts first` : ""),
    );
  }
}

/**
 * The fewest tokens an example of `record` can have: for a task prompt, what is left with its
 * history dropped (the instruction after the last entity, the mask, `[S]` and the target); for a
 * document, its first unit with a mask and `[S]`; both with the tokenizer's prefix. `collate`
 * fails exactly when this is above the maximum length (or a record without a target is no
 * document: checkIsDocument).
 */
export function minimumLength(record: TokenizedRecord, itemRoom = 0): number {
  const prefix = prefixLength(record);
  if (!record.hasTarget) return prefix + record.unitStart[1] + 2;
  const { unitStart, promptUnits } = record;
  return prefix + unitStart[promptUnits] - unitStart[droppableUnits(record)] +
    taskExtra(record, itemRoom);
}

/**
 * The fewest tokens part A of `record`'s prompt can have at inference: the instruction after its
 * history (all of the history dropped) and the mask, after the tokenizer's prefix.
 */
export function minimumPromptLength(record: TokenizedRecord): number {
  const { unitStart, promptUnits } = record;
  return prefixLength(record) + unitStart[promptUnits] - unitStart[droppableUnits(record)] + 1;
}

/**
 * Throws one InputError when any of `records` cannot be collated within `maxLength`: how many,
 * the longest of them and what it needs (the collator's own message), and the length that would
 * take them all. Training checks its records with it before its first step, so a record that
 * cannot fit stops the run at its start, not when its batch comes up. `what` names the records
 * (`training records`) and `lengthFrom` the limit (`--max-length`) in the message.
 *
 * @example
 * ```ts
 * import type { TokenizedRecord } from "./tokenize.ts";
 *
 * declare const records: TokenizedRecord[];
 * checkRecordsFit(records, 512, { what: "training records", lengthFrom: "--max-length" });
 * ```
 */
export function checkRecordsFit(
  records: readonly TokenizedRecord[],
  maxLength: number,
  options: { what: string; lengthFrom: string; itemRoom?: number },
): void {
  let count = 0;
  let worst: TokenizedRecord | undefined;
  let worstLength = 0;
  for (const record of records) {
    if (!record.hasTarget) checkIsDocument(record);
    const length = minimumLength(record, options.itemRoom);
    if (length <= maxLength) continue;
    count++;
    if (length > worstLength) [worst, worstLength] = [record, length];
  }
  if (!worst) return;
  let detail = "";
  try {
    checkRecordFits(worst, maxLength, options.itemRoom);
  } catch (error) {
    detail = (error as Error).message;
  }
  throw new InputError(
    `${count} of ${records.length} ${options.what} cannot fit the maximum length ${maxLength} ` +
      `(${options.lengthFrom}); the longest: ${detail}; all fit from ${worstLength} tokens ` +
      `(the instruction of a prompt and the first unit of a document are never cut` +
      `${worst.prefix ? ", nor the tokenizer's prefix" : ""})`,
  );
}

/**
 * Throws the InputError {@linkcode Collator.collate} would throw for `record` at `maxLength`,
 * without building an example (whatever the objective drawn, the same records fail).
 *
 * @example
 * ```ts
 * import type { TokenizedRecord } from "./tokenize.ts";
 *
 * declare const record: TokenizedRecord;
 * checkRecordFits(record, 512); // InputError: record "u1/review/review-1/train/0": needs ...
 * ```
 */
export function checkRecordFits(record: TokenizedRecord, maxLength: number, itemRoom = 0): void {
  if (record.hasTarget) promptCut(record, taskExtra(record, itemRoom), maxLength);
  else checkDocument(record, maxLength);
}

/**
 * Builds collated examples from tokenized records. A collator reuses scratch buffers between
 * calls: give each worker its own (they are cheap), and the same seed gives the same examples.
 *
 * @example
 * ```ts
 * import type { TextRecord } from "../data/types.ts";
 * import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
 * import { tokenizeRecord } from "./tokenize.ts";
 *
 * declare const tokenizer: TextTokenizer, record: TextRecord, seed: number, i: number;
 * const collator = new Collator(tokenizer.special, { objective: "mix", maxLength: 512 });
 * const example = collator.collate(tokenizeRecord(tokenizer, record), exampleRng(seed, 0, i));
 * ```
 */
export class Collator {
  /** The tokenizer's special token ids the examples are built with. */
  readonly specials: SpecialIds;
  /** Longest example (part A + part B) in tokens; see {@linkcode CollatorOptions.maxLength}. */
  readonly maxLength: number;
  /** The objective of every document, or `mix` to draw one per example. */
  readonly objective: Objective | "mix";
  /** Whether the spans in part B are shuffled (ablations only). */
  readonly shuffleSpans: boolean;
  /** See {@linkcode CollatorOptions.itemRoom}. */
  readonly itemRoom: number;
  readonly #sampler: SpanSampler;
  readonly #mixCdf: Float64Array;

  /** A collator over `specials`, with `options` filled from the defaults. */
  constructor(specials: SpecialIds, options: CollatorOptions = {}) {
    this.specials = specials;
    this.maxLength = options.maxLength ?? DEFAULT_COLLATOR.maxLength;
    this.objective = options.objective ?? DEFAULT_COLLATOR.objective;
    this.shuffleSpans = options.shuffleSpans ?? DEFAULT_COLLATOR.shuffleSpans;
    this.itemRoom = options.itemRoom ?? 0;
    if (!(this.maxLength >= 3)) throw new RangeError(`maxLength must be at least 3`);
    if (this.objective !== "mix" && !OBJECTIVES.includes(this.objective)) {
      throw new RangeError(`unknown objective "${this.objective}"`);
    }
    const mix = options.mix ?? DEFAULT_MIX;
    this.#mixCdf = new Float64Array(OBJECTIVES.length);
    let total = 0;
    OBJECTIVES.forEach((name, i) => {
      const p = mix[name] ?? 0;
      if (!(p >= 0)) throw new RangeError(`mix probability of ${name} must be >= 0`);
      total += p;
      this.#mixCdf[i] = total;
    });
    if (!(total > 0)) throw new RangeError("mix probabilities must not all be 0");
    this.#sampler = new SpanSampler(options);
  }

  /** The objective a document gets from `rng` (a draw only when mixing). */
  #drawObjective(rng: Rng): Objective {
    if (this.objective !== "mix") return this.objective;
    return OBJECTIVES[rng.categorical(this.#mixCdf)];
  }

  /**
   * One collated example of `record`, every random choice from `rng`. Throws an InputError
   * when the record cannot fit `maxLength`, or has no target and is no document (an answer
   * marker, or the prompt of a task with an answer).
   */
  collate(record: TokenizedRecord, rng: Rng): CollatedExample {
    return record.hasTarget ? this.#collateTask(record) : this.#collateDocument(record, rng);
  }

  #collateTask(record: TokenizedRecord): CollatedExample {
    const { promptUnits } = record;
    const units = record.unitStart.length - 1;
    const { from, dropped } = promptCut(record, taskExtra(record, this.itemRoom), this.maxLength);
    return assembleExample(record, {
      from,
      dropped,
      to: promptUnits,
      spans: Int32Array.of(promptUnits, units),
      spanCount: 1,
      mask: this.specials.mask,
      task: true,
      objective: "task",
    }, this.specials);
  }

  #collateDocument(record: TokenizedRecord, rng: Rng): CollatedExample {
    checkDocument(record, this.maxLength);
    const { unitStart } = record;
    const units = record.promptUnits;
    const maxLength = this.maxLength;
    let objective = this.#drawObjective(rng);
    // Units kept: the longest run from the start whose tokens fit the budget.
    const prefix = prefixLength(record);
    let budget = maxLength - 2 - prefix;
    let keep = units;
    if (unitStart[keep] > budget) {
      while (keep > 1 && unitStart[keep] > budget) keep--;
    }

    const sampler = this.#sampler;
    let count: number;
    for (;;) {
      if (objective === "document" && keep < 2) objective = "entity";
      if (objective === "sequence" && entityCount(record.unitEntity, keep) < 2) {
        objective = "entity";
      }
      if (objective === "entity") count = sampler.entity(unitStart, keep, rng);
      else if (objective === "sequence") count = sampler.sequence(record.unitEntity, keep, rng);
      else if (objective === "sentence") {
        count = sampler.sentence(unitStart, record.unitSentence, keep, rng);
      } else count = sampler.document(keep, rng);
      const total = prefix + unitStart[keep] + 2 * count;
      if (total <= maxLength || keep === 1) break;
      budget -= total - maxLength;
      while (keep > 1 && unitStart[keep] > budget) keep--;
    }

    const spans = sampler.spans.slice(0, 2 * count);
    let order: Int32Array | undefined;
    if (this.shuffleSpans && count > 1) {
      order = rng.shuffle(Int32Array.from({ length: count }, (_, i) => i));
    }
    const mask = objective === "entity" || objective === "sequence"
      ? this.specials.mask
      : objective === "sentence"
      ? this.specials.smask
      : this.specials.gmask;
    return assembleExample(record, {
      from: 0,
      to: keep,
      spans,
      spanCount: count,
      mask,
      task: false,
      order,
      objective: objective as ExampleObjective,
    }, this.specials);
  }
}

/**
 * Part A of `record`'s prompt for inference: the prompt with `mask` (default `[MASK]`) where the
 * answer goes, truncated like a training prompt so that part A + `reserve` tokens (room for
 * `[S]` and the generated answer) fit `maxLength`. The record's target, if any, is ignored.
 *
 * @example
 * ```ts
 * import type { TextRecord } from "../data/types.ts";
 * import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
 * import { tokenizeRecord } from "./tokenize.ts";
 *
 * declare const tokenizer: TextTokenizer, record: TextRecord;
 * const a = encodePromptPartA(tokenizeRecord(tokenizer, record), tokenizer.special, {
 *   maxLength: 512, reserve: 64,
 * });
 * // generated tokens get inter-position a.maskIndex; sep = a.length
 * ```
 */
export function encodePromptPartA(
  record: TokenizedRecord,
  specials: SpecialIds,
  options: { maxLength?: number; reserve?: number; mask?: number } = {},
): PromptPartA {
  const maxLength = options.maxLength ?? Infinity;
  const reserve = options.reserve ?? 0;
  const { from, dropped } = promptCut(record, 1 + reserve, maxLength);
  const promptOnly: TokenizedRecord = {
    ...record,
    unitStart: record.unitStart.subarray(0, record.promptUnits + 1),
    hasTarget: true,
  };
  const example = assembleExample(promptOnly, {
    from,
    dropped,
    to: record.promptUnits,
    spans: Int32Array.of(record.promptUnits, record.promptUnits),
    spanCount: 1,
    mask: options.mask ?? specials.mask,
    task: true,
    objective: "task",
  }, specials);
  const length = example.sep;
  let maskIndex = -1;
  for (let i = prefixLength(record); i < length; i++) if (example.units[i] === -1) maskIndex = i;
  return {
    ids: example.inputIds.slice(0, length),
    inter: example.inter.slice(0, length),
    intra: example.intra.slice(0, length),
    units: example.units.slice(0, length),
    maskIndex,
    length,
  };
}
