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
import type { ItemTokenDigest } from "../../collate/item_tokens.ts";

/** The decoder families of docs/method.md section 11, by `config.json` `model_type`. */
export type DecoderFamily = "llama" | "mistral" | "qwen2" | "qwen3" | "glm" | "glm4";

/**
 * Every family the one layer builds: the decoder families and THUDM's GLM (docs/method.md section
 * 8), whose configuration `lib/model/glm.ts` normalises into this same shape.
 */
export type FamilyName = DecoderFamily | "thudm_glm";

/**
 * How a family's layer is put together, as data the builder reads (lib/model/families/decoder.ts).
 * The Llama-style decoders: RMSNorm, a gated SiLU MLP, separate q/k/v projections, rotary
 * positions and Hugging Face's `model.*` names. THUDM's GLM: LayerNorm with a bias, a GELU MLP,
 * one fused `query_key_value` projection, learned absolute positions (an inter-position table
 * beside the intra table) and the `glm.*` names.
 */
export interface BlockStyle {
  /** RMSNorm (weight only) or LayerNorm (weight and bias). */
  norm: "rms" | "layer";
  /** down(silu(gate) * up), or GLM's dense_4h_to_h(gelu(dense_h_to_4h)). */
  mlp: "gated_silu" | "gelu";
  /** Three projections q, k, v, or one fused `query_key_value` (columns q | k | v). */
  qkv: "separate" | "fused";
  /** Rotary embeddings of `rope_position_ids`, or learned inter- and intra-position tables. */
  positions: "rotary" | "learned";
  /** Which checkpoint names ({@linkcode WEIGHT_NAMES}): Hugging Face's `model.*` or `glm.*`. */
  names: "hf" | "thudm_glm";
}

/** The decoders' block (the default where a configuration names none). */
export const DECODER_BLOCK: BlockStyle = Object.freeze({
  norm: "rms",
  mlp: "gated_silu",
  qkv: "separate",
  positions: "rotary",
  names: "hf",
});

/** THUDM GLM's block. */
export const GLM_BLOCK: BlockStyle = Object.freeze({
  norm: "layer",
  mlp: "gelu",
  qkv: "fused",
  positions: "learned",
  names: "thudm_glm",
});

/**
 * The attention rule of a run: the one asked for, else the configuration's own (GLM's prefix, a
 * merged model's recorded rule), else causal (how the decoder families were pretrained).
 */
export function attentionOf(
  config: DecoderConfig,
  asked?: "prefix" | "causal",
): "prefix" | "causal" {
  return asked ?? config.attention ?? "causal";
}

/** The block style of `config`. */
export function blockOf(config: DecoderConfig): BlockStyle {
  return config.block ?? DECODER_BLOCK;
}

/** The checkpoint names of a block style's tensors (linear modules are named by their kind). */
export interface WeightNames {
  embed: string;
  /** Learned absolute positions ([maxPositions + 1, H]; `learned` only). */
  interTable: string;
  /** The intra-position table. */
  intraTable: string;
  layer: (i: number) => string;
  finalNorm: string;
  head: string;
  /** The attention's input projections after the layer prefix: q, k, v, or one fused q | k | v. */
  attention: readonly string[];
  /** The attention's output projection after the layer prefix. */
  attentionOutput: string;
}

/** Names by {@linkcode BlockStyle.names}. */
export const WEIGHT_NAMES: Record<BlockStyle["names"], WeightNames> = {
  hf: {
    embed: "model.embed_tokens.weight",
    interTable: "",
    intraTable: "model.intra_position_embeddings.weight",
    layer: (i) => `model.layers.${i}`,
    finalNorm: "model.norm",
    head: "lm_head.weight",
    attention: ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
    attentionOutput: "self_attn.o_proj",
  },
  thudm_glm: {
    embed: "glm.word_embeddings.weight",
    interTable: "glm.transformer.position_embeddings.weight",
    intraTable: "glm.transformer.block_position_embeddings.weight",
    layer: (i) => `glm.transformer.layers.${i}`,
    finalNorm: "glm.transformer.final_layernorm",
    head: "glm.word_embeddings.weight",
    attention: ["attention.query_key_value"],
    attentionOutput: "attention.dense",
  },
};

