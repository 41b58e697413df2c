/**
 * One name per concept across the commands: `--tasks`, `--top-k`, `--quiet` and `--device`
 * wherever they apply, old spellings read with a one-line notice, "did you mean" for an unknown
 * flag, and a one-line JSON summary on stdout from the commands that write files.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { closestFlag, defineFlags, parseFlags } from "../lib/cli/flags.ts";
import { UsageError } from "../lib/errors.ts";
import { runCli } from "./helpers/cli.ts";
import { TINY, tinyWeights, writeModelDir } from "./helpers/infer.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

const DATA = fileURLToPath(new URL("../fixtures/eval/tiny", import.meta.url));

/** The flags a command's --help lists. */
async function flagsOf(command: string): Promise<Set<string>> {
  const help = await runCli([command, "--help"]);
  assert.equal(help.code, 0, help.stderr);
  return new Set([...help.stdout.matchAll(/^ {2}--([a-z0-9-]+)/gm)].map((m) => m[1]));
}

Deno.test("--tasks, --top-k, --quiet and --device are spelled the same in every command", async () => {
  const where: Record<string, string[]> = {
    tasks: ["textualize", "infer", "eval"],
    "top-k": ["infer", "eval"],
    quiet: [
      "textualize",
      "collate",
      "init",
      "forward",
      "pretrain",
      "infer",
      "eval",
      "merge",
      "demo",
    ],
    device: ["forward", "pretrain", "infer", "eval", "demo"],
  };
  const old = ["task", "top", "topk", "k-top", "silent", "no-progress", "provider"];
  for (const [flag, commands] of Object.entries(where)) {
    for (const command of commands) {
      const flags = await flagsOf(command);
      assert.ok(flags.has(flag), `${command} --${flag}`);
      for (const name of old) assert.ok(!flags.has(name), `${command} lists --${name}`);
    }
  }
});

Deno.test("an old spelling still works with a one-line notice; given with the new one, once", () => {
  const table = defineFlags({
    tasks: { type: "list", aliases: ["task"], help: "tasks" },
    "top-k": { type: "int", default: 10, aliases: ["top"], help: "items" },
  });
  const notices: string[] = [];
  const onNotice = (m: string) => notices.push(m);
  const parsed = parseFlags("cmd", ["--task", "a,b", "--top", "5"], table, { onNotice });
  assert.deepEqual(parsed.values.tasks, ["a", "b"]);
  assert.equal(parsed.values["top-k"], 5);
  assert.ok(parsed.given.has("tasks") && parsed.given.has("top-k"));
  assert.deepEqual(notices, [
    "cmd: --task is now --tasks (the old name still works)",
    "cmd: --top is now --top-k (the old name still works)",
  ]);
  assert.throws(
    () => parseFlags("cmd", ["--top", "5", "--top-k", "6"], table, { onNotice }),
    (e) => e instanceof UsageError && /give --top-k once \(--top is its old name\)/.test(e.message),
  );
});

Deno.test("an unknown flag gets the nearest flag as 'did you mean'", async () => {
  const table = defineFlags({
    "top-k": { type: "int", help: "items" },
    tasks: { type: "list", help: "tasks" },
    "max-new-tokens": { type: "int", help: "tokens" },
  });
  assert.equal(closestFlag("topk", table), "top-k");
  assert.equal(closestFlag("task", table), "tasks");
  assert.equal(closestFlag("max-new-token", table), "max-new-tokens");
  assert.equal(closestFlag("zebra", table), undefined);
  const typo = await runCli(["infer", "--model", "m", "--data", "d", "--out", "o", "--tpo-k", "3"]);
  assert.equal(typo.code, 2);
  assert.equal(
    typo.stderr,
    "error: infer: unknown flag --tpo-k; did you mean --top-k? (see infer --help)",
  );
  const far = await runCli(["eval", "--zebra"]);
  assert.match(far.stderr, /^error: eval: unknown flag --zebra \(see eval --help\)$/);
});

Deno.test("a flag without its value says what value it needs", async () => {
  const bare = await runCli(["infer", "--data", "d", "--out", "o", "--model"]);
  assert.equal(bare.code, 2);
  assert.equal(bare.stderr, "error: infer: --model needs a value (--model DIR; see infer --help)");
});

Deno.test("infer prints a one-line JSON summary; --task and eval --top still read, with a notice", async () => {
  await withTempDir(async (dir) => {
    const model = join(dir, "model");
    await writeModelDir(model, TINY, tinyWeights(TINY, 3));
    const out = join(dir, "pred.jsonl");
    const infer = await runCli([
      "infer",
      ...["--model", model, "--data", DATA, "--out", out, "--task", "rating", "--quiet"],
      ...["--device", "cpu"],
    ]);
    assert.equal(infer.code, 0, infer.stderr);
    assert.equal(infer.stderr, "infer: --task is now --tasks (the old name still works)");
    const lines = infer.stdout.split("\n");
    assert.equal(lines.length, 1, infer.stdout);
    const summary = JSON.parse(lines[0]);
    assert.equal(summary.out, out);
    assert.equal(summary.records, 4); // the tiny fixture's rating records of the test split
    assert.deepEqual(summary.tasks, ["rating"]);
    assert.equal(summary.device, "cpu");

    const scored = await runCli([
      "eval",
      "--data",
      DATA,
      "--baseline",
      "pop",
      "--top",
      "7",
      "--quiet",
    ]);
    assert.equal(scored.code, 0, scored.stderr);
    assert.match(scored.stderr, /eval: --top is now --top-k/);
    assert.deepEqual(Object.keys(JSON.parse(scored.stdout).methods), ["pop"]);
  });
});

Deno.test("eval --device reaches SASRec's training session", async () => {
  const run = await runCli([
    "eval",
    ...["--data", DATA, "--baseline", "sasrec", "--tasks", "sequential", "--quiet"],
    ...["--sasrec-epochs", "1", "--sasrec-hidden", "8", "--device", "cuda"],
  ]);
  if (run.code === 0) {
    console.log("  CUDA works here: nothing to refuse");
    return;
  }
  assert.equal(run.code, 1, run.stderr);
  assert.match(run.stderr, /device cuda cannot be used/);
});
