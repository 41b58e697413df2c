/**
 * What textualize checks about the dataset it is building, beyond the reading of single values
 * (the readers and `log.ts` check those): a task named with `--tasks` that the input cannot give,
 * a split left without records, a task without training records, entities the character cap cut.
 * Errors are one-line InputErrors; warnings are one-line strings for stderr, with counts.
 *
 * Why an error or a warning: an empty `train.jsonl` is an error, since every later stage needs
 * training records and would only fail later (pretrain) with less to say; a task the user named
 * that cannot be built is an error too (they asked for it). A task without training records while
 * others have some, empty validation and test splits (a profile-only dataset), and cut entities
 * leave a dataset that can still be used: warnings.
 *
 * @module
 */

import { cut, inputError, OptionError, optionName } from "../errors.ts";
import type { DatasetPlan } from "./records.ts";
import type { WindowOptions } from "./profile.ts";
import { DEFAULT_RECORD_OPTIONS } from "./record_options.ts";
import { type Task, TASK_FAMILIES, type TaskFamily, TASKS } from "./tasks.ts";
import type { Manifest } from "./types.ts";

/** Record counts: split -> task -> template -> count (a manifest's `counts`). */
type Counts = Manifest["counts"];

/** The option that names the column a task needs, per format, for the message. */
function columnHint(task: Task, format: string): string {
  if (format === "p5") return " (the p5 format holds item sequences only)";
  if (format !== "csv" && format !== "recbole") return "";
  const [rating, review, summary] = ["ratingCol", "reviewCol", "summaryCol"].map(optionName);
  if (task === "rating") return `; ${rating} names the rating column`;
  if (task === "explanation") return `; ${review} names the review column`;
  if (task === "review") return `; ${review} and ${summary} name the columns`;
  return "";
}

/**
 * Throws when a task named with `--tasks` cannot be built from the input (a column it needs is
 * missing): `file` names the input.
 *
 * @example
 * ```ts
 * import type { DatasetPlan } from "./records.ts";
 *
 * declare const plan: DatasetPlan;
 * checkRequestedTasks(plan, "inter.csv"); // InputError: inter.csv: tasks names review, but ...
 * // (on the command line: "--tasks names review, but ...")
 * ```
 */
export function checkRequestedTasks(plan: DatasetPlan, file: string): void {
  for (const task of plan.options.tasks) {
    const status = plan.tasks[task];
    if (status.status === "ok") continue;
    throw inputError(
      file,
      undefined,
      `${optionName("tasks")} names ${task}, but ${status.reason}` +
        columnHint(task, plan.log.format),
    );
  }
}

/** Interactions a user needs for a training record of a prompt family that starts at `first`. */
function interactionsNeeded(plan: DatasetPlan, first: number): number {
  const held = plan.options.trainThrough === "valid" ? 1 : 2;
  return first + 1 + held;
}

/** Why active `task` has no training record, in a few words. */
function noTrainingReason(plan: DatasetPlan, task: Task): string {
  const family: TaskFamily<unknown> = TASK_FAMILIES[task];
  const { seqs } = plan;
  const users = seqs.users.length;
  if (family.prompts) {
    const need = interactionsNeeded(plan, family.prompts.firstTrain);
    let longest = 0;
    for (let k = 0; k < users; k++) {
      longest = Math.max(longest, seqs.offsets[k + 1] - seqs.offsets[k]);
    }
    if (longest < need) {
      return `it needs users with ${need} or more interactions, and none of the ${users} has ` +
        `more than ${longest}`;
    }
    if (task === "explanation") {
      return `no training review has a sentence of ${plan.options.explanationMinWords}+ words ` +
        `(${optionName("explanationMinWords")})`;
    }
    return "no training interaction of any user has what its prompts need";
  }
  if (task === "profile" && plan.options.profilesPerUser === 0) {
    return `${optionName("profilesPerUser")} is 0`;
  }
  return "no user has training interactions for it";
}

/** Record count of `split` in `counts`, optionally of one task. */
function countOf(counts: Counts, split: string, task?: string): number {
  let total = 0;
  for (const [t, byTemplate] of Object.entries(counts[split] ?? {})) {
    if (task !== undefined && t !== task) continue;
    for (const n of Object.values(byTemplate)) total += n;
  }
  return total;
}

/**
 * What {@linkcode checkSplitCounts} needs of a dataset's plan, as plain JSON: a sharded run
 * writes it in every part's sidecar, and `merge` checks the whole dataset's counts with it.
 */
export interface SplitChecks {
  /** The input, named in the messages. */
  file: string;
  /** Users in the whole dataset. */
  users: number;
  /** Why each active task could have no training record. */
  noTraining: Record<string, string>;
  /** The active tasks with prompts (what infer and eval answer). */
  prompted: string[];
}

