/**
 * `infer`: predictions for the task records of one split of a dataset with a model (and an
 * optional LoRA adapter): ranked items, ratings or generated text, one JSON line per record in
 * the predictions format `eval` reads. Flags, files and progress only: the work is lib/generate.
 *
 * @module
 */

import { basename, join } from "node:path";
import type { Command } from "../lib/cli/command.ts";
import { defineFlags, type FlagValues, formatFlags, parseFlags } from "../lib/cli/flags.ts";
import { UserSample } from "../lib/data/user_sample.ts";
import { type Dataset, openDataset, readRecords } from "../lib/data/dataset.ts";
import { SPLITS, type TextRecord } from "../lib/data/types.ts";
import { inputError, UsageError } from "../lib/errors.ts";
import {
  DEFAULT_PREDICT,
  INFER_PROTOCOLS,
  INFER_TASKS,
  type InferLine,
  Predictor,
} from "../lib/generate/infer.ts";
import { loadForInference } from "../lib/generate/load.ts";
import { buildPool } from "../lib/collate/pool.ts";
import { Progress } from "../lib/io/progress.ts";
import { isPredictionsFile } from "../lib/eval/predictions.ts";
import { TextFileWriter } from "../lib/io/text_writer.ts";
import { type ClaimOptions, claimOutputFile, type OutputClaim } from "../lib/io/safe_output.ts";
import { DEFAULT_DEVICE, DEVICES } from "../lib/runtime/session.ts";
import { pathExists } from "../lib/io/fs.ts";
import {
  inferRunIdentity,
  parseShard,
  PartFileKeys,
  partManifest,
  partPath,
  removeSidecar,
  ShardFilter,
  writeSidecar,
} from "../lib/shard/mod.ts";

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
    help: "beams of the item search, at least --top-k",
  },
  "exclude-seen": { type: "boolean", help: "never predict an item of the user's history" },
  "trie-softmax": {
    type: "boolean",
    help: "item search: score each item by its probability among the items (the trie's softmax)",
  },
  limit: { type: "int", min: 1, help: "answer only the first N selected records" },
  "sample-users": {
    type: "int",
    min: 1,
    help: "answer only the records of a seeded sample of about N users (fast validation; " +
      "eval --sample-users N with the same --sample-seed scores the same users)",
  },
  "sample-seed": { type: "int", default: 1, help: "which sample --sample-users draws" },
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
    help: "text tasks: longest generated text in tokens",
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
  threads: { type: "int", min: 1, max: 1024, defaultText: "every core", help: "intra-op threads" },
  shard: {
    type: "string",
    placeholder: "i/n",
    help: "answer only the records of users in shard i (0-based) of n, written to " +
      "FILE-0000i-of-0000n.jsonl with a sidecar FILE-...jsonl.shard.json; join the parts " +
      "with `recsysllm merge`. auto: the index of an array job (SLURM_ARRAY_TASK_ID, or " +
      "JOB_COMPLETION_INDEX with auto/n; see README)",
  },
  quiet: { type: "boolean", help: "no progress on stderr" },
});

const usage = `Usage: recsysllm infer --model DIR --data DIR --out FILE.jsonl [flags]

Answers the task records of one split with the model: item tasks (sequential, direct) by
trie-constrained beam search over every item (--protocol full) or by ranking each record's
candidates by likelihood (--protocol sampled); rating by the expected rating over the dataset's
rating values; explanation and review by generated text. Writes one JSON line per record:
  {"id", "user", "task", "template", "predictions": [{"entity", "score"}, ...]}   item tasks
  {"id", ..., "rating": 4.21, "most_likely": 5}                                     rating
  {"id", ..., "text": "..."}                                                         text tasks
Scores are natural-log probabilities of the item's tokens and [E] (no length normalisation).

${formatFlags(FLAGS)}

Example:
  recsysllm infer --model runs/tiny --adapter runs/lora --data runs/beauty --tasks sequential \\
    --beams 20 --top-k 10 --out runs/pred.jsonl`;

