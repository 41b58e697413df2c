/** The streaming RFC 4180 parser behind the csv and recbole readers, and its row writer. */

import assert from "node:assert/strict";
import { delimiterFor, formatCsvRow, parseCsv } from "../lib/data/csv.ts";
import { InputError } from "../lib/errors.ts";
import type { Line } from "../lib/io/lines.ts";

async function* linesOf(text: string): AsyncGenerator<Line> {
  const parts = text.split("\n");
  if (parts[parts.length - 1] === "") parts.pop();
  for (let i = 0; i < parts.length; i++) yield { number: i + 1, text: parts[i] };
}

async function parse(text: string, options = {}) {
  const rows = [];
  for await (const row of parseCsv(linesOf(text), { label: "t.csv", ...options })) rows.push(row);
  return rows;
}

Deno.test("quoted fields keep delimiters, doubled quotes and line breaks", async () => {
  const rows = await parse('a,b,c\n1,"x, y","say ""hi"""\n2,"two\nlines",\n');
  assert.deepEqual(rows, [
    { line: 1, fields: ["a", "b", "c"] },
    { line: 2, fields: ["1", "x, y", 'say "hi"'] },
    { line: 3, fields: ["2", "two\nlines", ""] },
  ]);
});

Deno.test("empty fields, empty quoted fields and blank lines between records", async () => {
  const rows = await parse(',,\n"",x,""\n\n"a"\n');
  assert.deepEqual(rows.map((r) => r.fields), [["", "", ""], ["", "x", ""], ["a"]]);
  assert.deepEqual(rows.map((r) => r.line), [1, 2, 4]);
});

Deno.test("a quote inside an unquoted field is taken literally", async () => {
  const rows = await parse('12" ruler,ok\n');
  assert.deepEqual(rows[0].fields, ['12" ruler', "ok"]);
});

Deno.test("tabs as delimiter, and no quoting for RecBole files", async () => {
  const rows = await parse('a\t"b"\tc\n', { delimiter: "\t", quoting: false });
  assert.deepEqual(rows[0].fields, ["a", '"b"', "c"]);
  const quoted = await parse('a\t"b\tc"\n', { delimiter: "\t" });
  assert.deepEqual(quoted[0].fields, ["a", "b\tc"]);
});

Deno.test("an unterminated quote names the line where the field opened", async () => {
  await assert.rejects(
    () => parse('a,b\n1,"open\nstill open\n'),
    (e: Error) =>
      e instanceof InputError &&
      e.message === "t.csv line 2: quoted field is never closed (missing closing quote)",
  );
});

Deno.test("text after a closing quote is a malformed row", async () => {
  await assert.rejects(
    () => parse('a,b\n"x"y,2\n'),
    (e: Error) =>
      e instanceof InputError && /^t\.csv line 2: unexpected character "y"/.test(e.message),
  ); // A stray quote lines before (an unquoted TSV with 12" in a title) swallowed the lines between:
  // the message names where it opened.
  await assert.rejects(
    () => parse('id\ttitle\na\t"Deluxe ruler\nb\tB\nc\tC "x"\td\n', { delimiter: "\t" }),
    (e: Error) =>
      e instanceof InputError &&
      /^t\.csv line 4: unexpected character "x" after a closing quote \(the quoted field opened on line 2: /
        .test(e.message),
  );
});

Deno.test("formatCsvRow quotes only what needs quoting and round-trips", async () => {
  const fields = ["plain", "with, comma", 'a "quote"', "two\nlines", 7];
  const line = formatCsvRow(fields);
  assert.equal(line, 'plain,"with, comma","a ""quote""","two\nlines",7');
  const rows = await parse(line + "\n");
  assert.deepEqual(rows[0].fields, fields.map(String));
});

Deno.test("the delimiter follows the file name", () => {
  assert.equal(delimiterFor("x/ratings.tsv"), "\t");
  assert.equal(delimiterFor("ratings.TSV.gz"), "\t");
  assert.equal(delimiterFor("ratings.csv"), ",");
  assert.equal(delimiterFor("ratings.txt"), ",");
});
