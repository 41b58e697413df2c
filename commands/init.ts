/**
 * `init`: makes a new model directory (Hugging Face layout) from a preset: a tokenizer trained on
 * the dataset's text (or the one given), `config.json`, and seeded random weights. Flags and
 * progress only; the work is `lib/model/init.ts`.
 *
 * @module
 */

import type { Command } from "../lib/cli/command.ts";
import { defineFlags, formatFlags, parseFlags } from "../lib/cli/flags.ts";
import { Progress } from "../lib/io/progress.ts";
import { PRESETS } from "../lib/model/config.ts";
import { DEFAULT_INIT, initModel } from "../lib/model/init.ts";
import { DECODER_PRESETS, INIT_FAMILIES, initDecoder } from "../lib/model/families/init.ts";
import { UsageError } from "../lib/errors.ts";

const presetLines = Object.entries(PRESETS).map(([name, p]) =>
  `  ${name.padEnd(6)} hidden ${p.hiddenSize}, ${p.numLayers} layers, ${p.numHeads} heads, ` +
  `max length ${p.maxSequenceLength}, tokenizer vocabulary ${p.tokenizerVocab}`
).join("\n");

const PRESET_NAMES = Object.keys(PRESETS) as (keyof typeof PRESETS)[];
const DECODER_PRESET_NAMES = Object.keys(DECODER_PRESETS) as (keyof typeof DECODER_PRESETS)[];

const FLAGS = defineFlags({
  data: {
    type: "string",
    placeholder: "DIR",
    help: "dataset directory written by textualize (with --family, optional beside --tokenizer)",
  },
  preset: {
    type: "choice",
    choices: PRESET_NAMES,
    required: true,
    help: `${PRESET_NAMES.join(" | ")} (with --family: ${DECODER_PRESET_NAMES.join(" | ")})`,
  },
  family: {
    type: "choice",
    choices: INIT_FAMILIES,
    placeholder: "NAME",
    help: `${INIT_FAMILIES.join(" | ")}: a decoder-family checkpoint instead of GLM`,
  },
  out: {
    type: "string",
    placeholder: "DIR",
    required: true,
    help: "the model directory to create",
  },
  seed: {
    type: "int",
    min: 0,
    max: 2 ** 53,
    default: DEFAULT_INIT.seed,
    help: "random seed of the weights",
  },
  tokenizer: {
    type: "string",
    placeholder: "FILE",
    help: "use this tokenizer.json instead of training one",
  },
  "item-rows": {
    type: "string",
    placeholder: "FILE",
    help: "GLM on a dataset with item tokens: start the items' rows from SASRec's item table " +
      "(eval --baseline sasrec --save-baselines DIR writes DIR/sasrec-items.safetensors), " +
      "scaled to the other rows' size, instead of random values",
  },
  "hidden-size": {
    type: "int",
    min: 1,
    placeholder: "N",
    help: "hidden size in place of the preset's",
  },
  layers: { type: "int", min: 1, placeholder: "N", help: "layers in place of the preset's" },
  heads: {
    type: "int",
    min: 1,
    placeholder: "N",
    help: "attention heads in place of the preset's (must divide the hidden size)",
  },
  force: { type: "boolean", help: "replace --out even when init did not write it" },
  quiet: { type: "boolean", help: "no progress on stderr" },
});

