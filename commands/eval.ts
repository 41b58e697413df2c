/**
 * `eval`: scores predictions (from `infer`) and baselines on one split of a textualized dataset
 * under one ranking protocol; prints JSON (or a Markdown table) and optionally writes an SVG
 * chart. Flags and I/O only: the work is lib/eval and lib/baselines.
 *
 * @module
 */

import { basename, join } from "node:path";
import type { Command } from "../lib/cli/command.ts";
import { DEVICES } from "../lib/runtime/devices.ts";
import {
  defineFlags,
  type FlagValues,
  formatFlags,
  parseFlags,
  withFlagNames,
} from "../lib/cli/flags.ts";
import { openDataset } from "../lib/data/dataset.ts";
import { UsageError } from "../lib/errors.ts";
import { withIo } from "../lib/io/io_error.ts";
import {
  type ClaimOptions,
  claimOutputFile,
  fileHead,
  type OutputClaim,
} from "../lib/io/safe_output.ts";
import { CHART_START } from "../lib/chart/svg.ts";
import type { Split, TextRecord } from "../lib/data/types.ts";
import { UserSample } from "../lib/data/user_sample.ts";
import { TextFileWriter } from "../lib/io/text_writer.ts";
import { Progress } from "../lib/io/progress.ts";
import { type BaselineName, BASELINES, DEFAULT_BASELINE } from "../lib/baselines/baseline.ts";
import { loadBaselines } from "../lib/baselines/load.ts";
import { PROTOCOLS } from "../lib/eval/protocol.ts";
import { isPredictionsFile, type PredictionLine } from "../lib/eval/predictions.ts";
import { reportChart, reportJson, reportMarkdown } from "../lib/eval/report.ts";
import { evaluate, type MethodSource, splitFile } from "../lib/eval/run.ts";
import { EVAL_TASKS } from "../lib/eval/score.ts";
import {
  baselineRunIdentity,
  checkPartSet,
  digestDataset,
  parseShard,
  PartFileKeys,
  partManifest,
  partPath,
  type ReadPart,
  readPart,
  removeSidecar,
  type Shard,
  ShardFilter,
  writeSidecar,
} from "../lib/shard/mod.ts";
import { curveChart, curveJsonl } from "../lib/sasrec/curve.ts";
import { type CurvePoint, DEFAULT_SASREC, type SasrecOptions } from "../lib/sasrec/train.ts";

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
  chart: {
    type: "string",
    placeholder: "FILE.svg",
    help: "also write a bar chart comparing the methods",
  },
  "save-baselines": {
    type: "string",
    placeholder: "DIR",
    help: "also write each baseline's predictions to DIR/NAME.jsonl (the format of `infer`, " +
      "so they can be scored again with --predictions)",
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
  "sample-seed": { type: "int", default: 1, help: "which sample --sample-users draws" },
  strict: {
    type: "boolean",
    help: "a record without a prediction is an error (default: a warning on stderr and a " +
      '"missing" count; such records are not scored)',
  },
  quiet: { type: "boolean", help: "no progress on stderr" },
  "top-k": {
    type: "int",
    min: 1,
    default: DEFAULT_BASELINE.top,
    aliases: ["top"],
    section: "Baseline flags",
    help: "length of rankings over all items (at least the largest k)",
  },
  "include-seen": {
    type: "boolean",
    help: "keep the user's history items in rankings over all items",
  },
  neighbors: {
    type: "int",
    min: 0,
    default: DEFAULT_BASELINE.neighbors,
    help: "itemknn: neighbours kept per item (0: all)",
  },
  recency: {
    type: "number",
    above: 0,
    max: 1,
    default: DEFAULT_BASELINE.recency,
    help: "itemknn: weight decay per step back in the history, in (0, 1]",
  },
  damping: {
    type: "number",
    min: 0,
    default: DEFAULT_BASELINE.damping,
    help: "mean: bias damping",
  },
  seed: { type: "int", defaultText: "the dataset's seed", help: "random, sasrec: seed" },
  "sasrec-epochs": {
    type: "int",
    min: 1,
    default: DEFAULT_SASREC.epochs,
    section: "SASRec flags (trained on the training histories, early-stopped on the validation " +
      "split's NDCG@10)",
    help: "most epochs",
  },
  "sasrec-patience": {
    type: "int",
    min: 0,
    default: DEFAULT_SASREC.patience,
    help: "stop after N validations without a better NDCG@10 (0: never)",
  },
  "sasrec-eval-every": {
    type: "int",
    min: 1,
    default: DEFAULT_SASREC.evalEvery,
    help: "epochs between validations",
  },
  "sasrec-batch-size": {
    type: "int",
    min: 1,
    default: DEFAULT_SASREC.batchSize,
    help: "users per step",
  },
  "sasrec-lr": { type: "number", above: 0, default: DEFAULT_SASREC.lr, help: "Adam learning rate" },
  "sasrec-dropout": {
    type: "number",
    min: 0,
    max: 0.99,
    default: DEFAULT_SASREC.dropout,
    help: "dropout rate (embeddings, attention and feed-forward outputs)",
  },
  "sasrec-weight-decay": {
    type: "number",
    min: 0,
    default: DEFAULT_SASREC.weightDecay,
    help: "AdamW decoupled weight decay on matrices and embeddings",
  },
  "sasrec-hidden": { type: "int", min: 1, default: DEFAULT_SASREC.hidden, help: "hidden size" },
  "sasrec-blocks": {
    type: "int",
    min: 1,
    default: DEFAULT_SASREC.blocks,
    help: "self-attention blocks",
  },
  "sasrec-heads": {
    type: "int",
    min: 1,
    default: DEFAULT_SASREC.heads,
    help: "attention heads (dividing the hidden size)",
  },
  "sasrec-max-length": {
    type: "int",
    min: 1,
    default: DEFAULT_SASREC.maxLength,
    help: "longest history read",
  },
  "sasrec-no-refit": {
    type: "boolean",
    help: "rank the test split with the early-stopped model itself, not one retrained for its " +
      "epoch count on the histories followed by the validation item",
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
    default: "cpu",
    help: `${DEVICES.join(" | ")}: where SASRec's training steps run`,
  },
});

