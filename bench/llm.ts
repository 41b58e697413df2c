/**
 * Benchmark of a real-sized decoder: a seeded random checkpoint of the Qwen2.5-0.5B shape (vocab
 * 151,936, hidden 896, intermediate 4,864, 24 layers, 14 heads, 2 key/value heads, tied
 * embeddings; BF16 safetensors on disk, written once into $TMPDIR), on the CPU with 2 threads,
 * batch 2 x 256 tokens with sep 160 (part B: one span of 96 tokens carrying the loss).
 *
 * Each phase runs in its own process, so its peak RSS (VmHWM) is its own:
 * - `load`: seconds to read the checkpoint into float32, peak RSS;
 * - `forward`: tokens/s of the loss graph (logits at the part B positions only);
 * - `lora`: tokens/s of one training step (LoRA rank 8 on q, k, v, plus the intra-position
 *   table and 5 special-token rows), peak RSS;
 * - `infer`: users/s of top-10 sequential recommendation over every Beauty title (about 12,000
 *   items, the real Qwen3 tokenizer) with 20 beams; `infer_q8` and `infer_q4` the same with the
 *   linear layers quantized (lib/model/quantize.ts), with their top-10 lists' agreement with the
 *   float ones (`agreement`: the share of users whose ten items are identical in order, and the
 *   mean overlap);
 * - `torch` (when `/usr/bin/python3` has torch): the same forward and LoRA step written in
 *   PyTorch (bench/llm_torch.py), same shape, batch and thread count, in the same run;
 * - `machine`: this machine's limits in the same run, through onnxruntime with the same threads:
 *   SGEMM GFLOP/s (a 2048 x 2048 x 2048 MatMul, best of 5) and the memory bandwidth a decoding
 *   step sees (GB/s of a one-row MatMul over a fed 256 MB matrix, best of 5); then `limits`
 *   says what share of them the forward, the LoRA step and infer reach (see
 *   {@linkcode limitShares} for the counts).
 *
 * The machine is shared: figures are noisy; compare ours and PyTorch's from one run.
 *
 * @module
 */

import { join } from "node:path";
import type { Batch } from "../lib/collate/types.ts";
import { CachedDecoder } from "../lib/generate/decoder.ts";
import { Predictor } from "../lib/generate/infer.ts";
import { buildPool } from "../lib/collate/pool.ts";
import { modelFamily } from "../lib/model/family.ts";
import { loadDecoder, writeCheckpoint } from "../lib/model/families/checkpoint.ts";
import type { DecoderConfig } from "../lib/model/families/config.ts";
import {
  buildDecoderForwardGraph,
  DECODER_SESSION_OPTIONS,
} from "../lib/model/families/decoder.ts";
import { randomDecoderTensors } from "../lib/model/families/init.ts";
import { decoderConfigJson, parseDecoderConfig } from "../lib/model/families/registry.ts";
import { addSpecialRows } from "../lib/model/families/special.ts";
import { Graph, type TensorData } from "../lib/onnx/graph.ts";
import { type QuantBits, quantizedLinear } from "../lib/model/quantize.ts";
import { Rng } from "../lib/random.ts";
import { Session, type WeightSessionOptions } from "../lib/runtime/session.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { batchFeeds } from "../lib/train/engine.ts";
import { TrainEngine } from "../lib/train/engine.ts";
import { initLora } from "../lib/model/lora.ts";
import { biasCorrections } from "../lib/train/schedule.ts";
import { InputError } from "../lib/errors.ts";
import { intSetting } from "./settings.ts";
import { INTRA_TABLE } from "../lib/model/families/config.ts";
import { beautyTitles, prompts } from "./infer.ts";
import { fileURLToPath } from "node:url";

const THREADS = 2;
const B = 2;
const L = 256;
const SEP = 160;
const ADDED = 5;

/** The Qwen2.5-0.5B configuration (its published config.json values). */
export const QWEN25_05B = {
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  vocab_size: 151936,
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000,
  sliding_window: 32768,
  use_sliding_window: false,
  tie_word_embeddings: true,
  hidden_act: "silu",
};

const DIR = join(Deno.env.get("TMPDIR") ?? "/tmp", "recsysllm-bench-qwen2.5-0.5b-random");

function peakRssGb(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024 / 1024 * 100) / 100;
}

/**
 * Session settings of the forward and LoRA phases: the decoder families' own (fed weights, no
 * memory pattern), or LLM_BENCH_SESSION (JSON, e.g. `{"feedWeights":false}` for initializers).
 */
