import assert from "node:assert/strict";
import { InputError } from "../lib/errors.ts";
import { configJson, parseConfig, presetConfig, PRESETS, readConfig } from "../lib/model/config.ts";
import { withTempDir } from "./helpers/temp.ts";

Deno.test("config.json round-trips with Hugging Face GLM key names", () => {
  const config = presetConfig("tiny", 8006);
  const json = configJson(config);
  assert.equal(json.vocab_size, 8006);
  assert.equal(json.hidden_size, 256);
  assert.equal(json.num_layers, 4);
  assert.equal(json.num_attention_heads, 4);
  assert.equal(json.max_sequence_length, 512);
  assert.equal(json.layernorm_epsilon, 1e-5);
  assert.deepEqual(parseConfig(JSON.parse(JSON.stringify(json)), "config.json"), config);
});

Deno.test("layernorm_epsilon defaults to 1e-5; extra keys of real GLM configs are ignored", () => {
  const config = parseConfig({
    vocab_size: 30592,
    hidden_size: 768,
    num_layers: 12,
    num_attention_heads: 12,
    max_sequence_length: 512,
    model_type: "glm",
    checkpoint_activations: false,
  }, "config.json");
  assert.equal(config.layernormEpsilon, 1e-5);
  assert.equal(config.vocabSize, 30592);
});

Deno.test("config problems name the file and the key", async () => {
  const good = configJson(presetConfig("tiny", 100));
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...good, vocab_size: undefined }, /^m\/config.json: "vocab_size" is missing$/],
    [{ ...good, hidden_size: 25.5 }, /"hidden_size" must be a positive integer, got 25.5/],
    [{ ...good, num_layers: 0 }, /"num_layers" must be a positive integer/],
    [
      { ...good, num_attention_heads: 3 },
      /"num_attention_heads" \(3\) must divide "hidden_size" \(256\)/,
    ],
    [{ ...good, layernorm_epsilon: "small" }, /"layernorm_epsilon" must be a positive number/],
  ];
  for (const [json, pattern] of cases) {
    const clean = JSON.parse(JSON.stringify(json));
    assert.throws(
      () => parseConfig(clean, "m/config.json"),
      (e) => e instanceof InputError && pattern.test(e.message),
    );
  }
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/config.json`, "{oops");
    await assert.rejects(() => readConfig(`${dir}/config.json`), /config.json: not valid JSON/);
    await assert.rejects(() => readConfig(`${dir}/none.json`), /none.json: file not found/);
  });
});

Deno.test("presets are data: tiny is the benchmark model", () => {
  assert.deepEqual(PRESETS.tiny, {
    hiddenSize: 256,
    numLayers: 4,
    numHeads: 4,
    maxSequenceLength: 512,
    tokenizerVocab: 8000,
  });
  for (const p of Object.values(PRESETS)) assert.equal(p.hiddenSize % p.numHeads, 0);
});

Deno.test("a THUDM GLM config built another way (positions, attention scale, head) is refused", () => {
  const base = configJson(presetConfig("tiny", 8000));
  assert.equal(parseConfig({ ...base, attention_scale: 1.0 }, "m/config.json").hiddenSize, 256);
  for (
    const [key, value] of [
      ["relative_encoding", true],
      ["block_position_encoding", false],
      ["output_predict", false],
      ["tie_word_embeddings", false],
      ["attention_scale", 4],
    ] as const
  ) {
    assert.throws(
      () => parseConfig({ ...base, [key]: value }, "m/config.json"),
      new RegExp(`m/config\\.json: "${key}" is ${value}: only GLM with ${key} `),
    );
  }
});