/** The weight names of `config`'s family. */
export function weightNames(config: DecoderConfig): WeightNames {
  return WEIGHT_NAMES[blockOf(config).names];
}

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
  /** The family, by `config.json` `model_type` (`thudm_glm`: THUDM's GLM). */
  family: FamilyName;
  /** How the layer is built (default {@linkcode DECODER_BLOCK}). */
  block?: BlockStyle;
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
  /**
   * glm4 (GLM-4-0414): an RMSNorm on the attention's output (`post_self_attn_layernorm`) and one
   * on the MLP's (`post_mlp_layernorm`), each before its residual sum. Absent: none.
   */
  sandwichNorms?: boolean;
  /** Whether `lm_head` shares the embedding's weights. */
  tieWordEmbeddings: boolean;
  /** Longest sequence the model takes (`max_position_embeddings`). */
  maxPositionEmbeddings: number;
  /**
   * mistral: the sliding window of its attention where shorter than `maxPositionEmbeddings`
   * (Mistral-7B-v0.1: 4096): runs are capped at it, where sliding and full attention agree.
   */
  slidingWindow?: number;
  /**
   * The longest sequence this use of the model runs (set when a run or an inference loads the
   * model, never read from or written to config.json): rotary tables are built for it alone, not
   * for `maxPositionEmbeddings` rows (a 1M-token checkpoint's would be half a gigabyte a graph).
   */
  positionLimit?: number;
  /** R: rows of `model.intra_position_embeddings.weight` (ids past R-1 use row R-1). */
  intraRows: number;
  /**
   * The attention rule a merged model was trained with (`recsysllm.attention` in config.json,
   * written by `pretrain --merge`); absent for a pretrained checkpoint.
   */
  attention?: "prefix" | "causal";
  /**
   * The dataset item tokens whose rows the model holds (`recsysllm_item_tokens` in config.json:
   * a GLM `init` made for such a dataset, a run trained on one); absent when none are recorded.
   */
  itemTokens?: ItemTokenDigest;
  /**
   * The longest sequence the run that wrote these weights trained on (`recsysllm.max_length`,
   * written by `pretrain --full` and `--merge`): inference cuts its prompts to it.
   */
  trainedLength?: number;
  /**
   * The tokenizer's prefix every example of the run that wrote these weights started with
   * (`recsysllm.prefix_ids`; docs/method.md section 4), where it had one. Weights this toolkit
   * trained before 2026-12-07 never saw it: inference warns.
   */
  trainedPrefix?: number[];
  /**
   * `bos_token_id`, `eos_token_id` and `pad_token_id` as config.json gives them (an id, a list
   * of ids, or null), written back as read. They do not change the network (not part of the
   * model's identity), but transformers takes its family's defaults where a key is absent, and
   * GLM-4's (pad 151329) lie past a small model's rows.
   */
  tokenIds?: TokenIds;
}

/** The special-token ids of a config.json, by their keys there. */
export type TokenIds = Partial<Record<TokenIdKey, number | number[] | null>>;

/** The keys of {@linkcode TokenIds}. */
export const TOKEN_ID_KEYS = ["bos_token_id", "eos_token_id", "pad_token_id"] as const;

/** One key of {@linkcode TOKEN_ID_KEYS}. */
export type TokenIdKey = typeof TOKEN_ID_KEYS[number];

/** Rows of the intra-position table unless set (docs/method.md section 11). */
export const DEFAULT_INTRA_ROWS = 64;

/** The name of the intra-position table (held by the adapter, not the base checkpoint). */
export const INTRA_TABLE = "model.intra_position_embeddings.weight";

/** The tensor name prefix of layer `i`: `model.layers.{i}`. */
export function decoderLayerPrefix(i: number): string {
  return `model.layers.${i}`;
}

/**
 * Every weight of the base checkpoint with its shape (linear weights [out, in]), in checkpoint
 * order, for any block style (THUDM's GLM: the order of its checkpoints).
 */
