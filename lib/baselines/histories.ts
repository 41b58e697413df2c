/**
 * Each user's training interactions, the data the item baselines learn from, taken from the
 * evaluation records themselves so nothing held out can leak in:
 *
 * - a user's training interactions are the `history` of their first item-task record (sequential
 *   or direct) in valid.jsonl: every interaction before the validation target, oldest first;
 * - a user with no such valid record falls back to the `history` of their first item-task record
 *   in test.jsonl minus its last entry (that entry is the validation interaction).
 *
 * So the validation and test targets are never training interactions, whichever split is
 * evaluated. A dataset textualized with `--train-through valid` (the refit for the test split)
 * trains the model on the validation item too; {@linkcode TrainingHistories} with
 * `throughValid` then learns the same: every user's test history in full (never the test target).
 *
 * @module
 */

import { inputError } from "../errors.ts";
import type { TextRecord } from "../data/types.ts";
import { tasksAnswering } from "../data/tasks.ts";
import type { EntityIndex } from "../eval/entities.ts";

const ITEM_TASKS: readonly string[] = tasksAnswering("item");

/**
 * Returns the pool ids of `record.history` (oldest first), or undefined when the record has
 * none. An entry that is not an item of the pool is an InputError naming `file` and the record.
 */
export function historyIds(
  record: TextRecord,
  pool: EntityIndex,
  file: string,
): Int32Array | undefined {
  if (!Array.isArray(record.history)) return undefined;
  return Int32Array.from(record.history, (entity) => {
    const id = pool.id(entity);
    if (!pool.isItem(id)) {
      throw inputError(
        file,
        undefined,
        `record "${record.id}": history item "${entity}" is not an item of the pool`,
      );
    }
    return id;
  });
}

/**
 * Collects training histories by user: {@linkcode TrainingHistories.addValid} every record of
 * valid.jsonl, then {@linkcode TrainingHistories.addTest} every record of test.jsonl.
 *
 * @example
 * ```ts
 * import { type Dataset, readRecords } from "../data/dataset.ts";
 * import type { EntityIndex } from "../eval/entities.ts";
 *
 * declare const data: Dataset, pool: EntityIndex;
 * const histories = new TrainingHistories(pool);
 * for await (const r of readRecords(data, "valid")) histories.addValid(r, "valid.jsonl");
 * for await (const r of readRecords(data, "test")) histories.addTest(r, "test.jsonl");
 * histories.byUser.get("12"); // Int32Array of pool ids, oldest first
 * ```
 */
export class TrainingHistories {
  /** Training interactions (pool ids, oldest first) by user id. */
  readonly byUser: Map<string, Int32Array> = new Map();
  readonly #pool: EntityIndex;
  readonly #fromValid = new Set<string>();
  readonly #throughValid: (user: string) => boolean;

  /**
   * `throughValid`: the training interactions include the validation item (a refit dataset), for
   * every user or for the users it accepts (a refit that kept tuning users out).
   */
  constructor(
    pool: EntityIndex,
    options: { throughValid?: boolean | ((user: string) => boolean) } = {},
  ) {
    this.#pool = pool;
    const through = options.throughValid ?? false;
    this.#throughValid = typeof through === "function" ? through : () => through;
  }

  /** Takes a valid-split record's history as its user's training interactions (first one wins). */
  addValid(record: TextRecord, file: string): void {
    if (this.#throughValid(record.user)) return;
    if (!ITEM_TASKS.includes(record.task) || this.#fromValid.has(record.user)) return;
    const ids = historyIds(record, this.#pool, file);
    if (ids === undefined) return;
    this.byUser.set(record.user, ids);
    this.#fromValid.add(record.user);
  }

  /**
   * For a user no valid record covered: a test record's history minus the validation item (with
   * `throughValid`: every user, the whole history).
   */
  addTest(record: TextRecord, file: string): void {
    if (!ITEM_TASKS.includes(record.task) || this.byUser.has(record.user)) return;
    const ids = historyIds(record, this.#pool, file);
    if (ids === undefined || ids.length === 0) return;
    this.byUser.set(
      record.user,
      this.#throughValid(record.user) ? ids : ids.slice(0, ids.length - 1),
    );
  }
}
