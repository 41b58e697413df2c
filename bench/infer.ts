/**
 * Benchmark of `infer` for top-10 sequential recommendation over all items with 20 beams: the
 * tiny preset (vocab 8000, hidden 256, 4 layers, 4 heads, random std-0.02 weights) on the CPU with
 * 2 intra-op threads, over the Amazon Beauty item titles (../shared/data/amazon-beauty, every
 * distinct title: about 12,000 items) with a BPE tokenizer of 8,000 ids trained here on those
 * titles. Prompts are sequential-recommendation prompts of real Beauty users (their last ten
 * items before the test item). What is timed is `Predictor.predict`, i.e. everything `infer` does
 * per record except writing the line: tokenizing, part A, prefill, the constrained beam search.
 *
 * Figures: `users_per_s` (best of the repeats, and the spread) with `infer`'s own decoders for
 * this model on this machine (`--workers auto`, lib/generate/open_decoders.ts: on 2 cores two
 * decoders of one thread each, in workers; `decoders` and `decoder_threads` say which), and
 * `same_lines`, the share of users whose whole line (items and scores) is the same as one
 * decoder's. `one_decoder_users_per_s`: one decoder of INFER_BENCH_THREADS threads (default 2) on
 * the main thread, the benchmark's headline before the workers; `outside_run_share` (the share of
 * its wall time spent outside onnxruntime's `run`, target at most 0.3), runs per user and
 * `cpu_ms_per_user` (the process's CPU time, user + system, per user over the repeats: with one
 * thread, a figure that other processes on a shared machine disturb far less than wall time,
 * bench/cpu_time.ts) are its. The same for the sampled protocol (`sampled_users_per_s`: 100
 * candidates per user scored, one decoder). The batch size (default 8) can be changed with
 * INFER_BENCH_BATCH, the number of default decoders with INFER_BENCH_WORKERS.
 *
 * `forced_runs_*`: the same users searched by one decoder with `forcedRuns` (a run of tokens the
 * trie forces fed in one model run, lib/generate/items.ts), each repeat right after the one
 * decoder's search of the same users, so the two are compared under the same load;
 * `forced_runs_same_top10` is the share of users whose top-10 is the same in both.
 *
 * @module
 */

