/**
 * Seeded random checkpoints of the decoder families in the Hugging Face layout (`config.json`,
 * `tokenizer.json`, `model.safetensors` in BF16), for tests, the demo and benchmarks: nothing is
 * ever downloaded. Weights as transformers initialises them (normal with std 0.02, norm weights
 * 1, biases 0). The checkpoint plays a pretrained model: its `vocab_size` covers the tokenizer's
 * own ids only, so the method's special tokens it lacks are added at load (`special.ts`), as
 * they are for a real model.
 *
 * @module
 */

import { join } from "node:path";
import { openDataset } from "../../data/dataset.ts";
import { writeOutputDir } from "../../io/safe_output.ts";
import { Rng } from "../../random.ts";
import { newModelTokenizer, withMemoryFor } from "../init.ts";
import { TextTokenizer } from "../../tokenizer/tokenizer.ts";
import { writeCheckpoint } from "./checkpoint.ts";
import {
  type DecoderConfig,
  type DecoderFamily,
  decoderWeightShapes,
  DEFAULT_INTRA_ROWS,
  validateDecoderConfig,
} from "./config.ts";
import { DECODER_FAMILIES, decoderConfigJson } from "./registry.ts";

/** The families `init --family` makes (mistral reads like llama without biases). */
export const INIT_FAMILIES = ["llama", "qwen2", "qwen3", "glm", "glm4"] as const;

/** A decoder preset: the shape, and the tokenizer vocabulary trained for it. */
export interface DecoderPreset {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  tokenizerVocab: number;
}

/** tiny: about 0.1M layer parameters (tests); small: about 3M (the demo on a CPU). */
export const DECODER_PRESETS: Record<"tiny" | "small", DecoderPreset> = {
  tiny: {
    hiddenSize: 64,
    intermediateSize: 128,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    tokenizerVocab: 2000,
  },
  small: {
    hiddenSize: 256,
    intermediateSize: 704,
    numLayers: 4,
    numHeads: 8,
    numKvHeads: 2,
    headDim: 32,
    tokenizerVocab: 8000,
  },
};

/** Preset values a user may override (`init --hidden-size --layers --heads`). */
export type DecoderShape = Partial<Pick<DecoderPreset, "hiddenSize" | "numLayers" | "numHeads">>;

/**
 * The preset with `shape`'s values in its place: heads of hidden / heads each, the preset's
 * query heads per key/value head where they divide the heads (else one each), and the MLP width
 * scaled with the hidden size. Without `shape` the preset as it is.
 */
export function reshapedPreset(p: DecoderPreset, shape: DecoderShape = {}): DecoderPreset {
  if (Object.values(shape).every((v) => v === undefined)) return p;
  const hiddenSize = shape.hiddenSize ?? p.hiddenSize;
  const numHeads = shape.numHeads ?? p.numHeads;
  const groups = p.numHeads / p.numKvHeads;
  return {
    hiddenSize,
    numLayers: shape.numLayers ?? p.numLayers,
    numHeads,
    numKvHeads: numHeads % groups === 0 ? numHeads / groups : numHeads,
    headDim: hiddenSize / numHeads,
    intermediateSize: Math.max(1, Math.round((p.intermediateSize * hiddenSize) / p.hiddenSize)),
    tokenizerVocab: p.tokenizerVocab,
  };
}

/**
 * The configuration of `family` at `preset` (with `shape`'s values in place of the preset's)
 * for a vocabulary of `vocabSize` rows.
 */
export function decoderPresetConfig(
  family: DecoderFamily,
  preset: keyof typeof DECODER_PRESETS,
  vocabSize: number,
  shape: DecoderShape = {},
): DecoderConfig {
  const reshaped = Object.values(shape).some((v) => v !== undefined);
  if (reshaped) {
    const hidden = shape.hiddenSize ?? DECODER_PRESETS[preset].hiddenSize;
    const heads = shape.numHeads ?? DECODER_PRESETS[preset].numHeads;
    if (hidden % heads !== 0) {
      throw new RangeError(`the heads (${heads}) must divide the hidden size (${hidden})`);
    }
  }
  const p = reshapedPreset(DECODER_PRESETS[preset], shape);
  const traits = DECODER_FAMILIES[family];
  const qwen = family === "qwen2" || family === "qwen3";
  return {
    family,
    vocabSize,
    hiddenSize: p.hiddenSize,
    intermediateSize: p.intermediateSize,
    numLayers: p.numLayers,
    numHeads: p.numHeads,
    numKvHeads: p.numKvHeads,
    headDim: family === "qwen2" || family === "llama" || reshaped
      ? p.hiddenSize / p.numHeads
      : p.headDim,
    rmsNormEps: 1e-6,
    ropeTheta: qwen ? 1_000_000 : family === "llama" ? 500_000 : 10_000,
    rotaryDim: traits.partialRotary !== null
      ? 2 * Math.floor(p.headDim / 4)
      : (family === "qwen3" ? p.headDim : p.hiddenSize / p.numHeads),
    ropeStyle: traits.ropeStyle,
    ropeScaling: null,
    biases: traits.biases(traits.attentionBiasDefault, false),
    qkNorm: traits.qkNorm,
    fusedGateUp: traits.fusedGateUp,
    ...(traits.sandwichNorms ? { sandwichNorms: true } : {}),
    tieWordEmbeddings: qwen,
    maxPositionEmbeddings: 4096,
    intraRows: DEFAULT_INTRA_ROWS,
  };
}

