/**
 * Turning one user's interactions into textualized records (SPEC section 3): profile documents
 * and training prompts from the training interactions only, and validation/test prompts for the
 * held-out interactions (one seen template, seeded, plus every held-out template), with
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
import { buildEntityPool, type EntityPool } from "./entities.ts";
import type { InteractionLog } from "./log.ts";
import { preferenceWindows, samplePositions, topValues, type WindowOptions } from "./profile.ts";
import { type UserSequences, userSequences } from "./splits.ts";
import {
  type ItemInfo,
  type NamedValues,
  type Template,
  TEMPLATES,
  type UserInfo,
} from "./templates.ts";
import { capWords, explanationSentence, formatRating } from "./text.ts";
import type { Segment, Split, Task, TextRecord } from "./types.ts";
import { TASKS } from "./types.ts";

/** Every knob of record building; `DEFAULT_RECORD_OPTIONS` holds the defaults. */
export interface RecordOptions {
  seed: number;
  /** Task families to produce (others are reported as not requested). */
  tasks: Task[];
  /** Sequential prompts show at most this many most recent items. */
  maxHistory: number;
  /** Training sequential records per user, a seeded sample of positions (0: every position). */
  seqPerUser: number;
  /** Training direct records per user (positions drawn at random). */
  directPerUser: number;
  /** Direct prompts show at most this many most recent items. */
  directHistory: number;
  /** Training rating / explanation / review records per user (0: every eligible interaction). */
  ratingPerUser: number;
  explanationPerUser: number;
  reviewPerUser: number;
  /** Negatives per candidate list in valid/test item tasks. */
  negatives: number;
  /** Profile documents per user, and items sampled from each preference period. */
  profilesPerUser: number;
  profileSample: number;
  /** Preference periods. */
  windows: WindowOptions;
  /** Favourite attribute values named per attribute (0: none). */
  favourites: number;
  /** Entity strings are cut to this many words. */
  maxEntityWords: number;
  /** Explanations: first review sentence of at least `explanationMinWords`, cut to `...MaxWords`. */
  explanationMinWords: number;
  explanationMaxWords: number;
  /** Review prompts quote at most this many words of the review. */
  reviewWords: number;
}

/** The defaults of {@linkcode RecordOptions}. */
export const DEFAULT_RECORD_OPTIONS: RecordOptions = {
  seed: 0,
  tasks: [...TASKS],
  maxHistory: 20,
  seqPerUser: 0,
  directPerUser: 2,
  directHistory: 10,
  ratingPerUser: 0,
  explanationPerUser: 0,
  reviewPerUser: 0,
  negatives: 99,
  profilesPerUser: 1,
  profileSample: 5,
  windows: { shortDays: 7, mediumDays: 90, shortItems: 3, mediumItems: 10 },
  favourites: 2,
  maxEntityWords: 24,
  explanationMinWords: 4,
  explanationMaxWords: 30,
  reviewWords: 64,
};

/** A task family's status in the manifest. */
export interface TaskStatus {
  status: "ok" | "skipped";
  reason?: string;
}

/** Everything decided before the per-user loop: splits, entity pool, task statuses, scale. */
export interface DatasetPlan {
  log: InteractionLog;
  options: RecordOptions;
  seqs: UserSequences;
  pool: EntityPool;
  tasks: Record<Task, TaskStatus>;
  /** Tasks with status ok, in task order. */
  active: Task[];
  ratingScale: [number, number] | null;
  ratingValues: number[];
  /** Interactions of the kept users. */
  interactions: number;
  /** Items in the pool (item indices), ascending. */
  poolItems: Int32Array;
}

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
    let reason: string | undefined;
    if (!requested.includes(task)) reason = "not requested";
    else if (task === "rating" && !log.rating) reason = "the input has no ratings";
    else if (task === "rating" && !ratingScale) reason = "no ratings in the training data";
    else if ((task === "explanation" || task === "review") && !log.review) {
      reason = "the input has no review texts";
    } else if (task === "review" && !log.summary) reason = "the input has no review summaries";
    out[task] = reason === undefined ? { status: "ok" } : { status: "skipped", reason };
  }
  return out;
}

