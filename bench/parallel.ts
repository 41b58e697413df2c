/**
 * Benchmark of data-parallel training (`deno task bench parallel`, needs `mpirun`):
 *
 * - `tokens_per_s`: `pretrain` LoRA steps (rank 8 on qkv) of a GLM of hidden 256, 4 layers, 4
 *   heads on the demo dataset, global batch 16, max length 128, as one process with 1 thread, one
 *   process with 2 threads and 2 MPI ranks with 1 thread each (`mpirun -np 2`); the median of the
 *   logged per-step tokens/s (steps 3 to 12; a rank's step includes the all-reduce), best of
 *   interleaved rounds (other processes on the machine hit every setting alike).
 * - `allreduce`: `MPI_Allreduce` of a buffer the size of the 0.5B LoRA step's gradients (bench
 *   llm's setup: Qwen2.5-0.5B shape, rank 8 on q, k, v, the intra-position table and 5 new rows)
 *   between 2 ranks on this machine, and its share of that step's time as bench llm measured it
 *   (`LORA_05B_STEP_S`: running the 4 GB step here beside the ranks would measure the machine's
 *   load, not the all-reduce).
 * - `on_paper`: what N machines of a given network give on the 0.5B LoRA step: a ring all-reduce
 *   moves 2 (N - 1) / N of the buffer through each machine's link, plus 2 (N - 1) latencies; the
 *   speedup is N x step / (step + all-reduce), the step time per machine unchanged.
 *
 * @module
 */

import { join } from "node:path";
import { parseDecoderConfig } from "../lib/model/families/registry.ts";
import { trainableParams } from "../lib/train/train_graph.ts";
import { readMetrics } from "../lib/train/outputs.ts";
import { demoDataset, smallConfig, writeSmallModel } from "../tests/helpers/train.ts";
import { QWEN25_05B } from "./llm.ts";
import { withTempDir } from "../tests/helpers/temp.ts";

/**
 * bench llm's 0.5B LoRA step: 179.1 tokens/s of batch 2 x 256 on 2 threads (docs/performance.md,
 * quiet).
 */
const LORA_05B_STEP_S = 512 / 179.1;
const ROUNDS = 2;
const MPI_ENV = { OMPI_MCA_btl_vader_single_copy_mechanism: "none", NO_COLOR: "1" };
/** Networks for the estimate: usable bandwidth (bytes/s) and one message's latency (s). */
const NETWORKS = {
  "10GbE": { bandwidth: 1.1e9, latency: 30e-6 },
  "25GbE": { bandwidth: 2.8e9, latency: 20e-6 },
  "100Gb InfiniBand": { bandwidth: 11e9, latency: 2e-6 },
};

async function exec(command: string[]): Promise<string> {
  const out = await new Deno.Command(command[0], {
    args: command.slice(1),
    stdout: "piped",
    stderr: "piped",
    env: MPI_ENV,
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${command.join(" ")}: ${new TextDecoder().decode(out.stderr).slice(-500)}`);
  }
  return text;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** The number of floats of the 0.5B LoRA step's gradients (bench llm's trainable tensors). */
function loraFloats05B(): number {
  const config = parseDecoderConfig(QWEN25_05B, "Qwen2.5-0.5B");
  const lora = { rank: 8, alpha: 16, dropout: 0, targets: ["q_proj", "k_proj", "v_proj"] };
  const params = trainableParams({ config, lora, decoder: { attention: "causal", addedRows: 5 } });
  return params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
}

/** Runs the benchmark; returns its figures. */
export async function run(): Promise<Record<string, unknown>> {
  return await withTempDir(async (dir) => {
    const data = await demoDataset();
    const model = join(dir, "model");
    await writeSmallModel(
      model,
      await smallConfig({ hiddenSize: 256, numLayers: 4, numHeads: 4, maxSequenceLength: 128 }),
    );
    const pretrain = (out: string, threads: number) => [
      Deno.execPath(),
      ...["run", "-A", "main.ts", "pretrain", "--data", data, "--model", model, "--out", out],
      ...["--lora", "--steps", "12", "--batch-size", "16", "--max-length", "128"],
      ...["--val-batches", "0", "--save-every", "1000", "--lr", "1e-3", "--seed", "1"],
      ...["--threads", String(threads), "--quiet"],
    ];
    const settings: Record<string, (out: string) => string[]> = {
      one_process_1_thread: (out) => pretrain(out, 1),
      one_process_2_threads: (out) => pretrain(out, 2),
      two_ranks_1_thread: (out) => [
        ...["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2"],
        ...pretrain(out, 1),
      ],
    };
    const best: Record<string, number> = {};
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, command] of Object.entries(settings)) {
        const out = join(dir, `${name}-${round}`);
        await exec(command(out));
        const lines = (await readMetrics(join(out, "metrics.jsonl"))).slice(2);
        const tps = median(lines.map((l) => l.tokens_per_s));
        best[name] = Math.max(best[name] ?? 0, tps);
      }
    }
    const floats = loraFloats05B();
    const reduce = JSON.parse(
      await exec([
        ...["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2"],
        ...[Deno.execPath(), "run", "-A", "bench/parallel_allreduce.ts", String(floats), "30"],
      ]),
    );
    const bytes = floats * 4;
    const onPaper: Record<string, Record<string, unknown>> = {};
    for (const [network, { bandwidth, latency }] of Object.entries(NETWORKS)) {
      for (const n of [2, 8, 32]) {
        const seconds = (2 * (n - 1) / n) * bytes / bandwidth + 2 * (n - 1) * latency;
        onPaper[`${network} x ${n}`] = {
          allreduce_ms: Number((seconds * 1000).toFixed(2)),
          speedup: Number((n * LORA_05B_STEP_S / (LORA_05B_STEP_S + seconds)).toFixed(2)),
        };
      }
    }
    return {
      machine_loaded: true,
      tokens_per_s: best,
      two_ranks_over_one_thread: Number(
        (best.two_ranks_1_thread / best.one_process_1_thread).toFixed(2),
      ),
      two_ranks_over_two_threads: Number(
        (best.two_ranks_1_thread / best.one_process_2_threads).toFixed(2),
      ),
      allreduce_05b_lora: {
        floats,
        megabytes: Number((bytes / 1e6).toFixed(2)),
        ranks: reduce.ranks,
        best_ms: reduce.best_ms,
        median_ms: reduce.median_ms,
        lora_step_s: Number(LORA_05B_STEP_S.toFixed(3)),
        share_of_step: Number((reduce.median_ms / 1000 / LORA_05B_STEP_S).toFixed(4)),
      },
      on_paper_05b_lora: onPaper,
    };
  });
}
