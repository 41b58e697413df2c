/**
 * A retrieval baseline for the text tasks (explanation, review): it answers a record about user u
 * and item i with the training text of the most similar training (user, item) pair of the same
 * task, so BLEU and ROUGE have a floor that is not the model and needs no generation.
 *
 * The candidates and their similarity:
 * - another user's text about the same item, (v, i): the cosine of u's and v's training items;
 * - the same user's text about another item, (u, j): the cosine of i's and j's training users.
 *
 * Cosines are over the sets of the task's training pairs (|A and B| / sqrt(|A| |B|)). The best
 * candidate wins; ties go to the same-item pair, then to the earlier training record. A record
 * with no candidate (a user and an item that are both new) gets the task's most frequent
 * training text. The record's own pair is never in training (leave-one-out), so nothing is
 * copied from the answer.
 *
 * @module
 */

import type { TextRecord } from "../data/types.ts";
import { ratedItem } from "./rating.ts";

/** One training text of a text-task record. */
export interface TrainingText {
  /** The record's task family. */
  task: string;
  /** The user's identifier. */
  user: string;
  /** The item the text is about (its entity string). */
  item: string;
  /** The text itself (the record's target). */
  text: string;
}

/** The target text of a record (its text segments joined), or undefined when it has none. */
export function targetText(record: TextRecord): string | undefined {
  if (!Array.isArray(record.target)) return undefined;
  const parts = record.target.flatMap((s) =>
    "text" in s && typeof s.text === "string" ? [s.text] : []
  );
  return parts.length ? parts.join("") : undefined;
}

/**
 * Collects the training texts of text-task records, one per (task, user, item), first wins.
 *
 * @example
 * ```ts
 * import { type Dataset, readRecords } from "../data/dataset.ts";
 *
 * declare const data: Dataset;
 * const texts = new TrainingTexts(["explanation", "review"]);
 * for await (const r of readRecords(data, "train")) texts.add(r);
 * texts.list; // [{task, user, item, text}, ...]
 * ```
 */
export class TrainingTexts {
  /** The texts collected, in record order. */
  readonly list: TrainingText[] = [];
  readonly #tasks: ReadonlySet<string>;
  readonly #seen = new Set<string>();

  /** Collects the records of `tasks`. */
  constructor(tasks: readonly string[]) {
    this.#tasks = new Set(tasks);
  }

  /** Takes `record`'s target when it is a record of one of the tasks, about an item. */
  add(record: TextRecord): void {
    if (!this.#tasks.has(record.task)) return;
    const item = ratedItem(record);
    const text = targetText(record);
    if (item === undefined || text === undefined) return;
    const key = `${record.task}\u0000${record.user}\u0000${item}`;
    if (this.#seen.has(key)) return;
    this.#seen.add(key);
    this.list.push({ task: record.task, user: record.user, item, text });
  }
}

/** The index of one task's training pairs. */
class TaskIndex {
  readonly byUser = new Map<string, number[]>();
  readonly byItem = new Map<string, number[]>();
  readonly itemsOf = new Map<string, Set<string>>();
  readonly usersOf = new Map<string, Set<string>>();
  fallback = "";

  constructor(readonly texts: readonly TrainingText[]) {
    const counts = new Map<string, number>();
    texts.forEach((t, n) => {
      push(this.byUser, t.user, n);
      push(this.byItem, t.item, n);
      add(this.itemsOf, t.user, t.item);
      add(this.usersOf, t.item, t.user);
      counts.set(t.text, (counts.get(t.text) ?? 0) + 1);
    });
    let most = 0;
    for (const [text, c] of counts) {
      if (c > most) [most, this.fallback] = [c, text];
    }
  }
}

function push(map: Map<string, number[]>, key: string, n: number): void {
  const list = map.get(key);
  if (list) list.push(n);
  else map.set(key, [n]);
}

function add(map: Map<string, Set<string>>, key: string, value: string): void {
  const set = map.get(key);
  if (set) set.add(value);
  else map.set(key, new Set([value]));
}

/** |a and b| / sqrt(|a| |b|); 0 when either is empty or missing. */
export function setCosine(a?: ReadonlySet<string>, b?: ReadonlySet<string>): number {
  if (!a || !b || a.size === 0 || b.size === 0) return 0;
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  let common = 0;
  for (const x of small) if (large.has(x)) common++;
  return common / Math.sqrt(a.size * b.size);
}

/**
 * The retrieval model: {@linkcode TextRetrieval.retrieve} returns the text of the most similar
 * training pair (see the module documentation).
 *
 * @example
 * ```ts
 * const r = new TextRetrieval([
 *   { task: "review", user: "a", item: "x", text: "Great strings" },
 *   { task: "review", user: "b", item: "y", text: "Too quiet" },
 * ]);
 * r.retrieve("review", "a", "y"); // "Great strings" or "Too quiet", by similarity
 * ```
 */
export class TextRetrieval {
  readonly #byTask = new Map<string, TaskIndex>();

  /** Indexes `texts` by task. */
  constructor(texts: readonly TrainingText[]) {
    const grouped = new Map<string, TrainingText[]>();
    for (const t of texts) {
      const list = grouped.get(t.task);
      if (list) list.push(t);
      else grouped.set(t.task, [t]);
    }
    for (const [task, list] of grouped) this.#byTask.set(task, new TaskIndex(list));
  }

  /** Whether `task` has training texts (what {@linkcode TextRetrieval.retrieve} answers). */
  has(task: string): boolean {
    return this.#byTask.has(task);
  }

  /**
   * The text for a `task` record about `user` and `item`; undefined when the task has no
   * training texts.
   */
  retrieve(task: string, user: string, item: string): string | undefined {
    const index = this.#byTask.get(task);
    if (!index) return undefined;
    // The best (score, same item before same user, earlier record) candidate.
    let best = -1;
    let bestGroup = 2;
    let bestAt = -1;
    const consider = (n: number, group: number, score: number) => {
      const better = score > best ||
        (score === best && (group < bestGroup || (group === bestGroup && n < bestAt)));
      if (better) [best, bestGroup, bestAt] = [score, group, n];
    };
    // Same item, other users: how alike the two users' items are.
    const items = index.itemsOf.get(user);
    for (const n of index.byItem.get(item) ?? []) {
      const other = index.texts[n].user;
      if (other !== user) consider(n, 0, setCosine(items, index.itemsOf.get(other)));
    }
    // Same user, other items: how alike the two items' users are.
    const users = index.usersOf.get(item);
    for (const n of index.byUser.get(user) ?? []) {
      const other = index.texts[n].item;
      if (other !== item) consider(n, 1, setCosine(users, index.usersOf.get(other)));
    }
    return bestAt >= 0 ? index.texts[bestAt].text : index.fallback;
  }
}
