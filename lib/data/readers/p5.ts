/**
 * Reader for the P5 / S3-Rec sequence format: `sequential_data.txt` (one line a user:
 * `user item item ...`, oldest first, no timestamps) and an optional `items.csv`
 * (`item_id,asin,title`; tab-separated when named `.tsv`). The ASIN, when there, is the label
 * that tells repeated titles apart.
 *
 * @module
 */

import { readLines } from "../../io/lines.ts";
import { inputError, OptionError, optionName } from "../../errors.ts";
import { delimiterFor } from "../csv.ts";
import { type InteractionLog, LogBuilder } from "../log.ts";
import { checkUniqueId, openTable, refuseItemColumn } from "./table.ts";

/** Options of {@linkcode readP5}. */
export interface P5Options {
  /** `sequential_data.txt`. */
  input: string;
  /** `items.csv`; without it items are named by their ids. */
  items?: string;
  /** Items table: id column (default `item_id`), title column (default `title`). */
  itemIdCol?: string;
  titleCol?: string;
  /** Items table: the column whose value disambiguates repeated titles (default `asin` if present). */
  labelCol?: string;
  /** Items table: attribute columns (default: every other column). */
  itemAttrs?: string[];
  /** Items table: the field separator (default from its name: `.tsv` -> tab, else comma). */
  delimiter?: string;
}

/** Reads a P5 dataset into an {@linkcode InteractionLog}. */
export async function readP5(options: P5Options): Promise<InteractionLog> {
  const log = new LogBuilder("p5", options.input);
  if (options.delimiter !== undefined && options.items === undefined) {
    throw new OptionError(
      "delimiter",
      (name, nameOf) =>
        `${name} is the separator of the p5 items table: it needs ${nameOf("items")}`,
    );
  }
  if (options.items !== undefined) {
    const table = await openTable(options.items, {
      delimiter: options.delimiter ?? delimiterFor(options.items),
    });
    const id = table.column(options.itemIdCol ?? "item_id", "itemIdCol");
    const title = table.column(options.titleCol ?? "title", "titleCol");
    const label = options.labelCol !== undefined
      ? table.column(options.labelCol, "labelCol")
      : table.find("asin");
    const attrNames = options.itemAttrs ??
      table.names.filter((_, i) => i !== id && i !== title && i !== label);
    const attrs = attrNames.map((name) => table.column(name, "itemAttrs"));
    refuseItemColumn(table, attrNames, "itemAttrs");
    log.setItemAttrNames(attrNames);
    const firstLine = new Map<string, number>();
    for await (const { line, fields } of table.rows()) {
      const itemId = fields[id].trim();
      checkUniqueId("item", itemId, firstLine, { label: table.label, line });
      log.defineItem(itemId, {
        label: label >= 0 ? fields[label] : undefined,
        title: fields[title],
        attrs: attrs.map((a) => [fields[a]]),
      });
    }
    log.source(options.items, "items");
  }
  const userLine = new Map<string, number>();
  for await (const { number, text } of readLines(options.input)) {
    const tokens = text.trim().split(/\s+/);
    if (tokens[0] === "") continue;
    // P5 lines are ids separated by spaces; a comma or a tab means a table was given.
    if (/[,\t]/.test(text)) {
      throw inputError(
        options.input,
        number,
        `not a P5 sequence line ("USER ITEM ITEM ..." separated by spaces): it holds ` +
          `${text.includes("\t") ? "tabs" : "commas"}, as a table does; for a table use ${
            optionName("format")
          } csv`,
      );
    }
    // A second line of a user would be joined to the first as if it went on from there.
    checkUniqueId("user", tokens[0], userLine, { label: options.input, line: number });
    if (tokens.length === 1) {
      log.skip("users without any interaction");
      continue;
    }
    for (let i = 1; i < tokens.length; i++) log.addInteraction(tokens[0], tokens[i], {}, number);
  }
  log.source(options.input, "interactions");
  return log.build();
}
