/**
 * One `eval` run: scores every method (prediction files and predictors such as the baselines) on
 * one split of a dataset under one protocol, streaming the split's records once. Files are read
 * here; the scoring itself is score.ts, the output shapes report.ts. Predictors are built by their
 * own modules (lib/baselines) and handed in, so this module depends on none of them.
 *
 * Checks, each an InputError naming the file and line: a split that does not exist; a
 * predictions file that is missing or has a malformed line, a second line for the same record,
 * a line for a record id the split does not have, or a `task` that contradicts the record; only
 * empty predictions files and nothing else to score. Records of the split that a method has no
 * prediction for are not scored: they are counted (`missing` per task) and reported as a warning,
 * or are an error with `strict`; an empty predictions file beside other methods is a warning.
 *
 * Every method is scored on the same records: a record of a task that a predictions file answers
 * (it has predictions of that task: by its lines' `task`, or the task of the records their ids
 * name) but not for this record (a sampled or `--limit`ed run) is scored for no method, the
 * baselines included, and the report says so (`notes`). Lists that make a comparison unequal
 * (shorter than the largest k, or made for the other protocol) are warned about (lists.ts).
 *
 * @module
 */

import { join } from "node:path";
import { InputError, inputError, OptionError, optionName } from "../errors.ts";
import type { Dataset } from "../data/dataset.ts";
import { checkValidSplit, readRecords, splitHolding } from "../data/dataset.ts";
import { type Split, SPLITS, type TextRecord } from "../data/types.ts";
import type { Progress } from "../io/progress.ts";
import { EntityIndex } from "./entities.ts";
import { ListChecks } from "./lists.ts";
import {
  type PredictionLine,
  readPredictions,
  type StoredPrediction,
  storePrediction,
} from "./predictions.ts";
import type { Protocol } from "./protocol.ts";
import {
  EVAL_TASKS,
  type EvalTask,
  type MethodResult,
  MethodScorer,
  prepareRecord,
  type ScoreOptions,
} from "./score.ts";
import { pathExists } from "../io/fs.ts";

/** A method that predicts records as it goes (a baseline, lib/baselines). */
export interface Predictor {
  /** The task families it answers; its other records are not scored for it. */
  readonly tasks: readonly EvalTask[];
  /** Returns the prediction line for `record`, or undefined when it has none. */
  predict(record: TextRecord): PredictionLine | undefined;
  /**
   * Why it can answer no record of `tasks` (some of its own) when it cannot, naming the file at
   * fault (retrieval: no training text of them); undefined when it can answer some.
   */
  unanswerable?(tasks: readonly EvalTask[]): string | undefined;
}

/**
 * A method to score: a predictions file (or several files whose predictions together make the
 * method, such as the parts of a sharded run), or a predictor.
 */
export type MethodSource =
  | { name: string; predictions: string | readonly string[] }
  | { name: string; predictor: Predictor };

/** The files of a method read from predictions, as a list. */
function filesOf(method: { predictions: string | readonly string[] }): readonly string[] {
  return typeof method.predictions === "string" ? [method.predictions] : method.predictions;
}

/** Options of {@linkcode evaluate}. */
export interface EvaluateOptions {
  /** The split to score (`test`, `valid`). */
  split: string;
  /** The ranking protocol: `full` or `sampled`. */
  protocol: Protocol;
  /** Cut-offs for HR@k and NDCG@k. */
  ks: readonly number[];
  /** In report order; names must be distinct. */
  methods: readonly MethodSource[];
  /** Score only these task families; default all. */
  tasks?: readonly EvalTask[];
  /** Missing predictions are an error instead of a warning. */
  strict?: boolean;
  /**
   * The seeded user sample `select` draws, if any: on a refit dataset that kept tuning users out
   * (textualize --tune-users), the validation split may be scored on them (or a smaller sample
   * of the same seed, which is inside it).
   */
  sample?: { size: number; seed: number };
  /** Reports records read on stderr. */
  progress?: Progress;
  /**
   * Receives every prediction line a predictor makes (to save them), in record order, with the
   * index of its record in the split file.
   */
  onPrediction?: (
    method: string,
    line: PredictionLine,
    index: number,
  ) => void | Promise<void>;
  /**
   * Scores only the records it accepts (a shard's users); the others are skipped, not missing.
   * Default: every record.
   */
  select?: (record: TextRecord) => boolean;
  /**
   * The predictions files already read by {@linkcode readMethodPredictions} (a caller that trains
   * baselines first reads them before, so a bad file is refused before the training).
   */
  read?: MethodPredictions;
}

