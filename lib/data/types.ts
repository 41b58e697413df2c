/**
 * The textualized dataset format (docs/method.md section 3): the records every later stage reads,
 * the entity pool and the manifest. The bottom of lib/data: it imports nothing, and holds no value
 * but the names of the task families and splits; reading and writing live in `dataset.ts` and
 * `textualize/`.
 *
 * @module
 */

/** A piece of plain text. */
export interface TextSegment {
  /** The text, as written. */
  text: string;
}

/** A mention of one entity of the pool: an item title or an attribute value, never split. */
export interface EntitySegment {
  /** The entity string exactly as it appears in `entities.json`. */
  entity: string;
  /** `item`, or the attribute's name (`brand`, `category`, `age`, ...). */
  kind: string;
  /**
   * History items of a task prompt only: how recent the interaction is, 0 for the user's latest
   * before the answer, 1 for the one before it, and so on. A prompt too long for the model loses
   * its oldest history items first, whatever order the template lists them in (docs/method.md
   * section 6); a prompt without ages loses units from its start.
   */
  age?: number;
}

/** Where a prompt's answer goes; the collator puts the answer's mask token here. */
export interface AnswerSegment {
  /** Always true: the segment marks the answer's place. */
  answer: true;
}

/** One segment of a record: text, an entity, or the answer marker. */
export type Segment = TextSegment | EntitySegment | AnswerSegment;

// The task families are one table (tasks.ts), keyed by these names: the format names them
// without loading the families' templates and renderers.
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

/** The leave-one-out splits. */
export const SPLITS = ["train", "valid", "test"] as const;
/** One split. */
export type Split = typeof SPLITS[number];

/** One line of `train.jsonl`, `valid.jsonl` or `test.jsonl`. */
export interface TextRecord {
  /** Unique within the dataset directory. */
  id: string;
  /** The task family the record belongs to. */
  task: Task;
  /** Template id (`seq-3`); `manifest.templates` says which are held out for zero-shot. */
  template: string;
  /** The split the record belongs to. */
  split: Split;
  /** The user's identifier in the source data. */
  user: string;
  /** The prompt or document: text and entities alternating, with at most one answer marker. */
  segments: Segment[];
  /** The answer (absent for `profile` documents, which the collator masks itself). */
  target?: (TextSegment | EntitySegment)[];
  /**
   * Item tasks in valid/test: the items to rank under the sampled protocol, 1 positive (the
   * target) + N negatives the user never interacted with, seeded, in a seeded order (entity
   * strings). Not stored on the record: every record of one user and split shares one list, kept
   * once in `candidates.jsonl` ({@linkcode CandidateLine}); `readRecords` attaches it.
   */
  candidates?: string[];
  /**
   * Item tasks in valid/test: every item the user interacted with before the target, oldest
   * first (entity strings), for `--exclude-seen` and for the baselines.
   */
  history?: string[];
  /** Rating tasks: the true rating as a number (the target holds its text). */
  rating?: number;
}

/**
 * One line of `candidates.jsonl`: the candidate list of one user in one split (valid or test),
 * as item ids of `entities.json` (kind `item`), in the seeded order of the sampled protocol.
 */
export interface CandidateLine {
  /** The user's identifier in the source data. */
  user: string;
  /** The split the list is for (`valid` or `test`). */
  split: Split;
  /** Item ids (`EntityEntry.id` of items): the target and the sampled negatives. */
  items: string[];
}

/** One entry of `entities.json`. */
export interface EntityEntry {
  /** Unique across the whole pool. */
  entity: string;
  /** `item`, or the attribute's name. */
  kind: string;
  /** The identifier in the source data (item id, or the attribute value as it appears there). */
  id: string;
}

/** A template of the dataset: its id, family, and whether it is held out for zero-shot eval. */
export interface TemplateInfo {
  /** The template id (`seq-3`). */
  id: string;
  /** The task family the template belongs to. */
  task: Task;
  /** True for templates never used in training records (zero-shot evaluation). */
  heldOut: boolean;
}

/** `manifest.json`: where the dataset came from and what it holds. */
export interface Manifest {
  /** Format version of the dataset directory. */
  version: 1;
  /** The input format textualize read (`p5`, `amazon-reviews`, `csv`, `recbole`). */
  format: string;
  /**
   * Source files with their sizes and SHA-256 hashes. textualize writes `path` as the file name
   * only (so the manifest does not depend on where the data lives) and adds `role`:
   * `interactions`, `users` or `items`.
   */
  sources: { path: string; role?: string; bytes: number; sha256: string }[];
  /** The seed every random choice of textualize came from. */
  seed: number;
  /** Every option that shaped the output (window sizes, max history, negatives, ...). */
  options: Record<string, unknown>;
  /** Each task family: produced, or skipped with the reason (ratings or reviews missing). */
  tasks: Record<Task, { status: "ok" | "skipped"; reason?: string }>;
  /** Every template of the dataset, with whether it is held out. */
  templates: TemplateInfo[];
  /** Record counts by split, then task, then template. */
  counts: Record<string, Record<string, Record<string, number>>>;
  /** Rows or users skipped on purpose, with why. */
  skipped: { reason: string; count: number }[];
  /**
   * The rating scale declared with `textualize --rating-scale`, else the smallest and largest
   * rating in the training data; null without ratings.
   */
  rating_scale: [number, number] | null;
  /** The distinct rating values seen in training (as numbers), or [] without ratings. */
  rating_values: number[];
  /** Distinct users in the dataset. */
  users: number;
  /** Distinct items in the dataset. */
  items: number;
  /** Interactions in the dataset. */
  interactions: number;
}