/** The `--sasrec-*` flag of each SASRec option (for errors from the library). */
const SASREC_FLAGS: Record<string, string> = Object.fromEntries(
  ["epochs", "patience", "batchSize", "lr", "dropout", "hidden", "blocks", "heads", "maxLength"]
    .map((o) => [o, `sasrec-${o.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`]),
);

function sasrecOptions(
  flags: FlagValues<typeof FLAGS>,
  onEpoch: (point: CurvePoint) => void,
): SasrecOptions {
  return {
    epochs: flags["sasrec-epochs"],
    patience: flags["sasrec-patience"],
    evalEvery: flags["sasrec-eval-every"],
    batchSize: flags["sasrec-batch-size"],
    lr: flags["sasrec-lr"],
    dropout: flags["sasrec-dropout"],
    weightDecay: flags["sasrec-weight-decay"],
    hidden: flags["sasrec-hidden"],
    blocks: flags["sasrec-blocks"],
    heads: flags["sasrec-heads"],
    maxLength: flags["sasrec-max-length"],
    refit: !flags["sasrec-no-refit"],
    device: flags.device,
    onEpoch,
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

/** Baseline prediction files written while scoring: temporary files renamed when complete. */
class BaselineFiles {
  readonly #files = new Map<
    string,
    { writer: TextFileWriter; claim: OutputClaim; path: string; keys: PartFileKeys }
  >();
  #shard?: Shard;

  static async open(
    dir: string | undefined,
    names: string[],
    options: Omit<ClaimOptions, "command" | "recognize">,
    shard?: Shard,
  ): Promise<BaselineFiles | undefined> {
    if (dir === undefined) return undefined;
    const files = new BaselineFiles();
    files.#shard = shard;
    try {
      await withIo(dir, "cannot create the directory", () => Deno.mkdir(dir, { recursive: true }));
      for (const name of names) {
        const whole = join(dir, `${name}.jsonl`);
        const path = shard ? partPath(whole, shard) : whole;
        const claim = await claimOutputFile(path, {
          ...options,
          command: "eval",
          flag: "--save-baselines",
          recognize: isPredictionsFile,
        });
        try {
          files.#files.set(name, {
            writer: await TextFileWriter.create(claim.tmp, undefined, path),
            claim,
            path,
            keys: new PartFileKeys(),
          });
        } catch (error) {
          await claim.close();
          throw error;
        }
      }
    } catch (error) {
      await files.close();
      throw error;
    }
    return files;
  }

  write = async (name: string, line: PredictionLine, index: number): Promise<void> => {
    const file = this.#files.get(name)!;
    const text = JSON.stringify(line) + "\n";
    file.keys.add(index, text);
    await file.writer.write(text);
  };

  /**
   * Closes every file and renames it into place; a shard's files then get their sidecars, with
   * `run(name)` as what must agree between the shards and `records` the records of the split.
   */
  async commit(run?: (name: string) => Record<string, unknown>, records = 0): Promise<void> {
    for (const [name, { writer, claim, path, keys }] of this.#files) {
      await writer.close();
      if (this.#shard) await removeSidecar(path);
      await claim.commit();
      if (this.#shard && run) {
        await writeSidecar(
          path,
          partManifest("baseline", this.#shard, run(name), {
            [`${name}.jsonl`]: keys.file(records),
          }),
        );
      }
    }
  }

  /** Removes what was not committed and releases the files; safe to call twice. */
  async close(): Promise<void> {
    for (const { writer, claim } of this.#files.values()) {
      await writer.close().catch(() => {});
      await claim.close();
    }
  }
}

