import assert from "node:assert/strict";
import { buildForwardGraph, type ForwardOutputs, type GlmOptions } from "../lib/model/glm.ts";
import { Session } from "../lib/runtime/session.ts";
import { referenceForward } from "./reference/glm_reference.ts";
import { forwardFeeds, maxDiff, noisyWeights, randomBatch, SMALL } from "./helpers/model.ts";
import type { Batch } from "../lib/collate/types.ts";

const weights = noisyWeights(SMALL, 1);

async function forward(
  batch: Batch,
  outputs: ForwardOutputs,
  extra: Partial<GlmOptions> = {},
) {
  const { graph } = buildForwardGraph({ config: SMALL, weights, outputs, ...extra });
  const session = await Session.create(graph, { device: "cpu", threads: 1 });
  try {
    return await session.run(forwardFeeds(batch, outputs !== "logits"));
  } finally {
    await session.release();
  }
}

Deno.test("the forward graph's logits and loss equal the plain reference to 1e-4", async () => {
  const batch = randomBatch(SMALL, [4, 2, 6], 9, 7, [0, 2, 0]);
  const ref = referenceForward(SMALL, weights, batch);
  const out = await forward(batch, "both");
  assert.deepEqual(out.logits.shape, [3, 9, SMALL.vocabSize]);
  assert.deepEqual(out.loss.shape, [1]);
  const logitErr = maxDiff(out.logits.data as Float32Array, ref.logits);
  const lossErr = Math.abs((out.loss.data as Float32Array)[0] - ref.loss);
  console.log(
    `worst logit error ${logitErr.toExponential(2)}, loss error ${lossErr.toExponential(2)}`,
  );
  assert.ok(logitErr < 1e-4, `logits differ by ${logitErr}`);
  assert.ok(lossErr < 1e-4, `loss differs by ${lossErr}`);
  assert.ok(ref.loss > 0.5, "the loss is not trivially small");
});

Deno.test("the loss-only graph (logits at loss positions only) gives the same loss", async () => {
  const batch = randomBatch(SMALL, [3, 5], 8, 11);
  const ref = referenceForward(SMALL, weights, batch);
  const out = await forward(batch, "loss");
  assert.deepEqual(Object.keys(out), ["loss"]);
  assert.ok(Math.abs((out.loss.data as Float32Array)[0] - ref.loss) < 1e-4);
  const logitsOnly = await forward(batch, "logits");
  assert.deepEqual(Object.keys(logitsOnly), ["logits"]);
  assert.ok(maxDiff(logitsOnly.logits.data as Float32Array, ref.logits) < 1e-4);
});

Deno.test("loss weights follow loss_mask and ignore label -100; no loss positions give 0", async () => {
  const batch = randomBatch(SMALL, [3, 4], 8, 5);
  batch.lossMask[5] = 0.5; // a fractional weight counts as such
  batch.labels[6] = -100; // ignored even where the mask is 1
  const ref = referenceForward(SMALL, weights, batch);
  const out = await forward(batch, "loss");
  assert.ok(Math.abs((out.loss.data as Float32Array)[0] - ref.loss) < 1e-4);
  const none = randomBatch(SMALL, [8, 8], 8, 5); // sep = L: everything is part A
  const zero = await forward(none, "loss");
  assert.equal((zero.loss.data as Float32Array)[0], 0);
});

Deno.test("float64 graphs agree with the reference much more closely", async () => {
  const batch = randomBatch(SMALL, [4, 3], 7, 3);
  const ref = referenceForward(SMALL, weights, batch);
  const out = await forward(batch, "both", { dtype: "float64" });
  assert.equal(out.logits.dtype, "float64");
  assert.equal(out.loss.dtype, "float64");
  const err = maxDiff(out.logits.data as Float64Array, ref.logits);
  assert.ok(err < 1e-9, `float64 logits differ by ${err}`);
  assert.ok(Math.abs((out.loss.data as Float64Array)[0] - ref.loss) < 1e-9);
});

