/**
 * A malformed record of a dataset (one a user wrote or edited by hand) is a one-line error that
 * names its file and line in every command that reads it, as `collate` names it: `pretrain`
 * (training and validation records) and `infer` (the split it answers), not only the record's id.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runCliProcess } from "./helpers/cli.ts";
import { TINY, tinyWeights, writeModelDir } from "./helpers/infer.ts";
import { withTempDir } from "./helpers/temp.ts";

// fixtures/eval/tiny: 5 users, 8 items; train, valid and test splits of text records.
const DATA = fileURLToPath(new URL("../fixtures/eval/tiny", import.meta.url));

/** A copy of the tiny dataset in `dir` whose `split` has a second answer marker on line 2. */
async function brokenCopy(dir: string, split: string): Promise<{ data: string; line: number }> {
  const data = join(dir, "data");
  await Deno.mkdir(data);
  for await (const entry of Deno.readDir(DATA)) {
    await Deno.copyFile(join(DATA, entry.name), join(data, entry.name));
  }
  const path = join(data, `${split}.jsonl`);
  const lines = (await Deno.readTextFile(path)).split("\n");
  const record = JSON.parse(lines[1]);
  record.segments = [{ answer: true }, ...record.segments];
  lines[1] = JSON.stringify(record);
  await Deno.writeTextFile(path, lines.join("\n"));
  return { data, line: 2 };
}

/** Asserts a one-line error, status 1, naming `file` and `line`. */
function assertNamesLine(result: { code: number; stderr: string }, file: string, line: number) {
  assert.equal(result.code, 1, result.stderr);
  const errors = result.stderr.trim().split("\n").filter((l) => l.startsWith("error: "));
  assert.equal(errors.length, 1, result.stderr);
  assert.ok(
    errors[0].startsWith(`error: ${file} line ${line}: record `),
    `the error names ${file} line ${line}: ${errors[0]}`,
  );
  assert.match(errors[0], /more than one answer marker/);
}

Deno.test("infer names the file and line of a malformed record of the split", async () => {
  await withTempDir(async (dir) => {
    await writeModelDir(join(dir, "model"), TINY, tinyWeights(TINY, 3));
    const { data, line } = await brokenCopy(dir, "test");
    const out = join(dir, "pred.jsonl");
    const result = await runCliProcess([
      ...["infer", "--quiet", "--device", "cpu", "--workers", "1"],
      ...["--model", join(dir, "model"), "--data", data, "--out", out],
    ]);
    assertNamesLine(result, join(data, "test.jsonl"), line);
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound, "no predictions written");
  });
});

Deno.test("pretrain names the file and line of a malformed training record", async () => {
  await withTempDir(async (dir) => {
    await writeModelDir(join(dir, "model"), TINY, tinyWeights(TINY, 3));
    const { data, line } = await brokenCopy(dir, "train");
    const out = join(dir, "run");
    const result = await runCliProcess([
      ...["pretrain", "--quiet", "--device", "cpu", "--steps", "1", "--batch-size", "2"],
      ...["--model", join(dir, "model"), "--data", data, "--out", out],
    ]);
    assertNamesLine(result, join(data, "train.jsonl"), line);
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound, "no run directory left");
  });
});
