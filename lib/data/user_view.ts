/**
 * One kept user's interactions as the task families read them (tasks.ts): position `p` is the
 * user's `p`-th interaction in time order; `n - 2` is the validation target and `n - 1` the test
 * target; positions `[0, nTrain)` are training: every position before the validation target, or
 * through it when the options train through valid. Everything a prompt shows of the user or an
 * item before a position comes from here, so no family can look past the position it is about.
 *
 * @module
 */

import type { EntityPool } from "./entities.ts";
import type { InteractionLog } from "./log.ts";
import { topValues } from "./profile.ts";
import type { DatasetPlan, RecordOptions } from "./record_options.ts";
import type { ItemInfo, NamedValues, UserInfo } from "./templates.ts";
import { explanationSentence } from "./text.ts";
import type { EntitySegment } from "./types.ts";

/** Kept user `k` of a {@linkcode DatasetPlan}, read position by position. */
export class UserView {
  /** The user's identifier in the source data. */
  readonly id: string;
  readonly options: RecordOptions;
  /** The training data's rating scale (set when the rating family runs). */
  readonly ratingScale: [number, number] | null;
  /** Interaction indices of the log, in time order. */
  readonly order: Int32Array;
  /** Interactions of the user. */
  readonly n: number;
  /** Training interactions: positions `[0, nTrain)`. */
  readonly nTrain: number;
  readonly #log: InteractionLog;
  readonly #pool: EntityPool;
  readonly #features: NamedValues[] = [];
  /** Explanations by position, computed once (undefined: none; null: not computed yet). */
  readonly #explanations: (string | undefined | null)[];

  constructor(plan: DatasetPlan, k: number) {
    const { log, seqs } = plan;
    this.#log = log;
    this.#pool = plan.pool;
    this.options = plan.options;
    this.ratingScale = plan.ratingScale;
    const userIndex = seqs.users[k];
    this.id = log.users[userIndex];
    this.order = seqs.order.subarray(seqs.offsets[k], seqs.offsets[k + 1]);
    this.n = this.order.length;
    this.nTrain = this.options.trainThrough === "valid" && !plan.tuneUsers?.has(this.id)
      ? this.n - 1
      : this.n - 2;
    this.#explanations = new Array(this.n).fill(null);
    const row = log.userFeatures[userIndex];
    if (row) {
      row.forEach((value, f) => {
        const name = log.userFeatureNames[f];
        const e = value === "" ? undefined : plan.pool.attr(name, value);
        if (e !== undefined) this.#features.push({ name, values: [{ entity: e, kind: name }] });
      });
    }
  }

  /** The item entity of position `p`. */
  entity(p: number): string {
    return this.#pool.items[this.#log.item[this.order[p]]]!;
  }

  /** The item entities of positions `[max(0, from), to)`, oldest first. */
  entities(from: number, to: number): string[] {
    const out: string[] = [];
    for (let p = Math.max(0, from); p < to; p++) out.push(this.entity(p));
    return out;
  }

  /** The `count` items just before position `to`, most recent first. */
  recentFirst(to: number, count: number): string[] {
    return this.entities(to - count, to).reverse();
  }

  /** The item of position `p` as a one-entity target. */
  itemTarget(p: number): EntitySegment[] {
    return [{ entity: this.entity(p), kind: "item" }];
  }

  /**
   * What a prompt about position `to` may say of the user: features, and (`withFavourites`)
   * favourite attribute values of the items before `to`. Favourites cost a pass over the history,
   * so only the templates that show them ask.
   */
  userBefore(to: number, withFavourites = false): UserInfo {
    return {
      id: this.id,
      features: this.#features,
      favourites: withFavourites ? this.#favouritesBefore(to) : [],
    };
  }

  #favouritesBefore(to: number): NamedValues[] {
    const { favourites } = this.options;
    if (favourites <= 0) return [];
    const log = this.#log;
    const out: NamedValues[] = [];
    log.itemAttrNames.forEach((name, a) => {
      const values: string[] = [];
      for (let p = 0; p < to; p++) {
        for (const v of log.itemAttrs[log.item[this.order[p]]]?.[a] ?? []) values.push(v);
      }
      const top = topValues(values, favourites);
      if (top.length > 0) {
        out.push({
          name,
          values: top.map((v) => ({ entity: this.#pool.attr(name, v)!, kind: name })),
        });
      }
    });
    return out;
  }

  /** The item of position `p` with its attributes. */
  itemAt(p: number): ItemInfo {
    const log = this.#log;
    const item = log.item[this.order[p]];
    const attrs: NamedValues[] = [];
    log.itemAttrs[item]?.forEach((values, a) => {
      const name = log.itemAttrNames[a];
      if (values.length > 0) {
        attrs.push({
          name,
          values: values.map((v) => ({ entity: this.#pool.attr(name, v)!, kind: name })),
        });
      }
    });
    return { entity: this.entity(p), attrs };
  }

  /** The times of the training interactions, oldest first; undefined when the log has none. */
  trainingTimes(): number[] | undefined {
    const time = this.#log.time;
    return time ? Array.from(this.order.subarray(0, this.nTrain), (i) => time[i]) : undefined;
  }

  /** The rating of position `p`; NaN when the log has none there. */
  ratingAt(p: number): number {
    return this.#log.rating ? this.#log.rating[this.order[p]] : NaN;
  }

  /** The review text of position `p`, if any. */
  reviewAt(p: number): string | undefined {
    return this.#log.review?.[this.order[p]];
  }

  /** The review summary of position `p`, if any. */
  summaryAt(p: number): string | undefined {
    return this.#log.summary?.[this.order[p]];
  }

  /** The explanation of position `p`: the first long enough sentence of its review, if any. */
  explanationAt(p: number): string | undefined {
    const known = this.#explanations[p];
    if (known !== null) return known;
    const review = this.reviewAt(p);
    const { explanationMinWords, explanationMaxWords } = this.options;
    const out = review === undefined
      ? undefined
      : explanationSentence(review, explanationMinWords, explanationMaxWords);
    this.#explanations[p] = out;
    return out;
  }
}
