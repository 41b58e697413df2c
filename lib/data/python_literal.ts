/**
 * Reading one Python literal (what `repr` writes for dicts, lists, tuples, strings, numbers,
 * `True`, `False` and `None`), as Amazon's 2014 metadata files hold them: one dict a line,
 * `{'asin': '0000031852', 'title': 'Girls Ballet Tutu', 'price': 3.17, ...}`, meant to be read
 * with Python's `eval`, which is not JSON (single quotes, `True`, tuples). Nothing is evaluated:
 * anything outside the literal grammar is a SyntaxError naming the column.
 *
 * @module
 */

/**
 * The value of the Python literal `text`: dicts become objects, lists and tuples arrays, `None`
 * null. A SyntaxError (with the 1-based column) for anything else.
 *
 * @example
 * ```ts
 * parsePythonLiteral("{'asin': 'B0001', 'title': \"Kid's Tutu\", 'sizes': (1, 2), 'new': True}");
 * // { asin: "B0001", title: "Kid's Tutu", sizes: [1, 2], new: true }
 * ```
 */
export function parsePythonLiteral(text: string): unknown {
  const parser = new Parser(text);
  const value = parser.value();
  parser.space();
  if (parser.at < text.length) parser.fail("unexpected text after the value");
  return value;
}

const CLOSING: Record<string, string> = { "[": "]", "(": ")" };
const ESCAPES: Record<string, string> = {
  "\\": "\\",
  "'": "'",
  '"': '"',
  n: "\n",
  r: "\r",
  t: "\t",
  a: "\x07",
  b: "\b",
  f: "\f",
  v: "\v",
  "\n": "",
};
const NUMBER = /-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/y;
const WORDS: Record<string, unknown> = { True: true, False: false, None: null };

class Parser {
  at = 0;
  constructor(readonly text: string) {}

  fail(what: string): never {
    throw new SyntaxError(`${what} at column ${this.at + 1}`);
  }

  space(): void {
    while (this.at < this.text.length && /\s/.test(this.text[this.at])) this.at++;
  }

  value(): unknown {
    this.space();
    const c = this.text[this.at];
    if (c === "{") return this.dict();
    if (c === "[" || c === "(") return this.sequence(CLOSING[c]);
    if (c === "'" || c === '"') return this.string();
    if ((c === "u" || c === "U") && /['"]/.test(this.text[this.at + 1] ?? "")) {
      this.at++;
      return this.string();
    }
    for (const [word, value] of Object.entries(WORDS)) {
      if (
        this.text.startsWith(word, this.at) && !/\w/.test(this.text[this.at + word.length] ?? "")
      ) {
        this.at += word.length;
        return value;
      }
    }
    NUMBER.lastIndex = this.at;
    const number = NUMBER.exec(this.text);
    if (number) {
      this.at += number[0].length;
      return Number(number[0]);
    }
    return this.fail(c === undefined ? "unexpected end" : `unexpected ${JSON.stringify(c)}`);
  }

  /** Items up to `close`, separated by commas, a trailing comma allowed. */
  items(close: string, item: () => void): void {
    this.at++; // the opening bracket
    for (;;) {
      this.space();
      if (this.text[this.at] === close) break;
      item();
      this.space();
      if (this.text[this.at] === ",") this.at++;
      else if (this.text[this.at] !== close) this.fail(`expected "," or "${close}"`);
    }
    this.at++;
  }

  dict(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    this.items("}", () => {
      const key = this.value();
      this.space();
      if (this.text[this.at] !== ":") this.fail('expected ":"');
      this.at++;
      out[String(key)] = this.value();
    });
    return out;
  }

  sequence(close: string): unknown[] {
    const out: unknown[] = [];
    this.items(close, () => out.push(this.value()));
    return out;
  }

  string(): string {
    const quote = this.text[this.at++];
    let out = "";
    for (;;) {
      const c = this.text[this.at++];
      if (c === undefined) this.fail("unterminated string");
      if (c === quote) return out;
      if (c !== "\\") {
        out += c;
        continue;
      }
      const e = this.text[this.at++];
      if (e === undefined) this.fail("unterminated string");
      if (e in ESCAPES) out += ESCAPES[e];
      else if (e === "x" || e === "u" || e === "U") {
        const size = e === "x" ? 2 : e === "u" ? 4 : 8;
        const hex = this.text.slice(this.at, this.at + size);
        if (!new RegExp(`^[0-9a-fA-F]{${size}}$`).test(hex)) this.fail(`bad \\${e} escape`);
        out += String.fromCodePoint(parseInt(hex, 16));
        this.at += size;
      } else if (/[0-7]/.test(e)) {
        const octal = /^[0-7]{1,3}/.exec(this.text.slice(this.at - 1))![0];
        out += String.fromCharCode(parseInt(octal, 8));
        this.at += octal.length - 1;
      } else out += "\\" + e; // Python keeps an unknown escape as written
    }
  }
}
