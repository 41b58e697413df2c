/**
 * An inference run: the selected records of one split of a dataset answered by a model (and an
 * optional adapter), one JSON line per record written through a claimed output (or a shard's
 * part with its sidecar). What `infer` runs; the decoding itself is lib/generate/infer.ts, the
 * selection lib/data/selection.ts and the output lib/shard/part_writer.ts.
 *
 * @module
 */

import { basename, join } from "node:path";
import { buildPool } from "../collate/pool.ts";
import {
  checkValidSplit,
  type Dataset,
  itemTokenMode,
  openDataset,
  readNumberedRecords,
  readRecords,
} from "../data/dataset.ts";
import { type AnswerKind, answerOf, tasksAnswering } from "../data/tasks.ts";
import { RecordSelection } from "../data/selection.ts";
import type { Split, Task, TextRecord } from "../data/types.ts";
import { inputError, OptionError } from "../errors.ts";
import { isPredictionsFile } from "../eval/predictions.ts";
import { pathExists } from "../io/fs.ts";
import { inferRunIdentity } from "../shard/identity.ts";
import { PartWriter } from "../shard/part_writer.ts";
import type { Shard } from "../shard/shard.ts";
import type { Device } from "../runtime/devices.ts";
import {
  checkRerankSoftmax,
  checkTrieSoftmax,
  DEFAULT_PREDICT,
  INFER_TASKS,
  PREDICT_COUNTS,
  type PredictOptions,
  Predictor,
  recordIndexOf,
} from "./infer.ts";
import { type InferenceDecoder, loadForInference } from "./load.ts";
import {
  DEFAULT_RERANK_WEIGHT,
  firstStageOf,
  type FirstStageRanking,
  readFirstStage,
} from "./rerank.ts";
import type { QuantBits } from "../model/quantize.ts";

/**
 * Records read (and answered) together, in batches: many full batches of each kind (each kind
 * leaves one partial batch per window), in order of prompt length, so little padding.
 */
const WINDOW_BATCHES = 64;

/**
 * Options of {@linkcode runInference}: where to read and write, what to answer, and the decoding
 * options of {@linkcode PredictOptions} (defaults in `DEFAULT_PREDICT`; the length comes from the
 * model). Not `forcedRuns`: a run's output does not depend on its batches (so shards merge into
 * the unsharded output byte for byte), and forced runs would make the last digits of scores do so.
 */
export interface InferRunOptions
  extends Omit<PredictOptions, "maxLength" | "forcedRuns" | "rerank"> {
  /**
   * Item tasks: rerank a first stage's candidates (rerank.ts): its predictions file, the model's
   * weight in the fusion (default DEFAULT_RERANK_WEIGHT) and how many candidates of each record
   * (default: all the file gives; counted after `excludeSeen` left the history out, as the
   * tuning counts them). A selected item record the file lacks is refused before the model loads.
   */
  rerank?: { file: string; weight?: number; top?: number };
  /** Model directory. */
  model: string;
  /** LoRA adapter directory, merged into the weights at load. */
  adapter?: string;
  /** Dataset directory written by textualize. */
  data: string;
  /** Where the predictions go (`-`: stdout); a shard writes its part of it. */
  out: string;
  /** Replace `out` even when it does not hold predictions. */
  force?: boolean;
  /** The split answered. */
  split: Split;
  /**
   * Tasks to answer (default: every task, or with `templates` the tasks of those templates).
   * Each task given must have one of `templates` when they are given.
   */
  tasks?: readonly string[];
  /** Only these template ids (each of one of `tasks`). */
  templates?: readonly string[];
  /** Answer only the first N selected records (of every shard together). */
  limit?: number;
  /** Only the records of a seeded sample of about `size` users. */
  sample?: { size: number; seed: number };
  /** Only the records of this shard's users, into its part with a sidecar. */
  shard?: Shard;
  /** Where the model runs (default: auto, CUDA, then WebGPU, then the CPU). */
  device?: Device;
  /** Intra-op threads of each decoder (default: every core, shared among the workers). */
  threads?: number;
  /** Decoders that answer batches at once (default `auto`: lib/generate/open_decoders.ts). */
  workers?: number | "auto";
  /** Weight-only quantization of the linear modules, 4 or 8 bits (default: float). */
  quantize?: QuantBits;
  /** A phase or progress line (replaced by the next). */
  onProgress?: (message: string) => void;
  /** A line worth keeping (what is answered, with what). */
  onNote?: (message: string) => void;
  /** A warning (not progress: shown even when progress is not). */
  onWarning?: (message: string) => void;
}

