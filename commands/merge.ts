/**
 * `merge`: joins the parts of a sharded run (infer, eval --save-baselines, textualize; see
 * lib/shard) into exactly what one unsharded run writes. Flags and printing only.
 *
 * @module
 */

import type { Command } from "../lib/cli/command.ts";
import { defineFlags, formatFlags, parseFlags } from "../lib/cli/flags.ts";
import { UsageError } from "../lib/errors.ts";
import { mergeShardManifestTexts } from "../lib/data/manifest.ts";
import { mergeParts } from "../lib/shard/merge.ts";
import { isDatasetDir } from "../lib/data/dataset.ts";
import { isPredictionsFile } from "../lib/eval/predictions.ts";
import { Progress } from "../lib/io/progress.ts";

const FLAGS = defineFlags({
  out: {
    type: "string",
    placeholder: "PATH",
    required: true,
    help: "the merged predictions file or dataset directory (written atomically; only a " +
      "predictions file or dataset is replaced, anything else is refused)",
  },
  force: { type: "boolean", help: "replace --out even when this tool did not write it" },
  quiet: { type: "boolean", help: "no progress on stderr (the summary still prints)" },
});

const usage = `Usage: recsysllm merge --out PATH PART...

Joins the parts that the shards of one run wrote (infer --shard, eval --save-baselines --shard:
part files with a PART.shard.json sidecar; textualize --shard: part directories with shard.json)
into what one unsharded run writes, byte for byte: the predictions in the unsharded order, or the
dataset directory. Refuses, with a one-line error and nothing written, parts of different runs
(model, data or flags), a shard given twice, a missing shard, and parts changed since written.

${formatFlags(FLAGS)}

Prints a JSON summary (kind, shards, lines per file) on stdout.

Example:
  recsysllm merge --out runs/pred.jsonl runs/pred-*-of-00008.jsonl
  recsysllm merge --out runs/data runs/data-*-of-00004`;

/** The `merge` subcommand. */
export const command: Command = {
  name: "merge",
  summary: "join the parts of a sharded run (infer, baselines, textualize) byte for byte",
  usage,
  async run(args: string[]): Promise<void> {
    const { values: flags, positionals } = parseFlags("merge", args, FLAGS, { positionals: true });
    const out = flags.out;
    if (positionals.length === 0) throw new UsageError("merge: give the parts to merge (PART...)");
    if (out === "-") {
      // Every part's bytes are checked while copied: a refusal would leave half an output there.
      throw new UsageError("merge: --out - is not stdout: give the path of the merged output");
    }
    const summary = await mergeParts(positionals, out, {
      ownFiles: { textualize: { "manifest.json": mergeShardManifestTexts } },
      force: flags.force,
      recognize: { dir: isDatasetDir, file: isPredictionsFile },
      onWarning: (message) => Progress.say(`warning: ${message}`),
    });
    console.log(JSON.stringify(summary));
  },
};
