/**
 * A {@linkcode StepModel} whose decoder runs in a Web Worker (decoder_worker.ts), so several
 * decoders of one model run at once. onnxruntime-node runs a session on the calling thread, so in
 * one thread two decoders take turns; in workers they run side by side, and the search that drives
 * them (a few percent of the time) stays on the main thread. For a small model, N decoders of one
 * intra-op thread each decode more prompts a second than one decoder of N threads, whose
 * threads share each small product (docs/performance.md, "Decoders in workers").
 *
 * A worker builds its decoder from a {@linkcode DecoderSpec}, plain data that is copied into it:
 * each worker holds its own copy of the weights.
 *
 * @example
 * ```ts ignore
 * import { glmDecoderConfig, presetConfig } from "../model/config.ts";
 * import { randomWeights } from "../model/weights.ts";
 * import { Rng } from "../random.ts";
 *
 * const glm = presetConfig("tiny", 8000);
 * const spec = { config: glmDecoderConfig(glm), weights: randomWeights(glm, new Rng(1)) };
 * const decoders = await openWorkerDecoders(spec, { workers: 2, threads: 1 });
 * // new Predictor({ model: decoders, tokenizer, pool }, options) runs two batches at once.
 * for (const d of decoders) await d.release();
 * ```
 *
 * @module
 */

import { InputError, UsageError } from "../errors.ts";
import type { DecoderConfig } from "../model/families/config.ts";
import type { QuantizeOptions } from "../model/quantize.ts";
import type { Weights } from "../model/weights.ts";
import type { Device, ResolvedDevice } from "../runtime/session.ts";
import type { PromptInput, ScoreInput, StepInput, StepModel } from "./step_model.ts";

/** What a worker needs to build a decoder: everything `modelFamily` takes, as plain data. */
export interface DecoderSpec {
  /** The model's normalised configuration (lib/model/families/config.ts). */
  config: DecoderConfig;
  /** Every weight, float32, by checkpoint name (an adapter already merged in). */
  weights: Weights;
  /** Rows added to the vocabulary (special and item tokens), if any. */
  addedRows?: number;
  /** The attention rule the model was trained with. */
  attention?: "prefix" | "causal";
  /** Weight-only quantization of the linear modules (lib/model/quantize.ts). */
  quantize?: QuantizeOptions;
  /** Where to run (default `auto`). */
  device?: Device;
  /** Intra-op threads of the worker's sessions. */
  threads?: number;
}

/**
 * A call that returns nothing (`keepPrompts`, `resetPast`): held here and sent with the next call,
 * which the worker answers after applying it, so its error is that call's.
 */
export type StateChange = { op: "keepPrompts"; keep: readonly number[] } | { op: "resetPast" };

/** A call to a worker (decoder_worker.ts). */
export type DecoderRequest =
  & { id: number; before?: readonly StateChange[] }
  & (
    | { op: "open"; spec: DecoderSpec }
    | { op: "prefill"; prompts: readonly PromptInput[] }
    | { op: "step"; input: StepInput }
    | { op: "scoreTargets"; input: ScoreInput }
    | { op: "release" }
  );

/** The counters of a worker's decoder (for benchmarks), sent back with every run. */
export interface DecoderCounters {
  runSeconds: number;
  runs: number;
  prefillRows: number;
  stepRows: number;
}

/** A worker's answer to the call of the same `id`. */
export interface WorkerReply {
  id: number;
  /**
   * The call failed: the error as thrown in the worker, and its kind (bad input, a usage mistake,
   * or anything else: a bug), which decides how the command line reports it.
   */
  error?: { name: string; message: string; stack?: string; kind?: "input" | "usage" };
  /** `open`: the device the sessions run on and the rows of the output. */
  device?: ResolvedDevice;
  vocabSize?: number;
  /** `step`, `scoreTargets`: their result. */
  data?: Float32Array;
  counters?: DecoderCounters;
}

/** What a worker sends back of an error it met. */
export function errorReply(error: unknown): NonNullable<WorkerReply["error"]> {
  const e = error instanceof Error ? error : new Error(String(error));
  const kind = e instanceof InputError ? "input" : e instanceof UsageError ? "usage" : undefined;
  return { name: e.name, message: e.message, stack: e.stack, ...(kind ? { kind } : {}) };
}

/**
 * An error thrown in a worker, rethrown here as its kind (an InputError for bad input, a device
 * that cannot load, ...; a UsageError; else an Error with the worker's stack: a bug).
 */
function rethrown(e: NonNullable<WorkerReply["error"]>): Error {
  if (e.kind === "input") return Object.assign(new InputError(e.message), { name: e.name });
  if (e.kind === "usage") return Object.assign(new UsageError(e.message), { name: e.name });
  const error = new Error(e.message);
  error.name = e.name;
  if (e.stack) error.stack = `${e.stack}\n    (in a decoder worker)`;
  return error;
}

/** A decoder in a Web Worker (see the module docs). */
export class WorkerDecoder implements StepModel {
  /** Rows of the model's output. */
  readonly vocabSize: number;
  /** The device the worker's sessions run on. */
  readonly device: ResolvedDevice;
  /** Seconds the worker spent inside onnxruntime's `run` so far. */
  runSeconds = 0;
  /** Number of `run` calls so far. */
  runs = 0;
  /** Rows part A's prefills have encoded so far. */
  prefillRows = 0;
  /** Rows the steps have fed so far. */
  stepRows = 0;

