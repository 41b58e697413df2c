import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, runCliProcess, startCli } from "./helpers/cli.ts";
import type { EntityEntry, Manifest, TextRecord } from "../lib/data/types.ts";
import { checkPredictionLine } from "../lib/eval/predictions.ts";
import { type InferLine, runInference } from "../lib/generate/mod.ts";
import { OptionError } from "../lib/errors.ts";
import { configJson } from "../lib/model/config.ts";
import { saveWeights } from "../lib/model/weights.ts";
import { Rng } from "../lib/random.ts";
import { mergeAdapter, saveAdapter } from "../lib/model/adapter.ts";
import { DEFAULT_LORA, initLora } from "../lib/model/lora.ts";
import { TINY, tinyWeights, TOKENIZER, writeModelDir } from "./helpers/infer.ts";
import { processTempDir, withTempDir } from "./helpers/temp.ts";
import { demoSequentialArgs } from "./helpers/textualize.ts";
import { UserSample } from "../lib/data/user_sample.ts";
import { fileURLToPath } from "node:url";

// fixtures/eval/tiny: 5 users, 8 items and one brand; test split of 19 records (7 sequential,
// 5 direct, 4 rating, 2 explanation, 1 review), candidate lists in candidates.jsonl.
const DATA = fileURLToPath(new URL("../fixtures/eval/tiny", import.meta.url));
const entities: EntityEntry[] = JSON.parse(await Deno.readTextFile(join(DATA, "entities.json")));
const ITEMS = new Set(entities.filter((e) => e.kind === "item").map((e) => e.entity));
const manifest: Manifest = JSON.parse(await Deno.readTextFile(join(DATA, "manifest.json")));
const records: TextRecord[] = (await Deno.readTextFile(join(DATA, "test.jsonl")))
  .split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
const byId = new Map(records.map((r) => [r.id, r]));

const weights = tinyWeights(TINY, 3);
const MODEL = await processTempDir();
await writeModelDir(MODEL, TINY, weights);

async function run(...args: string[]): Promise<{ code: number; err: string }> {
  const { code, stderr } = await runCli(["infer", "--quiet", "--device", "cpu", ...args]);
  return { code, err: stderr };
}

async function infer(dir: string, ...args: string[]): Promise<InferLine[]> {
  const out = join(dir, `pred-${Math.random().toString(36).slice(2)}.jsonl`);
  const result = await run("--model", MODEL, "--data", DATA, "--out", out, ...args);
  assert.equal(result.code, 0, result.err);
  const lines = (await Deno.readTextFile(out)).split("\n").filter((l) => l !== "");
  return lines.map((l, i) => checkPredictionLine(JSON.parse(l), out, i + 1) as InferLine);
}

Deno.test("infer answers every record of the split in order, in the format eval reads", async () => {
  await withTempDir(async (dir) => {
    const lines = await infer(dir, "--top-k", "5", "--beams", "12", "--max-new-tokens", "6");
    assert.deepEqual(lines.map((l) => l.id), records.map((r) => r.id));
    for (const line of lines) {
      const record = byId.get(line.id)!;
      assert.equal(line.task, record.task);
      assert.equal(line.user, record.user);
      assert.equal(line.template, record.template);
      if (record.task === "sequential" || record.task === "direct") {
        const names = line.predictions!.map((p) => p.entity);
        assert.equal(names.length, 5);
        assert.equal(new Set(names).size, 5);
        for (const n of names) assert.ok(ITEMS.has(n), `${n} is an item of the pool`);
        const scores = line.predictions!.map((p) => p.score!);
        for (let i = 1; i < scores.length; i++) assert.ok(scores[i - 1] >= scores[i]);
      } else if (record.task === "rating") {
        const values = manifest.rating_values;
        assert.ok(line.rating! >= values[0] && line.rating! <= values.at(-1)!);
        assert.ok(values.includes(line.most_likely!));
      } else {
        assert.equal(typeof line.text, "string");
        assert.equal(line.text, line.text!.trim());
      }
    }
    // eval takes the file as it is.
    const out = join(dir, "all.jsonl");
    await Deno.writeTextFile(out, lines.map((l) => JSON.stringify(l) + "\n").join(""));
    const scored = await runCli(["eval", "--quiet", "--data", DATA, "--predictions", out]);
    assert.equal(scored.code, 0, scored.stderr);
  });
});