const SESSION: WeightSessionOptions = JSON.parse(
  Deno.env.get("LLM_BENCH_SESSION") ?? JSON.stringify(DECODER_SESSION_OPTIONS),
);

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

/** The benchmark batch as the collator shapes it (one span at the last mask). */
function batch(vocab: number): Batch {
  const rng = new Rng(2);
  const out: Batch = {
    batchSize: B,
    length: L,
    inputIds: Int32Array.from({ length: B * L }, () => rng.int(vocab)),
    positionIds: new Int32Array(B * 2 * L),
    sep: new Int32Array(B).fill(SEP),
    labels: new Int32Array(B * L).fill(-100),
    lossMask: new Float32Array(B * L),
  };
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      out.positionIds[b * 2 * L + t] = t < SEP ? t : SEP - 1;
      out.positionIds[b * 2 * L + L + t] = t < SEP ? 0 : t - SEP + 1;
      if (t >= SEP) {
        out.labels[b * L + t] = rng.int(vocab);
        out.lossMask[b * L + t] = 1;
      }
    }
  }
  return out;
}

async function ensureCheckpoint(): Promise<DecoderConfig> {
  const config = parseDecoderConfig(QWEN25_05B, "Qwen2.5-0.5B");
  try {
    await Deno.stat(join(DIR, "model.safetensors"));
    return config;
  } catch { /* write it */ }
  await Deno.mkdir(DIR, { recursive: true });
  await Deno.writeTextFile(join(DIR, "config.json"), JSON.stringify(decoderConfigJson(config)));
  await writeCheckpoint(DIR, randomDecoderTensors(config, new Rng(1)), { format: "BF16" });
  return config;
}

async function time<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const out = await f();
  return [out, (performance.now() - t0) / 1000];
}

/** Best of `runs` timed runs of `session` on `feeds`, after one warm-up. */
async function bestRun(
  session: Session,
  feeds: Record<string, TensorData>,
  runs: number,
): Promise<number> {
  await session.run(feeds);
  let best = Infinity;
  for (let i = 0; i < runs; i++) best = Math.min(best, (await time(() => session.run(feeds)))[1]);
  return best;
}

/**
 * The machine's two limits, measured with onnxruntime at THREADS threads: SGEMM (compute) and a
 * one-row MatMul over a fed matrix (the memory traffic of a decoding step, whose weights are fed
 * and read once per step).
 */
async function machineLimits(): Promise<{ sgemm_gflops: number; gemv_gb_per_s: number }> {
  const rng = new Rng(5);
  const random = (n: number) => Float32Array.from({ length: n }, () => rng.float() - 0.5);
  const n = 2048;
  const g = new Graph("sgemm");
  g.output(
    g.matmul(g.input("a", "float32", [n, n]), g.input("b", "float32", [n, n])),
    "c",
  );
  const sgemm = await Session.create(g, { device: "cpu", threads: THREADS });
  const square = { dtype: "float32" as const, shape: [n, n], data: random(n * n) };
  const gemmSeconds = await bestRun(sgemm, { a: square, b: square }, 5);
  await sgemm.release();

  const [k, m] = [8192, 8192]; // 256 MB of float32
  const v = new Graph("gemv");
  v.output(
    v.matmul(v.input("x", "float32", [1, k]), v.input("w", "float32", [k, m])),
    "y",
  );
  const gemv = await Session.create(v, { device: "cpu", threads: THREADS });
  const x = { dtype: "float32" as const, shape: [1, k], data: random(k) };
  const w = { dtype: "float32" as const, shape: [k, m], data: random(k * m) };
  const gemvSeconds = await bestRun(gemv, { x, w }, 5);
  await gemv.release();
  return {
    sgemm_gflops: round(2 * n ** 3 / gemmSeconds / 1e9),
    gemv_gb_per_s: round(4 * k * m / gemvSeconds / 1e9),
  };
}

