/**
 * The model-family seam: what generation (and anything else downstream) needs from a model,
 * whatever its family, as one small object. Every family is a row of one table (the decoders,
 * docs/method.md section 11, and THUDM's GLM, section 8, normalised by `glm.ts`) built by the one
 * layer of `families/decoder.ts`; the cached decoder, beam search and candidate scoring are
 * written once against this object.
 *
 * @module
 */

import type { Graph } from "../onnx/graph.ts";
import { blockOf, type DecoderConfig } from "./families/config.ts";
import type { WeightSessionOptions } from "../runtime/session.ts";
import {
  type AttentionMode,
  buildDecoderPrefillGraph,
  buildDecoderStepGraph,
  DECODER_SESSION_OPTIONS,
  type LinearHook,
  type StepOutputs,
} from "./families/decoder.ts";
import { type GlmConfig, glmDecoderConfig } from "./config.ts";
import type { Weights } from "./weights.ts";

/** A model's decoding graphs and the sizes of their caches. */
export interface ModelFamily {
  /** The family's `model_type` (`thudm_glm` for THUDM's GLM). */
  readonly name: string;
  /** Columns of every log-probability row. */
  readonly vocabSize: number;
  /** L: number of layers (one key/value cache each). */
  readonly numLayers: number;
  /** Heads of the key/value caches (nkv) and their width. */
  readonly cacheHeads: number;
  /** Width of one cached head. */
  readonly headDim: number;
  /** Whether the graphs take `rope_position_ids` (docs/method.md section 11). */
  readonly usesRope: boolean;
  /** How sessions over these graphs hold the weights (lib/runtime `SessionOptions`). */
  readonly sessionOptions: WeightSessionOptions;
  /** The prefill graph (part A -> `part_a_key_{i}`, `part_a_value_{i}`). */
  prefillGraph(): Graph;
  /** A cached step graph. */
  stepGraph(outputs: StepOutputs): Graph;
}

/**
 * Weights past this many bytes are fed to sessions instead of copied into them as initializers
 * ({@linkcode DECODER_SESSION_OPTIONS}): a 0.5B model's 2 GB would otherwise be held twice. Small
 * models keep onnxruntime's prepacked initializers, which are faster.
 */
export const FEED_WEIGHTS_BYTES = 256 * 1024 * 1024;

/** Bytes of every weight in `weights`. */
export function weightBytes(weights: Weights): number {
  let bytes = 0;
  for (const w of weights.values()) bytes += w.byteLength;
  return bytes;
}

/** How sessions over a model with `weights` hold them: fed when large, initializers when small. */
export function weightSessionOptions(weights: Weights): WeightSessionOptions {
  return weightBytes(weights) > FEED_WEIGHTS_BYTES ? DECODER_SESSION_OPTIONS : {};
}

/**
 * Decoding keeps onnxruntime's prepacked initializers up to this many bytes of weights: each of
 * its sessions (prefill, step) then holds a packed copy, which its GEMMs read faster than fed
 * weights (measured on the Qwen2.5-0.5B shape, 1.98 GB: 0.495 users/s at 10.6 GB peak against
 * 0.427 at 2.7 GB fed, docs/performance.md). Larger models are fed, so they fit in memory.
 * Chosen by size, so every shard of a model decodes with the same kernels.
 */
export const DECODE_PREPACK_BYTES = 2.5 * 1024 ** 3;

/** How decoding sessions over `weights` hold them: prepacked up to {@linkcode DECODE_PREPACK_BYTES}. */
export function decodeSessionOptions(weights: Weights): WeightSessionOptions {
  return weightBytes(weights) > DECODE_PREPACK_BYTES ? DECODER_SESSION_OPTIONS : {};
}

/** Options of {@linkcode modelFamily}. */
export interface ModelFamilyOptions {
  /** The run's attention rule (default: the configuration's, else causal). */
  attention?: AttentionMode;
  /** Special-token rows past the checkpoint's vocabulary (in `weights`). */
  addedRows?: number;
  /** Wraps every linear module (a quantized or adapted linear). */
  linear?: LinearHook;
}

/** Any model behind the seam. */
export function modelFamily(
  model: { config: DecoderConfig; weights: Weights },
  options: ModelFamilyOptions = {},
): ModelFamily {
  const { config, weights } = model;
  const common = {
    config,
    weights,
    addedRows: options.addedRows,
    linear: options.linear,
    attention: options.attention,
  };
  return {
    name: config.family,
    vocabSize: config.vocabSize + (options.addedRows ?? 0),
    numLayers: config.numLayers,
    cacheHeads: config.numKvHeads,
    headDim: config.headDim,
    usesRope: blockOf(config).positions === "rotary",
    sessionOptions: decodeSessionOptions(weights),
    prefillGraph: () => buildDecoderPrefillGraph(common).graph,
    stepGraph: (outputs) => buildDecoderStepGraph({ ...common, outputs }).graph,
  };
}

/** A GLM given in its own configuration behind the seam. */
export function glmFamily(
  model: { config: GlmConfig; weights: Weights },
  options: { linear?: LinearHook } = {},
): ModelFamily {
  return modelFamily({ config: glmDecoderConfig(model.config), weights: model.weights }, options);
}
