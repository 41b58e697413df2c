/**
 * `eval`: scores predictions (from `infer`) and baselines on one split of a textualized dataset
 * under one ranking protocol; prints JSON (or a Markdown table) and optionally writes an SVG
 * chart. Flags and I/O only: the work is lib/eval and lib/baselines.
 *
 * @module
 */

import { basename, join } from "node:path";
import type { Command } from "../lib/cli/command.ts";
import {
  choice,
  float,
  int,
  intList,
  list,
  optional,
  parseFlags,
  required,
} from "../lib/cli/flags.ts";
import { openDataset } from "../lib/data/dataset.ts";
import { inputError, UsageError } from "../lib/errors.ts";
import { writeFileAtomic } from "../lib/io/atomic.ts";
import { TextFileWriter } from "../lib/io/text_writer.ts";
import { Progress } from "../lib/io/progress.ts";
import { type BaselineName, BASELINES } from "../lib/baselines/baseline.ts";
import { PROTOCOLS } from "../lib/eval/protocol.ts";
import type { PredictionLine } from "../lib/eval/predictions.ts";
import { reportChart, reportJson, reportMarkdown } from "../lib/eval/report.ts";
import { evaluate, type MethodSource } from "../lib/eval/run.ts";
import { EVAL_TASKS, type EvalTask } from "../lib/eval/score.ts";

const USAGE =
  `Usage: recsysllm eval --data DIR (--predictions FILE.jsonl | --baseline NAME)... [flags]

Scores predictions in the JSONL format of \`infer\` and baselines on one split of a dataset
written by textualize, under one ranking protocol. Prints JSON on stdout (keyed by task:
sequential, direct, rating, explanation, review; with several methods, under "methods").

Flags:
  --data DIR            dataset directory (manifest.json, entities.json, SPLIT.jsonl)
  --predictions FILE    a predictions file; may be repeated to compare methods
  --name NAME           names the --predictions files in order (default: the file name stem)
  --baseline NAME       ${BASELINES.join(", ")}; may be repeated or comma-separated
                        (pop, itemknn, random: item tasks; mean: rating)
  --split NAME          split to score (default test)
  --protocol P          full: rank over all items, predictions as given;
                        sampled: rank within each record's candidates (default full)
  --k LIST              cut-offs for HR@k and NDCG@k (default 1,5,10)
  --tasks LIST          score only these tasks (default all)
  --format F            json or md (a Markdown table) (default json)
  --chart FILE.svg      also write a bar chart comparing the methods
  --save-baselines DIR  also write each baseline's predictions to DIR/NAME.jsonl (the format of
                        \`infer\`, so they can be scored again with --predictions)
  --strict              a record without a prediction is an error (default: a warning on
                        stderr and a "missing" count; such records are not scored)
  --quiet               no progress on stderr
Baseline flags:
  --top N               length of rankings over all items (default 20, at least max k)
  --include-seen        keep the user's history items in rankings over all items
  --neighbors N         itemknn: neighbours kept per item (default 0: all)
  --recency X           itemknn: weight decay per step back in the history, in (0, 1] (default 1)
  --damping X           mean: bias damping (default 5)
  --seed N              random: seed (default: the dataset's seed)

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

function methodsOf(flags: Record<string, unknown>): MethodSource[] {
  const files = (flags.predictions as string[] | undefined) ?? [];
  const names = (flags.name as string[] | undefined) ?? [];
  if (names.length > files.length) {
    throw new UsageError("eval: more --name flags than --predictions files");
  }
  const baselines = ((flags.baseline as string[] | undefined) ?? [])
    .flatMap((b) => b.split(","))
    .map((b) => b.trim())
    .filter((b) => b !== "");
  for (const b of baselines) {
    if (!(BASELINES as readonly string[]).includes(b)) {
      throw new UsageError(`--baseline must be one of ${BASELINES.join(", ")}, got "${b}"`);
    }
  }
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
    const flags = parseFlags("eval", args, {
      data: { type: "string" },
      predictions: { type: "string", multiple: true },
      name: { type: "string", multiple: true },
      baseline: { type: "string", multiple: true },
      split: { type: "string" },
      protocol: { type: "string" },
      k: { type: "string" },
      tasks: { type: "string" },
      format: { type: "string" },
      chart: { type: "string" },
      "save-baselines": { type: "string" },
      strict: { type: "boolean" },
      quiet: { type: "boolean" },
      top: { type: "string" },
      "include-seen": { type: "boolean" },
      neighbors: { type: "string" },
      recency: { type: "string" },
      damping: { type: "string" },
      seed: { type: "string" },
    });
    const dir = required(flags, "data", "eval");
    const methods = methodsOf(flags);
    const protocol = choice(flags, "protocol", PROTOCOLS, "full");
    const format = choice(flags, "format", ["json", "md"] as const, "json");
    const ks = intList(flags, "k", [1, 5, 10]);
    const tasks = list(flags, "tasks", [...EVAL_TASKS]);
    for (const t of tasks) {
      if (!(EVAL_TASKS as readonly string[]).includes(t)) {
        throw new UsageError(`--tasks must list tasks among ${EVAL_TASKS.join(", ")}, got "${t}"`);
      }
    }
    const chart = optional(flags, "chart");
    if (flags["save-baselines"] !== undefined && !methods.some((m) => "baseline" in m)) {
      throw new UsageError("eval: --save-baselines needs a --baseline");
    }
    const baseline = {
      top: int(flags, "top", 20, 1),
      excludeSeen: flags["include-seen"] !== true,
      neighbors: int(flags, "neighbors", 0, 0),
      recency: float(flags, "recency", 1, Number.MIN_VALUE, 1),
      damping: float(flags, "damping", 5, 0),
    };
    const data = await openDataset(dir);
    const progress = new Progress("eval", { quiet: flags.quiet === true });
    const saved = await BaselineFiles.open(
      optional(flags, "save-baselines"),
      methods.flatMap((m) => "baseline" in m ? [m.name] : []),
    );
    let report;
    try {
      report = await evaluate(data, {
        split: optional(flags, "split", "test"),
        protocol,
        ks,
        tasks: tasks as EvalTask[],
        methods,
        strict: flags.strict === true,
        progress,
        baseline: { ...baseline, seed: int(flags, "seed", data.manifest.seed ?? 0) },
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
      format === "md" ? reportMarkdown(report) : JSON.stringify(reportJson(report), null, 2),
    );
  },
};
