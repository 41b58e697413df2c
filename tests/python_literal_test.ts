import assert from "node:assert/strict";
import { parsePythonLiteral } from "../lib/data/python_literal.ts";

Deno.test("a 2014 Amazon metadata line (a Python dict literal) reads as Python's eval reads it", () => {
  // As repr writes it: single quotes, double quotes around a title with an apostrophe, escapes,
  // nested dicts and lists, floats, and a salesRank dict.
  const line = "{'asin': '0000031852', 'title': \"Girls' Ballet Tutu \\\\ Pink\", " +
    "'price': 3.17, 'imUrl': 'http://x/y.jpg', 'related': {'also_bought': ['B1', 'B2'], " +
    "'bought_together': []}, 'salesRank': {'Sports &amp; Outdoors': 8547}, " +
    "'categories': [['Sports', 'Other Sports', 'Dance']], 'brand': 'Caf\\xe9 \\u20ac\\n', 'x': (1, -2.5e-3,), " +
    "'ok': True, 'no': False, 'none': None}";
  assert.deepEqual(parsePythonLiteral(line), {
    asin: "0000031852",
    title: "Girls' Ballet Tutu \\ Pink",
    price: 3.17,
    imUrl: "http://x/y.jpg",
    related: { also_bought: ["B1", "B2"], bought_together: [] },
    salesRank: { "Sports &amp; Outdoors": 8547 },
    categories: [["Sports", "Other Sports", "Dance"]],
    brand: "Café €\n",
    x: [1, -2.5e-3],
    ok: true,
    no: false,
    none: null,
  });
  assert.equal(parsePythonLiteral("'\\U0001f600\\'\\0'"), "😀'\0");
});

Deno.test("anything outside the literal grammar is a SyntaxError naming the column", () => {
  for (
    const [text, where] of [
      ["{'a': 1", /expected "," or "}" at column 8/],
      ["{'a' 1}", /expected ":" at column 6/],
      ["{'a': open('x')}", /unexpected "o" at column 7/],
      ["{'a': 'b}", /unterminated string/],
      ["{'a': 1} extra", /unexpected text after the value at column 10/],
      ["'\\x4'", /bad \\x escape/],
    ] as const
  ) {
    assert.throws(
      () => parsePythonLiteral(text),
      (e: Error) => e instanceof SyntaxError && where.test(e.message),
    );
  }
});
