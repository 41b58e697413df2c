/**
 * The flag tables of lib/cli/flags.ts: typed values and defaults, one-line errors that name the
 * flag, the --help section derived from the same table, and library option errors re-worded with
 * flag names.
 */

import assert from "node:assert/strict";
import { defineFlags, formatFlags, parseFlags, withFlagNames } from "../lib/cli/flags.ts";
import { OptionError, UsageError } from "../lib/errors.ts";
import { DEFAULT_PREDICT } from "../lib/generate/infer.ts";
import { DEFAULT_ADAMW } from "../lib/train/train_graph.ts";
import { runCli } from "./helpers/cli.ts";

const FLAGS = defineFlags({
  data: { type: "string", placeholder: "DIR", required: true, help: "dataset directory" },
  out: { type: "string", placeholder: "DIR", help: "output directory" },
  steps: { type: "int", min: 1, default: 100, help: "optimizer steps" },
  limit: { type: "int", min: 1, max: 50, defaultText: "all", help: "records to read" },
  lr: { type: "number", above: 0, max: 10, default: 2e-4, help: "peak learning rate" },
  tasks: { type: "list", choices: ["rating", "review"], items: "tasks", help: "tasks to run" },
  k: { type: "intList", min: 1, default: [1, 5, 10], help: "cut-offs (0: never)" },
  format: { type: "choice", choices: ["json", "md"], default: "json", help: "output format" },
  name: { type: "string", multiple: true, section: "Naming", help: "method names" },
  quiet: { type: "boolean", help: "no progress on stderr" },
});

const parse = (...args: string[]) => parseFlags("cmd", args, FLAGS);

function usageError(args: string[], message: RegExp) {
  assert.throws(
    () => parse(...args),
    (e) => e instanceof UsageError && message.test(e.message) && !e.message.includes("\n"),
    `${args.join(" ")}`,
  );
}

Deno.test("values are typed, defaults filled in, and absent flags without one undefined", () => {
  const { values, given } = parse("--data", "d", "--k", "1, 20", "--name", "a", "--name", "b");
  assert.deepEqual(values, {
    data: "d",
    out: undefined,
    steps: 100,
    limit: undefined,
    lr: 2e-4,
    tasks: undefined,
    k: [1, 20],
    format: "json",
    name: ["a", "b"],
    quiet: false,
  });
  assert.deepEqual([...given].sort(), ["data", "k", "name"]);
  const all = parse(
    "--data=d",
    "--steps=7",
    "--limit=50",
    "--lr=1e-3",
    "--tasks=review",
    "--format=md",
    "--quiet",
  ).values;
  assert.deepEqual(
    [all.steps, all.limit, all.lr, all.tasks, all.format, all.quiet],
    [7, 50, 1e-3, ["review"], "md", true],
  );
  // A flag of one value given twice: the last counts (a script's defaults, then an override).
  assert.equal(parse("--data", "d", "--steps", "1", "--steps", "2").values.steps, 2);
  assert.deepEqual(parse("--data", "d", "--k", "1", "--k=5").values.k, [5]);
  // A default array is a copy: changing one parse's value leaves the table as it was.
  parse("--data", "d").values.k.push(99);
  assert.deepEqual(parse("--data", "d").values.k, [1, 5, 10]);
});

