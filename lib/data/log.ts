/**
 * The common interaction log every input reader produces: users (with optional features), items
 * (with optional titles and attributes) and interactions (with optional time, rating, review and
 * summary), held compactly (typed arrays for the interactions). Readers fill a
 * {@linkcode LogBuilder}; textualize reads the finished {@linkcode InteractionLog}.
 *
 * Not for splitting or record building: see `splits.ts` and `textualize.ts`.
 *
 * @module
 */

import { inputError, optionName } from "../errors.ts";
import { foldLines, foldSpace } from "./text.ts";

/** A source file a reader read, and what it held. */
export interface SourceFile {
  path: string;
  /** `interactions`, `users` or `items`. */
  role: string;
}

/** Everything textualize needs from an input, whatever its format. */
export interface InteractionLog {
  format: string;
  sources: SourceFile[];
  /** Source user ids, by user index (order of first interaction in the input). */
  users: string[];
  /** Names of the user features (the users table's feature columns). */
  userFeatureNames: string[];
  /** Per user index: one folded value per feature name (`""` where missing), or undefined. */
  userFeatures: (string[] | undefined)[];
  /** Source item ids (the identifier interactions use), by item index. */
  items: string[];
  /** Per item: the identifier shown to tell items apart (P5: the ASIN; else the id). */
  itemLabels: string[];
  /** Per item: its folded title, `""` when it has none. */
  itemTitles: string[];
  /** Names of the item attributes (`brand`, `category`, ...). */
  itemAttrNames: string[];
  /** Per item: per attribute, its folded values (usually one), or undefined without any. */
  itemAttrs: (string[][] | undefined)[];
  /** Interactions in input order: user index and item index. */
  user: Int32Array;
  item: Int32Array;
  /** Unix seconds, or undefined when the input has no timestamps. */
  time?: Float64Array;
  /** The unit plain-number timestamps were read in; undefined without any. */
  timeUnit?: "s" | "ms";
  /** Ratings (NaN where missing), or undefined when the input has no ratings at all. */
  rating?: Float64Array;
  /** The rating scale the user declared (`--rating-scale`); else it is inferred from the data. */
  ratingScale?: [number, number];
  /**
   * Review texts folded line by line, line breaks kept as they end sentences (undefined entries
   * where missing), or undefined without any.
   */
  review?: (string | undefined)[];
  /** Folded review summaries, or undefined without any. */
  summary?: (string | undefined)[];
  /** Rows skipped on purpose, by reason. */
  skipped: { reason: string; count: number }[];
  /**
   * What reading decided or found that the user should know, one line each (timestamps read as
   * milliseconds, ratings far outside the range of the others); textualize prints them.
   */
  notes: string[];
}

/** The optional parts of one interaction. */
export interface InteractionFields {
  /**
   * A timestamp as the input writes it: a Unix time in the unit of
   * {@linkcode LogChecks.timeUnit}, or seconds when `timeFromDate` (an ISO date, converted).
   */
  time?: number;
  /** `time` came from a date, so it is seconds whatever the unit of plain numbers. */
  timeFromDate?: boolean;
  rating?: number;
  review?: string;
  summary?: string;
}

/** The unit of plain-number timestamps: `auto` reads milliseconds when any exceeds 1e11. */
export type TimeUnit = "s" | "ms" | "auto";

/** The values of {@linkcode TimeUnit}. */
export const TIME_UNITS: readonly TimeUnit[] = ["s", "ms", "auto"];

/**
 * Plain-number timestamps above this are milliseconds under `auto`: as seconds they would be
 * after the year 5000, as milliseconds any date after March 1973.
 */
export const MS_THRESHOLD = 1e11;

/** What a {@linkcode LogBuilder} checks while values arrive. */
export interface LogChecks {
  /** Unit of plain-number timestamps. Default `auto`. */
  timeUnit?: TimeUnit;
  /**
   * The rating scale: a rating outside it is an InputError naming the line. `source` says in the
   * message where the scale comes from (`--rating-scale`, the format). Without a scale, ratings
   * far outside the range of the others are noted (see {@linkcode ratingOutliers}).
   */
  ratingScale?: { min: number; max: number; source: string; declared?: boolean };
}

