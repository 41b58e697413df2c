/**
 * Writing a model directory of any family in the Hugging Face layout that this toolkit (and, for
 * the decoders, transformers) reads: `pretrain --merge` (the base weights with the adapter merged
 * in, W + (alpha / r) B A) and a run that trained every weight. The special-token rows are joined
 * onto the embedding (and an untied head) with `vocab_size` grown to match; a rotary family's
 * trained intra-position table goes in as the extra tensor `model.intra_position_embeddings.weight`
 * (transformers ignores it with a warning), the attention rule under `recsysllm` in
 * `config.json`, and the digest of the dataset's item tokens among the rows, if any, as
 * `recsysllm_item_tokens` (lib/collate/item_tokens.ts). Float32, so the merge is not rounded
 * again.
 *
 * @module
 */

import { join } from "node:path";
import { buildDirAtomic, writeFileAtomic } from "../../io/atomic.ts";
import { writeSafetensors } from "../safetensors.ts";
import type { Weights } from "../weights.ts";
import { type DecoderConfig, decoderWeightShapes, INTRA_TABLE, weightNames } from "./config.ts";
import { ADDED_ROWS, type AttentionMode } from "./decoder.ts";
import { decoderConfigJson } from "./registry.ts";
import type { ItemTokenDigest } from "../../collate/item_tokens.ts";

function joinRows(table: Float32Array, added: Float32Array | undefined): Float32Array {
  if (!added || added.length === 0) return table;
  const out = new Float32Array(table.length + added.length);
  out.set(table);
  out.set(added, table.length);
  return out;
}

/** How a model directory is written. */
export interface WriteModelOptions {
  /** Special-token rows past the checkpoint's vocabulary (in `weights` as the added rows). */
  addedRows: number;
  /** The attention rule the weights were trained with. */
  attention: AttentionMode;
  /** The tokenizer copied beside the weights. */
  tokenizerFile: string;
  /**
   * The item tokens of the dataset the weights were trained on, recorded in place of
   * `config.itemTokens` (which is kept when this is absent).
   */
  itemTokens?: ItemTokenDigest;
  /** The longest sequence the weights were trained on, recorded for inference to keep to. */
  trainedLength?: number;
  /** The tokenizer's prefix every example started with, where it has one. */
  trainedPrefix?: ArrayLike<number>;
}

/**
 * Writes the model files (`config.json`, `model.safetensors`, `tokenizer.json`, each atomically)
 * into the existing directory `dir`; returns the configuration written (the vocabulary grown by
 * the added rows).
 */
export async function writeModelFiles(
  dir: string,
  config: DecoderConfig,
  weights: Weights,
  options: WriteModelOptions,
): Promise<DecoderConfig> {
  const grown: DecoderConfig = {
    ...config,
    vocabSize: config.vocabSize + options.addedRows,
    attention: options.attention,
  };
  if (options.itemTokens) grown.itemTokens = options.itemTokens;
  if (options.trainedLength) grown.trainedLength = options.trainedLength;
  if (options.trainedPrefix?.length) grown.trainedPrefix = Array.from(options.trainedPrefix);
  const names = weightNames(config);
  const tensor = (name: string): Float32Array => {
    if (name === names.embed) return joinRows(weights.get(name)!, weights.get(ADDED_ROWS.embed));
    if (name === names.head && !config.tieWordEmbeddings) {
      return joinRows(weights.get(name)!, weights.get(ADDED_ROWS.head));
    }
    const data = weights.get(name);
    if (!data) throw new Error(`writeModelFiles: weight ${name} is missing`);
    return data;
  };
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, shape] of decoderWeightShapes(grown)) {
    tensors[name] = { shape, data: tensor(name) };
  }
  const intra = weights.get(INTRA_TABLE);
  if (intra && !(INTRA_TABLE in tensors)) {
    tensors[INTRA_TABLE] = { shape: [config.intraRows, config.hiddenSize], data: intra };
  }
  await writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
  await writeFileAtomic(
    join(dir, "config.json"),
    // The weights are written as float32, and config.json says so (torch_dtype "auto" reads it).
    JSON.stringify(decoderConfigJson(grown, "float32"), null, 2) + "\n",
  );
  await writeFileAtomic(join(dir, "tokenizer.json"), await Deno.readFile(options.tokenizerFile));
  return grown;
}

/** Writes the merged model directory `dir` (replaced atomically). */
export async function writeMergedDecoder(
  dir: string,
  config: DecoderConfig,
  merged: Weights,
  options: WriteModelOptions,
): Promise<DecoderConfig> {
  let grown: DecoderConfig = config;
  await buildDirAtomic(dir, async (tmp) => {
    grown = await writeModelFiles(tmp, config, merged, options);
  });
  return grown;
}