/** What a run did. */
export interface InferRunSummary {
  /** The file written (the part of a shard), or `-`. */
  out: string;
  /** Records answered. */
  records: number;
  /** Where the model ran. */
  device: string;
  /** The tasks answered (`tasks`, narrowed by `templates`). */
  tasks: readonly string[];
}

/**
 * Everything that can be wrong with the options and the dataset, found before anything is
 * written. Returns the split file, the item search's top-k and beams, and the tasks answered.
 */
async function checkOptions(options: InferRunOptions, data: Dataset) {
  for (const key of PREDICT_COUNTS) {
    const value = options[key];
    if (value !== undefined && !(Number.isInteger(value) && value >= 1)) {
      throw new OptionError(key, (name) => `${name} must be a whole number >= 1 (got ${value})`);
    }
  }
  const known = new Map((data.manifest.templates ?? []).map((t) => [t.id, t.task]));
  const tasks = options.tasks ?? INFER_TASKS;
  for (const id of options.templates ?? []) {
    if (!known.has(id)) {
      throw new OptionError(
        "templates",
        (name) =>
          `${name} "${id}" is not a template of ${join(options.data, "manifest.json")} ` +
          `(${[...known.keys()].join(", ")})`,
      );
    }
    if (answerOf(known.get(id)!) === null) {
      // A pretraining document's template (profile): no record of it has an answer.
      throw new OptionError(
        "templates",
        (name) =>
          `${name} "${id}" is a ${known.get(id)} template, which has no answer to predict ` +
          `(infer answers ${INFER_TASKS.join(", ")})`,
      );
    }
    if (!tasks.includes(known.get(id)!)) {
      throw new OptionError(
        "templates",
        (name, nameOf) =>
          `${name} "${id}" is a ${known.get(id)} template, not in ${nameOf("tasks")}`,
      );
    }
  }
  const answered = answeredTasks(options, known);
  checkApplicable(options, answered);
  const splitFile = join(options.data, `${options.split}.jsonl`);
  if (!(await pathExists(splitFile))) {
    throw inputError(
      splitFile,
      undefined,
      `split "${options.split}" does not exist in this dataset`,
    );
  }
  // A refit's validation items are training data: eval would refuse what this run writes.
  checkValidSplit(data, options.split, options.sample);
  const protocol = options.protocol ?? DEFAULT_PREDICT.protocol;
  const topK = options.topK ?? DEFAULT_PREDICT.topK;
  // The item search returns at most one item per beam: by default, enough beams for topK; fewer
  // beams than topK could not give the items asked for.
  const beams = options.beams ?? Math.max(DEFAULT_PREDICT.beams, topK);
  // Only a beam search over titles has beams: not ratings or text, not a rerank of a first
  // stage's candidates, not item tokens (one step ranks every item).
  const searches = protocol === "full" && !options.rerank && itemTokenMode(data) === "none" &&
    answered.some((task) => answerOf(task) === "item");
  const itemAnswers = answered.some((task) => answerOf(task) === "item");
  if (protocol === "sampled" && itemAnswers && options.split === "train") {
    // Candidate lists are drawn for valid and test only (candidates.jsonl): found after the
    // model loaded, the first item record would stop the run.
    throw new OptionError(
      "protocol",
      (name, nameOf) =>
        `${name} sampled ranks each record's candidates, and ${nameOf("split")} train has ` +
        "none (candidates.jsonl lists valid and test): use the full protocol",
    );
  }
  if (options.beams !== undefined && itemAnswers && !searches) {
    // Beams would do nothing: say what ranks the items instead.
    const how = options.rerank
      ? "the first stage's candidates are reranked"
      : protocol !== "full"
      ? "the record's candidates are ranked"
      : "each item's own token ranks every item in one step";
    throw new OptionError(
      "beams",
      (name) => `${name} applies to the beam search over titles; here ${how}`,
    );
  }
  if (searches && beams < topK) {
    throw new OptionError(
      "topK",
      (name, nameOf) =>
        `${name} ${topK} needs at least as many ${nameOf("beams")} (got ${beams}): the search ` +
        `returns one item per beam`,
    );
  }
  if (options.rerank) {
    if (protocol !== "full") {
      throw new OptionError(
        "rerank",
        (name, nameOf) =>
          `${name} reranks a first stage's ranking over all items (${nameOf("protocol")} full)`,
      );
    }
    const weight = options.rerank.weight ?? DEFAULT_RERANK_WEIGHT;
    if (!(weight >= 0 && weight <= 1)) {
      throw new OptionError("rerankWeight", (name) => `${name} must be in [0, 1] (got ${weight})`);
    }
    const top = options.rerank.top;
    if (top !== undefined && !(Number.isInteger(top) && top >= 1)) {
      throw new OptionError(
        "rerankTop",
        (name) => `${name} must be a whole number >= 1 (got ${top})`,
      );
    }
    if (!(await pathExists(options.rerank.file))) {
      throw inputError(
        options.rerank.file,
        undefined,
        "the first stage's predictions are not there",
      );
    }
  }
  checkTrieSoftmax(protocol, options.trieSoftmax);
  // Found by the predictor too, but only once the model has loaded (minutes for a large one).
  checkRerankSoftmax({
    rerank: options.rerank !== undefined,
    trieSoftmax: options.trieSoftmax,
    itemTokens: itemTokenMode(data) !== "none",
  });
  // Read before the model loads (minutes for a large one): a bad first stage is refused at once.
  // Its items are numbered as the pool numbers them: the dataset's items in entities.json order.
  const items = data.entities.filter((e) => e.kind === "item");
  // Every candidate is kept: `rerank.top` counts them after `excludeSeen` (the Predictor cuts).
  const stage = options.rerank && await readFirstStage(options.rerank.file, {
    ids: items.map((e) => e.id),
    index: new Map(items.map((e, i) => [e.entity, i])),
  });
  if (options.rerank && stage) await checkFirstStageCovers(options, data, stage);
  return { splitFile, protocol, topK, beams, answered, stage };
}

