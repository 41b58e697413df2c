/**
 * Reader for Amazon review JSON lines (McAuley et al.), plain or gzip-compressed: one object a
 * line with `reviewerID`, `asin`, and optionally `overall` (rating), `reviewText`, `summary` and
 * `unixReviewTime`. The files carry no titles, so items are named by their ASINs unless an items
 * file gives them: Amazon's metadata as JSON lines (`asin`, `title`, optionally `brand`; plain or
 * gzip) or a CSV/TSV table (an `asin` or `item_id` column, a `title` column). Items the file does
 * not name keep their ASIN; entries for items nobody reviewed are ignored.
 *
 * @module
 */

import { inputError, OptionError, optionName } from "../../errors.ts";
import { readJsonLines, readLines } from "../../io/lines.ts";
import { delimiterFor } from "../csv.ts";
import { type InteractionLog, LogBuilder, type LogChecks } from "../log.ts";
import { parsePythonLiteral } from "../python_literal.ts";
import { checkUniqueId, openTable } from "./table.ts";

/** Options of {@linkcode readAmazonReviews}. */
export interface AmazonReviewsOptions {
  /** The `.json` or `.json.gz` review file. */
  input: string;
  /** Titles (and brands) of the items: Amazon metadata JSON lines, or a CSV/TSV table. */
  items?: string;
  /** Items file: the id field or column (default `asin`; a table without one: `item_id`). */
  itemIdCol?: string;
  /** Items table: the title column (default `title`). */
  titleCol?: string;
  /** Items table (not JSON lines): the delimiter (default by name: `.tsv`/`.tab` tab, else comma). */
  delimiter?: string;
  /**
   * Checks and units of the values; the rating scale defaults to the format's 1-5 stars, so an
   * `overall` outside it is an error naming the line.
   */
  checks?: LogChecks;
}

/**
 * The rating scale of Amazon reviews: `overall` is 1 to 5 stars. Declared (the dataset's scale
 * whatever the training ratings span), as `--rating-scale 1-5` would be.
 */
export const AMAZON_RATING_SCALE = {
  min: 1,
  max: 5,
  declared: true,
  /** Where the scale comes from, for messages (named when read: options are named per program). */
  get source(): string {
    return `Amazon reviews rate 1-5 stars; ${optionName("ratingScale")} declares another`;
  },
} as const;

function optionalNumber(
  row: Record<string, unknown>,
  key: string,
  where: { label: string; line: number },
): number | undefined {
  const value = row[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string" && value.trim() === "") return undefined; // Number(" ") is 0
  const n = typeof value === "string" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isFinite(n)) {
    throw inputError(where.label, where.line, `"${key}" is not a number: ${JSON.stringify(value)}`);
  }
  return n;
}

function optionalText(
  row: Record<string, unknown>,
  key: string,
  where: { label: string; line: number },
): string | undefined {
  const value = row[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") {
    throw inputError(where.label, where.line, `"${key}" is not a string`);
  }
  return value;
}

function requiredId(
  row: Record<string, unknown>,
  key: string,
  where: { label: string; line: number },
): string {
  const value = row[key];
  if (typeof value === "number" && !Number.isSafeInteger(value)) {
    // JSON.parse already rounded it: two ids past 2^53 may have become one.
    throw inputError(
      where.label,
      where.line,
      `"${key}" is the number ${JSON.stringify(value)}, which JSON numbers cannot hold exactly ` +
        `(ids must be strings, or whole numbers below 2^53)`,
    );
  }
  const text = typeof value === "string" || typeof value === "number" ? String(value).trim() : "";
  if (text === "") throw inputError(where.label, where.line, `missing "${key}"`);
  return text;
}

