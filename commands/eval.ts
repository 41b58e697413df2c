/**
 * `eval`: scores predictions (from `infer`) and baselines on one split of a textualized dataset
 * under one ranking protocol; prints JSON (or a Markdown table) and optionally writes an SVG
 * chart. Flags and printing only: the run is lib/baselines/run.ts.
 *
 * @module
 */

import type { Command } from "../lib/cli/command.ts";
import {
  defineFlags,
  flagOf,
  type FlagValues,
  formatFlags,
  optionOf,
  parseFlags,
  withFlagNames,
} from "../lib/cli/flags.ts";
import { DEVICES } from "../lib/runtime/devices.ts";
import { Progress } from "../lib/io/progress.ts";
import { type BaselineName, BASELINES, DEFAULT_BASELINE as B } from "../lib/baselines/baseline.ts";
import { runEvaluation } from "../lib/baselines/run.ts";
import { PROTOCOLS } from "../lib/eval/protocol.ts";
import { reportJson, reportMarkdown } from "../lib/eval/report.ts";
import { tuneRerankReport } from "../lib/eval/fusion.ts";
import { EVAL_TASKS } from "../lib/eval/score.ts";
import { parseShard } from "../lib/shard/shard.ts";
import { DEFAULT_SAMPLE_SEED } from "../lib/data/user_sample.ts";
import { DEFAULT_SASREC as S, type SasrecOptions } from "../lib/sasrec/train.ts";

