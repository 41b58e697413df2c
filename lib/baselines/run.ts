/**
 * An evaluation run: the methods named (predictions files and baselines) scored on one split of
 * a dataset, the baselines trained first, with their predictions saved when asked (a shard's
 * parts with sidecars), a chart of the scores and SASRec's training curve. What `eval` runs; the
 * scoring is lib/eval/run.ts, the baselines lib/baselines/load.ts, the selection of records
 * lib/data/selection.ts and the saved files lib/shard/part_writer.ts.
 *
 * @module
 */

import { join } from "node:path";
import { CHART_START } from "../chart/svg.ts";
import { checkValidSplit, openDataset, tuneUsersOf } from "../data/dataset.ts";
import { RecordSelection } from "../data/selection.ts";
import type { Split } from "../data/types.ts";
import { type Describe, OptionError } from "../errors.ts";
import { type NamedMethod, namedMethods } from "../eval/methods.ts";
import { isPredictionsFile } from "../eval/predictions.ts";
import type { Protocol } from "../eval/protocol.ts";
import { reportChart } from "../eval/report.ts";
import {
  type EvalReport,
  evaluate,
  type MethodSource,
  readMethodPredictions,
  splitFile,
} from "../eval/run.ts";
import { EVAL_TASKS, type EvalTask } from "../eval/score.ts";
import { missingDirs, removeCreated, removeCreatedSync } from "../io/fs.ts";
import { onSignal } from "../io/cleanup.ts";
import { withIo } from "../io/io_error.ts";
import type { Progress } from "../io/progress.ts";
import { claimOutputFile, fileHead, type OutputClaim } from "../io/safe_output.ts";
import { temporaryRenamed } from "../io/atomic.ts";
import { curveChart, curveJsonl } from "../sasrec/curve.ts";
import { ITEM_TABLE_KEY, writeItemTable } from "../model/item_rows.ts";
import { sasrecNames } from "../sasrec/model.ts";
import {
  SAVED_SASREC_KEY,
  type SavedSasrecInfo,
  savedSasrecInfo,
  writeSavedSasrec,
} from "./sasrec_saved.ts";
import { SafetensorsFile } from "../model/safetensors.ts";
import type { SasrecBaseline } from "./sasrec.ts";
import { type CurvePoint, DEFAULT_SASREC, type SasrecOptions } from "../sasrec/train.ts";
import { baselineRunIdentity, digestDataset } from "../shard/identity.ts";
import { PartWriter } from "../shard/part_writer.ts";
import type { Shard } from "../shard/shard.ts";
import { BASELINE_TASKS, type BaselineName, DEFAULT_BASELINE } from "./baseline.ts";
import { loadBaselines } from "./load.ts";
import { DEFAULT_MF } from "./mf.ts";

/** Options of {@linkcode runEvaluation}. */
export interface EvalRunOptions {
  /** Dataset directory. */
  data: string;
  /** Predictions files (files of one name make one method). */
  predictions: readonly string[];
  /** Names of the predictions files, in order (default: each file's stem). */
  names: readonly string[];
  /** Baselines to train and score. */
  baselines: readonly BaselineName[];
  /** The split scored (`test`, `valid`). */
  split: string;
  /** Item tasks: ranking over every item (`full`) or the record's candidates (`sampled`). */
  protocol: Protocol;
  /** Cut-offs for HR@k and NDCG@k. */
  ks: readonly number[];
  /** Score only these tasks (default all). */
  tasks?: readonly EvalTask[];
  /** A record without a prediction is an error. */
  strict?: boolean;
  /** The baselines' settings (defaults in `DEFAULT_BASELINE`; seed: the dataset's). */
  baseline: {
    top: number;
    excludeSeen: boolean;
    neighbors: number;
    recency: number;
    damping: number;
    seed?: number;
  };
  /** SASRec's settings; its training curve is also written to `sasrecCurve`. */
  sasrec: Omit<SasrecOptions, "onEpoch">;
  /** Only the records of a seeded sample of about `size` users. */
  sample?: { size: number; seed: number };
  /** With `saveBaselines` and no predictions: only this shard's users, saved as parts. */
  shard?: Shard;
  /** Also write each baseline's predictions to DIR/NAME.jsonl. */
  saveBaselines?: string;
  /** Also write a bar chart comparing the methods. */
  chart?: string;
  /** Write SASRec's training curve: an SVG chart (`.svg`) or JSONL, to each file. */
  sasrecCurve?: readonly string[];
  /** Replace outputs even when eval did not write them. */
  force?: boolean;
  /**
   * The options the user set (the command's flags, as options: `neighbors`, `sasrecEpochs`):
   * one that configures only baselines that are not run would do nothing, and is refused.
   */
  given?: readonly string[];
  /** Where the long phases (training SASRec, scoring) report. */
  progress?: Progress;
}

