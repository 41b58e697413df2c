/**
 * `textualize` end to end: read an input in any supported format, plan the splits and the entity
 * pool, write `train.jsonl`, `valid.jsonl`, `test.jsonl`, `candidates.jsonl`, `entities.json` and
 * `manifest.json` into a directory that appears only when complete, and return a summary of what
 * was written.
 *
 * @module
 */

import { basename, join } from "node:path";
import { inputError, OptionError } from "../errors.ts";
import { temporaryRenamed } from "../io/atomic.ts";
import { claimOutputDir } from "../io/safe_output.ts";
import { removeOnSignal } from "../io/cleanup.ts";
import { isDatasetDir } from "./dataset.ts";
import {
  checkRequestedTasks,
  checkSplits,
  checkWindows,
  cutEntitiesWarning,
  type SplitChecks,
  splitChecks,
  windowWarning,
} from "./checks.ts";
import type { Progress } from "../io/progress.ts";
import { TextFileWriter } from "../io/text_writer.ts";
import { CandidateSampler } from "./candidates.ts";
import {
  buildManifest,
  countRecord,
  type Counts,
  describeSource,
  sharedManifest,
} from "./manifest.ts";
import { PartFileKeys, partManifest, refuseReplacingPart, sha256Hex } from "../shard/part.ts";
import { partPath, type Shard, ShardFilter } from "../shard/shard.ts";
import { COLUMN_OPTIONS, readInteractionLog, type ReadOptions } from "./readers/read.ts";
import type { InteractionLog } from "./log.ts";
import {
  type DatasetPlan,
  planDataset,
  type RecordOptions,
  type RecordStats,
  userRecords,
} from "./records.ts";
import type { Manifest, Split, Task, TextRecord } from "./types.ts";
import { SPLITS, TASKS } from "./types.ts";

/** One textualize run: what to read, how to build records, where to write. */
export interface TextualizeRun {
  /** How to read the input. */
  read: ReadOptions;
  /** How to build the records. */
  records: RecordOptions;
  /**
   * The dataset directory to create: replaced atomically when it exists and holds a dataset
   * textualize wrote (lib/io/safe_output.ts); anything else is refused unless `force`.
   */
  out: string;
  /**
   * Write only the records of the users of this shard, into `out` tagged with the shard
   * (`data-00002-of-00007`), with a `shard.json` sidecar for `recsysllm merge`. The entity pool
   * is the whole dataset's; the manifest is the whole dataset's too except the record counts and
   * the per-user skip counts, which are this shard's (so the directory describes itself, and the
   * merge adds them up).
   */
  shard?: Shard;
  /** Replace `out` even when textualize did not write it (`--force`). */
  force?: boolean;
  /**
   * The tasks were named (`--tasks`): one the input cannot give is an error, not a skipped task.
   */
  tasksNamed?: boolean;
  /** Progress on stderr; none when absent. */
  progress?: Progress;
  /**
   * Called with each warning: something in the input the dataset still holds but the user should
   * know (entities cut, a requested task without records, suspicious values). One line each.
   */
  onWarning?: (message: string) => void;
}

/** What a run wrote: the summary textualize prints as JSON. */
export interface TextualizeSummary {
  /** The dataset directory written. */
  out: string;
  /** Users in the dataset. */
  users: number;
  /** Items in the pool. */
  items: number;
  /** Interactions in the dataset. */
  interactions: number;
  /** Record counts by split, then task. */
  records: Record<string, Record<string, number>>;
  /** Task families skipped, with why. */
  skipped_tasks: Record<string, string>;
  /** Rows and users skipped on purpose, with why. */
  skipped: { reason: string; count: number }[];
}

