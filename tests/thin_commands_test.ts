// Commands map flags to library calls: no command file grows past 300 lines (the run belongs in
// lib/), and no string of lib/ spells a command-line flag: a library names its options and the
// command words them as flags (OptionError, worded(), withFlagNames in lib/cli/flags.ts).

import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { tsFiles } from "./helpers/source_files.ts";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const LIB = join(ROOT, "lib");

/** The most lines a command file may have. */
const MAX_COMMAND_LINES = 300;

/**
 * Where lib/ may spell a flag, and why: the flag parser itself, the demo (whose plan is command
 * lines), flags of other programs (srun), and a run identity recorded in sidecar files (what
 * `merge` compares; rewording it would refuse the parts of runs already written).
 */
const ALLOWED: { file: RegExp; flag?: RegExp; why: string }[] = [
  { file: /^lib\/cli\//, why: "the command-line flag parser" },
  { file: /^lib\/demo\/plan\.ts$/, why: "the demo's stages are command lines" },
  { file: /^lib\/parallel\//, flag: /^--mpi$/, why: "srun's flag, not ours" },
  {
    file: /^lib\/shard\/identity\.ts$/,
    flag: /^--save-baselines$/,
    why: "recorded in sidecars",
  },
];

/**
 * The string literals of TypeScript `source` (a template literal in parts: each part before an
 * expression ends with `${`), each with its line; comments and regular expressions are skipped.
 */
export function stringsOf(source: string): { text: string; line: number }[] {
  const out: { text: string; line: number }[] = [];
  let i = 0;
  let line = 1;
  // The brace depth of each `${` open inside a template, innermost last.
  const templates: number[] = [];
  let depth = 0;
  let last = ""; // the last significant character of code, to tell a regex from a division
  const advance = (n = 1) => {
    for (let k = 0; k < n; k++) if (source[i++] === "\n") line++;
  };
  const readTemplate = () => {
    // At the character after ` or after the } closing an expression.
    const start = line;
    let text = "";
    while (i < source.length) {
      const c = source[i];
      if (c === "\\") {
        text += source.slice(i, i + 2);
        advance(2);
      } else if (c === "`") {
        advance();
        out.push({ text, line: start });
        return;
      } else if (c === "$" && source[i + 1] === "{") {
        advance(2);
        out.push({ text: text + "${", line: start });
        templates.push(depth);
        depth++;
        return;
      } else {
        text += c;
        advance();
      }
    }
  };
  while (i < source.length) {
    const c = source[i];
    const next = source[i + 1];
    if (c === "/" && next === "/") {
      while (i < source.length && source[i] !== "\n") advance();
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      advance((end < 0 ? source.length : end + 2) - i);
    } else if (c === '"' || c === "'") {
      const start = line;
      advance();
      let text = "";
      while (i < source.length && source[i] !== c) {
        if (source[i] === "\\") {
          text += source.slice(i, i + 2);
          advance(2);
        } else {
          text += source[i];
          advance();
        }
      }
      advance();
      out.push({ text, line: start });
      last = c;
    } else if (c === "`") {
      advance();
      readTemplate();
      last = "`";
    } else if (c === "/" && (last === "" || "(,=:[!&|?{};+-*%<>~^".includes(last))) {
      // A regular expression literal: to its closing slash (not inside a class).
      advance();
      let inClass = false;
      while (i < source.length && (inClass || source[i] !== "/")) {
        if (source[i] === "\\") advance();
        else if (source[i] === "[") inClass = true;
        else if (source[i] === "]") inClass = false;
        advance();
      }
      advance();
      last = "/";
    } else if (c === "{") {
      depth++;
      last = c;
      advance();
    } else if (c === "}") {
      depth--;
      advance();
      if (templates.length > 0 && templates[templates.length - 1] === depth) {
        templates.pop();
        readTemplate();
        last = "`";
      } else last = c;
    } else {
      if (!/\s/.test(c)) last = /[\w$)\]]/.test(c) ? "a" : c;
      advance();
    }
  }
  return out;
}

Deno.test("the string scanner finds strings and template parts, not comments or regexes", () => {
  const found = stringsOf(
    [
      '// a comment with "--flag"',
      "/* block 'x' */ const a = \"one\" + 'two';",
      'const b = /--not-a-string\'/.test(a) ? `three ${a ? "four" : `five`} six` : 1 / 2;',
    ].join("\n"),
  ).map((s) => `${s.line}:${s.text}`);
  assert.deepEqual(found, ["2:one", "2:two", "3:three ${", "3:four", "3:five", "3: six"]);
});

Deno.test("no command file is over 300 lines: commands keep flags, wiring and progress", async () => {
  const long: string[] = [];
  for await (const file of tsFiles(join(ROOT, "commands"))) {
    const lines = (await Deno.readTextFile(file)).split("\n").length - 1;
    if (lines > MAX_COMMAND_LINES) long.push(`${relative(ROOT, file)}: ${lines} lines`);
  }
  assert.deepEqual(long, [], `commands over ${MAX_COMMAND_LINES} lines (move the run to lib/)`);
});

Deno.test("no string of lib/ spells a --flag: libraries name options, commands flags", async () => {
  const spelled: string[] = [];
  for await (const file of tsFiles(LIB)) {
    const where = relative(ROOT, file);
    for (const { text, line } of stringsOf(await Deno.readTextFile(file))) {
      // A flag, or `--${name}` (a flag whose name is computed).
      for (const match of text.matchAll(/(?:^|[^\w-])(--(?:[a-z][a-z0-9-]*|\$\{))/g)) {
        const flag = match[1];
        const allowed = ALLOWED.some((a) => a.file.test(where) && (!a.flag || a.flag.test(flag)));
        if (!allowed) spelled.push(`${where}:${line}: ${flag} in "${text.trim().slice(0, 60)}"`);
      }
    }
  }
  assert.deepEqual(spelled, [], "lib/ strings that spell flags (name the option instead)");
});

Deno.test("the command words a library's option as its flag", async () => {
  // parseShard (lib/shard) names its option; infer says --shard.
  const { code, stderr } = await runCli([
    "infer",
    "--model",
    "m",
    "--data",
    "d",
    "--out",
    "o.jsonl",
    "--shard",
    "7/7",
  ]);
  assert.equal(code, 2, stderr);
  assert.match(stderr, /^error: --shard 7\/7: the index must be in 0\.\.6$/m);
});