/** Whether `path` holds a SASRec training curve this toolkit wrote (JSONL, one epoch a line). */
async function isCurveFile(path: string): Promise<boolean> {
  return (await fileHead(path, 10))?.startsWith('{"epoch":') ?? false;
}

/** The file of SASRec's item table in a --save-baselines directory. */
export const ITEM_TABLE_FILE = "sasrec-items.safetensors";

/** The file of the whole SASRec model in a --save-baselines directory (`--sasrec-model`). */
export const SASREC_MODEL_FILE = "sasrec.safetensors";

/** Whether `path` is a safetensors file whose metadata has `key` (a file eval wrote). */
async function hasMarker(path: string, key: string): Promise<boolean> {
  try {
    return key in (await SafetensorsFile.open(path)).metadata;
  } catch {
    return false;
  }
}

/** Whether `path` holds a chart this toolkit drew. */
async function isChartFile(path: string): Promise<boolean> {
  return (await fileHead(path, CHART_START.length))?.startsWith(CHART_START) ?? false;
}

/**
 * The settings of baseline `name` beyond those every baseline records, defaults filled in, for
 * its shards' identity: SASRec's model and training (threads aside, as infer's), mf's; undefined
 * for the others, whose output the dataset and the common settings decide.
 */
function ownSettings(
  name: string,
  options: EvalRunOptions,
  seed: number,
  saved?: SavedSasrecInfo,
): Record<string, unknown> | undefined {
  const given = (o: object) =>
    Object.entries(o).filter(([k, v]) => v !== undefined && k !== "threads");
  // A saved SASRec: what it is (its digests, size, epoch and settings), not where it lies.
  if (name === "sasrec" && saved) return { saved, refit: options.sasrec.refit };
  if (name === "sasrec") {
    return { ...DEFAULT_SASREC, seed, ...Object.fromEntries(given(options.sasrec)) };
  }
  if (name === "mf") return { ...DEFAULT_MF, seed };
  return undefined;
}

/** The mistakes in how the options combine, found before anything is read. */
/** The baselines an option configures (every `sasrec*` option: SASRec's). */
const OPTION_BASELINES: Readonly<Record<string, readonly BaselineName[]>> = {
  topK: ["pop", "itemknn", "random", "sasrec"],
  includeSeen: ["pop", "itemknn", "random", "sasrec"],
  neighbors: ["itemknn"],
  recency: ["itemknn"],
  damping: ["mean"],
  seed: ["random", "sasrec", "mf"],
  device: ["sasrec"],
};

/**
 * Refuses an option given for baselines none of which runs (`--neighbors` without item-kNN), and
 * a sample's seed without the sample: each would do nothing.
 */
function checkGivenApply(options: EvalRunOptions, baselines: readonly string[]): void {
  for (const option of options.given ?? []) {
    const owners = option.startsWith("sasrec") ? ["sasrec"] : OPTION_BASELINES[option];
    if (owners === undefined || owners.some((b) => baselines.includes(b))) {
      continue;
    }
    throw new OptionError(
      option,
      (name, nameOf) =>
        `eval: ${name} configures ${owners.join(", ")}, which ${nameOf("baselines")} does not run`,
    );
  }
  if ((options.given ?? []).includes("sampleSeed") && options.sample === undefined) {
    throw new OptionError(
      "sampleSeed",
      (name, nameOf) => `eval: ${name} chooses the sample ${nameOf("sampleUsers")} draws; give it`,
    );
  }
}