  readonly #worker: Worker;
  readonly #pending: Map<number, (reply: WorkerReply) => void>;
  /** Set when the worker died (an uncaught error in it): every later call throws it. */
  readonly #dead: { error?: Error };
  /** The id of the next call (0 was the worker's `open`). */
  #next = 1;
  /** The state changes since the last call, sent with the next. */
  #changes: StateChange[] = [];
  /** Whether the worker was ended (release). */
  #ended = false;

  private constructor(
    worker: Worker,
    pending: Map<number, (reply: WorkerReply) => void>,
    dead: { error?: Error },
    opened: WorkerReply,
  ) {
    this.#worker = worker;
    this.#pending = pending;
    this.#dead = dead;
    this.vocabSize = opened.vocabSize!;
    this.device = opened.device!;
  }

  /** Starts a worker and builds `spec`'s decoder in it (a device that cannot load throws here). */
  static async create(spec: DecoderSpec): Promise<WorkerDecoder> {
    const worker = new Worker(new URL("./decoder_worker.ts", import.meta.url).href, {
      type: "module",
    });
    const pending = new Map<number, (reply: WorkerReply) => void>();
    const dead: { error?: Error } = {};
    worker.onmessage = (event: MessageEvent<WorkerReply>) => {
      const settle = pending.get(event.data.id);
      pending.delete(event.data.id);
      settle?.(event.data);
    };
    // An uncaught error ends the worker's answers: the calls waiting fail, and so does every later
    // one, at once (a worker that answers nothing more would hang them).
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      const error = { name: "Error", message: `decoder worker died: ${event.message}` };
      dead.error ??= rethrown(error);
      for (const [id, settle] of pending) settle({ id, error });
      pending.clear();
    };
    let opened: WorkerReply;
    try {
      // postMessage throws for a spec it cannot clone (a function in it, or no memory for the copy).
      opened = await new Promise<WorkerReply>((resolve) => {
        pending.set(0, resolve);
        worker.postMessage({ id: 0, op: "open", spec } satisfies DecoderRequest);
      });
      if (opened.error) throw rethrown(opened.error);
    } catch (error) {
      worker.terminate(); // a worker left running keeps the process alive
      throw error;
    }
    return new WorkerDecoder(worker, pending, dead, opened);
  }

  /** Sends a call with the state changes before it, waits for its answer; throws its error. */
  async #call(request: DecoderRequest): Promise<WorkerReply> {
    if (this.#ended && request.op !== "release") throw new Error("the decoder was released");
    if (this.#dead.error) throw this.#dead.error;
    const reply = await new Promise<WorkerReply>((resolve) => {
      this.#pending.set(request.id, resolve);
      try {
        this.#worker.postMessage({ ...request, before: this.#changes });
      } catch (error) {
        // Not sent (an input it cannot clone): the state changes wait for the next call.
        this.#pending.delete(request.id);
        throw error;
      }
      this.#changes = [];
    });
    if (reply.error) throw rethrown(reply.error);
    if (reply.counters) Object.assign(this, reply.counters);
    return reply;
  }

  async prefill(prompts: readonly PromptInput[]): Promise<void> {
    await this.#call({ id: this.#next++, op: "prefill", prompts });
  }

  keepPrompts(keep: readonly number[]): void {
    this.#changes.push({ op: "keepPrompts", keep: [...keep] });
  }

  resetPast(): void {
    this.#changes.push({ op: "resetPast" });
  }

  async step(input: StepInput): Promise<Float32Array> {
    return (await this.#call({ id: this.#next++, op: "step", input })).data!;
  }

  async scoreTargets(input: ScoreInput): Promise<Float32Array> {
    return (await this.#call({ id: this.#next++, op: "scoreTargets", input })).data!;
  }

  /** Frees the worker's sessions and ends the worker (a second call does nothing). */
  async release(): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    try {
      if (!this.#dead.error) await this.#call({ id: this.#next++, op: "release" });
    } finally {
      this.#worker.terminate();
    }
  }
}

/** Options of {@linkcode openWorkerDecoders}. */
export interface WorkerDecodersOptions {
  /** How many decoders (workers). */
  workers: number;
  /** Intra-op threads of each, or of each in turn (default: the spec's). */
  threads?: number | readonly number[];
}

/**
 * `workers` decoders of `spec`, each in its own worker, opened one after the other (so a device
 * probe or a load error is met once); any opened ones are released if a later one fails.
 */
export async function openWorkerDecoders(
  spec: DecoderSpec,
  options: WorkerDecodersOptions,
): Promise<WorkerDecoder[]> {
  const out: WorkerDecoder[] = [];
  try {
    for (let i = 0; i < options.workers; i++) {
      const { threads } = options;
      const own = typeof threads === "number" ? threads : threads?.[i];
      out.push(await WorkerDecoder.create({ ...spec, threads: own ?? spec.threads }));
    }
  } catch (error) {
    for (const d of out) await d.release().catch(() => {});
    throw error;
  }
  return out;
}
