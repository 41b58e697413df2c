/**
 * Benchmark runner: `deno task bench NAME` runs `bench/NAME.ts` and prints one JSON line
 * `{"bench": NAME, ...figures}`; `deno task bench` runs every benchmark in BENCHES in turn.
 * Each benchmark module exports `run(options): Promise<Record<string, unknown>>`.
 * `--device NAME` (default cpu) runs the onnxruntime benchmarks (forward, train, infer) on that
 * device; their figures say which (`device`) and, from onnxruntime's profiler, how the kernel
 * time and nodes split between execution providers (`*_providers`).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { InputError } from "../lib/errors.ts";
import { type Device, DEVICES } from "../lib/runtime/session.ts";

/**
 * Benchmarks in pipeline order; each file is `bench/NAME.ts`. `llm` (bench/llm.ts: a
 * Qwen2.5-0.5B-shaped checkpoint) runs only when named: it writes a 1 GB checkpoint once and its
 * LoRA phase needs about 4 GB of memory. `sasrec` (bench/sasrec.ts: SASRec trained on Beauty)
 * too: it trains for a quarter of an hour; and `quality` (bench/quality.ts: the sequential recipe
 * on Beauty end to end), which runs for over an hour at its full length; and `supervision`
 * (bench/supervision.ts), which needs the Beauty data too; and `text` (bench/text.ts: every task
 * family on the Musical Instruments reviews with its baselines, about 45 minutes on 2 loaded cores).
 */
export const BENCHES = ["textualize", "collate", "forward", "train", "infer", "eval"] as const;

/** What every benchmark's `run` is given. */
export interface BenchOptions {
  /** The device of the onnxruntime benchmarks (default cpu). */
  device?: Device;
}

async function runOne(name: string, options: BenchOptions): Promise<void> {
  let module: { run: (options: BenchOptions) => Promise<Record<string, unknown>> };
  try {
    module = await import(`./${name}.ts`);
  } catch (error) {
    if (error instanceof TypeError && String(error.message).includes("Module not found")) {
      console.error(`error: unknown benchmark "${name}" (known: ${BENCHES.join(", ")})`);
      Deno.exit(2);
    }
    throw error;
  }
  let figures: Record<string, unknown>;
  try {
    figures = await module.run(options);
  } catch (error) {
    // A device that cannot load, bad data: one line, as the command line reports it.
    if (error instanceof InputError) {
      console.error(`error: ${error.message}`);
      Deno.exit(1);
    }
    throw error;
  }
  console.log(JSON.stringify({ bench: name, ...figures }));
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { device: { type: "string", default: "cpu" } },
    allowPositionals: true,
  });
  if (!(DEVICES as readonly string[]).includes(values.device)) {
    console.error(`error: --device "${values.device}" is not one of ${DEVICES.join(", ")}`);
    Deno.exit(2);
  }
  const names = positionals.length > 0 ? positionals : [...BENCHES];
  for (const name of names) await runOne(name, { device: values.device as Device });
}