/** The {@linkcode SplitChecks} of `plan`, with `file` naming the input. */
export function splitChecks(plan: DatasetPlan, file: string): SplitChecks {
  return {
    file,
    users: plan.seqs.users.length,
    noTraining: Object.fromEntries(plan.active.map((t) => [t, noTrainingReason(plan, t)])),
    prompted: TASKS.filter((t) =>
      plan.active.includes(t) && (TASK_FAMILIES[t] as TaskFamily<unknown>).prompts
    ),
  };
}

/**
 * Checks the record counts of a written dataset: throws when `train.jsonl` holds no record,
 * returns the warnings for an active task without training records and for empty validation and
 * test splits. `file` names the input in the error.
 *
 * @example
 * ```ts
 * import type { Counts } from "./manifest.ts";
 * import type { DatasetPlan } from "./records.ts";
 *
 * declare const plan: DatasetPlan, counts: Counts;
 * for (const warning of checkSplits(plan, counts, "inter.csv")) console.error(`warning: ${warning}`);
 * ```
 */
export function checkSplits(plan: DatasetPlan, counts: Counts, file: string): string[] {
  return checkSplitCounts(splitChecks(plan, file), counts);
}

/** {@linkcode checkSplits} from a plan's {@linkcode SplitChecks} (the merge of shards). */
export function checkSplitCounts(checks: SplitChecks, counts: Counts): string[] {
  const { file, users, noTraining, prompted } = checks;
  const active = Object.keys(noTraining);
  if (countOf(counts, "train") === 0) {
    const why = active.map((task) => `${task}: ${noTraining[task]}`).join("; ");
    throw inputError(file, undefined, `no training records for ${users} users (${why})`);
  }
  const warnings: string[] = [];
  for (const task of active) {
    if (countOf(counts, "train", task) > 0) continue;
    warnings.push(
      `${file}: no training records of ${task} for ${users} users: ${noTraining[task]}`,
    );
  }
  if (countOf(counts, "valid") === 0 && countOf(counts, "test") === 0) {
    warnings.push(
      `${file}: valid.jsonl and test.jsonl hold no records: ${
        prompted.length === 0
          ? `${active.join(", ")} ${
            active.length === 1 ? "has" : "have"
          } no prompts (infer and eval need a task that has)`
          : "no user has a validation or test item"
      }`,
    );
  }
  return warnings;
}

/**
 * The warning for preference windows set for the other kind of data: days where the input has no
 * timestamps (its windows count interactions), interactions where it has them (they count days).
 * A window at its default says nothing (it was most likely not given). Undefined when none.
 *
 * @example
 * ```ts
 * import { DEFAULT_RECORD_OPTIONS } from "./record_options.ts";
 *
 * windowWarning(false, { ...DEFAULT_RECORD_OPTIONS.windows, shortDays: 1 });
 * // "shortDays applies to timestamped input; this input has none (its windows count
 * // interactions): ignored" (on the command line: "--short-days applies to ...")
 * ```
 */
export function windowWarning(timed: boolean, windows: WindowOptions): string | undefined {
  const unused: (keyof WindowOptions)[] = timed
    ? ["shortItems", "mediumItems"]
    : ["shortDays", "mediumDays"];
  const set = unused.filter((k) => windows[k] !== DEFAULT_RECORD_OPTIONS.windows[k]);
  if (set.length === 0) return undefined;
  return `${set.map(optionName).join(" and ")} ${set.length === 1 ? "applies" : "apply"} to ` +
    (timed
      ? "input without timestamps; this input has them (its windows count days): ignored"
      : "timestamped input; this input has none (its windows count interactions): ignored");
}

/**
 * Throws when the windows of this kind of data (days with timestamps, interactions without)
 * leave the medium-term window empty: the short-term window is as long as it or longer, where the
 * medium-term one reaches back past the short-term one. The other kind's are not read.
 */
export function checkWindows(timed: boolean, windows: WindowOptions): void {
  const [short, medium] = timed
    ? ["shortDays", "mediumDays"] as const
    : ["shortItems", "mediumItems"] as const;
  const [s, m] = [windows[short], windows[medium]];
  if (s < m) return;
  throw new OptionError(
    short,
    (name, nameOf) =>
      `${name} ${s} is ${s === m ? "as long as" : "longer than"} ${nameOf(medium)} ${m}: the ` +
      `medium-term window, which reaches back past the short-term one, would be empty`,
  );
}

/**
 * The warning for entities the character cap (`--max-entity-chars`) cut, with the count and the
 * first of them; undefined when none was cut.
 */
export function cutEntitiesWarning(plan: DatasetPlan): string | undefined {
  const list = plan.pool.cut;
  if (list.length === 0) return undefined;
  const first = list[0];
  const n = list.length;
  return `${n} ${n === 1 ? "entity" : "entities"} cut to ${plan.options.maxEntityChars} ` +
    `characters (${optionName("maxEntityChars")}): ${n === 1 ? "" : "the first, "}${first.kind} ` +
    `"${cut(first.id, 40)}" (${first.chars} characters: "${cut(first.entity, 40)}")`;
}