function checkOptions(options: EvalRunOptions, methods: NamedMethod[]): void {
  const baselines = methods.flatMap((m) => "baseline" in m ? [m.baseline] : []);
  if (options.split === "train" && baselines.length > 0) {
    // Training records are what the baselines learn: their targets are in what they fit.
    throw new OptionError(
      "split",
      (name, nameOf) =>
        `eval: the baselines learn the train split (${baselines.join(", ")}): score them on ` +
        `${name} valid or test, or score only ${nameOf("predictions")} on train`,
    );
  }
  if ((options.sasrecCurve ?? []).length > 0 && !baselines.includes("sasrec")) {
    throw new OptionError(
      "sasrecCurve",
      (name, nameOf) =>
        `eval: ${name} is SASRec's training curve: it needs ${nameOf("baselines")} sasrec`,
    );
  }
  if (options.sasrec.refitEpochs !== undefined && baselines.includes("sasrec")) {
    // Said before the other baselines load: it would skip nothing, or the curve it draws.
    // (Without sasrec, checkGivenApply says that it configures a baseline not run.)
    const needs = (name: string) =>
      `eval: ${name} sets the epochs of SASRec's refit for the test split: it needs `;
    const refitOn = options.sasrec.refit ?? DEFAULT_SASREC.refit;
    const describe: Describe | undefined = options.split !== "test"
      ? (name, nameOf) => needs(name) + `${nameOf("split")} test (not ${options.split})`
      : !refitOn
      ? (name, nameOf) => needs(name) + `the refit, which ${nameOf("sasrecNoRefit")} turns off`
      : (options.sasrecCurve ?? []).length > 0
      ? (name, nameOf) =>
        `eval: ${name} skips the early stopping whose curve ${nameOf("sasrecCurve")} draws`
      : undefined;
    if (describe) throw new OptionError("sasrecRefitEpochs", describe);
  }
  if (options.sasrec.model !== undefined && baselines.includes("sasrec")) {
    // The file is the model: a flag that sets how SASRec trains, or draws its training, would
    // do nothing (the seed still seeds random and mf when they run).
    const given = options.given ?? [];
    if ((options.sasrecCurve ?? []).length > 0) {
      throw new OptionError(
        "sasrecCurve",
        (name, nameOf) =>
          `eval: ${name} draws SASRec's training, which ${nameOf("model")} skips (it ranks ` +
          "with a saved one)",
      );
    }
    const seeds = baselines.some((b) => b === "random" || b === "mf");
    const trains = given.find((o) =>
      (o.startsWith("sasrec") && o !== "sasrecModel" && o !== "sasrecNoRefit") ||
      o === "device" || (o === "seed" && !seeds)
    );
    if (trains) {
      throw new OptionError(
        trains,
        (name, nameOf) =>
          `eval: ${name} sets how SASRec trains, but ${nameOf("model")} ranks with a saved ` +
          "one: drop one of them",
      );
    }
  }
  if (options.saveBaselines !== undefined && !methods.some((m) => "baseline" in m)) {
    throw new OptionError(
      "saveBaselines",
      (name, nameOf) => `eval: ${name} needs a ${nameOf("baselines")}`,
    );
  }
  if (options.shard && options.saveBaselines === undefined) {
    throw new OptionError(
      "shard",
      (name, nameOf) =>
        `eval: ${name} needs ${nameOf("saveBaselines")} (it shards the saved baselines)`,
    );
  }
  checkGivenApply(options, baselines);
  const tasks = options.tasks;
  if (
    tasks !== undefined && baselines.length > 0 && !methods.some((m) => "predictions" in m) &&
    !baselines.some((b) => BASELINE_TASKS[b as BaselineName].some((t) => tasks.includes(t)))
  ) {
    // Said before the baselines train (SASRec: minutes), not when nothing was scored.
    const answered = baselines.map((b) =>
      `${b} answers ${BASELINE_TASKS[b as BaselineName].join(", ")}`
    );
    throw new OptionError(
      "tasks",
      (name) =>
        `eval: no method answers the tasks asked (${name} ${tasks.join(",")}; ` +
        `${answered.join("; ")})`,
    );
  }
  if (options.shard && methods.some((m) => "predictions" in m)) {
    throw new OptionError(
      "shard",
      (name, nameOf) =>
        `eval: ${name} shards baselines only; score predictions parts with ` +
        `${nameOf("predictions")}, unsharded`,
    );
  }
}

/**
 * The files a baseline's predictions are saved to, by baseline; opened before the work. The
 * directories it creates for them are added to `created`, deepest first.
 */
