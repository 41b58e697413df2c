/**
 * The GLM model configuration (docs/method.md section 8): one plain object read from and written to
 * the Hugging Face `config.json` (names vocab_size, hidden_size, num_layers, num_attention_heads,
 * max_sequence_length, layernorm_epsilon, and the toolkit's own `recsysllm_item_tokens`), the
 * presets as data, and the weight names and shapes of a checkpoint (the THUDM/glm-* names, linear
 * weights [out, in]).
 *
 * @module
 */

import { inputError } from "../errors.ts";
import {
  type ItemTokenDigest,
  itemTokenDigestJson,
  parseItemTokenDigest,
} from "../collate/item_tokens.ts";
import { readJsonFile } from "../io/fs.ts";
import { type DecoderConfig, GLM_BLOCK } from "./families/config.ts";

/** A GLM configuration. */
export interface GlmConfig {
  /** Rows of the word embedding (covers the tokenizer, appended special tokens included). */
  vocabSize: number;
  /** H: width of every layer. */
  hiddenSize: number;
  /** L: number of layers. */
  numLayers: number;
  /** Attention heads; must divide hiddenSize. */
  numHeads: number;
  /** Longest sequence; both position tables have maxSequenceLength + 1 rows. */
  maxSequenceLength: number;
  /** LayerNorm epsilon (default 1e-5). */
  layernormEpsilon: number;
  /**
   * The dataset item tokens the vocabulary's last rows were made for (`recsysllm_item_tokens`,
   * written by `init`, kept by every writer): absent when there are none, or the model is older.
   */
  itemTokens?: ItemTokenDigest;
  /**
   * The attention rule the weights were trained under when it is not GLM's own prefix attention
   * (`pretrain --full --attention causal`), recorded as `recsysllm.attention` (the key every
   * family's writer uses), so that whatever loads the model runs it as it was trained.
   */
  attention?: "causal";
  /**
   * The longest sequence the run that wrote these weights trained on (`pretrain --max-length`),
   * recorded as `recsysllm.max_length`: inference cuts its prompts to it, as training did.
   */
  trainedLength?: number;
  /**
   * The tokenizer's prefix every example of the run that wrote these weights started with
   * (`recsysllm.prefix_ids`; docs/method.md section 4), where it had one. Weights this toolkit
   * trained before 2026-12-07 never saw it: inference warns.
   */
  trainedPrefix?: number[];
}

/** A preset: the model's shape and the vocabulary size of the tokenizer `init` trains for it. */
export interface Preset {
  /** H: width of every layer. */
  hiddenSize: number;
  /** L: number of layers. */
  numLayers: number;
  /** Attention heads; divide hiddenSize. */
  numHeads: number;
  /** Longest sequence the model's position tables cover. */
  maxSequenceLength: number;
  /** Vocabulary size the tokenizer is trained to (before special tokens are appended). */
  tokenizerVocab: number;
}

/**
 * The presets. tiny is the benchmark model (about 3.2M layer parameters plus 2M of
 * embedding); small (about 25M + 8M) fits CPU fine-tuning; base follows GLM-base's shape
 * (hidden 768, 12 layers, 12 heads, about 85M + 25M).
 */
export const PRESETS: Record<"tiny" | "small" | "base", Preset> = {
  tiny: {
    hiddenSize: 256,
    numLayers: 4,
    numHeads: 4,
    maxSequenceLength: 512,
    tokenizerVocab: 8000,
  },
  small: {
    hiddenSize: 512,
    numLayers: 8,
    numHeads: 8,
    maxSequenceLength: 512,
    tokenizerVocab: 16000,
  },
  base: {
    hiddenSize: 768,
    numLayers: 12,
    numHeads: 12,
    maxSequenceLength: 1024,
    tokenizerVocab: 32000,
  },
};

/** The preset names. */
export type PresetName = keyof typeof PRESETS;

/** Preset values a user may override (`init --hidden-size --layers --heads`). */
export type PresetShape = Partial<Pick<Preset, "hiddenSize" | "numLayers" | "numHeads">>;

/**
 * The configuration of `preset` for a vocabulary of `vocabSize` ids, with any of `shape`'s values
 * in place of the preset's (the hidden size must stay divisible by the heads).
 *
 * @example
 * ```ts
 * presetConfig("tiny", 8006, { hiddenSize: 128 }).hiddenSize; // 128
 * ```
 */
