/**
 * `infer`: predictions for the task records of one split of a dataset with a model (and an
 * optional LoRA adapter): ranked items, ratings or generated text, one JSON line per record in
 * the predictions format `eval` reads. Flags, files and progress only: the work is lib/generate.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import type { Command } from "../lib/cli/command.ts";
import { choice, type Flags, int, list, optional, parseFlags, required } from "../lib/cli/flags.ts";
import { openDataset, readRecords } from "../lib/data/dataset.ts";
import { type Split, SPLITS, type TextRecord } from "../lib/data/types.ts";
import { inputError, UsageError } from "../lib/errors.ts";
import {
  INFER_PROTOCOLS,
  INFER_TASKS,
  type InferLine,
  type InferTask,
  Predictor,
} from "../lib/generate/infer.ts";
import { loadForInference } from "../lib/generate/load.ts";
import { buildPool } from "../lib/generate/pool.ts";
import { Progress } from "../lib/io/progress.ts";
import { TextFileWriter } from "../lib/io/text_writer.ts";
import { DEVICES } from "../lib/runtime/session.ts";
import { pathExists } from "../lib/io/fs.ts";

const usage = `Usage: recsysllm infer --model DIR --data DIR --out FILE.jsonl [flags]

Answers the task records of one split with the model: item tasks (sequential, direct) by
trie-constrained beam search over every item (--protocol full) or by ranking each record's
candidates by likelihood (--protocol sampled); rating by the expected rating over the dataset's
rating values; explanation and review by generated text. Writes one JSON line per record:
  {"id", "user", "task", "template", "predictions": [{"entity", "score"}, ...]}   item tasks
  {"id", ..., "rating": 4.21, "most_likely": 5}                                     rating
  {"id", ..., "text": "..."}                                                         text tasks
Scores are natural-log probabilities of the item's tokens and [E] (no length normalisation).

Flags:
  --model DIR          model directory (config.json, model.safetensors, tokenizer.json)
  --adapter PATH       a LoRA adapter directory (PEFT layout), merged into the weights at load
  --data DIR           dataset directory written by textualize
  --out FILE           where to write the predictions (JSONL, written atomically); - for stdout
  --split NAME         ${SPLITS.join(", ")} (default test)
  --task LIST          tasks to answer (default all: ${INFER_TASKS.join(", ")})
  --template LIST      only these template ids (default all)
  --protocol P         item tasks: full (all items, beam search) or sampled (rank the record's
                       candidates) (default full)
  --top-k N            items per record (default 10)
  --beams N            beams of the item search (default 20)
  --exclude-seen       never predict an item of the user's history
  --limit N            answer only the first N selected records
  --batch-size N       prompts decoded together (default 8)
  --max-new-tokens N   text tasks: longest generated text in tokens (default 64)
  --text-beams N       text tasks: beams (default 1: greedy)
  --device NAME        ${DEVICES.join(" | ")} (default auto: CUDA, then WebGPU, then CPU)
  --threads N          intra-op threads (default: every core)
  --quiet              no progress on stderr

Example:
  recsysllm infer --model runs/tiny --adapter runs/lora --data runs/beauty --task sequential \\
    --beams 20 --top-k 10 --out runs/pred.jsonl`;

/** Records read (and answered) together: enough for several full batches of each kind. */
const WINDOW_BATCHES = 16;

function tasksOf(flags: Flags): InferTask[] {
  const tasks = list(flags, "task", [...INFER_TASKS]);
  for (const t of tasks) {
    if (!(INFER_TASKS as readonly string[]).includes(t)) {
      throw new UsageError(`--task must list tasks of ${INFER_TASKS.join(", ")}, got "${t}"`);
    }
  }
  return tasks as InferTask[];
}

/** Where the lines go: stdout, or a temporary file renamed into place when complete. */
class Output {
  #writer?: TextFileWriter;
  #tmp?: string;
  readonly #path: string;
  readonly #encoder = new TextEncoder();

  private constructor(path: string) {
    this.#path = path;
  }

  static async open(path: string): Promise<Output> {
    const out = new Output(path);
    if (path !== "-") {
      const dir = dirname(path) || ".";
      if (!(await pathExists(dir))) {
        throw inputError(path, undefined, "its directory does not exist");
      }
      out.#tmp = join(dir, `.${basename(path)}.tmp-${Deno.pid}-${Date.now().toString(36)}`);
      out.#writer = await TextFileWriter.create(out.#tmp);
    }
    return out;
  }

