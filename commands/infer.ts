/**
 * `infer`: predictions for the task records of one split of a dataset with a model (and an
 * optional LoRA adapter): ranked items, ratings or generated text, one JSON line per record in
 * the predictions format `eval` reads. Flags and progress only: the run is lib/generate/run.ts.
 *
 * @module
 */

import type { QuantBits } from "../lib/model/quantize.ts";
import type { Command } from "../lib/cli/command.ts";
import { defineFlags, formatFlags, parseFlags, withFlagNames } from "../lib/cli/flags.ts";
import { SPLITS } from "../lib/data/types.ts";
import { DEFAULT_SAMPLE_SEED } from "../lib/data/user_sample.ts";
import { UsageError } from "../lib/errors.ts";
import { DEFAULT_PREDICT, INFER_PROTOCOLS, INFER_TASKS } from "../lib/generate/infer.ts";
import { runInference } from "../lib/generate/run.ts";
import { parseWorkers } from "../lib/generate/open_decoders.ts";
import { DEFAULT_RERANK_WEIGHT, readRerankTuning } from "../lib/generate/rerank.ts";
import { Progress } from "../lib/io/progress.ts";
import { DEFAULT_DEVICE, DEVICES } from "../lib/runtime/session.ts";
import { parseShard } from "../lib/shard/shard.ts";

