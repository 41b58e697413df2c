/**
 * Whether a dataset's entities fit a model's length: every entity must leave room in one example
 * for the instruction of a prompt and the mask, `[S]` and `[E]` tokens, since an entity is never
 * split (the collator drops whole history entities, but not the target; infer reserves room for
 * the longest item). One entity too long would otherwise pass textualize and init, then stop
 * training when its record comes up, and make infer refuse every record of an item task. So init,
 * pretrain and infer check it where they know the tokenizer and the length, and name the entity,
 * its length and the flag that cuts it.
 *
 * @module
 */

import { DEFAULT_RECORD_OPTIONS } from "../data/records.ts";
import type { EntityEntry } from "../data/types.ts";
import { cut, InputError, optionName } from "../errors.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { encodeEntity } from "./tokenize.ts";

/**
 * Tokens kept free beside an entity: the longest instruction after an item task's history is
 * about 10 tokens with the demo's trained tokenizer, plus the mask, `[S]` and `[E]`; 32 leaves
 * room for longer tokenizations. A quarter of the length at most, for short `--max-length`s.
 */
export const ENTITY_ROOM = 32;

/**
 * The most tokens one entity may take with a maximum length of `maxLength`.
 *
 * @example
 * ```ts
 * entityTokenLimit(512); // 480
 * entityTokenLimit(64); // 48
 * ```
 */
export function entityTokenLimit(maxLength: number): number {
  return maxLength - Math.min(ENTITY_ROOM, Math.floor(maxLength / 4));
}

/** An entity longer than the limit. */
export interface LongEntity {
  /** `item`, or the attribute's kind. */
  kind: string;
  /** The item's (or the value's) source id. */
  id: string;
  /** The entity string. */
  entity: string;
  /** Its canonical tokens (as the collator and the trie encode it). */
  tokens: number;
}

/** The entities of `entities` with more than `limit` tokens under `tokenizer`, longest first. */
export function longEntities(
  tokenizer: TextTokenizer,
  entities: readonly EntityEntry[],
  limit: number,
): LongEntity[] {
  const out: LongEntity[] = [];
  for (const { entity, kind, id } of entities) {
    if (typeof entity !== "string" || entity === "") continue; // the pool's own check says so
    // A token holds at least one UTF-8 byte (at most 3 per UTF-16 unit), plus a leading space
    // and, for an entity with a token of its own (item tokens), that token: shorter strings
    // cannot be over the limit, and most are not tokenized here at all.
    const own = tokenizer.entityTokens?.has(entity) ? 1 : 0;
    if (3 * entity.length + 1 + own <= limit) continue;
    const tokens = encodeEntity(tokenizer, entity).length;
    if (tokens > limit) out.push({ kind, id: String(id), entity, tokens });
  }
  return out.sort((a, b) => b.tokens - a.tokens);
}

/** Options of {@linkcode checkEntityLengths}. */
export interface EntityLengthOptions {
  /** The longest example in tokens. */
  maxLength: number;
  /** Where `maxLength` comes from, for the message (`the model's max_sequence_length`). */
  lengthFrom: string;
  /** The entity pool's file, for the message. */
  file: string;
}

/**
 * Throws an InputError (one line) when an entity of `entities` takes more tokens than
 * {@linkcode entityTokenLimit} allows: it names the longest such entity (its kind and id, the
 * start of its text, its length in characters and tokens), how many more there are, and the
 * textualize flag that cuts entities, with a value that would fit.
 *
 * @example
 * ```ts
 * import type { EntityEntry } from "../data/types.ts";
 * import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
 *
 * declare const tokenizer: TextTokenizer, entities: EntityEntry[];
 * checkEntityLengths(tokenizer, entities, {
 *   maxLength: 512,
 *   lengthFrom: "the model's max_sequence_length",
 *   file: "runs/data/entities.json",
 * });
 * ```
 */
export function checkEntityLengths(
  tokenizer: TextTokenizer,
  entities: readonly EntityEntry[],
  options: EntityLengthOptions,
): void {
  // The tokenizer's prefix starts every example: an entity has that much less room.
  const limit = entityTokenLimit(options.maxLength) - tokenizer.prefix.length;
  const long = longEntities(tokenizer, entities, limit);
  if (long.length === 0) return;
  const first = long[0];
  const chars = (e: LongEntity) => Array.from(e.entity).length;
  // Characters per token of the worst tokenized one, with a tenth to spare; never more than
  // textualize's default (a title of hundreds of tokens crowds every history out anyway).
  const ratio = Math.min(...long.map((e) => chars(e) / e.tokens));
  const suggest = Math.max(
    8,
    Math.min(DEFAULT_RECORD_OPTIONS.maxEntityChars, Math.floor(limit * ratio * 0.9)),
  );
  const more = long.length > 1 ? `, and ${long.length - 1} more entities are too long` : "";
  throw new InputError(
    `${options.file}: ${first.kind} "${cut(first.id, 40)}" ("${cut(first.entity, 32)}", ` +
      `${chars(first)} characters) is ${first.tokens} tokens, more than the ${limit} an entity ` +
      `may take within the maximum length ${options.maxLength} (${options.lengthFrom})${more}; ` +
      `textualize the data again with ${optionName("maxEntityChars")} ${suggest} to cut long ` +
      "titles",
  );
}
