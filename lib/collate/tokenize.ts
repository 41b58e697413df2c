/**
 * Turning a textualized record into tokens, units and sentences (docs/method.md section 4), stored
 * in flat typed arrays for the collator's hot loops. Pure apart from the tokenizer's encoding
 * cache.
 *
 * Rules (the lead's decisions where docs/method.md section 4 is silent on white space; the
 * tokenizer is byte-level BPE like GPT-2 and GLM-10B, where a word's leading space belongs to the
 * word's token):
 *
 * - Text segments are cut into pieces by {@linkcode splitSentences}: a sentence ends after `.`,
 *   `!` or `?` followed by white space or the segment's end, and at line breaks. The white space
 *   after a terminator starts the next piece (so encoding piece by piece gives the same tokens as
 *   encoding the whole string in almost all cases); a line break ends its sentence and belongs to
 *   it (when a terminator is followed by white space holding line breaks, the cut is after the
 *   last line break). Each piece is encoded on its own; each of its tokens is one unit.
 * - Every entity is encoded as `" " + entity` ({@linkcode encodeEntity}; for metaspace
 *   tokenizers such as Llama 2's, whose `▁` prefix stands for that space, as the entity itself;
 *   their text pieces after other tokens are encoded as they read there, without the `▁` the
 *   tokenizer would prepend to the piece alone, TextTokenizer.encodeFollowing): one canonical token
 *   sequence per entity, the one the entity trie holds; all its tokens are one unit. Entity
 *   punctuation never ends a sentence.
 * - The trailing white space of a text segment just before an entity or the answer marker is
 *   dropped (the entity's or the target's leading space stands for it). Line breaks are kept: only
 *   the spaces and tabs after the segment's last line break are dropped.
 * - The target is encoded like the prompt, except that its first text segment's leading white
 *   space becomes one space and its last text segment's trailing white space is dropped; so a
 *   one-segment text target (an explanation, a rating "4") is `" " + trimmed text`, and an entity
 *   target is `" " + entity`. The target starts a new sentence.
 * - Units are numbered in record order: the prompt's, then the target's.
 * - The tokens the tokenizer puts before every text (Llama's `<s>`: TextTokenizer.prefix) are
 *   kept beside the units (`prefix`), not in them: no span masks them and no truncation drops
 *   them; the collator writes them first.
 *
 * Not here: masking, positions, truncation (see `collator.ts`).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { InputError } from "../errors.ts";
import type { EntitySegment, Segment, TextRecord, TextSegment } from "../data/types.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";

/** A record as tokens and units, flat typed arrays (U units, T tokens). */
export interface TokenizedRecord {
  /** The record's id, for messages. */
  id: string;
  /** The record's task family (`profile`, `sequential`, ...), where the record names one. */
  task?: string;
  /** [T] token ids: the prompt's, then the target's. */
  ids: Int32Array;
  /**
   * [P] the ids the tokenizer puts before every text (TextTokenizer.prefix, e.g. Llama's `<s>`):
   * every example and prompt of the record starts with them, outside its units; absent where the
   * tokenizer puts none.
   */
  prefix?: Int32Array;
  /** [U + 1] first token of each unit; `unitStart[U] === T`. */
  unitStart: Int32Array;
  /** [U] 1 where the unit is an entity (its tokens never split), 0 for a separate token. */
  unitEntity: Uint8Array;
  /** [U] sentence index of each unit, non-decreasing from 0. */
  unitSentence: Int32Array;
  /**
   * [U] the age of each history item of the prompt (its segment's `age`, 0 the latest), -1 for
   * every other unit; absent when no segment has an age. Truncation drops the oldest first.
   */
  unitAge?: Int32Array;
  /** Units `[0, promptUnits)` are the prompt (or the whole document), the rest the target. */
  promptUnits: number;
  /** Prompt unit before which the answer's mask goes (`promptUnits`: after the last segment). */
  answerAt: number;
  /** True when the record has a target (a task prompt); false for documents. */
  hasTarget: boolean;
  /** True when the prompt has an answer marker (else the answer goes after its last segment). */
  answerMarked: boolean;
}

/** The tokens every example of `record` starts with: its tokenizer's prefix (0 where none). */
export function prefixLength(record: TokenizedRecord): number {
  return record.prefix?.length ?? 0;
}

/** One sentence piece of a text segment. */
export interface SentencePiece {
  /** The piece's text. */
  text: string;
  /** True when a sentence ends with this piece. */
  endsSentence: boolean;
}

const TERMINATORS = ".!?";