const FLAGS = defineFlags({
  model: {
    type: "string",
    placeholder: "DIR",
    required: true,
    help: "model directory (config.json, model.safetensors, tokenizer.json)",
  },
  adapter: {
    type: "string",
    placeholder: "PATH",
    help: "a LoRA adapter directory (PEFT layout), merged into the weights at load",
  },
  data: {
    type: "string",
    placeholder: "DIR",
    required: true,
    help: "dataset directory written by textualize",
  },
  out: {
    type: "string",
    placeholder: "FILE",
    required: true,
    help: "where to write the predictions (JSONL, written atomically); - for stdout. An " +
      "existing file is replaced only when it holds predictions",
  },
  force: { type: "boolean", help: "replace --out even when it does not hold predictions" },
  split: { type: "choice", choices: SPLITS, default: "test", help: SPLITS.join(", ") },
  tasks: {
    type: "list",
    choices: INFER_TASKS,
    items: "tasks",
    aliases: ["task"],
    default: INFER_TASKS,
    help: "tasks to answer",
  },
  template: { type: "list", defaultText: "all", help: "only these template ids" },
  protocol: {
    type: "choice",
    choices: INFER_PROTOCOLS,
    placeholder: "P",
    default: DEFAULT_PREDICT.protocol,
    help: "item tasks: full, beam search over all items, or sampled, the record's candidates " +
      "ranked by likelihood",
  },
  "top-k": {
    type: "int",
    min: 1,
    max: 100_000,
    default: DEFAULT_PREDICT.topK,
    help: "items per record",
  },
  beams: {
    type: "int",
    min: 1,
    max: 10_000,
    defaultText: `${DEFAULT_PREDICT.beams}, or --top-k when larger`,
    help: "beams of the title search, at least --top-k",
  },
  "exclude-seen": { type: "boolean", help: "never predict an item of the user's history" },
  "trie-softmax": {
    type: "boolean",
    help: "item search: score each item by its probability among the items (the trie's softmax)",
  },
  rerank: {
    type: "string",
    placeholder: "FILE.jsonl",
    help: "item tasks: rerank a first stage's candidates (predictions with scores, e.g. eval " +
      "--save-baselines DIR's DIR/sasrec.jsonl) by the fusion (1 - w) * its score + w * the " +
      "model's log-probability, instead of ranking every item",
  },
  "rerank-weight": {
    type: "number",
    min: 0,
    max: 1,
    help: `the model's weight w in the --rerank fusion (default ${DEFAULT_RERANK_WEIGHT}; ` +
      "1: the model alone on the candidates, 0: the first stage's order)",
  },
  "rerank-tuned": {
    type: "string",
    placeholder: "FILE.json",
    help: "--rerank: the weight and candidate count eval --tune-rerank chose (its JSON's best), " +
      "instead of --rerank-weight and --rerank-top",
  },
  "rerank-top": {
    type: "int",
    min: 1,
    help: "--rerank: the first stage's best N candidates of each record, counted after " +
      "--exclude-seen drops the history (default: all given)",
  },
  limit: { type: "int", min: 1, help: "answer only the first N selected records" },
  "sample-users": {
    type: "int",
    min: 1,
    help: "answer only the records of a seeded sample of about N users (fast validation; " +
      "eval --sample-users N with the same --sample-seed scores the same users)",
  },
  "sample-seed": { type: "int", default: DEFAULT_SAMPLE_SEED, help: "the --sample-users draw" },
  "batch-size": {
    type: "int",
    min: 1,
    max: 4096,
    default: DEFAULT_PREDICT.batchSize,
    help: "prompts decoded together",
  },
  "max-new-tokens": {
    type: "int",
    min: 1,
    max: 4096,
    default: DEFAULT_PREDICT.maxNewTokens,
    help: "text tasks: longest generated text in tokens (less where the model's length is full)",
  },
  "text-beams": {
    type: "int",
    min: 1,
    max: 256,
    default: DEFAULT_PREDICT.textBeams,
    help: "text tasks: beams (1: greedy)",
  },
  device: {
    type: "choice",
    choices: DEVICES,
    default: DEFAULT_DEVICE,
    help: `${DEVICES.join(" | ")} (auto: CUDA, then WebGPU, then CPU)`,
  },
  threads: {
    type: "int",
    min: 1,
    max: 1024,
    defaultText: "every core, shared among the workers",
    help: "intra-op threads of each decoder",
  },
  workers: {
    type: "string",
    placeholder: "N|auto",
    default: "auto",
    help: "decoders answering batches at once, each in its own thread with its own copy of the " +
      "weights, the same output; auto: one per core (at most 4) for a model of up to 64 MB on " +
      "the CPU without --threads, else 1 (docs/performance.md)",
  },
  quantize: {
    type: "choice",
    choices: ["none", "8", "4"],
    default: "none",
    help: "weight-only quantization of the linear layers: 8 or 4 bits a weight, blocks of 32 " +
      "(onnxruntime's MatMulNBits): less memory, scores change slightly, and on a small CPU " +
      "slower than float (docs/performance.md)",
  },
  shard: {
    type: "string",
    placeholder: "i/n",
    help: "answer only the records of users in shard i (0-based) of n, written to " +
      "FILE-0000i-of-0000n.jsonl with a sidecar FILE-...jsonl.shard.json; join the parts " +
      "with `recsysllm merge`. auto: the index of an array job (SLURM_ARRAY_TASK_ID, or " +
      "JOB_COMPLETION_INDEX with auto/n; see docs/sharding.md)",
  },
  quiet: { type: "boolean", help: "no progress on stderr" },
});

const usage = `Usage: recsysllm infer --model DIR --data DIR --out FILE.jsonl [flags]

Answers the task records of one split with the model: item tasks (sequential, direct) by
trie-constrained beam search over every item (--protocol full) or by ranking each record's
candidates by likelihood (--protocol sampled); rating by the expected rating over the dataset's
rating values; explanation and review by generated text. Writes one JSON line per record:
  {"id", "user", "task", "template", "predictions": [{"entity", "item_id", "score"}, ...]}   item tasks
  {"id", ..., "rating": 4.21, "most_likely": 5}                                     rating
  {"id", ..., "text": "..."}                                                         text tasks
Scores are natural-log probabilities of the item's tokens and [E] (no length normalisation); with
item tokens, of the item's own token (exact ranking, both protocols).

${formatFlags(FLAGS)}

Example:
  recsysllm infer --model runs/tiny --adapter runs/lora --data runs/beauty --tasks sequential \\
    --beams 20 --top-k 10 --out runs/pred.jsonl`;

