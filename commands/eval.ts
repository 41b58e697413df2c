/**
 * `eval`: scores predictions (from `infer`) and baselines on one split of a textualized dataset
 * under one ranking protocol; prints JSON (or a Markdown table) and optionally writes an SVG
 * chart. Flags and I/O only: the work is lib/eval and lib/baselines.
 *
 * @module
 */

import { basename, join } from "node:path";
import type { Command } from "../lib/cli/command.ts";
import { defineFlags, type FlagValues, formatFlags, parseFlags } from "../lib/cli/flags.ts";
import { openDataset } from "../lib/data/dataset.ts";
import { inputError, UsageError } from "../lib/errors.ts";
import { writeFileAtomic } from "../lib/io/atomic.ts";
import { TextFileWriter } from "../lib/io/text_writer.ts";
import { Progress } from "../lib/io/progress.ts";
import { type BaselineName, BASELINES, DEFAULT_BASELINE } from "../lib/baselines/baseline.ts";
import { PROTOCOLS } from "../lib/eval/protocol.ts";
import type { PredictionLine } from "../lib/eval/predictions.ts";
import { reportChart, reportJson, reportMarkdown } from "../lib/eval/report.ts";
import { evaluate, type MethodSource } from "../lib/eval/run.ts";
import { EVAL_TASKS } from "../lib/eval/score.ts";

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
    help: "a predictions file; may be repeated to compare methods",
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
      "(pop, itemknn, random: item tasks; mean: rating)",
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
  strict: {
    type: "boolean",
    help: "a record without a prediction is an error (default: a warning on stderr and a " +
      '"missing" count; such records are not scored)',
  },
  quiet: { type: "boolean", help: "no progress on stderr" },
  top: {
    type: "int",
    min: 1,
    default: DEFAULT_BASELINE.top,
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
  seed: { type: "int", defaultText: "the dataset's seed", help: "random: seed" },
});

const USAGE =
  `Usage: recsysllm eval --data DIR (--predictions FILE.jsonl | --baseline NAME)... [flags]

Scores predictions in the JSONL format of \`infer\` and baselines on one split of a dataset
written by textualize, under one ranking protocol. Prints JSON on stdout (keyed by task:
${EVAL_TASKS.join(", ")}; with several methods, under "methods").

${formatFlags(FLAGS)}

Example:
  recsysllm eval --data runs/beauty --predictions runs/model.jsonl --baseline pop,itemknn \\
    --protocol sampled --format md --chart runs/eval.svg`;

/** Baseline prediction files written while scoring: temporary files renamed when complete. */
class BaselineFiles {
  readonly #writers = new Map<string, { writer: TextFileWriter; temp: string; path: string }>();

  static async open(dir: string | undefined, names: string[]): Promise<BaselineFiles | undefined> {
    if (dir === undefined) return undefined;
    const files = new BaselineFiles();
    try {
      await Deno.mkdir(dir, { recursive: true });
      for (const name of names) {
        const path = join(dir, `${name}.jsonl`);
        const temp = join(dir, `.${name}.jsonl.tmp-${Deno.pid}`);
        files.#writers.set(name, { writer: await TextFileWriter.create(temp), temp, path });
      }
    } catch (error) {
      await files.discard();
      throw inputError(
        dir,
        undefined,
        `cannot write baseline predictions (${(error as Error).message})`,
      );
    }
    return files;
  }

  write = async (name: string, line: PredictionLine): Promise<void> => {
    await this.#writers.get(name)!.writer.write(JSON.stringify(line) + "\n");
  };

  /** Closes every file and renames it into place. */
  async commit(): Promise<void> {
    for (const { writer, temp, path } of this.#writers.values()) {
      await writer.close();
      await Deno.rename(temp, path);
    }
  }

  /** Closes and removes the temporary files (after a failure). */
  async discard(): Promise<void> {
    for (const { writer, temp } of this.#writers.values()) {
      await writer.close().catch(() => {});
      await Deno.remove(temp).catch(() => {});
    }
  }
}

function stem(path: string): string {
  return basename(path).replace(/(\.gz)?$/, "").replace(/\.(jsonl|json)$/, "");
}

function methodsOf(flags: FlagValues<typeof FLAGS>): MethodSource[] {
  const files = flags.predictions;
  const names = flags.name;
  if (names.length > files.length) {
    throw new UsageError("eval: more --name flags than --predictions files");
  }
  const baselines = flags.baseline;
  const methods: MethodSource[] = [
    ...files.map((path, i) => ({ name: names[i] ?? stem(path), predictions: path })),
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
    const methods = methodsOf(flags);
    const chart = flags.chart;
    if (flags["save-baselines"] !== undefined && !methods.some((m) => "baseline" in m)) {
      throw new UsageError("eval: --save-baselines needs a --baseline");
    }
    const baseline = {
      top: flags.top,
      excludeSeen: !flags["include-seen"],
      neighbors: flags.neighbors,
      recency: flags.recency,
      damping: flags.damping,
    };
    const data = await openDataset(dir);
    const progress = new Progress("eval", { quiet: flags.quiet });
    const saved = await BaselineFiles.open(
      flags["save-baselines"],
      methods.flatMap((m) => "baseline" in m ? [m.name] : []),
    );
    let report;
    try {
      report = await evaluate(data, {
        split: flags.split,
        protocol: flags.protocol,
        ks: flags.k,
        tasks: flags.tasks,
        methods,
        strict: flags.strict,
        progress,
        baseline: { ...baseline, seed: flags.seed ?? data.manifest.seed ?? DEFAULT_BASELINE.seed },
        onBaselinePrediction: saved?.write,
      });
    } catch (error) {
      await saved?.discard();
      throw error;
    }
    await saved?.commit();
    // Warnings are not progress: --quiet does not hide them.
    for (const warning of report.warnings) console.error(`warning: ${warning}`);
    if (chart !== undefined) {
      try {
        await writeFileAtomic(chart, reportChart(report));
      } catch (error) {
        throw inputError(chart, undefined, `cannot write the chart (${(error as Error).message})`);
      }
    }
    console.log(
      flags.format === "md" ? reportMarkdown(report) : JSON.stringify(reportJson(report), null, 2),
    );
  },
};
