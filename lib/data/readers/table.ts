/**
 * A delimited table with a header line, read as a stream: column lookup by name (with one-line
 * errors that name the missing column and the flag that sets it), a field-count check on every
 * row, and number parsing that names the file, line and column. Headers may be typed the RecBole
 * way (`rating:float`); the type is split off the name.
 *
 * @module
 */

import { cut, inputError, optionName, quote } from "../../errors.ts";
import { readLines } from "../../io/lines.ts";
import { type CsvRow, parseCsv } from "../csv.ts";

/** Options of {@linkcode openTable}. */
export interface TableOptions {
  /** The file's name in messages. Default: the path. */
  label?: string;
  /** The field separator. Default `,`. */
  delimiter?: string;
  /** Whether fields may be quoted. Default true. */
  quoting?: boolean;
  /** Whether header names carry a `:type` suffix (RecBole). Default false. */
  typed?: boolean;
}

/** The header's column names for a message: quoted, cut, at most 20 of them. */
function columnList(names: readonly string[]): string {
  const shown = names.slice(0, 20).map((n) => cut(n, 40)).join(", ");
  return names.length > 20 ? `${shown} and ${names.length - 20} more` : shown;
}

/** An opened table: its header, and its rows still to be streamed. */
export class Table {
  /** The file's name in messages. */
  readonly label: string;
  /** The header's line (1 unless blank lines come first). */
  readonly headerLine: number;
  /** Column names, without any type suffix. */
  readonly names: string[];
  /** Column types (`token`, `float`, ...) for typed headers, else undefined. */
  readonly types: (string | undefined)[];
  readonly #rows: AsyncGenerator<CsvRow>;

  constructor(label: string, header: CsvRow, rows: AsyncGenerator<CsvRow>, typed: boolean) {
    this.label = label;
    this.headerLine = header.line;
    this.#rows = rows;
    this.names = [];
    this.types = [];
    for (const raw of header.fields) {
      const cell = raw.trim();
      const colon = typed ? cell.lastIndexOf(":") : -1;
      this.names.push(colon > 0 ? cell.slice(0, colon) : cell);
      this.types.push(colon > 0 ? cell.slice(colon + 1) : undefined);
    }
    const seen = new Set<string>();
    for (const name of this.names) {
      if (name === "") throw inputError(label, header.line, "header has an empty column name");
      if (seen.has(name)) {
        throw inputError(label, header.line, `header names column ${quote(name)} twice`);
      }
      seen.add(name);
    }
  }

  /** The index of column `name`, or -1. */
  find(name: string): number {
    return this.names.indexOf(name);
  }

  /**
   * The index of column `name`; a missing column is an InputError that names it, lists the
   * columns there are and, when given, the option that chooses another.
   */
  column(name: string, option?: string): number {
    const index = this.find(name);
    if (index === -1) {
      const hint = option ? `; choose another with ${optionName(option)}` : "";
      throw inputError(
        this.label,
        this.headerLine,
        `no column ${quote(name)} (columns: ${columnList(this.names)})${hint}`,
      );
    }
    return index;
  }

  /** The data rows, each checked to have as many fields as the header. */
  async *rows(): AsyncGenerator<CsvRow> {
    const width = this.names.length;
    for await (const row of this.#rows) {
      if (row.fields.length !== width) {
        throw inputError(
          this.label,
          row.line,
          `expected ${width} fields as in the header, found ${row.fields.length}`,
        );
      }
      yield row;
    }
  }
}

/**
 * Opens the table at `path` and reads its header. An empty file is an InputError.
 *
 * @example
 * ```ts
 * const table = await openTable("users.csv");
 * const id = table.column("user_id", "userIdCol");
 * for await (const { fields } of table.rows()) console.log(fields[id]);
 * ```
 */
export async function openTable(path: string, options: TableOptions = {}): Promise<Table> {
  const label = options.label ?? path;
  const rows = parseCsv(readLines(path, label), {
    delimiter: options.delimiter,
    quoting: options.quoting,
    label,
  });
  const first = await rows.next();
  if (first.done) throw inputError(label, undefined, "empty input: no header line");
  return new Table(label, first.value, rows, options.typed ?? false);
}

/**
 * Parses an optional number field: undefined for an empty field, an InputError naming the file,
 * line and column for anything that is not a finite number.
 */
export function parseNumberField(
  text: string,
  where: { label: string; line: number; column: string },
): number | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  const value = Number(trimmed);
  if (!Number.isFinite(value)) {
    throw inputError(
      where.label,
      where.line,
      `column "${where.column}": ${JSON.stringify(trimmed)} is not a number`,
    );
  }
  return value;
}

/**
 * Parses a timestamp field: a Unix time (a plain number, in the unit the log decides: seconds or
 * milliseconds), or an ISO-8601 date (`2023-04-01`, optionally with a time; without a zone it is
 * read as UTC so the result never depends on the machine's zone), returned in seconds with
 * `fromDate`. Undefined for an empty field; an InputError for anything else.
 */
export function parseTimeField(
  text: string,
  where: { label: string; line: number; column: string },
): { time: number; fromDate: boolean } | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  const value = Number(trimmed);
  if (Number.isFinite(value)) return { time: value, fromDate: false };
  const iso =
    /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?(Z|[+-]\d{2}:?\d{2})?$/
      .exec(trimmed);
  if (iso) {
    const zone = (iso[3] ?? "Z").replace(/^([+-]\d{2})(\d{2})$/, "$1:$2");
    const ms = Date.parse(`${iso[1]}T${iso[2] ?? "00:00:00"}${zone}`);
    // Date.parse rolls a day past the end of its month over (2023-02-30 -> 2023-03-02).
    const [year, month, day] = iso[1].split("-").map(Number);
    const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
    if (Number.isFinite(ms) && day > days) {
      throw inputError(
        where.label,
        where.line,
        `column "${where.column}": ${JSON.stringify(trimmed)} is not a calendar date ` +
          `(${iso[1].slice(0, 7)} has ${days} days)`,
      );
    }
    if (Number.isFinite(ms)) return { time: ms / 1000, fromDate: true };
  }
  throw inputError(
    where.label,
    where.line,
    `column "${where.column}": ${
      JSON.stringify(trimmed)
    } is not a timestamp (a Unix time or an ISO-8601 date)`,
  );
}

/**
 * Refuses a feature or attribute column named `item`: its values would become entities of the
 * kind of items (`d (item)`), which item lists and candidate sets would take for items.
 * `option` is the option that chooses the columns (`userFeatures` or `itemAttrs`).
 */
export function refuseItemColumn(table: Table, names: readonly string[], option: string): void {
  if (!names.includes("item")) return;
  const what = option === "userFeatures" ? "a user feature" : "an item attribute";
  throw inputError(
    table.label,
    table.headerLine,
    `column "item" may not be ${what} ("item" is the kind of items); ` +
      `choose the columns with ${optionName(option)}`,
  );
}

/**
 * Checks that an id in a users or items table is non-empty and not seen before (`firstLine`
 * remembers where each id was defined); throws an InputError naming both lines otherwise.
 */
export function checkUniqueId(
  kind: string,
  id: string,
  firstLine: Map<string, number>,
  where: { label: string; line: number },
): void {
  if (id === "") throw inputError(where.label, where.line, `empty ${kind} id`);
  const first = firstLine.get(id);
  if (first !== undefined) {
    throw inputError(
      where.label,
      where.line,
      `${kind} id "${id}" already defined on line ${first}`,
    );
  }
  firstLine.set(id, where.line);
}
