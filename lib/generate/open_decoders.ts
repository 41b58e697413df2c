/**
 * How many decoders a model gets for inference, and where: one on this thread, or several in Web
 * Workers (worker_decoder.ts) that answer batches side by side. The output is the same either way
 * (a record's scores do not depend on its batch); what differs is speed and memory.
 *
 * `auto` (the command line's default) splits the cores among workers for a small model on the CPU: a decoding
 * step of a small model is too small a product to share well among threads, so two decoders of one
 * thread each answer more prompts a second than one decoder of two (docs/performance.md, "Decoders
 * in workers": about 1.3 to 1.4 times on 2 cores for the tiny preset, the same lines). A large model keeps one decoder:
 * its products use the threads well, and each worker holds its own copy of the weights. Given
 * threads (`--threads`) are a budget a user set, so `auto` keeps one decoder with them.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import { modelFamily, weightBytes } from "../model/family.ts";
import { quantizedLinear } from "../model/quantize.ts";
import { CachedDecoder } from "./decoder.ts";
import { type DecoderSpec, openWorkerDecoders, type WorkerDecoder } from "./worker_decoder.ts";

/** A decoder for inference: on this thread, or in a worker. */
export type InferenceDecoder = CachedDecoder | WorkerDecoder;

/**
 * Float32 weights up to this size get parallel decoders under `auto`: the tiny preset (21 MB) and
 * the demo's model, not the small preset (108 MB), whose second decoder doubled the peak memory
 * (672 MB to 1.39 GB) for about 1.2 to 1.4 times the users a second.
 */
export const AUTO_WORKERS_BYTES = 64 * 1024 ** 2;

/**
 * The most decoders `auto` opens: each costs a copy of the weights and 75 to 120 MB of its own (a
 * JavaScript isolate, onnxruntime's sessions and packed weights; the demo's model: 246 MB peak with
 * one decoder, 361 to 374 MB with two, 441 MB with three).
 */
export const AUTO_WORKERS_MAX = 4;

/** What `auto` decides from. */
export interface AutoWorkersInput {
  /** Bytes of the model's weights as float32. */
  weightBytes: number;
  /** Cores of the machine. */
  cores: number;
  /** Threads the user gave, if any. */
  threads?: number;
}

/**
 * The number of decoders `auto` opens on the CPU: one per core (at most
 * {@linkcode AUTO_WORKERS_MAX}, the cores shared among them) for weights up to
 * {@linkcode AUTO_WORKERS_BYTES}, else one; one when the user gave threads.
 *
 * @example
 * ```ts
 * autoWorkers({ weightBytes: 21e6, cores: 2 }); // 2
 * autoWorkers({ weightBytes: 108e6, cores: 2 }); // 1
 * autoWorkers({ weightBytes: 21e6, cores: 2, threads: 1 }); // 1
 * ```
 */
export function autoWorkers(input: AutoWorkersInput): number {
  if (input.threads !== undefined || input.weightBytes > AUTO_WORKERS_BYTES) return 1;
  return Math.max(1, Math.min(input.cores, AUTO_WORKERS_MAX));
}

/**
 * The number of decoders a user asked for: a positive integer, or `auto`; anything else is an
 * OptionError on `workers`.
 *
 * @example
 * ```ts
 * parseWorkers("auto"); // "auto"
 * parseWorkers("3"); // 3
 * ```
 */
export function parseWorkers(text: string): number | "auto" {
  if (text === "auto") return "auto";
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 256) {
    throw new OptionError(
      "workers",
      (name) => `${name} must be auto or an integer from 1 to 256, got "${text}"`,
    );
  }
  return n;
}

/**
 * The cores shared among `workers` decoders, as evenly as they go: the first `cores % workers`
 * get one more (at least one each).
 *
 * @example
 * ```ts
 * coreShares(6, 4); // [2, 2, 1, 1]
 * coreShares(2, 3); // [1, 1, 1]
 * ```
 */
export function coreShares(cores: number, workers: number): number[] {
  const each = Math.floor(cores / workers);
  return Array.from(
    { length: workers },
    (_, i) => Math.max(1, each + (i < cores % workers ? 1 : 0)),
  );
}

/** Options of {@linkcode openDecoders}. */
export interface OpenDecodersOptions {
  /** How many decoders (default 1; `auto`: {@linkcode autoWorkers} on the CPU). */
  workers?: number | "auto";
  /** Intra-op threads of each (default: the cores shared among the decoders, {@linkcode coreShares}). */
  threads?: number;
  /** Cores of the machine (default `navigator.hardwareConcurrency`). */
  cores?: number;
}

/**
 * Opens the decoders of `spec`: `workers` of them in workers (one: on this thread). Under `auto`
 * on a device other than the CPU (asked for, or found by `auto`) one decoder on this thread: the
 * first worker's device says which, and is given back when it is not the CPU.
 */
export async function openDecoders(
  spec: Omit<DecoderSpec, "threads">,
  options: OpenDecodersOptions = {},
): Promise<InferenceDecoder[]> {
  const cores = options.cores ?? navigator.hardwareConcurrency ?? 1;
  const asked = options.workers ?? 1;
  const auto = asked === "auto";
  const workers = asked !== "auto"
    ? asked
    : spec.device === undefined || spec.device === "auto" || spec.device === "cpu"
    ? autoWorkers({ weightBytes: weightBytes(spec.weights), cores, threads: options.threads })
    : 1;
  if (workers <= 1) return [await openCachedDecoder({ ...spec, threads: options.threads })];
  const threads = options.threads ?? coreShares(cores, workers);
  const after = (i: number) => typeof threads === "number" ? threads : threads.slice(i);
  if (auto && spec.device !== "cpu") {
    // `auto` may find a GPU: then one decoder here, with every core for what stays on the CPU.
    const [first] = await openWorkerDecoders(spec, { workers: 1, threads: after(0) });
    if (first.device !== "cpu") {
      const device = first.device;
      await first.release();
      return [await openCachedDecoder({ ...spec, device, threads: options.threads })];
    }
    // The others on the same terms, so through the onnxruntime the first loaded: `auto` loads
    // the CUDA runtime package where one is installed, and a worker that loaded the plain
    // package beside it would find the process's libonnxruntime of another version. The first
    // found no GPU, so theirs fall back to the CPU as well.
    const rest = await openWorkerDecoders(spec, {
      workers: workers - 1,
      threads: after(1),
    }).catch(async (error) => {
      await first.release();
      throw error;
    });
    return [first, ...rest];
  }
  return await openWorkerDecoders(spec, { workers, threads });
}

/**
 * The decoder of `spec` on the calling thread (a worker's, or the main one): its family, with the
 * quantized linears when asked, on `spec.device` with `spec.threads`.
 */
export async function openCachedDecoder(spec: DecoderSpec): Promise<CachedDecoder> {
  const linear = spec.quantize ? quantizedLinear(spec.weights, spec.quantize) : undefined;
  const family = modelFamily({ config: spec.config, weights: spec.weights }, {
    attention: spec.attention,
    addedRows: spec.addedRows,
    linear,
  });
  return await CachedDecoder.create(family, { device: spec.device, threads: spec.threads });
}
