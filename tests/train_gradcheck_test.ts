/**
 * The whole small GLM's gradients, as the training graphs compute them, against central finite
 * differences in float64: every weight (full training) and every LoRA tensor on all four linear
 * modules. Elements are sampled evenly from each tensor; the worst relative error is printed.
 */

import assert from "node:assert/strict";
import type { TensorData } from "../lib/onnx/graph.ts";
import { Rng } from "../lib/random.ts";
import { Session } from "../lib/runtime/session.ts";
import type { LoraConfig } from "../lib/model/lora.ts";
import { loraShapes } from "../lib/model/lora.ts";
import { keepMask } from "../lib/train/dropout.ts";
import { buildGradGraph, trainableParams, trainNames } from "../lib/train/train_graph.ts";
import { compareWithFiniteDifferences } from "./helpers/grad_check.ts";
import { forwardFeeds, noisyWeights, randomBatch, SMALL } from "./helpers/model.ts";

const TOLERANCE = 1e-5;

function float64(data: ArrayLike<number>, shape: number[]): TensorData {
  return { dtype: "float64", shape, data: Float64Array.from(data) };
}

async function check(lora: LoraConfig | null, label: string, dropout = 0) {
  const weights = noisyWeights(SMALL, 3);
  const setup = { config: SMALL, weights, lora, dtype: "float64" as const, dropout };
  const { graph, params, dropoutMasks } = buildGradGraph(setup);
  // Two sequences with different part A lengths, one padded, so masks and padding matter.
  const batch = randomBatch(SMALL, [5, 3], 9, 11, [0, 2]);
  const feeds: Record<string, TensorData> = {
    ...forwardFeeds(batch) as Record<string, TensorData>,
    loss_scale: float64([1], [1]),
  };
  const rng = new Rng(5);
  // The model's dropout: fixed keep-masks (the finite differences see the same masks).
  assert.equal(dropoutMasks.length, dropout > 0 ? 1 + 2 * SMALL.numLayers : 0);
  const rows = batch.batchSize * batch.length;
  for (const mask of dropoutMasks) {
    const keep = keepMask(rows * mask.features, mask.rate, rng);
    feeds[mask.name] = float64(keep, [rows, mask.features]);
  }
  for (const p of params) {
    if (lora) {
      // Random A and B (B is zero at init, which would hide A's gradient).
      const n = p.shape.reduce((a, b) => a * b, 1);
      feeds[p.name] = float64(Array.from({ length: n }, () => 0.3 * rng.normal()), p.shape);
    } else {
      feeds[p.name] = float64(weights.get(p.name)!, p.shape);
    }
  }
  const session = await Session.create(graph, { device: "cpu", threads: 1 });
  try {
    const pairs = params.map((p) => ({ input: p.name, grad: trainNames.grad(p.name) }));
    const result = await compareWithFiniteDifferences(session, feeds, "loss", pairs, {
      maxElements: 5,
    });
    const worstTensor = Object.entries(result.perTensor).sort((a, b) => b[1] - a[1])[0];
    console.log(
      `  ${label}: worst relative error ${result.worst.toExponential(2)} over ${result.checked} ` +
        `elements of ${params.length} tensors (worst: ${worstTensor[0]}; tolerance ${TOLERANCE})`,
    );
    assert.ok(result.largest > 1e-3);
    assert.ok(result.worst < TOLERANCE, JSON.stringify(result.perTensor));
    for (const [name, err] of Object.entries(result.perTensor)) {
      assert.ok(Number.isFinite(err), name);
    }
  } finally {
    await session.release();
  }
}

Deno.test("full training: every weight's gradient matches finite differences (float64)", async () => {
  await check(null, "full model");
});

Deno.test("full training with the model's dropout: gradients through fixed keep-masks match finite differences", async () => {
  await check(null, "full model, dropout 0.3", 0.3);
});

Deno.test("the model's dropout: keep-masks of ones give the loss without dropout; others change it", async () => {
  const weights = noisyWeights(SMALL, 3);
  const batch = randomBatch(SMALL, [5, 3], 9, 11, [0, 2]);
  const rows = batch.batchSize * batch.length;
  const losses: number[] = [];
  for (const masks of ["none", "ones", "drawn"] as const) {
    const dropout = masks === "none" ? 0 : 0.3;
    const { graph, params, dropoutMasks } = buildGradGraph({
      config: SMALL,
      weights,
      lora: null,
      dtype: "float64",
      dropout,
    });
    const feeds: Record<string, TensorData> = {
      ...forwardFeeds(batch) as Record<string, TensorData>,
      loss_scale: float64([1], [1]),
    };
    for (const p of params) feeds[p.name] = float64(weights.get(p.name)!, p.shape);
    const rng = new Rng(9);
    for (const mask of dropoutMasks) {
      const n = rows * mask.features;
      feeds[mask.name] = float64(
        masks === "ones" ? new Float64Array(n).fill(1) : keepMask(n, mask.rate, rng),
        [rows, mask.features],
      );
    }
    const session = await Session.create(graph, { device: "cpu", threads: 1 });
    losses.push(Number((await session.run(feeds)).loss.data[0]));
    await session.release();
  }
  assert.equal(losses[1], losses[0]);
  assert.ok(Math.abs(losses[2] - losses[0]) > 1e-3, `${losses}`);
});