/** Reads an Amazon review file into an {@linkcode InteractionLog}. */
export async function readAmazonReviews(options: AmazonReviewsOptions): Promise<InteractionLog> {
  if (options.delimiter !== undefined && options.items === undefined) {
    throw new OptionError(
      "delimiter",
      (name, nameOf) => `${name} is the separator of the items table: it needs ${nameOf("items")}`,
    );
  }
  const label = options.input;
  const log = new LogBuilder("amazon-reviews", label, {
    ...options.checks,
    ratingScale: options.checks?.ratingScale ?? AMAZON_RATING_SCALE,
  });
  for await (const { number, value } of readJsonLines<unknown>(options.input, label)) {
    const where = { label, line: number };
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw inputError(label, number, "expected a JSON object");
    }
    const row = value as Record<string, unknown>;
    log.addInteraction(requiredId(row, "reviewerID", where), requiredId(row, "asin", where), {
      time: optionalNumber(row, "unixReviewTime", where),
      rating: optionalNumber(row, "overall", where),
      review: optionalText(row, "reviewText", where),
      summary: optionalText(row, "summary", where),
    }, number);
  }
  log.source(options.input, "interactions");
  if (options.items !== undefined) await readItemTitles(options, log);
  return log.build();
}

/**
 * The objects of a metadata file, one a line: JSON (the 2018 release), or a Python dict literal
 * (the 2014 release, whose files are meant for Python's `eval`: single quotes, `True`).
 */
async function* readMetadataLines(
  path: string,
): AsyncGenerator<{ number: number; value: unknown }> {
  for await (const { number, text } of readLines(path)) {
    if (text.trim() === "") continue;
    yield { number, value: parseMetadataLine(text, path, number) };
  }
}

function parseMetadataLine(text: string, path: string, number: number): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    // Python's dict literals: any key quoting, u'' strings included ({u'asin': u'A1'}).
    if (!text.trimStart().startsWith("{")) {
      throw inputError(path, number, `not valid JSON (${(error as Error).message})`);
    }
  }
  try {
    return parsePythonLiteral(text);
  } catch (error) {
    throw inputError(
      path,
      number,
      `neither JSON nor a Python dict literal (${(error as Error).message})`,
    );
  }
}

/** One item's names from the items file. */
interface ItemNames {
  title?: string;
  brand?: string;
}

/** Gives the reviewed items their titles (and brands) from `options.items`. */
async function readItemTitles(options: AmazonReviewsOptions, log: LogBuilder): Promise<void> {
  const path = options.items!;
  const names = new Map<string, ItemNames>();
  const firstLine = new Map<string, number>();
  if (/\.jsonl?(\.gz)?$/i.test(path)) {
    if (options.delimiter !== undefined) {
      throw new OptionError(
        "delimiter",
        (name) => `${name} is for an items table; ${path} is read as JSON lines (by its name)`,
      );
    }
    const idKey = options.itemIdCol ?? "asin";
    const titleKey = options.titleCol ?? "title";
    for await (const { number, value } of readMetadataLines(path)) {
      const where = { label: path, line: number };
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        throw inputError(path, number, "expected a JSON object");
      }
      const row = value as Record<string, unknown>;
      const id = requiredId(row, idKey, where);
      const entry = {
        title: optionalText(row, titleKey, where),
        brand: optionalText(row, "brand", where),
      };
      // Amazon's metadata repeats some items line for line: a repeat that names the item
      // alike adds nothing; one that names it otherwise is refused, naming both lines.
      const earlier = names.get(id);
      if (earlier && earlier.title === entry.title && earlier.brand === entry.brand) {
        log.skip("items-file lines repeating an earlier line of their item alike");
        continue;
      }
      checkUniqueId("item", id, firstLine, where);
      names.set(id, entry);
    }
  } else {
    const table = await openTable(path, { delimiter: options.delimiter ?? delimiterFor(path) });
    const id = table.column(
      options.itemIdCol ?? (table.find("asin") !== -1 ? "asin" : "item_id"),
      "itemIdCol",
    );
    const title = table.column(options.titleCol ?? "title", "titleCol");
    const brand = table.find("brand");
    for await (const { line, fields } of table.rows()) {
      const itemId = fields[id].trim();
      checkUniqueId("item", itemId, firstLine, { label: table.label, line });
      names.set(itemId, { title: fields[title], brand: brand >= 0 ? fields[brand] : undefined });
    }
  }
  const branded = [...names.values()].some((n) => (n.brand ?? "").trim() !== "");
  if (branded) log.setItemAttrNames(["brand"]);
  for (const [id, { title, brand }] of names) {
    if (!log.hasItem(id)) {
      log.skip("items-file items nobody reviewed (not in the entity pool)");
      continue;
    }
    log.defineItem(id, {
      title,
      attrs: branded ? [brand && brand.trim() !== "" ? [brand] : []] : undefined,
    });
  }
  log.source(path, "items");
}
