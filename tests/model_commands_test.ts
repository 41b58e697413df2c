// `init` and `forward` end to end through the command line's main().
import assert from "node:assert/strict";
import { runCli } from "./helpers/cli.ts";
import { openDataset, readRecords } from "../lib/data/dataset.ts";
import { datasetTexts } from "../lib/model/init.ts";
import { readConfig, weightShapes } from "../lib/model/config.ts";
import { SafetensorsFile } from "../lib/model/safetensors.ts";
import { loadModel } from "../lib/model/weights.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { referenceForward } from "./reference/glm_reference.ts";
import { withTempDir } from "./helpers/temp.ts";

const DATA = "fixtures/collate";

async function quietly(
  args: string[],
): Promise<{ status: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await runCli(args);
  // One line break after every printed line, as a terminal shows them.
  const lines = (text: string) => text === "" ? "" : text + "\n";
  return { status: code, stdout: lines(stdout), stderr: lines(stderr) };
}

Deno.test("init makes a Hugging Face model directory: trained tokenizer, config, std-0.02 weights", () =>
  withTempDir(async (dir) => {
    const out = `${dir}/model`;
    const r = await quietly([
      "init",
      "--data",
      DATA,
      "--preset",
      "tiny",
      "--out",
      out,
      "--seed",
      "3",
    ]);
    assert.equal(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    const tokenizer = await TextTokenizer.load(`${out}/tokenizer.json`);
    const config = await readConfig(`${out}/config.json`);
    assert.equal(config.vocabSize, tokenizer.vocabSize);
    assert.equal(summary.vocab_size, tokenizer.vocabSize);
    assert.equal(config.hiddenSize, 256);
    assert.equal(config.numLayers, 4);
    // The tokenizer knows the method's special tokens and the dataset's words.
    assert.equal(tokenizer.tokenString(tokenizer.special.mask), "[MASK]");
    assert.ok(tokenizer.encode(" Hand Cream").length <= 3);
    const file = await SafetensorsFile.open(`${out}/model.safetensors`);
    const shapes = weightShapes(config);
    assert.deepEqual(file.names().sort(), [...shapes.keys()].sort());
    const emb = await file.float32(
      "glm.word_embeddings.weight",
      shapes.get("glm.word_embeddings.weight"),
    );
    const std = Math.sqrt(emb.reduce((a, v) => a + v * v, 0) / emb.length);
    assert.ok(Math.abs(std - 0.02) < 0.001, `std ${std}`);
    const ln = await file.float32("glm.transformer.layers.2.post_attention_layernorm.weight");
    assert.ok(ln.every((v) => v === 1));
    const bias = await file.float32("glm.transformer.layers.1.mlp.dense_h_to_4h.bias");
    assert.ok(bias.every((v) => v === 0));

    // The same seed gives the same bytes; another seed other weights.
    const again = `${dir}/again`;
    await quietly(["init", "--data", DATA, "--preset", "tiny", "--out", again, "--seed", "3"]);
    assert.deepEqual(
      await Deno.readFile(`${again}/model.safetensors`),
      await Deno.readFile(`${out}/model.safetensors`),
    );
    assert.equal(
      await Deno.readTextFile(`${again}/tokenizer.json`),
      await Deno.readTextFile(`${out}/tokenizer.json`),
    );
    const other = `${dir}/other`;
    await quietly(["init", "--data", DATA, "--preset", "tiny", "--out", other, "--seed", "4"]);
    assert.notDeepEqual(
      await Deno.readFile(`${other}/model.safetensors`),
      await Deno.readFile(`${out}/model.safetensors`),
    );
  }));

Deno.test("init --tokenizer keeps the given tokenizer and sizes the vocabulary to it", () =>
  withTempDir(async (dir) => {
    const out = `${dir}/model`;
    const given = "fixtures/tokenizer/tokenizer.json";
    const r = await quietly([
      "init",
      "--data",
      DATA,
      "--preset",
      "tiny",
      "--out",
      out,
      "--tokenizer",
      given,
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(await Deno.readTextFile(`${out}/tokenizer.json`), await Deno.readTextFile(given));
    const config = await readConfig(`${out}/config.json`);
    assert.equal(config.vocabSize, (await TextTokenizer.load(given)).vocabSize);
  }));

Deno.test("init --hidden-size --layers --heads reshape the preset; a bad shape is a usage error", () =>
  withTempDir(async (dir) => {
    const out = `${dir}/narrow`;
    const shape = ["--hidden-size", "64", "--layers", "2", "--heads", "2"];
    const r = await quietly(["init", "--data", DATA, "--preset", "tiny", ...shape, "--out", out]);
    assert.equal(r.status, 0, r.stderr);
    const config = await readConfig(`${out}/config.json`);
    assert.deepEqual([config.hiddenSize, config.numLayers, config.numHeads], [64, 2, 2]);
    const summary = JSON.parse(r.stdout);
    assert.deepEqual([summary.hidden_size, summary.num_layers], [64, 2]);
    // The weights have the new shapes: the forward pass reads them.
    const file = await SafetensorsFile.open(`${out}/model.safetensors`);
    assert.deepEqual(file.names().sort(), [...weightShapes(config).keys()].sort());
    const dense = "glm.transformer.layers.1.mlp.dense_h_to_4h.weight";
    assert.deepEqual(file.entry(dense).shape, weightShapes(config).get(dense));
    const bad = await quietly([
      "init",
      ...["--data", DATA, "--preset", "tiny", "--hidden-size", "100", "--heads", "3"],
      ...["--out", `${dir}/bad`],
    ]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--heads 3 must divide the hidden size 100/);
    // Every family takes the same three: a qwen3 of hidden 32, 3 layers, 4 heads of 8.
    const decoder = await quietly([
      "init",
      ...["--family", "qwen3", "--preset", "tiny", "--hidden-size", "32", "--layers", "3"],
      ...["--tokenizer", "fixtures/tokenizer/tokenizer.json", "--out", `${dir}/qwen`],
    ]);
    assert.equal(decoder.status, 0, decoder.stderr);
    const qwen = JSON.parse(await Deno.readTextFile(`${dir}/qwen/config.json`));
    assert.deepEqual(
      [qwen.hidden_size, qwen.num_hidden_layers, qwen.num_attention_heads, qwen.head_dim],
      [32, 3, 4, 8],
    );
    const qwenFile = await SafetensorsFile.open(`${dir}/qwen/model.safetensors`);
    assert.deepEqual(qwenFile.entry("model.layers.2.self_attn.q_proj.weight").shape, [32, 32]);
    const badDecoder = await quietly([
      "init",
      ...["--family", "llama", "--preset", "tiny", "--hidden-size", "30", "--heads", "4"],
      ...["--tokenizer", "fixtures/tokenizer/tokenizer.json", "--out", `${dir}/bad-llama`],
    ]);
    assert.equal(badDecoder.status, 2);
    assert.match(badDecoder.stderr, /--heads 4 must divide the hidden size 30/);
  }));

Deno.test("init: usage mistakes and bad input have the right exit status", () =>
  withTempDir(async (dir) => {
    assert.equal((await quietly(["init", "--data", DATA, "--out", `${dir}/m`])).status, 2);
    const badPreset = await quietly([
      "init",
      "--data",
      DATA,
      "--preset",
      "huge",
      "--out",
      `${dir}/m`,
    ]);
    assert.equal(badPreset.status, 2);
    assert.match(badPreset.stderr, /--preset must be one of tiny, small, base/);
    const noData = await quietly([
      "init",
      "--data",
      `${dir}/none`,
      "--preset",
      "tiny",
      "--out",
      `${dir}/m`,
    ]);
    assert.equal(noData.status, 1);
    assert.match(noData.stderr, /manifest.json: file not found/);
  }));

Deno.test("forward writes logits and loss equal to the reference; errors are one line", () =>
  withTempDir(async (dir) => {
    const modelDir = `${dir}/model`;
    await quietly(["init", "--data", DATA, "--preset", "tiny", "--out", modelDir, "--seed", "5"]);
    const model = await loadModel(modelDir);
    const V = model.config.vocabSize;
    const batch = {
      input_ids: [[3, 17, 4, 9, 2, 8], [5, 5, 11, 1, 0, 0]],
      position_ids: [[[0, 1, 2, 3, 3, 3], [0, 1, 0, 0, 1, 2]], [[0, 1, 2, 2, 0, 0], [
        0,
        0,
        0,
        1,
        0,
        0,
      ]]],
      sep: [4, 3],
      labels: [[-100, -100, -100, -100, 8, 6], [-100, -100, -100, 7, -100, -100]],
      loss_mask: [[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 0, 0]],
    };
    const batchPath = `${dir}/batch.json`;
    await Deno.writeTextFile(batchPath, JSON.stringify(batch));
    const out = `${dir}/out.safetensors`;
    const r = await quietly([
      "forward",
      "--model",
      modelDir,
      "--batch",
      batchPath,
      "--out",
      out,
      "--device",
      "cpu",
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).device, "cpu");
    const file = await SafetensorsFile.open(out);
    const logits = await file.float32("logits", [2, 6, V]);
    const loss = await file.float32("loss", [1]);
    const ref = referenceForward(model.config, model.weights, {
      batchSize: 2,
      length: 6,
      inputIds: batch.input_ids.flat(),
      positionIds: batch.position_ids.flat(2),
      sep: batch.sep,
      labels: batch.labels.flat(),
      lossMask: batch.loss_mask.flat(),
    });
    let worst = 0;
    for (let i = 0; i < logits.length; i++) {
      worst = Math.max(worst, Math.abs(logits[i] - ref.logits[i]));
    }
    assert.ok(worst < 1e-4, `logits differ by ${worst}`);
    assert.ok(Math.abs(loss[0] - ref.loss) < 1e-4);

    // A missing adapter directory is refused in one line (adapters themselves: the training tests).
    const adapter = await quietly([
      "forward",
      "--model",
      modelDir,
      "--batch",
      batchPath,
      "--out",
      out,
      "--adapter",
      `${dir}/no-adapter`,
    ]);
    assert.notEqual(adapter.status, 0);
    assert.match(adapter.stderr, /^error: [^\n]*adapter[^\n]*\n$/);
    await Deno.writeTextFile(batchPath, JSON.stringify({ ...batch, sep: [4] }));
    const bad = await quietly(["forward", "--model", modelDir, "--batch", batchPath, "--out", out]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /batch.json: "sep" must be an array of 2 integers/);
    await Deno.writeTextFile(
      batchPath,
      JSON.stringify({ ...batch, input_ids: [[3, 17, 4, 9, 2, 8], [5, V, 11, 1, 0, 0]] }),
    );
    const range = await quietly([
      "forward",
      "--model",
      modelDir,
      "--batch",
      batchPath,
      "--out",
      out,
    ]);
    assert.match(
      range.stderr,
      new RegExp(`"input_ids"\\[1\\]\\[1\\] is ${V}, outside 0..${V - 1}`),
    );
    // A negative loss weight, or no position that counts, is refused (a loss of 0 would read as
    // a perfect prediction).
    for (
      const [mask, problem] of [
        [[[0, 0, 0, 0, -1, 1], [0, 0, 0, 1, 0, 0]], /"loss_mask"\[0\]\[4\] is -1/],
        [[[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], /no position counts toward the loss/],
      ] as const
    ) {
      await Deno.writeTextFile(batchPath, JSON.stringify({ ...batch, loss_mask: mask }));
      const args = ["--model", modelDir, "--batch", batchPath, "--out", out];
      const run = await quietly(["forward", ...args]);
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stderr, problem);
    }
    await Deno.writeTextFile(batchPath, JSON.stringify(batch));
    const cuda = await quietly([
      "forward",
      "--model",
      modelDir,
      "--batch",
      batchPath,
      "--out",
      out,
      "--device",
      "cuda",
    ]);
    if (cuda.status !== 0) {
      assert.equal(cuda.status, 1);
      assert.match(cuda.stderr, /^error: device cuda cannot be used: .*\n$/);
    }
  }));

Deno.test("init trains its tokenizer on the forms the collator encodes: an entity after a space", async () => {
  const data = await openDataset(DATA);
  const texts = await Array.fromAsync(datasetTexts(data));
  const entities = new Set(data.entities.map((e) => e.entity));
  // Every entity as " " + entity (its first word's merges are those of the encoded form).
  for (const e of entities) assert.ok(texts.includes(" " + e), e);
  assert.ok(!texts.some((t) => entities.has(t)), "an entity without its leading space");
  // A text target as " " + trimmed text, the way the collator encodes it.
  for await (const record of readRecords(data, "train")) {
    const target = record.target ?? [];
    if (target.length === 1 && "text" in target[0] && target[0].text.trim()) {
      assert.ok(texts.includes(" " + target[0].text.trim()), record.id);
    }
  }
});