/** The options that shaped the output, for the manifest (plain JSON, fixed key order). */
function manifestOptions(run: TextualizeRun, log: InteractionLog): Record<string, unknown> {
  const r = run.records;
  const columns = Object.fromEntries(
    COLUMN_OPTIONS.filter((k) => run.read[k] !== undefined).map((k) => [k, run.read[k]]),
  );
  return {
    tasks: r.tasks,
    max_history: r.maxHistory,
    seq_per_user: r.seqPerUser,
    direct_per_user: r.directPerUser,
    direct_history: r.directHistory,
    rating_per_user: r.ratingPerUser,
    explanation_per_user: r.explanationPerUser,
    review_per_user: r.reviewPerUser,
    negatives: r.negatives,
    profiles_per_user: r.profilesPerUser,
    profile_sample: r.profileSample,
    short_days: r.windows.shortDays,
    medium_days: r.windows.mediumDays,
    short_items: r.windows.shortItems,
    medium_items: r.windows.mediumItems,
    favourites: r.favourites,
    max_entity_words: r.maxEntityWords,
    max_entity_chars: r.maxEntityChars,
    explanation_min_words: r.explanationMinWords,
    explanation_max_words: r.explanationMaxWords,
    review_words: r.reviewWords,
    train_through: r.trainThrough,
    ...(r.tuneUsers ? { tune_users: r.tuneUsers } : {}),
    // Only when asked for, so the manifests of datasets without item tokens stay as they were.
    ...(r.itemTokens && r.itemTokens !== "none" ? { item_tokens: r.itemTokens } : {}),
    min_interactions: 3,
    windows_by: log.time !== undefined ? "time" : "position",
    timestamp_unit: log.timeUnit ?? null,
    columns,
  };
}

/**
 * Serializes records for the split files and collects the candidate lists for
 * `candidates.jsonl`: a user's valid (or test) item records all share one candidate list, so it
 * is stored once per user and split, as item ids, instead of on every record (on Amazon Beauty
 * that is the difference between about 1.6 GB and 0.2 GB). The history, also shared, is
 * serialized once and spliced in.
 */
function recordJsonWriter(itemIds: Map<string, string>): {
  toJson: (record: TextRecord) => string;
  /** The `candidates.jsonl` line of a record's list the first time it is seen, else undefined. */
  candidateLine: (record: TextRecord) => string | undefined;
} {
  let candidates: string[] | undefined;
  let history: string[] | undefined;
  let historyJson = "";
  return {
    toJson: (record) => {
      const { candidates: _, ...stored } = record;
      if (stored.history === undefined || "rating" in stored) return JSON.stringify(stored);
      const { history: h, ...rest } = stored;
      if (h !== history) historyJson = JSON.stringify(history = h);
      const head = JSON.stringify(rest);
      return `${head.slice(0, -1)},"history":${historyJson}}`;
    },
    candidateLine: (record) => {
      if (record.candidates === undefined || record.candidates === candidates) return undefined;
      candidates = record.candidates;
      const items = candidates.map((entity) => itemIds.get(entity)!);
      return JSON.stringify({ user: record.user, split: record.split, items });
    },
  };
}

/** Records a textualize run wrote, every split and task together. */
export function recordCount(summary: TextualizeSummary): number {
  let total = 0;
  for (const byTask of Object.values(summary.records)) {
    for (const n of Object.values(byTask)) total += n;
  }
  return total;
}

/**
 * Runs textualize. Bad input throws an InputError (one line: file, line, problem) before
 * anything appears at `run.out`.
 *
 * @example
 * ```ts
 * import { DEFAULT_RECORD_OPTIONS } from "./records.ts";
 *
 * const summary = await textualize({
 *   read: { format: "p5", input: "seq.txt", items: "items.csv" },
 *   records: { ...DEFAULT_RECORD_OPTIONS, seed: 1 },
 *   out: "runs/beauty",
 * });
 * ```
 */