Deno.test("--protocol sampled ranks the record's candidates; --exclude-seen drops the history", async () => {
  await withTempDir(async (dir) => {
    const sampled = await infer(dir, "--protocol", "sampled", "--tasks", "sequential,direct");
    const full = await infer(dir, "--tasks", "sequential,direct", "--exclude-seen", "--top-k", "8");
    const seenSampled = await infer(
      dir,
      "--protocol",
      "sampled",
      "--tasks",
      "direct",
      "--exclude-seen",
    );
    const candidates = new Map<string, string[]>();
    for (const line of (await Deno.readTextFile(join(DATA, "candidates.jsonl"))).split("\n")) {
      if (line.trim() === "") continue;
      const c = JSON.parse(line);
      if (c.split !== "test") continue;
      const names = c.items.map((id: string) => entities.find((e) => e.id === id)!.entity);
      candidates.set(c.user, names);
    }
    assert.equal(sampled.length, 12);
    for (const line of sampled) {
      const list = candidates.get(line.user!)!;
      assert.deepEqual(line.predictions!.map((p) => p.entity).sort(), [...list].sort());
    }
    for (const line of [...full, ...seenSampled]) {
      const history = byId.get(line.id)!.history!;
      assert.ok(history.length > 0);
      for (const p of line.predictions!) assert.ok(!history.includes(p.entity), p.entity);
    }
    // Without the history there are 8 - |history| items left to rank over the pool.
    for (const line of full) {
      assert.equal(line.predictions!.length, ITEMS.size - byId.get(line.id)!.history!.length);
    }
  });
});

Deno.test("--task, --template and --limit select records", async () => {
  await withTempDir(async (dir) => {
    const seq2 = await infer(dir, "--tasks", "sequential", "--template", "seq-2");
    assert.deepEqual(
      seq2.map((l) => l.id),
      records.filter((r) => r.template === "seq-2").map((r) => r.id),
    );
    const limited = await infer(dir, "--tasks", "rating,review", "--limit", "3");
    assert.deepEqual(
      limited.map((l) => l.id),
      records.filter((r) => r.task === "rating" || r.task === "review").slice(0, 3).map((r) =>
        r.id
      ),
    );
  });
});

Deno.test("batch size does not change a byte of the predictions", async () => {
  await withTempDir(async (dir) => {
    for (const protocol of ["full", "sampled"]) {
      const one = await infer(
        dir,
        "--protocol",
        protocol,
        "--batch-size",
        "1",
        "--max-new-tokens",
        "5",
      );
      const many = await infer(
        dir,
        "--protocol",
        protocol,
        "--batch-size",
        "7",
        "--max-new-tokens",
        "5",
      );
      assert.deepEqual(one, many);
    }
  });
});

Deno.test("an adapter merged at load predicts as the model with the merged weights", async () => {
  await withTempDir(async (dir) => {
    const lora = { ...DEFAULT_LORA, rank: 4, alpha: 8, targets: ["query_key_value", "dense"] };
    const adapterWeights = initLora(TINY, lora, new Rng(5));
    const rng = new Rng(6);
    for (const [name, data] of adapterWeights) {
      if (name.includes("lora_B")) { for (let i = 0; i < data.length; i++) data[i] = rng.normal(); }
    }
    const adapter = join(dir, "adapter");
    await saveAdapter(adapter, { lora, weights: adapterWeights }, TINY);
    const merged = join(dir, "merged");
    await writeModelDir(
      merged,
      TINY,
      mergeAdapter(weights, TINY, { lora, weights: adapterWeights }),
    );
    const args = ["--tasks", "sequential,rating", "--top-k", "4"];
    const viaAdapter = await infer(dir, "--adapter", adapter, ...args);
    const out = join(dir, "merged.jsonl");
    const r = await run("--model", merged, "--data", DATA, "--out", out, ...args);
    assert.equal(r.code, 0, r.err);
    const viaMerged: InferLine[] = (await Deno.readTextFile(out)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    const base = await infer(dir, ...args);
    assert.deepEqual(viaAdapter, viaMerged);
    assert.notDeepEqual(viaAdapter, base, "the adapter changes the predictions");
  });
});

Deno.test("--out - writes the lines to stdout", async () => {
  const { code, stdout, stderr } = await runCliProcess([
    "infer",
    "--quiet",
    "--device",
    "cpu",
    "--model",
    MODEL,
    "--data",
    DATA,
    "--tasks",
    "rating",
    "--out",
    "-",
  ]);
  assert.equal(code, 0, stderr);
  const lines = stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => l.id),
    records.filter((r) => r.task === "rating").map((r) => r.id),
  );
});

