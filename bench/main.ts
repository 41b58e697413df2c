/**
 * Benchmark runner: `deno task bench NAME` runs `bench/NAME.ts` and prints one JSON line
 * `{"bench": NAME, ...figures}`; `deno task bench` runs every benchmark in BENCHES in turn.
 * Each benchmark module exports `run(options): Promise<Record<string, unknown>>`.
 * `--device NAME` (default cpu) runs the onnxruntime benchmarks (forward, train, infer, parity,
 * cpu_time) on that device, and is refused for the others when they are named; their figures say which (`device`), and forward's and train's, from onnxruntime's
 * profiler, how the kernel time and nodes split between execution providers (`*_providers`).
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

/** Benchmarks and checks that run only when named (see above; the files say what each does). */
export const NAMED_ONLY = [
  "llm",
  "sasrec",
  "quality",
  "supervision",
  "text",
  "demo_ceiling",
  "demo_room",
  "parallel",
  "parity",
  "cpu_time",
  "tokenizer_parity",
  "transformers_parity",
  "ranking_parity",
] as const;

/** The benchmarks that run on `--device`; the others run on the CPU whatever it says. */
const ON_DEVICE: readonly string[] = ["forward", "train", "infer", "parity", "cpu_time"];

/** Every name `deno task bench NAME` takes. */
const KNOWN: readonly string[] = [...BENCHES, ...NAMED_ONLY];

/** What every benchmark's `run` is given. */
export interface BenchOptions {
  /** The device of the onnxruntime benchmarks (default cpu). */
  device?: Device;
}

async function runOne(name: string, options: BenchOptions): Promise<void> {
  // Only the benchmarks: bench/ also holds their helpers (and this runner).
  if (!KNOWN.includes(name)) {
    console.error(`error: unknown benchmark "${name}" (known: ${KNOWN.join(", ")})`);
    Deno.exit(2);
  }
  let figures: Record<string, unknown>;
  try {
    // Imported here: a benchmark checks some settings as it loads (INFER_BENCH_BATCH=0).
    const module: { run: (options: BenchOptions) => Promise<Record<string, unknown>> } =
      await import(`./${name}.ts`);
    figures = await module.run(options);
  } catch (error) {
    // A device that cannot load, bad data: one line, as the command line reports it.
    if (error instanceof InputError) {
      console.error(`error: ${error.message}`);
      Deno.exit(1);
    }
    // A bundle (tools/bundle.ts --bench) ships bench/ without fixtures/ and tests/, which some
    // benchmarks import: said in one line.
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof TypeError && message.startsWith("Module not found")) {
      console.error(
        `error: ${name} needs a file this copy lacks (${message.split("\n")[0]}): run it ` +
          "from a clone of the repository",
      );
      Deno.exit(1);
    }
    throw error;
  }
  console.log(JSON.stringify({ bench: name, ...figures }));
}

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      options: { device: { type: "string", default: "cpu" } },
      allowPositionals: true,
    });
  } catch (error) {
    console.error(`error: ${(error as Error).message} (the one flag is --device NAME)`);
    Deno.exit(2);
  }
  const { values, positionals } = parsed;
  if (!(DEVICES as readonly string[]).includes(values.device)) {
    console.error(`error: --device "${values.device}" is not one of ${DEVICES.join(", ")}`);
    Deno.exit(2);
  }
  const names = positionals.length > 0 ? positionals : [...BENCHES];
  // A device other than the CPU for a benchmark named that cannot use it would report CPU
  // figures as if they were the device's (the whole set runs its CPU-only part as it is).
  const cpuOnly = positionals.filter((name) => KNOWN.includes(name) && !ON_DEVICE.includes(name));
  if (values.device !== "cpu" && cpuOnly.length > 0) {
    console.error(
      `error: --device ${values.device}: ${cpuOnly.join(", ")} ${
        cpuOnly.length === 1 ? "runs" : "run"
      } on the CPU only (--device applies to ${ON_DEVICE.join(", ")})`,
    );
    Deno.exit(2);
  }
  for (const name of names) await runOne(name, { device: values.device as Device });
}