export function presetConfig(
  preset: PresetName,
  vocabSize: number,
  shape: PresetShape = {},
): GlmConfig {
  const p = { ...PRESETS[preset], ...shape };
  return validateConfig({
    vocabSize,
    hiddenSize: p.hiddenSize,
    numLayers: p.numLayers,
    numHeads: p.numHeads,
    maxSequenceLength: p.maxSequenceLength,
    layernormEpsilon: 1e-5,
  }, `preset ${preset}`);
}

const KEYS: [
  Exclude<
    keyof GlmConfig,
    "layernormEpsilon" | "itemTokens" | "attention" | "trainedLength" | "trainedPrefix"
  >,
  string,
][] = [
  ["vocabSize", "vocab_size"],
  ["hiddenSize", "hidden_size"],
  ["numLayers", "num_layers"],
  ["numHeads", "num_attention_heads"],
  ["maxSequenceLength", "max_sequence_length"],
];

/** Checks a configuration's values; problems are InputErrors naming `file` and the key. */
export function validateConfig(config: GlmConfig, file: string): GlmConfig {
  for (const [field, key] of KEYS) {
    const v = config[field];
    if (!Number.isInteger(v) || v < 1) {
      throw inputError(
        file,
        undefined,
        `"${key}" must be a positive integer, got ${JSON.stringify(v)}`,
      );
    }
  }
  if (config.hiddenSize % config.numHeads !== 0) {
    throw inputError(
      file,
      undefined,
      `"num_attention_heads" (${config.numHeads}) must divide "hidden_size" (${config.hiddenSize})`,
    );
  }
  if (!(config.layernormEpsilon > 0 && Number.isFinite(config.layernormEpsilon))) {
    throw inputError(file, undefined, `"layernorm_epsilon" must be a positive number`);
  }
  return config;
}

/** The `config.json` key of a model's item-token record (any family). */
export const ITEM_TOKENS_KEY = "recsysllm_item_tokens";

/** THUDM GLM's architecture switches and the one value of each that this model implements. */
const BUILT_SWITCHES: readonly [string, boolean | number][] = [
  ["block_position_encoding", true],
  ["attention_scale", 1],
  ["relative_encoding", false],
  ["output_predict", true],
  ["tie_word_embeddings", true],
];

/** A configuration from the parsed `config.json` object; `file` is named in errors. */
export function parseConfig(json: unknown, file: string): GlmConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw inputError(file, undefined, "expected a JSON object");
  }
  const o = json as Record<string, unknown>;
  const config: Partial<GlmConfig> = {};
  for (const [field, key] of KEYS) {
    if (!(key in o)) throw inputError(file, undefined, `"${key}" is missing`);
    config[field] = o[key] as number;
  }
  const eps = o.layernorm_epsilon ?? 1e-5;
  if (typeof eps !== "number") {
    throw inputError(file, undefined, `"layernorm_epsilon" must be a positive number`);
  }
  config.layernormEpsilon = eps;
  // THUDM's architecture switches: this model is GLM with 2D (block) positions, absolute
  // embeddings and a tied output layer. A checkpoint built otherwise would run with the wrong
  // positions or head, so it is refused rather than read as if it were this one.
  for (const [key, built] of BUILT_SWITCHES) {
    if (key in o && o[key] !== built) {
      throw inputError(
        file,
        undefined,
        `"${key}" is ${JSON.stringify(o[key])}: only GLM with ${key} ${built} is supported`,
      );
    }
  }
  const itemTokens = parseItemTokenDigest(o[ITEM_TOKENS_KEY], file, ITEM_TOKENS_KEY);
  if (itemTokens) config.itemTokens = itemTokens;
  if (recordedAttention(o, file) === "causal") config.attention = "causal";
  const trained = recordedLength(o, file);
  if (trained) config.trainedLength = trained;
  const prefix = recordedPrefix(o, file);
  if (prefix) config.trainedPrefix = prefix;
  return validateConfig(config as GlmConfig, file);
}

/**
 * The attention rule a `config.json` object records (`recsysllm.attention`, written by every
 * family's writer when a run sets one), or undefined; any other value is an InputError naming
 * `file`.
 *
 * @example
 * ```ts
 * recordedAttention({ recsysllm: { attention: "causal" } }, "m/config.json"); // "causal"
 * ```
 */