export async function textualize(run: TextualizeRun): Promise<TextualizeSummary> {
  if (run.records.tuneUsers && run.records.trainThrough !== "valid") {
    throw new OptionError(
      "tuneUsers",
      (name, nameOf) =>
        `${name} holds users out of a refit: it needs ${nameOf("trainThrough")} valid`,
    );
  }
  // Claimed first: a second run on the same directory, or a directory of the user's, is refused
  // before minutes of reading. A shard writes its part directory (`data-00002-of-00007`).
  const out = run.shard ? partPath(run.out, run.shard) : run.out;
  if (!run.shard) {
    await refuseReplacingPart(out, {
      force: run.force,
      doing: "writing over it",
      output: "directory",
    });
  }
  const claim = await claimOutputDir(out, {
    command: "textualize",
    force: run.force,
    inputs: [run.read.input, run.read.items, run.read.users],
    recognize: isDatasetDir,
  });
  try {
    const summary = await textualizeInto(run, claim.tmp, out);
    await claim.commit();
    return summary;
  } catch (error) {
    throw temporaryRenamed(error, claim.tmp, out);
  } finally {
    await claim.close();
  }
}

/**
 * `read` with every input that is neither a file nor a directory (a pipe: `<(zcat ...)`,
 * `/dev/stdin`) copied first into a temporary directory of its own, under its own file name
 * (which is what the manifest records): the manifest hashes each input after it was read, and a
 * pipe gives its bytes only once. `cleanup` removes the copies. A missing path is left to the
 * reader, which says so.
 */
async function spoolPipes(
  read: ReadOptions,
): Promise<{
  read: ReadOptions;
  cleanup: () => Promise<void>;
  /** `text` with each copy's path replaced by the path the user gave (messages name that). */
  named: (text: string) => string;
}> {
  const spooled = { ...read };
  const originals = new Map<string, string>();
  const named = (text: string) => {
    for (const [copy, path] of originals) text = text.replaceAll(copy, path);
    return text;
  };
  let dir: string | undefined;
  let forget = () => {};
  const cleanup = async () => {
    if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    forget();
  };
  try {
    for (const key of ["input", "items", "users"] as const) {
      const path = read[key];
      if (path === undefined) continue;
      const info = await Deno.stat(path).catch(() => undefined);
      if (!info || info.isFile || info.isDirectory) continue;
      if (dir === undefined) {
        dir = await Deno.makeTempDir({ prefix: "recsysllm-pipes-" });
        // A copy of the whole input: gone on Ctrl-C too.
        forget = removeOnSignal(dir);
      }
      await Deno.mkdir(join(dir, key));
      const copy = join(dir, key, basename(path));
      try {
        const source = await Deno.open(path, { read: true });
        await source.readable.pipeTo((await Deno.create(copy)).writable);
      } catch (error) {
        throw inputError(path, undefined, `cannot read: ${(error as Error).message}`);
      }
      spooled[key] = copy;
      originals.set(copy, path);
    }
  } catch (error) {
    await cleanup();
    throw error;
  }
  return { read: spooled, cleanup, named };
}

