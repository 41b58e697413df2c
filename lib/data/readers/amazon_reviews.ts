/**
 * Reader for Amazon review JSON lines (McAuley et al.), plain or gzip-compressed: one object a
 * line with `reviewerID`, `asin`, and optionally `overall` (rating), `reviewText`, `summary` and
 * `unixReviewTime`. The files carry no titles, so items are named by their ASINs.
 *
 * @module
 */

import { inputError } from "../../errors.ts";
import { readJsonLines } from "../../io/lines.ts";
import { type InteractionLog, LogBuilder, type LogChecks } from "../log.ts";

/** Options of {@linkcode readAmazonReviews}. */
export interface AmazonReviewsOptions {
  /** The `.json` or `.json.gz` review file. */
  input: string;
  /**
   * Checks and units of the values; the rating scale defaults to the format's 1-5 stars, so an
   * `overall` outside it is an error naming the line.
   */
  checks?: LogChecks;
}

/** The rating scale of Amazon reviews: `overall` is 1 to 5 stars. */
export const AMAZON_RATING_SCALE = {
  min: 1,
  max: 5,
  source: "Amazon reviews rate 1-5 stars; --rating-scale declares another",
} as const;

function optionalNumber(
  row: Record<string, unknown>,
  key: string,
  where: { label: string; line: number },
): number | undefined {
  const value = row[key];
  if (value === undefined || value === null || value === "") return undefined;
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
  const text = typeof value === "string" || typeof value === "number" ? String(value).trim() : "";
  if (text === "") throw inputError(where.label, where.line, `missing "${key}"`);
  return text;
}

/** Reads an Amazon review file into an {@linkcode InteractionLog}. */
export async function readAmazonReviews(options: AmazonReviewsOptions): Promise<InteractionLog> {
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
  return log.build();
}