/** JavaScript's `\s` (the class the tokenizer's pre-tokenizer splits on), without a regex. */
function isSpace(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  if (c < 0xa0) return false;
  return c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 ||
    c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

/**
 * Cuts `text` into sentence pieces (see the module docs); joining the pieces gives `text` back.
 *
 * @example
 * ```ts
 * splitSentences("Nice. Cheap!\nWould buy");
 * // [{text: "Nice.", endsSentence: true}, {text: " Cheap!\n", endsSentence: true},
 * //  {text: "Would buy", endsSentence: false}]
 * ```
 */
export function splitSentences(text: string): SentencePiece[] {
  const pieces: SentencePiece[] = [];
  let start = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    if (!isSpace(text[i])) {
      if (i === n - 1 && TERMINATORS.includes(text[i])) break; // ends at the segment's end
      i++;
      continue;
    }
    // A maximal run of white space [i, j).
    let j = i;
    let lastBreak = -1;
    while (j < n && isSpace(text[j])) {
      if (text[j] === "\n") lastBreak = j;
      j++;
    }
    if (lastBreak >= 0) {
      pieces.push({ text: text.slice(start, lastBreak + 1), endsSentence: true });
      start = lastBreak + 1;
    } else if (i > start && TERMINATORS.includes(text[i - 1])) {
      pieces.push({ text: text.slice(start, i), endsSentence: true });
      start = i;
    }
    i = j;
  }
  if (start < n) {
    const last = text[n - 1];
    pieces.push({ text: text.slice(start), endsSentence: TERMINATORS.includes(last) });
  }
  return pieces;
}

/**
 * The text an entity is encoded from: `" " + entity` for byte-level tokenizers (the leading
 * space belongs to the first token, as after a space in running text), the entity itself for
 * metaspace ones (their prepended `▁` is that space). See {@linkcode LeadingSpace}.
 */
export function entityText(tokenizer: TextTokenizer, entity: string): string {
  return tokenizer.leadingSpace === "metaspace" ? entity : " " + entity;
}

/**
 * The canonical token ids of an entity ({@linkcode entityText} encoded), as every record, the
 * entity trie and candidate scoring use it. Inside a part B span these tokens take the
 * intra-positions 2, 3, ..., n + 1 (after `[S]` at 1). An entity with a token of its own
 * (`tokenizer.entityTokens`, the item tokens of docs/method.md section 13) starts with that
 * token, followed by its text's tokens unless `tokenizer.entityTitles` is false.
 */
export function encodeEntity(tokenizer: TextTokenizer, entity: string): Int32Array {
  return encodeEntityShared(tokenizer, entity).slice();
}

/**
 * The items of `entities` (kind `item`) as {@linkcode encodeEntity} encodes them, in one pass:
 * `longest`, the tokens of the longest (0 without items: training and inference leave this much
 * room for an item answer), and `sha256`, the hex digest of every item's tokens in order (what the
 * entity trie, the trie softmax and that room are made of: a resumed run, and every rank of a
 * data-parallel run, checks its items by it).
 */
export function itemTokenSummary(
  tokenizer: TextTokenizer,
  entities: readonly { entity: string; kind: string }[],
): { longest: number; sha256: string } {
  let longest = 0;
  const hash = createHash("sha256");
  for (const { entity, kind } of entities) {
    if (kind !== "item") continue;
    const ids = encodeEntityShared(tokenizer, entity);
    longest = Math.max(longest, ids.length);
    hash.update(String(ids.length)).update(
      new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength),
    );
  }
  return { longest, sha256: hash.digest("hex") };
}

/** Encodings of entities with a token of their own, per tokenizer (entities repeat constantly). */
const withTokenCache = new WeakMap<TextTokenizer, Map<string, Int32Array>>();

/** {@linkcode encodeEntity} without the copy: read only. */
function encodeEntityShared(tokenizer: TextTokenizer, entity: string): Int32Array {
  const token = tokenizer.entityTokens?.get(entity);
  if (token === undefined) return tokenizer.encodeShared(entityText(tokenizer, entity));
  let cache = withTokenCache.get(tokenizer);
  if (!cache) withTokenCache.set(tokenizer, cache = new Map());
  let ids = cache.get(entity);
  if (ids === undefined) {
    const text = tokenizer.entityTitles
      ? tokenizer.encodeShared(entityText(tokenizer, entity))
      : new Int32Array(0);
    ids = new Int32Array(1 + text.length);
    ids[0] = token;
    ids.set(text, 1);
    cache.set(entity, ids);
  }
  return ids;
}

