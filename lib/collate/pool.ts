/**
 * The entity pool as inference and the trie loss of training use it: the trie of every entity
 * (for the dynamic position rule, docs/method.md section 7) and the trie of the items only (kind
 * `item`), which constrains item decoding, each entity encoded exactly as the collator encodes it
 * (`encodeEntity`). Building them checks that the tokenizer and the model fit the pool (see
 * {@linkcode buildPool}); excluding a user's items turns into trie nodes that decoding must not
 * enter or end at.
 *
 * It lives in collate, not generate, because training builds the same trie (`pretrain
 * --trie-softmax`), and train may not import generate. Not here: the search itself
 * (`lib/generate/items.ts`).
 *
 * @module
 */

import { checkEntityLengths } from "./entity_fit.ts";
import { encodeEntity, entityText } from "./tokenize.ts";
import { EntityTrie, TRIE_ROOT } from "./trie.ts";
import type { EntityEntry } from "../data/types.ts";
import { inputError } from "../errors.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";

/** The items of the pool and their trie. */
export interface ItemPool {
  /** Item entity strings; index i is trie terminal i. */
  items: string[];
  /** [items] each item's dataset id (`entities.json`'s `id`), what predictions name it by. */
  ids: string[];
  /** [items] each item's canonical tokens (shared with the tokenizer's cache: read only). */
  tokens: Int32Array[];
  /** Item index by entity string. */
  index: Map<string, number>;
  /** The trie over the items' tokens. */
  trie: EntityTrie;
  /** [nodes] number of items ending in each node's subtree (the node included). */
  itemsBelow: Int32Array;
}

/** Both tries of a dataset's pool. */
export interface Pool {
  /** The items only (constrained decoding). */
  items: ItemPool;
  /** Every entity of the pool, any kind (the dynamic position rule while generating text). */
  entities: EntityTrie;
}

/**
 * Trie nodes one prompt must avoid: `ends` are nodes where an excluded item ends (`[E]` is not
 * allowed there), `dead` the nodes whose every item below is excluded (not entered at all, so no
 * beam is spent on them).
 */
export interface Exclusion {
  /** Trie nodes where an excluded item ends: `[E]` is not allowed there. */
  ends: ReadonlySet<number>;
  /** Trie nodes whose every item below is excluded: not entered at all. */
  dead: ReadonlySet<number>;
}

function countItemsBelow(trie: EntityTrie): Int32Array {
  const nodes = trie.nodeCount;
  const parent = new Int32Array(nodes).fill(-1);
  for (let n = 0; n < nodes; n++) {
    for (let e = trie.childStart[n]; e < trie.childStart[n + 1]; e++) parent[trie.childNode[e]] = n;
  }
  const below = new Int32Array(nodes);
  // A child is always created after its parent, so a descending sweep sees children first.
  for (let n = nodes - 1; n >= 0; n--) {
    if (trie.terminal[n] >= 0) below[n]++;
    if (parent[n] >= 0) below[parent[n]] += below[n];
  }
  return below;
}

/**
 * The tries of `entities` (a dataset's `entities.json`) under `tokenizer`, for a model whose
 * embedding has `vocabSize` rows. InputErrors naming `file` when the pool cannot be decoded
 * consistently: an entity with no tokens, a token id the model has no embedding for, an entity
 * whose tokens decode to other text (the tokenizer cannot represent it), or two entities with the
 * same tokens (decoding could not tell them apart).
 *
 * @example
 * ```ts
 * import type { Dataset } from "../data/dataset.ts";
 * import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
 *
 * declare const tokenizer: TextTokenizer, data: Dataset, vocabSize: number, node: number;
 * const pool = buildPool(tokenizer, data.entities, { vocabSize }); // the model's embedding rows
 * pool.items.trie.terminal[node]; // item index of a complete item, or -1
 * ```
 */
