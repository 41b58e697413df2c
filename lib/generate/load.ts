/**
 * Opening a model for inference: `config.json`, `model.safetensors` and `tokenizer.json` from the
 * model directory, an optional LoRA adapter (PEFT layout, lib/model/adapter.ts) merged into the
 * base weights at load so decoding runs at full speed, and its decoders (one unless asked for
 * more, lib/generate/open_decoders.ts) on the device asked for.
 *
 * Checked here, each a one-line InputError:
 * - the tokenizer needs more ids (its vocabulary and any special token appended) than the model's
 *   embedding has rows (`vocab_size`): they do not belong together;
 * - the adapter: a missing path, its config, missing or misshaped tensors or tensors for modules
 *   the model does not have (lib/model/adapter.ts), and, when the adapter directory carries a
 *   `tokenizer.json` or its `adapter_config.json` records `tokenizer_sha256`, a tokenizer other
 *   than the model's (by SHA-256 of the file's bytes), and, when the adapter records the identity
 *   of its base model (config and weights hashes, lib/model/identity.ts), a model other than it.
 *   Adapters that record none (PEFT's) load with a warning;
 * - with a dataset of item tokens (lib/collate/item_tokens.ts): a model whose `config.json`, or an
 *   adapter whose `recsysllm_adapter.json`, records another dataset's item tokens (its rows would
 *   name other items). One that records none, or a dataset without item tokens, is accepted.
 * The pool's own checks (tokens beyond the vocabulary, entities the tokenizer cannot represent)
 * are in pool.ts.
 *
 * @module
 */

import type { QuantizeOptions } from "../model/quantize.ts";
import { basename, dirname, join } from "node:path";
import { inputError, optionName } from "../errors.ts";
import { attentionOf } from "../model/families/config.ts";
import { modelIdentity } from "../model/identity.ts";
import {
  type AnyModel,
  architectureOf,
  loadAnyModel,
  maxModelLength,
  modelVocabSize,
} from "../model/load_any.ts";
import type { Device } from "../runtime/session.ts";
import { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { itemTokenDigest, withItemTokens } from "../collate/item_tokens.ts";
import type { Dataset } from "../data/dataset.ts";
import { ADAPTER_FILES, loadAdapter, mergeAdapter } from "../model/adapter.ts";
import { type InferenceDecoder, openDecoders } from "./open_decoders.ts";

export type { InferenceDecoder };

/** Options of {@linkcode loadForInference}. */
export interface LoadOptions {
  /** The model directory. */
  model: string;
  /** A LoRA adapter directory (or its `adapter_model.safetensors`). */
  adapter?: string;
  /** Where to run (default `auto`). */
  device?: Device;
  /** Intra-op threads of each decoder (default: every core, shared among the workers). */
  threads?: number;
  /**
   * Decoders of the model that answer batches at once, each in its own worker with a copy of the
   * weights (worker_decoder.ts); 1 (the default): one decoder on this thread; `auto`
   * (open_decoders.ts, infer's default): one per core for a small model on the CPU, else one.
   * Release every one of `decoders`: a worker left open keeps the process running.
   */
  workers?: number | "auto";
  /** Told about what cannot be checked (an adapter without a recorded base model). */
  onWarning?: (message: string) => void;
  /** Weight-only quantization of the linear modules (lib/model/quantize.ts); default float. */
  quantize?: QuantizeOptions;
  /**
   * The dataset the model answers: its item tokens, if it has them (`textualize --item-tokens`,
   * lib/collate/item_tokens.ts), join the tokenizer, and a decoder family's added rows count them.
   */
  data?: Dataset;
}

/** What {@linkcode loadForInference} opened. */
export interface LoadedForInference {
  /** The model's configuration (`config.json`). */
  config: AnyModel["config"];
  /** Rows of the model's output (special rows included). */
  vocabSize: number;
  /**
   * The longest sequence inference gives the model: the length its weights were trained on
   * (`recsysllm.max_length` of config.json, `max_length` of the adapter's settings), else the
   * model's own maximum.
   */
  maxLength: number;
  /** The model's tokenizer. */
  tokenizer: TextTokenizer;
  /** The decoder over the model's graphs, ready to run (the first of `decoders`). */
  decoder: InferenceDecoder;
  /** Every decoder: one, or one per worker. */
  decoders: readonly InferenceDecoder[];
  /** The adapter merged in, when one was given. */
  adapter?: {
    dir: string;
    rank: number;
    alpha: number;
    targets: string[];
    /** The attention rule the adapter was trained with, when it records one. */
    attention?: "prefix" | "causal";
  };
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function readBytes(path: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw inputError(path, undefined, `cannot read: ${(error as Error).message}`);
  }
}

/** The adapter directory named by `path` (the directory, or a file inside it). */
async function adapterDir(path: string): Promise<string> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw inputError(path, undefined, "adapter not found");
    }
    throw inputError(path, undefined, `cannot read adapter: ${(error as Error).message}`);
  }
  if (info.isDirectory) return path;
  if (basename(path) === ADAPTER_FILES.weights) return dirname(path);
  throw inputError(
    path,
    undefined,
    "not an adapter directory (adapter_model.safetensors + " +
      "adapter_config.json)",
  );
}