// ---- bad input -------------------------------------------------------------------------------

async function expectError(code: number, pattern: RegExp, ...args: string[]): Promise<void> {
  await withTempDir(async (dir) => {
    const out = join(dir, "pred.jsonl");
    const hasData = args.includes("--data");
    const hasModel = args.includes("--model");
    const r = await run(
      ...(hasModel ? [] : ["--model", MODEL]),
      ...(hasData ? [] : ["--data", DATA]),
      "--out",
      out,
      ...args,
    );
    assert.equal(r.code, code, r.err);
    assert.match(r.err, pattern);
    assert.equal(r.err.trim().split("\n").length, 1, `one line: ${r.err}`);
    assert.deepEqual([...Deno.readDirSync(dir)], [], "nothing written");
  });
}

Deno.test("a model whose vocab_size is smaller than its tokenizer's is refused", async () => {
  await withTempDir(async (dir) => {
    const config = { ...TINY, vocabSize: TINY.vocabSize - 1 };
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(configJson(config)));
    await Deno.copyFile(TOKENIZER, join(dir, "tokenizer.json"));
    await saveWeights(join(dir, "model.safetensors"), config, tinyWeights(config, 1));
    const v = TINY.vocabSize;
    await expectError(
      1,
      new RegExp(`vocab_size ${v - 1} is smaller than the ${v} ids`),
      "--model",
      dir,
    );
  });
});

Deno.test("entities the model's tokenizer cannot represent are refused", async () => {
  await withTempDir(async (dir) => {
    await writeModelDir(dir, TINY, weights);
    const json = JSON.parse(await Deno.readTextFile(TOKENIZER));
    json.normalizer = { type: "Lowercase" }; // " Alpha Lipstick" would come back lower-cased
    await Deno.writeTextFile(join(dir, "tokenizer.json"), JSON.stringify(json));
    await expectError(
      1,
      /entities\.json: entity "Alpha Lipstick" decodes as "alpha lipstick"/,
      "--model",
      dir,
    );
  });
});

Deno.test("adapters that are missing, misshaped or from another tokenizer are refused", async () => {
  await expectError(1, /adapter not found/, "--adapter", "/nonexistent/adapter");
  await withTempDir(async (dir) => {
    const other = { ...TINY, hiddenSize: 16 };
    const lora = { ...DEFAULT_LORA, rank: 2 };
    await saveAdapter(
      join(dir, "wide"),
      { lora, weights: initLora(other, lora, new Rng(1)) },
      other,
    );
    await expectError(
      1,
      /lora_A\.weight" has shape \[2, 16\], expected \[2, 32\]/,
      "--adapter",
      join(dir, "wide"),
    );
    const fits = join(dir, "fits");
    await saveAdapter(fits, { lora, weights: initLora(TINY, lora, new Rng(1)) }, TINY);
    const json = JSON.parse(await Deno.readTextFile(TOKENIZER));
    json.added_tokens.push({ id: 5000, content: "[X]", special: true });
    await Deno.writeTextFile(join(fits, "tokenizer.json"), JSON.stringify(json));
    await expectError(1, /tokenizer\.json: differs from .*another tokenizer/, "--adapter", fits);
    await Deno.remove(join(fits, "tokenizer.json"));
    const config = JSON.parse(await Deno.readTextFile(join(fits, "adapter_config.json")));
    config.tokenizer_sha256 = "0".repeat(64);
    await Deno.writeTextFile(join(fits, "adapter_config.json"), JSON.stringify(config));
    await expectError(1, /tokenizer_sha256 0+ is not that of/, "--adapter", fits);
    // The adapter's directory given as the model: said so, with the flags that fit.
    const asModel = await run("--model", fits, "--data", DATA, "--out", join(dir, "p.jsonl"));
    assert.equal(asModel.code, 1);
    assert.match(
      asModel.err,
      /fits: holds a LoRA adapter, not a model: give its base model as --model and this directory as --adapter$/m,
    );
  });
});

