/**
 * What identifies the inputs of a sharded run, for the `run` record of its parts: the SHA-256 of
 * the files that decide the output (a model's config, tokenizer and weights, every file of a
 * checkpoint split in shards; a dataset's manifest and entity pool). Paths are not part of it:
 * shards may see the same files at other paths.
 *
 * @module
 */

import { join } from "node:path";
import { fileDigest } from "./part.ts";

/** A seeded sample of users (`--sample-users`, `--sample-seed`): part of a run's identity. */
export interface UserSampleRun {
  /** About how many users. */
  size: number;
  /** The seed of the draw. */
  seed: number;
}

/** The model, adapter, dataset and flags of an infer run. */
export interface InferRun {
  /** The model directory. */
  model: string;
  /** The LoRA adapter directory, when one was given. */
  adapter?: string;
  /** The dataset directory. */
  data: string;
  /** The split answered (`test`, `valid`). */
  split: string;
  /** The task families answered. */
  tasks: readonly string[];
  /** Only these templates' records, when given. */
  templates?: readonly string[];
  /** Item tasks: `full` or `sampled`. */
  protocol: string;
  /** Items returned per record. */
  topK: number;
  /** Beams of the item search. */
  beams: number;
  /** Whether the user's earlier items are never predicted. */
  excludeSeen: boolean;
  /** Item search under the trie's softmax (recorded only when set, so older parts still match). */
  trieSoftmax?: boolean;
  /** Bits of the quantized linear weights (recorded only when set). */
  quantize?: number;
  /** Answer only the first `limit` selected records (Infinity: all). */
  limit: number;
  /** Text tasks: most generated tokens. */
  maxNewTokens: number;
  /** Text tasks: beams (1: greedy). */
  textBeams: number;
  /** Item tasks: the first stage reranked (recorded only when set). */
  rerank?: { file: string; weight: number; top: number | null };
  /** Only the records of a seeded sample of users (recorded only when set). */
  sample?: UserSampleRun;
  /**
   * The ids of the tokenizer's prefix every prompt starts with (recorded only where it has one:
   * parts written before prompts started with it do not merge with those written since).
   */
  textPrefix?: readonly number[];
}

/** The `sample` entry of a run's identity: recorded only when set, so older parts still match. */
function sampleEntry(sample: UserSampleRun | undefined): Record<string, unknown> {
  return sample ? { sample: { size: sample.size, seed: sample.seed } } : {};
}

/**
 * The weight files of a model directory the loader reads (lib/model/families/checkpoint.ts):
 * `model.safetensors`, or else `model.safetensors.index.json` and every file its `weight_map`
 * names, sorted. A malformed index is left to the loader to report.
 */
async function weightFiles(dir: string): Promise<string[]> {
  const single = "model.safetensors";
  const index = "model.safetensors.index.json";
  const hasSingle = await Deno.stat(join(dir, single)).then(() => true, () => false);
  if (hasSingle) return [single];
  let map: unknown;
  try {
    map = JSON.parse(await Deno.readTextFile(join(dir, index)))?.weight_map;
  } catch {
    return [index];
  }
  const files = typeof map === "object" && map !== null
    ? Object.values(map).filter((f): f is string => typeof f === "string")
    : [];
  return [index, ...[...new Set(files)].sort()];
}

/**
 * What must agree between the shards of one infer run: the model's config, tokenizer and weights
 * and the adapter's files (by SHA-256), the dataset, and every flag that changes the predictions
 * (batch size, device and threads do not: lib/generate/step_model.ts).
 */
export async function inferRunIdentity(run: InferRun): Promise<Record<string, unknown>> {
  return {
    command: "infer",
    model: await digestFiles(run.model, [
      "config.json",
      "tokenizer.json",
      ...await weightFiles(run.model),
    ]),
    adapter: run.adapter === undefined
      ? null
      // recsysllm_adapter.json too: the attention rule and the trained length change the lines.
      : await digestFiles(run.adapter, [
        "adapter_config.json",
        "adapter_model.safetensors",
        "recsysllm_adapter.json",
      ]),
    data: await digestDataset(run.data),
    split: run.split,
    tasks: [...run.tasks].sort(),
    templates: run.templates ? [...run.templates].sort() : null,
    protocol: run.protocol,
    top_k: run.topK,
    beams: run.beams,
    exclude_seen: run.excludeSeen,
    limit: Number.isFinite(run.limit) ? run.limit : null,
    max_new_tokens: run.maxNewTokens,
    text_beams: run.textBeams,
    ...(run.trieSoftmax ? { trie_softmax: true } : {}),
    ...(run.quantize ? { quantize: run.quantize } : {}),
    ...sampleEntry(run.sample),
    ...(run.textPrefix?.length ? { text_prefix: [...run.textPrefix] } : {}),
    ...(run.rerank
      ? {
        rerank: {
          first_stage: (await fileDigest(run.rerank.file))?.sha256 ?? null,
          weight: run.rerank.weight,
          top: run.rerank.top,
        },
      }
      : {}),
  };
}

/** The dataset and flags of an `eval --save-baselines` run, for one baseline. */
export interface BaselineRun {
  /** The baseline's name. */
  baseline: string;
  /** The dataset's digest ({@linkcode digestDataset}). */
  data: Record<string, string>;
  /** The split ranked (`test`, `valid`). */
  split: string;
  /** The ranking protocol: `full` or `sampled`. */
  protocol: string;
  /** The task families ranked. */
  tasks: readonly string[];
  /** The length of rankings over all items, after the cut-offs are taken into account. */
  top: number;
  /** Whether the user's earlier items are left out of the rankings. */
  excludeSeen: boolean;
  /** `itemknn`: neighbours kept per item (0 = all). */
  neighbors: number;
  /** `itemknn`: recency decay in (0, 1]. */
  recency: number;
  /** `mean`: bias damping. */
  damping: number;
  /** The seed of the baseline's random choices. */
  seed: number;
  /**
   * The baseline's own settings, defaults filled in (`sasrec`: its model and training; `mf`:
   * its model and training), recorded under its name; none for the others.
   */
  settings?: Record<string, unknown>;
  /** Only the records of a seeded sample of users (recorded only when set). */
  sample?: UserSampleRun;
}

/** What must agree between the shards of one saved baseline. */
export function baselineRunIdentity(run: BaselineRun): Record<string, unknown> {
  return {
    command: "eval --save-baselines",
    baseline: run.baseline,
    data: run.data,
    split: run.split,
    protocol: run.protocol,
    tasks: [...run.tasks].sort(),
    top: run.top,
    exclude_seen: run.excludeSeen,
    neighbors: run.neighbors,
    recency: run.recency,
    damping: run.damping,
    seed: run.seed,
    ...(run.settings ? { [run.baseline]: run.settings } : {}),
    ...sampleEntry(run.sample),
  };
}

/**
 * The SHA-256 of each of `names` inside `dir` that exists, by name (a missing file is left out:
 * whoever reads the directory reports it).
 *
 * @example
 * ```ts
 * await digestFiles("runs/tiny", ["config.json", "tokenizer.json", "model.safetensors"]);
 * // { "config.json": "9f2c...", ... }
 * ```
 */
export async function digestFiles(
  dir: string,
  names: readonly string[],
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const digest = await fileDigest(join(dir, name));
    if (digest) out[name] = digest.sha256;
  }
  return out;
}

/** The files of a dataset directory that decide every record: its manifest and entity pool. */
export function digestDataset(dir: string): Promise<Record<string, string>> {
  return digestFiles(dir, ["manifest.json", "entities.json"]);
}
