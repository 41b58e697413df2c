/**
 * The task families as one table, {@linkcode TASK_FAMILIES}: for each family, what its answer is
 * (which decides how `infer` produces it and how `eval` scores it), when a dataset can have it,
 * which of a user's interactions are eligible, how a record is rendered and what its target is.
 * Adding a family is adding one entry (with its templates in templates.ts); the lists other
 * modules keep ({@linkcode TASKS}, the families `infer` and `eval` answer, what a baseline
 * answers) derive from it.
 *
 * The answer kinds, and what the rest of the toolkit does with each:
 * - `item`: an item of the pool. Valid/test records carry candidates and the full history;
 *   `infer` ranks by trie-constrained beam search (or over the candidates); `eval` scores HR@k
 *   and NDCG@k; the item baselines (pop, item-kNN, random) answer it.
 * - `rating`: a rating value. `infer` scores each rating value of the dataset; `eval` scores
 *   RMSE and MAE; the `mean` baseline answers it.
 * - `text`: free text. `infer` generates it; `eval` scores BLEU and ROUGE.
 * - `null`: no answer: a pretraining document (`profile`), neither inferred nor scored.
 *
 * @module
 */

import type { Rng } from "../random.ts";
import type { InteractionLog } from "./log.ts";
import { preferenceWindows, samplePositions } from "./profile.ts";
import { type TaskInputs, type Template, TEMPLATES } from "./templates.ts";
import { capWords, foldSpace, formatRating } from "./text.ts";
import type { RecordOptions } from "./record_options.ts";
import { type Segment, type Task, TASKS, type TextRecord } from "./types.ts";
import type { UserView } from "./user_view.ts";

export { type Task, TASKS };

/** What a family's answer is; see the module documentation. */
export type AnswerKind = "item" | "rating" | "text";

/** The answer kinds in report order (how `eval` and `infer` list the families). */
export const ANSWER_KINDS: readonly AnswerKind[] = ["item", "rating", "text"];

/** One training document (a family without an answer) before it becomes a record. */
export interface Document {
  template: string;
  segments: Segment[];
}

/** How records of one family come from a user's interactions. */
export interface PromptFamily<I> {
  /** Its templates (seen and held out). */
  templates: readonly Template<I>[];
  /** The first training position a prompt can be about (1: it needs one earlier item). */
  firstTrain: number;
  /** Training records per user (0: every eligible position). */
  perUser(options: RecordOptions): number;
  /** Whether position `p` can give a record (default: every position). */
  eligible?(user: UserView, p: number): boolean;
  /** The template input of a prompt about position `p`. */
  input(user: UserView, p: number): I;
  /** The record's target (and other answer fields) for position `p`. */
  target(user: UserView, p: number): Pick<TextRecord, "target" | "rating">;
}

/** One entry of {@linkcode TASK_FAMILIES}. */
export interface TaskFamily<I> {
  /** What its answer is; null: a document with no answer. */
  answer: AnswerKind | null;
  /** Why `log` cannot give this family, or undefined when it can. */
  unavailable?(log: InteractionLog, ratingScale: [number, number] | null): string | undefined;
  /** Prompts about positions: training, validation and test records. */
  prompts?: PromptFamily<I>;
  /** Training documents drawn with `rng` (profile). */
  documents?(user: UserView, rng: Rng): Iterable<Document>;
}

/**
 * Every family. The order of keys is {@linkcode TASKS}. Rendering sees only positions before the
 * one a record is about (user_view.ts), and a family draws from its own seeded stream.
 */
