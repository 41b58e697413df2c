/**
 * Reader for tabular interaction data: an interactions table plus optional users and items
 * tables, with the columns named by options. Serves the generic CSV/TSV format directly and the
 * RecBole atomic files (tab-separated, no quoting, typed headers) through `recbole.ts`.
 *
 * @module
 */

import { inputError } from "../../errors.ts";
import { delimiterFor } from "../csv.ts";
import { type InteractionLog, LogBuilder, type LogChecks } from "../log.ts";
import {
  checkUniqueId,
  openTable,
  parseNumberField,
  parseTimeField,
  refuseItemColumn,
  type Table,
} from "./table.ts";

/** Column choices and files of a tabular dataset; every column option is a header name. */
export interface TabularOptions {
  /** The interactions table. */
  input: string;
  /** Optional users table (one row a user: id + feature columns). */
  users?: string;
  /** Optional items table (one row an item: id, title, attribute columns). */
  items?: string;
  /** Field separator; default from the file name (`.tsv` -> tab, else comma). */
  delimiter?: string;
  /** Interactions: user and item columns (defaults `user_id`, `item_id`). */
  userCol?: string;
  /** Interactions: the item column (see `userCol`). */
  itemCol?: string;
  /** Interactions: optional columns; by default used when a column of the default name exists. */
  timeCol?: string;
  /** Interactions: the rating column (default: the format's, when the file has it). */
  ratingCol?: string;
  /** Interactions: the review text column (default: the format's, when the file has it). */
  reviewCol?: string;
  /** Interactions: the review summary column (default: the format's, when the file has it). */
  summaryCol?: string;
  /** Users table: id column (default: the interactions' user column name) and feature columns. */
  userIdCol?: string;
  /** Users table: the feature columns. */
  userFeatures?: string[];
  /** Items table: id column (default: the interactions' item column name), title, attributes. */
  itemIdCol?: string;
  /** Items table: the title column. */
  titleCol?: string;
  /** Items table: the attribute columns. */
  itemAttrs?: string[];
  /** Checks and units of the interactions' values (timestamp unit, rating scale). */
  checks?: LogChecks;
}

/** How a tabular format reads its files, beyond the column choices. */
export interface TableDialect {
  format: string;
  /** Whether fields may be quoted (CSV yes, RecBole no). */
  quoting: boolean;
  /** Whether headers carry `:type` suffixes (RecBole). */
  typed: boolean;
  /** Default names tried, in order, for the optional columns. */
  defaults: {
    time: string[];
    rating: string[];
    review: string[];
    summary: string[];
    title: string[];
  };
}

/** The generic CSV/TSV dialect. */
export const CSV_DIALECT: TableDialect = {
  format: "csv",
  quoting: true,
  typed: false,
  defaults: {
    time: ["timestamp", "time"],
    rating: ["rating"],
    review: ["review", "review_text"],
    summary: ["summary"],
    title: ["title"],
  },
};

/** A column chosen by an option must exist; a default one is used only when it exists. */
function pickColumn(
  table: Table,
  chosen: string | undefined,
  defaults: string[],
  option: string,
): number {
  if (chosen !== undefined) return table.column(chosen, option);
  for (const name of defaults) {
    const index = table.find(name);
    if (index !== -1) return index;
  }
  return -1;
}

/** Columns that hold plain values by default: everything except floats in typed headers. */
function defaultValueColumns(table: Table, exclude: number[]): string[] {
  return table.names.filter((_, i) =>
    !exclude.includes(i) && !(table.types[i] ?? "").startsWith("float")
  );
}

/** Multi-valued (`token_seq`) columns of typed headers hold space-separated values. */
function splitValues(table: Table, column: number, text: string): string[] {
  return table.types[column] === "token_seq" ? text.trim().split(/\s+/) : [text];
}