/** Whether `path` holds a SASRec training curve this toolkit wrote (JSONL, one epoch a line). */
async function isCurveFile(path: string): Promise<boolean> {
  return (await fileHead(path, 10))?.startsWith('{"epoch":') ?? false;
}

/** Whether `path` holds a chart this toolkit drew. */
async function isChartFile(path: string): Promise<boolean> {
  return (await fileHead(path, CHART_START.length))?.startsWith(CHART_START) ?? false;
}

/** The default name of a predictions file: its stem, without a shard tag (`-00002-of-00007`). */
function stem(path: string): string {
  return basename(path).replace(/(\.gz)?$/, "").replace(/\.(jsonl|json)$/, "")
    .replace(/-\d+-of-\d+$/, "");
}

/** A method as the flags name it: predictions files or a baseline to train. */
type MethodFlag =
  | { name: string; predictions: string | readonly string[] }
  | { name: string; baseline: BaselineName };

async function methodsOf(flags: FlagValues<typeof FLAGS>): Promise<MethodFlag[]> {
  const files = flags.predictions;
  const names = flags.name;
  if (names.length > files.length) {
    throw new UsageError("eval: more --name flags than --predictions files");
  }
  const baselines = flags.baseline;
  // Files of one name make one method: named alike with --name, or the parts of a sharded run
  // (their default names drop the shard tag).
  const groups = new Map<string, { files: string[]; named: boolean }>();
  files.forEach((path, i) => {
    const name = names[i] ?? stem(path);
    const group = groups.get(name);
    if (group) {
      group.files.push(path);
      group.named &&= names[i] !== undefined;
    } else groups.set(name, { files: [path], named: names[i] !== undefined });
  });
  for (const [name, group] of groups) {
    if (group.files.length === 1) continue;
    const parts: ReadPart[] = [];
    for (const file of group.files) {
      const part = await readPart(file).catch(() => undefined);
      if (part) parts.push(part);
      else if (!group.named) {
        throw new UsageError(
          `eval: two methods are named "${name}" (name files with --name; files given the ` +
            "same --name are joined into one method)",
        );
      }
    }
    if (parts.length > 1) checkPartSet(parts, false);
  }
  const methods: MethodFlag[] = [
    ...[...groups].map(([name, g]) => ({
      name,
      predictions: g.files.length === 1 ? g.files[0] : g.files,
    })),
    ...baselines.map((b) => ({ name: b, baseline: b as BaselineName })),
  ];
  if (methods.length === 0) {
    throw new UsageError("eval: give --predictions FILE or --baseline NAME");
  }
  const seen = new Set<string>();
  for (const m of methods) {
    if (seen.has(m.name)) {
      throw new UsageError(`eval: two methods are named "${m.name}" (name files with --name)`);
    }
    seen.add(m.name);
  }
  return methods;
}

