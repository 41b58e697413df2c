/**
 * A streaming RFC 4180 CSV/TSV parser over the lines of `lib/io/lines.ts` (so gzip, strict UTF-8
 * and line numbers come for free), and the matching writer for one row. Quoted fields may hold
 * delimiters, doubled quotes and line breaks; a quote inside an unquoted field is taken literally
 * (real exports do that). Memory: one record at a time.
 *
 * Not for type conversion or header handling: see `readers/table.ts`.
 *
 * @module
 */

import { inputError } from "../errors.ts";
import type { Line } from "../io/lines.ts";

const QUOTE = 0x22;

/** Options of {@linkcode parseCsv}. */
export interface CsvOptions {
  /** The field separator: `,` or a tab, or any other string. Default `,`. */
  delimiter?: string;
  /** Whether `"` quotes fields (RFC 4180). False for formats without quoting (RecBole). Default true. */
  quoting?: boolean;
  /** The file's name in error messages. Default `input`. */
  label?: string;
}

/** One record: its fields and the line it starts on (1-based). */
export interface CsvRow {
  line: number;
  fields: string[];
}

/**
 * Yields the records of a CSV text given as lines. Blank lines between records are skipped. An
 * unterminated quote or a character after a closing quote is an InputError naming the line.
 *
 * @example
 * ```ts
 * import { readLines } from "../io/lines.ts";
 *
 * for await (const { line, fields } of parseCsv(readLines("items.csv"), { label: "items.csv" })) {
 *   console.log(line, fields);
 * }
 * ```
 */
export async function* parseCsv(
  lines: AsyncIterable<Line>,
  options: CsvOptions = {},
): AsyncGenerator<CsvRow> {
  const delimiter = options.delimiter ?? ",";
  const quoting = options.quoting ?? true;
  const label = options.label ?? "input";
  let fields: string[] = [];
  let field = "";
  let inQuotes = false;
  let start = 0;
  let opened = 0; // the line the current quoted field opened on
  for await (const { number, text } of lines) {
    let i = 0;
    if (inQuotes) {
      field += "\n";
    } else {
      if (text === "") continue;
      start = number;
      if (!quoting || text.indexOf('"') === -1) {
        yield { line: number, fields: text.split(delimiter) };
        continue;
      }
      fields = [];
    }
    const n = text.length;
    for (;;) {
      if (inQuotes) {
        const q = text.indexOf('"', i);
        if (q === -1) {
          field += text.slice(i);
          break; // the quoted field goes on on the next line
        }
        field += text.slice(i, q);
        if (text.charCodeAt(q + 1) === QUOTE) {
          field += '"';
          i = q + 2;
          continue;
        }
        inQuotes = false;
        fields.push(field);
        field = "";
        i = q + 1;
        if (i === n) {
          yield { line: start, fields };
          break;
        }
        if (!text.startsWith(delimiter, i)) {
          // A stray quote that opened lines before is the likelier culprit: name its line.
          const where = opened !== number
            ? ` (the quoted field opened on line ${opened}: a quote there that was meant ` +
              `literally swallowed the lines between)`
            : "";
          throw inputError(
            label,
            number,
            `unexpected character ${JSON.stringify(text[i])} after a closing quote${where}`,
          );
        }
        i += delimiter.length;
        continue;
      }
      if (i < n && text.charCodeAt(i) === QUOTE) {
        inQuotes = true;
        opened = number;
        i++;
        continue;
      }
      const d = text.indexOf(delimiter, i);
      if (d === -1) {
        fields.push(text.slice(i));
        yield { line: start, fields };
        break;
      }
      fields.push(text.slice(i, d));
      i = d + delimiter.length;
    }
  }
  if (inQuotes) {
    throw inputError(label, opened, "quoted field is never closed (missing closing quote)");
  }
}

/** One CSV line for `fields` (no line break): fields with a delimiter, quote or break are quoted. */
export function formatCsvRow(fields: readonly (string | number)[], delimiter = ","): string {
  return fields.map((value) => {
    const text = String(value);
    if (text.includes(delimiter) || /["\r\n]/.test(text)) return `"${text.replaceAll('"', '""')}"`;
    return text;
  }).join(delimiter);
}

/**
 * The delimiter a file name suggests: tab for `.tsv`/`.tab` (also gzipped), else a comma.
 *
 * @example
 * ```ts
 * delimiterFor("ratings.tsv.gz"); // "\t"
 * ```
 */
export function delimiterFor(path: string): string {
  const name = path.toLowerCase().replace(/\.gz$/, "");
  return name.endsWith(".tsv") || name.endsWith(".tab") ? "\t" : ",";
}
