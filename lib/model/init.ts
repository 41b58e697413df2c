/**
 * Making a new model directory in the Hugging Face layout (`config.json`, `tokenizer.json`,
 * `model.safetensors`) from a preset: a byte-level BPE tokenizer trained on the dataset's text
 * (the entity pool and the training records, each text segment and entity on its own, as the
 * collator encodes them) unless one is given, and seeded random weights. What `init` runs.
 *
 * @module
 */

import { totalmem } from "node:os";
import { join } from "node:path";
import { type Dataset, itemTokenMode, openDataset, readRecords } from "../data/dataset.ts";
import { InputError, inputError, optionName } from "../errors.ts";
import { toIoError } from "../io/io_error.ts";
import { OUTPUT_MARKER, writeOutputDir } from "../io/safe_output.ts";
import { Rng } from "../random.ts";
import { checkEntityLengths } from "../collate/entity_fit.ts";
import { itemTokenDigest, withItemTokens } from "../collate/item_tokens.ts";
import { countBpeWords, trainBpeOnWordCounts } from "../tokenizer/train_bpe.ts";
import { SPECIAL_TOKENS, TextTokenizer } from "../tokenizer/tokenizer.ts";
import {
  configJson,
  type GlmConfig,
  presetConfig,
  type PresetName,
  PRESETS,
  type PresetShape,
  weightShapes,
} from "./config.ts";
import { randomWeights, saveWeights } from "./weights.ts";
import { placeItemRows, readItemTable } from "./item_rows.ts";

/**
 * The texts a tokenizer for `data` is trained on, in the forms the collator encodes them
 * (lib/collate/tokenize.ts, for the byte-level BPE init trains): every entity as `" " + entity`,
 * then each text and entity of the training records, a target's text starting with one space.
 * So the merges learned for an entity's first word are those of the form it is encoded in.
 * Streamed: the training records of a large dataset are gigabytes of text, and the tokenizer
 * needs only their word counts.
 */
export async function* datasetTexts(data: Dataset): AsyncGenerator<string> {
  for (const e of data.entities) yield " " + e.entity;
  for await (const record of readRecords(data, "train")) {
    for (const segment of record.segments) {
      if ("text" in segment && segment.text) yield segment.text;
      else if ("entity" in segment) yield " " + segment.entity;
    }
    const target = record.target ?? [];
    for (const [s, segment] of target.entries()) {
      if ("entity" in segment) yield " " + segment.entity;
      else if ("text" in segment && segment.text) {
        let text = s === 0 ? " " + segment.text.trimStart() : segment.text;
        if (s === target.length - 1) text = text.trimEnd();
        yield text;
      }
    }
  }
}

/**
 * Whether `dir` holds a model `init` wrote: random weights nothing has trained yet. Told by the
 * ownership marker init leaves in the directory (lib/io/safe_output.ts); a downloaded checkpoint,
 * a `pretrain --full` run or a merged model has none naming init.
 *
 * @example
 * ```ts
 * await isInitModel("runs/tiny-model"); // true right after `init --out runs/tiny-model`
 * ```
 */
export async function isInitModel(dir: string): Promise<boolean> {
  try {
    const marker = JSON.parse(await Deno.readTextFile(join(dir, OUTPUT_MARKER)));
    return marker?.tool === "recsysllm" && marker?.command === "init";
  } catch {
    return false; // no marker (or an unreadable one): not known to be init's
  }
}

/** Defaults of {@linkcode InitOptions}. */
export const DEFAULT_INIT = Object.freeze({ seed: 0 });

/** Options of {@linkcode initModel}; defaults in {@linkcode DEFAULT_INIT}. */
export interface InitOptions {
  /** The dataset directory (textualize's output). */
  data: string;
  preset: PresetName;
  /** Values in place of the preset's (hidden size, layers, heads). */
  shape?: PresetShape;
  /**
   * The model directory to create: replaced atomically when it exists and holds a model init
   * wrote; anything else is refused unless `force` (lib/io/safe_output.ts).
   */
  out: string;
  /** Replace `out` even when init did not write it. */
  force?: boolean;
  /** Seed of the weights. */
  seed?: number;
  /** A tokenizer.json to use instead of training one. */
  tokenizer?: string;
  /**
   * SASRec's item table (`eval --save-baselines DIR`'s `DIR/sasrec-items.safetensors`): the item
   * tokens' rows start from it instead of random values (lib/sasrec/item_table.ts). The dataset
   * must have item tokens, and the table must be of its items.
   */
  itemRows?: string;
  /** Called with progress messages. */
  progress?: (message: string) => void;
}

