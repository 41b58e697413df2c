/**
 * One entry point for every input format textualize reads: picks the reader for `format` and
 * returns the common {@linkcode InteractionLog}.
 *
 * @module
 */

import { OptionError } from "../../errors.ts";
import type { InteractionLog } from "../log.ts";
import { readAmazonReviews } from "./amazon_reviews.ts";
import { CSV_DIALECT, readTables, type TabularOptions } from "./csv.ts";
import { readP5 } from "./p5.ts";
import { readRecBole } from "./recbole.ts";

/** The input formats, as `--format` names them. */
export const FORMATS = ["p5", "amazon-reviews", "csv", "recbole"] as const;
/** One input format. */
export type InputFormat = typeof FORMATS[number];

/** Files and column choices for {@linkcode readInteractionLog}. */
export interface ReadOptions extends TabularOptions {
  /** The input format: `p5`, `amazon-reviews`, `csv` or `recbole`. */
  format: string;
  /** P5 items table: the column that tells repeated titles apart (default `asin` if present). */
  labelCol?: string;
}

/** The options of {@linkcode ReadOptions} that name an input table's columns (and delimiter). */
export const COLUMN_OPTIONS = [
  "delimiter",
  "userCol",
  "itemCol",
  "timeCol",
  "ratingCol",
  "reviewCol",
  "summaryCol",
  "userIdCol",
  "userFeatures",
  "itemIdCol",
  "titleCol",
  "itemAttrs",
  "labelCol",
] as const;

/** The options of {@linkcode ReadOptions} that only some formats read. */
const FORMAT_OPTIONS = ["users", ...COLUMN_OPTIONS, "ratingScale", "timestampUnit"] as const;

type FormatOption = typeof FORMAT_OPTIONS[number];

/** The options each format reads (P5's and amazon-reviews' delimiter is their items table's). */
const READS: Record<InputFormat, readonly FormatOption[]> = {
  p5: ["delimiter", "itemIdCol", "titleCol", "itemAttrs", "labelCol"],
  "amazon-reviews": ["delimiter", "itemIdCol", "titleCol", "ratingScale", "timestampUnit"],
  csv: FORMAT_OPTIONS.filter((o) => o !== "labelCol"),
  recbole: FORMAT_OPTIONS.filter((o) => o !== "labelCol" && o !== "delimiter"),
};

/** Whether `options` sets `option` (a time unit of `auto` is the default, not a choice). */
function given(options: ReadOptions, option: FormatOption): boolean {
  if (option === "ratingScale") return options.checks?.ratingScale !== undefined;
  if (option === "timestampUnit") return (options.checks?.timeUnit ?? "auto") !== "auto";
  return options[option] !== undefined;
}

/** The options that name a column of the items table, and of the users table. */
const TABLE_COLUMNS = {
  items: ["itemIdCol", "titleCol", "itemAttrs", "labelCol"],
  users: ["userIdCol", "userFeatures"],
} as const;

/**
 * Refuses an option that `format` does not read, naming it, so that none is silently ignored;
 * and a column of an items or users table that is not given (RecBole finds its tables itself).
 */
function refuseUnread(options: ReadOptions, format: InputFormat): void {
  for (const option of FORMAT_OPTIONS) {
    if (given(options, option) && !READS[format].includes(option)) {
      throw new OptionError(option, (name) => `${name} is not used by the ${format} format`);
    }
  }
  if (format === "recbole") return;
  for (const table of ["items", "users"] as const) {
    const option = TABLE_COLUMNS[table].find((o) => given(options, o));
    if (option && options[table] === undefined) {
      throw new OptionError(
        option,
        (name, nameOf) => `${name} names a column of the ${table} table: give ${nameOf(table)} too`,
      );
    }
  }
}

/**
 * Reads the input described by `options`. An unknown format, or an option the format does not
 * read (a users table for P5 or Amazon reviews, column names for P5 sequences or review JSON),
 * is an OptionError naming the option.
 *
 * @example
 * ```ts
 * const log = await readInteractionLog({ format: "p5", input: "seq.txt", items: "items.csv" });
 * ```
 */
export async function readInteractionLog(options: ReadOptions): Promise<InteractionLog> {
  const format = options.format as InputFormat;
  if (!FORMATS.includes(format)) {
    throw new OptionError(
      "format",
      (name) => `${name} must be one of ${FORMATS.join(", ")}, got "${options.format}"`,
    );
  }
  refuseUnread(options, format);
  switch (format) {
    case "p5":
      return await readP5(options);
    case "amazon-reviews":
      return await readAmazonReviews(options);
    case "csv":
      return await readTables(options, CSV_DIALECT);
    case "recbole":
      return await readRecBole(options);
  }
}
