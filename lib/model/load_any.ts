/**
 * Opening a model directory of any supported architecture: `config.json`'s `model_type` (and
 * keys, lib/model/families/registry.ts) picks THUDM's GLM (docs/method.md section 8) or a decoder
 * family (section 11). For a decoder, the special tokens its tokenizer lacks (appended after the
 * tokenizer's highest id) get mean-initialised rows when they run past the embedding.
 *
 * @module
 */

import { join } from "node:path";
import { InputError, inputError, optionName } from "../errors.ts";
import { toIoError } from "../io/io_error.ts";
import { checkItemTokens, itemTokenDigest } from "../collate/item_tokens.ts";
import type { Dataset } from "../data/dataset.ts";
import { glmDecoderConfig, readConfig } from "./config.ts";
import { loadDecoder, readDecoderConfig } from "./families/checkpoint.ts";
import type { DecoderConfig } from "./families/config.ts";
import { addedRowCount, addSpecialRows } from "./families/special.ts";
import { type Architecture, modelArchitecture } from "./families/registry.ts";
import { loadModel } from "./weights.ts";
import type { Weights } from "./weights.ts";

/**
 * A loaded model of any family: its normalised configuration (THUDM's GLM as a row of the
 * families table, lib/model/glm.ts), its weights, and the special-token rows past the
 * checkpoint's vocabulary. Nothing downstream needs to know which family it is.
 */
export interface AnyModel {
  /** The model directory it was loaded from. */
  dir: string;
  /** The normalised configuration (lib/model/families/config.ts). */
  config: DecoderConfig;
  /** Every weight by checkpoint name, float32. */
  weights: Weights;
  /** Special-token rows past the checkpoint's vocabulary (in `weights`, mean-initialised). */
  addedRows: number;
}

/** Options of {@linkcode loadAnyModel}. */
export interface LoadAnyOptions {
  /** Ids the tokenizer needs (its vocabulary and appended special tokens). */
  tokenizerIds: number;
  /**
   * Ids the tokenizer's file defines (`TextTokenizer.definedIds`): a pretrained decoder's
   * embedding rows past them are padding, dropped so that the special tokens the tokenizer lacks
   * get trainable rows of their own (see {@linkcode loadAnyModel}).
   */
  tokenizerDefinedIds?: number;
  /** Called with a one-line message ("loading 3/40: name") as each weight tensor is read. */
  progress?: (message: string) => void;
  /**
   * The dataset the model is used with: item tokens its `config.json` records must be this
   * dataset's ({@linkcode checkModelItemTokens}), checked before the vocabulary's size.
   */
  data?: Dataset;
}

/** Reads `dir/config.json` just far enough to tell the architecture. */
export async function architectureOf(dir: string): Promise<Architecture> {
  const path = join(dir, "config.json");
  let json: unknown;
  try {
    const text = await Deno.readTextFile(path).catch((error) => {
      // Unreadable (permissions, a directory): said so, not read as bad JSON.
      if (error instanceof Deno.errors.NotFound) throw error;
      throw toIoError(error, path, "cannot read");
    });
    json = JSON.parse(text);
  } catch (error) {
    if (error instanceof InputError) throw error;
    if (error instanceof Deno.errors.NotFound) {
      const exists = await Deno.stat(dir).then(() => true, () => false);
      // A LoRA run's directory given for the model: it holds the adapter, not the weights.
      const adapter = exists &&
        await Deno.stat(join(dir, "adapter_config.json")).then(() => true, () => false);
      if (adapter) {
        throw inputError(
          dir,
          undefined,
          `holds a LoRA adapter, not a model: give its base model as ${optionName("model")} ` +
            `and this directory as ${optionName("adapter")}`,
        );
      }
      throw inputError(
        exists ? path : dir,
        undefined,
        exists ? "file not found" : "model directory not found",
      );
    }
    throw inputError(path, undefined, `not valid JSON (${(error as Error).message})`);
  }
  return modelArchitecture(json, path);
}

/**
 * Loads the model in `dir`. A GLM's vocabulary must cover the tokenizer (as before); a decoder's
 * grows by the special rows it lacks. With `options.data`, a model recording another dataset's
 * item tokens is refused first (so a dataset with more items than the rows is told why).
 */