/** The predictions of every method read from files, by method name, then by record id. */
export type MethodPredictions = Map<string, Map<string, StoredPrediction>>;

/** The result of one run. */
export interface EvalReport {
  /** The protocol the run scored under. */
  protocol: Protocol;
  /** The split it scored. */
  split: string;
  /** Results by method name, in the order given. */
  methods: Record<string, MethodResult>;
  /** One line per method with missing predictions. */
  warnings: string[];
  /** What the reader should know about which records were scored (a restriction). */
  notes: string[];
  /** Records scored (for every method), by task. */
  scored: Partial<Record<EvalTask, number>>;
  /** Records in the split file (scored or not). */
  splitRecords: number;
}

/**
 * Returns the path of `split`'s records in `data`; an InputError naming the splits there are
 * when it has none.
 */
export async function splitFile(data: Dataset, split: string): Promise<string> {
  return join(data.dir, `${await checkSplit(data, split)}.jsonl`);
}

async function checkSplit(data: Dataset, split: string): Promise<Split> {
  const present: string[] = [];
  for (const s of SPLITS) if (await pathExists(join(data.dir, `${s}.jsonl`))) present.push(s);
  if (!present.includes(split)) {
    throw inputError(
      data.dir,
      undefined,
      `no split "${split}" (this dataset has: ${present.join(", ") || "none"})`,
    );
  }
  return split as Split;
}

/**
 * Scores `options.methods` on one split of `data`; returns the results of every method.
 *
 * @example
 * ```ts
 * import { openDataset } from "../data/dataset.ts";
 *
 * const data = await openDataset("runs/beauty");
 * const report = await evaluate(data, {
 *   split: "test", protocol: "full", ks: [1, 5, 10],
 *   methods: [{ name: "model", predictions: "runs/pred.jsonl" }],
 * });
 * report.methods.model.sequential?.metrics["NDCG@10"];
 * ```
 */
