/**
 * Task weights: how many records of each task an epoch holds (`pretrain --task-weights`), and
 * that a record repeated within an epoch is masked anew each time.
 */

import assert from "node:assert/strict";
import { tokenizeSplit } from "../lib/train/data.ts";
import { BatchStream, epochRecords } from "../lib/train/data.ts";
import { openDataset } from "../lib/data/dataset.ts";
import { Rng } from "../lib/random.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { demoDataset, smallConfig, TOKENIZER, writeSmallModel } from "./helpers/train.ts";
import { join } from "node:path";
import { OptionError } from "../lib/errors.ts";
import { train } from "../lib/train/trainer.ts";
import { settingsDiffer } from "../lib/train/checkpoint.ts";
import { withTempDir } from "./helpers/temp.ts";

Deno.test("epochRecords: whole weights repeat every record, fractions draw that share anew", () => {
  const tasks = [...Array(10).fill("profile"), ...Array(40).fill("sequential")];
  assert.deepEqual([...epochRecords(tasks, undefined, new Rng(1))], tasks.map((_, i) => i));
  const counts = (xs: Int32Array) => {
    const c = new Map<number, number>();
    for (const x of xs) c.set(x, (c.get(x) ?? 0) + 1);
    return c;
  };
  const a = epochRecords(tasks, { profile: 3, sequential: 0.25 }, new Rng(1));
  const b = epochRecords(tasks, { profile: 3, sequential: 0.25 }, new Rng(2));
  assert.equal(a.length, 30 + 10);
  for (let i = 0; i < 10; i++) assert.equal(counts(a).get(i), 3, `profile record ${i}`);
  const drawn = (xs: Int32Array) => [...xs].filter((i) => i >= 10).sort((x, y) => x - y);
  assert.equal(new Set(drawn(a)).size, 10, "a fraction draws distinct records");
  assert.notDeepEqual(drawn(a), drawn(b), "and other ones in another epoch");
  // A weight of 0 leaves a task out; a task not named keeps weight 1.
  const c = epochRecords(tasks, { sequential: 0 }, new Rng(1));
  assert.deepEqual([...c].sort((x, y) => x - y), Array.from({ length: 10 }, (_, i) => i));
  assert.equal(epochRecords(tasks, { profile: 2 }, new Rng(1)).length, 20 + 40);
});

Deno.test("BatchStream with task weights: the epoch's size follows them; repeats are masked anew", async () => {
  const tokenizer = await TextTokenizer.load(TOKENIZER);
  const records = await tokenizeSplit(await openDataset(await demoDataset()), "train", tokenizer);
  const profiles = records.filter((r) => r.task === "profile").length;
  assert.ok(profiles > 0 && profiles < records.length);
  const options = { batchSize: 4, seed: 5, collator: { objective: "entity" as const } };
  const plain = new BatchStream(records, tokenizer.special, options);
  const weighted = new BatchStream(records, tokenizer.special, {
    ...options,
    taskWeights: { profile: 2 },
  });
  assert.equal(plain.perEpoch, Math.ceil(records.length / 4));
  assert.equal(weighted.perEpoch, Math.ceil((records.length + profiles) / 4));
  // Over an epoch of profile documents alone at weight 2, each shows up twice, masked anew:
  // the same tokens (parts A and B together, without the special tokens), other rows.
  const docs = records.filter((r) => r.task === "profile");
  const twice = new BatchStream(docs, tokenizer.special, {
    ...options,
    taskWeights: { profile: 2 },
  });
  const specials = new Set(Object.values(tokenizer.special));
  const rowsByDoc = new Map<string, string[]>();
  for (let m = 0; m < twice.perEpoch; m++) {
    const batch = twice.batch(m);
    for (let b = 0; b < batch.batchSize; b++) {
      const row = [...batch.inputIds.subarray(b * batch.length, (b + 1) * batch.length)];
      const key = row.filter((t) => !specials.has(t)).sort((x, y) => x - y).join(",");
      rowsByDoc.set(key, [...(rowsByDoc.get(key) ?? []), row.join(",")]);
    }
  }
  const copies = [...rowsByDoc.values()];
  assert.equal(copies.reduce((n, rows) => n + rows.length, 0), 2 * docs.length);
  const anew = copies.filter((rows) => rows.length === 2 && rows[0] !== rows[1]).length;
  assert.ok(anew > 0.8 * docs.length, `${anew} of ${docs.length} documents masked anew`);
  assert.throws(
    () => new BatchStream(records, tokenizer.special, { ...options, taskWeights: { profile: -1 } }),
    /task weight of profile must be a number >= 0/,
  );
});

Deno.test("epochRecords takes tasks of more records than a call takes arguments", () => {
  const tasks = Array(300_000).fill("sequential");
  const out = epochRecords(tasks, { sequential: 1.5 }, new Rng(3));
  assert.equal(out.length, 450_000);
  assert.equal(out[299_999], 299_999);
});

Deno.test("task weights that leave no training record are an option error, not a crash", async () => {
  await withTempDir(async (dir) => {
    await writeSmallModel(join(dir, "base"), await smallConfig());
    const data = await demoDataset();
    const tasks = new Set(
      (await Deno.readTextFile(join(data, "train.jsonl"))).split("\n").filter((l) => l !== "")
        .map((l) => JSON.parse(l).task as string),
    );
    const zero = Object.fromEntries([...tasks].map((t) => [t, 0]));
    await assert.rejects(
      () =>
        train({
          data,
          model: join(dir, "base"),
          out: join(dir, "run"),
          lora: null,
          steps: 1,
          valBatches: 0,
          taskWeights: zero,
        }),
      (e: unknown) =>
        e instanceof OptionError && /leave no training record/.test(e.describe("--task-weights")),
    );
  });
});

Deno.test("resume compares settings whatever the order of an object's keys, not of a list's", () => {
  const saved = { taskWeights: { profile: 2, sequential: 1 }, targets: ["q", "v"] };
  assert.equal(
    settingsDiffer(saved, { taskWeights: { sequential: 1, profile: 2 }, targets: ["q", "v"] }),
    undefined,
  );
  assert.equal(
    settingsDiffer(saved, { taskWeights: { sequential: 1, profile: 3 }, targets: ["q", "v"] }),
    `taskWeights: {"profile":2,"sequential":1} -> {"profile":3,"sequential":1}`,
  );
  assert.match(
    settingsDiffer(saved, { ...saved, targets: ["v", "q"] }) ?? "",
    /^targets: \["q","v"\] -> \["v","q"\]$/,
  );
});