/**
 * What share of the machine's limits each phase reaches, from counted work:
 * - forward: 2 FLOPs per weight per token for every linear layer, plus the attention products
 *   (2 x 2 x B x L^2 x H a layer, the full square though half is masked) and the tied output
 *   projection at the part B rows (2 x B x (L - SEP) x V x H); against SGEMM;
 * - LoRA step: the forward plus its backward through the activations (frozen weights need no
 *   weight gradients, so about twice the forward's FLOPs; LoRA's own products are negligible);
 *   against SGEMM;
 * - infer: every model run reads every weight once (float32, fed), the tied embedding included
 *   (the log-softmax over the vocabulary); bytes read per second of model runs against the
 *   one-row MatMul bandwidth. And its arithmetic: 2 FLOPs per linear weight for every row part A's
 *   prefill encodes (padding included, no output projection) and per linear and output weight for
 *   every row a step feeds (attention left out); against SGEMM. At 20 beams a step multiplies
 *   dozens of rows, so this is the limit that binds (docs/performance.md).
 */
export function limitShares(
  config: DecoderConfig,
  figures: {
    forwardTokensPerS?: number;
    loraTokensPerS?: number;
    inferRuns?: number;
    inferRunSeconds?: number;
    inferPrefillRows?: number;
    inferStepRows?: number;
  },
  machine: { sgemm_gflops: number; gemv_gb_per_s: number },
): Record<string, number> {
  const { hiddenSize: h, intermediateSize: im, numLayers, vocabSize: vocab } = config;
  const kv = config.numKvHeads * config.headDim;
  const linear = numLayers * (h * h * 2 + h * kv * 2 + 3 * h * im);
  const attention = numLayers * 2 * 2 * B * L * L * h;
  const head = 2 * B * (L - SEP) * vocab * h;
  const forwardFlops = 2 * B * L * linear + attention + head;
  const out: Record<string, number> = {};
  const perToken = forwardFlops / (B * L);
  if (figures.forwardTokensPerS) {
    out.forward_share_of_sgemm = round(
      perToken * figures.forwardTokensPerS / 1e9 / machine.sgemm_gflops,
      3,
    );
  }
  if (figures.loraTokensPerS) {
    out.lora_share_of_sgemm = round(
      2 * perToken * figures.loraTokensPerS / 1e9 / machine.sgemm_gflops,
      3,
    );
  }
  if (figures.inferRuns && figures.inferRunSeconds) {
    const bytes = 4 * (linear + vocab * h) * figures.inferRuns;
    out.infer_share_of_bandwidth = round(
      bytes / figures.inferRunSeconds / 1e9 / machine.gemv_gb_per_s,
      3,
    );
    if (figures.inferPrefillRows !== undefined && figures.inferStepRows !== undefined) {
      const flops = 2 * linear * figures.inferPrefillRows +
        2 * (linear + vocab * h) * figures.inferStepRows;
      out.infer_share_of_sgemm = round(
        flops / figures.inferRunSeconds / 1e9 / machine.sgemm_gflops,
        3,
      );
    }
  }
  return out;
}

const PHASES: Record<string, () => Promise<Record<string, unknown>>> = {
  machine: machineLimits,
  async load() {
    const [model, seconds] = await time(() => loadDecoder(DIR));
    let n = 0;
    for (const w of model.weights.values()) n += w.length;
    return { load_s: round(seconds, 2), parameters: n, peak_rss_gb: peakRssGb() };
  },
  async forward() {
    const model = await loadDecoder(DIR);
    const { graph } = buildDecoderForwardGraph({ ...model, outputs: "loss" });
    const session = await Session.create(graph, { ...SESSION, device: "cpu", threads: THREADS });
    const feeds: Record<string, TensorData> = batchFeeds(batch(model.config.vocabSize), true);
    await session.run(feeds); // warm-up
    const times: number[] = [];
    for (let i = 0; i < 3; i++) times.push((await time(() => session.run(feeds)))[1]);
    await session.release();
    const best = Math.min(...times);
    return {
      forward_tokens_per_s: round(B * L / best),
      forward_tokens_per_s_all: times.map((t) => round(B * L / t)),
      peak_rss_gb: peakRssGb(),
    };
  },
  async lora() {
    const model = await loadDecoder(DIR);
    addSpecialRows(model.config, model.weights, ADDED);
    const lora = { rank: 8, alpha: 16, dropout: 0, targets: ["q_proj", "k_proj", "v_proj"] };
    const engine = await TrainEngine.create({
      config: model.config,
      weights: model.weights,
      lora,
      decoder: { attention: "causal", addedRows: ADDED },
    }, { device: "cpu", threads: THREADS, validation: false, session: SESSION });
    const params = initLora(model.config, lora, new Rng(3));
    const h = model.config.hiddenSize;
    params.set(INTRA_TABLE, new Float32Array(model.config.intraRows * h));
    params.set(
      "model.embed_tokens.added.weight",
      model.weights.get("model.embed_tokens.added.weight")!,
    );
    engine.load(params);
    const b = batch(model.config.vocabSize + ADDED);
    const rng = new Rng(4);
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const [, s] = await time(() =>
        engine.step([b], [1], 1e-4, biasCorrections(i + 1, 0.9, 0.999), rng)
      );
      times.push(s);
    }
    await engine.release();
    const best = Math.min(...times.slice(1));
    return {
      lora_step_tokens_per_s: round(B * L / best),
      lora_step_tokens_per_s_all: times.slice(1).map((t) => round(B * L / t)),
      lora_first_step_s: round(times[0], 1),
      trainable_parameters: [...params.values()].reduce((a, p) => a + p.length, 0),
      peak_rss_gb: peakRssGb(),
    };
  },
  infer: () => inferPhase(),
  infer_q8: () => inferPhase(8),
  infer_q4: () => inferPhase(4),
};