/** Growable typed buffers for one record. */
class Builder {
  ids = new Int32Array(256);
  n = 0;
  unitStart = new Int32Array(64);
  unitEntity = new Uint8Array(64);
  unitSentence = new Int32Array(64);
  /** -1 or each unit's age; allocated at the first entity with an age (most records have none). */
  unitAge: Int32Array | null = null;
  units = 0;
  sentence = 0;
  /** Units in the current sentence so far (a new sentence is only counted once it has units). */
  inSentence = 0;

  #reserveTokens(extra: number): void {
    if (this.n + extra <= this.ids.length) return;
    const grown = new Int32Array(Math.max(this.ids.length * 2, this.n + extra));
    grown.set(this.ids.subarray(0, this.n));
    this.ids = grown;
  }

  #reserveUnits(extra: number): void {
    if (this.units + extra < this.unitStart.length) return;
    const size = Math.max(this.unitStart.length * 2, this.units + extra + 1);
    const start = new Int32Array(size);
    start.set(this.unitStart.subarray(0, this.units));
    this.unitStart = start;
    const entity = new Uint8Array(size);
    entity.set(this.unitEntity.subarray(0, this.units));
    this.unitEntity = entity;
    const sentence = new Int32Array(size);
    sentence.set(this.unitSentence.subarray(0, this.units));
    this.unitSentence = sentence;
    if (this.unitAge) {
      const age = new Int32Array(size).fill(-1);
      age.set(this.unitAge.subarray(0, this.units));
      this.unitAge = age;
    }
  }

  addTokens(tokens: Int32Array): void {
    this.#reserveTokens(tokens.length);
    this.#reserveUnits(tokens.length);
    for (let i = 0; i < tokens.length; i++) {
      this.unitStart[this.units] = this.n;
      this.unitEntity[this.units] = 0;
      this.unitSentence[this.units] = this.sentence;
      if (this.unitAge) this.unitAge[this.units] = -1;
      this.units++;
      this.ids[this.n++] = tokens[i];
    }
    this.inSentence += tokens.length;
  }

  addEntity(tokens: Int32Array, age = -1): void {
    this.#reserveTokens(tokens.length);
    this.#reserveUnits(1);
    this.unitStart[this.units] = this.n;
    this.unitEntity[this.units] = 1;
    this.unitSentence[this.units] = this.sentence;
    if (age >= 0 && !this.unitAge) this.unitAge = new Int32Array(this.unitStart.length).fill(-1);
    if (this.unitAge) this.unitAge[this.units] = age;
    this.units++;
    this.ids.set(tokens, this.n);
    this.n += tokens.length;
    this.inSentence++;
  }

  endSentence(): void {
    if (this.inSentence > 0) {
      this.sentence++;
      this.inSentence = 0;
    }
  }
}

function isText(segment: Segment): segment is TextSegment {
  return typeof (segment as TextSegment).text === "string";
}

function isEntity(segment: Segment): segment is EntitySegment {
  return typeof (segment as EntitySegment).entity === "string";
}

function isAnswer(segment: Segment): boolean {
  return (segment as { answer?: unknown }).answer === true;
}

/** Drops the spaces and tabs after the last line break (or all trailing white space). */
function dropTrailingSpace(text: string): string {
  let end = text.length;
  while (end > 0 && text[end - 1] !== "\n" && isSpace(text[end - 1])) end--;
  return text.slice(0, end);
}

function addText(builder: Builder, tokenizer: TextTokenizer, text: string): void {
  for (const piece of splitSentences(text)) {
    // A piece after other tokens is encoded as it reads there: a metaspace tokenizer prepends its
    // `▁` only at the start of the whole text (TextTokenizer.encodeFollowing).
    builder.addTokens(
      builder.n === 0 ? tokenizer.encodeShared(piece.text) : tokenizer.encodeFollowing(piece.text),
    );
    if (piece.endsSentence) builder.endSentence();
  }
}

function addEntity(
  builder: Builder,
  tokenizer: TextTokenizer,
  entity: string,
  where: string,
  age = -1,
) {
  if (entity === "") throw new InputError(`${where}: empty entity`);
  builder.addEntity(encodeEntityShared(tokenizer, entity), age);
}

/** A prompt entity's age (-1 without one); anything but a whole number >= 0 is an InputError. */
function segmentAge(segment: EntitySegment, where: string): number {
  const age = (segment as { age?: unknown }).age;
  if (age === undefined) return -1;
  if (typeof age !== "number" || !Number.isInteger(age) || age < 0) {
    throw new InputError(
      `${where}: entity ${JSON.stringify(segment.entity)} has age ${JSON.stringify(age)}; ` +
        `an age is a whole number >= 0 (0 for the latest history item)`,
    );
  }
  return age;
}

