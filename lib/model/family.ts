/**
 * The model-family seam: what generation (and anything else downstream) needs from a model,
 * whatever its architecture, as one small object. THUDM's GLM (docs/method.md section 8, `glm.ts`)
 * and the Llama-style decoders (docs/method.md section 11, `families/decoder.ts`) each provide one;
 * the cached decoder, beam search and candidate scoring are written once against it.
 *
 * @module
 */

import type { Graph } from "../onnx/graph.ts";
import type { GlmConfig } from "./config.ts";
import type { DecoderConfig } from "./families/config.ts";
import type { WeightSessionOptions } from "../runtime/session.ts";
import {
  type AttentionMode,
  buildDecoderPrefillGraph,
  buildDecoderStepGraph,
  DECODER_SESSION_OPTIONS,
  type DecoderLinearHook,
} from "./families/decoder.ts";
import { buildPrefillGraph, buildStepGraph, type LinearHook, type StepOutputs } from "./glm.ts";
import type { Weights } from "./weights.ts";

/** A model's decoding graphs and the sizes of their caches. */
export interface ModelFamily {
  /** `glm` (THUDM) or the decoder family's `model_type`. */
  readonly name: string;
  /** Columns of every log-probability row. */
  readonly vocabSize: number;
  /** L: number of layers (one key/value cache each). */
  readonly numLayers: number;
  /** Heads of the key/value caches (nh for GLM, nkv for the decoders) and their width. */
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

/** THUDM's GLM behind the seam. */
export function glmFamily(
  model: { config: GlmConfig; weights: Weights },
  options: { linear?: LinearHook } = {},
): ModelFamily {
  const { config, weights } = model;
  return {
    name: "glm",
    vocabSize: config.vocabSize,
    numLayers: config.numLayers,
    cacheHeads: config.numHeads,
    headDim: config.hiddenSize / config.numHeads,
    usesRope: false,
    sessionOptions: {},
    prefillGraph: () => buildPrefillGraph({ config, weights, linear: options.linear }).graph,
    stepGraph: (outputs) =>
      buildStepGraph({ config, weights, outputs, linear: options.linear }).graph,
  };
}

/** Options of {@linkcode decoderFamily}. */
export interface DecoderFamilyOptions {
  /** The run's attention rule (default causal). */
  attention?: AttentionMode;
  /** Special-token rows past the checkpoint's vocabulary (in `weights`). */
  addedRows?: number;
  linear?: DecoderLinearHook;
}

/** A Llama-style decoder behind the seam. */
export function decoderFamily(
  model: { config: DecoderConfig; weights: Weights },
  options: DecoderFamilyOptions = {},
): ModelFamily {
  const { config, weights } = model;
  const common = { config, weights, ...options };
  return {
    name: config.family,
    vocabSize: config.vocabSize + (options.addedRows ?? 0),
    numLayers: config.numLayers,
    cacheHeads: config.numKvHeads,
    headDim: config.headDim,
    usesRope: true,
    sessionOptions: DECODER_SESSION_OPTIONS,
    prefillGraph: () => buildDecoderPrefillGraph(common).graph,
    stepGraph: (outputs) => buildDecoderStepGraph({ ...common, outputs }).graph,
  };
}