export async function evaluate(data: Dataset, options: EvaluateOptions): Promise<EvalReport> {
  const split = await checkSplit(data, options.split);
  checkValidSplit(data, split, options.sample);
  const recordsFile = join(data.dir, `${split}.jsonl`);
  const pool = new EntityIndex(data.entities);
  const scoreOptions: ScoreOptions = {
    protocol: options.protocol,
    ks: [...new Set(options.ks)].sort((a, b) => a - b),
    ratingScale: data.manifest.rating_scale ?? null,
    heldOut: new Set((data.manifest.templates ?? []).filter((t) => t.heldOut).map((t) => t.id)),
  };

  const files = options.read ?? await readMethodPredictions(data, options);
  // An empty file is a warning beside other methods, and an error when there is nothing else.
  const empty = new Set(
    options.methods.flatMap((m) =>
      "predictions" in m && files.get(m.name)!.size === 0 ? [m.name] : []
    ),
  );
  if (empty.size > 0 && empty.size === options.methods.length) {
    const given = options.methods.flatMap((m) => "predictions" in m ? filesOf(m) : []);
    throw inputError(given.join(", "), undefined, "no prediction in it: nothing to score");
  }

  const wanted = options.tasks ?? EVAL_TASKS;
  const scorers = options.methods.map((method) => {
    const answers: readonly string[] = "predictor" in method ? method.predictor.tasks : EVAL_TASKS;
    return new MethodScorer(pool, scoreOptions, wanted.filter((t) => answers.includes(t)));
  });
  const used = options.methods.map(() => new Set<string>());
  // The tasks each predictions file answers: a record of such a task must be in every such file
  // to be scored.
  const answers = await answeredTasks(data, split, options.methods, files);
  const scored: Partial<Record<EvalTask, number>> = {};
  const unanswered = new Map<string, number>(); // by method: records it lacked, others had
  let restricted = 0;
  const restrictedTasks = new Set<string>(); // tasks of the records scored for no method
  const present = new Set<string>(); // tasks of the records selected
  let records = 0;
  let index = -1;
  // Sampled records whose candidate list is the target alone (textualize --negatives 0, or a
  // user who left no item unseen): every method ranks them first, so HR/NDCG say nothing.
  let onlyTarget = 0;
  // Per method, of the full-ranking item records with a history: how many it answered with an
  // item of that history in its top k (see historyNote).
  const rankedSeen = options.methods.map(() => 0);
  const ranked = options.methods.map(() => 0); // of those records, how many it ranked
  const topK = Math.max(...scoreOptions.ks);
  const lists = new ListChecks(options.methods.map((m) => m.name), {
    protocol: options.protocol,
    maxK: topK,
    items: pool.items.length,
  });
  for await (const record of readRecords(data, split)) {
    index++;
    if (options.select && !options.select(record)) {
      // A record of the split outside the sample or shard: its predictions are not scored, and
      // not an error either (a full run's file scored on a sample).
      for (const [m, method] of options.methods.entries()) {
        if (!("predictions" in method)) continue;
        const prediction = files.get(method.name)!.get(record.id);
        if (prediction) {
          checkTask(record, prediction, method);
          used[m].add(record.id);
        }
      }
      continue;
    }
    records++;
    present.add(record.task);
    options.progress?.update(`${records} ${split} records scored`);
    const prepared = (wanted as readonly string[]).includes(record.task)
      ? prepareRecord(record, pool, scoreOptions, recordsFile)
      : undefined;
    if (prepared?.candidates !== undefined && prepared.candidates.length <= 1) onlyTarget++;
    // Scored for every method or for none: the files that answer this task must all have it.
    const lacking = options.methods.filter((method, m) =>
      "predictions" in method && answers[m]!.has(record.task) &&
      !files.get(method.name)!.has(record.id)
    );
    if (prepared && lacking.length > 0) {
      restricted++;
      restrictedTasks.add(prepared.task);
      for (const [m, method] of options.methods.entries()) {
        if (!("predictions" in method)) {
          // Scored for no method, but a baseline's saved predictions stay whole.
          const line = method.predictor.predict(record);
          if (line && options.onPrediction) await options.onPrediction(method.name, line, index);
          continue;
        }
        if (lacking.includes(method)) {
          scorers[m].add(prepared, undefined); // counted as missing
          unanswered.set(method.name, (unanswered.get(method.name) ?? 0) + 1);
        } else if (files.get(method.name)!.has(record.id)) {
          checkTask(record, files.get(method.name)!.get(record.id)!, method);
          used[m].add(record.id);
        }
      }
      continue;
    }
    if (prepared) scored[prepared.task] = (scored[prepared.task] ?? 0) + 1;
    const history = prepared && prepared.target >= 0 && prepared.candidates === undefined &&
        record.history?.length
      ? new Set(record.history.map((h) => pool.id(h)).filter((id) => id >= 0))
      : undefined;
    // Under the full protocol too, to tell the lists a sampled run wrote.
    const candidates = prepared?.candidates ?? (prepared && prepared.target >= 0 &&
        Array.isArray(record.candidates)
      ? Int32Array.from(record.candidates.map((c) => pool.id(c)).filter((id) => id >= 0))
      : undefined);
    for (const [m, method] of options.methods.entries()) {
      let prediction: StoredPrediction | undefined;
      if ("predictions" in method) {
        prediction = files.get(method.name)!.get(record.id);
        if (prediction === undefined) {
          if (prepared) scorers[m].add(prepared, undefined);
          continue;
        }
        used[m].add(record.id);
        checkTask(record, prediction, method);
      } else {
        if (!prepared) continue;
        const line = method.predictor.predict(record);
        if (line && options.onPrediction) await options.onPrediction(method.name, line, index);
        prediction = line ? storePrediction(line, pool) : undefined;
      }
      if (prepared) scorers[m].add(prepared, prediction);
      if (prepared && prepared.target >= 0 && prediction) {
        lists.add(m, prediction.ranked, candidates, history?.size ?? 0);
      }
      if (history && prediction && prediction.ranked.length > 0) {
        ranked[m]++;
        if (prediction.ranked.subarray(0, topK).some((id) => history.has(id))) rankedSeen[m]++;
      }
    }
  }

  await checkAllUsed(data, split, options.methods, files, used);
  const report: EvalReport = {
    protocol: options.protocol,
    split,
    methods: {},
    warnings: [],
    notes: [],
    scored,
    splitRecords: index + 1,
  };
  if (restricted > 0) {
    // The records of the tasks the files answer; the others' are not restricted (each method
    // scores what it answers).
    let total = 0;
    for (const [task, count] of Object.entries(scored)) {
      if (answers.some((tasks) => tasks?.has(task))) total += count;
    }
    const which = [...unanswered.keys()].join(", ");
    report.notes.push(
      `every method is scored on the same ${total} ${split} record(s): ${which} lack(s) ` +
        `${restricted} record(s) of the tasks answered (a sampled or limited run), and those ` +
        `are scored for no method, the baselines included`,
    );
  }
  options.methods.forEach((method, m) => {
    report.methods[method.name] = scorers[m].result();
    const { warning, note } = missingWarning(
      method,
      report.methods[method.name],
      split,
      options.strict,
      // A task whose every record was left out for all (disjoint files) is not one it lacks.
      (task) =>
        answers[m]?.has(task) === true && restrictedTasks.has(task) && !scored[task as EvalTask],
    );
    if ("predictions" in method && empty.has(method.name)) {
      report.warnings.push(
        `${method.name}: no prediction in ${filesOf(method).join(", ")}: not scored`,
      );
    } else {
      if (warning) report.warnings.push(warning);
      if (note) report.notes.push(note);
    }
  });
  const anyScored = Object.values(report.methods).some((result) =>
    Object.values(result).some((task) => (task.metrics.count ?? 0) > 0)
  );
  if (!anyScored && !(records === 0 && options.select)) {
    throw nothingScored(recordsFile, { records, present }, options, restrictedTasks, answers);
  }
  if (onlyTarget > 0) report.warnings.push(noNegativesWarning(onlyTarget, split));
  report.warnings.push(...lists.warnings());
  const seenNote = historyNote(options.methods.map((m) => m.name), rankedSeen, ranked, topK);
  if (seenNote) report.notes.push(seenNote);
  options.progress?.done(`${records} ${split} records, ${options.methods.length} method(s)`);
  return report;
}

