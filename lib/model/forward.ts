/**
 * One forward pass of a loaded model over one batch: builds the forward graph (logits, and the
 * loss when the batch has labels), runs it on the device asked for and returns the results.
 * What the `forward` command runs; training and inference build their own graphs.
 *
 * @module
 */

import type { TensorData } from "../onnx/graph.ts";
import { type Device, Session } from "../runtime/session.ts";
import type { JsonBatch } from "./batch_json.ts";
import { modelConfig } from "./config.ts";
import {
  type AttentionMode,
  buildDecoderForwardGraph,
  type LinearHook,
} from "./families/decoder.ts";
import { weightSessionOptions } from "./family.ts";
import { ropePositionIds } from "./families/positions.ts";
import type { AnyModel } from "./load_any.ts";
import type { LoadedModel } from "./weights.ts";

/** What {@linkcode runForward} returns. */
export interface ForwardResult {
  /** [B, L, V] float32, row-major. */
  logits: Float32Array;
  /** The masked mean cross-entropy, when the batch has labels. */
  loss?: number;
  /** The device the graph ran on. */
  device: string;
}

/**
 * Runs `batch` through `model` on `device` (default auto); `linear` wraps linears (a LoRA adapter
 * applied by its hook). A GLM given in its own configuration is normalised first.
 */
export async function runForward(
  model: LoadedModel | AnyModel,
  batch: JsonBatch,
  options: {
    device?: Device;
    threads?: number;
    linear?: LinearHook;
    /** The attention rule (default: the configuration's, else causal). */
    attention?: AttentionMode;
  } = {},
): Promise<ForwardResult> {
  const withLoss = batch.labels !== undefined && batch.lossMask !== undefined;
  const config = modelConfig(model.config);
  const addedRows = "addedRows" in model ? model.addedRows : 0;
  // Rotary positions as given, else derived from the positions (docs/method.md section 11).
  const rope = batch.ropePositionIds ?? ropePositionIds(batch);
  const { graph, builder } = buildDecoderForwardGraph({
    // Rotary tables for this batch's positions alone, not the model's longest sequence (a
    // config.json may claim millions of positions).
    config: { ...config, positionLimit: rope.reduce((a, b) => Math.max(a, b), 0) + 1 },
    weights: model.weights,
    outputs: withLoss ? "both" : "logits",
    attention: options.attention,
    addedRows,
    linear: options.linear,
  });
  const session = await Session.create(graph, {
    ...weightSessionOptions(model.weights),
    device: options.device,
    threads: options.threads,
  });
  try {
    const { batchSize: B, length: L } = batch;
    const feeds: Record<string, TensorData> = {
      input_ids: { dtype: "int32", shape: [B, L], data: batch.inputIds },
      position_ids: { dtype: "int32", shape: [B, 2, L], data: batch.positionIds },
      sep: { dtype: "int32", shape: [B], data: batch.sep },
    };
    if (builder.usesRope) feeds.rope_position_ids = { dtype: "int32", shape: [B, L], data: rope };
    if (withLoss) {
      feeds.labels = { dtype: "int32", shape: [B, L], data: batch.labels! };
      feeds.loss_mask = { dtype: "float32", shape: [B, L], data: batch.lossMask! };
    }
    const out = await session.run(feeds);
    return {
      logits: out.logits.data as Float32Array,
      loss: withLoss ? (out.loss.data as Float32Array)[0] : undefined,
      device: session.device,
    };
  } finally {
    await session.release();
  }
}
