/**
 * CPU time (user + system of this process) per run of the forward loss graph and of one LoRA
 * training step, tiny configuration, batch 8 x 256, one intra-op thread: a figure that other
 * processes on a shared machine disturb far less than wall time, for comparing onnxruntime
 * builds. How the onnxruntime versions were compared (docs/devices.md): two checkouts whose
 * deno.json pin onnxruntime-node 1.30.0 and 1.29.0, `deno task bench cpu_time` run alternately
 * in each, five times. Reports the minimum and median over the runs, in milliseconds, and the
 * onnxruntime version.
 *
 * @module
 */

import process from "node:process";
import { presetConfig } from "../lib/model/config.ts";
import { buildForwardGraph } from "../lib/model/glm.ts";
import { randomWeights } from "../lib/model/weights.ts";
import type { TensorData } from "../lib/onnx/graph.ts";
import { Rng } from "../lib/random.ts";
import { runtimeVersion } from "../lib/runtime/ort.ts";
import { Session } from "../lib/runtime/session.ts";
import { DEFAULT_LORA, initLora } from "../lib/model/lora.ts";
import { buildTrainStepGraph, trainNames } from "../lib/train/train_graph.ts";
import type { BenchOptions } from "./main.ts";
import { syntheticBatch } from "./synthetic_batch.ts";

const WARMUP = 2;

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

async function measure(session: Session, feeds: Record<string, TensorData>, runs: number) {
  for (let i = 0; i < WARMUP; i++) await session.run(feeds);
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = cpuMs();
    await session.run(feeds);
    ms.push(cpuMs() - start);
  }
  ms.sort((a, b) => a - b);
  return { min: Number(ms[0].toFixed(1)), median: Number(ms[runs >> 1].toFixed(1)) };
}

/** Runs the benchmark; returns its figures. */
export async function run(options: BenchOptions = {}): Promise<Record<string, unknown>> {
  const device = options.device ?? "cpu";
  const config = presetConfig("tiny", 8000);
  const weights = randomWeights(config, new Rng(1));
  const forward = await Session.create(
    buildForwardGraph({ config, weights, outputs: "loss" }).graph,
    {
      device,
      threads: 1,
    },
  );
  const forwardMs = await measure(forward, syntheticBatch(config.vocabSize), 8);
  await forward.release();

  const setup = { config, weights, lora: { ...DEFAULT_LORA } };
  const { graph, params } = buildTrainStepGraph(setup);
  const initial = initLora(config, setup.lora, new Rng(3));
  const feeds: Record<string, TensorData> = {
    ...syntheticBatch(config.vocabSize),
    loss_scale: { dtype: "float32", shape: [1], data: Float32Array.of(1) },
    lr: { dtype: "float32", shape: [], data: Float32Array.of(1e-4) },
    bias_correction1: { dtype: "float32", shape: [], data: Float32Array.of(0.1) },
    bias_correction2: { dtype: "float32", shape: [], data: Float32Array.of(0.001) },
  };
  for (const p of params) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    feeds[p.name] = { dtype: "float32", shape: p.shape, data: initial.get(p.name)!.slice() };
    feeds[trainNames.m(p.name)] = { dtype: "float32", shape: p.shape, data: new Float32Array(n) };
    feeds[trainNames.v(p.name)] = { dtype: "float32", shape: p.shape, data: new Float32Array(n) };
  }
  const train = await Session.create(graph, { device, threads: 1 });
  const trainMs = await measure(train, feeds, 6);
  await train.release();
  return {
    forward_cpu_ms: forwardMs,
    train_cpu_ms: trainMs,
    threads: 1,
    onnxruntime: runtimeVersion(),
    device: train.device,
  };
}
