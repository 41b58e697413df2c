/**
 * The entity pool as integer ids, for evaluation and baselines: ids are positions in
 * `entities.json`, so predictions, targets, candidates and histories compare as numbers and
 * compact arrays hold them. Not a tokenizer trie (that is the decoder's business).
 *
 * @module
 */

import type { EntityEntry } from "../data/types.ts";

/**
 * The entity pool of a dataset, indexed.
 *
 * @example
 * ```ts
 * import type { Dataset } from "../data/dataset.ts";
 *
 * declare const data: Dataset;
 * const pool = new EntityIndex(data.entities);
 * const id = pool.id("Alpha Lipstick"); // -1 when not in the pool
 * pool.isItem(id); // true for kind "item"
 * ```
 */
export class EntityIndex {
  readonly #ids = new Map<string, number>();
  readonly #byItemId = new Map<string, number>();
  readonly #names: string[];
  readonly #sourceIds: string[];
  readonly #isItem: Uint8Array;
  /** Ids of the item entities, in pool order. */
  readonly items: Int32Array;

  /** Indexes `entities` (the parsed `entities.json`). Duplicate strings keep their first id. */
  constructor(entities: readonly EntityEntry[]) {
    this.#names = entities.map((e) => e.entity);
    this.#sourceIds = entities.map((e) => e.id);
    this.#isItem = new Uint8Array(entities.length);
    const items: number[] = [];
    entities.forEach((e, i) => {
      if (!this.#ids.has(e.entity)) this.#ids.set(e.entity, i);
      if (e.kind === "item") {
        if (typeof e.id === "string" && !this.#byItemId.has(e.id)) this.#byItemId.set(e.id, i);
        this.#isItem[i] = 1;
        items.push(i);
      }
    });
    this.items = Int32Array.from(items);
  }

  /** Number of entities in the pool (ids are 0..size-1). */
  get size(): number {
    return this.#names.length;
  }

  /** Returns the id of `entity`, or -1 when it is not in the pool. */
  id(entity: string): number {
    return this.#ids.get(entity) ?? -1;
  }

  /** Returns the entity string of pool id `id`. */
  name(id: number): string {
    return this.#names[id];
  }

  /** Returns the pool id of the item whose dataset id (`entities.json`'s `id`) is `itemId`, or -1. */
  itemIdToId(itemId: string): number {
    return this.#byItemId.get(itemId) ?? -1;
  }

  /** Returns the dataset's identifier of pool id `id` (the item id for an item). */
  sourceId(id: number): string {
    return this.#sourceIds[id];
  }

  /**
   * One entry of a ranked list as predictions files write it: the entity text and, beside it,
   * the dataset's item id (what joins to a catalogue; eval reads the id first).
   */
  ranked(id: number, score: number): { entity: string; item_id: string; score: number } {
    return { entity: this.#names[id], item_id: this.#sourceIds[id], score };
  }

  /** Returns true when `id` is a pool id of kind `item` (false for -1 and negatives). */
  isItem(id: number): boolean {
    return id >= 0 && id < this.#isItem.length && this.#isItem[id] === 1;
  }
}