async function openSaved(
  options: EvalRunOptions,
  names: readonly string[],
  claim: { force?: boolean; inputs: string[] },
  created: string[],
): Promise<Map<string, PartWriter>> {
  const files = new Map<string, PartWriter>();
  const dir = options.saveBaselines;
  if (dir === undefined) return files;
  try {
    created.push(...await missingDirs(dir));
    await withIo(dir, "cannot create the directory", () => Deno.mkdir(dir, { recursive: true }));
    for (const name of names) {
      files.set(
        name,
        await PartWriter.open(join(dir, `${name}.jsonl`), {
          ...claim,
          command: "eval",
          option: "saveBaselines",
          recognize: isPredictionsFile,
          shard: options.shard,
        }),
      );
    }
  } catch (error) {
    for (const file of files.values()) await file.close();
    throw error;
  }
  return files;
}

/**
 * Scores the methods named (see the module) and writes what was asked; returns the report. Every
 * output is claimed before the work, so a file of the user's is refused before minutes of
 * training, and each is renamed into place only when complete.
 *
 * @example
 * ```ts
 * const report = await runEvaluation({
 *   data: "runs/beauty",
 *   predictions: ["runs/pred.jsonl"],
 *   names: [],
 *   baselines: ["pop"],
 *   split: "test",
 *   protocol: "full",
 *   ks: [1, 5, 10],
 *   baseline: { top: 20, excludeSeen: true, neighbors: 0, recency: 1, damping: 0 },
 *   sasrec: {},
 * });
 * report.methods; // by method name
 * ```
 */
