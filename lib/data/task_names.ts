/**
 * The names of the task families, in the order a user's records are written: the bottom of
 * lib/data, imported by the format (types.ts) without the families' templates and renderers
 * (tasks.ts holds those, keyed by these names).
 *
 * @module
 */

/** The task families, in the order a user's records are written; `profile` has no target. */
export const TASKS = [
  "profile",
  "rating",
  "sequential",
  "explanation",
  "review",
  "direct",
] as const;
/** One task family. */
export type Task = typeof TASKS[number];