/**
 * Parses a declared rating scale, `MIN-MAX` or `MIN..MAX` (`1-5`, `0.5..5`, `-10..10`); a
 * UsageError-worthy message is returned as `error` for anything else.
 *
 * @example
 * ```ts
 * parseRatingScale("1-5"); // { min: 1, max: 5 }
 * parseRatingScale("5-1").error; // "... MIN below MAX ..."
 * ```
 */
export function parseRatingScale(text: string): { min: number; max: number; error?: string } {
  const m = /^\s*(-?[0-9.]+(?:e-?\d+)?)\s*(?:\.\.|-|:)\s*(-?[0-9.]+(?:e-?\d+)?)\s*$/i.exec(text);
  const min = m ? Number(m[1]) : NaN;
  const max = m ? Number(m[2]) : NaN;
  if (!Number.isFinite(min) || !Number.isFinite(max) || !(min < max)) {
    return {
      min,
      max,
      error: `must be MIN-MAX with MIN below MAX (e.g. 1-5 or 0.5..5), got ${JSON.stringify(text)}`,
    };
  }
  return { min, max };
}

/**
 * The ratings of `histogram` (value -> count and first line) that lie far outside the range of
 * the others: beyond the 0.5% and 99.5% quantiles by more than half the range between them
 * (and more than 1). A 50 or a 10 among 1-5 stars is one; the extremes of a continuous scale
 * (Jester's -10 to 10) or a rare value at an end of the scale (the demo's 1 star: 0.35% of its
 * ratings) are not, and neither is a 0 among 1-5 stars (declare the scale to refuse it).
 *
 * @example
 * ```ts
 * const h = new Map([[1, { count: 90, line: 2 }], [5, { count: 900, line: 3 }], [50, { count: 1, line: 9 }]]);
 * ratingOutliers(h); // { low: 1, high: 5, count: 1, first: { value: 50, line: 9 } }
 * ```
 */
export function ratingOutliers(histogram: ReadonlyMap<number, { count: number; line: number }>): {
  low: number;
  high: number;
  count: number;
  first?: { value: number; line: number };
} {
  const values = [...histogram.keys()].sort((a, b) => a - b);
  let total = 0;
  for (const v of values) total += histogram.get(v)!.count;
  const quantile = (q: number) => {
    let seen = 0;
    for (const v of values) {
      seen += histogram.get(v)!.count;
      if (seen >= q * total) return v;
    }
    return values[values.length - 1];
  };
  const low = quantile(0.005);
  const high = quantile(0.995);
  const slack = Math.max((high - low) / 2, 1);
  let count = 0;
  let first: { value: number; line: number } | undefined;
  for (const v of values) {
    if (v >= low - slack && v <= high + slack) continue;
    const { count: n, line } = histogram.get(v)!;
    count += n;
    if (!first || line < first.line) first = { value: v, line };
  }
  return { low, high, count, first };
}

/** The skip reason of interactions whose item the items table does not define. */
const MISSING_ITEM = "interactions with an item missing from the items table";

/** Above this share of the interactions read, skipping those of missing items is a warning. */
const MISSING_ITEM_WARNING = 0.1;

/**
 * Collects a log while a reader streams its input. Ids are interned into indices; items and
 * users keep the order in which they were first defined or seen, so the log is deterministic.
 *
 * @example
 * ```ts
 * const log = new LogBuilder("csv", "ratings.csv");
 * log.addInteraction("u1", "i9", { rating: 4 }, 2);
 * const done = log.build();
 * ```
 */
