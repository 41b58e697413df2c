import assert from "node:assert/strict";
import { join } from "node:path";
import { InputError } from "../lib/errors.ts";
import { configJson } from "../lib/model/config.ts";
import { modelIdentity } from "../lib/model/identity.ts";
import { decoderWeightShapes } from "../lib/model/families/config.ts";
import { loadDecoder, toBf16Bits, writeCheckpoint } from "../lib/model/families/checkpoint.ts";
import {
  decoderConfigJson,
  modelArchitecture,
  parseDecoderConfig,
  partialRotaryFactor,
} from "../lib/model/families/registry.ts";
import { runForward } from "../lib/model/forward.ts";
import { decoderBatch, noisyDecoderWeights, TINY, TINY_JSON } from "./helpers/decoder.ts";
import { withTempDir } from "./helpers/temp.ts";

const QWEN25_05B = {
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  vocab_size: 151936,
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  max_position_embeddings: 32768,
  max_window_layers: 21,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000,
  sliding_window: 32768,
  use_sliding_window: false,
  tie_word_embeddings: true,
  hidden_act: "silu",
};

Deno.test("config.json of each family normalises with the families' Hugging Face defaults", () => {
  const q = parseDecoderConfig(QWEN25_05B, "config.json");
  assert.equal(q.headDim, 64);
  assert.deepEqual(q.biases, { qkv: true, o: false, mlp: false });
  assert.equal(q.rotaryDim, 64);
  assert.equal(q.tieWordEmbeddings, true);
  const base = { ...TINY_JSON.qwen3 } as Record<string, unknown>;
  delete base.head_dim;
  const q3 = parseDecoderConfig(base, "c");
  assert.equal(q3.headDim, 128); // Qwen3's default, not hidden / heads
  assert.ok(q3.qkNorm);
  const glm = { ...TINY_JSON.glm } as Record<string, unknown>;
  delete glm.partial_rotary_factor;
  const g = parseDecoderConfig(glm, "c");
  assert.equal(g.rotaryDim, 4); // head_dim 8 x 0.5
  assert.equal(g.ropeStyle, "interleaved");
  assert.ok(g.fusedGateUp && g.biases.qkv && !g.biases.o);
  assert.deepEqual(TINY.mistral.biases, { qkv: false, o: false, mlp: false });
  // Round trip through the written config.json.
  for (const c of Object.values(TINY)) {
    assert.deepEqual(parseDecoderConfig(decoderConfigJson(c), "c"), c);
  }
});

Deno.test("a checkpoint's special-token ids are written back as read, and are not its identity", () => {
  // GLM-4 lists several end ids; a merged or fully trained model must keep them, not fall back
  // to transformers' defaults for its family.
  const json = { ...TINY_JSON.glm, pad_token_id: 3, eos_token_id: [4, 5], bos_token_id: null };
  const c = parseDecoderConfig(json, "c");
  assert.deepEqual(c.tokenIds, { bos_token_id: null, eos_token_id: [4, 5], pad_token_id: 3 });
  const written = decoderConfigJson(c);
  assert.equal(written.pad_token_id, 3);
  assert.deepEqual(written.eos_token_id, [4, 5]);
  assert.equal(written.bos_token_id, null);
  assert.equal("bos_token_id" in decoderConfigJson(parseDecoderConfig(TINY_JSON.glm, "c")), false);
  const weights = new Map([["w", Float32Array.of(1, 2)]]);
  assert.deepEqual(
    modelIdentity(c, weights),
    modelIdentity(parseDecoderConfig(TINY_JSON.glm, "c"), weights),
  );
  assert.throws(
    () => parseDecoderConfig({ ...TINY_JSON.glm, eos_token_id: "</s>" }, "config.json"),
    /config\.json: "eos_token_id" must be a token id, a list of ids or null, got "<\/s>"/,
  );
});

Deno.test("model_type glm: THUDM's GLM keeps its own builder; GLM-4 keys select the decoder", () => {
  const thudm = configJson({
    vocabSize: 10,
    hiddenSize: 8,
    numLayers: 1,
    numHeads: 2,
    maxSequenceLength: 16,
    layernormEpsilon: 1e-5,
  });
  assert.deepEqual(modelArchitecture(thudm, "c"), { kind: "glm-thudm" });
  assert.deepEqual(modelArchitecture(TINY_JSON.glm, "c"), { kind: "decoder", family: "glm" });
});

