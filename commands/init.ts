/**
 * `init`: makes a new model directory (Hugging Face layout) from a preset: a tokenizer trained on
 * the dataset's text (or the one given), `config.json`, and seeded random weights. Flags and
 * progress only; the work is `lib/model/init.ts`.
 *
 * @module
 */

import type { Command } from "../lib/cli/command.ts";
import { choice, int, optional, parseFlags, required } from "../lib/cli/flags.ts";
import { Progress } from "../lib/io/progress.ts";
import { PRESETS } from "../lib/model/config.ts";
import { initModel } from "../lib/model/init.ts";

const presetLines = Object.entries(PRESETS).map(([name, p]) =>
  `  ${name.padEnd(6)} hidden ${p.hiddenSize}, ${p.numLayers} layers, ${p.numHeads} heads, ` +
  `max length ${p.maxSequenceLength}, tokenizer vocabulary ${p.tokenizerVocab}`
).join("\n");

const usage = `Usage: recsysllm init --data DIR --preset NAME --out DIR [flags]

Makes a new model directory: config.json, tokenizer.json and model.safetensors (random weights,
normal with std 0.02, LayerNorm weights 1, biases 0). Unless --tokenizer is given, a byte-level
BPE tokenizer is trained on the dataset's entities and training records, with the special tokens
[MASK] [sMASK] [gMASK] [S] [E] [PAD]. vocab_size covers the tokenizer and its special tokens.
An existing --out directory is replaced (atomically, once the new one is complete).

Presets:
${presetLines}

Flags:
  --data DIR          dataset directory written by textualize
  --preset NAME       ${Object.keys(PRESETS).join(" | ")}
  --out DIR           the model directory to create
  --seed N            random seed of the weights (default 0)
  --tokenizer FILE    use this tokenizer.json instead of training one

Example:
  init --data runs/beauty --preset tiny --out runs/tiny-model --seed 1`;

/** The `init` subcommand. */
export const command: Command = {
  name: "init",
  summary: "new model directory from a preset: tokenizer trained on the data, random weights",
  usage,
  async run(args: string[]): Promise<void> {
    const flags = parseFlags("init", args, {
      data: { type: "string" },
      preset: { type: "string" },
      out: { type: "string" },
      seed: { type: "string" },
      tokenizer: { type: "string" },
    });
    const data = required(flags, "data", "init");
    const out = required(flags, "out", "init");
    required(flags, "preset", "init");
    const preset = choice(
      flags,
      "preset",
      Object.keys(PRESETS) as (keyof typeof PRESETS)[],
      "tiny",
    );
    const seed = int(flags, "seed", 0, 0, 2 ** 53);
    const progress = new Progress("init");
    const result = await initModel({
      data,
      preset,
      out,
      seed,
      tokenizer: optional(flags, "tokenizer"),
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