import { join } from "node:path";
import process from "node:process";
import type { TextRecord } from "../lib/data/types.ts";
import { parseCsv } from "../lib/data/csv.ts";
import { CachedDecoder } from "../lib/generate/decoder.ts";
import { coreShares, openDecoders, parseWorkers } from "../lib/generate/open_decoders.ts";
import { Predictor } from "../lib/generate/infer.ts";
import { buildPool } from "../lib/collate/pool.ts";
import { readLines } from "../lib/io/lines.ts";
import { glmDecoderConfig, presetConfig } from "../lib/model/config.ts";
import { randomWeights } from "../lib/model/weights.ts";
import { Rng } from "../lib/random.ts";
import { trainByteLevelBpe } from "../lib/tokenizer/train_bpe.ts";
import { SPECIAL_TOKENS, TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import type { BenchOptions } from "./main.ts";
import { intSetting } from "./settings.ts";
import { fileURLToPath } from "node:url";

const DATA = fileURLToPath(new URL("../../shared/data/amazon-beauty", import.meta.url));
const USERS = 48;
const REPEATS = 3;
const BATCH = intSetting("INFER_BENCH_BATCH", 8, { min: 1, max: 4096 });
const THREADS = intSetting("INFER_BENCH_THREADS", 2, { min: 1, max: 1024 });
const SAMPLED_USERS = 32;
const WORKERS = Deno.env.get("INFER_BENCH_WORKERS");

/** One number when every decoder has the same threads, else each decoder's. */
const uniformOrList = (xs: number[]) => xs.every((x) => x === xs[0]) ? xs[0] : xs;

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** The Beauty titles by item id (every distinct title once). */
export async function beautyTitles(): Promise<Map<string, string>> {
  const byId = new Map<string, string>();
  const seen = new Set<string>();
  const path = join(DATA, "items.csv");
  let header = true;
  for await (const { fields } of parseCsv(readLines(path), { label: path })) {
    if (header) {
      header = false;
      continue;
    }
    const title = fields[2]?.trim();
    if (!title || seen.has(title)) continue;
    seen.add(title);
    byId.set(fields[0], title);
  }
  return byId;
}

export async function prompts(titles: Map<string, string>): Promise<TextRecord[]> {
  const records: TextRecord[] = [];
  for await (const { text } of readLines(join(DATA, "sequential_data.txt"))) {
    const [user, ...items] = text.trim().split(/\s+/);
    const history = items.slice(0, -1).map((i) => titles.get(i)).filter((t) => t !== undefined)
      .slice(-10) as string[];
    if (history.length < 3) continue;
    records.push({
      id: `u${user}/seq`,
      task: "sequential",
      template: "seq-1",
      split: "test",
      user,
      segments: [
        { text: `User ${user} bought ` },
        ...history.flatMap((entity, i) => [
          ...(i > 0 ? [{ text: ", " }] : []),
          { entity, kind: "item" },
        ]),
        { text: ". What will the user buy next? " },
        { answer: true },
      ],
      history,
    });
    if (records.length === USERS * REPEATS + BATCH) break;
  }
  return records;
}

/** Runs the benchmark; returns its figures. */
export async function run(options: BenchOptions = {}): Promise<Record<string, unknown>> {
  const titles = await beautyTitles();
  const items = [...titles.values()];
  const t0 = performance.now();
  const json = trainByteLevelBpe(
    [...items, "User 12 bought a, b and c. What will the user buy next?"],
    { vocabSize: 8000, specialTokens: [...SPECIAL_TOKENS] },
  );
  const tokenizer = TextTokenizer.fromJson(json, "bench tokenizer");
  const tokenizerSeconds = (performance.now() - t0) / 1000;
  const config = presetConfig("tiny", tokenizer.vocabSize);
  const weights = randomWeights(config, new Rng(1));
  const pool = buildPool(
    tokenizer,
    items.map((entity, i) => ({ entity, kind: "item", id: `${i}` })),
    {
      vocabSize: config.vocabSize,
    },
  );
  const records = await prompts(titles);
  const decoder = await CachedDecoder.create({ config, weights }, {
    device: options.device ?? "cpu",
    threads: THREADS,
  });
  // infer's own decoders (--workers auto, no --threads), or INFER_BENCH_WORKERS of them.
  const workers = await openDecoders({
    config: glmDecoderConfig(config),
    weights,
    device: options.device ?? "cpu",
  }, { workers: parseWorkers(WORKERS ?? "auto") }).catch(async (error) => {
    await decoder.release();
    throw error;
  });
  try {
    const predictor = new Predictor({ model: decoder, tokenizer, pool }, {
      protocol: "full",
      topK: 10,
      beams: 20,
      batchSize: BATCH,
      maxLength: config.maxSequenceLength,
    });
    const forced = new Predictor({ model: decoder, tokenizer, pool }, {
      protocol: "full",
      topK: 10,
      beams: 20,
      batchSize: BATCH,
      maxLength: config.maxSequenceLength,
      forcedRuns: true,
    });
    const pooled = new Predictor({ model: workers, tokenizer, pool }, {
      protocol: "full",
      topK: 10,
      beams: 20,
      batchSize: BATCH,
      maxLength: config.maxSequenceLength,
    });
    await predictor.predict(records.slice(0, BATCH)); // warm-up: sessions, first runs
    await forced.predict(records.slice(0, BATCH)); // and the session of runs of tokens
    await pooled.predict(records.slice(0, BATCH * workers.length)); // and every decoder's
    const rates: number[] = [];
    const shares: number[] = [];
    const forcedRates: number[] = [];
    let runs = 0;
    let forcedRunCount = 0;
    let cpu = 0;
    let forcedCpu = 0;
    let sameTop10 = 0;
    const workerRates: number[] = [];
    let sameLines = 0;
    const top10 = (lines: { predictions?: { entity: string }[] }[]) =>
      lines.map((l) => (l.predictions ?? []).map((p) => p.entity).join("\n"));
    for (let r = 0; r < REPEATS; r++) {
      const batch = records.slice(BATCH + r * USERS, BATCH + (r + 1) * USERS);
      const runBefore = decoder.runSeconds;
      const runsBefore = decoder.runs;
      const start = performance.now();
      const cpuStart = cpuMs();
      const lines = await predictor.predict(batch);
      cpu += cpuMs() - cpuStart;
      const wall = (performance.now() - start) / 1000;
      if (lines.some((l) => l.predictions?.length !== 10)) throw new Error("fewer than 10 items");
      rates.push(batch.length / wall);
      shares.push(1 - (decoder.runSeconds - runBefore) / wall);
      runs += decoder.runs - runsBefore;
      const forcedBefore = decoder.runs;
      const forcedStart = performance.now();
      const forcedCpuStart = cpuMs();
      const forcedLines = await forced.predict(batch);
      forcedCpu += cpuMs() - forcedCpuStart;
      forcedRates.push(batch.length / ((performance.now() - forcedStart) / 1000));
      forcedRunCount += decoder.runs - forcedBefore;
      const want = top10(lines);
      sameTop10 += top10(forcedLines).filter((list, u) => list === want[u]).length;
      const workersStart = performance.now();
      const workerLines = await pooled.predict(batch);
      workerRates.push(batch.length / ((performance.now() - workersStart) / 1000));
      const whole = lines.map((l) => JSON.stringify(l));
      sameLines += workerLines.filter((l, u) => JSON.stringify(l) === whole[u]).length;
    }
    // Secondary figure: the sampled protocol (100 candidates: the user's next item + 99 others).
    const rng = new Rng(2);
    const sampledRecords = records.slice(BATCH, BATCH + SAMPLED_USERS).map((r) => ({
      ...r,
      candidates: rng.sample(items.length, 100).map((i) => items[i]),
    }));
    const sampler = new Predictor({ model: decoder, tokenizer, pool }, {
      protocol: "sampled",
      topK: 10,
      batchSize: BATCH,
      maxLength: config.maxSequenceLength,
    });
    await sampler.predict(sampledRecords.slice(0, 2)); // warm-up: the scoring session
    const sampledRunBefore = decoder.runSeconds;
    const sampledStart = performance.now();
    await sampler.predict(sampledRecords);
    const sampledWall = (performance.now() - sampledStart) / 1000;
    let tokens = 0;
    for (const t of pool.items.tokens) tokens += t.length;
    const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
    const best = rates.indexOf(Math.max(...rates));
    return {
      users_per_s: round(Math.max(...workerRates), 2),
      users_per_s_all: workerRates.map((x) => round(x, 2)),
      decoders: workers.length,
      decoder_threads: workers.length === 1
        ? "every core"
        : uniformOrList(coreShares(navigator.hardwareConcurrency ?? 1, workers.length)),
      same_lines: round(sameLines / (USERS * REPEATS)),
      one_decoder_users_per_s: round(rates[best], 2),
      one_decoder_users_per_s_all: rates.map((x) => round(x, 2)),
      outside_run_share: round(shares[best]),
      outside_run_share_all: shares.map((x) => round(x)),
      runs_per_user: round(runs / (USERS * REPEATS), 1),
      cpu_ms_per_user: round(cpu / (USERS * REPEATS), 1),
      forced_runs_users_per_s: round(Math.max(...forcedRates), 2),
      forced_runs_users_per_s_all: forcedRates.map((x) => round(x, 2)),
      forced_runs_runs_per_user: round(forcedRunCount / (USERS * REPEATS), 1),
      forced_runs_cpu_ms_per_user: round(forcedCpu / (USERS * REPEATS), 1),
      forced_runs_same_top10: round(sameTop10 / (USERS * REPEATS)),
      sampled_users_per_s: round(SAMPLED_USERS / sampledWall, 2),
      sampled_outside_run_share: round(1 - (decoder.runSeconds - sampledRunBefore) / sampledWall),
      items: items.length,
      item_tokens_mean: round(tokens / items.length, 1),
      trie_nodes: pool.items.trie.nodeCount,
      beams: 20,
      top_k: 10,
      // Each repeat answers its own users (the *_all lists are by repeat; the headline figures
      // are the best repeat's, so partly the lightest users': compare commits on the same ones).
      users_per_repeat: USERS,
      repeats: REPEATS,
      sampled_users: SAMPLED_USERS,
      batch_size: BATCH,
      one_decoder_threads: THREADS,
      vocab: config.vocabSize,
      tokenizer_train_s: round(tokenizerSeconds, 1),
      device: decoder.device,
    };
  } finally {
    // Every decoder, though one fails to release: a worker left open keeps the process alive.
    await Promise.allSettled([decoder, ...workers].map((d) => d.release()));
  }
}
