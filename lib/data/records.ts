/**
 * Turning one user's interactions into textualized records (docs/method.md section 3): profile
 * documents and training prompts from the training interactions only, and validation/test prompts
 * for the held-out interactions (one seen template, seeded, plus every held-out template), with
 * candidate lists and full histories for the item tasks. Every random choice comes from a
 * stream derived from the seed, the user and the task, so a user's records never depend on
 * which other users or tasks are in the run.
 *
 * Not for reading input or writing files: see `readers/` and `textualize.ts`.
 *
 * @module
 */

import { Rng } from "../random.ts";
import type { CandidateSampler } from "./candidates.ts";
import { buildEntityPool } from "./entities.ts";
import type { InteractionLog } from "./log.ts";
import { samplePositions } from "./profile.ts";
import type { DatasetPlan, RecordOptions, TaskStatus } from "./record_options.ts";
import { userSequences } from "./splits.ts";
import { UserSample } from "./user_sample.ts";
import { type Task, TASK_FAMILIES, type TaskFamily, TASKS } from "./tasks.ts";
import type { Template } from "./templates.ts";
import type { Segment, Split, TextRecord } from "./types.ts";
import { UserView } from "./user_view.ts";

export {
  type DatasetPlan,
  DEFAULT_RECORD_OPTIONS,
  type RecordOptions,
  type TaskStatus,
  TRAIN_THROUGH,
  type TrainThrough,
} from "./record_options.ts";

/** Counters the record builder keeps while it runs (for the manifest's skipped list). */
export interface RecordStats {
  /** Interactions with a review but no sentence long enough for an explanation. */
  noExplanation: number;
  /** Candidate lists that came back with fewer negatives than asked for. */
  shortCandidates: number;
}

function taskStatuses(
  log: InteractionLog,
  requested: readonly Task[],
  ratingScale: [number, number] | null,
): Record<Task, TaskStatus> {
  const out = {} as Record<Task, TaskStatus>;
  for (const task of TASKS) {
    const family: TaskFamily<unknown> = TASK_FAMILIES[task];
    const reason = !requested.includes(task)
      ? "not requested"
      : family.unavailable?.(log, ratingScale);
    out[task] = reason === undefined ? { status: "ok" } : { status: "skipped", reason };
  }
  return out;
}

/**
 * Splits the log, builds the entity pool and decides which tasks can run.
 *
 * @example
 * ```ts
 * import { CandidateSampler } from "./candidates.ts";
 * import type { InteractionLog } from "./log.ts";
 *
 * declare const log: InteractionLog;
 * const plan = planDataset(log, { ...DEFAULT_RECORD_OPTIONS, seed: 7 });
 * const sampler = new CandidateSampler(plan.poolItems, log.items.length);
 * const stats = { noExplanation: 0, shortCandidates: 0 };
 * for (let k = 0; k < plan.seqs.users.length; k++) {
 *   for (const record of userRecords(plan, k, sampler, stats)) console.log(record.id);
 * }
 * ```
 */
export function planDataset(log: InteractionLog, options: RecordOptions): DatasetPlan {
  const seqs = userSequences(log);
  const inPool = new Uint8Array(log.items.length);
  for (let i = 0; i < log.item.length; i++) inPool[log.item[i]] = 1;
  const kept = new Uint8Array(log.users.length);
  for (const u of seqs.users) kept[u] = 1;
  const pool = buildEntityPool(log, {
    items: inPool,
    users: kept,
    maxWords: options.maxEntityWords,
    maxChars: options.maxEntityChars,
  });
  const poolItems: number[] = [];
  for (let i = 0; i < inPool.length; i++) if (inPool[i]) poolItems.push(i);

  // The values the training split rates with; undeclared, the scale is their range (SPEC 10),
  // which a refit's validation ratings may widen: its prompts then say so, valid's and test's too.
  const tuneUsers = options.tuneUsers && options.trainThrough === "valid"
    ? new UserSample({ ...options.tuneUsers, users: seqs.users.length })
    : undefined;
  const values = new Set<number>();
  if (log.rating) {
    for (let k = 0; k < seqs.users.length; k++) {
      // A refit trains on the validation item, but for the users kept out to tune on.
      const refit = options.trainThrough === "valid" && !tuneUsers?.has(log.users[seqs.users[k]]);
      const held = refit ? 1 : 2;
      for (let j = seqs.offsets[k]; j < seqs.offsets[k + 1] - held; j++) {
        const r = log.rating[seqs.order[j]];
        if (!Number.isNaN(r)) values.add(r);
      }
    }
  }
  const ratingValues = [...values].sort((a, b) => a - b);
  let ratingScale: [number, number] | null = null;
  if (ratingValues.length > 0) {
    ratingScale = log.ratingScale ?? [ratingValues[0], ratingValues.at(-1)!];
  }
  const tasks = taskStatuses(log, options.tasks, ratingScale);
  return {
    log,
    options,
    seqs,
    tuneUsers,
    pool,
    tasks,
    active: TASKS.filter((t) => tasks[t].status === "ok"),
    ratingScale,
    ratingValues,
    interactions: seqs.order.length,
    poolItems: Int32Array.from(poolItems),
  };
}