/** What {@linkcode initModel} made. */
export interface InitResult {
  config: GlmConfig;
  /** Parameters of the model. */
  parameters: number;
  /** Whether the tokenizer was trained here (or given). */
  trainedTokenizer: boolean;
}

/**
 * Creates the model directory `options.out`. Its `vocab_size` covers the tokenizer with any
 * special token it lacked appended and the dataset's item tokens, if it has them (their digest is
 * recorded as `recsysllm_item_tokens` in `config.json`); weights are std-0.02 normal from `Rng.derive(seed, "init")`
 * (LayerNorm weights 1, biases 0).
 */
export function initModel(options: InitOptions): Promise<InitResult> {
  return writeOutputDir(options.out, {
    command: "init",
    force: options.force,
    inputs: [options.data, options.tokenizer],
  }, (dir) => initInto(options, dir));
}

/** Where a new model's tokenizer comes from: a given file, or BPE trained on a dataset. */
export interface TokenizerSource {
  /** A `tokenizer.json` to use. */
  tokenizer?: string;
  /** The dataset to train on when no tokenizer is given. */
  data?: Dataset;
  /** The trained vocabulary's size. */
  vocabSize: number;
  /** Special tokens the trained tokenizer reserves. */
  specialTokens: string[];
  say: (message: string) => void;
}

/**
 * The tokenizer of a new model: the text of `source.tokenizer`, or of a byte-level BPE trained
 * on the dataset's text; returned as written to `tokenizer.json` and parsed.
 */
export async function newModelTokenizer(
  source: TokenizerSource,
): Promise<{ text: string; json: unknown; file: string }> {
  const file = source.tokenizer ?? "tokenizer.json";
  let text: string;
  if (source.tokenizer) {
    try {
      text = await Deno.readTextFile(source.tokenizer);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw inputError(source.tokenizer, undefined, "file not found");
      }
      throw toIoError(error, source.tokenizer, "cannot read");
    }
  } else {
    if (!source.data) throw new Error("newModelTokenizer: a dataset or a tokenizer is needed");
    source.say("reading the dataset's text");
    const counts = new Map<string, number>();
    let texts = 0;
    for await (const text of datasetTexts(source.data)) {
      countBpeWords(text, counts);
      texts++;
    }
    if (texts === 0) {
      throw inputError(source.data.dir, undefined, "no text to train a tokenizer on");
    }
    source.say(`training a ${source.vocabSize}-token BPE on ${texts} texts`);
    text = JSON.stringify(
      trainBpeOnWordCounts(counts, {
        vocabSize: source.vocabSize,
        specialTokens: source.specialTokens,
      }),
    );
  }
  try {
    return { text, json: JSON.parse(text), file };
  } catch (error) {
    throw inputError(file, undefined, `not valid JSON (${(error as Error).message})`);
  }
}

