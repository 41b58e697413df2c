/**
 * Weight-only quantization (lib/model/quantize.ts): the block-wise packing is exact to half a
 * scale per value, onnxruntime's MatMulNBits over the packing computes x W'^T + b for the
 * dequantized W', and a quantized model decodes exactly as the float model whose linear weights
 * are the dequantized ones (so the only change quantization makes is the rounding of the weights).
 */

import assert from "node:assert/strict";
import type { EntityEntry } from "../lib/data/types.ts";
import { buildPool, CachedDecoder, searchItems } from "../lib/generate/mod.ts";
import { glmFamily } from "../lib/model/family.ts";
import {
  dequantize,
  type QuantBits,
  quantizeBlockwise,
  quantizedLinear,
} from "../lib/model/quantize.ts";
import { Graph } from "../lib/onnx/graph.ts";
import { Rng } from "../lib/random.ts";
import { Session } from "../lib/runtime/session.ts";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import {
  sequentialPrompt,
  testItems,
  TINY,
  tinyWeights,
  tokenizer,
  writeModelDir,
} from "./helpers/infer.ts";
import { withTempDir } from "./helpers/temp.ts";
import { demoDataset } from "./helpers/train.ts";

function randomMatrix(rows: number, cols: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: rows * cols }, () => rng.normal() * (1 + rng.int(4)));
}

for (const bits of [4, 8] as QuantBits[]) {
  Deno.test(`${bits}-bit blocks: every value within half its block's scale, a ragged last block padded`, () => {
    const [rows, cols, block] = [5, 70, 32]; // 70 = 2 blocks of 32 + 6
    const w = randomMatrix(rows, cols, bits);
    const q = quantizeBlockwise(w, rows, cols, bits, block);
    assert.equal(q.blocks, 3);
    assert.equal(q.data.length, rows * 3 * (block * bits) / 8);
    const back = dequantize(q, rows, cols, bits, block);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const scale = q.scales[r * q.blocks + Math.floor(c / block)];
        const error = Math.abs(back[r * cols + c] - w[r * cols + c]);
        assert.ok(error <= scale / 2 + 1e-7, `${r},${c}: error ${error}, scale ${scale}`);
      }
    }
    // The largest value of a block is exact: it sets the scale.
    let amax = 0;
    for (let c = 0; c < 32; c++) amax = Math.max(amax, Math.abs(w[c]));
    const at = [...w.subarray(0, 32)].findIndex((v) => Math.abs(v) === amax);
    assert.ok(Math.abs(back[at] - w[at]) < 1e-6 * amax);
  });

  Deno.test(`${bits}-bit MatMulNBits over the packing is x W'^T + b for the dequantized W'`, async () => {
    const [n, k, rows] = [24, 70, 3];
    const w = randomMatrix(n, k, 10 + bits);
    const bias = randomMatrix(1, n, 20);
    const x = randomMatrix(rows, k, 30);
    const g = new Graph("linear");
    const input = g.input("x", "float32", ["N", k]);
    const b = g.initializer("b", { dtype: "float32", shape: [n], data: bias });
    const hook = quantizedLinear(new Map([["m.weight", w]]), { bits });
    g.output(
      hook({
        g,
        module: "m",
        x: input,
        inFeatures: k,
        outFeatures: n,
        bias: b,
        dtype: "float32",
        base: () => assert.fail("the float product is not used"),
      }),
      "y",
    );
    const session = await Session.create(g, { device: "cpu", threads: 1 });
    const y = (await session.run({ x: { dtype: "float32", shape: [rows, k], data: x } })).y
      .data as Float32Array;
    await session.release();
    const wq = dequantize(quantizeBlockwise(w, n, k, bits, 32), n, k, bits, 32);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < n; o++) {
        let ref = bias[o];
        for (let i = 0; i < k; i++) ref += x[r * k + i] * wq[o * k + i];
        assert.ok(Math.abs(ref - y[r * n + o]) < 1e-4 * (1 + Math.abs(ref)), `${r},${o}`);
      }
    }
  });
}