/** The run's summary, or undefined when it wrote to stdout and the reader closed it. */
async function quietOnClosedPipe<T>(out: string, run: Promise<T>): Promise<T | undefined> {
  try {
    return await run;
  } catch (error) {
    if (out === "-" && error instanceof Deno.errors.BrokenPipe) return undefined;
    throw error;
  }
}

/** The `infer` subcommand. */
export const command: Command = {
  name: "infer",
  summary: "predictions for a split: beam search over items, candidate ranking, ratings, text",
  usage,
  async run(args: string[]): Promise<void> {
    const { values: flags, given } = parseFlags("infer", args, FLAGS);
    // A default is the library's too; left out, an option of answers the run gives none of is
    // not taken for one the user gave (the library refuses those).
    const ifGiven = <K extends keyof typeof flags & string>(name: K) =>
      given.has(name) ? flags[name] : undefined;
    const shard = flags.shard === undefined ? undefined : parseShard(flags.shard);
    if (shard && flags.out === "-") {
      throw new UsageError(
        "infer: --shard writes a part file and its sidecar, not stdout (--out -)",
      );
    }
    const progress = new Progress("infer", { quiet: flags.quiet });
    if (
      flags.rerank === undefined &&
      (flags["rerank-weight"] !== undefined || flags["rerank-top"] !== undefined)
    ) {
      throw new UsageError("--rerank-weight and --rerank-top need --rerank FILE");
    }
    const tunedFile = flags["rerank-tuned"];
    if (tunedFile !== undefined) {
      if (flags.rerank === undefined) throw new UsageError("--rerank-tuned needs --rerank FILE");
      if (flags["rerank-weight"] !== undefined || flags["rerank-top"] !== undefined) {
        throw new UsageError("--rerank-tuned sets the weight and top: drop --rerank-weight/-top");
      }
    }
    const tuned = tunedFile === undefined ? undefined : await readRerankTuning(tunedFile);
    const sampled = flags["sample-users"];
    if (given.has("sample-seed") && sampled === undefined) {
      throw new UsageError("--sample-seed chooses the sample --sample-users draws; give it");
    }
    const summary = await withFlagNames(FLAGS, () =>
      quietOnClosedPipe(
        flags.out,
        runInference({
          model: flags.model,
          adapter: flags.adapter,
          data: flags.data,
          out: flags.out,
          force: flags.force,
          split: flags.split,
          tasks: ifGiven("tasks"),
          templates: flags.template,
          protocol: ifGiven("protocol"),
          topK: ifGiven("top-k"),
          beams: flags.beams,
          excludeSeen: flags["exclude-seen"],
          trieSoftmax: flags["trie-softmax"],
          rerank: flags.rerank === undefined ? undefined : {
            file: flags.rerank,
            weight: tuned?.weight ?? flags["rerank-weight"],
            top: tuned?.top ?? flags["rerank-top"],
          },
          batchSize: flags["batch-size"],
          maxNewTokens: ifGiven("max-new-tokens"),
          textBeams: ifGiven("text-beams"),
          limit: flags.limit,
          sample: sampled === undefined ? undefined : { size: sampled, seed: flags["sample-seed"] },
          shard,
          device: flags.device,
          threads: flags.threads,
          workers: parseWorkers(flags.workers),
          quantize: flags.quantize === "none" ? undefined : Number(flags.quantize) as QuantBits,
          onProgress: (message) => progress.update(message),
          onNote: (message) => progress.log(message),
          onWarning: (message) => Progress.say(`warning: ${message}`),
        }),
      ), { templates: "template" });
    if (summary === undefined) return; // stdout was closed (`infer --out - | head`)
    progress.done(
      `${summary.records} records on ${summary.device}` +
        (shard ? ` (shard ${shard.index}/${shard.count}: ${summary.out})` : ""),
    );
    // The one-line summary every command that writes files prints (stdout holds the predictions
    // themselves with --out -).
    if (flags.out !== "-") {
      console.log(JSON.stringify({
        out: summary.out,
        records: summary.records,
        split: flags.split,
        tasks: summary.tasks,
        device: summary.device,
        ...(shard ? { shard: `${shard.index}/${shard.count}` } : {}),
      }));
    }
  },
};
