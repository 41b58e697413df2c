/**
 * Dataset-level rules of textualize (docs/method.md section 3) on the built-in demo data and the
 * hand-written fixtures: leave-one-out targets and histories, nothing held out leaking into
 * training (or the test item into validation), candidate lists, templates per split, entity
 * uniqueness, manifest counts, and byte-identical output for the same seed.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseCsv } from "../lib/data/csv.ts";
import { readLines } from "../lib/io/lines.ts";
import { runCli } from "./helpers/cli.ts";
import {
  checkDataset,
  DATASET_FILES,
  DEMO_ARGS,
  fixture,
  GOLDEN_CASES,
  readDatasetMeta,
} from "./helpers/textualize.ts";
import { withTempDir } from "./helpers/temp.ts";

async function textualizeTo(args: string[], out: string): Promise<void> {
  const run = await runCli(["textualize", ...args, `--out=${out}`, "--quiet"]);
  assert.equal(run.code, 0, run.stderr);
}

/** The demo users' item sequences, sorted by timestamp here (ties: file order). */
async function demoSequences(): Promise<Map<string, string[]>> {
  const rows: { user: string; item: string; time: number; line: number }[] = [];
  let header = true;
  for await (const { line, fields } of parseCsv(readLines(fixture("demo", "interactions.csv")))) {
    if (header) {
      assert.deepEqual(fields.slice(0, 3), ["user_id", "item_id", "timestamp"]);
      header = false;
      continue;
    }
    rows.push({ user: fields[0], item: fields[1], time: Number(fields[2]), line });
  }
  rows.sort((a, b) => a.time - b.time || a.line - b.line);
  const out = new Map<string, string[]>();
  for (const r of rows) out.set(r.user, [...(out.get(r.user) ?? []), r.item]);
  return out;
}

const FIXTURE_SEQUENCES: Record<
  string,
  { negatives: number; sequences: Record<string, string[]> }
> = {
  p5: {
    negatives: 99,
    sequences: {
      "1": ["1", "2", "3", "4", "5"],
      "2": ["6", "7", "8", "9", "10", "4", "11"],
      "4": ["2", "5", "9", "1", "2"],
      "5": ["13", "3", "7", "8", "1"],
      "6": ["12", "13", "6", "7"],
    },
  },
  amazon: {
    negatives: 3,
    sequences: {
      A1: ["X100", "X300", "X200", "X400", "X500"],
      A2: ["X200", "X400", "X500", "X300"],
      A3: ["X100", "X500", "X300", "X200"],
    },
  },
  csv: {
    negatives: 2,
    sequences: {
      c1: ["k1", "k3", "k2", "k4"],
      c2: ["k2", "k4", "k5"],
      c3: ["k1", "k5", "k3"],
      c4: ["k1", "k3", "k5"],
    },
  },
  recbole: {
    negatives: 1,
    sequences: {
      "10": ["m1", "m2", "m3", "m4"],
      "11": ["m1", "m4", "m3", "m5"],
      "12": ["m2", "m5", "m1"],
    },
  },
};

for (const { name, args } of GOLDEN_CASES) {
  Deno.test(`textualize ${name}: leave-one-out, candidates and templates follow the rules`, async () => {
    await withTempDir(async (tmp) => {
      await textualizeTo(args, join(tmp, "data"));
      const expected = FIXTURE_SEQUENCES[name];
      checkDataset(join(tmp, "data"), {
        sequences: new Map(Object.entries(expected.sequences)),
        negatives: expected.negatives,
      });
    });
  });
}

Deno.test("demo dataset: every rule of the split holds and the train split stays small", async () => {
  await withTempDir(async (tmp) => {
    const out = join(tmp, "demo");
    await textualizeTo(DEMO_ARGS, out);
    const records = checkDataset(out, { sequences: await demoSequences(), negatives: 99 });
    const { manifest, entities } = readDatasetMeta(out);
    assert.equal(manifest.users, 600);
    assert.ok(
      records.train.length >= 3000 && records.train.length <= 20000,
      `${records.train.length}`,
    );
    for (const task of ["profile", "rating", "sequential", "explanation", "review", "direct"]) {
      assert.equal(manifest.tasks[task as "rating"].status, "ok", task);
      assert.ok(records.test.some((r) => r.task === task) || task === "profile", task);
    }
    assert.deepEqual(manifest.rating_scale, [1, 5]);
    // Features and attributes are entities of their own kinds.
    const kinds = new Set(entities.map((e) => e.kind));
    for (const kind of ["item", "brand", "category", "age_band", "occupation", "region"]) {
      assert.ok(kinds.has(kind), kind);
    }
    // Profiles describe the user with features and time-window samples.
    const profile = records.train.find((r) => r.task === "profile")!;
    assert.ok(profile.segments.some((s) => "kind" in s && s.kind === "age_band"));
    assert.ok(profile.segments.some((s) => "kind" in s && s.kind === "item"));
    // Ratings print as integers, and the numeric field agrees with the text.
    for (const r of records.train.filter((r) => r.task === "rating")) {
      assert.deepEqual(r.target, [{ text: String(r.rating) }]);
      assert.ok(Number.isInteger(r.rating));
    }
  });
});

