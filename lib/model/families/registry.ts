/**
 * The registry of model families, keyed by `config.json`'s `model_type` (the way transformers.js
 * keeps its families behind one normalised config). Each decoder family is a row of traits (data,
 * not code): its Hugging Face defaults for `head_dim` and biases, q/k norm, fused gate_up, rotary
 * style; `parseDecoderConfig` turns any of their `config.json` files into a {@linkcode
 * DecoderConfig}, and `decoderConfigJson` writes one back in the family's own keys.
 *
 * `model_type: "glm"` names two architectures: THUDM's original GLM (docs/method.md section 8, the
 * paper's base, keys `num_layers` and `max_sequence_length`) and GLM-4 as transformers has it
 * (docs/method.md section 11, keys `num_hidden_layers`, `partial_rotary_factor`).
 * {@linkcode modelArchitecture} tells them apart by those keys, so every GLM directory this toolkit
 * wrote keeps loading as GLM.
 * The toolkit now writes THUDM's GLM as `thudm_glm`, a type transformers does not mistake for
 * GLM-4.
 *
 * @module
 */

import { inputError } from "../../errors.ts";
import {
  configJson,
  glmConfigOf,
  ITEM_TOKENS_KEY,
  recordedAttention,
  recordedLength,
  recordedPrefix,
  recsysllmJson,
} from "../config.ts";
import { itemTokenDigestJson, parseItemTokenDigest } from "../../collate/item_tokens.ts";
import {
  type Biases,
  type DecoderConfig,
  type DecoderFamily,
  DEFAULT_INTRA_ROWS,
  type RopeScaling,
  TOKEN_ID_KEYS,
  type TokenIds,
  validateDecoderConfig,
} from "./config.ts";

/** What distinguishes one decoder family from another (Hugging Face's defaults). */
export interface FamilyTraits {
  /** `architectures[0]` written by `decoderConfigJson`. */
  architecture: string;
  /** head_dim where `config.json` has none: hidden / heads, or a fixed width. */
  headDim: "hidden/heads" | number;
  /** Biases from `attention_bias` (and `mlp_bias`). */
  biases: (attentionBias: boolean, mlpBias: boolean) => Biases;
  /** Default of `attention_bias` where absent. */
  attentionBiasDefault: boolean;
  qkNorm: boolean;
  fusedGateUp: boolean;
  ropeStyle: "half" | "interleaved";
  /** Default `partial_rotary_factor` (only glm reads the key). */
  partialRotary: number | null;
  /** Default `rms_norm_eps`. */
  rmsNormEps: number;
  /** Default `rope_theta`. */
  ropeTheta: number;
  /** Which sliding-window keys the family has, and their defaults. */
  slidingWindow: "mistral" | "qwen" | "none";
  /** Norms on the attention's and the MLP's outputs (DecoderConfig.sandwichNorms). */
  sandwichNorms?: boolean;
}

/** GLM-4 as transformers has it (`model_type` glm), and the base of GLM-4-0414 (glm4). */
const GLM4: FamilyTraits = {
  architecture: "GlmForCausalLM",
  headDim: 128,
  biases: (attn) => ({ qkv: attn, o: false, mlp: false }),
  attentionBiasDefault: true,
  qkNorm: false,
  fusedGateUp: true,
  ropeStyle: "interleaved",
  partialRotary: 0.5,
  rmsNormEps: 1.5625e-7,
  ropeTheta: 10000,
  slidingWindow: "none",
};