const FLAGS = defineFlags({
  data: {
    type: "string",
    placeholder: "DIR",
    required: true,
    help: "dataset directory (manifest.json, entities.json, SPLIT.jsonl)",
  },
  predictions: {
    type: "string",
    placeholder: "FILE",
    multiple: true,
    help: "a predictions file; may be repeated to compare methods. Files of one name make one " +
      "method: the parts of a sharded infer run (their default name drops the " +
      "-0000i-of-0000n tag), or files given the same --name",
  },
  name: {
    type: "string",
    multiple: true,
    placeholder: "NAME",
    defaultText: "the file name stem",
    help: "names the --predictions files in order",
  },
  baseline: {
    type: "list",
    placeholder: "NAME",
    choices: BASELINES,
    items: "baselines",
    multiple: true,
    help: `${BASELINES.join(", ")}; may be repeated or comma-separated\n` +
      "(pop, itemknn, random, sasrec: item tasks; mean, mf: rating; retrieval: text tasks)",
  },
  split: { type: "string", placeholder: "NAME", default: "test", help: "split to score" },
  protocol: {
    type: "choice",
    choices: PROTOCOLS,
    placeholder: "P",
    default: "full",
    help: "full: rank over all items, predictions as given;\n" +
      "sampled: rank within each record's candidates",
  },
  k: { type: "intList", min: 1, default: [1, 5, 10], help: "cut-offs for HR@k and NDCG@k" },
  tasks: {
    type: "list",
    choices: EVAL_TASKS,
    items: "tasks",
    defaultText: "all",
    help: "score only these tasks",
  },
  format: {
    type: "choice",
    choices: ["json", "md"],
    placeholder: "F",
    default: "json",
    help: "json or md (a Markdown table)",
  },
  chart: { type: "string", placeholder: "FILE.svg", help: "also write a bar chart of the methods" },
  "tune-rerank": {
    type: "string",
    placeholder: "FILE.jsonl",
    help: "only tune a reranking on this split from infer --rerank-weight 1 --top-k N output: " +
      "every weight and candidate count, the best by NDCG@10 (for infer --rerank-tuned)",
  },
  "save-baselines": {
    type: "string",
    placeholder: "DIR",
    help: "also write each baseline's predictions to DIR/NAME.jsonl (infer's format) and " +
      "SASRec's model (DIR/sasrec.safetensors, for --sasrec-model) and item table",
  },
  force: {
    type: "boolean",
    help: "replace --chart and --save-baselines files even when eval did not write them (by " +
      "default only its own charts and predictions files are)",
  },
  shard: {
    type: "string",
    placeholder: "i/n",
    help: "with --save-baselines and no --predictions: only the records of users in shard i " +
      "of n, saved to DIR/NAME-0000i-of-0000n.jsonl with sidecars for `recsysllm merge`; " +
      "the printed scores are this shard's. auto: the index of an array job (infer --help)",
  },
  "sample-users": {
    type: "int",
    min: 1,
    help: "score only the records of a seeded sample of about N users (the users infer " +
      "--sample-users N answers with the same --sample-seed)",
  },
  "sample-seed": { type: "int", default: DEFAULT_SAMPLE_SEED, help: "the --sample-users draw" },
  strict: { type: "boolean", help: "a record without a prediction is an error, not a warning" },
  quiet: { type: "boolean", help: "no progress on stderr" },
  "top-k": {
    type: "int",
    min: 1,
    default: B.top,
    aliases: ["top"],
    section: "Baseline flags",
    help: "length of rankings over all items (at least the largest k)",
  },
  "include-seen": { type: "boolean", help: "keep the user's history items in full rankings" },
  neighbors: {
    type: "int",
    min: 0,
    default: B.neighbors,
    help: "itemknn: neighbours kept per item (0: all)",
  },
  recency: {
    type: "number",
    above: 0,
    max: 1,
    default: B.recency,
    help: "itemknn: weight decay per step back in the history, in (0, 1]",
  },
  damping: { type: "number", min: 0, default: B.damping, help: "mean: bias damping" },
  seed: { type: "int", defaultText: "the dataset's seed", help: "random, sasrec, mf: seed" },
  "sasrec-epochs": {
    type: "int",
    min: 1,
    default: S.epochs,
    section: "SASRec flags (trained on the training histories, early-stopped on the validation " +
      "split's NDCG@10)",
    help: "most epochs",
  },
  "sasrec-patience": {
    type: "int",
    min: 0,
    default: S.patience,
    help: "stop after N validations without a better NDCG@10 (0: never)",
  },
  "sasrec-eval-every": { type: "int", min: 1, default: S.evalEvery, help: "epochs per validation" },
  "sasrec-batch-size": { type: "int", min: 1, default: S.batchSize, help: "users per step" },
  "sasrec-lr": { type: "number", above: 0, default: S.lr, help: "Adam learning rate" },
  "sasrec-dropout": {
    type: "number",
    min: 0,
    max: 0.99,
    default: S.dropout,
    help: "dropout rate (embeddings, attention and feed-forward outputs)",
  },
  "sasrec-weight-decay": {
    type: "number",
    min: 0,
    default: S.weightDecay,
    help: "AdamW decoupled weight decay on matrices and embeddings",
  },
  "sasrec-hidden": { type: "int", min: 1, default: S.hidden, help: "hidden size" },
  "sasrec-blocks": { type: "int", min: 1, default: S.blocks, help: "self-attention blocks" },
  "sasrec-heads": {
    type: "int",
    min: 1,
    default: S.heads,
    help: "attention heads (dividing the hidden size)",
  },
  "sasrec-max-length": { type: "int", min: 1, default: S.maxLength, help: "longest history read" },
  "sasrec-no-refit": {
    type: "boolean",
    help: "rank the test split with the early-stopped model, not one refit on the validation items",
  },
  "sasrec-refit-epochs": {
    type: "int",
    min: 1,
    help: "test split: train the refit for N epochs without early stopping first (N: the best " +
      "epoch of an earlier run with the same settings and seed, e.g. from its --sasrec-curve)",
  },
  "sasrec-model": {
    type: "string",
    placeholder: "FILE",
    help: "rank with DIR/sasrec.safetensors of an earlier eval --save-baselines DIR instead of " +
      "training SASRec (where it learned the sequences this eval's would; its settings are its own)",
  },
  "sasrec-curve": {
    type: "string",
    placeholder: "FILE",
    multiple: true,
    help: "write the training curve: FILE.svg a chart of the validation metrics, any other " +
      "name JSONL; may be repeated",
  },
  device: {
    type: "choice",
    choices: DEVICES,
    default: S.device,
    help: `${DEVICES.join(" | ")}: where SASRec's training steps run`,
  },
});