/**
 * Records read (and answered) together, in batches: enough for several full batches of each kind
 * and padded prompt length (prompts are batched only with prompts of the same padded length, so
 * each length leaves one partial batch per window).
 */
const WINDOW_BATCHES = 64;

/** Where the lines go: stdout, or a temporary file renamed into place when complete. */
class Output {
  #writer?: TextFileWriter;
  #claim?: OutputClaim;
  readonly #encoder = new TextEncoder();
  /** The keys of the lines written, for the sidecar of a shard's part. */
  readonly keys = new PartFileKeys();

  static async open(path: string, options: ClaimOptions): Promise<Output> {
    const out = new Output();
    if (path !== "-") {
      out.#claim = await claimOutputFile(path, options);
      try {
        out.#writer = await TextFileWriter.create(out.#claim.tmp, undefined, path);
      } catch (error) {
        await out.#claim.close();
        throw error;
      }
    }
    return out;
  }

  /** Writes `lines`; `keys[i]` is the index in the split of the record of line i. */
  async write(lines: readonly InferLine[], keys: readonly number[]): Promise<void> {
    const texts = lines.map((l) => JSON.stringify(l) + "\n");
    texts.forEach((t, i) => this.keys.add(keys[i], t));
    const text = texts.join("");
    if (this.#writer) await this.#writer.write(text);
    else await Deno.stdout.write(this.#encoder.encode(text));
  }

  async commit(): Promise<void> {
    if (!this.#writer) return;
    await this.#writer.close();
    await this.#claim!.commit();
  }

  /** Removes the temporary if not committed, and releases the output. */
  async close(): Promise<void> {
    await this.#writer?.close().catch(() => {});
    await this.#claim?.close();
  }
}

type InferFlags = FlagValues<typeof FLAGS>;
type Shard = ReturnType<typeof parseShard>;

/**
 * Stage 1: everything that can be wrong with the inputs and flags, found before anything is
 * written. Returns the split file and the item search's top-k and beams.
 */
async function checkInputs(flags: InferFlags, data: Dataset) {
  const known = new Map((data.manifest.templates ?? []).map((t) => [t.id, t.task]));
  for (const id of flags.template ?? []) {
    if (!known.has(id)) {
      throw new UsageError(
        `--template "${id}" is not a template of ${join(flags.data, "manifest.json")} ` +
          `(${[...known.keys()].join(", ")})`,
      );
    }
    if (!(flags.tasks as readonly string[]).includes(known.get(id)!)) {
      throw new UsageError(`--template "${id}" is a ${known.get(id)} template, not in --tasks`);
    }
  }
  const splitFile = join(flags.data, `${flags.split}.jsonl`);
  if (!(await pathExists(splitFile))) {
    throw inputError(splitFile, undefined, `split "${flags.split}" does not exist in this dataset`);
  }
  const topK = flags["top-k"];
  // The item search returns at most one item per beam: without --beams, enough beams for
  // --top-k; a --beams below --top-k could not give the items asked for.
  const beams = flags.beams ?? Math.max(DEFAULT_PREDICT.beams, topK);
  if (flags.protocol === "full" && beams < topK) {
    throw new UsageError(
      `--top-k ${topK} needs at least as many --beams (got ${beams}): the search returns one ` +
        `item per beam`,
    );
  }
  if (flags["trie-softmax"] && flags.protocol !== "full") {
    throw new UsageError(
      "--trie-softmax scores the item search over all items (--protocol full); " +
        "the sampled protocol scores its candidates under the vocabulary's softmax",
    );
  }
  return { splitFile, topK, beams };
}

/** The selected records of the split by the manifest's counts; 0 (unknown) for a shard. */
function expectedRecords(
  flags: InferFlags,
  data: Dataset,
  wanted: (r: TextRecord) => boolean,
  shard: Shard | undefined,
): number {
  if (shard && shard.count > 1) return 0; // unknown until read: the shard's share varies
  let total = 0;
  for (const [task, byTemplate] of Object.entries(data.manifest.counts?.[flags.split] ?? {})) {
    for (const [template, count] of Object.entries(byTemplate)) {
      if (wanted({ task, template } as TextRecord)) total += count;
    }
  }
  return Math.min(total, flags.limit ?? Infinity);
}

/**
 * Stage 2: reads the split and answers the selected records (of this shard) a window at a time.
 * Returns the records answered and the number of records in the split (the merge's keys).
 */
async function answerSplit(options: {
  flags: InferFlags;
  data: Dataset;
  wanted: (r: TextRecord) => boolean;
  shard: Shard | undefined;
  predictor: Predictor;
  out: Output;
  total: number;
  progress: Progress;
}): Promise<{ done: number; read: number }> {
  const { flags, data, wanted, shard, predictor, out, total, progress } = options;
  const limit = flags.limit ?? Infinity;
  const filter = shard ? new ShardFilter(shard) : undefined;
  let done = 0;
  let selected = 0;
  let index = 0;
  let window: TextRecord[] = [];
  let keys: number[] = [];
  const report = (answered: number) => {
    const rate = answered / Math.max(progress.elapsedSeconds, 1e-9);
    progress.update(`${answered}/${total || "?"} records, ${rate.toFixed(2)} records/s`);
  };
  const flush = async () => {
    if (window.length === 0) return;
    // Reported batch by batch: a window of records takes minutes on a large model.
    await out.write(await predictor.predict(window, (n) => report(done + n)), keys);
    done += window.length;
    window = [];
    keys = [];
    report(done);
  };
  // --limit counts the records of every shard, so the shards of a limited run answer together
  // what the unsharded run answers; a shard reads the whole split to know the number of
  // records (the keys of the merge).
  for await (const record of readRecords(data, flags.split)) {
    const key = index++;
    if (selected >= limit) {
      if (shard) continue;
      break;
    }
    if (!wanted(record)) continue;
    selected++;
    if (filter && !filter.has(record.user)) continue;
    window.push(record);
    keys.push(key);
    if (window.length >= flags["batch-size"] * WINDOW_BATCHES) await flush();
  }
  await flush();
  return { done, read: index };
}

/** Stage 3, sharded runs: the part's sidecar, which `merge` checks and orders the lines by. */
async function writePartSidecar(options: {
  flags: InferFlags;
  shard: Shard;
  partFile: string;
  out: Output;
  read: number;
  adapterDir: string | undefined;
  device: string;
  topK: number;
  beams: number;
}): Promise<void> {
  const { flags, shard, partFile, out, read } = options;
  const identity = await inferRunIdentity({
    model: flags.model,
    adapter: options.adapterDir,
    data: flags.data,
    split: flags.split,
    tasks: flags.tasks,
    templates: flags.template,
    protocol: flags.protocol,
    topK: options.topK,
    beams: options.beams,
    excludeSeen: flags["exclude-seen"],
    trieSoftmax: flags["trie-softmax"],
    limit: flags.limit ?? Infinity,
    maxNewTokens: flags["max-new-tokens"],
    textBeams: flags["text-beams"],
  });
  await writeSidecar(
    partFile,
    partManifest(
      "infer",
      shard,
      identity,
      { [basename(flags.out)]: out.keys.file(read) },
      { device: options.device, threads: flags.threads ?? null },
    ),
  );
}

/** The `infer` subcommand. */
export const command: Command = {
  name: "infer",
  summary: "predictions for a split: beam search over items, candidate ranking, ratings, text",
  usage,
  async run(args: string[]): Promise<void> {
    const { values: flags } = parseFlags("infer", args, FLAGS);
    const shard = flags.shard === undefined ? undefined : parseShard(flags.shard);
    if (shard && flags.out === "-") {
      throw new UsageError(
        "infer: --shard writes a part file and its sidecar, not stdout (--out -)",
      );
    }
    const progress = new Progress("infer", { quiet: flags.quiet });
    const data = await openDataset(flags.data);
    const { splitFile, topK, beams } = await checkInputs(flags, data);
    // Claimed before the model loads: a second run on --out, or a file of the user's, is refused
    // at once. A shard writes its part file (`pred-00002-of-00007.jsonl`).
    const partFile = shard ? partPath(flags.out, shard) : flags.out;
    const out = await Output.open(partFile, {
      command: "infer",
      force: flags.force,
      inputs: [
        flags.model,
        flags.adapter,
        flags.data,
        splitFile,
        ...["manifest.json", "entities.json", "candidates.jsonl"].map((f) => join(flags.data, f)),
      ],
      recognize: isPredictionsFile,
    });
    let loaded;
    try {
      progress.update(`loading ${flags.model}${flags.adapter ? ` + ${flags.adapter}` : ""}`);
      loaded = await loadForInference({
        model: flags.model,
        adapter: flags.adapter,
        device: flags.device,
        threads: flags.threads,
        onWarning: (message) => console.error(`warning: ${message}`),
      });
    } catch (error) {
      await out.close();
      throw error;
    }
    try {
      const { tokenizer, decoder } = loaded;
      const pool = buildPool(tokenizer, data.entities, {
        vocabSize: loaded.vocabSize,
        file: join(flags.data, "entities.json"),
        maxLength: loaded.maxLength,
      });
      const predictor = new Predictor({ model: decoder, tokenizer, pool }, {
        protocol: flags.protocol,
        topK,
        beams,
        excludeSeen: flags["exclude-seen"],
        trieSoftmax: flags["trie-softmax"],
        batchSize: flags["batch-size"],
        maxNewTokens: flags["max-new-tokens"],
        textBeams: flags["text-beams"],
        maxLength: loaded.maxLength,
        ratingValues: data.manifest.rating_values ?? [],
      });
      const byTask = (r: TextRecord) =>
        (flags.tasks as readonly string[]).includes(r.task) &&
        (flags.template === undefined || flags.template.includes(r.template));
      const sample = flags["sample-users"] === undefined ? undefined : new UserSample({
        size: flags["sample-users"],
        users: data.manifest.users ?? 0,
        seed: flags["sample-seed"],
      });
      const wanted = sample ? (r: TextRecord) => byTask(r) && sample.has(r.user) : byTask;
      const share = sample ? Math.min(1, sample.size / Math.max(1, data.manifest.users ?? 0)) : 1;
      const total = Math.round(expectedRecords(flags, data, byTask, shard) * share);
      const adapterNote = loaded.adapter ? ` + adapter ${loaded.adapter.dir}` : "";
      progress.log(
        `${flags.model}${adapterNote} on ${decoder.device}; ${pool.items.items.length} items; ` +
          `${flags.split}: ${total || "?"} records`,
      );
      const { done, read } = await answerSplit({
        flags,
        data,
        wanted,
        shard,
        predictor,
        out,
        total,
        progress,
      });
      if (shard) await removeSidecar(partFile);
      await out.commit();
      if (shard) {
        await writePartSidecar({
          flags,
          shard,
          partFile,
          out,
          read,
          adapterDir: loaded.adapter?.dir,
          device: decoder.device,
          topK,
          beams,
        });
      }
      progress.done(
        `${done} records on ${decoder.device}` +
          (shard ? ` (shard ${shard.index}/${shard.count}: ${partFile})` : ""),
      );
      // The one-line summary every command that writes files prints (stdout holds the
      // predictions themselves with --out -).
      if (flags.out !== "-") {
        console.log(JSON.stringify({
          out: partFile,
          records: done,
          split: flags.split,
          tasks: flags.tasks,
          device: decoder.device,
          ...(shard ? { shard: `${shard.index}/${shard.count}` } : {}),
        }));
      }
    } finally {
      await out.close();
      await loaded.decoder.release();
    }
  },
};