/** The records of the split a run selects (before its limit), as {@linkcode answerSplit} reads. */
function selectionOf(options: InferRunOptions, data: Dataset): RecordSelection {
  return new RecordSelection(data.manifest, {
    tasks: options.tasks ?? INFER_TASKS,
    templates: options.templates,
    sample: options.sample,
    shard: options.shard,
  });
}

/**
 * Refuses, before the model loads, a first stage lacking an item record the run answers (the
 * records {@linkcode answerSplit} would give the predictor): found there, it would stop the run
 * after the model loaded and every earlier window was answered.
 */
async function checkFirstStageCovers(
  options: InferRunOptions,
  data: Dataset,
  stage: ReadonlyMap<string, FirstStageRanking>,
): Promise<void> {
  const select = selectionOf(options, data);
  const limit = options.limit ?? Infinity;
  let selected = 0;
  for await (const record of readRecords(data, options.split)) {
    if (selected >= limit) break;
    if (!select.wanted(record)) continue;
    selected++;
    if (!select.inShard(record) || answerOf(record.task) !== "item") continue;
    firstStageOf(stage, record.id, options.rerank!.file);
  }
}

/**
 * The tasks a run answers: `tasks` (default every task), narrowed by `templates` to the tasks of
 * those templates. A task given by name with none of the templates given is refused: it would
 * answer nothing without a word.
 */
function answeredTasks(
  options: InferRunOptions,
  known: ReadonlyMap<string, string>,
): readonly string[] {
  const tasks = options.tasks ?? INFER_TASKS;
  if (options.templates === undefined) return tasks;
  const chosen = new Set(options.templates.map((id) => known.get(id)));
  if (options.tasks !== undefined) {
    for (const task of options.tasks) {
      if (chosen.has(task)) continue;
      const its = [...known].filter(([, t]) => t === task).map(([id]) => id);
      throw new OptionError(
        "tasks",
        (name, nameOf) =>
          `${name} has ${task}, but none of ${nameOf("templates")} is a ${task} template ` +
          `(${its.join(", ") || "the dataset has none"}): no ${task} record would be answered`,
      );
    }
  }
  return tasks.filter((task) => chosen.has(task));
}

/** The options that configure one kind of answer, and the kind: given alone, they do nothing. */
const OPTIONS_OF_ANSWER = {
  item: ["protocol", "topK", "beams", "excludeSeen", "trieSoftmax", "rerank"],
  text: ["maxNewTokens", "textBeams"],
} as const satisfies Partial<Record<AnswerKind, readonly (keyof InferRunOptions)[]>>;