/**
 * Splits the log, builds the entity pool and decides which tasks can run.
 *
 * @example
 * ```ts
 * const plan = planDataset(log, { ...DEFAULT_RECORD_OPTIONS, seed: 7 });
 * for (let k = 0; k < plan.seqs.users.length; k++) for (const r of userRecords(plan, k, stats)) {}
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
  });
  const poolItems: number[] = [];
  for (let i = 0; i < inPool.length; i++) if (inPool[i]) poolItems.push(i);

  let ratingScale: [number, number] | null = null;
  const values = new Set<number>();
  if (log.rating) {
    for (let k = 0; k < seqs.users.length; k++) {
      for (let j = seqs.offsets[k]; j < seqs.offsets[k + 1] - 2; j++) {
        const r = log.rating[seqs.order[j]];
        if (!Number.isNaN(r)) values.add(r);
      }
    }
  }
  const ratingValues = [...values].sort((a, b) => a - b);
  if (ratingValues.length > 0) ratingScale = [ratingValues[0], ratingValues.at(-1)!];
  const tasks = taskStatuses(log, options.tasks, ratingScale);
  return {
    log,
    options,
    seqs,
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
function split<I>(templates: Template<I>[]): { seen: Template<I>[]; heldOut: Template<I>[] } {
  return {
    seen: templates.filter((t) => !t.heldOut),
    heldOut: templates.filter((t) => t.heldOut),
  };
}

const FAMILIES = {
  profile: split(TEMPLATES.profile),
  rating: split(TEMPLATES.rating),
  sequential: split(TEMPLATES.sequential),
  explanation: split(TEMPLATES.explanation),
  review: split(TEMPLATES.review),
  direct: split(TEMPLATES.direct),
};

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
 * counts for the manifest.
 */