async function checkAdapterTokenizer(dir: string, modelTokenizer: Uint8Array, modelDir: string) {
  const ours = await sha256(modelTokenizer);
  const copy = await readBytes(join(dir, "tokenizer.json"));
  if (copy !== undefined && (await sha256(copy)) !== ours) {
    throw inputError(
      join(dir, "tokenizer.json"),
      undefined,
      `differs from ${join(modelDir, "tokenizer.json")}: the adapter was trained with another ` +
        `tokenizer`,
    );
  }
  const configPath = join(dir, ADAPTER_FILES.config);
  const text = await readBytes(configPath);
  if (text === undefined) return; // loadAdapter reports it
  let recorded: unknown;
  try {
    recorded = JSON.parse(new TextDecoder().decode(text))?.tokenizer_sha256;
  } catch {
    return; // loadAdapter reports it
  }
  if (typeof recorded === "string" && recorded.toLowerCase() !== ours) {
    throw inputError(
      configPath,
      undefined,
      `tokenizer_sha256 ${recorded} is not that of ${join(modelDir, "tokenizer.json")} ` +
        `(${ours}): the adapter was trained with another tokenizer`,
    );
  }
}

/**
 * Loads the model in `options.model` (with `options.adapter` merged in) and opens its decoders
 * (release every one).
 *
 * @example
 * ```ts
 * const { decoder, tokenizer } = await loadForInference({ model: "runs/tiny", device: "cpu" });
 * ```
 */
export async function loadForInference(options: LoadOptions): Promise<LoadedForInference> {
  const tokenizerPath = join(options.model, "tokenizer.json");
  const tokenizerBytes = await readBytes(tokenizerPath);
  if (tokenizerBytes === undefined) {
    await architectureOf(options.model); // a missing directory or config is named as such
    throw inputError(tokenizerPath, undefined, "file not found (the model directory needs it)");
  }
  const base = await TextTokenizer.load(tokenizerPath);
  const tokenizer = options.data ? withItemTokens(base, options.data) : base;
  const model = await loadAnyModel(options.model, {
    tokenizerIds: tokenizer.vocabSize,
    tokenizerDefinedIds: tokenizer.definedIds,
    data: options.data,
  });
  const recorded = model.config.itemTokens;
  if (options.data && recorded && !itemTokenDigest(options.data)) {
    // Accepted (text tasks need no item rows), but a ranking by titles alone is rarely meant.
    options.onWarning?.(
      `${join(options.model, "config.json")}: its ${recorded.count} item tokens are unused: ` +
        `${join(options.data.dir, "manifest.json")} has none, so items are ranked by their ` +
        `titles alone (textualize with ${optionName("itemTokens")} ${recorded.mode} to use them)`,
    );
  }
  let weights = model.weights;
  // The adapter's rule, else a merged model's own (config.json), else causal.
  let attention = attentionOf(model.config);
  // Prompts are cut as training cut them: to the length the weights were trained on, where known.
  let trainedLength = model.config.trainedLength;
  // Weights this toolkit trained (a model's recsysllm settings, else an adapter's), and the
  // tokenizer prefix their examples started with (docs/method.md section 4).
  let trained = model.config.trainedLength !== undefined || model.config.attention !== undefined;
  let trainedPrefix = model.config.trainedPrefix;
  let adapter: LoadedForInference["adapter"];
  // Whether the dataset's item tokens have trained rows: the model's own, or an adapter's.
  let trainedItems = model.config.itemTokens !== undefined;
  if (options.adapter !== undefined) {
    const dir = await adapterDir(options.adapter);
    await checkAdapterTokenizer(dir, tokenizerBytes, options.model);
    const loaded = await loadAdapter(dir, model.config, {
      base: { identity: modelIdentity(model.config, model.weights), dir: options.model },
      onWarning: options.onWarning,
      model: { weights: model.weights, addedRows: model.addedRows },
      data: options.data,
    });
    weights = mergeAdapter(weights, model.config, loaded);
    attention = loaded.method?.attention ?? attention;
    trainedLength = loaded.method?.maxLength ?? trainedLength;
    trained = loaded.method !== undefined;
    trainedPrefix = loaded.method?.prefixIds;
    adapter = {
      dir,
      rank: loaded.lora.rank,
      alpha: loaded.lora.alpha,
      targets: loaded.lora.targets,
      attention: loaded.method?.attention,
    };
    trainedItems = loaded.method?.itemTokens !== undefined;
  }
  const items = options.data && itemTokenDigest(options.data);
  if (items && !trainedItems) {
    // Their rows are the mean row, added at load: every item would score alike.
    options.onWarning?.(
      `${join(options.data!.dir, "manifest.json")}: its ${items.count} item tokens have no ` +
        `trained rows in ${options.model}${options.adapter ? ` or ${options.adapter}` : ""}: ` +
        `every item scores alike; pretrain on this dataset first`,
    );
  }
  if (tokenizer.prefix.length > 0 && trained && trainedPrefix === undefined) {
    const names = [...tokenizer.prefix].map((id) => tokenizer.tokenString(id)).join("");
    options.onWarning?.(
      `${options.adapter ?? options.model}: trained before prompts started with the tokenizer's ` +
        `${names} (2026-12-07), as they now do, as the pretrained model's texts did: its ` +
        `predictions will differ from before; pretrain it again`,
    );
  }
  // The adapter is merged first, so a quantized model quantizes the merged weights.
  const maxLength = Math.min(maxModelLength(model), trainedLength ?? Infinity);
  const decoders = await openDecoders({
    // Rotary tables for the longest prompt this inference can run, not the model's maximum.
    config: { ...model.config, positionLimit: maxLength },
    weights,
    addedRows: model.addedRows,
    attention,
    quantize: options.quantize,
    device: options.device,
  }, { workers: options.workers, threads: options.threads });
  return {
    config: model.config,
    vocabSize: modelVocabSize(model),
    maxLength,
    tokenizer,
    decoder: decoders[0],
    decoders,
    adapter,
  };
}