Deno.test("unknown tasks and templates are usage errors; a missing split is an input error", async () => {
  await expectError(2, /--tasks must list tasks of/, "--tasks", "sequential,summarize");
  await expectError(2, /--template "seq-9" is not a template/, "--template", "seq-9");
  await expectError(
    2,
    /--template "seq-1" is a sequential template, not in --tasks/,
    "--tasks",
    "rating",
    "--template",
    "seq-1",
  );
  await expectError(2, /--split must be one of/, "--split", "dev");
  await withTempDir(async (data) => {
    for (const f of ["entities.json", "manifest.json", "test.jsonl"]) {
      await Deno.copyFile(join(DATA, f), join(data, f));
    }
    await expectError(
      1,
      /valid\.jsonl: split "valid" does not exist/,
      "--data",
      data,
      "--split",
      "valid",
    );
    // Without candidates.jsonl the sampled protocol has nothing to rank: an error, no file.
    await expectError(
      1,
      /no candidates to rank \(the sampled protocol needs the user.s line in the dataset.s candidates\.jsonl\)/,
      "--data",
      data,
      "--protocol",
      "sampled",
    );
  });
});

Deno.test("a seed without its sample, the sampled protocol on train, a profile template and a title rerank under the trie softmax are refused before the model loads", async () => {
  const noModel = ["--model", join(DATA, "no-model")]; // never opened: refused first
  // The seed of a sample not drawn would do nothing (eval refuses it alike).
  await expectError(
    2,
    /^error: --sample-seed chooses the sample --sample-users draws; give it$/m,
    ...noModel,
    "--sample-seed",
    "3",
  );
  // Training records have no candidate lists: the run stopped at its first item record, after
  // the model loaded.
  await expectError(
    2,
    /^error: --protocol sampled ranks each record's candidates, and --split train has none /m,
    ...noModel,
    ...["--split", "train", "--tasks", "sequential", "--protocol", "sampled"],
  );
  // Not "not in --tasks" when --tasks was not given: no task has it.
  await expectError(
    2,
    /^error: --template "profile-1" is a profile template, which has no answer to predict \(infer answers sequential, direct, rating, explanation, review\)$/m,
    ...noModel,
    "--template",
    "profile-1",
  );
  // A rerank of titles has no trie softmax to rerank by: the predictor said so once the model
  // had loaded.
  await withTempDir(async (dir) => {
    const stage = join(dir, "stage.jsonl");
    await Deno.writeTextFile(stage, "");
    await expectError(
      2,
      /^error: --trie-softmax with --rerank needs a dataset with item tokens; titles are reranked under the vocabulary's softmax$/m,
      ...noModel,
      ...["--tasks", "sequential", "--rerank", stage, "--trie-softmax"],
    );
  });
});

Deno.test("a task given with none of its templates, and options of answers the run gives none of, are refused", async () => {
  // Asked for ratings, with a sequential template only: no rating would be answered.
  await expectError(
    2,
    /--tasks has rating, but none of --template is a rating template \(rating-1, rating-2, rating-3\): no rating record would be answered/,
    "--tasks",
    "sequential,rating",
    "--template",
    "seq-1",
  );
  // Options of the item search on a run that answers ratings only (by --tasks, or by --template
  // with every task by default), and of text on an item run: each would be ignored.
  for (const [flag, ...value] of [["--trie-softmax"], ["--beams", "5"], ["--exclude-seen"]]) {
    await expectError(
      2,
      new RegExp(
        `^error: ${flag} applies to item tasks \\(sequential, direct\\); this run answers rating$`,
        "m",
      ),
      "--tasks",
      "rating",
      flag,
      ...value,
    );
  }
  await expectError(
    2,
    /^error: --protocol applies to item tasks \(sequential, direct\); this run answers rating$/m,
    "--template",
    "rating-2",
    "--protocol",
    "sampled",
  );
  await expectError(
    2,
    /^error: --max-new-tokens applies to text tasks \(explanation, review\); this run answers sequential$/m,
    "--tasks",
    "sequential",
    "--max-new-tokens",
    "8",
  );
});

