/**
 * The entity pool (`entities.json`): every item and every attribute value that records mention,
 * each with one unique string. Titles are folded and capped in words; repeated item titles get
 * the item's label appended (`Title (B004756YJA)`); an attribute value that collides with any
 * other entity gets its kind appended (`25-34 (age)`). Items without a title are named by their
 * label. The pool is sorted (items first, then kinds by name, then entity strings).
 *
 * @module
 */

import type { EntityEntry } from "./types.ts";
import type { InteractionLog } from "./log.ts";
import { capChars, capWords } from "./text.ts";

/** Options of {@linkcode buildEntityPool}. */
export interface EntityPoolOptions {
  /** Entities are cut to this many words. Default 24. */
  maxWords?: number;
  /** ... and then to this many characters (0: no limit). Default 0. */
  maxChars?: number;
  /** Per item index: 1 if the item belongs in the pool. */
  items: Uint8Array;
  /** Per user index: 1 if the user's features belong in the pool. */
  users: Uint8Array;
}

/** The entity pool and lookups from source identifiers to entity strings. */
export interface EntityPool {
  /** `entities.json`, sorted. */
  entries: EntityEntry[];
  /** Per item index: its entity string (undefined for items outside the pool). */
  items: (string | undefined)[];
  /** The entity of attribute value `id` of kind `kind`, if it is in the pool. */
  attr(kind: string, id: string): string | undefined;
  /**
   * Entities that `maxChars` cut, in pool order: kind, source id, the entity string and the
   * length in characters before the cut (after the word cap), for the warning textualize prints.
   */
  cut: { kind: string; id: string; entity: string; chars: number }[];
}

interface Draft {
  kind: string;
  id: string;
  base: string;
  label: string;
  item: number;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Items first, then attribute kinds by name; within a kind by `key`. */
function byKindThen(key: (d: Draft) => string): (a: Draft, b: Draft) => number {
  return (a, b) =>
    (a.kind === "item" ? 0 : 1) - (b.kind === "item" ? 0 : 1) || compare(a.kind, b.kind) ||
    compare(key(a), key(b));
}

/**
 * Builds the pool for the items and users marked in `options`.
 *
 * @example
 * ```ts
 * import type { InteractionLog } from "./log.ts";
 *
 * declare const log: InteractionLog, inPool: Uint8Array, kept: Uint8Array;
 * const pool = buildEntityPool(log, { items: inPool, users: kept, maxWords: 24 });
 * pool.items[3]; // "OPI Nail Lacquer, Simmer and Shimmer, 0.5-Fluid Ounce"
 * pool.attr("age_band", "25-34"); // "25-34"
 * ```
 */
export function buildEntityPool(log: InteractionLog, options: EntityPoolOptions): EntityPool {
  const maxWords = options.maxWords ?? 24;
  const maxChars = options.maxChars ?? 0;
  const drafts: Draft[] = [];
  const cutChars = new Map<Draft, number>();
  const cap = (text: string): { base: string; chars?: number } => {
    const words = capWords(text, maxWords);
    if (maxChars <= 0) return { base: words };
    const base = capChars(words, maxChars);
    return base === words ? { base } : { base, chars: Array.from(words).length };
  };
  const push = (draft: Omit<Draft, "base">, text: string) => {
    const { base, chars } = cap(text);
    const d = { ...draft, base };
    drafts.push(d);
    if (chars !== undefined) cutChars.set(d, chars);
  };
  const attrSeen = new Set<string>();
  const addAttr = (kind: string, id: string) => {
    const key = `${kind}\u0000${id}`;
    if (id === "" || attrSeen.has(key)) return;
    attrSeen.add(key);
    push({ kind, id, label: kind, item: -1 }, id);
  };
  for (let i = 0; i < log.items.length; i++) {
    if (!options.items[i]) continue;
    const label = log.itemLabels[i];
    push({ kind: "item", id: log.items[i], label, item: i }, log.itemTitles[i] || label);
    const attrs = log.itemAttrs[i];
    if (attrs) {
      for (let a = 0; a < attrs.length; a++) {
        for (const value of attrs[a]) addAttr(log.itemAttrNames[a], value);
      }
    }
  }
  for (let u = 0; u < log.users.length; u++) {
    const features = log.userFeatures[u];
    if (!options.users[u] || !features) continue;
    for (let f = 0; f < features.length; f++) addAttr(log.userFeatureNames[f], features[f]);
  }

  const itemBases = new Map<string, number>();
  const allBases = new Map<string, number>();
  for (const d of drafts) {
    if (d.item >= 0) itemBases.set(d.base, (itemBases.get(d.base) ?? 0) + 1);
    allBases.set(d.base, (allBases.get(d.base) ?? 0) + 1);
  }
  // Decide names in a fixed order, so the rare leftover clash is numbered the same every time.
  drafts.sort(byKindThen((d) => d.id));
  const taken = new Set<string>();
  const names = new Map<Draft, string>();
  // A name with a suffix still keeps to maxChars: its base is cut to leave the suffix room (a
  // suffix that leaves no room for a character of the base is kept whole: names stay unique).
  const suffixed = (d: Draft, suffix: string): string => {
    const room = maxChars - Array.from(suffix).length;
    if (maxChars <= 0 || room < 1) return d.base + suffix;
    const base = capChars(d.base, room).trimEnd();
    if (base !== d.base && !cutChars.has(d)) cutChars.set(d, Array.from(d.base + suffix).length);
    return base + suffix;
  };
  for (const d of drafts) {
    let name = d.base;
    if (d.item >= 0 ? itemBases.get(d.base)! > 1 : allBases.get(d.base)! > 1) {
      name = suffixed(d, ` (${d.label})`);
    }
    for (let n = 2; taken.has(name); n++) name = suffixed(d, ` (${d.label} ${n})`);
    taken.add(name);
    names.set(d, name);
  }

  const items: (string | undefined)[] = new Array(log.items.length).fill(undefined);
  const attrs = new Map<string, Map<string, string>>();
  const entries: EntityEntry[] = [];
  drafts.sort(byKindThen((d) => names.get(d)!));
  const cut: EntityPool["cut"] = [];
  for (const d of drafts) {
    const chars = cutChars.get(d);
    if (chars !== undefined) cut.push({ kind: d.kind, id: d.id, entity: names.get(d)!, chars });
    const entity = names.get(d)!;
    entries.push({ entity, kind: d.kind, id: d.id });
    if (d.item >= 0) {
      items[d.item] = entity;
    } else {
      let byId = attrs.get(d.kind);
      if (!byId) attrs.set(d.kind, byId = new Map());
      byId.set(d.id, entity);
    }
  }
  return { entries, items, attr: (kind, id) => attrs.get(kind)?.get(id), cut };
}
