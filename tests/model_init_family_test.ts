import assert from "node:assert/strict";
import { join } from "node:path";
import { loadDecoder } from "../lib/model/families/checkpoint.ts";
import { buildDecoderForwardGraph } from "../lib/model/families/decoder.ts";
import { addedRowCount, addSpecialRows } from "../lib/model/families/special.ts";
import { Session } from "../lib/runtime/session.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { runCli } from "./helpers/cli.ts";
import { REAL_TOKENIZERS } from "./helpers/real_tokenizers.ts";
import { withTempDir } from "./helpers/temp.ts";
import { demoDataset } from "./helpers/train.ts";

Deno.test("init --family qwen3 with the real Qwen3 tokenizer: a seeded HF checkpoint; special rows are added at load", async () => {
  await withTempDir(async (root) => {
    const out = join(root, "qwen3");
    const args = [
      "init",
      "--family",
      "qwen3",
      "--preset",
      "tiny",
      "--tokenizer",
      REAL_TOKENIZERS.qwen3,
    ];
    const run = await runCli([...args, "--out", out, "--seed", "3"]);
    assert.equal(run.code, 0, run.stderr);
    const summary = JSON.parse(run.stdout);
    assert.equal(summary.family, "qwen3");
    const config = JSON.parse(await Deno.readTextFile(join(out, "config.json")));
    assert.equal(config.model_type, "qwen3");
    assert.equal(config.torch_dtype, "bfloat16"); // init writes BF16 weights
    assert.equal(config.vocab_size, 151669); // the tokenizer's own ids
    const model = await loadDecoder(out);
    assert.ok(model.config.qkNorm && model.config.tieWordEmbeddings);
    // Same seed, same bytes.
    const again = join(root, "again");
    assert.equal((await runCli([...args, "--out", again, "--seed", "3"])).code, 0);
    assert.deepEqual(
      await Deno.readFile(join(out, "model.safetensors")),
      await Deno.readFile(join(again, "model.safetensors")),
    );
    // Qwen3's tokenizer has <|endoftext|> (the pad) but none of the method's five other tokens.
    const tokenizer = await TextTokenizer.load(join(out, "tokenizer.json"));
    const rows = addedRowCount(model.config, tokenizer.vocabSize);
    assert.equal(rows, 5);
    assert.equal(tokenizer.special.mask, 151669);
    addSpecialRows(model.config, model.weights, rows);
    const added = model.weights.get("model.embed_tokens.added.weight")!;
    const table = model.weights.get("model.embed_tokens.weight")!;
    const h = model.config.hiddenSize;
    let mean0 = 0;
    for (let r = 0; r < model.config.vocabSize; r++) mean0 += table[r * h];
    assert.ok(Math.abs(added[0] - mean0 / model.config.vocabSize) < 1e-6);
    assert.equal(added[4 * h], added[0]);
  });
});

Deno.test("init --family for llama, qwen2 and glm trains a tokenizer on the data; each model runs", async () => {
  const data = await demoDataset();
  await withTempDir(async (root) => {
    for (const family of ["llama", "qwen2", "glm"]) {
      const out = join(root, family);
      const run = await runCli([
        "init",
        "--family",
        family,
        "--preset",
        "tiny",
        "--data",
        data,
        "--out",
        out,
      ]);
      assert.equal(run.code, 0, run.stderr);
      const model = await loadDecoder(out);
      assert.equal(model.config.family, family);
      const tokenizer = await TextTokenizer.load(join(out, "tokenizer.json"));
      // The token ids written out, not left to transformers' family defaults (GLM-4's pad
      // 151329 would lie past this model's rows).
      const config = JSON.parse(await Deno.readTextFile(join(out, "config.json")));
      assert.equal(config.pad_token_id, tokenizer.special.pad);
      assert.ok(config.pad_token_id < config.vocab_size);
      assert.equal(config.eos_token_id, null);
      assert.equal(config.bos_token_id, null);
      const rows = addedRowCount(model.config, tokenizer.vocabSize);
      assert.equal(rows, 5, "the trained tokenizer has [PAD] only"); // [MASK] [sMASK] [gMASK] [S] [E]
      addSpecialRows(model.config, model.weights, rows);
      const ids = tokenizer.encode(" Nail polish in red");
      const L = ids.length + 1;
      const input = Int32Array.from([...ids, tokenizer.special.mask]);
      const { graph } = buildDecoderForwardGraph({
        config: model.config,
        weights: model.weights,
        outputs: "logits",
        addedRows: rows,
      });
      const session = await Session.create(graph, { device: "cpu", threads: 1 });
      try {
        const logits = (await session.run({
          input_ids: { dtype: "int32", shape: [1, L], data: input },
          position_ids: { dtype: "int32", shape: [1, 2, L], data: new Int32Array(2 * L) },
          rope_position_ids: {
            dtype: "int32",
            shape: [1, L],
            data: Int32Array.from({ length: L }, (_, i) => i),
          },
          sep: { dtype: "int32", shape: [1], data: Int32Array.of(L) },
        })).logits;
        assert.deepEqual(logits.shape, [1, L, tokenizer.vocabSize]);
        assert.ok((logits.data as Float32Array).every(Number.isFinite));
      } finally {
        await session.release();
      }
    }
  });
});