Deno.test("every mistake is one line that names the flag", () => {
  usageError([], /^cmd: --data is required$/);
  usageError(["--data", ""], /^cmd: --data is required$/);
  usageError(["--data", "d", "--bogus"], /^cmd: .*--bogus.*\(see cmd --help\)$/);
  usageError(["--data", "d", "stray"], /^cmd: unexpected argument "stray"/);
  usageError(["--data", "d", "--steps", "1.5"], /^--steps must be an integer, got "1.5"$/);
  usageError(["--data", "d", "--steps", "0"], /^--steps must be at least 1, got 0$/);
  usageError(["--data", "d", "--limit", "51"], /^--limit must be in 1..50, got 51$/);
  usageError(["--data", "d", "--lr", "x"], /^--lr must be a number, got "x"$/);
  usageError(["--data", "d", "--lr", "0"], /^--lr must be greater than 0 and at most 10, got 0$/);
  usageError(["--data", "d", "--tasks", ","], /^--tasks must list at least one value$/);
  usageError(["--data", "d", "--tasks", "poetry"], /^--tasks must list tasks of rating, review/);
  usageError(["--data", "d", "--k", "1,0"], /^--k must list positive integers, got "0"$/);
  usageError(["--data", "d", "--format", "csv"], /^--format must be one of json, md, got "csv"$/);
  // An empty value (an unset variable) meant the current directory; a value left out before the
  // next flag was "ambiguous".
  usageError(
    ["--data", "d", "--out", ""],
    /^cmd: --out needs a value \(--out DIR; see cmd --help\)$/,
  );
  usageError(["--data", "d", "--out="], /^cmd: --out needs a value/);
  usageError(
    ["--data", "d", "--out", "--steps", "3"],
    /^cmd: --out needs a value \(--out DIR, or --out=-VALUE for a value starting with -; see/,
  );
  usageError(
    ["--data", "d", "--steps"],
    /^cmd: --steps needs a value \(--steps N; see cmd --help\)$/,
  );
});

Deno.test("the --help section comes from the same table: placeholders, defaults, sections", () => {
  const text = formatFlags(FLAGS, { width: 100 });
  const lines = text.split("\n");
  assert.equal(lines[0], "Flags:");
  // The help column is two spaces past the longest flag and placeholder (`--format NAME`).
  assert.equal(lines[1], "  --data DIR     dataset directory");
  assert.ok(lines.includes("  --steps N      optimizer steps (default 100)"), text);
  assert.ok(lines.includes("  --limit N      records to read (default: all)"), text);
  assert.ok(lines.includes("  --lr X         peak learning rate (default 2e-4)"), text);
  assert.ok(lines.includes("  --k LIST       cut-offs (0: never; default 1,5,10)"), text);
  assert.ok(lines.includes("Naming:"), text);
  assert.ok(lines.includes("  --quiet        no progress on stderr"), text);
  // Long help wraps under its column, never past the width.
  const narrow = formatFlags(FLAGS, { width: 50 }).split("\n");
  assert.ok(narrow.every((l) => l.length <= 50), narrow.join("\n"));
  assert.ok(narrow.some((l) => l.startsWith(" ".repeat(17)) && l.trim() !== ""));
});

Deno.test("a library's OptionError reaches the user with the flag's name", async () => {
  const table = defineFlags({ "max-length": { type: "int", help: "longest example" } });
  const fail = (option: string) => () =>
    Promise.reject(new OptionError(option, (name) => `${name} must be at most 512, got 600`));
  await assert.rejects(
    () => withFlagNames(table, fail("maxLength")),
    (e) =>
      e instanceof UsageError && !(e instanceof OptionError) &&
      e.message === "--max-length must be at most 512, got 600",
  );
  // An option no flag of the table sets keeps its library name.
  await assert.rejects(
    () => withFlagNames(table, fail("tokensPerRun")),
    (e) => e instanceof OptionError && e.message === "tokensPerRun must be at most 512, got 600",
  );
  assert.equal(await withFlagNames(table, () => Promise.resolve(7)), 7);
});

Deno.test("a command's --help states a library's default from the library's constant", async () => {
  const pretrain = (await runCli(["pretrain", "--help"])).stdout;
  assert.match(
    pretrain,
    new RegExp(`--weight-decay X +.*\\(default ${DEFAULT_ADAMW.weightDecay}\\)`),
  );
  const infer = (await runCli(["infer", "--help"])).stdout;
  // --beams defaults to the library's constant, raised to --top-k when that is larger.
  assert.match(infer, new RegExp(`--beams N +.*\\(default: ${DEFAULT_PREDICT.beams}, or --top-k`));
});

Deno.test("--help names a section once, however many of its flags carry it", () => {
  const text = formatFlags(defineFlags({
    seed: { type: "int", default: 0, help: "random seed" },
    data: { type: "string", section: "Data", help: "dataset" },
    split: { type: "string", section: "Data", help: "split" },
    steps: { type: "int", help: "steps" },
    lr: { type: "number", section: "Run", help: "learning rate" },
  }));
  assert.deepEqual(text.split("\n").filter((l) => l.endsWith(":")), ["Flags:", "Data:", "Run:"]);
});