Deno.test("settings the toolkit cannot honour are one-line errors naming the key", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...QWEN25_05B, model_type: "gemma" }, /^c: "model_type" "gemma" is not supported/],
    [
      { ...QWEN25_05B, rope_scaling: { rope_type: "yarn", factor: 4 } },
      /"rope_scaling.rope_type" "yarn"/,
    ],
    [{ ...QWEN25_05B, hidden_act: "gelu" }, /"hidden_act" "gelu" is not supported/],
    [{ ...QWEN25_05B, num_key_value_heads: 3 }, /"num_key_value_heads" \(3\) must divide/],
    [{ ...QWEN25_05B, num_key_value_heads: undefined }, /"num_key_value_heads" is missing/],
    [
      { ...QWEN25_05B, rope_theta: undefined, rope_parameters: { rope_type: "yarn", factor: 4 } },
      /"rope_parameters.rope_type" "yarn" is not supported/,
    ],
    [
      { ...QWEN25_05B, rope_parameters: { rope_type: "default", rope_theta: 10000 } },
      /"rope_theta" 1000000 and "rope_parameters.rope_theta" 10000 disagree/,
    ],
    [
      { ...QWEN25_05B, rope_parameters: { full_attention: { rope_type: "default" } } },
      /"rope_parameters" per layer type \(full_attention\) is not supported/,
    ],
    [{ ...QWEN25_05B, hidden_size: undefined }, /"hidden_size" is missing/],
    // A count no model uses would allocate its zero table before anything runs.
    [
      { ...QWEN25_05B, intra_position_rows: 2 ** 33 },
      /"intra_position_rows" 8589934592 is more than the 32769 positions/,
    ],
    // Inference's rotary tables for 2^40 positions: an internal error before anything ran.
    [
      { ...QWEN25_05B, max_position_embeddings: 2 ** 40 },
      /"max_position_embeddings" 1099511627776 is more than the 4194304 positions/,
    ],
    // Frequencies divided by zero: every logit NaN, blamed on the weights or the batch.
    [
      { ...QWEN25_05B, rope_scaling: { rope_type: "linear", factor: 0 } },
      /"rope_scaling.factor" must be a positive number, got 0/,
    ],
    [
      {
        ...QWEN25_05B,
        rope_scaling: {
          rope_type: "llama3",
          factor: 8,
          low_freq_factor: 1,
          high_freq_factor: 1,
          original_max_position_embeddings: 8192,
        },
      },
      /"rope_scaling.high_freq_factor" \(1\) must be greater than "low_freq_factor" \(1\)/,
    ],
  ];
  for (const [json, pattern] of cases) {
    assert.throws(() => parseDecoderConfig(json, "c"), (e: Error) => {
      assert.ok(e instanceof InputError, e.message);
      assert.match(e.message, pattern);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
  // A sliding window as long as the context is no window at all; nor one from a layer past the
  // last (Qwen slides the layers from max_window_layers on).
  parseDecoderConfig({ ...QWEN25_05B, use_sliding_window: true }, "c");
  const unslid = { ...QWEN25_05B, use_sliding_window: true, sliding_window: 4096 };
  assert.equal(
    parseDecoderConfig({ ...unslid, max_window_layers: 24 }, "c").slidingWindow,
    undefined,
  );
  // Some layers slide (from 21 of 24), or all: the window caps the length, as Mistral's (below
  // it, sliding and full attention agree in every layer).
  for (const first of [21, 0]) {
    const slid = parseDecoderConfig({ ...unslid, max_window_layers: first }, "c");
    assert.equal(slid.slidingWindow, 4096);
    // Written back (pretrain --merge, --full) with its window active, read back the same.
    assert.equal(decoderConfigJson(slid).use_sliding_window, true);
    assert.deepEqual(parseDecoderConfig(decoderConfigJson(slid), "c"), slid);
  }
  // Mistral-7B-v0.1's window: kept, and the model's length capped at it (where sliding and full
  // attention agree), written back as it was read.
  const mistral = parseDecoderConfig(
    { ...TINY_JSON.mistral, sliding_window: undefined, max_position_embeddings: 32768 },
    "c",
  );
  assert.equal(mistral.slidingWindow, 4096);
  assert.equal(decoderConfigJson(mistral).sliding_window, 4096);
  assert.deepEqual(parseDecoderConfig(decoderConfigJson(mistral), "c"), mistral);
  // swish is SiLU; Llama without num_key_value_heads has one per head.
  assert.equal(
    parseDecoderConfig({ ...TINY_JSON.llama, hidden_act: "swish" }, "c").family,
    "llama",
  );
  const llama = { ...TINY_JSON.llama } as Record<string, unknown>;
  delete llama.num_key_value_heads;
  assert.equal(parseDecoderConfig(llama, "c").numKvHeads, TINY.llama.numHeads);
});

Deno.test("absent sliding-window keys and partial rotary widths read as transformers reads them", () => {
  // Qwen2Config/Qwen3Config: sliding_window 4096 and max_window_layers 28 where absent.
  const { sliding_window: _, max_window_layers: __, ...bare } = QWEN25_05B;
  const slides = (json: Record<string, unknown>) =>
    parseDecoderConfig({ ...bare, use_sliding_window: true, ...json }, "c").slidingWindow;
  assert.equal(slides({ max_window_layers: 0 }), 4096);
  assert.equal(slides({ sliding_window: 1024 }), undefined); // layers 28.. of 24: none slides
  assert.equal(slides({ sliding_window: 1024, num_hidden_layers: 30 }), 1024);
  // layer_types, where listed, say which layers slide (max_window_layers is then not read).
  const types = (sliding: number) =>
    Array.from({ length: 24 }, (_, i) => i === sliding ? "sliding_attention" : "full_attention");
  assert.equal(slides({ max_window_layers: 0, layer_types: types(-1) }), undefined);
  assert.equal(slides({ max_window_layers: 24, layer_types: types(23) }), 4096);
  // GLM's rotary width is int(head_dim * partial_rotary_factor): truncated, never rounded up.
  const glm = (headDim: number, factor: number) =>
    parseDecoderConfig(
      { ...TINY_JSON.glm, head_dim: headDim, partial_rotary_factor: factor },
      "c",
    );
  assert.equal(glm(10, 0.65).rotaryDim, 6);
  assert.throws(() => glm(8, 0.7), /rotary dimensions 5 \(head_dim x partial_rotary_factor\)/);
  // Written back as a factor that reads back to the same width: 30 / 44 times 44 is
  // 29.999999999999996, which int() (transformers) and this reader took as 29, an odd width.
  const wide = glm(44, 0.69);
  assert.equal(wide.rotaryDim, 30);
  const factor = decoderConfigJson(wide).partial_rotary_factor as number;
  assert.equal(Math.floor(44 * factor), 30);
  assert.deepEqual(parseDecoderConfig(decoderConfigJson(wide), "c"), wide);
  for (let hd = 2; hd <= 256; hd++) {
    for (let d = 2; d <= hd; d += 2) assert.equal(Math.floor(hd * partialRotaryFactor(d, hd)), d);
  }
});

Deno.test("transformers 5's rope_parameters read as the top-level keys they replace", () => {
  // TINY_JSON.llama scales by llama3's rule.
  const v4: Record<string, unknown> = { ...TINY_JSON.llama, rope_theta: 500000 };
  assert.equal((v4.rope_scaling as { rope_type: string }).rope_type, "llama3");
  const { rope_theta: theta, rope_scaling: scaling, ...rest } = v4;
  const v5 = {
    ...rest,
    rope_theta: null,
    rope_parameters: { ...(scaling as object), rope_theta: theta },
  };
  assert.deepEqual(parseDecoderConfig(v5, "c"), parseDecoderConfig(v4, "c"));
  assert.equal(parseDecoderConfig(v5, "c").ropeTheta, 500000);
  const plain = { ...rest, rope_parameters: { rope_type: "default", rope_theta: 123 } };
  assert.equal(parseDecoderConfig(plain, "c").ropeTheta, 123);
  assert.equal(parseDecoderConfig(plain, "c").ropeScaling, null);
  const glm = { ...TINY_JSON.glm } as Record<string, unknown>;
  const factor = glm.partial_rotary_factor;
  delete glm.partial_rotary_factor;
  const glm5 = { ...glm, rope_parameters: { rope_type: "default", partial_rotary_factor: 1 } };
  assert.equal(parseDecoderConfig(glm5, "c").rotaryDim, TINY.glm.headDim);
  assert.equal(factor, 0.5);
});

/** Rounds every value to bfloat16, so a BF16 file holds it exactly. */
function bf16Exact(data: Float32Array): Float32Array {
  const u = new Uint32Array(data.length);
  for (let i = 0; i < data.length; i++) u[i] = toBf16Bits(data[i]) << 16;
  return new Float32Array(u.buffer);
}

Deno.test("sharded BF16 and single-file F32/F16 checkpoints load to the same values", async () => {
  await withTempDir(async (root) => {
    const config = TINY.llama;
    const weights = noisyDecoderWeights(config, 2);
    for (const [name, w] of weights) weights.set(name, bf16Exact(w));
    const sources = [...decoderWeightShapes(config)].map(([name, shape]) => ({
      name,
      shape,
      data: () => weights.get(name)!,
    }));
    const dirs = { f32: join(root, "f32"), bf16: join(root, "bf16"), f16: join(root, "f16") };
    for (const dir of Object.values(dirs)) {
      await Deno.mkdir(dir);
      await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(decoderConfigJson(config)));
    }
    await writeCheckpoint(dirs.f32, sources, { format: "F32" });
    const files = await writeCheckpoint(dirs.bf16, sources, { format: "BF16", shardBytes: 4000 });
    assert.ok(files.length > 3, `${files.length} files`);
    await writeCheckpoint(dirs.f16, sources, { format: "F16" });
    const f32 = await loadDecoder(dirs.f32);
    const bf16 = await loadDecoder(dirs.bf16);
    const f16 = await loadDecoder(dirs.f16);
    for (const [name, w] of weights) {
      assert.deepEqual(f32.weights.get(name), w, name);
      assert.deepEqual(bf16.weights.get(name), w, name);
      const h = f16.weights.get(name)!;
      for (let i = 0; i < w.length; i++) {
        assert.ok(Math.abs(h[i] - w[i]) <= 1e-3 * Math.abs(w[i]) + 1e-7);
      }
    }
    // A missing shard, a tensor of the wrong shape, no checkpoint at all.
    await Deno.remove(join(dirs.bf16, files[1]));
    await assert.rejects(() => loadDecoder(dirs.bf16), (e: Error) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, new RegExp(`${files[1]}: file not found \\(it should hold tensor "`));
      return true;
    });
    const wrong = { ...decoderConfigJson(config), intermediate_size: 20 };
    await Deno.writeTextFile(join(dirs.f32, "config.json"), JSON.stringify(wrong));
    await assert.rejects(
      () => loadDecoder(dirs.f32),
      /model\.safetensors: tensor "model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[24, 16\], expected \[20, 16\]/,
    );
    await Deno.remove(join(dirs.f16, "model.safetensors"));
    await assert.rejects(
      () => loadDecoder(dirs.f16),
      /neither model\.safetensors nor model\.safetensors\.index\.json/,
    );
  });
});

