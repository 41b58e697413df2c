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

const presetLines = Object.entries(PRESETS).map(([name, p]) =>
  `  ${name.padEnd(6)} hidden ${p.hiddenSize}, ${p.numLayers} layers, ${p.numHeads} heads, ` +
  `max length ${p.maxSequenceLength}, tokenizer vocabulary ${p.tokenizerVocab}`
).join("\n");

const PRESET_NAMES = Object.keys(PRESETS) as (keyof typeof PRESETS)[];

const FLAGS = defineFlags({
  data: {
    type: "string",
    placeholder: "DIR",
    required: true,
    help: "dataset directory written by textualize",
  },
  preset: { type: "choice", choices: PRESET_NAMES, required: true, help: PRESET_NAMES.join(" | ") },
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
});

const usage = `Usage: recsysllm init --data DIR --preset NAME --out DIR [flags]

Makes a new model directory: config.json, tokenizer.json and model.safetensors (random weights,
normal with std 0.02, LayerNorm weights 1, biases 0). Unless --tokenizer is given, a byte-level
BPE tokenizer is trained on the dataset's entities and training records, with the special tokens
[MASK] [sMASK] [gMASK] [S] [E] [PAD]. vocab_size covers the tokenizer and its special tokens.
An existing --out directory is replaced (atomically, once the new one is complete).

Presets:
${presetLines}

${formatFlags(FLAGS)}

Example:
  init --data runs/beauty --preset tiny --out runs/tiny-model --seed 1`;

/** The `init` subcommand. */
export const command: Command = {
  name: "init",
  summary: "new model directory from a preset: tokenizer trained on the data, random weights",
  usage,
  async run(args: string[]): Promise<void> {
    const { values: flags } = parseFlags("init", args, FLAGS);
    const { data, out, preset, seed } = flags;
    const progress = new Progress("init");
    const result = await initModel({
      data,
      preset,
      out,
      seed,
      tokenizer: flags.tokenizer,
      progress: (message) => progress.update(message),
    });
    progress.done(`model written to ${out}`);
    console.log(JSON.stringify({
      out,
      preset,
      vocab_size: result.config.vocabSize,
      parameters: result.parameters,
      tokenizer: result.trainedTokenizer ? "trained" : "given",
    }));
  },
};