Deno.test("LoRA on all four linear modules: A and B gradients match finite differences", async () => {
  const lora: LoraConfig = {
    rank: 2,
    alpha: 3,
    dropout: 0,
    targets: ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
  };
  assert.equal(loraShapes(SMALL, lora).size, 4 * 2 * SMALL.numLayers);
  await check(lora, "LoRA (4 targets, rank 2)");
});

Deno.test("LoRA graphs hold the base weights as initializers and differentiate nothing frozen", () => {
  const lora: LoraConfig = { rank: 2, alpha: 4, dropout: 0, targets: ["query_key_value"] };
  const { graph, params } = buildGradGraph({
    config: SMALL,
    weights: noisyWeights(SMALL, 1),
    lora,
  });
  assert.deepEqual(params.map((p) => p.name), [...loraShapes(SMALL, lora).keys()]);
  const inputs = graph.inputs.map((v) => v.name);
  for (const name of trainableParams({ config: SMALL, lora: null }).map((p) => p.name)) {
    assert.ok(!inputs.includes(name), `${name} is an input`);
    assert.ok(graph.initializers.has(name), `${name} is not an initializer`);
  }
  // Nothing below layer 0's QKV needs a gradient: no scatter into an embedding table (the one
  // Gather gradient left puts the loss rows' gradient back among the [B*L, H] hidden rows; the
  // other scatter is the loss's, into the [M, V] log-probabilities).
  const scatters = graph.nodes.filter((n) => n.op === "ScatterElements" || n.op === "ScatterND")
    .map((n) => graph.value(n.outputs[0]).shape);
  const intoRows = scatters.filter((shape) => shape.at(-1) === SMALL.hiddenSize);
  assert.equal(intoRows.length, 1);
  assert.ok(!intoRows.some((shape) => shape[0] === SMALL.vocabSize));
  assert.equal(scatters.length, 2);
});

Deno.test("the float32 training graph (LayerNorm statistics, Gelu nodes) agrees with float64", async () => {
  // float64 keeps GELU's elementwise form (checked by finite differences above); float32 training
  // graphs use one Gelu node a layer and its rule.
  const weights = noisyWeights(SMALL, 3);
  const batch = randomBatch(SMALL, [5, 3], 9, 11, [0, 2]);
  const grads: Record<string, Float64Array>[] = [];
  for (const dtype of ["float64", "float32"] as const) {
    const { graph, params } = buildGradGraph({ config: SMALL, weights, lora: null, dtype });
    assert.equal(
      graph.nodes.filter((n) => n.op === "LayerNormalization").length,
      dtype === "float32" ? 2 * SMALL.numLayers + 1 : 0,
    );
    assert.equal(
      graph.nodes.filter((n) => n.op === "Gelu").length,
      dtype === "float32" ? SMALL.numLayers : 0,
    );
    const feeds: Record<string, TensorData> = {
      ...forwardFeeds(batch) as Record<string, TensorData>,
      loss_scale: {
        dtype,
        shape: [1],
        data: dtype === "float64" ? Float64Array.of(1) : Float32Array.of(1),
      },
    };
    for (const p of params) {
      const w = weights.get(p.name)!;
      feeds[p.name] = {
        dtype,
        shape: p.shape,
        data: dtype === "float64" ? Float64Array.from(w) : w,
      };
    }
    const session = await Session.create(graph, { device: "cpu", threads: 1 });
    const out = await session.run(feeds);
    await session.release();
    grads.push(Object.fromEntries(params.map((p) => [
      p.name,
      Float64Array.from(out[trainNames.grad(p.name)].data as Float32Array),
    ])));
  }
  let worst = 0;
  for (const [name, g64] of Object.entries(grads[0])) {
    const g32 = grads[1][name];
    let scale = 0;
    for (const x of g64) scale = Math.max(scale, Math.abs(x));
    for (let i = 0; i < g64.length; i++) {
      worst = Math.max(worst, Math.abs(g64[i] - g32[i]) / Math.max(scale, 1e-6));
    }
  }
  console.log(
    `  float32 vs float64 gradients: worst error ${worst.toExponential(2)} of each tensor's scale`,
  );
  assert.ok(worst < 1e-4, `${worst}`);
});