/** Writes the dataset of `run` into the empty directory `dir`, which becomes `out`. */
async function textualizeInto(
  run: TextualizeRun,
  dir: string,
  out: string,
): Promise<TextualizeSummary> {
  const progress = run.progress;
  progress?.update(`reading ${run.read.input}`);
  // Read, and hashed for the manifest, before the copies of any piped input are removed.
  const spooled = await spoolPipes(run.read);
  let log: InteractionLog;
  const sources: Manifest["sources"] = [];
  try {
    log = await readInteractionLog(spooled.read);
    const roles = ["interactions", "users", "items"];
    const order = (role: string) => roles.indexOf(role);
    for (const source of [...log.sources].sort((a, b) => order(a.role) - order(b.role))) {
      sources.push(await describeSource(source));
    }
    log.notes = log.notes.map(spooled.named);
  } catch (error) {
    // A message about a piped input names it as given (/dev/fd/63), not its deleted copy.
    if (error instanceof Error) error.message = spooled.named(error.message);
    throw error;
  } finally {
    await spooled.cleanup();
  }
  progress?.update(`read ${log.user.length} interactions of ${log.users.length} users`);
  const warn = run.onWarning ?? (() => {});
  for (const note of log.notes) warn(note);
  const windows = windowWarning(log.time !== undefined, run.records.windows);
  if (windows) warn(windows);
  checkWindows(log.time !== undefined, run.records.windows);
  const plan = planDataset(log, run.records);
  if (plan.seqs.users.length === 0) {
    throw inputError(
      run.read.input,
      undefined,
      `no user has 3 or more interactions (leave-one-out needs one each for training, ` +
        `validation and test; ${log.users.length} users have fewer)`,
    );
  }
  if (run.tasksNamed) checkRequestedTasks(plan, run.read.input);
  const cutWarning = cutEntitiesWarning(plan);
  if (cutWarning) warn(cutWarning);

  const counts: Counts = {};
  const stats: RecordStats = { noExplanation: 0, shortCandidates: 0 };
  const shard = run.shard;
  const keys = new Map<string, PartFileKeys>();
  let manifest: Manifest | undefined;
  let shardUsers = 0;
  {
    shardUsers = await writeRecordFiles(dir, plan, counts, stats, {
      shard,
      keys: shard ? keys : undefined,
      progress,
    });
    // A shard holds some users only: its splits may be empty while the whole dataset's are not
    // (merge checks the whole dataset's counts, with the plan's split checks in the sidecar).
    if (!shard) { for (const warning of checkSplits(plan, counts, run.read.input)) warn(warning); }
    const entitiesJson = "[\n" + plan.pool.entries.map((e) => JSON.stringify(e)).join(",\n") +
      "\n]\n";
    await Deno.writeTextFile(join(dir, "entities.json"), entitiesJson);
    const options = manifestOptions(run, log);
    const { skipped, perUser } = skippedCounts(run, plan, stats);
    manifest = buildManifest(plan, { sources, options, counts, skipped: [...skipped, ...perUser] });
    const manifestJson = JSON.stringify(manifest, null, 2) + "\n";
    await Deno.writeTextFile(join(dir, "manifest.json"), manifestJson);
    if (shard) {
      const sidecar = shardSidecar(shard, keys, plan, manifest, {
        perUserReasons: perUser.map((p) => p.reason),
        entitiesJson,
        manifestJson,
        // The input's name only: shards may read one file by other paths (a scratch copy each).
        splitChecks: splitChecks(plan, basename(run.read.input)),
      });
      await Deno.writeTextFile(join(dir, "shard.json"), JSON.stringify(sidecar) + "\n");
    }
  }
  return summarize(plan, counts, manifest!, out, shard ? shardUsers : plan.seqs.users.length);
}

/**
 * Writes the records of every user (of `shard`, when given) into `dir` (SPLIT.jsonl,
 * candidates.jsonl), counting them by split, task and template, and with a shard, collecting each
 * file's per-user keys into `keys`. Returns the number of users written.
 */
async function writeRecordFiles(
  dir: string,
  plan: DatasetPlan,
  counts: Counts,
  stats: RecordStats,
  options: { shard?: Shard; keys?: Map<string, PartFileKeys>; progress?: Progress },
): Promise<number> {
  const { log } = plan;
  const { shard, keys, progress } = options;
  const sampler = new CandidateSampler(plan.poolItems, log.items.length);
  const itemIds = new Map(
    plan.pool.entries.filter((e) => e.kind === "item").map((e) => [e.entity, e.id]),
  );
  const { toJson, candidateLine } = recordJsonWriter(itemIds);
  const nUsers = plan.seqs.users.length;
  const filter = shard ? new ShardFilter(shard) : undefined;
  const keysOf = (file: string) => fileKeys(keys!, file);
  let users = 0;
  const writers = {} as Record<Split, TextFileWriter>;
  let candidatesOut: TextFileWriter | undefined;
  try {
    for (const split of SPLITS) {
      writers[split] = await TextFileWriter.create(join(dir, `${split}.jsonl`));
    }
    candidatesOut = await TextFileWriter.create(join(dir, "candidates.jsonl"));
    for (let k = 0; k < nUsers; k++) {
      if (filter && !filter.has(log.users[plan.seqs.users[k]])) continue;
      users++;
      for (const record of userRecords(plan, k, sampler, stats)) {
        countRecord(counts, record.split, record.task, record.template);
        const text = toJson(record) + "\n";
        await writers[record.split].write(text);
        const line = candidateLine(record);
        if (line !== undefined) await candidatesOut.write(line + "\n");
        if (keys) {
          keysOf(`${record.split}.jsonl`).add(k, text);
          if (line !== undefined) keysOf("candidates.jsonl").add(k, line + "\n");
        }
      }
      if ((k & 255) === 0) progress?.update(`${k + 1}/${nUsers} users`);
    }
  } finally {
    for (const split of SPLITS) await writers[split]?.close();
    await candidatesOut?.close();
  }
  return users;
}