export function recordedAttention(
  o: Record<string, unknown>,
  file: string,
): "prefix" | "causal" | undefined {
  const attention = (o.recsysllm as Record<string, unknown> | undefined)?.attention;
  if (attention === undefined) return undefined;
  if (attention !== "prefix" && attention !== "causal") {
    throw inputError(file, undefined, `"recsysllm.attention" must be "prefix" or "causal"`);
  }
  return attention;
}

/**
 * The longest sequence a `config.json` object records its weights were trained on
 * (`recsysllm.max_length`), or undefined; anything but a positive integer is an InputError naming
 * `file`.
 *
 * @example
 * ```ts
 * recordedLength({ recsysllm: { max_length: 256 } }, "m/config.json"); // 256
 * ```
 */
export function recordedLength(o: Record<string, unknown>, file: string): number | undefined {
  const length = (o.recsysllm as Record<string, unknown> | undefined)?.max_length;
  if (length === undefined) return undefined;
  if (!(Number.isInteger(length) && (length as number) >= 1)) {
    throw inputError(file, undefined, `"recsysllm.max_length" must be a positive integer`);
  }
  return length as number;
}

/**
 * The tokenizer's prefix a `config.json` object records its weights were trained with
 * (`recsysllm.prefix_ids`), or undefined; anything but a list of token ids is an InputError
 * naming `file`.
 *
 * @example
 * ```ts
 * recordedPrefix({ recsysllm: { prefix_ids: [1] } }, "m/config.json"); // [1]
 * ```
 */
export function recordedPrefix(o: Record<string, unknown>, file: string): number[] | undefined {
  const ids = (o.recsysllm as Record<string, unknown> | undefined)?.prefix_ids;
  return parsePrefixIds(ids, file, "recsysllm.prefix_ids");
}

/**
 * `value` as the ids of a tokenizer's prefix (a list of token ids), undefined when absent; else
 * an InputError naming `file` and `key`.
 */
export function parsePrefixIds(value: unknown, file: string, key: string): number[] | undefined {
  if (value === undefined) return undefined;
  if (
    !Array.isArray(value) ||
    !value.every((id) => Number.isInteger(id) && id >= 0 && id < 2 ** 31)
  ) {
    throw inputError(file, undefined, `"${key}" must be a list of token ids`);
  }
  return value as number[];
}

/** Reads and validates `config.json` at `path`. */
export async function readConfig(path: string): Promise<GlmConfig> {
  return parseConfig(await readJsonFile(path), path);
}

/**
 * `model_type` of the GLM directories this toolkit writes: THUDM's GLM, which transformers does not
 * register (its `glm` is GLM-4, whose keys differ), so AutoConfig says it does not know the type
 * instead of reading these weights as GLM-4's. `glm` is still read (THUDM's own checkpoints,
 * this toolkit's before 0.1).
 */
export const GLM_MODEL_TYPE = "thudm_glm";

/** The `config.json` object of `config`, in the Hugging Face GLM form. */
export function configJson(config: GlmConfig): Record<string, unknown> {
  return {
    architectures: ["GLMModel"],
    model_type: GLM_MODEL_TYPE,
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    num_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    max_sequence_length: config.maxSequenceLength,
    layernorm_epsilon: config.layernormEpsilon,
    block_position_encoding: true,
    relative_encoding: false,
    output_predict: true,
    tie_word_embeddings: true,
    ...(config.itemTokens ? { [ITEM_TOKENS_KEY]: itemTokenDigestJson(config.itemTokens) } : {}),
    ...recsysllmJson(config),
  };
}

/**
 * The toolkit's own `recsysllm` object of a `config.json` (the attention rule, the trained
 * length and the tokenizer's prefix, where recorded), as a spread: empty when none is.
 */
export function recsysllmJson(
  c: { attention?: string; trainedLength?: number; trainedPrefix?: readonly number[] },
): { recsysllm?: Record<string, unknown> } {
  const own = {
    ...(c.attention ? { attention: c.attention } : {}),
    ...(c.trainedLength ? { max_length: c.trainedLength } : {}),
    ...(c.trainedPrefix?.length ? { prefix_ids: [...c.trainedPrefix] } : {}),
  };
  return Object.keys(own).length > 0 ? { recsysllm: own } : {};
}

/** The tensor name prefix of layer `i`: `glm.transformer.layers.{i}`. */
export function layerPrefix(i: number): string {
  return `glm.transformer.layers.${i}`;
}

