/**
 * THUDM's GLM (docs/method.md section 8) as a row of the families table: its configuration
 * normalised into the one {@linkcode DecoderConfig} every graph builder reads (LayerNorm with a
 * bias, a GELU MLP of 4H, one fused `query_key_value`, learned inter- and intra-position tables,
 * the output tied to the word embedding, prefix attention), and the GLM-shaped entry points that
 * build its graphs with the one layer and the one cached step of `families/decoder.ts`.
 *
 * Nothing here builds a layer: a GLM graph is the decoders' graph over the GLM block style.
 *
 * @module
 */

import type { Graph } from "../onnx/graph.ts";
import { type GlmConfig, glmDecoderConfig } from "./config.ts";
import {
  buildDecoderForwardGraph,
  buildDecoderPrefillGraph,
  buildDecoderStepGraph,
  type DecoderBuilder,
  type DecoderForwardGraph,
  type DecoderOptions,
  type GlmLinearKind,
  type LinearHook,
  type StepOutputs,
} from "./families/decoder.ts";
import type { Weights } from "./weights.ts";

export {
  type AnyConfig,
  glmConfigOf,
  glmDecoderConfig,
  isDecoderConfig,
  modelConfig,
} from "./config.ts";
export {
  cacheNames,
  geluTanhForm,
  type LinearContext,
  type LinearHook,
  LOSS_LOGIT_BIAS,
  type StepOutputs,
} from "./families/decoder.ts";

/** GLM's four linear modules, by their name inside `glm.transformer.layers.{i}`. */
export type LinearKind = GlmLinearKind;

/** How the GLM graphs are built. */
export interface GlmOptions {
  config: GlmConfig;
  /** Weight data by name; needed for every frozen weight (trainable ones may be absent). */
  weights: Weights;
  /** Which weights are graph inputs (fed at run time, named as the weight). Default none. */
  trainable?: (name: string) => boolean;
  /** Float type of the whole graph (default float32; float64 for gradient checks). */
  dtype?: "float32" | "float64";
  /** Wraps each linear module (default: the plain linear). */
  linear?: LinearHook;
  /**
   * Attention written in standard operators (`ops`, default, differentiable by the project's
   * autodiff) or as one opset-23 Attention node (`fused`, forward only).
   */
  attention?: "ops" | "fused";
  /** See {@linkcode DecoderOptions.layerNormStats}. */
  layerNormStats?: boolean;
  /** See {@linkcode DecoderOptions.lossLogitBias}. */
  lossLogitBias?: boolean;
  /** See {@linkcode DecoderOptions.geluNode}. */
  geluNode?: boolean;
}

/** The families' options of a GLM's: its normalised configuration under prefix attention. */
export function glmOptions(options: GlmOptions): DecoderOptions {
  const { config, attention, ...rest } = options;
  return {
    ...rest,
    config: glmDecoderConfig(config),
    attention: "prefix",
    fusedAttention: attention === "fused",
  };
}

/** Which outputs a forward graph has. */
export type ForwardOutputs = "logits" | "loss" | "both";

/** What {@linkcode buildForwardGraph} returns. */
export type ForwardGraph = DecoderForwardGraph;

/** The builder GLM's graphs are built with (the families' one). */
export type GlmBuilder = DecoderBuilder;

/**
 * The GLM forward graph. Inputs: `input_ids` int32 [B, L], `position_ids` int32 [B, 2, L] (inter,
 * intra), `sep` int32 [B]; with a loss also `labels` int32 [B, L] (-100 or any negative: no loss)
 * and `loss_mask` float [B, L]. Outputs: `logits` [B, L, V] and/or `loss` [1]
 * ({@linkcode buildDecoderForwardGraph} over GLM's block).
 *
 * @example
 * ```ts
 * import { Session } from "../runtime/session.ts";
 * import type { GlmConfig } from "./config.ts";
 * import type { Weights } from "./weights.ts";
 *
 * declare const config: GlmConfig, weights: Weights;
 * const { graph } = buildForwardGraph({ config, weights, outputs: "loss" });
 * const session = await Session.create(graph);
 * ```
 */
export function buildForwardGraph(options: GlmOptions & { outputs: ForwardOutputs }): ForwardGraph {
  return buildDecoderForwardGraph({ ...glmOptions(options), outputs: options.outputs });
}

/**
 * The prefill graph: part A encoded once (bidirectional among its real tokens); outputs every
 * layer's `part_a_key_{i}`, `part_a_value_{i}` [Bp, nh, La, hd].
 */
export function buildPrefillGraph(options: GlmOptions): { graph: Graph; builder: GlmBuilder } {
  return buildDecoderPrefillGraph({ ...glmOptions(options), fusedAttention: false });
}

/** One cached decoding step (see {@linkcode buildDecoderStepGraph}). */
export function buildStepGraph(
  options: GlmOptions & { outputs: StepOutputs },
): { graph: Graph; builder: GlmBuilder } {
  return buildDecoderStepGraph({
    ...glmOptions(options),
    fusedAttention: false,
    outputs: options.outputs,
  });
}