async function initInto(options: InitOptions, dir: string): Promise<InitResult> {
  const say = options.progress ?? (() => {});
  const data = await openDataset(options.data);
  // Read first: a table of another dataset is refused before a tokenizer is trained.
  const itemRows = options.itemRows === undefined ? undefined : await itemTableFor(
    options.itemRows,
    data,
    join(options.data, "manifest.json"),
  );
  const { text: tokenizerJson, json: parsed, file } = await newModelTokenizer({
    tokenizer: options.tokenizer,
    data,
    vocabSize: PRESETS[options.preset].tokenizerVocab,
    specialTokens: [...SPECIAL_TOKENS],
    say,
  });
  // The dataset's item tokens, if it has them, are rows of the vocabulary (item_tokens.ts).
  const tokenizer = withItemTokens(TextTokenizer.fromJson(parsed, file), data);
  const config = presetConfig(options.preset, tokenizer.vocabSize, options.shape);
  // Which items the last rows are, so the model is refused on another dataset's (item_tokens.ts).
  const itemTokens = itemTokenDigest(data);
  if (itemTokens) config.itemTokens = itemTokens;
  // Before any weight is drawn: an entity the model cannot hold would stop training later.
  checkEntityLengths(tokenizer, data.entities, {
    maxLength: config.maxSequenceLength,
    lengthFrom: `the ${options.preset} preset's max_sequence_length`,
    file: join(options.data, "entities.json"),
  });
  say(`drawing ${options.preset} weights (vocabulary ${config.vocabSize})`);
  // Every weight is held at once, in float32.
  const weights = await withMemoryFor(
    weightShapes(config).values(),
    (sizes) => 4 * sizes.reduce((a, b) => a + b, 0),
    () => randomWeights(config, Rng.derive(options.seed ?? DEFAULT_INIT.seed, "init")),
  );
  if (itemRows) {
    // The item tokens are the last rows, right after the tokenizer's own ids (item_tokens.ts).
    const items = itemRows.rows.length / itemRows.hidden;
    say(`item rows from ${options.itemRows} (${items} items, ${itemRows.hidden} columns)`);
    placeItemRows(
      weights.get("glm.word_embeddings.weight")!,
      config.hiddenSize,
      itemRows.rows,
      itemRows.hidden,
      config.vocabSize - items,
      INIT_STD,
    );
  }
  let parameters = 0;
  for (const w of weights.values()) parameters += w.length;
  await Deno.writeTextFile(
    join(dir, "config.json"),
    JSON.stringify(configJson(config), null, 2) + "\n",
  );
  await Deno.writeTextFile(join(dir, "tokenizer.json"), tokenizerJson);
  await saveWeights(join(dir, "model.safetensors"), config, weights);
  return { config, parameters, trainedTokenizer: !options.tokenizer };
}

/**
 * Runs `draw`, which holds `held(sizes)` bytes at once (`sizes`: the element counts of
 * `shapes`), refusing before it starts when they exceed the machine's memory, and turning an
 * allocation the machine refuses all the same into that one-line InputError (a shape set far too
 * large) instead of a crash with a stack.
 */
export async function withMemoryFor<T>(
  shapes: Iterable<readonly number[]>,
  held: (sizes: readonly number[]) => number,
  draw: () => T | Promise<T>,
): Promise<T> {
  const sizes = Array.from(shapes, (shape) => shape.reduce((a, b) => a * b, 1));
  const parameters = sizes.reduce((a, b) => a + b, 0);
  const refused = () =>
    new InputError(
      `cannot hold the weights: ${parameters.toExponential(2)} parameters need ` +
        `${(held(sizes) / 2 ** 30).toFixed(1)} GiB at once, this machine has ` +
        `${(totalmem() / 2 ** 30).toFixed(1)} GiB; choose a smaller hidden size, fewer layers ` +
        "or a smaller preset",
    );
  if (held(sizes) > totalmem()) throw refused();
  try {
    return await draw();
  } catch (error) {
    const message = (error as Error)?.message ?? "";
    const allocation = /allocation failed|invalid typed array length/i.test(message);
    throw error instanceof RangeError && allocation ? refused() : error;
  }
}

/** The initial weights' standard deviation (randomWeights' default), the item rows' RMS too. */
const INIT_STD = 0.02;

/** SASRec's item table for `data`'s items; a dataset without item tokens is an InputError. */
async function itemTableFor(file: string, data: Dataset, manifest: string) {
  if (itemTokenMode(data) === "none") {
    throw inputError(
      manifest,
      undefined,
      `${optionName("itemRows")} sets the item tokens' rows, and this dataset has none ` +
        `(textualize ${optionName("itemTokens")} title)`,
    );
  }
  return await readItemTable(file, data.entities.filter((e) => e.kind === "item").map((e) => e.id));
}