/**
 * A prediction whose `task` contradicts its record's is an InputError naming its file and line,
 * whether or not the record is scored (left out for every method, or outside a sample).
 */
function checkTask(
  record: TextRecord,
  prediction: StoredPrediction,
  method: { predictions: string | readonly string[] },
): void {
  if (prediction.task === undefined || prediction.task === record.task) return;
  throw inputError(
    prediction.file ?? filesOf(method).join(", "),
    prediction.line,
    `record "${record.id}" is a ${record.task} record, the prediction says ${prediction.task}`,
  );
}

/**
 * The tasks each predictions file answers, by method (undefined for a predictor): its lines'
 * `task`, and for a line that names none, the task of the record its id names (read from the
 * split, in one more pass that only such lines cost; an id the split lacks is checkAllUsed's).
 */
async function answeredTasks(
  data: Dataset,
  split: Split,
  methods: readonly MethodSource[],
  files: Map<string, Map<string, StoredPrediction>>,
): Promise<(Set<string> | undefined)[]> {
  const unnamed = new Map<Set<string>, Set<string>>(); // a method's tasks -> ids naming none
  const answers = methods.map((method) => {
    if (!("predictions" in method)) return undefined;
    const tasks = new Set<string>();
    const ids = new Set<string>();
    for (const [id, p] of files.get(method.name)!) {
      if (p.task === undefined) ids.add(id);
      else tasks.add(p.task);
    }
    if (ids.size > 0) unnamed.set(tasks, ids);
    return tasks;
  });
  if (unnamed.size > 0) {
    for await (const record of readRecords(data, split)) {
      for (const [tasks, ids] of unnamed) if (ids.has(record.id)) tasks.add(record.task);
    }
  }
  return answers;
}

