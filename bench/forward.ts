/**
 * Benchmark of the GLM forward graph on the CPU: the tiny configuration (vocab 8000, hidden 256,
 * 4 layers, 4 heads), batch 8 of 256 tokens with sep 160, 2 intra-op threads, sequential
 * execution. Reports tokens per second (all B x L positions counted) for the graph that returns
 * full logits [B, L, V] and the loss (`tokens_per_s`), the loss-only graph that computes logits
 * at the 96 part-B positions only (`loss_tokens_per_s`), and the logits-only graph; best and
 * median over repeated runs, interleaved so that load from other processes hits all alike; and
 * per-operator kernel times from onnxruntime's profiler (`both_op_ms`, `loss_op_ms`).
 * Reference: PyTorch 1.13 on 2 threads, about 6,500 tokens/s.
 *
 * @module
 */

import { presetConfig } from "../lib/model/config.ts";
import { buildForwardGraph, type ForwardOutputs } from "../lib/model/glm.ts";
import { randomWeights } from "../lib/model/weights.ts";
import type { TensorData } from "../lib/onnx/graph.ts";
import { Rng } from "../lib/random.ts";
import { readProfile } from "../lib/runtime/profile.ts";
import { type OptimizationLevel, Session } from "../lib/runtime/session.ts";

const B = 8;
const L = 256;
const SEP = 160;
const THREADS = 2;
const WARMUP = 2;
const RUNS = 10;
const PYTORCH_TOKENS_PER_S = 6500;

function batchFeeds(vocab: number): Record<string, TensorData> {
  const rng = new Rng(2);
  const ids = Int32Array.from({ length: B * L }, () => rng.int(vocab));
  const pos = new Int32Array(B * 2 * L);
  const labels = new Int32Array(B * L).fill(-100);
  const mask = new Float32Array(B * L);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < L; t++) {
      // Part A positions 0..sep-1; part B one span at the last mask: inter sep-1, intra 1, 2, ...
      pos[b * 2 * L + t] = t < SEP ? t : SEP - 1;
      pos[b * 2 * L + L + t] = t < SEP ? 0 : t - SEP + 1;
      if (t >= SEP) {
        labels[b * L + t] = rng.int(vocab);
        mask[b * L + t] = 1;
      }
    }
  }
  return {
    input_ids: { dtype: "int32", shape: [B, L], data: ids },
    position_ids: { dtype: "int32", shape: [B, 2, L], data: pos },
    sep: { dtype: "int32", shape: [B], data: new Int32Array(B).fill(SEP) },
    labels: { dtype: "int32", shape: [B, L], data: labels },
    loss_mask: { dtype: "float32", shape: [B, L], data: mask },
  };
}

interface Variant {
  name: string;
  outputs: ForwardOutputs;
  optimization: OptimizationLevel;
}

const VARIANTS: Variant[] = [
  { name: "both", outputs: "both", optimization: "all" },
  { name: "loss", outputs: "loss", optimization: "all" },
  { name: "logits", outputs: "logits", optimization: "all" },
  { name: "loss_basic", outputs: "loss", optimization: "basic" },
];

/** Runs the benchmark; returns its figures. */
export async function run(): Promise<Record<string, unknown>> {
  const config = presetConfig("tiny", 8000);
  const weights = randomWeights(config, new Rng(1));
  const feeds = batchFeeds(config.vocabSize);
  const sessions = new Map<string, { session: Session; feeds: Record<string, TensorData> }>();
  for (const v of VARIANTS) {
    const { graph } = buildForwardGraph({ config, weights, outputs: v.outputs });
    const session = await Session.create(graph, {
      device: "cpu",
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
    const prefix = v.name === "both" ? "" : `${v.name}_`;
    figures[`${prefix}tokens_per_s`] = Math.round((tokens / best) * 1000);
    figures[`${prefix}median_tokens_per_s`] = Math.round((tokens / median) * 1000);
    figures[`${prefix}best_ms`] = Number(best.toFixed(1));
    figures[`${prefix}worst_ms`] = Number(ms[ms.length - 1].toFixed(1));
  }
  // Where the time goes: a separate profiled session per output variant (profiling slows a run).
  const dir = await Deno.makeTempDir();
  try {
    for (const outputs of ["both", "loss"] as const) {
      const { graph } = buildForwardGraph({ config, weights, outputs });
      const prefix = `${dir}/${outputs}`;
      const session = await Session.create(graph, {
        device: "cpu",
        threads: THREADS,
        profile: prefix,
      });
      for (let i = 0; i < 3; i++) await session.run(feeds);
      session.endProfiling();
      await session.release();
      const summary = await readProfile(prefix);
      figures[`${outputs}_op_ms`] = Object.fromEntries(
        summary.byOp.slice(0, 8).map((e) => [e.name, Number(e.ms.toFixed(1))]),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  figures.speedup_vs_pytorch = Number(
    ((figures.tokens_per_s as number) / PYTORCH_TOKENS_PER_S).toFixed(2),
  );
  figures.loss_speedup_vs_pytorch = Number(
    ((figures.loss_tokens_per_s as number) / PYTORCH_TOKENS_PER_S).toFixed(2),
  );
  return {
    ...figures,
    batch: B,
    seq: L,
    sep: SEP,
    threads: THREADS,
    runs: RUNS,
    device: "cpu",
  };
}