Deno.test("a NaN or infinite weight in a decoder checkpoint is refused, naming the file and tensor", async () => {
  // As GLM's weights and adapters are: such a model gives NaN losses and scores (infer wrote them).
  await withTempDir(async (root) => {
    const config = TINY.qwen2;
    const bad = "model.layers.1.mlp.up_proj.weight";
    const cases = [["bf16", NaN, "BF16", 4000], ["f16", -Infinity, "F16", undefined]] as const;
    for (const [name, value, format, shardBytes] of cases) {
      const weights = noisyDecoderWeights(config, 3);
      weights.get(bad)![7] = value;
      const sources = [...decoderWeightShapes(config)].map(([name, shape]) => ({
        name,
        shape,
        data: () => weights.get(name)!,
      }));
      const dir = join(root, name);
      await Deno.mkdir(dir);
      await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(decoderConfigJson(config)));
      const files = await writeCheckpoint(dir, sources, { format, shardBytes });
      const file = shardBytes
        ? JSON.parse(await Deno.readTextFile(join(dir, files.at(-1)!))).weight_map[bad]
        : "model.safetensors";
      await assert.rejects(() => loadDecoder(dir), (e: Error) => {
        assert.ok(e instanceof InputError, e.message);
        assert.equal(
          e.message,
          `${
            join(dir, file)
          }: tensor "${bad}" holds ${value} at index 7: every weight must be finite`,
        );
        return true;
      });
    }
  });
});

Deno.test("forward builds rotary tables for the batch's positions, not for max_position_embeddings", async () => {
  // A config.json claiming 2^40 positions once made forward allocate a table of them (an
  // internal error, or the machine's memory for a few hundred million).
  const config = TINY.llama;
  const weights = noisyDecoderWeights(config, 4);
  const batch = decoderBatch(config.vocabSize, [3, 4], 9, 5);
  const losses = [];
  for (const maxPositionEmbeddings of [config.maxPositionEmbeddings, 2 ** 40]) {
    const model = { dir: "m", config: { ...config, maxPositionEmbeddings }, weights, addedRows: 0 };
    losses.push((await runForward(model, batch, { device: "cpu" })).loss);
  }
  assert.ok(Number.isFinite(losses[0]));
  assert.equal(losses[1], losses[0]);
});