Deno.test("a quantized GLM searches items exactly as the float GLM with the dequantized linear weights", async () => {
  const weights = tinyWeights(TINY, 7);
  const items = testItems();
  const entities: EntityEntry[] = items.map((entity, i) => ({ entity, kind: "item", id: `i${i}` }));
  const pool = buildPool(tokenizer, entities, { vocabSize: TINY.vocabSize });
  const prompts = [[items[0], items[4]], [items[2]], [items[5], items[6]]].map((history, u) =>
    sequentialPrompt(`${u}`, history, ". Next: ")
  );
  const { sop, eop } = tokenizer.special;
  // Which modules the hook quantizes: the float model gets their dequantized weights.
  const quantized = new Set<string>();
  const hook = quantizedLinear(weights, { bits: 8 });
  const family = glmFamily({ config: TINY, weights }, {
    linear: (ctx) => {
      quantized.add(ctx.module);
      return hook(ctx);
    },
  });
  const search = async (decoder: CachedDecoder) => {
    try {
      return await searchItems(decoder, prompts, { pool: pool.items, sop, eop, beams: 8, topK: 5 });
    } finally {
      await decoder.release();
    }
  };
  const q = await search(await CachedDecoder.create(family, { device: "cpu", threads: 1 }));
  assert.equal(quantized.size, TINY.numLayers * 4, [...quantized].join());
  const rounded = new Map(weights);
  for (const module of quantized) {
    const w = weights.get(`${module}.weight`)!;
    // GLM's weights are [out, in]; in is 4h for dense_4h_to_h, h for the others.
    const cols = (module.endsWith("dense_4h_to_h") ? 4 : 1) * TINY.hiddenSize;
    const rows = w.length / cols;
    rounded.set(
      `${module}.weight`,
      dequantize(quantizeBlockwise(w, rows, cols, 8, 32), rows, cols, 8, 32),
    );
  }
  const float = (w: typeof weights) =>
    CachedDecoder.create(glmFamily({ config: TINY, weights: w }), { device: "cpu", threads: 1 });
  const f = await search(await float(rounded));
  const original = await search(await float(weights));
  // The rounding of the weights shows in the scores, and is all that differs.
  let offRounded = 0;
  let offOriginal = 0;
  for (let p = 0; p < prompts.length; p++) {
    for (let i = 0; i < q[p].scores.length; i++) {
      offRounded = Math.max(offRounded, Math.abs(q[p].scores[i] - f[p].scores[i]));
      offOriginal = Math.max(offOriginal, Math.abs(q[p].scores[i] - original[p].scores[i]));
    }
  }
  assert.ok(offOriginal > 10 * offRounded, `${offOriginal} against ${offRounded}`);
  for (let p = 0; p < prompts.length; p++) {
    assert.deepEqual(q[p].items, f[p].items, `prompt ${p}`);
    for (let i = 0; i < q[p].scores.length; i++) {
      assert.ok(Math.abs(q[p].scores[i] - f[p].scores[i]) < 1e-3, `prompt ${p} item ${i}`);
    }
  }
});

Deno.test("infer --quantize 8 answers with real items, and merge refuses a quantized part beside a float one", () =>
  withTempDir(async (dir) => {
    const model = join(dir, "model");
    await writeModelDir(model, TINY, tinyWeights(TINY, 5));
    const data = await demoDataset();
    const infer = (out: string, ...extra: string[]) =>
      runCli([
        ...["infer", "--quiet", "--device", "cpu", "--model", model, "--data", data],
        ...["--tasks", "sequential", "--limit", "8", "--beams", "4", "--top-k", "3"],
        ...["--out", out, ...extra],
      ]);
    const whole = join(dir, "q.jsonl");
    const run = await infer(whole, "--quantize", "8");
    assert.equal(run.code, 0, run.stderr);
    const lines = (await Deno.readTextFile(whole)).trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(lines.length, 8);
    for (const line of lines) {
      assert.equal(line.predictions.length, 3);
      for (const p of line.predictions) assert.equal(typeof p.item_id, "string");
    }
    const part = join(dir, "p.jsonl");
    assert.equal((await infer(part, "--shard", "0/2")).code, 0);
    assert.equal((await infer(part, "--shard", "1/2", "--quantize", "4")).code, 0);
    const merged = await runCli([
      ...["merge", "--quiet", "--out", join(dir, "m.jsonl")],
      join(dir, "p-00000-of-00002.jsonl"),
      join(dir, "p-00001-of-00002.jsonl"),
    ]);
    assert.equal(merged.code, 1, merged.stderr);
    assert.match(merged.stderr, /quantize/);
  }));

Deno.test("a quantized model's graphs hold the packed linear weights only, not the float ones beside them", () => {
  const weights = tinyWeights(TINY, 7);
  const family = glmFamily({ config: TINY, weights }, {
    linear: quantizedLinear(weights, { bits: 8 }),
  });
  for (const graph of [family.prefillGraph(), family.stepGraph("last")]) {
    const floatLinear = [...graph.initializers.keys()].filter((name) =>
      /\.(query_key_value|dense|dense_h_to_4h|dense_4h_to_h)\.weight$/.test(name)
    );
    assert.deepEqual(floatLinear, [], graph.name);
    assert.ok([...graph.initializers.keys()].some((name) => name.endsWith(".weight.q8")));
  }
});
