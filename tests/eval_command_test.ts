import assert from "node:assert/strict";
import { join } from "node:path";
import { openDataset, readRecords } from "../lib/data/dataset.ts";
import { runCli } from "./helpers/cli.ts";
import { gridDataset } from "./helpers/textualize.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

// fixtures/eval/tiny: 5 users, items A..H (see tests/baselines_test.ts); fixtures/eval/model.jsonl:
// hand-made test predictions. Their ranks under --protocol full:
//   sequential seq-1 (seen):     u1 1, u2 2 (A repeated), u3 8, u4 2 (brand "Acme" first), u5 miss
//   sequential seq-2 (held out): u1 3 ("Nonexistent Item" takes rank 2), u2 miss (empty list)
//   direct:                      2, 1, 3, 1, 3
const DATA = fileURLToPath(new URL("../fixtures/eval/tiny", import.meta.url));
const MODEL = fileURLToPath(new URL("../fixtures/eval/model.jsonl", import.meta.url));
const N2 = 1 / Math.log2(3); // NDCG of rank 2
const N3 = 1 / Math.log2(4); // = 1/2
const N8 = 1 / Math.log2(9);

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const { code, stdout, stderr } = await runCli(["eval", "--quiet", ...args]);
  return { code, out: stdout, err: stderr };
}

async function json(...args: string[]) {
  const result = await run(...args);
  assert.equal(result.code, 0, result.err);
  return JSON.parse(result.out);
}

/**
 * The one method of a report (eval's JSON has the same shape for one method as for several):
 * its name as `method`, its tasks beside it.
 */
function only(report: { methods: Record<string, Record<string, unknown>> }) {
  const names = Object.keys(report.methods);
  assert.equal(names.length, 1, `one method, got ${names.join(", ")}`);
  // deno-lint-ignore no-explicit-any
  return { method: names[0], ...report.methods[names[0]] } as Record<string, any>;
}

