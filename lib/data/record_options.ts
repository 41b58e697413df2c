/**
 * The options of record building and the plan decided before the per-user loop: types and
 * defaults only, so that the task families (tasks.ts) and the user view (user_view.ts) can name
 * them without importing the record builder (records.ts), which imports both.
 *
 * @module
 */

import type { EntityPool } from "./entities.ts";
import type { InteractionLog } from "./log.ts";
import type { WindowOptions } from "./profile.ts";
import type { UserSequences } from "./splits.ts";
import type { UserSample } from "./user_sample.ts";
import { type Task, TASKS } from "./types.ts";

/** Every knob of record building; `DEFAULT_RECORD_OPTIONS` holds the defaults. */
export interface RecordOptions {
  /** The seed of every random choice of record building. */
  seed: number;
  /** Task families to produce (others are reported as not requested). */
  tasks: Task[];
  /** Sequential prompts show at most this many most recent items. */
  maxHistory: number;
  /** Training sequential records per user, a seeded sample of positions (0: every position). */
  seqPerUser: number;
  /** Training direct records per user (positions drawn at random; 0: every position). */
  directPerUser: number;
  /** Direct prompts show at most this many most recent items. */
  directHistory: number;
  /** Training rating / explanation / review records per user (0: every eligible interaction). */
  ratingPerUser: number;
  /** Training explanation records per user (0: every eligible interaction). */
  explanationPerUser: number;
  /** Training review records per user (0: every eligible interaction). */
  reviewPerUser: number;
  /** Negatives per candidate list in valid/test item tasks. */
  negatives: number;
  /** Profile documents per user, and items sampled from each preference period. */
  profilesPerUser: number;
  /** Items sampled from each preference period for a profile document. */
  profileSample: number;
  /** Preference periods. */
  windows: WindowOptions;
  /** Favourite attribute values named per attribute (0: none). */
  favourites: number;
  /** Entity strings are cut to this many words. */
  maxEntityWords: number;
  /**
   * ... and then to this many characters (0: no limit): the word cap does nothing for text
   * without spaces, and one entity longer than a model's maximum length stops training.
   */
  maxEntityChars: number;
  /** Explanations: first review sentence of at least `explanationMinWords`, cut to `...MaxWords`. */
  explanationMinWords: number;
  /** Explanations: cut to at most this many words. */
  explanationMaxWords: number;
  /** Review prompts quote at most this many words of the review. */
  reviewWords: number;
  /**
   * What the training records cover: `train` (each user's interactions before the validation
   * target) or `valid` (through the validation target too: the final model for the test split,
   * refit after the settings were chosen on validation; the validation split is then training
   * data and `eval` refuses to score it).
   */
  trainThrough: TrainThrough;
  /**
   * With `trainThrough` valid: a seeded sample of about `size` users (the users `infer` and
   * `eval --sample-users size --sample-seed seed` answer; lib/data/user_sample.ts) whose
   * validation item stays out of training, so what is tuned on validation (a fusion's weight)
   * is tuned on them while every other user's validation item refits the model.
   */
  tuneUsers?: { size: number; seed: number };
  /**
   * Item tokens (docs/method.md section 13): `none`, `title` (every item entity's tokens start
   * with one new token of its own, then its title) or `only` (the item's token alone, no title).
   * Records are the same either way; the mode is recorded in the manifest (`item_tokens`) and
   * every later stage tokenizes item entities by it (lib/collate/item_tokens.ts). Default `none`.
   */
  itemTokens?: ItemTokenMode;
}

/** How item entities are tokenized: see {@linkcode RecordOptions.itemTokens}. */
export type ItemTokenMode = "none" | "title" | "only";

/** The values of {@linkcode ItemTokenMode}. */
export const ITEM_TOKEN_MODES: readonly ItemTokenMode[] = ["none", "title", "only"];

/** What the training records cover: see {@linkcode RecordOptions.trainThrough}. */
export type TrainThrough = "train" | "valid";

/** The values of {@linkcode TrainThrough}. */
export const TRAIN_THROUGH: readonly TrainThrough[] = ["train", "valid"];

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
  // Amazon Beauty's longest title after the word cap has 222 characters: no real title is cut.
  maxEntityChars: 256,
  explanationMinWords: 4,
  explanationMaxWords: 30,
  reviewWords: 64,
  trainThrough: "train",
  itemTokens: "none",
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
  /** The users whose validation item stays out of training (RecordOptions.tuneUsers). */
  tuneUsers?: UserSample;
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