export async function loadAnyModel(dir: string, options: LoadAnyOptions): Promise<AnyModel> {
  const arch = await architectureOf(dir);
  if (arch.kind === "glm-thudm") {
    // Before the weights are read: a wrong pairing fails at once.
    if (options.data) {
      const config = await readConfig(join(dir, "config.json"));
      checkModelItemTokens({ dir, config: glmDecoderConfig(config) }, options.data);
    }
    const model = await loadModel(dir);
    if (options.tokenizerIds > model.config.vocabSize) {
      // The usual cause: a dataset with item tokens, a model made without rows for them.
      const items = options.data && itemTokenDigest(options.data);
      throw inputError(
        join(dir, "config.json"),
        undefined,
        `vocab_size ${model.config.vocabSize} is smaller than the ${options.tokenizerIds} ids of ` +
          (items && !model.config.itemTokens
            ? `its tokenizer with the ${items.count} item tokens of ` +
              `${join(options.data!.dir, "manifest.json")}: the model has no rows for them; ` +
              `init a model for this dataset`
            : `its tokenizer (special tokens included): the model and tokenizer do not belong ` +
              `together`),
      );
    }
    return { dir, config: glmDecoderConfig(model.config), weights: model.weights, addedRows: 0 };
  }
  if (options.data) {
    checkModelItemTokens({ dir, config: await readDecoderConfig(dir) }, options.data);
  }
  const loaded = await loadDecoder(dir, {
    progress: (name, done, total) => options.progress?.(`loading ${done}/${total}: ${name}`),
  });
  const model = withoutPadding(loaded, options.tokenizerDefinedIds);
  const addedRows = addedRowCount(model.config, options.tokenizerIds);
  addSpecialRows(model.config, model.weights, addedRows);
  return { ...model, addedRows };
}

/**
 * A pretrained checkpoint without its embedding (and untied head) rows past the tokenizer's own
 * ids. Qwen and GLM-4 pad `vocab_size` beyond their tokenizers; the method's special tokens (and a
 * dataset's item tokens), appended after the tokenizer's ids, would otherwise land on those
 * never-trained rows, frozen under LoRA, where the other families give them trainable,
 * mean-initialised rows. A model this toolkit wrote (it records `recsysllm` settings or item
 * tokens: its rows past the tokenizer are the special and item rows it trained) keeps them all.
 */
function withoutPadding<M extends { config: DecoderConfig; weights: Weights }>(
  model: M,
  definedIds: number | undefined,
): M {
  const { config } = model;
  const written = config.attention !== undefined || config.trainedLength !== undefined ||
    config.itemTokens !== undefined;
  if (definedIds === undefined || written || definedIds >= config.vocabSize) return model;
  const h = config.hiddenSize;
  const weights = new Map(model.weights);
  for (const name of ["model.embed_tokens.weight", "lm_head.weight"]) {
    const table = weights.get(name);
    if (table && table.length === config.vocabSize * h) {
      weights.set(name, table.subarray(0, definedIds * h)); // no copy of a large table
    }
  }
  return { ...model, config: { ...config, vocabSize: definedIds }, weights };
}

/** The longest sequence the model takes (a Mistral window caps it: see `slidingWindow`). */
export function maxModelLength(model: AnyModel): number {
  return Math.min(model.config.maxPositionEmbeddings, model.config.slidingWindow ?? Infinity);
}

/** Rows of the model's output (the vocabulary, special rows included). */
export function modelVocabSize(model: AnyModel): number {
  return model.config.vocabSize + model.addedRows;
}

/**
 * Refuses `model` on `data` when its `config.json` records item tokens of another dataset
 * (lib/collate/item_tokens.ts): its item rows would name other items. A model that records none
 * is accepted, and so is a dataset without item tokens.
 *
 * @example
 * ```ts
 * import type { Dataset } from "../data/dataset.ts";
 *
 * declare const model: AnyModel, data: Dataset;
 * checkModelItemTokens(model, data); // an InputError naming config.json, or nothing
 * ```
 */
export function checkModelItemTokens(
  model: Pick<AnyModel, "dir" | "config">,
  data: Dataset,
): void {
  checkItemTokens(model.config.itemTokens, data, {
    file: join(model.dir, "config.json"),
    fix: model.config.family === "thudm_glm"
      ? "init a model for this dataset"
      : "start from the model it was trained from, or one trained on this dataset",
  });
}