/**
 * The note for methods that rank items of the user's history beside methods that never do (the
 * baselines leave it out by default): on data where nobody buys an item twice, such a comparison
 * is unequal, as it was in the demo before its model left the history out too.
 */
function historyNote(
  names: string[],
  rankedSeen: number[],
  ranked: number[],
  k: number,
): string | undefined {
  const shares = names.flatMap((name, m) => {
    if (rankedSeen[m] === 0) return [];
    const share = rankedSeen[m] / ranked[m];
    return [`${name} (${(100 * share).toFixed(share < 0.01 ? 2 : 0)}%)`];
  });
  const never = names.filter((_, m) => ranked[m] > 0 && rankedSeen[m] === 0);
  if (shares.length === 0 || never.length === 0) return undefined;
  return `${shares.join(", ")} rank(s) items of the user's history in the top ${k} of ` +
    `full-ranking records, ${never.join(", ")} never: the latter leave the history out ` +
    `(infer ${optionName("excludeSeen")} ranks the same way)`;
}

/**
 * Why a run scored no record for any method (an InputError naming the file at fault): the split
 * has no record, or none of the tasks asked; the predictions files share none of the tasks they
 * answer (two samples of other users); a predictor cannot answer the tasks it would (retrieval
 * without training texts of them); or no method answers the tasks asked (an OptionError). A
 * shard or sample that selects no record is not an error (an empty part).
 */
function nothingScored(
  recordsFile: string,
  { records, present }: { records: number; present: ReadonlySet<string> },
  options: EvaluateOptions,
  restrictedTasks: ReadonlySet<string>,
  answers: readonly (ReadonlySet<string> | undefined)[],
): Error {
  if (records === 0) return inputError(recordsFile, undefined, "no records: nothing to score");
  const names = options.methods.map((m) => m.name);
  if (restrictedTasks.size > 0) {
    const tasks = [...restrictedTasks];
    const files = names.filter((_, m) => tasks.some((t) => answers[m]?.has(t)));
    return inputError(
      recordsFile,
      undefined,
      `nothing scored: ${files.join(", ")} share no ${tasks.join(" or ")} record (every method ` +
        "is scored on the records all of them answer; score predictions of the same users, " +
        `e.g. infer runs with the same ${optionName("sampleUsers")} and ${
          optionName("sampleSeed")
        })`,
    );
  }
  const asked = options.tasks ?? EVAL_TASKS;
  const tasksOption = options.tasks ? ` (${optionName("tasks")} ${asked.join(",")})` : "";
  if (!asked.some((t) => present.has(t))) {
    const where = options.select ? " among the records selected" : "";
    return inputError(
      recordsFile,
      undefined,
      `no ${asked.join(" or ")} record${where}: nothing scored${tasksOption}`,
    );
  }
  // A predictor that would answer the tasks asked but cannot (retrieval with nothing to
  // retrieve from) says why: its own list of tasks says it answers them.
  const unable = options.methods.flatMap((method) => {
    if (!("predictor" in method)) return [];
    const tasks = method.predictor.tasks.filter((t) => asked.includes(t) && present.has(t));
    const why = tasks.length > 0 ? method.predictor.unanswerable?.(tasks) : undefined;
    return why ? [why] : [];
  });
  if (unable.length > 0) {
    return new InputError(`nothing scored${tasksOption}: ${unable.join("; ")}`);
  }
  const answered = options.methods.map((method, m) => {
    const tasks = "predictor" in method ? method.predictor.tasks : [...answers[m] ?? []];
    return `${method.name} answers ${tasks.length > 0 ? tasks.join(", ") : "none"}`;
  });
  return new OptionError(
    "tasks",
    (name) =>
      `nothing scored: no method answers the tasks asked (${name} ${asked.join(",")}; ` +
      `${answered.join("; ")})`,
  );
}