/** Every weight of a GLM checkpoint with its shape, in checkpoint order. */
export function weightShapes(config: GlmConfig): Map<string, number[]> {
  const h = config.hiddenSize;
  const rows = config.maxSequenceLength + 1;
  const shapes = new Map<string, number[]>([
    ["glm.word_embeddings.weight", [config.vocabSize, h]],
    ["glm.transformer.position_embeddings.weight", [rows, h]],
    ["glm.transformer.block_position_embeddings.weight", [rows, h]],
  ]);
  for (let i = 0; i < config.numLayers; i++) {
    const p = layerPrefix(i);
    shapes.set(`${p}.input_layernorm.weight`, [h]);
    shapes.set(`${p}.input_layernorm.bias`, [h]);
    shapes.set(`${p}.attention.query_key_value.weight`, [3 * h, h]);
    shapes.set(`${p}.attention.query_key_value.bias`, [3 * h]);
    shapes.set(`${p}.attention.dense.weight`, [h, h]);
    shapes.set(`${p}.attention.dense.bias`, [h]);
    shapes.set(`${p}.post_attention_layernorm.weight`, [h]);
    shapes.set(`${p}.post_attention_layernorm.bias`, [h]);
    shapes.set(`${p}.mlp.dense_h_to_4h.weight`, [4 * h, h]);
    shapes.set(`${p}.mlp.dense_h_to_4h.bias`, [4 * h]);
    shapes.set(`${p}.mlp.dense_4h_to_h.weight`, [h, 4 * h]);
    shapes.set(`${p}.mlp.dense_4h_to_h.bias`, [h]);
  }
  shapes.set("glm.transformer.final_layernorm.weight", [h]);
  shapes.set("glm.transformer.final_layernorm.bias", [h]);
  return shapes;
}

/**
 * GLM's configuration as the families' normalised one: nkv = nh heads of H / nh, an MLP of 4H,
 * biases everywhere, both position tables of maxSequenceLength + 1 rows, tied output.
 *
 * @example
 * ```ts
 * const c = glmDecoderConfig(presetConfig("tiny", 8006));
 * c.family; // "thudm_glm"
 * c.intermediateSize; // 1024
 * ```
 */
export function glmDecoderConfig(c: GlmConfig): DecoderConfig {
  const hd = c.hiddenSize / c.numHeads;
  return {
    family: "thudm_glm",
    block: GLM_BLOCK,
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    intermediateSize: 4 * c.hiddenSize,
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: c.numHeads,
    headDim: hd,
    rmsNormEps: c.layernormEpsilon,
    // No rotary embedding: these three are never read for the learned-position block.
    ropeTheta: 10000,
    rotaryDim: hd - (hd % 2),
    ropeStyle: "half",
    ropeScaling: null,
    biases: { qkv: true, o: true, mlp: true },
    qkNorm: false,
    fusedGateUp: false,
    tieWordEmbeddings: true,
    maxPositionEmbeddings: c.maxSequenceLength,
    intraRows: c.maxSequenceLength + 1,
    attention: c.attention ?? "prefix",
    ...(c.itemTokens ? { itemTokens: c.itemTokens } : {}),
    ...(c.trainedLength ? { trainedLength: c.trainedLength } : {}),
    ...(c.trainedPrefix ? { trainedPrefix: c.trainedPrefix } : {}),
  };
}

/** A configuration of either form: GLM's own, or the normalised one of every family. */
export type AnyConfig = GlmConfig | DecoderConfig;

/** Whether `config` is already the normalised form. */
export function isDecoderConfig(config: AnyConfig): config is DecoderConfig {
  return "family" in config;
}

/** The normalised configuration of `config` (GLM's mapped by {@linkcode glmDecoderConfig}). */
export function modelConfig(config: AnyConfig): DecoderConfig {
  return isDecoderConfig(config) ? config : glmDecoderConfig(config);
}

/** The GLM configuration of a normalised one made by {@linkcode glmDecoderConfig}. */
export function glmConfigOf(c: DecoderConfig): GlmConfig {
  if (c.family !== "thudm_glm") throw new Error(`${c.family} is not THUDM's GLM`);
  return {
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    maxSequenceLength: c.maxPositionEmbeddings,
    layernormEpsilon: c.rmsNormEps,
    ...(c.itemTokens ? { itemTokens: c.itemTokens } : {}),
    ...(c.attention === "causal" ? { attention: "causal" as const } : {}),
    ...(c.trainedLength ? { trainedLength: c.trainedLength } : {}),
    ...(c.trainedPrefix ? { trainedPrefix: c.trainedPrefix } : {}),
  };
}
