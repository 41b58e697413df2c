// The two stages from the command line: eval --save-baselines proposes candidates, infer
// --rerank scores them, eval --tune-rerank sweeps the fusion on that output, and infer
// --rerank-tuned applies the best point, whose figures eval then reproduces exactly.
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp.ts";
import { demoSequentialArgs } from "./helpers/textualize.ts";
import { fileURLToPath } from "node:url";

const TOKENIZER = fileURLToPath(new URL("../fixtures/tokenizer/tokenizer.json", import.meta.url));

async function ok(args: string[]): Promise<string> {
  const run = await runCli(args);
  assert.equal(run.code, 0, `${args[0]}: ${run.stderr}`);
  return run.stdout;
}

Deno.test("eval --tune-rerank's best point is what eval scores for infer --rerank-tuned", async () => {
  await withTempDir(async (dir) => {
    const data = join(dir, "data"), model = join(dir, "model"), first = join(dir, "first");
    await ok(demoSequentialArgs(data, "--item-tokens", "title"));
    await ok([
      "init",
      "--data",
      data,
      "--preset",
      "tiny",
      "--hidden-size",
      "32",
      "--layers",
      "1",
      "--heads",
      "2",
      "--tokenizer",
      TOKENIZER,
      "--out",
      model,
      "--seed",
      "2",
      "--quiet",
    ]);
    const common = ["--data", data, "--split", "valid", "--tasks", "sequential"];
    // item-kNN's ranking (quick to fit) is the first stage: 50 candidates a record.
    await ok([
      "eval",
      ...common,
      "--baseline",
      "itemknn",
      "--top-k",
      "50",
      "--save-baselines",
      first,
      "--quiet",
    ]);
    const reranked = join(dir, "reranked.jsonl");
    const infer = [
      "infer",
      "--model",
      model,
      ...common,
      "--exclude-seen",
      "--trie-softmax",
      "--limit",
      "40",
      "--rerank",
      join(first, "itemknn.jsonl"),
      "--quiet",
    ];
    await ok([...infer, "--rerank-weight", "1", "--top-k", "50", "--out", reranked]);
    const tuningFile = join(dir, "tuning.json");
    const tuning = JSON.parse(await ok(["eval", ...common, "--tune-rerank", reranked]));
    await Deno.writeTextFile(tuningFile, JSON.stringify(tuning));
    assert.equal(tuning.records, 40);
    // Counts 10, 20 and 50: each list holds 50, so 100 would score the same lists as 50.
    assert.deepEqual([...new Set(tuning.points.map((p: { top: number }) => p.top))], [10, 20, 50]);
    assert.equal(tuning.points.length, 21 * 3);
    const ndcg = tuning.points.map((p: { metrics: Record<string, number> }) =>
      p.metrics["NDCG@10"]
    );
    assert.equal(tuning.best.metrics["NDCG@10"], Math.max(...ndcg));

    const applied = join(dir, "applied.jsonl");
    await ok([...infer, "--rerank-tuned", tuningFile, "--top-k", "10", "--out", applied]);
    const report = JSON.parse(
      await ok(["eval", ...common, "--predictions", applied, "--k", "5,10", "--quiet"]),
    );
    const m = report.methods.applied.sequential;
    assert.equal(m.count, 40);
    for (const key of ["HR@5", "NDCG@5", "HR@10", "NDCG@10"]) {
      assert.ok(Math.abs(m[key] - tuning.best.metrics[key]) < 1e-9, `${key}: ${m[key]}`);
    }
    // Weight 0 over the first 10 candidates is the first stage's own top 10, ties as it broke
    // them (each entry carries its place in the first stage's list).
    const ids = new Set(
      (await Deno.readTextFile(reranked)).trim().split("\n").map((l) => JSON.parse(l).id),
    );
    const firstLines = (await Deno.readTextFile(join(first, "itemknn.jsonl"))).trim().split("\n")
      .filter((l) => ids.has(JSON.parse(l).id));
    const firstOnly = join(dir, "first-only.jsonl");
    await Deno.writeTextFile(firstOnly, firstLines.join("\n") + "\n");
    const stage = JSON.parse(
      await ok(["eval", ...common, "--predictions", firstOnly, "--k", "10", "--quiet"]),
    ).methods["first-only"].sequential;
    const zero = tuning.points.find((p: { weight: number; top: number }) =>
      p.weight === 0 && p.top === 10
    );
    assert.ok(Math.abs(zero.metrics["NDCG@10"] - stage["NDCG@10"]) < 1e-9);
    // A file written with --top-k below the candidates holds part of each list: refused.
    const cut = join(dir, "cut.jsonl");
    await ok([...infer, "--rerank-weight", "1", "--top-k", "10", "--out", cut]);
    const partial = await runCli(["eval", ...common, "--tune-rerank", cut]);
    assert.equal(partial.code, 1);
    assert.match(
      partial.stderr,
      /cut\.jsonl line 1: record "[^"]+" holds 10 of the first stage's candidates \(places up to \d+\): write it with infer --top-k/,
    );

    // --beams does nothing where no beam search runs: reranking, or item tokens.
    const beams = await runCli([...infer, "--beams", "30", "--out", join(dir, "b.jsonl")]);
    assert.equal(beams.code, 2);
    assert.match(
      beams.stderr,
      /--beams applies to the beam search over titles; here the first stage's/,
    );
    const alone = infer.filter((a, i) => a !== "--rerank" && infer[i - 1] !== "--rerank");
    const tokens = await runCli([...alone, "--beams", "30", "--out", join(dir, "t.jsonl")]);
    assert.equal(tokens.code, 2);
    assert.match(tokens.stderr, /here each item's own token ranks every item in one step/);

    // The Markdown form names the best point.
    const md = await ok(["eval", ...common, "--tune-rerank", reranked, "--format", "md"]);
    assert.match(md, new RegExp(`Best: weight ${tuning.best.weight}, top ${tuning.best.top}`));

    // Misuse is a one-line error.
    const both = await runCli(["eval", ...common, "--tune-rerank", reranked, "--baseline", "pop"]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--tune-rerank scores its own file/);
    // Flags the tuning does not read are refused, not ignored.
    for (
      const extra of [["--k", "1,20"], ["--chart", join(dir, "t.svg")], ["--sample-users", "3"]]
    ) {
      const run = await runCli(["eval", ...common, "--tune-rerank", reranked, ...extra]);
      assert.equal(run.code, 2, extra.join(" "));
      assert.match(
        run.stderr,
        new RegExp(
          `--tune-rerank reads only --data, --split, --format \\(and --tasks, whose item records it tunes on\\): drop ${
            extra[0]
          }`,
        ),
      );
    }
    // --tasks chooses the records tuned on: none of the file's are direct ones.
    const direct = await runCli(
      ["eval", "--data", data, "--split", "valid", "--tasks", "direct", "--tune-rerank", reranked],
    );
    assert.equal(direct.code, 1);
    assert.match(direct.stderr, /no lines of the tasks asked: nothing to tune on/);
    // Tuning on the test split (eval's default), whose figures are the ones reported, is
    // refused whatever the file; a test file given as validation says what to write instead.
    const test = await runCli(["eval", "--data", data, "--tune-rerank", reranked]);
    assert.equal(test.code, 2);
    assert.match(
      test.stderr,
      /^error: the fusion is tuned on the validation split, then applied to test: give --split valid$/m,
    );
    const testFile = join(dir, "test-reranked.jsonl");
    const firstTest = join(dir, "first-test");
    await ok([
      ...["eval", "--data", data, "--tasks", "sequential", "--baseline", "itemknn"],
      ...["--top-k", "50", "--save-baselines", firstTest, "--quiet"],
    ]);
    const onTest = infer.map((a, i) =>
      infer[i - 1] === "--split"
        ? "test"
        : infer[i - 1] === "--rerank"
        ? join(firstTest, "itemknn.jsonl")
        : a
    );
    await ok([...onTest, "--rerank-weight", "1", "--top-k", "50", "--out", testFile]);
    const asValid = await runCli(["eval", ...common, "--tune-rerank", testFile]);
    assert.equal(asValid.code, 1);
    assert.match(
      asValid.stderr,
      /test-reranked\.jsonl: record "[^"]+" is not an item record of the valid split of .* \(it is a test record: tune on the validation split's, infer --split valid\)/,
    );
    // A tuning made on the test split (before eval refused to make one) is refused.
    const onTestFile = join(dir, "tuned-on-test.json");
    await Deno.writeTextFile(onTestFile, JSON.stringify({ ...tuning, split: "test" }));
    const self = await runCli([
      ...onTest,
      "--rerank-tuned",
      onTestFile,
      "--out",
      join(dir, "s.jsonl"),
    ]);
    assert.equal(self.code, 1);
    assert.match(
      self.stderr,
      /tuned-on-test\.json: tuned on the test split, whose figures it would choose: tune on the validation split \(eval --tune-rerank with --split valid\)/,
    );
    // A file written with another weight keeps the first stage's order where the model's weight
    // is small: a list cut by --top-k would look whole, so only weight 1 is tuned on.
    const light = join(dir, "light.jsonl");
    await ok([...infer, "--rerank-weight", "0", "--top-k", "50", "--out", light]);
    const notModel = await runCli(["eval", ...common, "--tune-rerank", light]);
    assert.equal(notModel.code, 1);
    assert.match(
      notModel.stderr,
      /light\.jsonl line 1: record "[^"]+": its scores are not the model's \(score .*\): write it with infer --rerank-weight 1/,
    );
    // An empty file, or a record twice, is an error naming the file (and the line).
    const empty = join(dir, "empty.jsonl");
    await Deno.writeTextFile(empty, "");
    const none = await runCli(["eval", ...common, "--tune-rerank", empty]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /empty\.jsonl: no lines: nothing to tune on/);
    const twice = join(dir, "twice.jsonl");
    const text = await Deno.readTextFile(reranked);
    await Deno.writeTextFile(twice, text + text);
    const again = await runCli(["eval", ...common, "--tune-rerank", twice]);
    assert.equal(again.code, 1);
    assert.match(
      again.stderr,
      /twice\.jsonl line 41: a second line for record "[^"]+" \(first on line 1\)/,
    );
    const plain = join(dir, "plain.jsonl");
    await ok([...infer, "--rerank-weight", "0.5", "--top-k", "10", "--out", plain]);
    const noScores = await runCli([
      "eval",
      ...common,
      "--tune-rerank",
      join(first, "itemknn.jsonl"),
    ]);
    assert.equal(noScores.code, 1);
    assert.match(
      noScores.stderr,
      /itemknn\.jsonl line 1: an entry without lm_score and first_score/,
    );
    const orphan = await runCli([
      ...infer.filter((a, i) => a !== "--rerank" && infer[i - 1] !== "--rerank"),
      "--rerank-weight",
      "0.5",
      "--out",
      join(dir, "x.jsonl"),
    ]);
    assert.equal(orphan.code, 2);
    assert.match(orphan.stderr, /--rerank-weight and --rerank-top need --rerank FILE/);
  });
});
