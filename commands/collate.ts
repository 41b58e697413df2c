/**
 * `collate`: shows what the model will see. Reads a split of a textualized dataset, tokenizes and
 * collates each record (SPEC sections 4 to 6) and prints one JSON line per example: token ids, 2D
 * positions, sep, labels, loss mask, the source unit of each token and the token strings. Flag
 * parsing and printing only; the work is `lib/collate/`.
 *
 * @module
 */

import type { Command } from "../lib/cli/command.ts";
import { choice, int, parseFlags, required } from "../lib/cli/flags.ts";
import { Collator, exampleRng, OBJECTIVES } from "../lib/collate/collator.ts";
import type { CollatedExample } from "../lib/collate/example.ts";
import { tokenizeRecord } from "../lib/collate/tokenize.ts";
import { openDataset, readRecords } from "../lib/data/dataset.ts";
import { SPLITS } from "../lib/data/types.ts";
import { InputError } from "../lib/errors.ts";
import { Progress } from "../lib/io/progress.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";

const usage = `Usage: recsysllm collate --data DIR --tokenizer FILE [flags]

Prints one collated example per record as a JSON line on stdout, so every rule of the masking,
positions and labels can be checked from the output alone:
  id, objective, input_ids, position_ids ([inter, intra]), sep, labels (-100: no loss),
  loss_mask, units (source unit of each token, -1 for special tokens), tokens (token strings).

Flags:
  --data DIR           dataset directory written by textualize
  --tokenizer FILE     tokenizer.json (special tokens missing from it are appended)
  --split NAME         ${SPLITS.join(" | ")} (default train)
  --objective NAME     for documents: ${OBJECTIVES.join(" | ")} | mix (default mix);
                       task prompts always have their target as the one span
  --seed N             random seed (default 0); example i uses the stream (seed, epoch 0, i)
  --limit N            stop after N records (default: all)
  --max-length N       longest example in tokens, parts A and B (default: no limit)

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
    const flags = parseFlags("collate", args, {
      data: { type: "string" },
      tokenizer: { type: "string" },
      split: { type: "string" },
      objective: { type: "string" },
      seed: { type: "string" },
      limit: { type: "string" },
      "max-length": { type: "string" },
    });
    const dir = required(flags, "data", "collate");
    const tokenizerPath = required(flags, "tokenizer", "collate");
    const split = choice(flags, "split", SPLITS, "train");
    const objective = choice(flags, "objective", [...OBJECTIVES, "mix"] as const, "mix");
    const seed = int(flags, "seed", 0, 0, 2 ** 53);
    const limit = flags.limit === undefined ? Infinity : int(flags, "limit", 0, 1);
    const maxLength = flags["max-length"] === undefined
      ? undefined
      : int(flags, "max-length", 0, 3);

    const tokenizer = await TextTokenizer.load(tokenizerPath);
    const data = await openDataset(dir);
    const collator = new Collator(tokenizer.special, { objective, maxLength });
    const progress = new Progress("collate");
    const encoder = new TextEncoder();
    let pending = "";
    const flush = async () => {
      const bytes = encoder.encode(pending);
      pending = "";
      let written = 0;
      while (written < bytes.length) written += await Deno.stdout.write(bytes.subarray(written));
    };

    let index = 0;
    try {
      for await (const record of readRecords(data, split)) {
        if (index >= limit) break;
        let example: CollatedExample;
        try {
          example = collator.collate(tokenizeRecord(tokenizer, record), exampleRng(seed, 0, index));
        } catch (error) {
          if (error instanceof InputError) {
            throw new InputError(`${dir}/${split}.jsonl record ${index + 1}: ${error.message}`);
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
