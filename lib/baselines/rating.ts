/**
 * A rating baseline so the rating task has a reference: global mean plus damped item and user
 * biases, learned from the rating records of train.jsonl (Koren's baseline predictor, fitted in
 * one pass, not by gradient descent):
 *
 *     mu    = mean of all training ratings
 *     b_i   = sum over i's ratings of (r - mu) / (damping + n_i)
 *     b_u   = sum over u's ratings of (r - mu - b_i) / (damping + n_u)
 *     r^_ui = mu + b_u + b_i, clipped to the rating scale
 *
 * An unknown user or item has bias 0. Every training rating record counts (one per interaction,
 * so a repeat purchase's ratings each count); a validation record is counted once per (user, item)
 * pair, since the validation split asks each of its targets in several templates. The default
 * damping 5 was not tuned.
 *
 * @module
 */

import type { TextRecord } from "../data/types.ts";
import { clipRating } from "../metrics/rating.ts";

/** One training rating. */
export interface TrainingRating {
  /** The user's identifier. */
  user: string;
  /** The rated item's entity string. */
  item: string;
  /** The rating, as a number. */
  rating: number;
}

/** Returns the first item entity of `record`'s prompt (the item a rating record is about). */
export function ratedItem(record: TextRecord): string | undefined {
  for (const segment of record.segments) {
    if ("entity" in segment && segment.kind === "item") return segment.entity;
  }
  return undefined;
}

/**
 * Collects the ratings of rating-task records: every training record's (textualize writes one per
 * interaction), and of a valid or test split's records the first of each (user, item) pair (the
 * split asks one target in a seen and every held-out template).
 *
 * @example
 * ```ts
 * import { type Dataset, readRecords } from "../data/dataset.ts";
 *
 * declare const data: Dataset;
 * const ratings = new TrainingRatings();
 * for await (const r of readRecords(data, "train")) ratings.add(r);
 * ratings.list; // [{user, item, rating}, ...]
 * ```
 */
export class TrainingRatings {
  /** The ratings collected, in record order. */
  readonly list: TrainingRating[] = [];
  readonly #seen = new Set<string>();

  /** Takes `record`'s rating when it is a rating record with a numeric rating and an item. */
  add(record: TextRecord): void {
    if (record.task !== "rating" || typeof record.rating !== "number") return;
    const item = ratedItem(record);
    if (item === undefined) return;
    if (record.split !== "train") {
      const key = `${record.user}\u0000${item}`;
      if (this.#seen.has(key)) return;
      this.#seen.add(key);
    }
    this.list.push({ user: record.user, item, rating: record.rating });
  }
}

/** Defaults of {@linkcode BiasRatingOptions}. */
export const DEFAULT_BIAS_RATING: Readonly<{ damping: number }> = Object.freeze({ damping: 5 });

/** Options of {@linkcode BiasRating}; defaults in {@linkcode DEFAULT_BIAS_RATING}. */
export interface BiasRatingOptions {
  /** Damping added to each bias's count. */
  damping?: number;
  /** Predictions are clipped to [min, max]; default no clipping. */
  scale?: readonly [number, number] | null;
}

/**
 * The global-mean + damped-biases rating predictor.
 *
 * @example
 * ```ts
 * declare const ratings: TrainingRatings;
 * const model = new BiasRating(ratings.list, { damping: 5, scale: [1, 5] });
 * model.predict("12", "Alpha Lipstick"); // a number in [1, 5]
 * ```
 */
export class BiasRating {
  /** The global mean rating (0 without training ratings). */
  readonly mean: number;
  readonly #item = new Map<string, number>();
  readonly #user = new Map<string, number>();
  readonly #scale: readonly [number, number] | null;

  /** Fits the biases to `ratings`. */
  constructor(ratings: readonly TrainingRating[], options: BiasRatingOptions = {}) {
    const damping = options.damping ?? DEFAULT_BIAS_RATING.damping;
    this.#scale = options.scale ?? null;
    this.mean = ratings.length > 0
      ? ratings.reduce((sum, r) => sum + r.rating, 0) / ratings.length
      : 0;
    const biases = (
      keyOf: (r: TrainingRating) => string,
      residual: (r: TrainingRating) => number,
    ) => {
      const sums = new Map<string, [number, number]>();
      for (const r of ratings) {
        const entry = sums.get(keyOf(r)) ?? [0, 0];
        entry[0] += residual(r);
        entry[1]++;
        sums.set(keyOf(r), entry);
      }
      return new Map([...sums].map(([key, [sum, n]]) => [key, sum / (damping + n)]));
    };
    for (const [k, b] of biases((r) => r.item, (r) => r.rating - this.mean)) this.#item.set(k, b);
    const userResidual = (r: TrainingRating) => r.rating - this.mean - this.itemBias(r.item);
    for (const [k, b] of biases((r) => r.user, userResidual)) this.#user.set(k, b);
  }

  /** Returns the item's bias b_i (0 for an unknown item). */
  itemBias(item: string): number {
    return this.#item.get(item) ?? 0;
  }

  /** Returns the user's bias b_u (0 for an unknown user). */
  userBias(user: string): number {
    return this.#user.get(user) ?? 0;
  }

  /** Returns mu + b_u + b_i, clipped to the scale. */
  predict(user: string, item: string): number {
    return clipRating(this.mean + this.userBias(user) + this.itemBias(item), this.#scale);
  }
}