/** The per-user keys of `file` in `keys`, created when new. */
function fileKeys(keys: Map<string, PartFileKeys>, file: string): PartFileKeys {
  let k = keys.get(file);
  if (!k) keys.set(file, k = new PartFileKeys());
  return k;
}

/**
 * The manifest's `skipped` entries: what the input had that no record shows, and why. `perUser`
 * are counted over the users written (a shard's users), so they add up over shards.
 */
function skippedCounts(run: TextualizeRun, plan: DatasetPlan, stats: RecordStats) {
  const { log } = plan;
  const skipped = [
    ...log.skipped,
    {
      reason: "users with fewer than 3 interactions (cannot be split)",
      count: plan.seqs.skipped,
    },
    {
      reason: "items-table rows of items without any interaction (not in the entity pool)",
      count: log.items.length - plan.poolItems.length,
    },
  ];
  const perUser = [
    {
      reason:
        `interactions whose review has no sentence of ${run.records.explanationMinWords}+ words (no explanation record)`,
      count: plan.tasks.explanation.status === "ok" ? stats.noExplanation : 0,
    },
    {
      reason:
        `candidate lists with fewer than ${run.records.negatives} negatives (the user left too few items unseen)`,
      count: stats.shortCandidates,
    },
  ];
  return { skipped, perUser };
}

/** The `shard.json` sidecar of a shard's dataset directory, for `recsysllm merge`. */
function shardSidecar(
  shard: Shard,
  keys: Map<string, PartFileKeys>,
  plan: DatasetPlan,
  manifest: Manifest,
  written: {
    perUserReasons: string[];
    entitiesJson: string;
    manifestJson: string;
    splitChecks: SplitChecks;
  },
) {
  for (const split of SPLITS) fileKeys(keys, `${split}.jsonl`);
  fileKeys(keys, "candidates.jsonl");
  const nUsers = plan.seqs.users.length;
  const files = Object.fromEntries(
    [...keys].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, k]) => [name, k.file(nUsers)]),
  );
  const sidecar = partManifest("textualize", shard, {
    command: "textualize",
    manifest: sharedManifest(manifest, written.perUserReasons),
    per_user_skips: written.perUserReasons,
    split_checks: written.splitChecks,
    same_files: { "entities.json": sha256Hex(written.entitiesJson) },
  }, files);
  sidecar.own_files = { "manifest.json": sha256Hex(written.manifestJson) };
  return sidecar;
}

/** What a finished run reports: records by split and task, skipped tasks and inputs. */
function summarize(
  plan: DatasetPlan,
  counts: Counts,
  manifest: Manifest,
  out: string,
  users: number,
): TextualizeSummary {
  const records: Record<string, Record<string, number>> = {};
  for (const split of SPLITS) {
    records[split] = {};
    for (const task of TASKS) {
      const byTemplate = counts[split]?.[task];
      if (byTemplate) records[split][task] = Object.values(byTemplate).reduce((a, b) => a + b, 0);
    }
  }
  const skippedTasks: Record<string, string> = {};
  for (const task of TASKS) {
    const status = plan.tasks[task as Task];
    if (status.status === "skipped") skippedTasks[task] = status.reason!;
  }
  return {
    out,
    users,
    items: plan.poolItems.length,
    interactions: plan.interactions,
    records,
    skipped_tasks: skippedTasks,
    skipped: manifest.skipped,
  };
}