Deno.test("infer and eval --sample-users answer and score the same seeded users", async () => {
  await withTempDir(async (dir) => {
    const users = [...new Set(records.map((r) => r.user))];
    const sample = new UserSample({ size: 2, users: manifest.users ?? users.length, seed: 4 });
    const chosen = new Set(users.filter((u) => sample.has(u)));
    assert.ok(chosen.size > 0 && chosen.size < users.length, `seed 4 picks ${chosen.size}`);
    const wanted = records.filter((r) => r.task === "sequential" && chosen.has(r.user));
    const lines = await infer(
      dir,
      "--tasks=sequential",
      "--sample-users=2",
      "--sample-seed=4",
      "--top-k=3",
    );
    assert.deepEqual(lines.map((l) => l.id), wanted.map((r) => r.id));
    const out = join(dir, "sampled.jsonl");
    await Deno.writeTextFile(out, lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
    const scored = await runCli([
      "eval",
      "--quiet",
      "--data",
      DATA,
      "--predictions",
      out,
      "--tasks=sequential",
      "--sample-users=2",
      "--sample-seed=4",
      "--strict",
    ]);
    assert.equal(scored.code, 0, scored.stderr);
    const report = JSON.parse(scored.stdout);
    assert.deepEqual(Object.keys(report.methods), ["sampled"]);
    assert.equal(report.methods.sampled.sequential.count, wanted.length);
    assert.equal(report.methods.sampled.sequential.missing, 0);
  });
});

Deno.test("infer --out - ends quietly (status 0) when its reader closes stdout", async () => {
  // `infer --out - | head -1`: the reader leaves after the first lines; the rest is not wanted.
  // Lines are written a window of 64 batches at a time: the second window meets the closed pipe.
  await withTempDir(async (dir) => {
    const data = join(dir, "data"), model = join(dir, "model");
    const ok = async (args: string[]) => assert.equal((await runCli(args)).code, 0, args[0]);
    await ok(demoSequentialArgs(data));
    await ok([
      ...["init", "--data", data, "--preset", "tiny", "--hidden-size", "16", "--layers", "1"],
      ...["--heads", "2", "--tokenizer", TOKENIZER, "--out", model, "--quiet"],
    ]);
    const run = await startCli([
      ...["infer", "--quiet", "--device", "cpu", "--model", model, "--data", data, "--out", "-"],
      ...["--tasks", "sequential", "--limit", "140", "--batch-size", "1", "--workers", "1"],
      ...["--beams", "2", "--top-k", "2"],
    ], { stdoutBytes: 1 }).result();
    assert.ok(run.stdout.length > 0);
    assert.equal(run.stderr, "");
    assert.equal(run.code, 0);
  });
});

Deno.test("text records write what fits the model's length when --max-new-tokens does not", async () => {
  await withTempDir(async (dir) => {
    // TINY's length (256) cannot hold a prompt plus 4,000 new tokens: each record writes up to the
    // room its instruction leaves, instead of the run stopping at the first.
    const lines = await infer(dir, "--tasks", "explanation,review", "--max-new-tokens", "4000");
    assert.equal(lines.length, 3);
    for (const line of lines) assert.equal(typeof line.text, "string");
  });
});

Deno.test("--protocol sampled refuses a candidate that is no item, or one listed twice", async () => {
  await withTempDir(async (dir) => {
    const data = join(dir, "data");
    await Deno.mkdir(data);
    for await (const entry of Deno.readDir(DATA)) {
      await Deno.copyFile(join(DATA, entry.name), join(data, entry.name));
    }
    const record = records.find((r) => r.task === "sequential")!;
    const item = [...ITEMS][0];
    for (
      const [candidates, message] of [
        [
          [item, "Totally Made Up Product, 5 ml"],
          /candidate "Totally Made Up Product, 5 ml" is not an item of entities\.json/,
        ],
        [[item, item], /candidate ".*" is listed twice/],
      ] as const
    ) {
      await Deno.writeTextFile(
        join(data, "test.jsonl"),
        JSON.stringify({ ...record, candidates }) + "\n",
      );
      const out = join(dir, "p.jsonl");
      const result = await run(
        ...["--model", MODEL, "--data", data, "--out", out, "--protocol", "sampled"],
      );
      assert.equal(result.code, 1, result.err);
      assert.match(result.err, new RegExp(`record "${record.id}": ` + message.source));
    }
  });
});

Deno.test("--beams below --top-k is refused where a beam search runs; elsewhere --beams is", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "p.jsonl");
    const args = ["--model", MODEL, "--data", DATA, "--out", out, "--top-k", "30", "--beams", "5"];
    // Ranking each record's candidates searches no items: --beams would do nothing, refused.
    const sampled = await run(...args, "--tasks", "sequential", "--protocol", "sampled");
    assert.equal(sampled.code, 2);
    assert.match(
      sampled.err,
      /--beams applies to the beam search over titles; here the record's candidates are ranked/,
    );
    const items = await run(...args, "--tasks", "sequential");
    assert.equal(items.code, 2);
    assert.match(items.err, /--top-k 30 needs at least as many --beams \(got 5\)/);
  });
});