Deno.test("init --family: an unknown family or preset is a usage error", async () => {
  const bad = await runCli([
    "init",
    "--family",
    "gpt2",
    "--preset",
    "tiny",
    "--tokenizer",
    "x",
    "--out",
    "/tmp/none",
  ]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /family/);
  const preset = await runCli([
    "init",
    "--family",
    "qwen3",
    "--preset",
    "base",
    "--tokenizer",
    "x",
    "--out",
    "/tmp/none",
  ]);
  assert.equal(preset.code, 2);
});

Deno.test("forward --batch on a decoder: rope_position_ids as given or derived, logits and loss as the graph's", async () => {
  await withTempDir(async (root) => {
    const out = join(root, "m");
    const init = await runCli([
      "init",
      "--family",
      "glm",
      "--preset",
      "tiny",
      "--data",
      await demoDataset(),
      "--out",
      out,
    ]);
    assert.equal(init.code, 0, init.stderr);
    const L = 6;
    const batch = {
      input_ids: [[5, 9, 2, 7, 3, 4]],
      position_ids: [[[0, 1, 2, 2, 2, 2], [0, 1, 0, 1, 2, 3]]],
      sep: [3],
      labels: [[-100, -100, -100, 3, 4, 1]],
      loss_mask: [[0, 0, 0, 1, 1, 1]],
    };
    const run = async (b: unknown) => {
      await Deno.writeTextFile(join(root, "b.json"), JSON.stringify(b));
      const r = await runCli([
        "forward",
        "--model",
        out,
        "--batch",
        join(root, "b.json"),
        "--out",
        join(root, "o.safetensors"),
        "--device",
        "cpu",
      ]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout).loss as number;
    };
    const derived = await run(batch);
    // docs/method.md section 11: part A its inter-position, the span mask index 2 + 1, 2, 3.
    const given = await run({ ...batch, rope_position_ids: [[0, 1, 2, 3, 4, 5]] });
    assert.equal(given, derived);
    const other = await run({ ...batch, rope_position_ids: [[0, 1, 2, 7, 8, 9]] });
    assert.notEqual(other, derived);
    assert.ok(Number.isFinite(derived) && derived > 0 && L === 6);
    const bad = await run({ ...batch, rope_position_ids: [[0, 1]] }).catch((e) => e);
    assert.ok(bad instanceof Error);
    // The rotary table's last row is the length less one; the length itself is refused (it
    // was read as the row before it).
    const { max_position_embeddings: M } = JSON.parse(
      await Deno.readTextFile(join(out, "config.json")),
    );
    assert.ok(
      Number.isFinite(await run({ ...batch, rope_position_ids: [[0, 1, 2, 3, 4, M - 1]] })),
    );
    await Deno.writeTextFile(
      join(root, "b.json"),
      JSON.stringify({ ...batch, rope_position_ids: [[0, 1, 2, 3, 4, M]] }),
    );
    const past = await runCli([
      ...["forward", "--model", out, "--batch", join(root, "b.json")],
      ...["--out", join(root, "o.safetensors"), "--device", "cpu"],
    ]);
    assert.equal(past.code, 1);
    assert.match(
      past.stderr,
      new RegExp(`"rope_position_ids"\\[0\\]\\[5\\] is ${M}, outside 0\\.\\.${M - 1}`),
    );
  });
});

Deno.test("init --family refuses what later commands would: a tokenizer they cannot load, a wrong --data, weights past memory", async () => {
  const data = await demoDataset();
  await withTempDir(async (root) => {
    const noDecoder = join(root, "min.json");
    await Deno.writeTextFile(
      noDecoder,
      JSON.stringify({ model: { type: "BPE", vocab: { a: 0, b: 1 }, merges: [] } }),
    );
    const trained = join(root, "trained");
    const ok = await runCli([
      "init",
      "--family",
      "llama",
      "--preset",
      "tiny",
      "--data",
      data,
      "--out",
      trained,
      "--quiet",
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const cases: [string[], RegExp][] = [
      [["--tokenizer", noDecoder], /min\.json: cannot load tokenizer/],
      [
        ["--tokenizer", join(trained, "tokenizer.json"), "--data", join(root, "no-such")],
        /no-such.*manifest\.json: file not found/,
      ],
      [
        ["--data", data, "--hidden-size", "60000", "--heads", "1", "--layers", "1"],
        /cannot hold the weights: .* GiB at once, this machine has/,
      ],
    ];
    for (const [args, message] of cases) {
      const out = join(root, "out");
      const run = await runCli([
        "init",
        "--family",
        "llama",
        "--preset",
        "tiny",
        ...args,
        "--out",
        out,
      ]);
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, message);
      await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
    }
    // The project's GLM holds every weight at once: refused the same way.
    const glm = await runCli([
      "init",
      "--preset",
      "tiny",
      "--data",
      data,
      "--hidden-size",
      "60000",
      "--heads",
      "1",
      "--layers",
      "1",
      "--out",
      join(root, "glm"),
    ]);
    assert.equal(glm.code, 1, glm.stderr);
    assert.match(glm.stderr, /cannot hold the weights/);
    assert.deepEqual([...Deno.readDirSync(root)].map((e) => e.name).sort(), [
      "min.json",
      "trained",
    ]);
  });
});
