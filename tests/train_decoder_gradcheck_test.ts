/**
 * The decoder families' training gradients against central finite differences in float64: LoRA
 * on every projection, the intra-position table and the special-token rows (tied and untied
 * heads), and full training of every weight. Elements are sampled evenly from each tensor.
 */

import assert from "node:assert/strict";
import type { DecoderFamily } from "../lib/model/families/config.ts";
import type { TensorData } from "../lib/onnx/graph.ts";
import { Rng } from "../lib/random.ts";
import { Session } from "../lib/runtime/session.ts";
import type { LoraConfig } from "../lib/model/lora.ts";
import { buildGradGraph, trainNames } from "../lib/train/train_graph.ts";
import { decoderBatch, decoderFeeds, noisyDecoderWeights, TINY } from "./helpers/decoder.ts";
import { compareWithFiniteDifferences } from "./helpers/grad_check.ts";

const TOLERANCE = 1e-5;
const ADDED = 2;

async function check(
  family: DecoderFamily,
  lora: LoraConfig | null,
  attention: "prefix" | "causal",
) {
  const config = TINY[family];
  const weights = noisyDecoderWeights(config, 3, { intra: true, addedRows: ADDED });
  const setup = {
    config,
    weights,
    lora,
    dtype: "float64" as const,
    decoder: { attention, addedRows: ADDED },
  };
  const { graph, params } = buildGradGraph(setup);
  const names = params.map((p) => p.name);
  assert.ok(names.includes("model.intra_position_embeddings.weight"));
  assert.ok(names.includes("model.embed_tokens.added.weight"));
  const batch = decoderBatch(config.vocabSize + ADDED, [5, 3], 9, 11, [0, 2]);
  // Make sure the added rows appear in inputs and labels.
  batch.inputIds[1] = config.vocabSize;
  batch.labels[7] = config.vocabSize + 1;
  const feeds: Record<string, TensorData> = {
    ...decoderFeeds(batch) as Record<string, TensorData>,
    loss_scale: { dtype: "float64", shape: [1], data: Float64Array.of(1) },
  };
  const rng = new Rng(5);
  for (const p of params) {
    const known = weights.get(p.name);
    const n = p.shape.reduce((a, b) => a * b, 1);
    // LoRA A and B random (B is zero at init, which would hide A's gradient).
    const data = known
      ? Float64Array.from(known)
      : Float64Array.from({ length: n }, () => 0.3 * rng.normal());
    feeds[p.name] = { dtype: "float64", shape: p.shape, data };
  }
  const session = await Session.create(graph, { device: "cpu", threads: 1 });
  try {
    const pairs = params.map((p) => ({ input: p.name, grad: trainNames.grad(p.name) }));
    const result = await compareWithFiniteDifferences(session, feeds, "loss", pairs, {
      maxElements: 4,
    });
    const worst = Object.entries(result.perTensor).sort((a, b) => b[1] - a[1])[0];
    console.log(
      `  ${family} ${lora ? "LoRA" : "full"} ${attention}: worst relative error ${
        result.worst.toExponential(2)
      } ` +
        `over ${result.checked} elements of ${params.length} tensors (worst: ${worst[0]})`,
    );
    assert.ok(result.largest > 1e-3);
    assert.ok(result.worst < TOLERANCE, JSON.stringify(result.perTensor));
  } finally {
    await session.release();
  }
}

const every: LoraConfig = {
  rank: 2,
  alpha: 4,
  dropout: 0,
  targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
};

Deno.test("qwen3 LoRA on every projection, intra table and special rows: gradients match finite differences", async () => {
  await check("qwen3", every, "causal");
});

Deno.test("llama (untied head) LoRA, prefix attention: gradients match finite differences", async () => {
  await check("llama", { ...every, targets: ["q_proj", "v_proj", "down_proj"] }, "prefix");
});

Deno.test("glm LoRA on gate_up_proj, full training of mistral: gradients match finite differences", async () => {
  await check("glm", { ...every, targets: ["q_proj", "k_proj", "gate_up_proj"] }, "causal");
  await check("mistral", null, "causal");
});