export class LogBuilder {
  readonly #format: string;
  readonly #label: string;
  readonly #sources: SourceFile[] = [];
  readonly #userIndex = new Map<string, number>();
  readonly #users: string[] = [];
  #featureNames: string[] = [];
  readonly #featureRows = new Map<string, string[]>();
  readonly #itemIndex = new Map<string, number>();
  readonly #items: string[] = [];
  readonly #labels: string[] = [];
  readonly #titles: string[] = [];
  #attrNames: string[] = [];
  readonly #attrs: (string[][] | undefined)[] = [];
  #catalogClosed = false;
  readonly #user: number[] = [];
  readonly #item: number[] = [];
  readonly #time: number[] = [];
  readonly #rating: number[] = [];
  readonly #review: (string | undefined)[] = [];
  readonly #summary: (string | undefined)[] = [];
  #timed = 0;
  #firstUntimedLine = 0;
  #firstTimedLine = 0;
  #rated = 0;
  #reviewed = 0;
  #summarized = 0;
  readonly #skipped = new Map<string, number>();

  readonly #checks: LogChecks;
  /** Plain-number timestamps: the smallest and the largest, with their lines. */
  #timeLow = { value: Infinity, line: 0 };
  #timeHigh = { value: -Infinity, line: 0 };
  /** Interactions whose timestamp came from a date (already seconds). */
  readonly #timeFromDate: number[] = [];
  /** Ratings by value: how many, and the first line of each. */
  readonly #ratingHistogram = new Map<number, { count: number; line: number }>();

  /**
   * `format` names the input format; `label` names the interactions file in errors; `checks`
   * are the checks and units of arriving values.
   */
  constructor(format: string, label: string, checks: LogChecks = {}) {
    this.#format = format;
    this.#label = label;
    this.#checks = checks;
  }

  /** Records a source file for the manifest. */
  source(path: string, role: string): void {
    this.#sources.push({ path, role });
  }

  /** Names the user feature columns; call before {@linkcode LogBuilder.defineUser}. */
  setUserFeatureNames(names: string[]): void {
    this.#featureNames = names;
  }

  /** Whether the users table already defined `id`. */
  hasUser(id: string): boolean {
    return this.#featureRows.has(id);
  }

  /** Gives a user its features (values in the order of the feature names). */
  defineUser(id: string, values: string[]): void {
    this.#featureRows.set(id, values.map(foldSpace));
  }

  /** Names the item attribute columns; call before {@linkcode LogBuilder.defineItem}. */
  setItemAttrNames(names: string[]): void {
    this.#attrNames = names;
  }

  /** Whether an item with this id is known. */
  hasItem(id: string): boolean {
    return this.#itemIndex.has(id);
  }

  /**
   * Defines a catalog item (from an items table). Once any item is defined, interactions with
   * items that were never defined are skipped and counted instead of added.
   */
  defineItem(id: string, fields: { label?: string; title?: string; attrs?: string[][] }): void {
    this.#catalogClosed = true;
    const index = this.#internItem(id);
    this.#labels[index] = foldSpace(fields.label ?? "") || id;
    this.#titles[index] = foldSpace(fields.title ?? "");
    const attrs = fields.attrs?.map((values) => values.map(foldSpace).filter((v) => v !== ""));
    this.#attrs[index] = attrs && attrs.some((v) => v.length > 0) ? attrs : undefined;
  }