export function* userRecords(
  plan: DatasetPlan,
  k: number,
  sampler: CandidateSampler,
  stats: RecordStats,
): Generator<TextRecord> {
  const { log, options, pool, seqs } = plan;
  const userIndex = seqs.users[k];
  const userId = log.users[userIndex];
  const prefix = `u${userId}`;
  const order = seqs.order.subarray(seqs.offsets[k], seqs.offsets[k + 1]);
  const n = order.length;
  const nTrain = n - 2;
  const entity = (p: number): string => pool.items[log.item[order[p]]]!;
  const entities = (from: number, to: number): string[] => {
    const out: string[] = [];
    for (let p = Math.max(0, from); p < to; p++) out.push(entity(p));
    return out;
  };
  const recentFirst = (to: number, count: number): string[] => entities(to - count, to).reverse();

  const features: NamedValues[] = [];
  const row = log.userFeatures[userIndex];
  if (row) {
    row.forEach((value, f) => {
      const name = log.userFeatureNames[f];
      const e = value === "" ? undefined : pool.attr(name, value);
      if (e !== undefined) features.push({ name, values: [{ entity: e, kind: name }] });
    });
  }
  const favouritesBefore = (to: number): NamedValues[] => {
    if (options.favourites <= 0) return [];
    const out: NamedValues[] = [];
    log.itemAttrNames.forEach((name, a) => {
      const values: string[] = [];
      for (let p = 0; p < to; p++) {
        for (const v of log.itemAttrs[log.item[order[p]]]?.[a] ?? []) values.push(v);
      }
      const top = topValues(values, options.favourites);
      if (top.length > 0) {
        out.push({ name, values: top.map((v) => ({ entity: pool.attr(name, v)!, kind: name })) });
      }
    });
    return out;
  };
  // Favourites cost a pass over the history, so only the templates that show them get them.
  const userBefore = (to: number, withFavourites = false): UserInfo => ({
    id: userId,
    features,
    favourites: withFavourites ? favouritesBefore(to) : [],
  });
  const itemAt = (p: number): ItemInfo => {
    const item = log.item[order[p]];
    const attrs: NamedValues[] = [];
    log.itemAttrs[item]?.forEach((values, a) => {
      const name = log.itemAttrNames[a];
      if (values.length > 0) {
        attrs.push({
          name,
          values: values.map((v) => ({ entity: pool.attr(name, v)!, kind: name })),
        });
      }
    });
    return { entity: entity(p), attrs };
  };
  const ratingAt = (p: number): number => log.rating ? log.rating[order[p]] : NaN;
  const reviewAt = (p: number): string | undefined => log.review?.[order[p]];
  const explanationAt = (p: number): string | undefined => {
    const review = reviewAt(p);
    return review === undefined
      ? undefined
      : explanationSentence(review, options.explanationMinWords, options.explanationMaxWords);
  };
  const summaryAt = (p: number): string | undefined => log.summary?.[order[p]];
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
    extra: Partial<TextRecord> = {},
  ): TextRecord => ({ id, task, template, split, user: userId, segments, ...extra });
  const item = (e: string) => [{ entity: e, kind: "item" }];

  if (log.review) {
    for (let p = 0; p < n; p++) {
      if (reviewAt(p) !== undefined && !explanationAt(p)) stats.noExplanation++;
    }
  }

  // ---- training: interactions [0, nTrain) only ----
  if (has("profile")) {
    const rng = Rng.derive(options.seed, userId, "profile");
    const times = log.time ? Array.from(order.subarray(0, nTrain), (i) => log.time![i]) : undefined;
    const { longEnd, mediumEnd } = preferenceWindows(nTrain, times, options.windows);
    const user = userBefore(nTrain, true);
    for (let j = 0; j < options.profilesPerUser; j++) {
      const t = FAMILIES.profile.seen[rng.int(FAMILIES.profile.seen.length)];
      const pick = (a: number, b: number) =>
        samplePositions(rng, a, b, options.profileSample).map(entity);
      const segments = t.render({
        user,
        long: pick(0, longEnd),
        medium: pick(longEnd, mediumEnd),
        short: pick(mediumEnd, nTrain),
      });
      yield record(trainId("profile", t.id), "profile", t.id, "train", segments);
    }
  }
  if (has("rating")) {
    const rng = Rng.derive(options.seed, userId, "rating");
    const scale = plan.ratingScale!;
    for (
      const p of choosePositions(
        rng,
        0,
        nTrain,
        options.ratingPerUser,
        (p) => !Number.isNaN(ratingAt(p)),
      )
    ) {
      const t = FAMILIES.rating.seen[rng.int(FAMILIES.rating.seen.length)];
      const r = ratingAt(p);
      const segments = t.render({
        user: userBefore(p),
        item: itemAt(p),
        scale,
        recent: recentFirst(p, 5),
      });
      yield record(trainId("rating", t.id), "rating", t.id, "train", segments, {
        target: [{ text: formatRating(r) }],
        rating: r,
      });
    }
  }
  if (has("sequential")) {
    const rng = Rng.derive(options.seed, userId, "sequential");
    for (const p of choosePositions(rng, 1, nTrain, options.seqPerUser)) {
      const t = FAMILIES.sequential.seen[rng.int(FAMILIES.sequential.seen.length)];
      const segments = t.render({
        user: userBefore(p),
        history: entities(p - options.maxHistory, p),
      });
      yield record(trainId("sequential", t.id), "sequential", t.id, "train", segments, {
        target: item(entity(p)),
      });
    }
  }
  if (has("explanation")) {
    const rng = Rng.derive(options.seed, userId, "explanation");
    for (
      const p of choosePositions(
        rng,
        0,
        nTrain,
        options.explanationPerUser,
        (p) => explanationAt(p) !== undefined,
      )
    ) {
      const t = FAMILIES.explanation.seen[rng.int(FAMILIES.explanation.seen.length)];
      const r = ratingAt(p);
      const segments = t.render({
        user: userBefore(p),
        item: itemAt(p),
        rating: Number.isNaN(r) ? undefined : formatRating(r),
      });
      yield record(trainId("explanation", t.id), "explanation", t.id, "train", segments, {
        target: [{ text: explanationAt(p)! }],
      });
    }
  }
  if (has("review")) {
    const rng = Rng.derive(options.seed, userId, "review");
    for (
      const p of choosePositions(
        rng,
        0,
        nTrain,
        options.reviewPerUser,
        (p) => reviewAt(p) !== undefined && summaryAt(p) !== undefined,
      )
    ) {
      const t = FAMILIES.review.seen[rng.int(FAMILIES.review.seen.length)];
      const segments = t.render({
        user: userBefore(p),
        item: itemAt(p),
        review: capWords(reviewAt(p)!, options.reviewWords),
      });
      yield record(trainId("review", t.id), "review", t.id, "train", segments, {
        target: [{ text: summaryAt(p)! }],
      });
    }
  }
  if (has("direct")) {
    const rng = Rng.derive(options.seed, userId, "direct");
    for (const p of choosePositions(rng, 1, nTrain, options.directPerUser)) {
      const t = FAMILIES.direct.seen[rng.int(FAMILIES.direct.seen.length)];
      const segments = t.render({
        user: userBefore(p, true),
        recent: recentFirst(p, options.directHistory),
      });
      yield record(trainId("direct", t.id), "direct", t.id, "train", segments, {
        target: item(entity(p)),
      });
    }
  }

  // ---- validation (target n-2) and test (target n-1) ----
  const userItems = Array.from(order, (i) => log.item[i]);
  for (const [split, p] of [["valid", n - 2], ["test", n - 1]] as [Split, number][]) {
    const id = (task: Task, template: string) => `${prefix}/${task}/${template}/${split}`;
    const user = userBefore(p);
    const pickTemplates = <I>(
      task: Task,
      family: { seen: Template<I>[]; heldOut: Template<I>[] },
    ) => {
      const rng = Rng.derive(options.seed, userId, task, split);
      return [family.seen[rng.int(family.seen.length)], ...family.heldOut];
    };
    let candidates: string[] | undefined;
    const candidateList = (): string[] => {
      if (candidates) return candidates;
      const rng = Rng.derive(options.seed, userId, "candidates", split);
      const drawn = sampler.draw(rng, userItems, log.item[order[p]], options.negatives);
      if (drawn.length - 1 < options.negatives) stats.shortCandidates++;
      return candidates = drawn.map((i) => pool.items[i]!);
    };
    const history = entities(0, p);
    if (has("rating") && !Number.isNaN(ratingAt(p))) {
      const r = ratingAt(p);
      for (const t of pickTemplates("rating", FAMILIES.rating)) {
        const segments = t.render({
          user,
          item: itemAt(p),
          scale: plan.ratingScale!,
          recent: recentFirst(p, 5),
        });
        yield record(id("rating", t.id), "rating", t.id, split, segments, {
          target: [{ text: formatRating(r) }],
          rating: r,
        });
      }
    }
    if (has("sequential")) {
      for (const t of pickTemplates("sequential", FAMILIES.sequential)) {
        const segments = t.render({ user, history: entities(p - options.maxHistory, p) });
        yield record(id("sequential", t.id), "sequential", t.id, split, segments, {
          target: item(entity(p)),
          candidates: candidateList(),
          history,
        });
      }
    }
    const explanation = has("explanation") ? explanationAt(p) : undefined;
    if (explanation !== undefined) {
      const r = ratingAt(p);
      for (const t of pickTemplates("explanation", FAMILIES.explanation)) {
        const segments = t.render({
          user,
          item: itemAt(p),
          rating: Number.isNaN(r) ? undefined : formatRating(r),
        });
        yield record(id("explanation", t.id), "explanation", t.id, split, segments, {
          target: [{ text: explanation }],
        });
      }
    }
    if (has("review") && reviewAt(p) !== undefined && summaryAt(p) !== undefined) {
      for (const t of pickTemplates("review", FAMILIES.review)) {
        const segments = t.render({
          user,
          item: itemAt(p),
          review: capWords(reviewAt(p)!, options.reviewWords),
        });
        yield record(id("review", t.id), "review", t.id, split, segments, {
          target: [{ text: summaryAt(p)! }],
        });
      }
    }
    if (has("direct")) {
      for (const t of pickTemplates("direct", FAMILIES.direct)) {
        const segments = t.render({
          user: userBefore(p, true),
          recent: recentFirst(p, options.directHistory),
        });
        yield record(id("direct", t.id), "direct", t.id, split, segments, {
          target: item(entity(p)),
          candidates: candidateList(),
          history,
        });
      }
    }
  }
}