export function decoderWeightShapes(c: DecoderConfig): Map<string, number[]> {
  const { hiddenSize: h, intermediateSize: im, headDim: hd } = c;
  const block = blockOf(c);
  const names = weightNames(c);
  const q = c.numHeads * hd;
  const kv = c.numKvHeads * hd;
  const shapes = new Map<string, number[]>([[names.embed, [c.vocabSize, h]]]);
  if (block.positions === "learned") {
    shapes.set(names.interTable, [c.maxPositionEmbeddings + 1, h]);
    shapes.set(names.intraTable, [c.intraRows, h]);
  }
  const norm = (prefix: string) => {
    shapes.set(`${prefix}.weight`, [h]);
    if (block.norm === "layer") shapes.set(`${prefix}.bias`, [h]);
  };
  const linear = (module: string, out: number, inFeatures: number, bias: boolean) => {
    shapes.set(`${module}.weight`, [out, inFeatures]);
    if (bias) shapes.set(`${module}.bias`, [out]);
  };
  const glm = block.names === "thudm_glm";
  for (let i = 0; i < c.numLayers; i++) {
    const p = names.layer(i);
    norm(`${p}.input_layernorm`);
    if (block.qkv === "fused") {
      linear(`${p}.attention.query_key_value`, q + 2 * kv, h, c.biases.qkv);
    } else {
      for (const [name, out] of [["q_proj", q], ["k_proj", kv], ["v_proj", kv]] as const) {
        linear(`${p}.self_attn.${name}`, out, h, c.biases.qkv);
      }
    }
    linear(glm ? `${p}.attention.dense` : `${p}.self_attn.o_proj`, h, q, c.biases.o);
    if (c.qkNorm) {
      shapes.set(`${p}.self_attn.q_norm.weight`, [hd]);
      shapes.set(`${p}.self_attn.k_norm.weight`, [hd]);
    }
    norm(`${p}.post_attention_layernorm`);
    if (c.sandwichNorms) {
      norm(`${p}.post_self_attn_layernorm`);
      norm(`${p}.post_mlp_layernorm`);
    }
    const mlp: [string, number, number][] = block.mlp === "gelu"
      ? [["dense_h_to_4h", im, h], ["dense_4h_to_h", h, im]]
      : c.fusedGateUp
      ? [["gate_up_proj", 2 * im, h], ["down_proj", h, im]]
      : [["gate_proj", im, h], ["up_proj", im, h], ["down_proj", h, im]];
    for (const [name, out, inFeatures] of mlp) {
      linear(`${p}.mlp.${name}`, out, inFeatures, c.biases.mlp);
    }
  }
  norm(names.finalNorm);
  if (!c.tieWordEmbeddings) shapes.set(names.head, [c.vocabSize, h]);
  return shapes;
}

/** Refuses a rope scaling whose factors would divide by zero or make the frequencies negative. */
function checkRopeScaling(s: RopeScaling | null, bad: (problem: string) => Error): void {
  if (s === null) return;
  const positive: [number, string][] = [[s.factor, "factor"]];
  if (s.type === "llama3") {
    positive.push(
      [s.lowFreqFactor, "low_freq_factor"],
      [s.highFreqFactor, "high_freq_factor"],
      [s.originalMaxPositions, "original_max_position_embeddings"],
    );
  }
  for (const [v, key] of positive) {
    if (!(v > 0 && Number.isFinite(v))) {
      throw bad(`"rope_scaling.${key}" must be a positive number, got ${JSON.stringify(v)}`);
    }
  }
  if (s.type === "llama3" && !(s.highFreqFactor > s.lowFreqFactor)) {
    throw bad(
      `"rope_scaling.high_freq_factor" (${s.highFreqFactor}) must be greater than ` +
        `"low_freq_factor" (${s.lowFreqFactor})`,
    );
  }
}

/** The most positions a model may claim: 2^22, four times the longest supported checkpoints'. */
export const MAX_POSITIONS = 2 ** 22;

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
  if (c.maxPositionEmbeddings > MAX_POSITIONS) {
    // Inference builds its rotary tables for the model's length when no training recorded a
    // shorter one: a corrupt count would allocate them (or crash) before anything else runs.
    throw bad(
      `"max_position_embeddings" ${c.maxPositionEmbeddings} is more than the ${MAX_POSITIONS} ` +
        `positions this toolkit runs (the longest supported checkpoints have about 1M)`,
    );
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
  // An intra position counts tokens inside one span of a sequence: rows past the longest one
  // are never read, and a corrupt count would allocate its zero table before anything runs.
  const intraLimit = Math.max(DEFAULT_INTRA_ROWS, c.maxPositionEmbeddings + 1);
  if (c.intraRows > intraLimit) {
    throw bad(
      `"intra_position_rows" ${c.intraRows} is more than the ${intraLimit} positions the model ` +
        `can use ("max_position_embeddings" + 1)`,
    );
  }
  checkRopeScaling(c.ropeScaling, bad);
  for (const [v, key] of [[c.rmsNormEps, "rms_norm_eps"], [c.ropeTheta, "rope_theta"]] as const) {
    if (!(typeof v === "number" && v > 0 && Number.isFinite(v))) {
      throw bad(`"${key}" must be a positive number, got ${JSON.stringify(v)}`);
    }
  }
  return c;
}
