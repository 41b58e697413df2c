/**
 * The loss gradient of every tensor of a LoRA adapter for one batch, computed by the same
 * gradient graph training uses (dropout off), so that gradients can be checked from outside
 * (`forward --adapter DIR --grads`, e.g. against PyTorch + PEFT on the same weights).
 *
 * @module
 */

import type { Batch } from "../collate/types.ts";
import type { Weights } from "../model/weights.ts";
import type { AnyConfig } from "../model/lora.ts";
import type { TrainSetup } from "./train_graph.ts";
import type { TensorData } from "../onnx/graph.ts";
import { type Device, Session } from "../runtime/session.ts";
import type { Adapter } from "../model/adapter.ts";
import { weightSessionOptions } from "../model/family.ts";
import { batchFeeds } from "./engine.ts";
import { buildGradGraph, trainNames } from "./train_graph.ts";

/** What {@linkcode adapterGradients} returns. */
export interface AdapterGradients {
  /** The batch's masked mean cross-entropy. */
  loss: number;
  /** d loss / d tensor, by the adapter tensor's name. */
  grads: Map<string, Float32Array>;
  device: string;
}

/**
 * The loss of `batch` under base weights + `adapter`, and its gradient for every adapter tensor
 * (for a decoder family also the intra-position table and the special rows, by their names;
 * `decoder` as in training: the attention rule and the special rows).
 */
export async function adapterGradients(
  model: { config: AnyConfig; weights: Weights },
  adapter: Adapter,
  batch: Batch,
  options: { device?: Device; threads?: number; decoder?: TrainSetup["decoder"] } = {},
): Promise<AdapterGradients> {
  const { graph, params } = buildGradGraph({
    config: model.config,
    weights: model.weights,
    lora: { ...adapter.lora, dropout: 0 },
    decoder: options.decoder,
  });
  const session = await Session.create(graph, {
    ...weightSessionOptions(model.weights),
    device: options.device,
    threads: options.threads,
  });
  try {
    const feeds: Record<string, TensorData> = {
      ...batchFeeds(batch, graph.isInput("rope_position_ids")),
      loss_scale: { dtype: "float32", shape: [1], data: Float32Array.of(1) },
    };
    for (const p of params) {
      feeds[p.name] = { dtype: "float32", shape: p.shape, data: adapter.weights.get(p.name)! };
    }
    const out = await session.run(feeds, ["loss", ...params.map((p) => trainNames.grad(p.name))]);
    return {
      loss: (out.loss.data as Float32Array)[0],
      grads: new Map(
        params.map((p) => [p.name, out[trainNames.grad(p.name)].data as Float32Array]),
      ),
      device: session.device,
    };
  } finally {
    await session.release();
  }
}
