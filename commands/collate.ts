/**
 * `collate`: shows what the model will see. Reads a split of a textualized dataset, tokenizes and
 * collates each record (docs/method.md sections 4 to 6) and prints one JSON line per example: token
 * ids, 2D positions, sep, labels, loss mask, the source unit of each token and the token strings.
 * Flag parsing and printing only; the work is `lib/collate/`.
 *
 * @module
 */

import { join } from "node:path";
import type { Command } from "../lib/cli/command.ts";
import { defineFlags, formatFlags, parseFlags } from "../lib/cli/flags.ts";
import { Collator, DEFAULT_COLLATOR, exampleRng, OBJECTIVES } from "../lib/collate/collator.ts";
import type { CollatedExample } from "../lib/collate/example.ts";
import { itemTokenSummary, tokenizeRecord } from "../lib/collate/tokenize.ts";
import { withItemTokens } from "../lib/collate/item_tokens.ts";
import { openDataset, readNumberedRecords } from "../lib/data/dataset.ts";
import { SPLITS } from "../lib/data/types.ts";
import { InputError, inputError, UsageError } from "../lib/errors.ts";
import { Progress } from "../lib/io/progress.ts";
import { writeStdout } from "../lib/io/stdout.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";

const FLAGS = defineFlags({
  data: {
    type: "string",
    placeholder: "DIR",
    required: true,
    help: "dataset directory written by textualize",
  },
  tokenizer: {
    type: "string",
    placeholder: "FILE",
    required: true,
    help: "tokenizer.json (special tokens missing from it are appended)",
  },
  split: { type: "choice", choices: SPLITS, default: "train", help: SPLITS.join(" | ") },
  objective: {
    type: "choice",
    choices: [...OBJECTIVES, "mix"],
    default: DEFAULT_COLLATOR.objective,
    help: `for documents: ${[...OBJECTIVES, "mix"].join(" | ")};\n` +
      "task prompts always have their target as the one span",
  },
  seed: {
    type: "int",
    min: 0,
    max: 2 ** 53,
    default: 0,
    help: "random seed; example i draws from the stream of seed, epoch 0 and i",
  },
  limit: { type: "int", min: 1, defaultText: "all", help: "stop after N records" },
  "max-length": {
    type: "int",
    min: 3,
    defaultText: "no limit",
    help: "longest example in tokens, parts A and B (a prompt is cut as pretrain and infer cut " +
      "it, with room for the dataset's longest item answer)",
  },
  "sequence-keep": {
    type: "int",
    min: 1,
    defaultText: "no cap",
    help: "with --objective sequence: at most N items stay in part A, as pretrain's flag",
  },
  quiet: { type: "boolean", help: "no progress on stderr" },
});

const usage = `Usage: recsysllm collate --data DIR --tokenizer FILE [flags]

Prints one collated example per record as a JSON line on stdout, so every rule of the masking,
positions and labels can be checked from the output alone:
  id, objective, input_ids, position_ids ([inter, intra]), sep, labels (-100: no loss),
  loss_mask, units (source unit of each token, -1 for special tokens), tokens (token strings).

${formatFlags(FLAGS)}

Example:
  collate --data runs/beauty --tokenizer model/tokenizer.json --objective entity --limit 3`;

function exampleJson(example: CollatedExample, tokenizer: TextTokenizer): string {
  const lossMask = new Array<number>(example.length);
  for (let i = 0; i < example.length; i++) lossMask[i] = i >= example.sep ? 1 : 0;
  return JSON.stringify({
    id: example.id,
    objective: example.objective,
    input_ids: Array.from(example.inputIds),
    position_ids: [Array.from(example.inter), Array.from(example.intra)],
    sep: example.sep,
    labels: Array.from(example.labels),
    loss_mask: lossMask,
    units: Array.from(example.units),
    tokens: Array.from(example.inputIds, (id) => tokenizer.tokenString(id)),
  });
}

/** The `collate` subcommand. */
export const command: Command = {
  name: "collate",
  summary: "text records -> token ids, 2D positions, sep, labels, loss mask (JSONL, to inspect)",
  usage,
  async run(args: string[]): Promise<void> {
    const { values: flags } = parseFlags("collate", args, FLAGS);
    const { data: dir, tokenizer: tokenizerPath, split, objective, seed } = flags;
    const limit = flags.limit ?? Infinity;
    const maxLength = flags["max-length"];

    const sequenceMaxKeep = flags["sequence-keep"];
    if (sequenceMaxKeep !== undefined && objective !== "sequence") {
      throw new UsageError("--sequence-keep applies to --objective sequence");
    }
    const data = await openDataset(dir);
    // With the dataset's item tokens, if it has them (textualize --item-tokens).
    const tokenizer = withItemTokens(await TextTokenizer.load(tokenizerPath), data);
    const collator = new Collator(tokenizer.special, {
      objective,
      maxLength,
      sequenceMaxKeep,
      // Pretrain's and infer's room for an item answer: a long prompt is cut as they cut it.
      itemRoom: itemTokenSummary(tokenizer, data.entities).longest,
    });
    const progress = new Progress("collate", { quiet: flags.quiet });
    const encoder = new TextEncoder();
    let pending = "";
    const flush = async () => {
      const bytes = encoder.encode(pending);
      pending = "";
      await writeStdout(bytes);
    };

    let index = 0;
    try {
      for await (const { line, record } of readNumberedRecords(data, split)) {
        if (index >= limit) break;
        let example: CollatedExample;
        try {
          example = collator.collate(tokenizeRecord(tokenizer, record), exampleRng(seed, 0, index));
        } catch (error) {
          if (error instanceof InputError) {
            throw inputError(join(dir, `${split}.jsonl`), line, error.message);
          }
          throw error;
        }
        pending += exampleJson(example, tokenizer) + "\n";
        if (pending.length > 1 << 16) await flush();
        index++;
        progress.update(`${index} examples`);
      }
      await flush();
    } catch (error) {
      // A closed pipe (`collate ... | head`) ends the output quietly.
      if (error instanceof Deno.errors.BrokenPipe) return;
      throw error;
    }
    progress.done(`${index} examples`);
  },
};