/** Logits row of sequence b, position t. */
function row(out: Float32Array, b: number, t: number, L: number): Float32Array {
  const V = SMALL.vocabSize;
  return out.subarray((b * L + t) * V, (b * L + t + 1) * V);
}

Deno.test("sep mask: a part-B token sees nothing after it, and part A sees all of part A", async () => {
  const L = 9;
  const sep = 4;
  const base = randomBatch(SMALL, [sep], L, 21);
  const before = (await forward(base, "logits")).logits.data as Float32Array;

  // Changing the token at j = 6 (part B) changes no output at i < 6 ...
  const later = structuredClone(base);
  later.inputIds[6] = (later.inputIds[6] + 1) % SMALL.vocabSize;
  const afterLater = (await forward(later, "logits")).logits.data as Float32Array;
  for (let i = 0; i < 6; i++) {
    assert.equal(maxDiff(row(before, 0, i, L), row(afterLater, 0, i, L)), 0, `position ${i}`);
  }
  // ... but does change its own output and the ones after it.
  for (let i = 6; i < L; i++) {
    assert.ok(maxDiff(row(before, 0, i, L), row(afterLater, 0, i, L)) > 1e-4, `position ${i}`);
  }

  // Changing a part-A token at j = 3 changes every output, part A positions before it included.
  const partA = structuredClone(base);
  partA.inputIds[3] = (partA.inputIds[3] + 1) % SMALL.vocabSize;
  const afterA = (await forward(partA, "logits")).logits.data as Float32Array;
  for (let i = 0; i < L; i++) {
    assert.ok(maxDiff(row(before, 0, i, L), row(afterA, 0, i, L)) > 1e-4, `position ${i}`);
  }
});

Deno.test("sep mask: moving sep decides whether an earlier token sees a later one", async () => {
  const L = 6;
  const a = randomBatch(SMALL, [2], L, 4);
  const b = structuredClone(a);
  b.inputIds[4] = (b.inputIds[4] + 3) % SMALL.vocabSize;
  // With sep = 2, position 3 (part B) cannot see position 4.
  const a2 = (await forward(a, "logits")).logits.data as Float32Array;
  const b2 = (await forward(b, "logits")).logits.data as Float32Array;
  assert.equal(maxDiff(row(a2, 0, 3, L), row(b2, 0, 3, L)), 0);
  // With sep = 5, positions 3 and 4 are both part A: now it can.
  a.sep[0] = 5;
  b.sep[0] = 5;
  const a5 = (await forward(a, "logits")).logits.data as Float32Array;
  const b5 = (await forward(b, "logits")).logits.data as Float32Array;
  assert.ok(maxDiff(row(a5, 0, 3, L), row(b5, 0, 3, L)) > 1e-4);
});

Deno.test("sequences of a batch do not see each other, padding included", async () => {
  const batch = randomBatch(SMALL, [3, 2], 7, 8, [0, 3]);
  const both = (await forward(batch, "logits")).logits.data as Float32Array;
  const changed = structuredClone(batch);
  changed.inputIds[7 + 5] = 9; // a padding token of sequence 1
  changed.inputIds[2] = (changed.inputIds[2] + 1) % SMALL.vocabSize; // sequence 0
  const out = (await forward(changed, "logits")).logits.data as Float32Array;
  // Sequence 1's real tokens (0..3) see neither sequence 0 nor their own right padding.
  for (let t = 0; t < 4; t++) assert.equal(maxDiff(row(both, 1, t, 7), row(out, 1, t, 7)), 0);
});