/**
 * Refuses an option of item or text answers (given: not undefined or false) when the run answers
 * no task of that kind: the run would ignore it, where the user expected it to act.
 */
function checkApplicable(options: InferRunOptions, answered: readonly string[]): void {
  for (const [kind, names] of Object.entries(OPTIONS_OF_ANSWER)) {
    if (answered.some((task) => answerOf(task) === kind)) continue;
    const given = names.find((name) => options[name] !== undefined && options[name] !== false);
    if (given === undefined) continue;
    const tasks = tasksAnswering(kind as AnswerKind).join(", ");
    throw new OptionError(
      given,
      (name) =>
        `${name} applies to ${kind} tasks (${tasks}); this run answers ` +
        `${answered.join(", ") || "no task"}`,
    );
  }
}

/**
 * Reads the split and answers the selected records (of this shard) a window at a time. Returns
 * the records answered and the number of records in the split (the merge's keys).
 */
async function answerSplit(run: {
  options: InferRunOptions;
  data: Dataset;
  select: RecordSelection;
  predictor: Predictor;
  out: PartWriter;
  total: number;
  startedAt: number;
}): Promise<{ done: number; read: number }> {
  const { options, data, select, predictor, out, total } = run;
  const limit = options.limit ?? Infinity;
  const windowSize = (options.batchSize ?? DEFAULT_PREDICT.batchSize) * WINDOW_BATCHES;
  let done = 0;
  let selected = 0;
  let index = 0;
  let window: TextRecord[] = [];
  let keys: number[] = [];
  let lines: number[] = [];
  const report = (answered: number) => {
    const seconds = Math.max((performance.now() - run.startedAt) / 1000, 1e-9);
    const rate = answered / seconds;
    options.onProgress?.(`${answered}/${total || "?"} records, ${rate.toFixed(2)} records/s`);
  };
  const flush = async () => {
    if (window.length === 0) return;
    // Reported batch by batch: a window of records takes minutes on a large model.
    let answers;
    try {
      answers = await predictor.predict(window, (n) => report(done + n));
    } catch (error) {
      // A malformed record: said with its file and line.
      const at = recordIndexOf(error);
      if (at === undefined) throw error;
      const file = join(data.dir, `${options.split}.jsonl`);
      throw inputError(file, lines[at], (error as Error).message);
    }
    await out.write(answers, keys);
    done += window.length;
    window = [];
    keys = [];
    lines = [];
    report(done);
  };
  // The limit counts the records of every shard, so the shards of a limited run answer together
  // what the unsharded run answers; a shard reads the whole split to know the number of records
  // (the keys of the merge).
  for await (const { line, record } of readNumberedRecords(data, options.split)) {
    const key = index++;
    if (selected >= limit) {
      if (options.shard) continue;
      break;
    }
    if (!select.wanted(record)) continue;
    selected++;
    if (!select.inShard(record)) continue;
    window.push(record);
    keys.push(key);
    lines.push(line);
    if (window.length >= windowSize) await flush();
  }
  await flush();
  return { done, read: index };
}

/** Releases every decoder, then throws the first failure, if any. */
async function releaseAll(decoders: readonly InferenceDecoder[]): Promise<void> {
  const released = await Promise.allSettled(decoders.map((d) => d.release()));
  const failed = released.find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
}

/**
 * Answers the selected records of a split with a model and writes the predictions (see the
 * module). The output is claimed before the model loads, so a second run on it, or a file of the
 * user's, is refused at once; it is renamed into place only when complete.
 *
 * @example
 * ```ts
 * const summary = await runInference({
 *   model: "runs/tiny",
 *   data: "runs/beauty",
 *   out: "runs/pred.jsonl",
 *   split: "test",
 *   tasks: ["sequential"],
 * });
 * summary.records; // records answered
 * ```
 */