/** The `eval` subcommand. */
export const command: Command = {
  name: "eval",
  summary: "score predictions and baselines: HR/NDCG, RMSE/MAE, BLEU/ROUGE (JSON, Markdown, SVG)",
  usage: USAGE,
  async run(args) {
    const { values: flags } = parseFlags("eval", args, FLAGS);
    const dir = flags.data;
    const methods = await methodsOf(flags);
    const chart = flags.chart;
    if (flags["save-baselines"] !== undefined && !methods.some((m) => "baseline" in m)) {
      throw new UsageError("eval: --save-baselines needs a --baseline");
    }
    const baseline = {
      top: flags["top-k"],
      excludeSeen: !flags["include-seen"],
      neighbors: flags.neighbors,
      recency: flags.recency,
      damping: flags.damping,
    };
    const shard = flags.shard === undefined ? undefined : parseShard(flags.shard);
    if (shard && flags["save-baselines"] === undefined) {
      throw new UsageError("eval: --shard needs --save-baselines (it shards the saved baselines)");
    }
    if (shard && methods.some((m) => "predictions" in m)) {
      throw new UsageError(
        "eval: --shard shards baselines only; score predictions parts with --predictions, unsharded",
      );
    }
    const curve: CurvePoint[] = [];
    const sasrec = sasrecOptions(flags, (point) => curve.push(point));
    const data = await openDataset(dir);
    const seed = flags.seed ?? data.manifest.seed ?? DEFAULT_BASELINE.seed;
    const progress = new Progress("eval", { quiet: flags.quiet });
    const force = flags.force;
    const inputs = [dir, ...methods.flatMap((m) => "predictions" in m ? m.predictions : [])];
    // Claimed before scoring, so a chart or baseline file of the user's is refused before the work.
    const chartOut = chart === undefined ? undefined : await claimOutputFile(chart, {
      command: "eval",
      flag: "--chart",
      force,
      inputs,
      recognize: isChartFile,
    });
    const curveOuts: OutputClaim[] = [];
    for (const file of flags["sasrec-curve"]) {
      curveOuts.push(
        await claimOutputFile(file, {
          command: "eval",
          flag: "--sasrec-curve",
          force,
          inputs,
          recognize: file.endsWith(".svg") ? isChartFile : isCurveFile,
        }),
      );
    }
    let saved: BaselineFiles | undefined;
    const filter = shard ? new ShardFilter(shard) : undefined;
    let report;
    try {
      saved = await BaselineFiles.open(
        flags["save-baselines"],
        methods.flatMap((m) => "baseline" in m ? [m.name] : []),
        { force, inputs },
        shard,
      );
      // eval composes: the baselines are trained here and scored by lib/eval as predictors.
      const file = await splitFile(data, flags.split);
      const baselines = await withFlagNames(FLAGS, () =>
        loadBaselines(
          data,
          methods.flatMap((m) => "baseline" in m ? [m.baseline] : []),
          {
            ...baseline,
            top: Math.max(baseline.top ?? DEFAULT_BASELINE.top, ...flags.k),
            seed,
            sasrec,
            protocol: flags.protocol,
            file,
          },
          progress,
          flags.split as Split,
        ), SASREC_FLAGS);
      const sources: MethodSource[] = methods.map((m) =>
        "baseline" in m ? { name: m.name, predictor: baselines.get(m.baseline)! } : m
      );
      const sample = flags["sample-users"] === undefined ? undefined : new UserSample({
        size: flags["sample-users"],
        users: data.manifest.users ?? 0,
        seed: flags["sample-seed"],
      });
      const select = filter || sample
        ? (record: TextRecord) =>
          (!filter || filter.has(record.user)) && (!sample || sample.has(record.user))
        : undefined;
      report = await evaluate(data, {
        select,
        split: flags.split,
        protocol: flags.protocol,
        ks: flags.k,
        tasks: flags.tasks,
        methods: sources,
        strict: flags.strict,
        progress,
        onPrediction: saved?.write,
      });
      const digest = shard ? await digestDataset(dir) : {};
      const scored = report;
      await saved?.commit(
        (name) =>
          baselineRunIdentity({
            ...baseline,
            baseline: name,
            data: digest,
            split: flags.split,
            protocol: flags.protocol,
            tasks: flags.tasks ?? EVAL_TASKS,
            top: Math.max(baseline.top, ...flags.k),
            seed,
          }),
        scored.splitRecords,
      );
      if (chartOut) {
        await withIo(
          chart!,
          "cannot write the chart",
          () => Deno.writeTextFile(chartOut.tmp, reportChart(scored)),
        );
        await chartOut.commit();
      }
      for (const [i, file] of flags["sasrec-curve"].entries()) {
        const text = file.endsWith(".svg") ? curveChart(curve) : curveJsonl(curve);
        await withIo(
          file,
          "cannot write the curve",
          () => Deno.writeTextFile(curveOuts[i].tmp, text),
        );
        await curveOuts[i].commit();
      }
    } finally {
      for (const out of curveOuts) await out.close();
      await saved?.close();
      await chartOut?.close();
    }
    // Warnings are not progress: --quiet does not hide them.
    for (const warning of report.warnings) console.error(`warning: ${warning}`);
    for (const note of report.notes) console.error(`note: ${note}`);
    console.log(
      flags.format === "md" ? reportMarkdown(report) : JSON.stringify(reportJson(report), null, 2),
    );
  },
};
