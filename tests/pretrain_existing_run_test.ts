/**
 * `pretrain --out` on a directory that holds a training run, without `--resume`, is refused at
 * once, before the base model loads and the dataset is tokenized (minutes on a large dataset),
 * and the run is left as it was.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runCliProcess } from "./helpers/cli.ts";
import { TINY, tinyWeights, writeModelDir } from "./helpers/infer.ts";
import { withTempDir } from "./helpers/temp.ts";

// fixtures/eval/tiny: 5 users, 8 items; train, valid and test splits of text records.
const DATA = fileURLToPath(new URL("../fixtures/eval/tiny", import.meta.url));

Deno.test("pretrain into a directory holding a run is refused before it reads the data", async () => {
  await withTempDir(async (dir) => {
    await writeModelDir(join(dir, "model"), TINY, tinyWeights(TINY, 3));
    const data = join(dir, "data");
    await Deno.mkdir(data);
    for await (const entry of Deno.readDir(DATA)) {
      await Deno.copyFile(join(DATA, entry.name), join(data, entry.name));
    }
    const out = join(dir, "run");
    const args = [
      ...["pretrain", "--quiet", "--device", "cpu", "--steps", "1", "--batch-size", "2"],
      ...["--model", join(dir, "model"), "--data", data, "--out", out],
    ];
    const first = await runCliProcess(args);
    assert.equal(first.code, 0, first.stderr);
    const before = await Deno.readFile(join(out, "checkpoint.safetensors"));
    // Records the run would only reject once it tokenized them: the refusal comes first.
    const train = join(data, "train.jsonl");
    await Deno.writeTextFile(train, "not json\n" + await Deno.readTextFile(train));
    const again = await runCliProcess(args);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /^error: .*run already holds a training run .*--resume/);
    assert.equal(again.stderr.trim().split("\n").length, 1, again.stderr);
    assert.deepEqual(await Deno.readFile(join(out, "checkpoint.safetensors")), before);
  });
});
