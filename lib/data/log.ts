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

import { inputError } from "../errors.ts";
import { foldSpace } from "./text.ts";

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
  /** Ratings (NaN where missing), or undefined when the input has no ratings at all. */
  rating?: Float64Array;
  /** Folded review texts (undefined entries where missing), or undefined without any. */
  review?: (string | undefined)[];
  /** Folded review summaries, or undefined without any. */
  summary?: (string | undefined)[];
  /** Rows skipped on purpose, by reason. */
  skipped: { reason: string; count: number }[];
}

/** The optional parts of one interaction. */
export interface InteractionFields {
  time?: number;
  rating?: number;
  review?: string;
  summary?: string;
}

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

  /** `format` names the input format; `label` names the interactions file in errors. */
  constructor(format: string, label: string) {
    this.#format = format;
    this.#label = label;
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
      this.skip("interactions with an item missing from the items table");
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
    } else if (this.#firstUntimedLine === 0) {
      this.#firstUntimedLine = line;
    }
    this.#time.push(fields.time ?? NaN);
    if (fields.rating !== undefined) this.#rated++;
    this.#rating.push(fields.rating ?? NaN);
    const review = fields.review === undefined ? undefined : foldSpace(fields.review) || undefined;
    const summary = fields.summary === undefined
      ? undefined
      : foldSpace(fields.summary) || undefined;
    if (review !== undefined) this.#reviewed++;
    if (summary !== undefined) this.#summarized++;
    this.#review.push(review);
    this.#summary.push(summary);
    return true;
  }

  /** Number of interactions added so far. */
  get interactions(): number {
    return this.#user.length;
  }

  /**
   * The finished log. Throws an InputError when there are no interactions, or when some rows
   * have a timestamp and others do not (time order needs all or none).
   */
  build(): InteractionLog {
    const n = this.#user.length;
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
      rating: this.#rated > 0 ? Float64Array.from(this.#rating) : undefined,
      review: this.#reviewed > 0 ? this.#review : undefined,
      summary: this.#summarized > 0 ? this.#summary : undefined,
      skipped: [...this.#skipped].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
        .map(([reason, count]) => ({ reason, count })),
    };
  }
}
