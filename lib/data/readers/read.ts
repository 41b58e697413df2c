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

/**
 * Reads the input described by `options`. An unknown format, or a file the format cannot use
 * (a users table for P5 or Amazon reviews), is an OptionError naming the option.
 *
 * @example
 * ```ts
 * const log = await readInteractionLog({ format: "p5", input: "seq.txt", items: "items.csv" });
 * ```
 */
export async function readInteractionLog(options: ReadOptions): Promise<InteractionLog> {
  switch (options.format) {
    case "p5":
      if (options.users !== undefined) {
        throw new OptionError("users", (name) => `${name} is not used by the p5 format`);
      }
      return await readP5(options);
    case "amazon-reviews":
      if (options.users !== undefined) {
        throw new OptionError(
          "users",
          (name) =>
            `${name} is not used by the amazon-reviews format (reviews name no user features)`,
        );
      }
      return await readAmazonReviews(options);
    case "csv":
      return await readTables(options, CSV_DIALECT);
    case "recbole":
      return await readRecBole(options);
    default:
      throw new OptionError(
        "format",
        (name) => `${name} must be one of ${FORMATS.join(", ")}, got "${options.format}"`,
      );
  }
}