/** The decoder families of docs/method.md section 11. */
export const DECODER_FAMILIES: Record<DecoderFamily, FamilyTraits> = {
  llama: {
    architecture: "LlamaForCausalLM",
    headDim: "hidden/heads",
    biases: (attn, mlp) => ({ qkv: attn, o: attn, mlp }),
    attentionBiasDefault: false,
    qkNorm: false,
    fusedGateUp: false,
    ropeStyle: "half",
    partialRotary: null,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    slidingWindow: "none",
  },
  mistral: {
    architecture: "MistralForCausalLM",
    headDim: "hidden/heads",
    biases: () => ({ qkv: false, o: false, mlp: false }),
    attentionBiasDefault: false,
    qkNorm: false,
    fusedGateUp: false,
    ropeStyle: "half",
    partialRotary: null,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    slidingWindow: "mistral",
  },
  qwen2: {
    architecture: "Qwen2ForCausalLM",
    headDim: "hidden/heads",
    biases: () => ({ qkv: true, o: false, mlp: false }),
    attentionBiasDefault: true,
    qkNorm: false,
    fusedGateUp: false,
    ropeStyle: "half",
    partialRotary: null,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    slidingWindow: "qwen",
  },
  qwen3: {
    architecture: "Qwen3ForCausalLM",
    headDim: 128,
    biases: (attn) => ({ qkv: attn, o: attn, mlp: false }),
    attentionBiasDefault: false,
    qkNorm: true,
    fusedGateUp: false,
    ropeStyle: "half",
    partialRotary: null,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    slidingWindow: "qwen",
  },
  glm: GLM4,
  // GLM-4-0414 (GLM-4-9B-0414, GLM-Z1): GLM-4 with a norm after attention and after the MLP.
  glm4: { ...GLM4, architecture: "Glm4ForCausalLM", sandwichNorms: true },
};

/** Which builder a model directory needs. */
export type Architecture = { kind: "glm-thudm" } | { kind: "decoder"; family: DecoderFamily };

/** The `model_type` values the toolkit reads. */
export const MODEL_TYPES = Object.keys(DECODER_FAMILIES) as DecoderFamily[];

/**
 * The architecture of a parsed `config.json`: THUDM's GLM (`model_type` glm, or none, with
 * `num_layers` and no `num_hidden_layers`) or a decoder family; anything else is a one-line error.
 */
export function modelArchitecture(json: unknown, file: string): Architecture {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw inputError(file, undefined, "expected a JSON object");
  }
  const o = json as Record<string, unknown>;
  const type = o.model_type;
  if (type === "thudm_glm") return { kind: "glm-thudm" }; // what this toolkit writes (config.ts)
  if ((type === "glm" || type === undefined) && "num_layers" in o && !("num_hidden_layers" in o)) {
    return { kind: "glm-thudm" };
  }
  if (typeof type === "string" && type in DECODER_FAMILIES) {
    return { kind: "decoder", family: type as DecoderFamily };
  }
  throw inputError(
    file,
    undefined,
    `"model_type" ${JSON.stringify(type)} is not supported (supported: ${
      MODEL_TYPES.join(", ")
    }, and THUDM GLM)`,
  );
}

function num(o: Record<string, unknown>, key: string, fallback: number | undefined, file: string) {
  const v = o[key] ?? fallback;
  if (v === undefined) throw inputError(file, undefined, `"${key}" is missing`);
  if (typeof v !== "number") {
    throw inputError(file, undefined, `"${key}" must be a number, got ${JSON.stringify(v)}`);
  }
  return v;
}