Deno.test("trainable weights become graph inputs named as the weight", async () => {
  const trainable = (name: string) => name.includes("layers.1.mlp") || name.startsWith("glm.word");
  const { graph } = buildForwardGraph({ config: SMALL, weights, outputs: "loss", trainable });
  const inputs = graph.inputs.map((v) => v.name);
  assert.deepEqual(inputs.slice(0, 5), ["input_ids", "position_ids", "sep", "labels", "loss_mask"]);
  assert.deepEqual(inputs.slice(5).sort(), [
    "glm.transformer.layers.1.mlp.dense_4h_to_h.bias",
    "glm.transformer.layers.1.mlp.dense_4h_to_h.weight",
    "glm.transformer.layers.1.mlp.dense_h_to_4h.bias",
    "glm.transformer.layers.1.mlp.dense_h_to_4h.weight",
    "glm.word_embeddings.weight",
  ]);
  assert.ok(!graph.initializers.has("glm.word_embeddings.weight"));
  assert.ok(graph.initializers.has("glm.transformer.layers.0.mlp.dense_h_to_4h.weight"));
  // Fed the same values, the graph computes the same loss as the frozen one.
  const batch = randomBatch(SMALL, [3, 4], 8, 2);
  const feeds: Record<
    string,
    | { dtype: "float32"; shape: number[]; data: Float32Array }
    | ReturnType<typeof forwardFeeds>[string]
  > = forwardFeeds(batch);
  for (const v of graph.inputs.slice(5)) {
    feeds[v.name] = { dtype: "float32", shape: v.shape as number[], data: weights.get(v.name)! };
  }
  const session = await Session.create(graph, { device: "cpu", threads: 1 });
  const loss = (await session.run(feeds)).loss.data as Float32Array;
  await session.release();
  const ref = referenceForward(SMALL, weights, batch);
  assert.ok(Math.abs(loss[0] - ref.loss) < 1e-4);
});

Deno.test("the linear hook wraps modules without copying the builder (a LoRA-style update)", async () => {
  const batch = randomBatch(SMALL, [3, 5], 8, 6);
  const h = SMALL.hiddenSize;
  const r = 2;
  const seen: string[] = [];
  // LoRA on QKV with constant A and B, checked against the reference run on merged weights.
  const a = Float32Array.from({ length: r * h }, (_, i) => Math.sin(i) * 0.2);
  const bm = Float32Array.from({ length: 3 * h * r }, (_, i) => Math.cos(i) * 0.2);
  const { graph } = buildForwardGraph({
    config: SMALL,
    weights,
    outputs: "both",
    linear: (ctx) => {
      seen.push(ctx.module);
      if (ctx.kind !== "attention.query_key_value") return ctx.base();
      const { g } = ctx;
      const A = g.initializer(`${ctx.module}.lora_A.weight`, {
        dtype: "float32",
        shape: [r, h],
        data: a,
      });
      const B = g.initializer(`${ctx.module}.lora_B.weight`, {
        dtype: "float32",
        shape: [3 * h, r],
        data: bm,
      });
      const xa = g.gemm(ctx.x, A, null, { transB: true });
      return g.add(ctx.base(), g.gemm(xa, B, null, { transB: true, alpha: 1.5 }));
    },
  });
  assert.equal(seen.length, 4 * SMALL.numLayers);
  assert.ok(seen.includes("glm.transformer.layers.1.mlp.dense_4h_to_h"));
  const merged = new Map(weights);
  for (let l = 0; l < SMALL.numLayers; l++) {
    const name = `glm.transformer.layers.${l}.attention.query_key_value.weight`;
    const w = Float32Array.from(weights.get(name)!);
    for (let o = 0; o < 3 * h; o++) {
      for (let i = 0; i < h; i++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += bm[o * r + k] * a[k * h + i];
        w[o * h + i] += 1.5 * s;
      }
    }
    merged.set(name, w);
  }
  const session = await Session.create(graph, { device: "cpu", threads: 1 });
  const out = await session.run(forwardFeeds(batch));
  await session.release();
  const ref = referenceForward(SMALL, merged, batch);
  assert.ok(maxDiff(out.logits.data as Float32Array, ref.logits) < 1e-4);
});

Deno.test("the fused-attention variant (opset 23 Attention) matches the reference", async () => {
  const batch = randomBatch(SMALL, [4, 2], 7, 12, [0, 1]);
  const ref = referenceForward(SMALL, weights, batch);
  const out = await forward(batch, "both", { attention: "fused" });
  assert.ok(maxDiff(out.logits.data as Float32Array, ref.logits) < 1e-4);
  assert.ok(Math.abs((out.loss.data as Float32Array)[0] - ref.loss) < 1e-4);
});