/**
 * Users/s of top-10 item search (20 beams) over the Beauty titles, float or with the linear
 * layers quantized to `bits`; returns each user's top-10 item ids too, so that `run` can measure
 * the quantized lists' agreement with the float ones.
 */
async function inferPhase(bits?: QuantBits): Promise<Record<string, unknown>> {
  const model = await loadDecoder(DIR);
  // The real Qwen3 tokenizer, a test and benchmark (not run-time) dependency: written by
  // tests/helpers/real_tokenizers.ts under its own lock file, out of the project's deno.lock.
  const { REAL_TOKENIZERS } = await import("../tests/helpers/real_tokenizers.ts");
  const tokenizer = await TextTokenizer.load(REAL_TOKENIZERS.qwen3);
  const titles = await beautyTitles();
  const items = [...titles.values()];
  const pool = buildPool(
    tokenizer,
    items.map((entity, i) => ({ entity, kind: "item", id: `${i}` })),
    {
      vocabSize: model.config.vocabSize,
    },
  );
  const records = await prompts(titles);
  const linear = bits ? quantizedLinear(model.weights, { bits }) : undefined;
  const decoder = await CachedDecoder.create(modelFamily(model, { linear }), {
    device: "cpu",
    threads: THREADS,
  });
  const users = intSetting("LLM_BENCH_USERS", 4, { min: 1 });
  const predictor = new Predictor({ model: decoder, tokenizer, pool }, {
    protocol: "full",
    topK: 10,
    beams: 20,
    batchSize: users,
    maxLength: 1024,
  });
  await predictor.predict(records.slice(0, 1)); // warm-up: sessions
  const [warmRuns, warmSeconds] = [decoder.runs, decoder.runSeconds];
  const warm = [decoder.prefillRows, decoder.stepRows];
  const [lines, seconds] = await time(() => predictor.predict(records.slice(1, 1 + users)));
  if (lines.some((l) => l.predictions?.length !== 10)) throw new Error("fewer than 10 items");
  await decoder.release();
  return {
    infer_runs: decoder.runs - warmRuns,
    infer_run_s: round(decoder.runSeconds - warmSeconds, 2),
    // Rows through the model per user: part A's tokens, and the search's steps.
    infer_prefill_rows_per_user: round((decoder.prefillRows - warm[0]) / users, 1),
    infer_step_rows_per_user: round((decoder.stepRows - warm[1]) / users, 1),
    infer_users_per_s: round(users / seconds, 3),
    infer_users: users,
    items: items.length,
    beams: 20,
    peak_rss_gb: peakRssGb(),
    top10: lines.map((l) => (l.predictions ?? []).map((p) => p.item_id ?? p.entity)),
  };
}

/** How the quantized top-10 lists agree with the float ones: identical lists, mean overlap. */
function agreement(float: string[][], quantized: string[][]): Record<string, number> {
  let same = 0;
  let overlap = 0;
  float.forEach((list, u) => {
    const other = quantized[u] ?? [];
    if (list.join("\n") === other.join("\n")) same++;
    overlap += list.filter((item) => other.includes(item)).length / Math.max(1, list.length);
  });
  return {
    identical_top10_share: round(same / Math.max(1, float.length), 3),
    mean_top10_overlap: round(overlap / Math.max(1, float.length), 3),
  };
}