/**
 * Tokenizes `record` into units (see the module docs). A record without segments, a segment
 * that is neither text, entity nor answer marker, two answer markers, an empty entity or an empty
 * target is an InputError naming the record. (A prompt without a target is fine here: inference
 * encodes those; the collator refuses them for training.)
 *
 * @example
 * ```ts
 * import type { TextRecord } from "../data/types.ts";
 * import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
 *
 * declare const tokenizer: TextTokenizer, record: TextRecord;
 * const tokenized = tokenizeRecord(tokenizer, record);
 * tokenized.unitStart[1] - tokenized.unitStart[0]; // tokens of the first unit
 * ```
 */
export function tokenizeRecord(tokenizer: TextTokenizer, record: TextRecord): TokenizedRecord {
  const where = `record ${JSON.stringify(record?.id ?? "?")}`;
  const segments = record?.segments;
  if (!Array.isArray(segments) || segments.length === 0) {
    throw new InputError(`${where}: has no segments`);
  }
  const builder = new Builder();
  let answerAt = -1;
  // A prompt without a marker has its answer after its last segment: that segment's trailing
  // white space goes as before a marker, so the record reads as the one with the marker at its end.
  // (A task prompt inference reads may have no target; a profile document has no answer at all.)
  const prompt = (record.target !== undefined && record.target !== null) ||
    (typeof record.task === "string" && record.task !== "profile");
  const answerLast = prompt &&
    !segments.some((x) => typeof x === "object" && x !== null && isAnswer(x));
  for (let s = 0; s < segments.length; s++) {
    const segment = segments[s];
    if (typeof segment !== "object" || segment === null) {
      throw new InputError(`${where}: segment ${s + 1} is not an object`);
    }
    if (isText(segment)) {
      const next = segments[s + 1];
      const beforeBlank = next !== undefined ? isEntity(next) || isAnswer(next) : answerLast;
      addText(builder, tokenizer, beforeBlank ? dropTrailingSpace(segment.text) : segment.text);
    } else if (isEntity(segment)) {
      addEntity(builder, tokenizer, segment.entity, where, segmentAge(segment, where));
    } else if (isAnswer(segment)) {
      if (answerAt >= 0) throw new InputError(`${where}: more than one answer marker`);
      answerAt = builder.units;
    } else {
      throw new InputError(`${where}: segment ${s + 1} is neither text, entity nor answer`);
    }
  }
  const promptUnits = builder.units;
  if (promptUnits === 0) throw new InputError(`${where}: its segments hold no text`);

  const target = record.target;
  const hasTarget = target !== undefined && target !== null;
  if (hasTarget) {
    if (!Array.isArray(target) || target.length === 0) {
      throw new InputError(`${where}: target must be a non-empty list of segments`);
    }
    builder.endSentence();
    for (let s = 0; s < target.length; s++) {
      const segment = target[s] as Segment;
      if (typeof segment !== "object" || segment === null) {
        throw new InputError(`${where}: target segment ${s + 1} is not an object`);
      }
      if (isText(segment)) {
        let text = segment.text;
        if (s === 0) text = " " + text.trimStart();
        if (s === target.length - 1) text = text.trimEnd();
        const next = target[s + 1] as Segment | undefined;
        if (next !== undefined && isEntity(next)) text = dropTrailingSpace(text);
        addText(builder, tokenizer, text);
      } else if (isEntity(segment)) {
        addEntity(builder, tokenizer, segment.entity, where);
      } else {
        throw new InputError(`${where}: target segment ${s + 1} is neither text nor entity`);
      }
    }
    if (builder.units === promptUnits) throw new InputError(`${where}: its target holds no text`);
  }

  const units = builder.units;
  const unitStart = builder.unitStart.slice(0, units + 1);
  unitStart[units] = builder.n;
  return {
    id: String(record.id),
    task: typeof record.task === "string" ? record.task : undefined,
    ids: builder.ids.slice(0, builder.n),
    ...(tokenizer.prefix.length > 0 ? { prefix: tokenizer.prefix } : {}),
    unitStart,
    unitEntity: builder.unitEntity.slice(0, units),
    unitSentence: builder.unitSentence.slice(0, units),
    ...(builder.unitAge ? { unitAge: builder.unitAge.slice(0, units) } : {}),
    promptUnits,
    answerAt: answerAt >= 0 ? answerAt : promptUnits,
    hasTarget,
    answerMarked: answerAt >= 0,
  };
}
