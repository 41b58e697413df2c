import assert from "node:assert/strict";
import { join } from "node:path";
import { demoFileNames, demoStages, demoVerdict } from "../lib/demo/plan.ts";
import { DEFAULT_BASELINE } from "../lib/baselines/baseline.ts";
import { type CliRun, runCliProcess } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp.ts";

function demo(...args: string[]): Promise<CliRun> {
  return runCliProcess(["demo", ...args]);
}

Deno.test("the demo runs every stage end to end and ends with the results table", async () => {
  await withTempDir(async (tmp) => {
    // A path with a space: each command printed reads back in a shell.
    const out = join(tmp, "my demo");
    // A few steps and a handful of records: this checks the wiring, not the quality.
    const run = await demo("--out", out, "--steps", "3", "--limit", "12");
    assert.equal(run.code, 0, run.stderr);
    for (const stage of ["textualize", "init", "pretrain", "infer", "eval"]) {
      assert.match(run.stderr, new RegExp(`\\$ recsysllm ${stage} `), `${stage} was not run`);
    }
    assert.ok(run.stderr.includes(`--out '${join(out, "data")}'`), "the path quoted");
    assert.match(run.stdout, /\| method \| HR@1 \| HR@5 \| NDCG@5 \| HR@10 \| NDCG@10 \|/);
    assert.match(
      run.stdout,
      // 12 records: figures, but no verdict.
      /sequential HR@10 on \d+ record\(s\): recsysllm \d\.\d{4}, pop \d\.\d{4}, itemknn \d\.\d{4}, sasrec \d\.\d{4} \(too few records for a verdict/,
    );

    const report = JSON.parse(await Deno.readTextFile(join(out, "eval.json")));
    assert.deepEqual(Object.keys(report.methods), [
      "recsysllm",
      "pop",
      "itemknn",
      "sasrec",
      "mean",
    ]);
    const lines = (await Deno.readTextFile(join(out, "recsysllm.jsonl"))).trim().split("\n");
    assert.equal(lines.length, 12);
    const items = new Set(
      JSON.parse(await Deno.readTextFile(join(out, "data", "entities.json")))
        .filter((e: { kind: string }) => e.kind === "item").map((e: { entity: string }) =>
          e.entity
        ),
    );
    for (const line of lines.map((l) => JSON.parse(l))) {
      for (const p of line.predictions ?? []) {
        assert.ok(items.has(p.entity), `${p.entity} is not an item`);
      }
    }
    const metrics = (await Deno.readTextFile(join(out, "run", "metrics.jsonl"))).trim().split("\n");
    assert.equal(JSON.parse(metrics.at(-1)!).step, 3);
    assert.ok((await Deno.stat(join(out, "eval.svg"))).size > 1000);

    // A second run replaces the first, but not once a file of the user's is in it; a directory
    // the demo did not make is left alone.
    await Deno.writeTextFile(join(out, "notes.txt"), "mine");
    const kept = await demo("--out", out, "--steps", "1", "--limit", "2");
    assert.equal(kept.code, 1);
    assert.match(kept.stderr, /holds files the demo did not write \(notes\.txt\)/);
    assert.equal(await Deno.readTextFile(join(out, "notes.txt")), "mine");
    await Deno.remove(join(out, "notes.txt"));
    const before = (await Deno.stat(join(out, "eval.json"))).mtime!.getTime();
    const again = await demo("--out", out, "--steps", "1", "--limit", "2");
    assert.equal(again.code, 0, again.stderr);
    assert.ok((await Deno.stat(join(out, "eval.json"))).mtime!.getTime() >= before);
    const foreign = join(tmp, "mine");
    await Deno.mkdir(foreign);
    await Deno.writeTextFile(join(foreign, "notes.txt"), "keep me");
    const refused = await demo("--out", foreign, "--steps", "1");
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /exists and was not made by the demo/);
    assert.equal(await Deno.readTextFile(join(foreign, "notes.txt")), "keep me");
  });
});

Deno.test("the demo verdict compares next-item HR@10 with the baselines", () => {
  const report = (ours: number) => ({
    methods: {
      recsysllm: { sequential: { "HR@10": ours } },
      pop: { sequential: { "HR@10": 0.08 } },
      itemknn: { sequential: { "HR@10": 0.5 } },
      mean: { rating: { RMSE: 0.8 } },
    },
  });
  assert.equal(
    demoVerdict(report(0.19)),
    "sequential HR@10: recsysllm 0.1900, pop 0.0800, itemknn 0.5000 (recsysllm beats pop; below itemknn)",
  );
  assert.match(demoVerdict(report(0.6))!, /\(recsysllm beats pop, itemknn\)$/);
  assert.match(demoVerdict(report(0.5))!, /\(recsysllm beats pop; level with itemknn\)$/);
  assert.match(demoVerdict(report(0.05))!, /beats none of them: train longer/);
  assert.equal(demoVerdict({ methods: { pop: {} } }), undefined);
});