async function child(
  args: string[],
  command = Deno.execPath(),
  env: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const out = await new Deno.Command(command, { args, env, stdout: "piped", stderr: "inherit" })
    .output();
  if (!out.success) return { error: `exit ${out.code}` };
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

/**
 * OpenBLAS 0.3.21 (Debian 12) does not know recent AVX-512 CPUs (AMD Zen 4 here) and picks its
 * Haswell (AVX2) kernel: 170 against 330 GFLOP/s on a 2048 SGEMM with 2 threads. The reference
 * is PyTorch at its best, so it gets the AVX-512 kernel where the CPU has AVX-512, whatever
 * OPENBLAS_CORETYPE the environment sets (this machine's says Haswell);
 * LLM_BENCH_OPENBLAS_CORETYPE chooses another.
 */
function openblasCore(): Record<string, string> {
  const asked = Deno.env.get("LLM_BENCH_OPENBLAS_CORETYPE");
  if (asked) return { OPENBLAS_CORETYPE: asked };
  const flags = Deno.readTextFileSync("/proc/cpuinfo");
  return /\bavx512f\b/.test(flags) ? { OPENBLAS_CORETYPE: "SkylakeX" } : {};
}

/** Runs every phase in its own process; returns their figures. */
export async function run(): Promise<Record<string, unknown>> {
  const self = fileURLToPath(import.meta.url);
  const only = Deno.env.get("LLM_BENCH_PHASES")?.split(",");
  const known = [...Object.keys(PHASES), "torch"];
  const unknown = only?.find((phase) => !known.includes(phase));
  if (unknown !== undefined) {
    throw new InputError(`LLM_BENCH_PHASES names "${unknown}": phases are ${known.join(", ")}`);
  }
  intSetting("LLM_BENCH_USERS", 4, { min: 1 });
  const [, writeSeconds] = await time(() => child(["run", "-A", self, "phase", "write"]));
  const results: Record<string, unknown> = {
    checkpoint: DIR,
    threads: THREADS,
    batch: `${B}x${L}`,
    sep: SEP,
  };
  for (const phase of Object.keys(PHASES)) {
    if (only && !only.includes(phase)) continue;
    console.error(`bench llm: ${phase}`);
    results[phase] = await child(["run", "-A", self, "phase", phase]);
  }
  if (!only || only.includes("torch")) {
    console.error("bench llm: torch");
    const script = fileURLToPath(new URL("./llm_torch.py", import.meta.url));
    results.torch = await child(
      [script, DIR, String(THREADS), String(B), String(L), String(SEP)],
      "/usr/bin/python3",
      openblasCore(),
    )
      .catch((error) => ({ error: String(error) }));
  }
  results.checkpoint_write_s = round(writeSeconds, 1);
  const float = (results.infer as { top10?: string[][] } | undefined)?.top10;
  for (const phase of ["infer_q8", "infer_q4"]) {
    const quantized = (results[phase] as { top10?: string[][] } | undefined)?.top10;
    if (float && quantized) {
      (results[phase] as Record<string, unknown>).agreement = agreement(float, quantized);
    }
  }
  const machine = results.machine as { sgemm_gflops?: number; gemv_gb_per_s?: number } | undefined;
  if (machine?.sgemm_gflops && machine.gemv_gb_per_s) {
    const figure = (phase: string, key: string) =>
      (results[phase] as Record<string, number> | undefined)?.[key];
    const users = figure("infer", "infer_users");
    const perUser = (key: string) => {
      const x = figure("infer", key);
      return x === undefined || users === undefined ? undefined : x * users;
    };
    results.limits = limitShares(parseDecoderConfig(QWEN25_05B, "Qwen2.5-0.5B"), {
      forwardTokensPerS: figure("forward", "forward_tokens_per_s"),
      loraTokensPerS: figure("lora", "lora_step_tokens_per_s"),
      inferRuns: figure("infer", "infer_runs"),
      inferRunSeconds: figure("infer", "infer_run_s"),
      inferPrefillRows: perUser("infer_prefill_rows_per_user"),
      inferStepRows: perUser("infer_step_rows_per_user"),
    }, machine as { sgemm_gflops: number; gemv_gb_per_s: number });
  }
  return results;
}

if (import.meta.main && Deno.args[0] === "phase") {
  const name = Deno.args[1];
  if (name === "write") {
    await ensureCheckpoint();
    console.log("{}");
  } else {
    console.log(JSON.stringify(await PHASES[name]()));
  }
  // Sessions hold native threads: leave at once.
  Deno.exit(0);
}