async function readUsers(
  path: string,
  options: TabularOptions,
  dialect: TableDialect,
  log: LogBuilder,
): Promise<void> {
  const table = await openTable(path, {
    delimiter: options.delimiter ?? delimiterFor(path),
    quoting: dialect.quoting,
    typed: dialect.typed,
  });
  const id = table.column(options.userIdCol ?? options.userCol ?? "user_id", "userIdCol");
  const names = options.userFeatures ?? defaultValueColumns(table, [id]);
  const columns = names.map((name) => table.column(name, "userFeatures"));
  refuseItemColumn(table, names, "userFeatures");
  log.setUserFeatureNames(names);
  const firstLine = new Map<string, number>();
  for await (const { line, fields } of table.rows()) {
    const userId = fields[id].trim();
    checkUniqueId("user", userId, firstLine, { label: table.label, line });
    log.defineUser(userId, columns.map((c) => fields[c]));
  }
  log.source(path, "users");
}

async function readItems(
  path: string,
  options: TabularOptions,
  dialect: TableDialect,
  log: LogBuilder,
): Promise<void> {
  const table = await openTable(path, {
    delimiter: options.delimiter ?? delimiterFor(path),
    quoting: dialect.quoting,
    typed: dialect.typed,
  });
  const id = table.column(options.itemIdCol ?? options.itemCol ?? "item_id", "itemIdCol");
  const title = pickColumn(table, options.titleCol, dialect.defaults.title, "titleCol");
  const names = options.itemAttrs ?? defaultValueColumns(table, [id, title]);
  const columns = names.map((name) => table.column(name, "itemAttrs"));
  refuseItemColumn(table, names, "itemAttrs");
  log.setItemAttrNames(names);
  const firstLine = new Map<string, number>();
  for await (const { line, fields } of table.rows()) {
    const itemId = fields[id].trim();
    checkUniqueId("item", itemId, firstLine, { label: table.label, line });
    log.defineItem(itemId, {
      title: title >= 0 ? fields[title] : undefined,
      attrs: columns.map((c) => splitValues(table, c, fields[c])),
    });
  }
  log.source(path, "items");
}

/**
 * Reads a tabular dataset (interactions + optional users and items tables) into an
 * {@linkcode InteractionLog}. Interactions with items missing from a given items table are
 * skipped and counted.
 *
 * @example
 * ```ts
 * const log = await readTables({ input: "inter.csv", items: "items.csv", ratingCol: "stars" }, CSV_DIALECT);
 * ```
 */
export async function readTables(
  options: TabularOptions,
  dialect: TableDialect,
): Promise<InteractionLog> {
  const log = new LogBuilder(dialect.format, options.input, options.checks);
  if (options.users !== undefined) await readUsers(options.users, options, dialect, log);
  if (options.items !== undefined) await readItems(options.items, options, dialect, log);
  const table = await openTable(options.input, {
    delimiter: options.delimiter ?? delimiterFor(options.input),
    quoting: dialect.quoting,
    typed: dialect.typed,
  });
  const user = table.column(options.userCol ?? "user_id", "userCol");
  const item = table.column(options.itemCol ?? "item_id", "itemCol");
  const time = pickColumn(table, options.timeCol, dialect.defaults.time, "timeCol");
  const rating = pickColumn(table, options.ratingCol, dialect.defaults.rating, "ratingCol");
  const review = pickColumn(table, options.reviewCol, dialect.defaults.review, "reviewCol");
  const summary = pickColumn(table, options.summaryCol, dialect.defaults.summary, "summaryCol");
  const label = table.label;
  for await (const { line, fields } of table.rows()) {
    const userId = fields[user].trim();
    const itemId = fields[item].trim();
    if (userId === "") throw inputError(label, line, `column "${table.names[user]}" is empty`);
    if (itemId === "") throw inputError(label, line, `column "${table.names[item]}" is empty`);
    const stamp = time >= 0
      ? parseTimeField(fields[time], { label, line, column: table.names[time] })
      : undefined;
    log.addInteraction(userId, itemId, {
      time: stamp?.time,
      timeFromDate: stamp?.fromDate,
      rating: rating >= 0
        ? parseNumberField(fields[rating], { label, line, column: table.names[rating] })
        : undefined,
      review: review >= 0 ? fields[review] : undefined,
      summary: summary >= 0 ? fields[summary] : undefined,
    }, line);
  }
  log.source(options.input, "interactions");
  return log.build();
}