function bool(o: Record<string, unknown>, key: string, fallback: boolean, file: string) {
  const v = o[key] ?? fallback;
  if (typeof v !== "boolean") {
    throw inputError(file, undefined, `"${key}" must be true or false, got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * `rope_parameters`, where transformers 5 writes `rope_theta`, the scaling and
 * `partial_rotary_factor` (in place of the top-level keys); undefined when absent.
 */
function ropeParameters(o: Record<string, unknown>, file: string) {
  const raw = o.rope_parameters;
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw inputError(file, undefined, `"rope_parameters" must be an object or null`);
  }
  const r = raw as Record<string, unknown>;
  if (!("rope_type" in r) && !("rope_theta" in r)) {
    // One set per layer type ({"full_attention": {...}, "sliding_attention": {...}}).
    throw inputError(
      file,
      undefined,
      `"rope_parameters" per layer type (${Object.keys(r).join(", ")}) is not supported`,
    );
  }
  return r;
}

/**
 * One rope setting read from the top level (the transformers 4 layout) or `rope_parameters`
 * (transformers 5); both present and different is an error, neither gives `fallback`.
 */
function ropeNumber(
  o: Record<string, unknown>,
  parameters: Record<string, unknown> | undefined,
  key: string,
  fallback: number | undefined,
  file: string,
): number {
  const top = o[key] ?? undefined;
  const nested = parameters?.[key] ?? undefined;
  if (top !== undefined && nested !== undefined && top !== nested) {
    throw inputError(
      file,
      undefined,
      `"${key}" ${JSON.stringify(top)} and "rope_parameters.${key}" ${
        JSON.stringify(nested)
      } disagree`,
    );
  }
  return top !== undefined
    ? num(o, key, undefined, file)
    : parameters && nested !== undefined
    ? num(parameters, key, undefined, `${file} rope_parameters`)
    : num(o, key, fallback, file);
}

function ropeScaling(
  o: Record<string, unknown>,
  parameters: Record<string, unknown> | undefined,
  file: string,
): RopeScaling | null {
  const top = ropeScalingFrom(o.rope_scaling, "rope_scaling", file);
  const nested = parameters ? ropeScalingFrom(parameters, "rope_parameters", file) : null;
  if (top && nested && JSON.stringify(top) !== JSON.stringify(nested)) {
    throw inputError(file, undefined, `"rope_scaling" and "rope_parameters" disagree`);
  }
  return top ?? nested;
}

function ropeScalingFrom(raw: unknown, name: string, file: string): RopeScaling | null {
  if (raw === undefined || raw === null) return null;
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw inputError(file, undefined, `"${name}" must be an object or null`);
  }
  const r = raw as Record<string, unknown>;
  const type = r.rope_type ?? r.type ?? (name === "rope_parameters" ? "default" : undefined);
  const key = "rope_type" in r ? `${name}.rope_type` : `${name}.type`;
  if (type === "default") return null;
  if (type === "linear") {
    return { type: "linear", factor: num(r, "factor", undefined, `${file} ${name}`) };
  }
  if (type === "llama3") {
    const f = `${file} ${name}`;
    return {
      type: "llama3",
      factor: num(r, "factor", undefined, f),
      lowFreqFactor: num(r, "low_freq_factor", undefined, f),
      highFreqFactor: num(r, "high_freq_factor", undefined, f),
      originalMaxPositions: num(r, "original_max_position_embeddings", undefined, f),
    };
  }
  throw inputError(
    file,
    undefined,
    `"${key}" ${JSON.stringify(type)} is not supported (supported: none, default, linear, llama3)`,
  );
}

/**
 * The family's sliding window where some layer applies it, else undefined. The window is kept:
 * runs no longer than it attend exactly as full attention does, so the model's length is capped
 * at it ({@linkcode DecoderConfig.slidingWindow}). Absent keys take transformers' defaults for
 * both Mistral and Qwen (`sliding_window` 4096, `max_window_layers` 28). Qwen slides the layers
 * `layer_types` names `sliding_attention` where config.json lists them (transformers writes them
 * since 4.53), else those from `max_window_layers` on: none when that is past the last layer.
 */
function slidingWindow(
  traits: FamilyTraits,
  o: Record<string, unknown>,
  maxPositions: number,
  layers: number,
  file: string,
): number | undefined {
  if (traits.slidingWindow === "none") return undefined;
  const window = o.sliding_window === undefined ? 4096 : o.sliding_window;
  const active = traits.slidingWindow === "mistral" ? true : o.use_sliding_window === true;
  if (!active || window === null) return undefined;
  if (typeof window !== "number" || !Number.isInteger(window) || window < 1) {
    throw inputError(file, undefined, `"sliding_window" must be a positive integer or null`);
  }
  if (window >= maxPositions) return undefined;
  if (traits.slidingWindow === "qwen") {
    // No sliding layer, no window; otherwise the cap is exact whichever layers slide (no key is
    // ever more than a window back).
    const types = o.layer_types;
    if (Array.isArray(types)) {
      if (!types.includes("sliding_attention")) return undefined;
    } else if (num(o, "max_window_layers", 28, file) >= layers) return undefined;
  }
  return window;
}

/** A normalised configuration from a parsed decoder `config.json`; `file` is named in errors. */
export function parseDecoderConfig(json: unknown, file: string): DecoderConfig {
  const arch = modelArchitecture(json, file);
  if (arch.kind !== "decoder") {
    throw inputError(file, undefined, "a THUDM GLM config, not a decoder-family config");
  }
  const o = json as Record<string, unknown>;
  const traits = DECODER_FAMILIES[arch.family];
  const act = o.hidden_act ?? o.hidden_activation ?? "silu";
  if (act !== "silu" && act !== "swish") { // transformers' ACT2FN: swish is SiLU
    throw inputError(
      file,
      undefined,
      `"hidden_act" ${JSON.stringify(act)} is not supported (only "silu")`,
    );
  }
  const hidden = num(o, "hidden_size", undefined, file);
  const heads = num(o, "num_attention_heads", undefined, file);
  const headDimDefault = traits.headDim === "hidden/heads" ? hidden / heads : traits.headDim;
  const headDim = num(o, "head_dim", headDimDefault, file);
  const rope = ropeParameters(o, file);
  const partial = traits.partialRotary === null
    ? 1
    : ropeNumber(o, rope, "partial_rotary_factor", traits.partialRotary, file);
  const maxPositions = num(o, "max_position_embeddings", undefined, file);
  const layers = num(o, "num_hidden_layers", undefined, file);
  const window = slidingWindow(traits, o, maxPositions, layers, file);
  const attentionBias = arch.family === "qwen2"
    ? true
    : bool(o, "attention_bias", traits.attentionBiasDefault, file);
  const mlpBias = arch.family === "llama" ? bool(o, "mlp_bias", false, file) : false;
  const config: DecoderConfig = {
    family: arch.family,
    vocabSize: num(o, "vocab_size", undefined, file),
    hiddenSize: hidden,
    intermediateSize: num(o, "intermediate_size", undefined, file),
    numLayers: layers,
    numHeads: heads,
    // Only Llama's transformers config falls back to the head count; the others' defaults
    // changed between versions: a config without the key must give it.
    numKvHeads: num(o, "num_key_value_heads", arch.family === "llama" ? heads : undefined, file),
    headDim,
    rmsNormEps: num(o, "rms_norm_eps", traits.rmsNormEps, file),
    ropeTheta: ropeNumber(o, rope, "rope_theta", traits.ropeTheta, file),
    // transformers' int(): the rotary embedding's width is truncated, never rounded up.
    rotaryDim: Math.floor(headDim * partial),
    ropeStyle: traits.ropeStyle,
    ropeScaling: ropeScaling(o, rope, file),
    biases: traits.biases(attentionBias, mlpBias),
    qkNorm: traits.qkNorm,
    fusedGateUp: traits.fusedGateUp,
    ...(traits.sandwichNorms ? { sandwichNorms: true } : {}),
    tieWordEmbeddings: bool(o, "tie_word_embeddings", false, file),
    maxPositionEmbeddings: maxPositions,
    ...(window !== undefined ? { slidingWindow: window } : {}),
    intraRows: num(o, "intra_position_rows", DEFAULT_INTRA_ROWS, file),
  };
  const attention = recordedAttention(o, file);
  if (attention) config.attention = attention;
  const trained = recordedLength(o, file);
  if (trained) config.trainedLength = trained;
  const prefix = recordedPrefix(o, file);
  if (prefix) config.trainedPrefix = prefix;
  const itemTokens = parseItemTokenDigest(o[ITEM_TOKENS_KEY], file, ITEM_TOKENS_KEY);
  if (itemTokens) config.itemTokens = itemTokens;
  const tokenIds = tokenIdsOf(o, file);
  if (tokenIds) config.tokenIds = tokenIds;
  return validateDecoderConfig(config, file);
}

/** The special-token ids config.json gives (see `DecoderConfig.tokenIds`); undefined if none. */
function tokenIdsOf(o: Record<string, unknown>, file: string): TokenIds | undefined {
  const ids: TokenIds = {};
  const isId = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  for (const key of TOKEN_ID_KEYS) {
    if (!(key in o)) continue;
    const v = o[key];
    if (v !== null && !isId(v) && !(Array.isArray(v) && v.every(isId))) {
      throw inputError(
        file,
        undefined,
        `"${key}" must be a token id, a list of ids or null, got ${JSON.stringify(v)}`,
      );
    }
    ids[key] = Array.isArray(v) ? [...v] : v as number | null;
  }
  return Object.keys(ids).length > 0 ? ids : undefined;
}

/**
 * The `partial_rotary_factor` that gives `rotaryDim` rotated dimensions of `headDim` where read
 * back (here and in transformers: int(head_dim * factor)): d / hd, or the next double above it
 * where that product rounds just below d (d 30 of hd 44: 44 * (30 / 44) is 29.999999999999996,
 * read back as 29, an odd width refused).
 */
export function partialRotaryFactor(rotaryDim: number, headDim: number): number {
  const bits = new Float64Array([rotaryDim / headDim]);
  const word = new BigUint64Array(bits.buffer);
  while (Math.floor(headDim * bits[0]) < rotaryDim) word[0] += 1n; // a positive double's next
  return bits[0];
}

/**
 * The `config.json` object of `c`, in its family's Hugging Face keys; `torchDtype` is the dtype of
 * the weights written beside it (init writes BF16, trained and merged models float32).
 */
export function decoderConfigJson(
  c: DecoderConfig,
  torchDtype: "bfloat16" | "float32" = "bfloat16",
): Record<string, unknown> {
  if (c.family === "thudm_glm") return configJson(glmConfigOf(c));
  const traits = DECODER_FAMILIES[c.family];
  const json: Record<string, unknown> = {
    architectures: [traits.architecture],
    model_type: c.family,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    hidden_act: "silu",
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: c.ropeScaling === null
      ? null
      : c.ropeScaling.type === "linear"
      ? { rope_type: "linear", factor: c.ropeScaling.factor }
      : {
        rope_type: "llama3",
        factor: c.ropeScaling.factor,
        low_freq_factor: c.ropeScaling.lowFreqFactor,
        high_freq_factor: c.ropeScaling.highFreqFactor,
        original_max_position_embeddings: c.ropeScaling.originalMaxPositions,
      },
    max_position_embeddings: c.maxPositionEmbeddings,
    tie_word_embeddings: c.tieWordEmbeddings,
    torch_dtype: torchDtype,
  };
  if (c.family !== "qwen2" && c.family !== "mistral") json.attention_bias = c.biases.qkv;
  if (c.family === "llama") json.mlp_bias = c.biases.mlp;
  if (traits.partialRotary !== null) {
    json.partial_rotary_factor = partialRotaryFactor(c.rotaryDim, c.headDim);
  }
  if (c.family === "mistral" || c.family === "qwen2" || c.family === "qwen3") {
    json.sliding_window = c.slidingWindow ?? null;
  }
  if (c.family === "qwen2" || c.family === "qwen3") {
    // A window kept is active in every layer (the length is capped at it, where sliding and full
    // attention agree): written so, or a merged model would read as full attention.
    json.use_sliding_window = c.slidingWindow !== undefined;
    if (c.slidingWindow !== undefined) json.max_window_layers = 0;
  }
  if (c.intraRows !== DEFAULT_INTRA_ROWS) json.intra_position_rows = c.intraRows;
  Object.assign(json, c.tokenIds);
  Object.assign(json, recsysllmJson(c));
  if (c.itemTokens) json[ITEM_TOKENS_KEY] = itemTokenDigestJson(c.itemTokens);
  return json;
}