export function buildPool(
  tokenizer: TextTokenizer,
  entities: readonly EntityEntry[],
  options: {
    vocabSize: number;
    file?: string;
    /**
     * The model's longest sequence: an entity that cannot fit it is an InputError naming it and
     * the flag that cuts it (`checkEntityLengths`), before any record is answered.
     */
    maxLength?: number;
    /** Where `maxLength` comes from, for that message. Default "the model's maximum length". */
    lengthFrom?: string;
  },
): Pool {
  const file = options.file ?? "entities.json";
  if (options.maxLength !== undefined) {
    checkEntityLengths(tokenizer, entities, {
      maxLength: options.maxLength,
      lengthFrom: options.lengthFrom ?? "the model's maximum length",
      file,
    });
  }
  const all: Int32Array[] = [];
  const items: string[] = [];
  const itemIds: string[] = [];
  const itemTokens: Int32Array[] = [];
  const index = new Map<string, number>();
  const owner = new Map<string, number>();
  for (let i = 0; i < entities.length; i++) {
    const { entity, kind } = entities[i];
    if (typeof entity !== "string" || entity === "") {
      throw inputError(file, undefined, `entry ${i + 1} has no entity string`);
    }
    const ids = encodeEntity(tokenizer, entity);
    if (ids.length === 0) throw inputError(file, undefined, `entity "${entity}" has no tokens`);
    for (const id of ids) {
      if (id >= options.vocabSize) {
        throw inputError(
          file,
          undefined,
          `entity "${entity}" has token id ${id}, beyond the model's vocab_size ` +
            `${options.vocabSize}: the model and the tokenizer do not belong together`,
        );
      }
    }
    // Byte-level tokenizers decode the canonical " " + entity as it is; metaspace ones (their
    // decoder strips the prepended space) as the entity. An entity's own token (item tokens)
    // is left out: its text follows it, or nothing does.
    const own = tokenizer.entityTokens?.has(entity) ?? false;
    const decoded = tokenizer.decode(own ? ids.subarray(1) : ids);
    if (own && !tokenizer.entityTitles) {
      // The token alone: nothing to decode.
    } else if (decoded !== " " + entity && decoded !== entityText(tokenizer, entity)) {
      throw inputError(
        file,
        undefined,
        `entity "${entity}" decodes as ${
          JSON.stringify(decoded.startsWith(" ") ? decoded.slice(1) : decoded)
        }: the tokenizer ` +
          `cannot represent it`,
      );
    }
    const key = ids.join(",");
    const earlier = owner.get(key);
    if (earlier !== undefined) {
      throw inputError(
        file,
        undefined,
        `entities "${entities[earlier].entity}" and "${entity}" have the same tokens`,
      );
    }
    owner.set(key, i);
    all.push(ids);
    if (kind === "item") {
      index.set(entity, items.length);
      items.push(entity);
      itemIds.push(entities[i].id);
      itemTokens.push(ids);
    }
  }
  const trie = EntityTrie.build(itemTokens);
  return {
    items: {
      items,
      ids: itemIds,
      tokens: itemTokens,
      index,
      trie,
      itemsBelow: countItemsBelow(trie),
    },
    entities: EntityTrie.build(all),
  };
}

/**
 * The trie nodes to avoid so that none of `excluded` (entity strings; those not items of the
 * pool are ignored) is returned; null when nothing is excluded.
 */
export function exclusionOf(pool: ItemPool, excluded: readonly string[]): Exclusion | null {
  const ends = new Set<number>();
  const counts = new Map<number, number>();
  for (const entity of excluded) {
    const item = pool.index.get(entity);
    if (item === undefined) continue;
    const tokens = pool.tokens[item];
    let node = TRIE_ROOT;
    const path: number[] = [];
    for (let i = 0; i < tokens.length; i++) {
      node = pool.trie.child(node, tokens[i]);
      path.push(node);
    }
    if (ends.has(node)) continue; // listed twice
    ends.add(node);
    for (const n of path) counts.set(n, (counts.get(n) ?? 0) + 1);
  }
  if (ends.size === 0) return null;
  const dead = new Set<number>();
  for (const [n, c] of counts) if (c === pool.itemsBelow[n]) dead.add(n);
  return { ends, dead };
}
