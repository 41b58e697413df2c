/**
 * eval scores every method on the same records: a limited or sampled predictions file restricts
 * the baselines to its records (of the tasks it answers) and says so; it says when a model ranks
 * items of the user's history beside baselines that leave them out; the demo gives no verdict
 * from a handful of records.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { demoVerdict, MIN_VERDICT_RECORDS } from "../lib/demo/plan.ts";
import { isPredictionsFile } from "../lib/eval/predictions.ts";
import { runCli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

// fixtures/eval/tiny: test split of 7 sequential, 5 direct, 4 rating, 2 explanation, 1 review.
const DATA = fileURLToPath(new URL("../fixtures/eval/tiny", import.meta.url));
const MODEL = fileURLToPath(new URL("../fixtures/eval/model.jsonl", import.meta.url));

async function evaluate(...args: string[]) {
  const run = await runCli(["eval", "--quiet", "--data", DATA, ...args]);
  assert.equal(run.code, 0, run.stderr);
  return { report: JSON.parse(run.stdout), stderr: run.stderr };
}

Deno.test("a limited predictions file restricts the baselines to its records, and says so", () =>
  withTempDir(async (dir) => {
    const lines = (await Deno.readTextFile(MODEL)).trim().split("\n");
    const sequential = lines.filter((l) => JSON.parse(l).task === "sequential");
    const limited = join(dir, "limited.jsonl");
    await Deno.writeTextFile(limited, sequential.slice(0, 3).join("\n") + "\n");

    const { report, stderr } = await evaluate(
      ...["--predictions", limited, "--name", "model", "--baseline", "pop,mean"],
    );
    const { model, pop, mean } = report.methods;
    assert.equal(model.sequential.count, 3);
    assert.equal(model.sequential.missing, 4);
    assert.equal(pop.sequential.count, 3, "pop scored on the model's 3 records only");
    assert.equal(pop.sequential.missing, 0);
    // Tasks the file does not answer at all are not restricted.
    assert.equal(pop.direct.count, 5);
    assert.equal(mean.rating.count, 4);
    assert.match(
      stderr,
      /^note: every method is scored on the same 3 test record\(s\): model lack\(s\) 4 record\(s\) .*the baselines included$/m,
    );

    // Pop on exactly those records, alone, gives the same figures.
    const alone = await evaluate("--baseline", "pop", "--tasks", "sequential");
    assert.notDeepEqual(alone.report.methods.pop.sequential, pop.sequential); // 7 records there
    const whole = await evaluate("--predictions", MODEL, "--name", "model", "--baseline", "pop");
    assert.equal(whole.report.methods.pop.sequential.count, 7);
    assert.doesNotMatch(whole.stderr, /note: every method/);
  }));

Deno.test("a prediction whose task contradicts its record is an error, even where no method scores it", () =>
  withTempDir(async (dir) => {
    const sequential = (await Deno.readTextFile(MODEL)).trim().split("\n")
      .map((l) => JSON.parse(l)).filter((p) => p.task === "sequential");
    const a = join(dir, "a.jsonl"), b = join(dir, "b.jsonl");
    // a says its first sequential record is a direct one; b lacks that record, so it is scored
    // for no method.
    const wrong = [{ ...sequential[0], task: "direct" }, ...sequential.slice(1)];
    await Deno.writeTextFile(a, wrong.map((p) => JSON.stringify(p)).join("\n") + "\n");
    await Deno.writeTextFile(b, sequential.slice(1).map((p) => JSON.stringify(p)).join("\n"));
    const run = await runCli([
      "eval",
      "--quiet",
      "--data",
      DATA,
      "--predictions",
      a,
      "--predictions",
      b,
    ]);
    assert.equal(run.code, 1, run.stdout);
    assert.equal(run.stdout, "");
    assert.match(
      run.stderr,
      /^error: .*a\.jsonl line 1: record "u1\/sequential\/seq-1\/test" is a sequential record, the prediction says direct$/,
    );
  }));

Deno.test("a whole run's predictions scored on a sample of users: the others are left out, no error", async () => {
  const whole = await evaluate("--predictions", MODEL, "--name", "model");
  const { report } = await evaluate(
    "--predictions",
    MODEL,
    "--name",
    "model",
    "--sample-users",
    "2",
  );
  const { model } = report.methods;
  assert.ok(model.sequential.count >= 1, "the sample has sequential records");
  assert.ok(model.sequential.count < whole.report.methods.model.sequential.count);
  assert.equal(model.sequential.missing, 0);
});

Deno.test("lines without a task answer the tasks of the records they name, not every task", () =>
  withTempDir(async (dir) => {
    const lines = (await Deno.readTextFile(MODEL)).trim().split("\n").map((l) => JSON.parse(l))
      .filter((p) => p.task === "sequential")
      .map(({ task: _, ...line }) => JSON.stringify(line));
    const unnamed = join(dir, "unnamed.jsonl");
    for (const [count, restricted] of [[7, 0], [3, 4]]) {
      await Deno.writeTextFile(unnamed, lines.slice(0, count).join("\n") + "\n");
      const { report, stderr } = await evaluate(
        ...["--predictions", unnamed, "--name", "model", "--baseline", "pop,mean"],
      );
      const { model, pop, mean } = report.methods;
      assert.equal(model.sequential.count, count);
      assert.equal(pop.sequential.count, count, "the file's sequential records, for every method");
      // The tasks it has no line of are the baselines' alone, as for a file naming its task.
      assert.equal(pop.direct.count, 5);
      assert.equal(mean.rating.count, 4);
      if (restricted === 0) assert.doesNotMatch(stderr, /note: every method/);
      else assert.match(stderr, /lack\(s\) 4 record\(s\) of the tasks answered/);
    }
  }));

Deno.test("eval notes a model that ranks items of the user's history beside baselines that leave it out", () =>
  withTempDir(async (dir) => {
    // Every sequential record answered with its own history first, then the target.
    const records = (await Deno.readTextFile(join(DATA, "test.jsonl"))).trim().split("\n")
      .map((l) => JSON.parse(l)).filter((r) => r.task === "sequential");
    const line = (r: { id: string; history: string[]; target: { entity: string }[] }, k: number) =>
      JSON.stringify({
        id: r.id,
        task: "sequential",
        predictions: [...r.history.slice(0, k), r.target[0].entity].map((entity) => ({ entity })),
      });
    const file = (name: string, k: (i: number) => number) => {
      const path = join(dir, name);
      return Deno.writeTextFile(path, records.map((r, i) => line(r, k(i))).join("\n") + "\n")
        .then(() => path);
    };
    const withSeen = await file("seen.jsonl", (i) => i < 3 ? 1 : 0);
    const clean = await file("clean.jsonl", () => 0);
    const run = (path: string) =>
      evaluate(
        "--predictions",
        path,
        "--name",
        "model",
        "--baseline",
        "pop,mean",
        "--tasks",
        "sequential",
      );

    const { stderr } = await run(withSeen);
    const share = Math.round(100 * 3 / records.length);
    assert.match(
      stderr,
      new RegExp(
        `^note: model \\(${share}%\\) rank\\(s\\) items of the user's history in the top 10 of ` +
          `full-ranking records, pop never: .*--exclude-seen ranks the same way\\)$`,
        "m",
      ),
    );
    // mean ranks nothing, so it is not named; a model that leaves the history out gets no note.
    assert.doesNotMatch(stderr, /mean/);
    assert.doesNotMatch((await run(clean)).stderr, /history/);

    // An output that is no item and a history entry that is no item are not the same item.
    const copy = join(dir, "data");
    await Deno.mkdir(copy);
    for await (const entry of Deno.readDir(DATA)) {
      let text = await Deno.readTextFile(join(DATA, entry.name));
      if (entry.name === "test.jsonl") {
        text = text.trim().split("\n").map((l) => {
          const r = JSON.parse(l);
          if (r.history) r.history = ["Gone Item", ...r.history];
          return JSON.stringify(r);
        }).join("\n") + "\n";
      }
      await Deno.writeTextFile(join(copy, entry.name), text);
    }
    const invalid = join(dir, "invalid.jsonl");
    await Deno.writeTextFile(
      invalid,
      records.map((r) =>
        JSON.stringify({
          id: r.id,
          task: "sequential",
          predictions: [{ entity: "No Such Item" }, { entity: r.target[0].entity }],
        })
      ).join("\n") + "\n",
    );
    const unknown = await runCli(
      ["eval", "--quiet", "--data", copy, "--predictions", invalid, "--name", "model"]
        .concat(["--predictions", clean, "--name", "other", "--tasks", "sequential"]),
    );
    assert.equal(unknown.code, 0, unknown.stderr);
    assert.doesNotMatch(unknown.stderr, /history/);
  }));

Deno.test("the demo gives figures but no verdict from a handful of records", () => {
  const report = (count: number) => ({
    methods: {
      recsysllm: { sequential: { "HR@10": 0.5, count } },
      pop: { sequential: { "HR@10": 0.25, count } },
    },
  });
  assert.equal(
    demoVerdict(report(4)),
    `sequential HR@10 on 4 record(s): recsysllm 0.5000, pop 0.2500 (too few records for a ` +
      `verdict: at least ${MIN_VERDICT_RECORDS}; run without --limit)`,
  );
  assert.match(demoVerdict(report(MIN_VERDICT_RECORDS))!, /\(recsysllm beats pop\)$/);
});

Deno.test("a run that scores nothing is an error saying why, not an empty report", () =>
  withTempDir(async (dir) => {
    const sequential = (await Deno.readTextFile(MODEL)).trim().split("\n")
      .filter((l) => JSON.parse(l).task === "sequential");
    const [a, b] = [join(dir, "a.jsonl"), join(dir, "b.jsonl")];
    await Deno.writeTextFile(a, sequential.slice(0, 3).join("\n") + "\n");
    await Deno.writeTextFile(b, sequential.slice(3).join("\n") + "\n");
    const cases: [string[], number, RegExp][] = [
      // Two samples of other users: nothing in common to score on.
      [["--predictions", a, "--predictions", b], 1, /a, b share no sequential record/],
      [["--baseline", "mean", "--tasks", "sequential"], 2, /no method answers the tasks asked/],
    ];
    for (const [args, code, message] of cases) {
      const run = await runCli(["eval", "--quiet", "--data", DATA, ...args]);
      assert.equal(run.code, code, run.stderr);
      assert.match(run.stderr, message);
      assert.equal(run.stdout, "");
    }
    // A split without records.
    const empty = join(dir, "empty");
    await Deno.mkdir(empty);
    for await (const entry of Deno.readDir(DATA)) {
      await Deno.copyFile(join(DATA, entry.name), join(empty, entry.name));
    }
    await Deno.writeTextFile(join(empty, "test.jsonl"), "");
    const none = await runCli(["eval", "--quiet", "--data", empty, "--baseline", "pop"]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /test\.jsonl: no records: nothing to score/);
  }));

Deno.test("retrieval without training texts of the tasks asked says so, naming train.jsonl", async () => {
  // fixtures/eval/tiny: train.jsonl has no explanation or review record; valid.jsonl neither.
  const cases: [string[], RegExp][] = [
    [
      ["--tasks", "explanation,review"],
      new RegExp(
        String.raw`^error: nothing scored \(--tasks explanation,review\): retrieval has no ` +
          String.raw`training text of explanation or review to retrieve from \(\S*train\.jsonl ` +
          String.raw`has no such record\)$`,
        "m",
      ),
    ],
    [
      ["--split", "valid", "--tasks", "explanation"],
      /valid\.jsonl: no explanation record: nothing scored/,
    ],
  ];
  for (const [args, message] of cases) {
    const run = await runCli(["eval", "--quiet", "--data", DATA, "--baseline=retrieval", ...args]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, message);
    assert.doesNotMatch(run.stderr, /answers/);
    assert.equal(run.stdout, "");
  }
});

Deno.test("baselines saved beside a limited predictions file predict every record", () =>
  withTempDir(async (dir) => {
    const lines = (await Deno.readTextFile(MODEL)).trim().split("\n");
    const limited = join(dir, "limited.jsonl");
    await Deno.writeTextFile(
      limited,
      lines.filter((l) => JSON.parse(l).task === "sequential").slice(0, 3).join("\n") + "\n",
    );
    const saved = join(dir, "saved");
    await evaluate("--predictions", limited, "--baseline", "pop", "--save-baselines", saved);
    const pop = (await Deno.readTextFile(join(saved, "pop.jsonl"))).trim().split("\n");
    // Scored on the file's 3 sequential records, saved for all 7 (and the direct ones).
    assert.equal(pop.filter((l) => JSON.parse(l).task === "sequential").length, 7);
    assert.equal(pop.filter((l) => JSON.parse(l).task === "direct").length, 5);
  }));

Deno.test("a shard part without its sidecar is refused as such, named alike or not", () =>
  withTempDir(async (dir) => {
    const parts = join(dir, "parts");
    for (const shard of ["0/2", "1/2"]) {
      await evaluate("--baseline", "pop", "--save-baselines", parts, "--shard", shard);
    }
    await Deno.remove(join(parts, "pop-00001-of-00002.jsonl.shard.json"));
    const files = ["pop-00000-of-00002.jsonl", "pop-00001-of-00002.jsonl"].map((f) =>
      join(parts, f)
    );
    for (const names of [[], ["--name", "pop", "--name", "pop"]]) {
      const run = await runCli([
        "eval",
        "--quiet",
        "--data",
        DATA,
        ...files.flatMap((f) => ["--predictions", f]),
        ...names,
      ]);
      assert.equal(run.code, 1, run.stderr);
      assert.match(
        run.stderr,
        /pop-00001-of-00002\.jsonl: not a shard part: .*shard\.json is missing/,
      );
    }
  }));

Deno.test("a saved baseline whose lines are long (a deep --top-k) is still recognized as its own and replaced", () =>
  withTempDir(async (dir) => {
    const saved = join(dir, "saved");
    await evaluate("--baseline", "pop", "--save-baselines", saved);
    // A first line of over 64 KiB, as --top-k 1000 writes on a catalogue of long titles.
    const file = join(saved, "pop.jsonl");
    const long = {
      id: "u1/sequential/seq-1/test",
      task: "sequential",
      predictions: Array.from(
        { length: 1000 },
        (_, i) => ({ entity: `item ${i} ${"x".repeat(90)}` }),
      ),
    };
    await Deno.writeTextFile(file, JSON.stringify(long) + "\n");
    assert.ok((await Deno.readTextFile(file)).length > 1 << 16);
    assert.ok(await isPredictionsFile(file));
    await evaluate("--baseline", "pop", "--save-baselines", saved);
  }));