/** Seen templates and held-out templates of a family. */
function split<I>(templates: readonly Template<I>[]) {
  return {
    seen: templates.filter((t) => !t.heldOut),
    heldOut: templates.filter((t) => t.heldOut),
  };
}

/** The families with prompts, in task order, with their templates split once. */
const PROMPT_FAMILIES = TASKS.flatMap((task) => {
  const { prompts, answer }: TaskFamily<unknown> = TASK_FAMILIES[task];
  if (!prompts) return [];
  return [{ task, prompts, item: answer === "item", ...split(prompts.templates) }];
});

/** Positions of `[start, end)` passing `keep`, thinned to a seeded sample of `cap` (0: all). */
function choosePositions(
  rng: Rng,
  start: number,
  end: number,
  cap: number,
  keep?: (p: number) => boolean,
): number[] {
  const eligible: number[] = [];
  for (let p = start; p < end; p++) if (!keep || keep(p)) eligible.push(p);
  if (cap <= 0 || eligible.length <= cap) return eligible;
  return samplePositions(rng, 0, eligible.length, cap).map((i) => eligible[i]);
}

/**
 * Builds the records of kept user `k` (index into `plan.seqs.users`): training records first
 * (task order), then validation, then test. `sampler` is shared across users; `stats` collects
 * counts for the manifest. What each family writes is its entry of `TASK_FAMILIES` (tasks.ts).
 */
export function* userRecords(
  plan: DatasetPlan,
  k: number,
  sampler: CandidateSampler,
  stats: RecordStats,
): Generator<TextRecord> {
  const { log, options, pool } = plan;
  const user = new UserView(plan, k);
  const { n, nTrain, order } = user;
  const userId = user.id;
  const prefix = `u${userId}`;
  const has = (task: Task) => plan.tasks[task].status === "ok";
  const counters = new Map<string, number>();
  const trainId = (task: Task, template: string): string => {
    const key = `${task}/${template}`;
    const c = counters.get(key) ?? 0;
    counters.set(key, c + 1);
    return `${prefix}/${key}/train/${c}`;
  };
  const record = (
    id: string,
    task: Task,
    template: string,
    split: Split,
    segments: Segment[],
    extra?: Partial<TextRecord>,
  ): TextRecord => ({ id, task, template, split, user: userId, segments, ...extra });

  if (log.review) {
    for (let p = 0; p < n; p++) {
      if (user.reviewAt(p) !== undefined && !user.explanationAt(p)) stats.noExplanation++;
    }
  }

  // ---- training: interactions [0, nTrain) only ----
  for (const task of TASKS) {
    if (!has(task)) continue;
    const family: TaskFamily<unknown> = TASK_FAMILIES[task];
    const rng = Rng.derive(options.seed, userId, task);
    for (const doc of family.documents?.(user, rng) ?? []) {
      yield record(trainId(task, doc.template), task, doc.template, "train", doc.segments);
    }
    const prompts = family.prompts;
    if (!prompts) continue;
    const { seen } = PROMPT_FAMILIES.find((f) => f.task === task)!;
    const keep = prompts.eligible && ((p: number) => prompts.eligible!(user, p));
    for (
      const p of choosePositions(rng, prompts.firstTrain, nTrain, prompts.perUser(options), keep)
    ) {
      const t = seen[rng.int(seen.length)];
      const segments = t.render(prompts.input(user, p));
      yield record(trainId(task, t.id), task, t.id, "train", segments, prompts.target(user, p));
    }
  }

  // ---- validation (target n-2) and test (target n-1) ----
  const userItems = Array.from(order, (i) => log.item[i]);
  for (const [split, p] of [["valid", n - 2], ["test", n - 1]] as [Split, number][]) {
    let candidates: string[] | undefined;
    const candidateList = (): string[] => {
      if (candidates) return candidates;
      const rng = Rng.derive(options.seed, userId, "candidates", split);
      const drawn = sampler.draw(rng, userItems, log.item[order[p]], options.negatives);
      if (drawn.length - 1 < options.negatives) stats.shortCandidates++;
      return candidates = drawn.map((i) => pool.items[i]!);
    };
    const history = user.entities(0, p);
    for (const family of PROMPT_FAMILIES) {
      const { task, prompts } = family;
      if (!has(task) || (prompts.eligible && !prompts.eligible(user, p))) continue;
      // One seen template (seeded per user, task and split) plus every held-out template.
      const rng = Rng.derive(options.seed, userId, task, split);
      for (const t of [family.seen[rng.int(family.seen.length)], ...family.heldOut]) {
        const segments = t.render(prompts.input(user, p));
        const target = prompts.target(user, p);
        yield record(
          `${prefix}/${task}/${t.id}/${split}`,
          task,
          t.id,
          split,
          segments,
          family.item ? { ...target, candidates: candidateList(), history } : target,
        );
      }
    }
  }
}