Deno.test("a selection of no record warns that the predictions file is empty", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "p.jsonl");
    const { code, stderr } = await runCli([
      "infer",
      ...["--device", "cpu", "--model", MODEL, "--data", DATA, "--out", out],
      // One sampled user of five, whose test split has no review (only one user's has).
      ...["--tasks", "review", "--sample-users", "1", "--sample-seed", "1", "--quiet"],
    ]);
    assert.equal(code, 0, stderr);
    assert.match(stderr, /^warning: no record of test\.jsonl was selected \(19 read\)/m);
    assert.equal(await Deno.readTextFile(out), "");
  });
});

Deno.test("runInference refuses a count below 1 as an option error before it writes or loads anything", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "pred.jsonl");
    for (const bad of [{ batchSize: 0 }, { topK: 1.5 }, { maxNewTokens: -1 }]) {
      await assert.rejects(
        () =>
          runInference({
            model: join(dir, "no-model"), // never opened: the options are checked first
            data: DATA,
            out,
            split: "test",
            ...bad,
          }),
        (e: Error) =>
          e instanceof OptionError &&
          e.option === Object.keys(bad)[0] && /must be a whole number >= 1/.test(e.message),
      );
    }
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
  });
});

Deno.test("infer's summary names the tasks answered: --template alone narrows them", async () => {
  await withTempDir(async (dir) => {
    const r = await runCli([
      ...["infer", "--quiet", "--device", "cpu", "--model", MODEL, "--data", DATA],
      ...["--out", join(dir, "p.jsonl"), "--template", "rating-1"],
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).tasks, ["rating"]);
    // A task the dataset does not have (textualize skipped it) is not named either.
    const data = join(dir, "data");
    await Deno.mkdir(data);
    for await (const entry of Deno.readDir(DATA)) {
      await Deno.copyFile(join(DATA, entry.name), join(data, entry.name));
    }
    const manifest = JSON.parse(await Deno.readTextFile(join(data, "manifest.json")));
    manifest.tasks.review = { status: "skipped", reason: "no review texts" };
    await Deno.writeTextFile(join(data, "manifest.json"), JSON.stringify(manifest));
    const test = (await Deno.readTextFile(join(data, "test.jsonl"))).split("\n")
      .filter((l) => !l.includes('"task":"review"')).join("\n");
    await Deno.writeTextFile(join(data, "test.jsonl"), test);
    const all = await runCli([
      ...["infer", "--quiet", "--device", "cpu", "--model", MODEL, "--data", data],
      ...["--out", join(dir, "all.jsonl"), "--limit", "3"],
    ]);
    assert.equal(all.code, 0, all.stderr);
    assert.ok(!JSON.parse(all.stdout).tasks.includes("review"));
  });
});