const usage = `Usage: recsysllm init --data DIR --preset NAME --out DIR [flags]

Makes a new model directory: config.json, tokenizer.json and model.safetensors (random weights,
normal with std 0.02, LayerNorm weights 1, biases 0). Unless --tokenizer is given, a byte-level
BPE tokenizer is trained on the dataset's entities and training records, with the special tokens
[MASK] [sMASK] [gMASK] [S] [E] [PAD]. vocab_size covers the tokenizer and its special tokens.
An existing --out directory is replaced (atomically, once the new one is complete) only when
init wrote it; anything else is refused unless --force.

Presets:
${presetLines}

With --family llama | qwen2 | qwen3 | glm | glm4 (glm: GLM-4, glm4: GLM-4-0414, docs/method.md
section 11) the model is a Llama-style decoder in the Hugging Face layout (BF16
model.safetensors), presets ${DECODER_PRESET_NAMES.join(" | ")}; its vocab_size covers the
tokenizer's own ids, so the method's special tokens are added at load as for a real pretrained
model. --data may be left out
when --tokenizer is given.

${formatFlags(FLAGS)}

Examples:
  init --data runs/beauty --preset tiny --out runs/tiny-model --seed 1
  init --data runs/beauty --preset tiny --hidden-size 128 --out runs/narrow-model
  init --family qwen3 --preset tiny --tokenizer tokenizer.json --out runs/tiny-qwen3`;

/** The `init` subcommand. */
export const command: Command = {
  name: "init",
  summary: "new model directory from a preset: tokenizer trained on the data, random weights",
  usage,
  async run(args: string[]): Promise<void> {
    const { values: flags } = parseFlags("init", args, FLAGS);
    const { data, out, preset, seed, family } = flags;
    if (data === undefined && (family === undefined || flags.tokenizer === undefined)) {
      throw new UsageError("init: --data is required (or, with --family, --tokenizer)");
    }
    const shape = {
      hiddenSize: flags["hidden-size"],
      numLayers: flags.layers,
      numHeads: flags.heads,
    };
    const reshaped = Object.values(shape).some((v) => v !== undefined);
    const presets: Record<string, { hiddenSize: number; numHeads: number }> = family === undefined
      ? PRESETS
      : DECODER_PRESETS;
    if (reshaped && preset in presets) {
      const hidden = shape.hiddenSize ?? presets[preset].hiddenSize;
      const heads = shape.numHeads ?? presets[preset].numHeads;
      if (hidden % heads !== 0) {
        throw new UsageError(`init: --heads ${heads} must divide the hidden size ${hidden}`);
      }
    }
    if (family !== undefined && flags["item-rows"] !== undefined) {
      throw new UsageError("init: --item-rows is for the project's GLM, not --family");
    }
    if (family !== undefined) {
      if (!(DECODER_PRESET_NAMES as string[]).includes(preset)) {
        throw new UsageError(
          `init: --preset must be one of ${DECODER_PRESET_NAMES.join(", ")} with --family`,
        );
      }
      const progress = new Progress("init", { quiet: flags.quiet });
      const result = await initDecoder({
        family,
        preset: preset as keyof typeof DECODER_PRESETS,
        out,
        data,
        tokenizer: flags.tokenizer,
        force: flags.force,
        seed,
        shape,
        progress: (message) => progress.update(message),
      });
      progress.done(`model written to ${out}`);
      console.log(JSON.stringify({
        out,
        family,
        preset,
        hidden_size: result.config.hiddenSize,
        num_layers: result.config.numLayers,
        num_attention_heads: result.config.numHeads,
        vocab_size: result.config.vocabSize,
        parameters: result.parameters,
        tokenizer: result.trainedTokenizer ? "trained" : "given",
      }));
      return;
    }
    const progress = new Progress("init", { quiet: flags.quiet });
    const result = await initModel({
      data: data!,
      preset,
      shape: Object.fromEntries(Object.entries(shape).filter(([, v]) => v !== undefined)),
      out,
      seed,
      tokenizer: flags.tokenizer,
      itemRows: flags["item-rows"],
      force: flags.force,
      progress: (message) => progress.update(message),
    });
    progress.done(`model written to ${out}`);
    console.log(JSON.stringify({
      out,
      preset,
      hidden_size: result.config.hiddenSize,
      num_layers: result.config.numLayers,
      num_attention_heads: result.config.numHeads,
      vocab_size: result.config.vocabSize,
      parameters: result.parameters,
      tokenizer: result.trainedTokenizer ? "trained" : "given",
    }));
  },
};