const close = (actual: number, expected: number, what = "") =>
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what} ${actual} != ${expected}`);

/** Runs `body` with a fresh temporary directory, removed afterwards. */
async function writeLines(dir: string, lines: string[], name = "pred.jsonl"): Promise<string> {
  const path = join(dir, name);
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

async function modelLines(): Promise<string[]> {
  return (await Deno.readTextFile(MODEL)).trim().split("\n");
}

Deno.test("eval scores every task of a predictions file, by hand (full protocol)", async () => {
  const report = await json("--data", DATA, "--predictions", MODEL);
  assert.deepEqual(Object.keys(report), ["protocol", "split", "methods"]); // even for one method
  assert.equal(report.protocol, "full");
  assert.equal(report.split, "test");
  const r = only(report);
  assert.equal(r.method, "model");
  const seq = r.sequential;
  // ranks 1, 2, 8, 2, miss, 3, miss
  assert.equal(seq.count, 7);
  assert.equal(seq.missing, 0);
  close(seq["HR@1"], 1 / 7);
  close(seq["HR@5"], 4 / 7);
  close(seq["NDCG@5"], (1 + N2 + N2 + N3) / 7, "NDCG@5");
  close(seq["HR@10"], 5 / 7);
  close(seq["NDCG@10"], (1 + N2 + N2 + N3 + N8) / 7, "NDCG@10");
  assert.equal(seq["NDCG@1"], undefined); // equals HR@1, not repeated
  // valid outputs, distinct among the first 10: 3/3, 2/3, 2/2, 0/0, 8/8, 1/2, 2/2 -> 18/20
  close(seq.valid, 18 / 20);
  // breakdowns: seq-1 is seen (ranks 1 2 8 2 miss), seq-2 held out (3, miss)
  assert.equal(seq.templates["seq-1"].count, 5);
  close(seq.seen["HR@5"], 3 / 5);
  close(seq.heldOut["NDCG@5"], N3 / 2);
  assert.deepEqual(seq.heldOut, seq.templates["seq-2"]);
  // direct: ranks 2 1 3 1 3
  close(r.direct["HR@1"], 2 / 5);
  close(r.direct["NDCG@5"], (N2 + 1 + N3 + 1 + N3) / 5, "direct NDCG@5");
  assert.equal(r.direct.heldOut, undefined);
  // rating: 4.5 vs 5, 7 (clipped to 5) vs 4, "3" (text) vs 4, no number vs 5
  // errors -0.5, 1, -1: RMSE sqrt(2.25/3), MAE 2.5/3, valid 3/4
  close(r.rating.RMSE, Math.sqrt(2.25 / 3), "RMSE");
  close(r.rating.MAE, 2.5 / 3, "MAE");
  assert.equal(r.rating.valid, 3 / 4);
  assert.equal(r.rating.count, 4);
  assert.equal(r.rating.heldOut.RMSE, null); // its only record had no number
  // explanation: BLEU = 100 exp(1 - 14/7) (all precisions 1), ROUGE per pair averaged
  // (tests/metrics_bleu_test.ts and metrics_rouge_test.ts work these out)
  close(r.explanation["BLEU-4"], 100 * Math.exp(-1), "BLEU");
  close(r.explanation["ROUGE-1"], (100 * 29) / 42, "ROUGE-1");
  close(r.explanation["ROUGE-2"], (100 * 29) / 52, "ROUGE-2");
  close(r.explanation["ROUGE-L"], (100 * 5) / 9, "ROUGE-L");
  // review: a perfect 2-word summary has no 3- or 4-grams: BLEU-4 0, BLEU-2 and ROUGE 100
  assert.deepEqual(
    [r.review["BLEU-4"], r.review["ROUGE-1"], r.review["ROUGE-2"], r.review["ROUGE-L"]],
    [0, 100, 100, 100],
  );
  assert.equal(r.review["BLEU-2"], 100);
  assert.equal(r.explanation["BLEU-2"], undefined); // the published protocol's for review only
});

Deno.test("eval --protocol sampled ranks within each record's candidates", async () => {
  const report = await json("--data", DATA, "--predictions", MODEL, "--protocol", "sampled");
  assert.equal(report.protocol, "sampled");
  const r = only(report);
  // within candidates: u1 1, u2 1, u3 3 (H D F), u4 1, u5 miss (C not listed), u1 seq-2 2, u2 miss
  close(r.sequential["HR@1"], 3 / 7);
  close(r.sequential["HR@5"], 5 / 7);
  close(r.sequential["NDCG@5"], (1 + 1 + N3 + 1 + N2) / 7, "NDCG@5");
  // valid is measured on the method's own list: unchanged
  close(r.sequential.valid, 18 / 20);
});

Deno.test("several methods: one object per method, baselines beside the model", async () => {
  const r = await json(
    "--data",
    DATA,
    "--predictions",
    MODEL,
    "--name",
    "glm",
    "--baseline",
    "pop,mean",
  );
  assert.deepEqual(Object.keys(r), ["protocol", "split", "methods"]);
  assert.deepEqual(Object.keys(r.methods), ["glm", "pop", "mean"]);
  assert.deepEqual(Object.keys(r.methods.pop), ["sequential", "direct"]);
  assert.deepEqual(Object.keys(r.methods.mean), ["rating"]);
  // most popular, test split: ranks 1 (u1) 1 (u2) 3 (u3: D E F) 1 (u4) 1 (u5), seq-2: 1, 1
  close(r.methods.pop.sequential["HR@1"], 6 / 7);
  close(r.methods.pop.sequential["NDCG@5"], (6 + N3) / 7);
  assert.equal(r.methods.pop.sequential.missing, 0);
  assert.equal(r.methods.glm.sequential.count, 7);
});

Deno.test("eval --format md prints a table per task", async () => {
  const { code, out } = await run(
    "--data",
    DATA,
    "--predictions",
    MODEL,
    "--baseline",
    "itemknn",
    "--format",
    "md",
  );
  assert.equal(code, 0);
  assert.ok(out.includes("### sequential"));
  assert.ok(out.includes("| method | HR@1 | HR@5 | NDCG@5 | HR@10 | NDCG@10 | valid | count |"));
  assert.ok(out.includes(`| model | ${(1 / 7).toFixed(4)} | ${(4 / 7).toFixed(4)} |`));
  assert.ok(out.includes("| model (held-out templates) |"));
  assert.ok(out.includes("| itemknn |"));
  assert.ok(out.includes("| method | RMSE | MAE | valid | count |"));
  assert.ok(out.includes("| method | BLEU-4 | ROUGE-1 | ROUGE-2 | ROUGE-L | count |"));
});

Deno.test("eval --chart writes an SVG bar chart naming every method", async () => {
  await withTempDir(async (dir) => {
    const chart = join(dir, "eval.svg");
    const { code } = await run(
      "--data",
      DATA,
      "--predictions",
      MODEL,
      "--baseline",
      "pop",
      "--chart",
      chart,
    );
    assert.equal(code, 0);
    const svg = await Deno.readTextFile(chart);
    assert.ok(svg.startsWith("<?xml") && svg.trimEnd().endsWith("</svg>"));
    assert.ok(svg.includes(">model<") && svg.includes(">pop<"));
    assert.ok(svg.includes(`<title>model, HR@1: ${1 / 7}</title>`));
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["eval.svg"]); // no temp left
  });
});

Deno.test("eval --k, --tasks and --split choose what is scored", async () => {
  const report = await json(
    "--data",
    DATA,
    "--baseline",
    "pop",
    "--split",
    "valid",
    "--k",
    "3,1",
    "--tasks",
    "sequential",
  );
  assert.equal(report.split, "valid");
  const r = only(report);
  assert.deepEqual(Object.keys(r).filter((k) => k !== "method"), [
    "sequential",
  ]);
  assert.deepEqual(Object.keys(r.sequential).slice(0, 3), ["HR@1", "HR@3", "NDCG@3"]);
  // valid split, pop on unseen items: u1 (seen A B C) D E F.. target D: 1; u2 (A B) C D E..: C 1;
  // u3 (A C) B D E..: B 1; u4 (A D) B C E..: B 1; u5 (B E) A C D..: A 1
  assert.equal(r.sequential["HR@1"], 1);
  assert.equal(r.sequential.count, 5);
});

Deno.test("records without a prediction are counted and warned about, or an error with --strict", async () => {
  const lines = (await modelLines()).filter((l) => !l.includes('"u5/') && !l.includes("review"));
  await withTempDir(async (dir) => {
    const path = await writeLines(dir, lines);
    const { code, out, err } = await run("--data", DATA, "--predictions", path);
    assert.equal(code, 0);
    const r = only(JSON.parse(out));
    assert.equal(r.sequential.missing, 1);
    assert.equal(r.sequential.count, 6);
    assert.equal(r.direct.missing, 1);
    assert.equal(r.review.missing, 1);
    assert.equal(r.review.count, 0);
    assert.equal(r.review["BLEU-4"], null);
    // A task the file answers no record of is said once, not counted record by record.
    assert.match(err, /warning: pred: 2 test record\(s\) have no prediction in .*pred\.jsonl/);
    assert.match(err, /note: pred: no prediction for review \(not scored for it\)/);
    const strict = await run("--data", DATA, "--predictions", path, "--strict");
    assert.equal(strict.code, 1);
    assert.match(
      strict.err,
      /pred\.jsonl: 3 test record\(s\) have no prediction \(strict: every record needs one\)/,
    );
  });
});

Deno.test("input errors name the file and line and exit 1", async () => {
  const good = (await modelLines())[0];
  const cases: [string[], RegExp][] = [
    [
      [good, '{"id": "u9/sequential/seq-1/test", "predictions": []}'],
      /pred\.jsonl line 2: unknown record id "u9\/sequential\/seq-1\/test": not in test\.jsonl$/,
    ],
    [
      [good, '{"id": "u1/direct/direct-1/valid", "predictions": []}'],
      /line 2: unknown record id "u1\/direct\/direct-1\/valid": not in test\.jsonl \(it is a valid record; score the valid split\)/,
    ],
    [[good, "{not json"], /pred\.jsonl line 2: not valid JSON/],
    [
      [good, good],
      /pred\.jsonl line 2: a second prediction for record "u1\/sequential\/seq-1\/test" \(the first is on line 1\)/,
    ],
    [
      ['{"id": "u1/sequential/seq-1/test", "predictions": {"entity": "x"}}'],
      /line 1: "predictions" must be an array/,
    ],
    [
      ['{"id": "u1/sequential/seq-1/test", "predictions": ["Alpha Lipstick"]}'],
      /line 1: predictions\[0\] must be an object with a string "entity"/,
    ],
    [
      ['{"id": "u1/sequential/seq-1/test", "rating": "high"}'],
      /line 1: "rating" must be a finite number/,
    ],
    [["[1, 2]"], /line 1: not a prediction/],
    [
      ['{"id": "u1/sequential/seq-1/test", "task": "direct", "predictions": []}'],
      /line 1: record "u1\/sequential\/seq-1\/test" is a sequential record, the prediction says direct/,
    ],
  ];
  for (const [lines, message] of cases) {
    await withTempDir(async (dir) => {
      const { code, err } = await run(
        "--data",
        DATA,
        "--predictions",
        await writeLines(dir, lines),
      );
      assert.equal(code, 1, `${lines.join(" | ")}: ${err}`);
      assert.match(err, message);
      assert.equal(err.split("\n").length, 1, "one line");
    });
  }
  const missing = await run("--data", DATA, "--predictions", "/nonexistent/pred.jsonl");
  assert.equal(missing.code, 1);
  assert.match(missing.err, /\/nonexistent\/pred\.jsonl: file not found/);
  const split = await run("--data", DATA, "--baseline", "pop", "--split", "holdout");
  assert.equal(split.code, 1);
  assert.match(split.err, /no split "holdout" \(this dataset has: train, valid, test\)/);
});

Deno.test("the sampled protocol needs candidates in the dataset", async () => {
  await withTempDir(async (dir) => {
    // Everything but candidates.jsonl.
    for (const name of ["manifest.json", "entities.json", "valid.jsonl", "test.jsonl"]) {
      await Deno.copyFile(join(DATA, name), join(dir, name));
    }
    const { code, err } = await run("--data", dir, "--baseline", "pop", "--protocol", "sampled");
    assert.equal(code, 1);
    assert.match(
      err,
      /test\.jsonl: record "u1\/sequential\/seq-1\/test": has no candidates \(needed by the sampled protocol\)/,
    );
    // the full protocol does not need them
    assert.equal((await run("--data", dir, "--baseline", "pop")).code, 0);
  });
});

Deno.test("usage mistakes exit 2", async () => {
  for (
    const args of [
      ["--data", DATA],
      ["--data", DATA, "--baseline", "svd"],
      ["--data", DATA, "--predictions", MODEL, "--predictions", MODEL],
      ["--data", DATA, "--baseline", "pop", "--protocol", "loo"],
      ["--data", DATA, "--baseline", "pop", "--k", "0"],
      ["--data", DATA, "--baseline", "pop", "--tasks", "profile"],
      ["--baseline", "pop"],
      ["--data", DATA, "--predictions", MODEL, "--save-baselines", "/tmp/never-written"],
    ]
  ) {
    const { code, err } = await run(...args);
    assert.equal(code, 2, `${args.join(" ")}: ${err}`);
  }
  // Baselines scored on what they learn; SASRec's curve without SASRec (it wrote empty files).
  const train = await run("--data", DATA, "--baseline", "pop,mean", "--split", "train");
  assert.equal(train.code, 2);
  assert.match(train.err, /the baselines learn the train split \(pop, mean\)/);
  const curve = await run("--data", DATA, "--baseline", "pop", "--sasrec-curve", "/tmp/never.svg");
  assert.equal(curve.code, 2);
  assert.match(curve.err, /--sasrec-curve is SASRec's training curve: it needs --baseline sasrec/);
  await assert.rejects(Deno.stat("/tmp/never.svg"), Deno.errors.NotFound);
});

Deno.test("a pool small enough that the candidates are every unseen item gives no protocol warning", async () => {
  await withTempDir(async (dir) => {
    // 30 users of 4 interactions over 20 items: textualize's 99 negatives are every unseen item.
    const data = await gridDataset(dir, { users: 30, each: 4, items: 20, tasks: ["sequential"] });
    const { code, err } = await run("--data", data, "--baseline", "pop,itemknn");
    assert.equal(code, 0, err);
    assert.doesNotMatch(err, /every list lies within its record's candidates/);
  });
});

Deno.test("eval reads what textualize writes: every test record of its fixtures is scored", async () => {
  for (const source of ["p5", "amazon", "csv", "recbole"]) {
    const dir = fileURLToPath(
      new URL(`../fixtures/textualize/${source}/expected`, import.meta.url),
    );
    const manifest = JSON.parse(await Deno.readTextFile(join(dir, "manifest.json")));
    const heldOut = new Set(
      manifest.templates.filter((t: { heldOut: boolean }) => t.heldOut).map((t: { id: string }) =>
        t.id
      ),
    );
    for (const protocol of ["full", "sampled"]) {
      const r = await json("--data", dir, "--baseline", "pop,itemknn,mean", "--protocol", protocol);
      for (const [task, byTemplate] of Object.entries(manifest.counts.test)) {
        const counts = Object.entries(byTemplate as Record<string, number>);
        const total = counts.reduce((sum, [, n]) => sum + n, 0);
        const held = counts.filter(([t]) => heldOut.has(t)).reduce((sum, [, n]) => sum + n, 0);
        const methods = task === "rating"
          ? ["mean"]
          : ["sequential", "direct"].includes(task)
          ? ["pop", "itemknn"]
          : [];
        for (const method of methods) {
          const result = r.methods[method][task];
          assert.equal(result.count, total, `${source} ${protocol} ${method} ${task}`);
          assert.equal(result.missing, 0);
          assert.equal(result.heldOut?.count ?? 0, held, `${source} ${task} held out`);
          if (method !== "mean") assert.equal(result.valid, 1);
        }
      }
    }
  }
});

Deno.test("baselines write predictions in the infer format that score the same as a file", async () => {
  await withTempDir(async (dir) => {
    const saved = join(dir, "baselines");
    for (const protocol of ["full", "sampled"]) {
      const direct = await json(
        "--data",
        DATA,
        "--baseline",
        "pop,itemknn,mean",
        "--protocol",
        protocol,
        "--save-baselines",
        saved,
      );
      assert.deepEqual(
        [...Deno.readDirSync(saved)].map((e) => e.name).sort(),
        ["itemknn.jsonl", "mean.jsonl", "pop.jsonl"],
      );
      const lines = (await Deno.readTextFile(join(saved, "pop.jsonl"))).trim().split("\n");
      assert.equal(lines.length, 12); // 7 sequential + 5 direct test records
      const first = JSON.parse(lines[0]);
      assert.deepEqual(Object.keys(first), ["id", "user", "task", "template", "predictions"]);
      assert.deepEqual(Object.keys(first.predictions[0]), ["entity", "item_id", "score"]);
      const itemIds = new Map(
        JSON.parse(await Deno.readTextFile(join(DATA, "entities.json")))
          .map((e: { entity: string; id: string }) => [e.entity, e.id]),
      );
      for (const p of first.predictions) assert.equal(p.item_id, itemIds.get(p.entity));
      const again = await json(
        "--data",
        DATA,
        "--protocol",
        protocol,
        ...["pop", "itemknn", "mean"].flatMap((m) => ["--predictions", join(saved, `${m}.jsonl`)]),
      );
      for (const method of ["pop", "itemknn", "mean"]) {
        for (const [task, result] of Object.entries(direct.methods[method])) {
          assert.deepEqual(again.methods[method][task], result, `${protocol} ${method} ${task}`);
        }
      }
    }
  });
});

Deno.test("a refit dataset (--train-through valid) refuses to score its validation split", async () => {
  await withTempDir(async (dir) => {
    for (const entry of Deno.readDirSync(DATA)) {
      await Deno.copyFile(join(DATA, entry.name), join(dir, entry.name));
    }
    const manifest = JSON.parse(await Deno.readTextFile(join(DATA, "manifest.json")));
    manifest.options.train_through = "valid";
    await Deno.writeTextFile(join(dir, "manifest.json"), JSON.stringify(manifest));
    const valid = await run("--data", dir, "--split", "valid", "--baseline", "pop");
    assert.equal(valid.code, 1, valid.err);
    assert.match(
      valid.err,
      /manifest\.json: the validation items are training data here \(textualize --train-through valid\)/,
    );
    // Refused before SASRec trains (on Beauty, 19 minutes of training came first), with its
    // progress on: no epoch is reported.
    const sasrec = await runCli([
      "eval",
      "--data",
      dir,
      "--split",
      "valid",
      "--baseline",
      "sasrec",
    ]);
    assert.equal(sasrec.code, 1, sasrec.stderr);
    assert.match(sasrec.stderr, /the validation items are training data here/);
    assert.doesNotMatch(sasrec.stderr, /sasrec: (training|epoch)/);
    // The test split still scores.
    const test = await json("--data", dir, "--predictions", MODEL);
    assert.equal(test.split, "test");
  });
});

Deno.test("an empty predictions file is a warning beside other methods, an error alone", async () => {
  await withTempDir(async (dir) => {
    const empty = join(dir, "empty.jsonl");
    await Deno.writeTextFile(empty, "");
    const alone = await run("--data", DATA, "--predictions", empty);
    assert.equal(alone.code, 1);
    assert.match(alone.err, /empty\.jsonl: no prediction in it: nothing to score$/);
    assert.equal(alone.err.split("\n").length, 1, "one line");
    const beside = await run("--data", DATA, "--predictions", empty, "--baseline", "pop");
    assert.equal(beside.code, 0, beside.err);
    assert.match(beside.err, /^warning: empty: no prediction in .*empty\.jsonl: not scored$/m);
    assert.doesNotMatch(beside.err, /note: empty/);
    assert.equal(JSON.parse(beside.out).methods.pop.sequential.count, 7);
  });
});

Deno.test("eval --save-baselines that fails writes nothing and leaves no directory behind", async () => {
  await withTempDir(async (dir) => {
    const good = (await modelLines())[0];
    const cases = [
      [good, '{"id": "u9/sequential/seq-1/test", "predictions": []}'], // an unknown record
      [good, good], // a record predicted twice
    ];
    for (const lines of cases) {
      const saved = join(dir, "out", "baselines");
      const { code, err } = await run(
        ...["--data", DATA, "--predictions", await writeLines(dir, lines)],
        ...["--baseline", "pop,mean", "--save-baselines", saved],
      );
      assert.equal(code, 1, err);
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["pred.jsonl"]);
    }
    // A directory that was there stays, without the baselines' files.
    const kept = join(dir, "kept");
    await Deno.mkdir(kept);
    const bad = await writeLines(dir, [good, good]);
    const { code } = await run(
      ...["--data", DATA, "--predictions", bad, "--baseline", "pop", "--save-baselines", kept],
    );
    assert.equal(code, 1);
    assert.deepEqual([...Deno.readDirSync(kept)], []);
  });
});

/** The test split's item records with their candidates (entity strings), from lib/data. */
async function itemRecords() {
  const data = await openDataset(DATA);
  const out: { id: string; target: string; candidates: string[] }[] = [];
  for await (const r of readRecords(data, "test")) {
    if (r.task !== "sequential" && r.task !== "direct") continue;
    const target = (r.target as { entity: string }[])[0].entity;
    out.push({ id: r.id, target, candidates: r.candidates! });
  }
  return out;
}

Deno.test("eval warns when a method's lists are shorter than the largest k", async () => {
  await withTempDir(async (dir) => {
    const records = await itemRecords();
    const top1 = await writeLines(
      dir,
      records.map((r) => JSON.stringify({ id: r.id, predictions: [{ entity: r.target }] })),
    );
    const short = await run("--data", DATA, "--predictions", top1, "--baseline", "pop");
    assert.equal(short.code, 0, short.err);
    assert.match(
      short.err,
      /^warning: pred: its lists hold at most 1 item\(s\), fewer than k = 10: .* at HR@10 and NDCG@10, .*$/m,
    );
    assert.doesNotMatch(short.err, /warning: pop/);
    const deep = await run("--data", DATA, "--predictions", top1, "--k", "1");
    assert.equal(deep.code, 0, deep.err);
    assert.doesNotMatch(deep.err, /fewer than k/);
  });
});

Deno.test("eval warns when a method's lists were made for the other protocol", async () => {
  await withTempDir(async (dir) => {
    const records = await itemRecords();
    const line = (id: string, items: string[]) =>
      JSON.stringify({ id, predictions: items.map((entity) => ({ entity })) });
    // What infer --protocol sampled writes: the candidates, ranked.
    const sampled = await writeLines(
      dir,
      records.map((r) => line(r.id, r.candidates)),
      "sampled.jsonl",
    );
    // A ranking over all items: the target, then items that are not candidates.
    const entities = JSON.parse(await Deno.readTextFile(join(DATA, "entities.json")))
      .filter((e: { kind: string }) => e.kind === "item").map((e: { entity: string }) => e.entity);
    const full = await writeLines(
      dir,
      records.map((r) =>
        line(r.id, [r.target, ...entities.filter((e: string) => !r.candidates.includes(e))])
      ),
      "full.jsonl",
    );
    const methods = ["--predictions", sampled, "--predictions", full, "--baseline", "pop"];
    const underFull = await run("--data", DATA, ...methods);
    assert.equal(underFull.code, 0, underFull.err);
    assert.match(
      underFull.err,
      /^warning: sampled: every list lies within its record's candidates .*--protocol sampled$/m,
    );
    assert.doesNotMatch(underFull.err, /warning: (full|pop): .*candidates/);
    const underSampled = await run("--data", DATA, "--protocol", "sampled", ...methods);
    assert.equal(underSampled.code, 0, underSampled.err);
    assert.match(
      underSampled.err,
      /^warning: full: 12 of 12 lists rank items outside their record's candidates .*--protocol full.*$/m,
    );
    assert.doesNotMatch(underSampled.err, /warning: (sampled|pop): .*candidates/);
  });
});

Deno.test("eval refuses a baseline's option when that baseline does not run, and a sample's seed without the sample", async () => {
  for (
    const [args, message] of [
      [
        ["--baseline", "pop", "--neighbors", "5"],
        /--neighbors configures itemknn, which --baseline does not run/,
      ],
      [
        ["--baseline", "itemknn", "--sasrec-epochs", "2"],
        /--sasrec-epochs configures sasrec, which --baseline does not run/,
      ],
      [
        ["--baseline", "mean", "--top-k", "30"],
        /--top-k configures pop, itemknn, random, sasrec, which --baseline does not run/,
      ],
      [
        ["--baseline", "pop", "--sample-seed", "3"],
        /--sample-seed chooses the sample --sample-users draws/,
      ],
    ] as const
  ) {
    const r = await run("--data", DATA, ...args);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, message);
  }
  // Where they apply, they run.
  const ok = await run(
    "--data",
    DATA,
    "--baseline",
    "itemknn,mean",
    "--neighbors",
    "5",
    "--damping",
    "2",
  );
  assert.equal(ok.code, 0, ok.err);
});