  async write(lines: readonly InferLine[]): Promise<void> {
    const text = lines.map((l) => JSON.stringify(l) + "\n").join("");
    if (this.#writer) await this.#writer.write(text);
    else await Deno.stdout.write(this.#encoder.encode(text));
  }

  async commit(): Promise<void> {
    if (!this.#writer) return;
    await this.#writer.close();
    await Deno.rename(this.#tmp!, this.#path);
  }

  async abort(): Promise<void> {
    if (!this.#writer) return;
    try {
      await this.#writer.close();
    } catch { /* already closed */ }
    await Deno.remove(this.#tmp!).catch(() => {});
  }
}

/** The `infer` subcommand. */
export const command: Command = {
  name: "infer",
  summary: "predictions for a split: beam search over items, candidate ranking, ratings, text",
  usage,
  async run(args: string[]): Promise<void> {
    const flags = parseFlags("infer", args, {
      model: { type: "string" },
      adapter: { type: "string" },
      data: { type: "string" },
      out: { type: "string" },
      split: { type: "string" },
      task: { type: "string" },
      template: { type: "string" },
      protocol: { type: "string" },
      "top-k": { type: "string" },
      beams: { type: "string" },
      "exclude-seen": { type: "boolean" },
      limit: { type: "string" },
      "batch-size": { type: "string" },
      "max-new-tokens": { type: "string" },
      "text-beams": { type: "string" },
      device: { type: "string" },
      threads: { type: "string" },
      quiet: { type: "boolean" },
    });
    const modelDir = required(flags, "model", "infer");
    const dataDir = required(flags, "data", "infer");
    const outPath = required(flags, "out", "infer");
    const split = choice(flags, "split", SPLITS, "test") as Split;
    const tasks = tasksOf(flags);
    const templates = flags.template === undefined ? undefined : list(flags, "template", []);
    const protocol = choice(flags, "protocol", INFER_PROTOCOLS, "full");
    const topK = int(flags, "top-k", 10, 1, 100_000);
    const beams = int(flags, "beams", 20, 1, 10_000);
    const limit = flags.limit === undefined ? Infinity : int(flags, "limit", 0, 1);
    const batchSize = int(flags, "batch-size", 8, 1, 4096);
    const maxNewTokens = int(flags, "max-new-tokens", 64, 1, 4096);
    const textBeams = int(flags, "text-beams", 1, 1, 256);
    const device = choice(flags, "device", DEVICES, "auto");
    const threads = flags.threads === undefined ? undefined : int(flags, "threads", 0, 1, 1024);
    const progress = new Progress("infer", { quiet: flags.quiet === true });

    // Everything that can be wrong with the inputs is found before anything is written.
    const data = await openDataset(dataDir);
    const known = new Map((data.manifest.templates ?? []).map((t) => [t.id, t.task]));
    for (const id of templates ?? []) {
      if (!known.has(id)) {
        throw new UsageError(
          `--template "${id}" is not a template of ${join(dataDir, "manifest.json")} ` +
            `(${[...known.keys()].join(", ")})`,
        );
      }
      if (!(tasks as string[]).includes(known.get(id)!)) {
        throw new UsageError(`--template "${id}" is a ${known.get(id)} template, not in --task`);
      }
    }
    const splitFile = join(dataDir, `${split}.jsonl`);
    if (!(await pathExists(splitFile))) {
      throw inputError(splitFile, undefined, `split "${split}" does not exist in this dataset`);
    }
    const loaded = await loadForInference({
      model: modelDir,
      adapter: optional(flags, "adapter"),
      device,
      threads,
    });
    try {
      const { config, tokenizer, decoder } = loaded;
      const pool = buildPool(tokenizer, data.entities, {
        vocabSize: config.vocabSize,
        file: join(dataDir, "entities.json"),
      });
      const predictor = new Predictor({ model: decoder, tokenizer, pool }, {
        protocol,
        topK,
        beams,
        excludeSeen: flags["exclude-seen"] === true,
        batchSize,
        maxNewTokens,
        textBeams,
        maxLength: config.maxSequenceLength,
        ratingValues: data.manifest.rating_values ?? [],
      });
      const wanted = (r: TextRecord) =>
        (tasks as string[]).includes(r.task) &&
        (templates === undefined || templates.includes(r.template));
      let total = 0;
      for (const [task, byTemplate] of Object.entries(data.manifest.counts?.[split] ?? {})) {
        for (const [template, count] of Object.entries(byTemplate)) {
          if (wanted({ task, template } as TextRecord)) total += count;
        }
      }
      total = Math.min(total, limit);
      const adapterNote = loaded.adapter ? ` + adapter ${loaded.adapter.dir}` : "";
      progress.log(
        `${modelDir}${adapterNote} on ${decoder.device}; ${pool.items.items.length} items; ` +
          `${split}: ${total || "?"} records`,
      );

      const out = await Output.open(outPath);
      try {
        let done = 0;
        let window: TextRecord[] = [];
        const flush = async () => {
          if (window.length === 0) return;
          await out.write(await predictor.predict(window));
          done += window.length;
          window = [];
          const rate = done / Math.max(progress.elapsedSeconds, 1e-9);
          progress.update(`${done}/${total || "?"} records, ${rate.toFixed(2)} records/s`);
        };
        for await (const record of readRecords(data, split)) {
          if (done + window.length >= limit) break;
          if (!wanted(record)) continue;
          window.push(record);
          if (window.length >= batchSize * WINDOW_BATCHES) await flush();
        }
        await flush();
        await out.commit();
        progress.done(`${done} records on ${decoder.device}`);
      } catch (error) {
        await out.abort();
        throw error;
      }
    } finally {
      await loaded.decoder.release();
    }
  },
};
