/**
 * Leave-one-out splits (docs/method.md section 3): each user's interactions in time order
 * (timestamps when the input has them, ties kept in input order; input order otherwise); the last
 * one is the test target, the second-last the validation target, the rest is training. Users with
 * fewer than three interactions cannot be split and are counted, never silently dropped.
 *
 * @module
 */

import type { InteractionLog } from "./log.ts";

/** The users that can be split, each with their interactions in time order. */
export interface UserSequences {
  /** User indices of the kept users, in user order. */
  users: Int32Array;
  /** Kept user k's interactions are `order[offsets[k]]` .. `order[offsets[k + 1] - 1]`. */
  offsets: Int32Array;
  /** Interaction indices, grouped by kept user, each group in time order. */
  order: Int32Array;
  /** Users with fewer than `minInteractions` interactions (left out). */
  skipped: number;
}

/**
 * Groups the interactions by user in time order and keeps users with at least
 * `minInteractions` (default 3: one to train on, one to validate, one to test).
 *
 * @example
 * ```ts
 * import type { InteractionLog } from "./log.ts";
 *
 * declare const log: InteractionLog;
 * const seqs = userSequences(log);
 * const k = 0, end = seqs.offsets[k + 1];
 * const test = seqs.order[end - 1], valid = seqs.order[end - 2];
 * ```
 */
export function userSequences(log: InteractionLog, minInteractions = 3): UserSequences {
  const nUsers = log.users.length;
  const counts = new Int32Array(nUsers + 1);
  for (let i = 0; i < log.user.length; i++) counts[log.user[i] + 1]++;
  const start = new Int32Array(nUsers + 1);
  for (let u = 0; u < nUsers; u++) start[u + 1] = start[u] + counts[u + 1];
  const grouped = new Int32Array(log.user.length);
  const fill = start.slice(0, nUsers);
  for (let i = 0; i < log.user.length; i++) grouped[fill[log.user[i]]++] = i;

  const time = log.time;
  const kept: number[] = [];
  const offsets: number[] = [0];
  const order = new Int32Array(log.user.length);
  let n = 0;
  let skipped = 0;
  for (let u = 0; u < nUsers; u++) {
    const group = grouped.subarray(start[u], start[u + 1]);
    if (group.length < minInteractions) {
      skipped++;
      continue;
    }
    // Stable by construction: ties fall back to input order (the interaction index).
    if (time) group.sort((a, b) => time[a] - time[b] || a - b);
    order.set(group, n);
    n += group.length;
    kept.push(u);
    offsets.push(n);
  }
  return {
    users: Int32Array.from(kept),
    offsets: Int32Array.from(offsets),
    order: order.slice(0, n),
    skipped,
  };
}