  #internItem(id: string): number {
    let index = this.#itemIndex.get(id);
    if (index === undefined) {
      index = this.#items.length;
      this.#itemIndex.set(id, index);
      this.#items.push(id);
      this.#labels.push(id);
      this.#titles.push("");
      this.#attrs.push(undefined);
    }
    return index;
  }

  /** Counts `count` rows skipped on purpose for `reason`. */
  skip(reason: string, count = 1): void {
    this.#skipped.set(reason, (this.#skipped.get(reason) ?? 0) + count);
  }

  /**
   * Adds one interaction read on `line` of the interactions file. Returns false (and counts
   * the row as skipped) when a catalog was given and does not hold the item.
   */
  addInteraction(userId: string, itemId: string, fields: InteractionFields, line: number): boolean {
    if (this.#catalogClosed && !this.#itemIndex.has(itemId)) {
      this.skip(MISSING_ITEM);
      return false;
    }
    let user = this.#userIndex.get(userId);
    if (user === undefined) {
      user = this.#users.length;
      this.#userIndex.set(userId, user);
      this.#users.push(userId);
    }
    this.#user.push(user);
    this.#item.push(this.#internItem(itemId));
    if (fields.time !== undefined) {
      if (this.#timed++ === 0) this.#firstTimedLine = line;
      if (fields.timeFromDate) {
        this.#timeFromDate.push(this.#time.length);
      } else {
        if (fields.time < this.#timeLow.value) this.#timeLow = { value: fields.time, line };
        if (fields.time > this.#timeHigh.value) this.#timeHigh = { value: fields.time, line };
      }
    } else if (this.#firstUntimedLine === 0) {
      this.#firstUntimedLine = line;
    }
    this.#time.push(fields.time ?? NaN);
    if (fields.rating !== undefined) {
      this.#rated++;
      this.#checkRating(fields.rating, line);
    }
    this.#rating.push(fields.rating ?? NaN);
    const review = fields.review === undefined ? undefined : foldLines(fields.review) || undefined;
    const summary = fields.summary === undefined
      ? undefined
      : foldSpace(fields.summary) || undefined;
    if (review !== undefined) this.#reviewed++;
    if (summary !== undefined) this.#summarized++;
    this.#review.push(review);
    this.#summary.push(summary);
    return true;
  }

  #checkRating(rating: number, line: number): void {
    const scale = this.#checks.ratingScale;
    if (scale && (rating < scale.min || rating > scale.max)) {
      throw inputError(
        this.#label,
        line,
        `rating ${rating} is outside the rating scale ${scale.min}-${scale.max} (${scale.source})`,
      );
    }
    const seen = this.#ratingHistogram.get(rating);
    if (seen) seen.count++;
    else this.#ratingHistogram.set(rating, { count: 1, line });
  }

  /**
   * The unit of plain-number timestamps, converting milliseconds to seconds in `time`, and the
   * note that says so when `auto` decided it.
   */
  #resolveTimeUnit(time: number[], notes: string[]): "s" | "ms" | undefined {
    const unit = this.#checks.timeUnit ?? "auto";
    const high = this.#timeHigh;
    const low = this.#timeLow;
    if (high.line === 0) return undefined;
    if (unit === "auto") {
      if (!(high.value > MS_THRESHOLD)) return "s";
      if (high.value > MS_THRESHOLD * 1000) {
        // Microseconds or nanoseconds: read as milliseconds they would still be past the year
        // 5000, and every time window would be a thousand times too long.
        throw inputError(
          this.#label,
          high.line,
          `timestamp ${high.value} is after the year 5000 even as milliseconds (microseconds or ` +
            `nanoseconds?); give Unix seconds or milliseconds, or ISO dates`,
        );
      }
      if (low.value <= MS_THRESHOLD) {
        throw inputError(
          this.#label,
          low.line,
          `timestamp ${low.value} reads as seconds but line ${high.line} has ${high.value}, ` +
            `milliseconds (above ${MS_THRESHOLD}); give the unit with ${
              optionName("timestampUnit")
            } s or ms`,
        );
      }
      notes.push(
        `${this.#label}: timestamps read as milliseconds (line ${high.line} has ${high.value}, ` +
          `after the year 5000 as seconds); ${optionName("timestampUnit")} s reads them as seconds`,
      );
    } else if (unit === "s") {
      return "s";
    }
    const fromDate = new Set(this.#timeFromDate);
    for (let i = 0; i < time.length; i++) {
      if (!fromDate.has(i) && !Number.isNaN(time[i])) time[i] /= 1000;
    }
    return "ms";
  }

  /** The note about ratings far outside the range of the others, when no scale was given. */
  #ratingNote(notes: string[]): void {
    if (this.#checks.ratingScale || this.#ratingHistogram.size === 0) return;
    const { low, high, count, first } = ratingOutliers(this.#ratingHistogram);
    if (count === 0 || !first) return;
    notes.push(
      `${this.#label}: ${count} of ${this.#rated} ratings lie far outside ${low}-${high}, the ` +
        `range of the others (first: ${first.value} on line ${first.line}); undeclared, the ` +
        `rating scale is the range of the training ratings, which they widen (and as held-out ` +
        `targets they lie outside it): declare it with ${
          optionName("ratingScale")
        } MIN-MAX to reject them`,
    );
  }

  /** Number of interactions added so far. */
  get interactions(): number {
    return this.#user.length;
  }

  /**
   * The note (or, when none is left, the error) about interactions skipped because the items
   * table does not define their items, when they are more than a small share of those read.
   */
  #missingItemNote(notes: string[]): void {
    const skipped = this.#skipped.get(MISSING_ITEM) ?? 0;
    const read = this.#user.length + skipped;
    if (!(skipped > MISSING_ITEM_WARNING * read)) return;
    const items = this.#sources.find((s) => s.role === "items")?.path ?? "the items table";
    if (skipped === read) {
      throw inputError(
        this.#label,
        undefined,
        `${read} interactions read, and all ${read} name items missing from the items table ` +
          `${items} (not one id in common; ${optionName("itemIdCol")} chooses its id column)`,
      );
    }
    notes.push(
      `${this.#label}: ${skipped} of ${read} interactions (${
        Math.round(100 * skipped / read)
      }%) skipped: their items are missing from the items table ${items}`,
    );
  }

  /**
   * The finished log. Throws an InputError when there are no interactions (saying so when the
   * items table dropped them all), or when some rows have a timestamp and others do not (time
   * order needs all or none).
   */
  build(): InteractionLog {
    const n = this.#user.length;
    const notes: string[] = [];
    this.#missingItemNote(notes);
    if (n === 0) throw inputError(this.#label, undefined, "empty input: no interactions");
    if (this.#timed > 0 && this.#timed < n) {
      throw inputError(
        this.#label,
        this.#firstUntimedLine,
        `row has no timestamp while others do (line ${this.#firstTimedLine} has one)`,
      );
    }
    const userFeatures: (string[] | undefined)[] = this.#users.map((id) =>
      this.#featureRows.get(id)
    );
    const missing = userFeatures.filter((f) => f === undefined).length;
    if (this.#featureRows.size > 0 && missing > 0) {
      this.skip("users missing from the users table (kept, without features)", missing);
    }
    const unused = this.#featureRows.size - (this.#users.length - missing);
    if (unused > 0) this.skip("users-table rows of users without any interaction", unused);
    const timeUnit = this.#timed > 0 ? this.#resolveTimeUnit(this.#time, notes) : undefined;
    this.#ratingNote(notes);
    return {
      format: this.#format,
      sources: this.#sources,
      users: this.#users,
      userFeatureNames: this.#featureNames,
      userFeatures,
      items: this.#items,
      itemLabels: this.#labels,
      itemTitles: this.#titles,
      itemAttrNames: this.#attrNames,
      itemAttrs: this.#attrs,
      user: Int32Array.from(this.#user),
      item: Int32Array.from(this.#item),
      time: this.#timed > 0 ? Float64Array.from(this.#time) : undefined,
      timeUnit,
      rating: this.#rated > 0 ? Float64Array.from(this.#rating) : undefined,
      ratingScale: this.#checks.ratingScale?.declared
        ? [this.#checks.ratingScale.min, this.#checks.ratingScale.max]
        : undefined,
      review: this.#reviewed > 0 ? this.#review : undefined,
      summary: this.#summarized > 0 ? this.#summary : undefined,
      skipped: [...this.#skipped].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
        .map(([reason, count]) => ({ reason, count })),
      notes,
    };
  }
}