/** Options of {@linkcode initDecoder}. */
export interface InitDecoderOptions {
  family: DecoderFamily;
  preset: keyof typeof DECODER_PRESETS;
  out: string;
  /** Dataset to train a tokenizer on (unless `tokenizer` is given). */
  data?: string;
  /** A `tokenizer.json` to use. */
  tokenizer?: string;
  /** Replace `out` even when init did not write it (lib/io/safe_output.ts). */
  force?: boolean;
  seed?: number;
  /** Values in place of the preset's (hidden size, layers, heads). */
  shape?: DecoderShape;
  progress?: (message: string) => void;
}

/**
 * Writes a seeded random checkpoint of `options.family` into `options.out` (atomically; an `out`
 * that init did not write is refused unless `force`).
 */
export async function initDecoder(
  options: InitDecoderOptions,
): Promise<{ config: DecoderConfig; parameters: number; trainedTokenizer: boolean }> {
  const say = options.progress ?? (() => {});
  // A dataset given is read (and a wrong path refused) even beside a tokenizer.
  const data = options.data === undefined ? undefined : await openDataset(options.data);
  const tokenizer = await newModelTokenizer({
    tokenizer: options.tokenizer,
    data: options.tokenizer ? undefined : data,
    vocabSize: DECODER_PRESETS[options.preset].tokenizerVocab,
    specialTokens: ["[PAD]"],
    say,
  });
  // Loaded as every later command loads it, so a tokenizer they would refuse is refused now.
  const loaded = TextTokenizer.fromJson(tokenizer.json, tokenizer.file);
  const config = validateDecoderConfig(
    decoderPresetConfig(options.family, options.preset, loaded.definedIds, options.shape),
    `preset ${options.preset}`,
  );
  // Written out: transformers' defaults where absent (GLM-4's pad 151329) lie past these rows.
  const pad = loaded.special.pad < loaded.definedIds ? loaded.special.pad : null;
  config.tokenIds = { bos_token_id: null, eos_token_id: null, pad_token_id: pad };
  const rng = Rng.derive(options.seed ?? 0, `init ${options.family}`);
  const shapes = decoderWeightShapes(config);
  let parameters = 0;
  for (const shape of shapes.values()) parameters += shape.reduce((a, b) => a * b, 1);
  say(`drawing ${options.preset} ${options.family} weights (${parameters} parameters)`);
  // One tensor at a time is held: drawn in float32, written as BF16.
  const held = (sizes: readonly number[]) => 6 * Math.max(...sizes);
  await withMemoryFor(shapes.values(), held, () =>
    writeOutputDir(options.out, {
      command: "init",
      force: options.force,
      inputs: [options.data, options.tokenizer],
    }, async (dir) => {
      await Deno.writeTextFile(
        join(dir, "config.json"),
        JSON.stringify(decoderConfigJson(config), null, 2) + "\n",
      );
      await Deno.writeTextFile(join(dir, "tokenizer.json"), tokenizer.text);
      await writeCheckpoint(dir, randomDecoderTensors(config, rng), { format: "BF16" });
    }));
  return { config, parameters, trainedTokenizer: !options.tokenizer };
}

/**
 * The tensors of a fresh `config` in checkpoint order, each drawn when written (so a large model
 * never holds more than one tensor in memory): std-0.02 normal matrices, norm weights 1, biases 0.
 */
export function randomDecoderTensors(config: DecoderConfig, rng: Rng, std = 0.02) {
  return [...decoderWeightShapes(config)].map(([name, shape]) => ({
    name,
    shape,
    data: () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      if (name.endsWith("norm.weight")) data.fill(1);
      else if (!name.endsWith(".bias")) {
        for (let i = 0; i < n; i++) {
          data[i] = std * rng.normal();
        }
      }
      return data;
    },
  }));
}