Deno.test("the same input and seed give byte-identical output; another seed another", async () => {
  await withTempDir(async (tmp) => {
    await textualizeTo(DEMO_ARGS, join(tmp, "a"));
    await textualizeTo(DEMO_ARGS, join(tmp, "b"));
    const other = DEMO_ARGS.map((a) => a === "--seed=1" ? "--seed=2" : a);
    await textualizeTo(other, join(tmp, "c"));
    for (const file of DATASET_FILES) {
      const a = await Deno.readFile(join(tmp, "a", file));
      const b = await Deno.readFile(join(tmp, "b", file));
      assert.deepEqual(a, b, file);
    }
    const a = await Deno.readTextFile(join(tmp, "a", "train.jsonl"));
    const c = await Deno.readTextFile(join(tmp, "c", "train.jsonl"));
    assert.notEqual(a, c);
    // The pool does not depend on the seed.
    assert.equal(
      await Deno.readTextFile(join(tmp, "a", "entities.json")),
      await Deno.readTextFile(join(tmp, "c", "entities.json")),
    );
  });
});

Deno.test("training sequential records target every position from the second one on", async () => {
  await withTempDir(async (tmp) => {
    const out = join(tmp, "d");
    await textualizeTo(DEMO_ARGS, out);
    const sequences = await demoSequences();
    const { entities } = readDatasetMeta(out);
    const entity = new Map(entities.filter((e) => e.kind === "item").map((e) => [e.id, e.entity]));
    const targets = new Map<string, string[]>();
    for (const line of (await Deno.readTextFile(join(out, "train.jsonl"))).split("\n")) {
      if (!line.includes('"task":"sequential"')) continue;
      const r = JSON.parse(line);
      targets.set(r.user, [...(targets.get(r.user) ?? []), r.target[0].entity]);
    }
    for (const [user, items] of sequences) {
      const train = items.slice(0, -2).map((id) => entity.get(id)!);
      assert.deepEqual(targets.get(user) ?? [], train.slice(1), user);
    }
  });
});

Deno.test("--train-through valid: training covers the validation item, never the test item; valid and test unchanged", async () => {
  await withTempDir(async (tmp) => {
    const plain = join(tmp, "plain"), refit = join(tmp, "refit");
    await textualizeTo(DEMO_ARGS, plain);
    await textualizeTo([...DEMO_ARGS, "--train-through=valid"], refit);
    const sequences = await demoSequences();
    // Every rule holds with the training window one interaction longer (the test item never).
    const records = checkDataset(refit, { sequences, negatives: 99, trainThrough: "valid" });
    const { manifest, entities } = readDatasetMeta(refit);
    assert.equal((manifest.options as Record<string, unknown>).train_through, "valid");
    for (const file of ["valid.jsonl", "test.jsonl", "candidates.jsonl", "entities.json"]) {
      assert.equal(
        await Deno.readTextFile(join(refit, file)),
        await Deno.readTextFile(join(plain, file)),
        file,
      );
    }
    // The training sequential targets run through each user's validation item.
    const entity = new Map(entities.filter((e) => e.kind === "item").map((e) => [e.id, e.entity]));
    const targets = new Map<string, string[]>();
    for (const r of records.train) {
      if (r.task !== "sequential") continue;
      const t = r.target![0] as { entity: string };
      targets.set(r.user, [...(targets.get(r.user) ?? []), t.entity]);
    }
    for (const [user, items] of sequences) {
      const train = items.slice(0, -1).map((id) => entity.get(id)!);
      assert.deepEqual(targets.get(user) ?? [], train.slice(1), user);
    }
    // The plain dataset's training never mentions a validation item the refit one does.
    const plainTrain = await Deno.readTextFile(join(plain, "train.jsonl"));
    const refitTrain = await Deno.readTextFile(join(refit, "train.jsonl"));
    assert.ok(refitTrain.length > plainTrain.length);
  });
});

Deno.test("--train-through valid: an undeclared rating scale covers every rating trained on, valid's and test's prompts naming it", async () => {
  await withTempDir(async (tmp) => {
    // u1's validation rating (5) widens the refit's training ratings past the plain 2-4.
    const input = join(tmp, "tt.csv");
    await Deno.writeTextFile(
      input,
      "user_id,item_id,timestamp,rating\nu1,a,1,3\nu1,b,2,4\nu1,c,3,5\nu1,d,4,2\n" +
        "u2,a,1,2\nu2,c,2,3\nu2,b,3,4\n",
    );
    const args = ["--format=csv", `--input=${input}`, "--negatives=1"];
    const plain = join(tmp, "plain"), refit = join(tmp, "refit");
    await textualizeTo(args, plain);
    await textualizeTo([...args, "--train-through=valid"], refit);
    const scale = (dir: string) => readDatasetMeta(dir).manifest.rating_scale;
    assert.deepEqual(scale(plain), [2, 4]);
    assert.deepEqual(scale(refit), [2, 5]);
    // The rating prompts name it; every other line of valid and test is the plain dataset's.
    for (const file of ["valid.jsonl", "test.jsonl"]) {
      const lines = async (dir: string) =>
        (await Deno.readTextFile(join(dir, file))).split("\n").filter((l) =>
          !l.includes('"task":"rating"')
        );
      assert.deepEqual(await lines(refit), await lines(plain), file);
    }
    assert.match(await Deno.readTextFile(join(refit, "test.jsonl")), /2 to 5/);
    // Users kept out to tune on keep their validation rating out of the scale too.
    const tuned = join(tmp, "tuned");
    await textualizeTo([...args, "--train-through=valid", "--tune-users=2"], tuned);
    assert.deepEqual(scale(tuned), [2, 4]);
  });
});
