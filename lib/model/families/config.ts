/**
 * The normalised configuration of the decoder-only LLM families (docs/method.md section 11): one
 * plain object that every graph builder, loader and adapter reads, whatever the family. Built from
 * a Hugging Face `config.json` by the family's traits in `registry.ts` (head_dim and bias defaults,
 * q/k norm, fused gate_up, rotary style), and written back to the same keys.
 *
 * Settings the toolkit cannot honour (another rope type, an active sliding window, an activation
 * other than SiLU) are one-line InputErrors naming the key, never approximations.
 *
 * @module
 */

import { inputError } from "../../errors.ts";

/** The decoder families of docs/method.md section 11, by `config.json` `model_type`. */
export type DecoderFamily = "llama" | "mistral" | "qwen2" | "qwen3" | "glm";

/** Rotary scaling as Hugging Face defines it (`rope_scaling`). */
export type RopeScaling =
  | { type: "linear"; factor: number }
  | {
    type: "llama3";
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositions: number;
  };

/** Which linear modules of a layer carry a bias. */
export interface Biases {
  /** Biases on the query, key and value projections. */
  qkv: boolean;
  /** A bias on the attention output projection. */
  o: boolean;
  /** Biases on the MLP's projections. */
  mlp: boolean;
}

/** A decoder configuration, normalised across families. */
export interface DecoderConfig {
  /** The family, by `config.json` `model_type`. */
  family: DecoderFamily;
  /** V: rows of the embedding (and of an untied lm_head). */
  vocabSize: number;
  /** H. */
  hiddenSize: number;
  /** I: width of the MLP. */
  intermediateSize: number;
  /** L: number of layers. */
  numLayers: number;
  /** nh: query heads. */
  numHeads: number;
  /** nkv: key/value heads; divides nh (query head h uses kv head floor(h / (nh / nkv))). */
  numKvHeads: number;
  /** hd: width of one head (nh * hd need not equal H). */
  headDim: number;
  /** Epsilon of every RMSNorm. */
  rmsNormEps: number;
  /** Base of the rotary embedding's frequencies (`rope_theta`). */
  ropeTheta: number;
  /** d: rotated dimensions of each head (hd, or hd * partial_rotary_factor for glm); even. */
  rotaryDim: number;
  /** `half`: rotate_half (llama, mistral, qwen); `interleaved`: pairs (2i, 2i+1) (glm). */
  ropeStyle: "half" | "interleaved";
  /** Rotary scaling (`rope_scaling`), or null for none. */
  ropeScaling: RopeScaling | null;
  /** Which linear modules carry a bias. */
  biases: Biases;
  /** qwen3: RMSNorm over each query and key head before the rotary embedding. */
  qkNorm: boolean;
  /** glm: one `mlp.gate_up_proj` [2I, H] (gate rows first) instead of gate_proj and up_proj. */
  fusedGateUp: boolean;
  /** Whether `lm_head` shares the embedding's weights. */
  tieWordEmbeddings: boolean;
  /** Longest sequence the model takes (`max_position_embeddings`). */
  maxPositionEmbeddings: number;
  /** R: rows of `model.intra_position_embeddings.weight` (ids past R-1 use row R-1). */
  intraRows: number;
  /**
   * The attention rule a merged model was trained with (`recsysllm.attention` in config.json,
   * written by `pretrain --merge`); absent for a pretrained checkpoint.
   */
  attention?: "prefix" | "causal";
}

/** Rows of the intra-position table unless set (docs/method.md section 11). */
export const DEFAULT_INTRA_ROWS = 64;

/** The name of the intra-position table (held by the adapter, not the base checkpoint). */
export const INTRA_TABLE = "model.intra_position_embeddings.weight";

/** The tensor name prefix of layer `i`: `model.layers.{i}`. */
export function decoderLayerPrefix(i: number): string {
  return `model.layers.${i}`;
}

/** Every weight of the base checkpoint with its shape (linear weights [out, in]). */
export function decoderWeightShapes(c: DecoderConfig): Map<string, number[]> {
  const { hiddenSize: h, intermediateSize: im, headDim: hd } = c;
  const q = c.numHeads * hd;
  const kv = c.numKvHeads * hd;
  const shapes = new Map<string, number[]>([["model.embed_tokens.weight", [c.vocabSize, h]]]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = decoderLayerPrefix(i);
    shapes.set(`${p}.input_layernorm.weight`, [h]);
    for (const [name, out] of [["q_proj", q], ["k_proj", kv], ["v_proj", kv]] as const) {
      shapes.set(`${p}.self_attn.${name}.weight`, [out, h]);
      if (c.biases.qkv) shapes.set(`${p}.self_attn.${name}.bias`, [out]);
    }
    shapes.set(`${p}.self_attn.o_proj.weight`, [h, q]);
    if (c.biases.o) shapes.set(`${p}.self_attn.o_proj.bias`, [h]);
    if (c.qkNorm) {
      shapes.set(`${p}.self_attn.q_norm.weight`, [hd]);
      shapes.set(`${p}.self_attn.k_norm.weight`, [hd]);
    }
    shapes.set(`${p}.post_attention_layernorm.weight`, [h]);
    const mlp: [string, number[]][] = c.fusedGateUp
      ? [["gate_up_proj", [2 * im, h]], ["down_proj", [h, im]]]
      : [["gate_proj", [im, h]], ["up_proj", [im, h]], ["down_proj", [h, im]]];
    for (const [name, shape] of mlp) {
      shapes.set(`${p}.mlp.${name}.weight`, shape);
      if (c.biases.mlp) shapes.set(`${p}.mlp.${name}.bias`, [shape[0]]);
    }
  }
  shapes.set("model.norm.weight", [h]);
  if (!c.tieWordEmbeddings) shapes.set("lm_head.weight", [c.vocabSize, h]);
  return shapes;
}

/** Checks the relations between a configuration's values; problems name `file` and the key. */
export function validateDecoderConfig(c: DecoderConfig, file: string): DecoderConfig {
  const bad = (problem: string) => inputError(file, undefined, problem);
  const ints: [keyof DecoderConfig, string][] = [
    ["vocabSize", "vocab_size"],
    ["hiddenSize", "hidden_size"],
    ["intermediateSize", "intermediate_size"],
    ["numLayers", "num_hidden_layers"],
    ["numHeads", "num_attention_heads"],
    ["numKvHeads", "num_key_value_heads"],
    ["headDim", "head_dim"],
    ["maxPositionEmbeddings", "max_position_embeddings"],
    ["intraRows", "intra_position_rows"],
  ];
  for (const [field, key] of ints) {
    const v = c[field];
    if (!Number.isInteger(v) || (v as number) < 1) {
      throw bad(`"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    }
  }
  if (c.numHeads % c.numKvHeads !== 0) {
    throw bad(
      `"num_key_value_heads" (${c.numKvHeads}) must divide "num_attention_heads" (${c.numHeads})`,
    );
  }
  if (c.rotaryDim % 2 !== 0 || c.rotaryDim < 2 || c.rotaryDim > c.headDim) {
    throw bad(
      `rotary dimensions ${c.rotaryDim} (head_dim x partial_rotary_factor) must be even and ` +
        `within head_dim ${c.headDim}`,
    );
  }
  for (const [v, key] of [[c.rmsNormEps, "rms_norm_eps"], [c.ropeTheta, "rope_theta"]] as const) {
    if (!(typeof v === "number" && v > 0 && Number.isFinite(v))) {
      throw bad(`"${key}" must be a positive number, got ${JSON.stringify(v)}`);
    }
  }
  return c;
}