/** SASRec's options that a `--sasrec-*` flag sets (`batchSize`: `--sasrec-batch-size`). */
const SASREC_OPTIONS = [
  ...["epochs", "patience", "evalEvery", "batchSize", "lr", "dropout", "weightDecay"],
  ...["hidden", "blocks", "heads", "maxLength", "refitEpochs", "model"],
] as const;

/** The flag of each library option whose flag is not its kebab-case name. */
const RENAMED: Record<string, string> = {
  ...Object.fromEntries(SASREC_OPTIONS.map((o) => [o, `sasrec-${flagOf(o)}`])),
  names: "name",
  baselines: "baseline",
};

function sasrecOptions(flags: FlagValues<typeof FLAGS>): SasrecOptions {
  const values = flags as unknown as Record<string, number>;
  return {
    ...Object.fromEntries(SASREC_OPTIONS.map((o) => [o, values[RENAMED[o]]])),
    refit: !flags["sasrec-no-refit"],
    device: flags.device,
  };
}

const USAGE =
  `Usage: recsysllm eval --data DIR (--predictions FILE.jsonl | --baseline NAME)... [flags]

Scores predictions in the JSONL format of \`infer\` and baselines on one split of a dataset
written by textualize, under one ranking protocol. Prints JSON on stdout (keyed by task:
${EVAL_TASKS.join(", ")}; under "methods", by method, for one method as for several).

${formatFlags(FLAGS)}

Example:
  recsysllm eval --data runs/beauty --predictions runs/model.jsonl --baseline pop,itemknn \\
    --protocol sampled --format md --chart runs/eval.svg`;

/** The `eval` subcommand. */
export const command: Command = {
  name: "eval",
  summary: "score predictions and baselines: HR/NDCG, RMSE/MAE, BLEU/ROUGE (JSON, Markdown, SVG)",
  usage: USAGE,
  async run(args) {
    const { values: flags, given } = parseFlags("eval", args, FLAGS);
    if (flags["tune-rerank"] !== undefined) {
      const { data, split, format } = flags, file = flags["tune-rerank"];
      const reads = ["data", "split", "format", "tune-rerank", "quiet", "tasks"];
      const unused = [...given].filter((f) => !reads.includes(f)).map(optionOf);
      const options = { file, data, split, format, unused, tasks: flags.tasks };
      return console.log(await withFlagNames(FLAGS, () => tuneRerankReport(options), RENAMED));
    }
    const sampled = flags["sample-users"];
    const report = await withFlagNames(FLAGS, () =>
      runEvaluation({
        data: flags.data,
        predictions: flags.predictions,
        names: flags.name,
        baselines: flags.baseline as BaselineName[],
        split: flags.split,
        protocol: flags.protocol,
        ks: flags.k,
        tasks: flags.tasks,
        strict: flags.strict,
        baseline: {
          top: flags["top-k"],
          excludeSeen: !flags["include-seen"],
          neighbors: flags.neighbors,
          recency: flags.recency,
          damping: flags.damping,
          seed: flags.seed,
        },
        sasrec: sasrecOptions(flags),
        sample: sampled === undefined ? undefined : { size: sampled, seed: flags["sample-seed"] },
        shard: flags.shard === undefined ? undefined : parseShard(flags.shard),
        saveBaselines: flags["save-baselines"],
        chart: flags.chart,
        sasrecCurve: flags["sasrec-curve"],
        force: flags.force,
        given: [...given].map(optionOf),
        progress: new Progress("eval", { quiet: flags.quiet }),
      }), RENAMED);
    // Warnings are not progress: --quiet does not hide them.
    for (const warning of report.warnings) Progress.say(`warning: ${warning}`);
    for (const note of report.notes) Progress.say(`note: ${note}`);
    console.log(
      flags.format === "md" ? reportMarkdown(report) : JSON.stringify(reportJson(report), null, 2),
    );
  },
};