export async function runInference(options: InferRunOptions): Promise<InferRunSummary> {
  const startedAt = performance.now();
  const data = await openDataset(options.data);
  const { splitFile, protocol, topK, beams, answered, stage } = await checkOptions(options, data);
  const { shard } = options;
  const out = await PartWriter.open(options.out, {
    command: "infer",
    force: options.force,
    shard,
    inputs: [
      options.model,
      options.adapter,
      options.data,
      splitFile,
      options.rerank?.file,
      ...["manifest.json", "entities.json", "candidates.jsonl"].map((f) => join(options.data, f)),
    ],
    recognize: isPredictionsFile,
  });
  try {
    options.onProgress?.(
      `loading ${options.model}${options.adapter ? ` + ${options.adapter}` : ""}`,
    );
    const loaded = await loadForInference({
      model: options.model,
      adapter: options.adapter,
      device: options.device,
      threads: options.threads,
      workers: options.workers ?? "auto",
      onWarning: options.onWarning,
      quantize: options.quantize ? { bits: options.quantize } : undefined,
      data,
    });
    const { tokenizer, decoder, decoders } = loaded;
    try {
      const pool = buildPool(tokenizer, data.entities, {
        vocabSize: loaded.vocabSize,
        file: join(options.data, "entities.json"),
        maxLength: loaded.maxLength,
      });
      const rerank = options.rerank && stage && {
        stage,
        file: options.rerank.file,
        weight: options.rerank.weight ?? DEFAULT_RERANK_WEIGHT,
        top: options.rerank.top,
      };
      const predictor = new Predictor({ model: decoders, tokenizer, pool }, {
        rerank,
        protocol,
        topK,
        beams,
        excludeSeen: options.excludeSeen,
        trieSoftmax: options.trieSoftmax,
        batchSize: options.batchSize,
        maxNewTokens: options.maxNewTokens,
        textBeams: options.textBeams,
        maxLength: loaded.maxLength,
        ratingValues: data.manifest.rating_values ?? [],
      });
      const select = selectionOf(options, data);
      const counts = data.manifest.counts?.[options.split] ?? {};
      const total = select.expected(counts, options.limit) ?? 0;
      const adapterNote = loaded.adapter ? ` + adapter ${loaded.adapter.dir}` : "";
      options.onNote?.(
        `${options.model}${adapterNote} on ${decoder.device}` +
          (decoders.length > 1 ? ` (${decoders.length} decoders in workers)` : "") +
          `; ${pool.items.items.length} items; ` +
          `${options.split}: ${total ? (options.sample ? `about ${total}` : total) : "?"} records`,
      );
      const answerRun = { options, data, select, predictor, out, total, startedAt };
      const { done, read } = await answerSplit(answerRun);
      if (done === 0 && shard === undefined) {
        // Not an error (a script may select nothing on purpose), but eval cannot score it.
        options.onWarning?.(
          `no record of ${options.split}.jsonl was selected (${read} read): the predictions file ` +
            `is empty`,
        );
      }
      const run = shard === undefined ? undefined : await inferRunIdentity({
        model: options.model,
        adapter: loaded.adapter?.dir,
        data: options.data,
        split: options.split,
        tasks: options.tasks ?? INFER_TASKS,
        templates: options.templates,
        protocol,
        topK,
        beams,
        excludeSeen: options.excludeSeen ?? DEFAULT_PREDICT.excludeSeen,
        trieSoftmax: options.trieSoftmax ?? DEFAULT_PREDICT.trieSoftmax,
        quantize: options.quantize,
        rerank: options.rerank && {
          file: options.rerank.file,
          weight: options.rerank.weight ?? DEFAULT_RERANK_WEIGHT,
          top: options.rerank.top ?? null,
        },
        limit: options.limit ?? Infinity,
        maxNewTokens: options.maxNewTokens ?? DEFAULT_PREDICT.maxNewTokens,
        textBeams: options.textBeams ?? DEFAULT_PREDICT.textBeams,
        sample: options.sample,
        textPrefix: [...loaded.tokenizer.prefix],
      });
      await out.commit(
        run && {
          kind: "infer",
          run,
          name: basename(options.out),
          records: read,
          writtenBy: { device: decoder.device, threads: options.threads ?? null },
        },
      );
      // The tasks answered: those the dataset has (textualize skips a task its input cannot give).
      const has = (task: string) => data.manifest.tasks?.[task as Task]?.status !== "skipped";
      return { out: out.path, records: done, device: decoder.device, tasks: answered.filter(has) };
    } finally {
      // Every decoder is released even if one fails to (a worker left open keeps the process).
      await releaseAll(decoders);
    }
  } finally {
    await out.close();
  }
}