Deno.test("demo --family runs the pipeline on a random decoder checkpoint with LoRA", async () => {
  await withTempDir(async (tmp) => {
    const out = join(tmp, "demo");
    const run = await demo("--out", out, "--family", "qwen2", "--steps", "2", "--limit", "2");
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /\$ recsysllm init .*--family qwen2/);
    assert.match(run.stderr, /\$ recsysllm infer .*--adapter/);
    const config = JSON.parse(await Deno.readTextFile(join(out, "model", "config.json")));
    assert.equal(config.model_type, "qwen2");
    const adapter = JSON.parse(await Deno.readTextFile(join(out, "run", "adapter_config.json")));
    assert.deepEqual(adapter.target_modules, ["q_proj", "k_proj", "v_proj"]);
    const report = JSON.parse(await Deno.readTextFile(join(out, "eval.json")));
    assert.ok("recsysllm" in report.methods);
    const lines = (await Deno.readTextFile(join(out, "recsysllm.jsonl"))).trim().split("\n");
    assert.equal(lines.length, 2);
  });
});

Deno.test("demo --recipe: sequential with the demo's settings by default; none: the plain stages", () => {
  const lines = (recipe?: string) =>
    demoStages({ out: "/tmp/d", recipe }).map((stage) => stage.args.join(" "));
  const tuned = lines("sequential"), plain = lines("none");
  assert.deepEqual(lines(), tuned);
  const at = (name: string) => tuned.findIndex((line) => line.startsWith(`${name} `));
  assert.match(tuned[at("textualize")], / --profile-sample 30( |$)/);
  assert.match(tuned[at("init")], / --preset tiny --hidden-size 128( |$)/);
  assert.match(
    tuned[at("pretrain")],
    / --recipe sequential --task-weights profile=20,sequential=1 /,
  );
  for (const name of ["textualize", "init", "pretrain"]) {
    assert.doesNotMatch(plain[at(name)], /--recipe|--task-weights|--profile-sample|--hidden-size/);
  }
  // The other stages are the same.
  const changed = ["textualize", "init", "pretrain"].map(at);
  tuned.forEach((line, i) => changed.includes(i) || assert.equal(line, plain[i]));
});

Deno.test("demo: the model ranks as its baselines do, each user's history left out", () => {
  for (const rerank of ["none", "sasrec"]) {
    const stages = demoStages({ out: "/tmp/d", rerank });
    const infers = stages.filter((s) => s.args[0] === "infer");
    assert.equal(infers.length, rerank === "sasrec" ? 2 : 1);
    for (const stage of infers) assert.ok(stage.args.includes("--exclude-seen"), stage.name);
    // The baselines' eval keeps eval's default, which leaves the history out.
    const baselines = stages.find((s) => s.name === "baselines")!.args;
    assert.ok(!baselines.includes("--include-seen"));
    assert.equal(DEFAULT_BASELINE.excludeSeen, true);
  }
});

Deno.test("demo --rerank sasrec: SASRec's candidates reranked by the fusion tuned on validation; by default the model ranks alone", () => {
  const stages = (rerank?: string) => demoStages({ out: "/tmp/d", rerank });
  const two = stages("sasrec"), alone = stages("none");
  // The model alone is the default.
  assert.deepEqual(stages().map((s) => s.args), alone.map((s) => s.args));
  const names = two.map((s) => s.name);
  // Tuned on validation before anything touches the test split; the test candidates are saved
  // by the baselines' eval before infer reads them.
  assert.deepEqual(names.slice(3), [
    "first stage (validation)",
    "rerank (validation)",
    "tune",
    "baselines",
    "infer",
    "eval",
    "report",
  ]);
  const line = (name: string) => two.find((s) => s.name === name)!.args.join(" ");
  assert.match(
    line("first stage (validation)"),
    /--split valid .*--baseline sasrec .*--save-baselines \/tmp\/d\/first-valid/,
  );
  assert.match(
    line("rerank (validation)"),
    /--split valid .*--rerank \/tmp\/d\/first-valid\/sasrec\.jsonl --rerank-weight 1/,
  );
  assert.match(line("tune"), /--split valid --tune-rerank \/tmp\/d\/valid-reranked\.jsonl/);
  assert.equal(two.find((s) => s.name === "tune")!.stdout, "rerank-tuning.json");
  assert.match(
    line("infer"),
    /--rerank \/tmp\/d\/baselines\/sasrec\.jsonl --rerank-tuned \/tmp\/d\/rerank-tuning\.json/,
  );
  assert.ok(!line("infer").includes("--split"), "infer answers the test split");
  // Alone: no validation stages, no --rerank; the rest is the same.
  assert.deepEqual(alone.map((s) => s.name).slice(3), ["baselines", "infer", "eval", "report"]);
  assert.ok(alone.every((s) => !s.args.includes("--rerank")));
  for (const name of ["baselines", "eval", "report"]) {
    assert.deepEqual(
      alone.find((s) => s.name === name)!.args,
      two.find((s) => s.name === name)!.args,
    );
  }
});

Deno.test("the names a demo of either variant leaves are known, so a rerun clears them", () => {
  const names = demoFileNames();
  for (const name of ["first-valid.json", "infer-valid.json", "eval.json", "recsysllm.jsonl"]) {
    assert.ok(names.has(name), name);
  }
  for (const stage of demoStages({ out: "." })) {
    if (stage.stdout) assert.ok(names.has(stage.stdout));
  }
});
