/**
 * Benchmark of the GLM forward graph on the CPU: the tiny configuration (vocab 8000, hidden 256,
 * 4 layers, 4 heads), batch 8 of 256 tokens with sep 160, 2 intra-op threads, sequential
 * execution. Reports tokens per second (all B x L positions counted) for the graph training and
 * evaluation use, which computes the logits only at the 96 part-B positions that carry loss and
 * returns the loss (`tokens_per_s`, the headline figure); for the graph that also returns the
 * full logits [B, L, V] to JavaScript with the loss (`full_logits_tokens_per_s`: `forward
 * --out` needs them, and the 65 MB copy alone is about 40 ms); for the logits-only graph; and for
 * the loss graph at onnxruntime's `basic` optimization. Best and median over repeated runs,
 * interleaved so that load from other processes hits all alike; per-operator kernel times from
 * onnxruntime's profiler (`loss_op_ms`, `full_logits_op_ms`).
 * Reference: PyTorch 1.13 on 2 threads, about 6,500 tokens/s.
 *
 * @module
 */

import { presetConfig } from "../lib/model/config.ts";
import { buildForwardGraph, type ForwardOutputs } from "../lib/model/glm.ts";
import { randomWeights } from "../lib/model/weights.ts";
import type { TensorData } from "../lib/onnx/graph.ts";
import { Rng } from "../lib/random.ts";
import { BATCH, syntheticBatch } from "./synthetic_batch.ts";
import { providerFigures, readProfile } from "../lib/runtime/profile.ts";
import type { BenchOptions } from "./main.ts";
import { type OptimizationLevel, Session } from "../lib/runtime/session.ts";

const { B, L, SEP } = BATCH;
const THREADS = 2;
const WARMUP = 2;
const RUNS = 10;
const PYTORCH_TOKENS_PER_S = 6500;

interface Variant {
  name: string;
  /** Prefix of the variant's figures (the headline variant has none). */
  prefix: string;
  outputs: ForwardOutputs;
  optimization: OptimizationLevel;
}

const VARIANTS: Variant[] = [
  { name: "loss", prefix: "", outputs: "loss", optimization: "all" },
  { name: "both", prefix: "full_logits_", outputs: "both", optimization: "all" },
  { name: "logits", prefix: "logits_only_", outputs: "logits", optimization: "all" },
  { name: "loss_basic", prefix: "loss_basic_", outputs: "loss", optimization: "basic" },
];

/** Runs the benchmark; returns its figures. */
export async function run(options: BenchOptions = {}): Promise<Record<string, unknown>> {
  const device = options.device ?? "cpu";
  const config = presetConfig("tiny", 8000);
  const weights = randomWeights(config, new Rng(1));
  const feeds = syntheticBatch(config.vocabSize);
  const sessions = new Map<string, { session: Session; feeds: Record<string, TensorData> }>();
  for (const v of VARIANTS) {
    const { graph } = buildForwardGraph({ config, weights, outputs: v.outputs });
    const session = await Session.create(graph, {
      device,
      threads: THREADS,
      optimization: v.optimization,
    });
    const f = { ...feeds };
    if (v.outputs === "logits") {
      delete f.labels;
      delete f.loss_mask;
    }
    for (let i = 0; i < WARMUP; i++) await session.run(f);
    sessions.set(v.name, { session, feeds: f });
  }
  const times = new Map<string, number[]>(VARIANTS.map((v) => [v.name, []]));
  for (let r = 0; r < RUNS; r++) {
    for (const v of VARIANTS) {
      const { session, feeds: f } = sessions.get(v.name)!;
      const t0 = performance.now();
      await session.run(f);
      times.get(v.name)!.push(performance.now() - t0);
    }
  }
  for (const { session } of sessions.values()) await session.release();

  const figures: Record<string, unknown> = {};
  const tokens = B * L;
  for (const v of VARIANTS) {
    const ms = times.get(v.name)!.sort((a, b) => a - b);
    const best = ms[0];
    const median = ms[ms.length >> 1];
    figures[`${v.prefix}tokens_per_s`] = Math.round((tokens / best) * 1000);
    figures[`${v.prefix}median_tokens_per_s`] = Math.round((tokens / median) * 1000);
    figures[`${v.prefix}best_ms`] = Number(best.toFixed(1));
    figures[`${v.prefix}worst_ms`] = Number(ms[ms.length - 1].toFixed(1));
  }
  // Where the time goes: a separate profiled session per output variant (profiling slows a run).
  const dir = await Deno.makeTempDir();
  try {
    for (const outputs of ["loss", "both"] as const) {
      const { graph } = buildForwardGraph({ config, weights, outputs });
      const prefix = `${dir}/${outputs}`;
      const session = await Session.create(graph, { device, threads: THREADS, profile: prefix });
      for (let i = 0; i < 3; i++) await session.run(feeds);
      session.endProfiling();
      await session.release();
      const summary = await readProfile(prefix);
      const name = outputs === "loss" ? "loss" : "full_logits";
      figures[`${name}_op_ms`] = Object.fromEntries(
        summary.byOp.slice(0, 8).map((e) => [e.name, Number(e.ms.toFixed(1))]),
      );
      figures[`${name}_providers`] = providerFigures(summary);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  figures.speedup_vs_pytorch = Number(
    ((figures.tokens_per_s as number) / PYTORCH_TOKENS_PER_S).toFixed(2),
  );
  figures.full_logits_speedup_vs_pytorch = Number(
    ((figures.full_logits_tokens_per_s as number) / PYTORCH_TOKENS_PER_S).toFixed(2),
  );
  // The speed-ups divide by a fixed figure: the PyTorch 1.13 measurement on another
  // machine, not one made in this run (bench llm measures PyTorch beside the toolkit).
  figures.pytorch_reference =
    `${PYTORCH_TOKENS_PER_S} tokens/s, the issue's PyTorch 1.13 figure, ` +
    "another machine: not measured in this run";
  return {
    ...figures,
    batch: B,
    seq: L,
    sep: SEP,
    threads: THREADS,
    runs: RUNS,
    device: sessions.get("loss")!.session.device,
  };
}