export async function runEvaluation(options: EvalRunOptions): Promise<EvalReport> {
  const methods = await namedMethods(options);
  checkOptions(options, methods);
  const { shard, force, progress, baseline, ks } = options;
  const data = await openDataset(options.data);
  // Before the baselines train (SASRec: minutes), not after, when the records are scored.
  checkValidSplit(data, options.split, options.sample);
  if (
    options.sasrec.refitEpochs !== undefined && tuneUsersOf(data) !== undefined &&
    methods.some((m) => "baseline" in m && m.baseline === "sasrec")
  ) {
    throw new OptionError(
      "sasrecRefitEpochs",
      (name) =>
        `eval: ${name} sets the epochs of SASRec's refit for the test split, but on this refit ` +
        "dataset with tuning users SASRec learns the validation items itself (no refit)",
    );
  }
  const savedInfo = options.sasrec.model === undefined || !shard
    ? undefined
    : await savedSasrecInfo(options.sasrec.model);
  const seed = baseline.seed ?? data.manifest.seed ?? DEFAULT_BASELINE.seed;
  const inputs = [
    options.data,
    ...methods.flatMap((m) => "predictions" in m ? m.predictions : []),
    ...(options.sasrec.model === undefined ? [] : [options.sasrec.model]),
  ];
  const claims: OutputClaim[] = [];
  let saved = new Map<string, PartWriter>();
  const created: string[] = []; // directories made for --save-baselines, removed on failure
  let done = false;
  // On an interrupt too (the files' temporaries go on their own; then the empty directories).
  const forgetCreated = onSignal(() => {
    if (!done) removeCreatedSync(created);
  });
  try {
    const chart = options.chart === undefined ? undefined : await claimOutputFile(options.chart, {
      command: "eval",
      option: "chart",
      force,
      inputs,
      recognize: isChartFile,
    });
    if (chart) claims.push(chart);
    const curves: OutputClaim[] = [];
    for (const file of options.sasrecCurve ?? []) {
      const claim = await claimOutputFile(file, {
        command: "eval",
        option: "sasrecCurve",
        force,
        inputs,
        recognize: file.endsWith(".svg") ? isChartFile : isCurveFile,
      });
      claims.push(claim);
      curves.push(claim);
    }
    const baselineNames = methods.flatMap((m) => "baseline" in m ? [m.baseline] : []);
    saved = await openSaved(options, baselineNames, { force, inputs }, created);
    // SASRec's item table too, for a model to start from (init --item-rows), and the whole
    // model, for a later eval to rank with (--sasrec-model); one file each for the whole run,
    // so not per shard.
    const savesSasrec = options.saveBaselines !== undefined && baselineNames.includes("sasrec") &&
      !shard;
    const claimSasrec = async (file: string, key: string) => {
      const claim = await claimOutputFile(join(options.saveBaselines!, file), {
        command: "eval",
        option: "saveBaselines",
        force,
        inputs,
        recognize: (path) => hasMarker(path, key),
      });
      claims.push(claim);
      return claim;
    };
    const itemTable = savesSasrec ? await claimSasrec(ITEM_TABLE_FILE, ITEM_TABLE_KEY) : undefined;
    const sasrecModel = savesSasrec
      ? await claimSasrec(SASREC_MODEL_FILE, SAVED_SASREC_KEY)
      : undefined;
    // Read before the baselines train (SASRec: minutes): a missing or malformed file is
    // refused at once.
    const read = await readMethodPredictions(data, { methods, progress });
    const curve: CurvePoint[] = [];
    const top = Math.max(baseline.top, ...ks);
    const baselines = await loadBaselines(
      data,
      baselineNames,
      {
        ...baseline,
        top,
        seed,
        sasrec: { ...options.sasrec, onEpoch: (point) => curve.push(point) },
        protocol: options.protocol,
        file: await splitFile(data, options.split),
      },
      progress,
      options.split as Split,
    );
    const sources: MethodSource[] = methods.map((m) =>
      "baseline" in m ? { name: m.name, predictor: baselines.get(m.baseline)! } : m
    );
    const select = new RecordSelection(data.manifest, { sample: options.sample, shard });
    const report = await evaluate(data, {
      read,
      select: select.narrows ? select.has : undefined,
      sample: options.sample,
      split: options.split,
      protocol: options.protocol,
      ks,
      tasks: options.tasks,
      methods: sources,
      strict: options.strict,
      progress,
      onPrediction: saved.size === 0
        ? undefined
        : (name, line, index) => saved.get(name)!.write([line], [index]),
    });
    // Every output is written out first and renamed into place only then, so that a fault in
    // the last of them (a full disk at the item table) leaves none of the run's files behind.
    for (const file of saved.values()) await file.finish();
    if (itemTable) {
      const sasrec = baselines.get("sasrec") as SasrecBaseline;
      const ids = data.entities.filter((e) => e.kind === "item").map((e) => e.id);
      const table = sasrec.model.weights.get(sasrecNames.items)!;
      // A fault names the table's own path, not the temporary written first.
      const path = join(options.saveBaselines!, ITEM_TABLE_FILE);
      await withIo(
        path,
        "cannot write SASRec's item table",
        () => writeItemTable(itemTable.tmp, table, ids),
      ).catch((error) => Promise.reject(temporaryRenamed(error, itemTable.tmp, path)));
    }
    if (sasrecModel) {
      const sasrec = baselines.get("sasrec") as SasrecBaseline;
      const path = join(options.saveBaselines!, SASREC_MODEL_FILE);
      await withIo(
        path,
        "cannot write SASRec's model",
        () => writeSavedSasrec(sasrecModel.tmp, sasrec.model, sasrec.saved),
      ).catch((error) => Promise.reject(temporaryRenamed(error, sasrecModel.tmp, path)));
    }
    if (chart) {
      await withIo(
        options.chart!,
        "cannot write the chart",
        () => Deno.writeTextFile(chart.tmp, reportChart(report)),
      );
    }
    for (const [i, file] of (options.sasrecCurve ?? []).entries()) {
      const text = file.endsWith(".svg") ? curveChart(curve) : curveJsonl(curve);
      await withIo(file, "cannot write the curve", () => Deno.writeTextFile(curves[i].tmp, text));
    }
    const digest = shard ? await digestDataset(options.data) : {};
    for (const [name, file] of saved) {
      const run = baselineRunIdentity({
        ...baseline,
        baseline: name,
        data: digest,
        split: options.split,
        protocol: options.protocol,
        tasks: options.tasks ?? EVAL_TASKS,
        top,
        seed,
        settings: ownSettings(name, options, seed, savedInfo),
        sample: options.sample,
      });
      await file.commit({
        kind: "baseline",
        run,
        name: `${name}.jsonl`,
        records: report.splitRecords,
      });
    }
    for (const claim of claims) await claim.commit();
    done = true;
    return report;
  } finally {
    for (const file of saved.values()) await file.close();
    for (const claim of claims) await claim.close();
    forgetCreated();
    if (!done) await removeCreated(created);
  }
}