/** The warning for sampled records whose candidate list is the target alone. */
function noNegativesWarning(count: number, split: string): string {
  return `${count} ${split} record(s) have no negative candidates (the candidate list is the ` +
    `target alone): under ${optionName("protocol")} sampled every method ranks them first, so ` +
    `their HR@k and NDCG@k are 1 whatever the method (textualize ${optionName("negatives")} N ` +
    "sets the negatives)";
}

/**
 * The predictions of every method of `options` read from files, by method name, then by record
 * id: InputErrors for a missing file or a malformed line, naming it.
 *
 * @example
 * ```ts
 * import { openDataset } from "../data/dataset.ts";
 *
 * const data = await openDataset("runs/beauty");
 * const methods = [{ name: "model", predictions: "runs/pred.jsonl" }];
 * const read = await readMethodPredictions(data, { methods });
 * read.get("model")?.size; // records predicted
 * ```
 */
export async function readMethodPredictions(
  data: Dataset,
  options: {
    /** The methods; those of predictions files are read (a baseline's name is passed over). */
    methods: readonly (MethodSource | { name: string; baseline: string })[];
    progress?: Progress;
  },
): Promise<MethodPredictions> {
  const pool = new EntityIndex(data.entities);
  const files: MethodPredictions = new Map();
  for (const method of options.methods) {
    if (!("predictions" in method)) continue;
    const byId = new Map<string, StoredPrediction>();
    for (const file of filesOf(method)) {
      options.progress?.update(`reading ${file}`);
      await readPredictions(file, pool, file, byId);
    }
    files.set(method.name, byId);
  }
  return files;
}

/**
 * Every prediction read from a file must be for a record of the split: the first (by line) that
 * is not is an InputError, with a hint when another split holds that id.
 */
async function checkAllUsed(
  data: Dataset,
  split: Split,
  methods: readonly MethodSource[],
  files: Map<string, Map<string, StoredPrediction>>,
  used: readonly Set<string>[],
): Promise<void> {
  for (const [m, method] of methods.entries()) {
    if (!("predictions" in method)) continue;
    let first: [string, StoredPrediction] | undefined;
    for (const entry of files.get(method.name)!) {
      if (!used[m].has(entry[0]) && (!first || entry[1].line < first[1].line)) first = entry;
    }
    if (first) {
      const elsewhere = await splitHolding(data, first[0], split);
      const hint = elsewhere ? ` (it is a ${elsewhere} record; score the ${elsewhere} split)` : "";
      throw inputError(
        first[1].file ?? filesOf(method).join(", "),
        first[1].line,
        `unknown record id "${first[0]}": not in ${split}.jsonl${hint}`,
      );
    }
  }
}

/**
 * The warning for a method's records without a prediction (undefined when it has none), and a
 * note naming the tasks it answered no record of; with `strict`, an InputError instead.
 */
function missingWarning(
  method: MethodSource,
  result: MethodResult,
  split: string,
  strict: boolean | undefined,
  leftOutForAll: (task: string) => boolean,
): { warning?: string; note?: string } {
  // A task the method answered no record of (a rating baseline's file beside item tasks) is
  // said once, not counted record by record (strict still counts it).
  const tasks = Object.entries(result).filter(([k]) => !leftOutForAll(k));
  const none = tasks.filter(([, t]) => t.metrics.count === 0 && t.missing > 0).map(([k]) => k);
  const missing = tasks.reduce(
    (sum, [k, t]) => sum + (strict || !none.includes(k) ? t.missing : 0),
    0,
  );
  const noTask = none.length === 0 || strict
    ? ""
    : `${method.name}: no prediction for ${none.join(", ")} (not scored for ${
      none.length === 1 ? "it" : "them"
    })`;
  const note = noTask || undefined;
  if (missing === 0) return { note };
  if (strict) {
    const file = "predictions" in method ? filesOf(method).join(", ") : method.name;
    throw inputError(
      file,
      undefined,
      `${missing} ${split} record(s) have no prediction (strict: every record needs one)`,
    );
  }
  const where = "predictions" in method ? ` in ${filesOf(method).join(", ")}` : "";
  return {
    warning: `${method.name}: ${missing} ${split} record(s) have no prediction${where}; ` +
      `they are not scored (see "missing")`,
    note,
  };
}