export const TASK_FAMILIES = {
  profile: {
    answer: null,
    *documents(user, rng) {
      const { options, nTrain } = user;
      const { longEnd, mediumEnd } = preferenceWindows(
        nTrain,
        user.trainingTimes(),
        options.windows,
      );
      const info = user.userBefore(nTrain, true);
      const seen = TEMPLATES.profile.filter((t) => !t.heldOut);
      for (let j = 0; j < options.profilesPerUser; j++) {
        const t = seen[rng.int(seen.length)];
        const pick = (a: number, b: number) =>
          samplePositions(rng, a, b, options.profileSample).map((p) => user.entity(p));
        const segments = t.render({
          user: info,
          long: pick(0, longEnd),
          medium: pick(longEnd, mediumEnd),
          short: pick(mediumEnd, nTrain),
        });
        yield { template: t.id, segments };
      }
    },
  },
  rating: {
    answer: "rating",
    unavailable: (log, ratingScale) =>
      !log.rating
        ? "the input has no ratings"
        : !ratingScale
        ? "no ratings in the training data"
        : undefined,
    prompts: {
      templates: TEMPLATES.rating,
      firstTrain: 0,
      perUser: (o) => o.ratingPerUser,
      eligible: (u, p) => !Number.isNaN(u.ratingAt(p)),
      input: (u, p) => ({
        user: u.userBefore(p),
        item: u.itemAt(p),
        scale: u.ratingScale!,
        recent: u.recentFirst(p, 5),
      }),
      target: (u, p) => {
        const r = u.ratingAt(p);
        return { target: [{ text: formatRating(r) }], rating: r };
      },
    },
  },
  sequential: {
    answer: "item",
    prompts: {
      templates: TEMPLATES.sequential,
      firstTrain: 1,
      perUser: (o) => o.seqPerUser,
      input: (u, p) => ({
        user: u.userBefore(p),
        history: u.entities(p - u.options.maxHistory, p),
      }),
      target: (u, p) => ({ target: u.itemTarget(p) }),
    },
  },
  explanation: {
    answer: "text",
    unavailable: (log) => !log.review ? "the input has no review texts" : undefined,
    prompts: {
      templates: TEMPLATES.explanation,
      firstTrain: 0,
      perUser: (o) => o.explanationPerUser,
      eligible: (u, p) => u.explanationAt(p) !== undefined,
      input: (u, p) => {
        const r = u.ratingAt(p);
        return {
          user: u.userBefore(p),
          item: u.itemAt(p),
          rating: Number.isNaN(r) ? undefined : formatRating(r),
        };
      },
      target: (u, p) => ({ target: [{ text: u.explanationAt(p)! }] }),
    },
  },
  review: {
    answer: "text",
    unavailable: (log) =>
      !log.review
        ? "the input has no review texts"
        : !log.summary
        ? "the input has no review summaries"
        : undefined,
    prompts: {
      templates: TEMPLATES.review,
      firstTrain: 0,
      perUser: (o) => o.reviewPerUser,
      eligible: (u, p) => u.reviewAt(p) !== undefined && u.summaryAt(p) !== undefined,
      input: (u, p) => ({
        user: u.userBefore(p),
        item: u.itemAt(p),
        review: capWords(foldSpace(u.reviewAt(p)!), u.options.reviewWords),
      }),
      target: (u, p) => ({ target: [{ text: u.summaryAt(p)! }] }),
    },
  },
  direct: {
    answer: "item",
    prompts: {
      templates: TEMPLATES.direct,
      firstTrain: 1,
      perUser: (o) => o.directPerUser,
      input: (u, p) => ({
        user: u.userBefore(p, true),
        recent: u.recentFirst(p, u.options.directHistory),
      }),
      target: (u, p) => ({ target: u.itemTarget(p) }),
    },
  },
} as const satisfies { [T in Task]: TaskFamily<TaskInputs[T]> };

/**
 * The families with an answer (everything but `profile`). Written out rather than derived from
 * {@linkcode TASK_FAMILIES} so that the public types do not depend on the table's inferred type
 * (JSR's "no slow types"); `_answeredAgrees` below fails to compile when the two part.
 */
export type AnsweredTask = Exclude<Task, "profile">;

/** The families the table gives an answer. */
type TableAnswered = {
  [T in Task]: (typeof TASK_FAMILIES)[T]["answer"] extends null ? never : T;
}[Task];
// A compile-time check only: true when AnsweredTask and the table name the same families.
const _answeredAgrees: [AnsweredTask, TableAnswered] extends [TableAnswered, AnsweredTask] ? true
  : never = true;

/** The answer kind of `task`; null for a family without an answer (or a name that is none). */
export function answerOf(task: string): AnswerKind | null {
  return (TASK_FAMILIES as Record<string, TaskFamily<unknown>>)[task]?.answer ?? null;
}

/** The families whose answer is `kind`, in {@linkcode TASKS} order. */
export function tasksAnswering(kind: AnswerKind): AnsweredTask[] {
  return TASKS.filter((t) => answerOf(t) === kind) as AnsweredTask[];
}

/**
 * The families with an answer, in report order (by answer kind, then {@linkcode TASKS} order):
 * sequential, direct, rating, explanation, review. These are what `infer` and `eval` answer.
 */
export const ANSWERED_TASKS: readonly AnsweredTask[] = ANSWER_KINDS.flatMap(tasksAnswering);
