/**
 * The session layer: with `tensor.ts`, the only user of onnxruntime (loaded by `ort.ts`). Creates
 * inference sessions from graphs the toolkit builds, on the device asked for (`auto` tries CUDA,
 * then WebGPU, then the CPU; a device named explicitly that cannot load is a one-line
 * {@linkcode DeviceError}, never a silent fallback), with the thread and optimization settings
 * that measured best for these graphs, and runs them asking only for the outputs needed.
 *
 * @example
 * ```ts
 * import type { Graph } from "../onnx/graph.ts";
 * import { int32 } from "./tensor.ts";
 *
 * declare const graph: Graph, ids: Int32Array;
 * const session = await Session.create(graph, { device: "cpu", threads: 2 });
 * const { loss } = await session.run({ input_ids: int32([1, 3], ids) }, ["loss"]);
 * await session.release();
 * ```
 *
 * @module
 */

import type * as ort from "onnxruntime-node";
import { loadedOrt, loadOrt, type Ort, usesCudaRuntime } from "./ort.ts";
import { InputError } from "../errors.ts";
import { Graph, type TensorData } from "../onnx/graph.ts";
import { type EncodedModel, encodeModelChunks, joinChunks } from "../onnx/proto.ts";
import { fromOrt, type OrtTensor, toOrt } from "./tensor.ts";
import {
  cudaProblem,
  cudaRuntimePackage,
  gpuDeviceProblem,
  ortLibraryDir,
  packageLibraryDir,
  webgpuProblem,
} from "./providers.ts";

import { DEFAULT_DEVICE, type Device, DEVICES, type ResolvedDevice } from "./devices.ts";
export { DEFAULT_DEVICE, type Device, DEVICES, type ResolvedDevice };

/** A device named explicitly could not be used (exit status 1, one line). */
export class DeviceError extends InputError {
  /** The error's name, as stacks show it. */
  override name = "DeviceError";
}

/** Graph optimization levels of onnxruntime. */
export type OptimizationLevel = "disabled" | "basic" | "extended" | "all";

/** Options of {@linkcode Session.create}. */
export interface SessionOptions {
  /** Where to run (default `auto`). */
  device?: Device;
  /** Intra-op threads (default: the machine's cores). */
  threads?: number;
  /**
   * The CUDA device's index when the session runs on CUDA (default 0): a data-parallel run gives
   * each rank of a machine its own (lib/parallel `cudaDeviceOf`).
   */
  deviceId?: number;
  /**
   * Graph optimization level (default `all`; `basic` already folds constants and removes
   * identities, the higher levels add fusions, see bench/forward.ts for what each gave). For a
   * graph with float64 tensors the default is `basic`: onnxruntime's fusions at the higher levels
   * compute in float32, which would spoil finite-difference checks.
   */
  optimization?: OptimizationLevel;
  /**
   * Run independent nodes in parallel (default false: sequential execution measured twice as
   * fast on 2 cores, since the intra-op pool already uses every core).
   */
  parallel?: boolean;
  /** Write an onnxruntime profile (per-operator times, JSON) with this file prefix. */
  profile?: string;
  /** Extra onnxruntime session config entries (`session.intra_op.allow_spinning`: "0"). */
  config?: Record<string, string>;
  /**
   * Hand a graph's weights to onnxruntime as inputs fed on every run, not as initializers
   * (default false): onnxruntime reads the toolkit's own arrays in place, so a model costs one
   * float32 copy in memory instead of two (three while the session is being made), and several
   * sessions over the same weights share it. GEMM prepacking is then not done for them. Applies
   * to initializers of 1 MiB or more of a graph (not to encoded models or files).
   */
  feedWeights?: boolean;
  /**
   * onnxruntime's memory pattern: plan one block for a run's activations from the first run's
   * sizes (default true). Off, each tensor is allocated from the arena as it is made and freed
   * when last used; on the 0.5B decoder's LoRA step that lowered peak memory from 6.0 to 4.1 GB
   * at the same speed (bench llm).
   */
  memoryPattern?: boolean;
}

/** The settings a model family asks of every session over its weights. */
export type WeightSessionOptions = Pick<SessionOptions, "feedWeights" | "memoryPattern" | "config">;

/** Initializers at least this large are fed with {@linkcode SessionOptions.feedWeights}. */
const FEED_MIN_BYTES = 2 ** 20;

let ortInitialized = false;

/** Whether onnxruntime's log was asked for (`RECSYSLLM_ORT_LOG`). */
function ortLogAsked(): boolean {
  try {
    return (Deno.env.get("RECSYSLLM_ORT_LOG") ?? "") !== "";
  } catch {
    return false; // no env permission
  }
}

function initOrt(ort: Ort): void {
  if (ortInitialized) return;
  ortInitialized = true;
  // The runtime logs failed provider loads as errors on stderr; the toolkit reports them itself
  // as one-line errors, so onnxruntime's own log only shows fatal problems unless asked.
  let level: string | undefined;
  try {
    level = Deno.env.get("RECSYSLLM_ORT_LOG");
  } catch { /* no env permission */ }
  ort.env.logLevel = (level || "fatal") as typeof ort.env.logLevel;
}

function cores(): number {
  return Math.max(1, navigator.hardwareConcurrency || 1);
}

function firstLine(error: unknown): string {
  const text = String((error as Error)?.message ?? error);
  const lines = text.split("\n").map((l) => l.trim()).filter(Boolean);
  // onnxruntime prefixes source locations; keep the sentence that says what failed.
  const line = lines.find((l) => /Failed|failed|not found|No supported|cannot|Cannot/.test(l)) ??
    lines[0] ?? "unknown error";
  const at = line.indexOf("Failed to");
  return (at > 0 ? line.slice(at) : line).replace(/^Error:\s*/, "").slice(0, 300);
}

/**
 * Why `device` did not load, as precisely as the machine tells: the missing provider file or
 * library by name where one is missing, else onnxruntime's own sentence.
 */
function loadProblem(device: Exclude<ResolvedDevice, "cpu">, error: unknown): string {
  let problem: string | undefined;
  try {
    if (device === "cuda") {
      const runtime = cudaRuntimePackage();
      const dir = usesCudaRuntime() && runtime ? packageLibraryDir(runtime) : ortLibraryDir();
      const version = loadedOrt().env.versions.node ?? "unknown";
      problem = cudaProblem({ dir, version });
      if (runtime && !usesCudaRuntime()) {
        problem = `this process loaded the default onnxruntime ${version} for an earlier ` +
          `session on another device, not the CUDA runtime in ${runtime}: run CUDA work in a ` +
          "process of its own";
      }
    } else {
      problem = webgpuProblem();
    }
  } catch { /* no read permission, or no installed onnxruntime-node to look into */ }
  const reason = firstLine(error);
  if (problem) return `${reason}: ${problem}`;
  return device === "cuda"
    ? `${reason} (the provider's libraries were all found; RECSYSLLM_ORT_LOG=error shows ` +
      "onnxruntime's own message)"
    : `${reason} (WebGPU needs a GPU whose driver supports Vulkan; RECSYSLLM_ORT_LOG=error ` +
      "shows onnxruntime's own message)";
}

type Model = {
  bytes: Uint8Array | string;
  external?: { path: string; data: Uint8Array }[];
  fed?: Map<string, TensorData>;
};

function prepareModel(
  model: Graph | EncodedModel | Uint8Array | string,
  feedWeights: boolean,
): Model {
  if (model instanceof Uint8Array || typeof model === "string") return { bytes: model };
  const encoded = "chunks" in model
    ? model
    : encodeModelChunks(model, feedWeights ? { feedMinBytes: FEED_MIN_BYTES } : {});
  return {
    fed: encoded.fed,
    bytes: joinChunks(encoded.chunks, encoded.byteLength),
    external: encoded.external?.map((f) => ({
      path: f.path,
      data: joinChunks(f.chunks, f.byteLength),
    })),
  };
}

function usesFloat64(graph: Graph): boolean {
  for (const v of graph.values()) if (v.dtype === "float64") return true;
  return false;
}

/** An onnxruntime inference session over one graph, on one device. */
export class Session {
  /** The device the session runs on. */
  readonly device: ResolvedDevice;
  /** Why `auto` did not pick the devices it passed over (empty otherwise). */
  readonly skipped: readonly string[];
  #session: ort.InferenceSession;
  /** Weights fed on every run (see {@linkcode SessionOptions.feedWeights}). */
  #fed: Record<string, ort.Tensor> = {};
  #released = false;

  private constructor(
    session: ort.InferenceSession,
    device: ResolvedDevice,
    skipped: string[],
    fed?: Map<string, TensorData>,
  ) {
    this.#session = session;
    this.device = device;
    this.skipped = skipped;
    for (const [name, t] of fed ?? []) this.#fed[name] = toOrt(t);
  }

  /**
   * A session for `model`: a graph, an encoded model with its external data, ModelProto bytes,
   * or the path of a `.onnx` file (whose external data files sit beside it). Throws
   * {@linkcode DeviceError} when a device named explicitly cannot load.
   */
  static async create(
    model: Graph | EncodedModel | Uint8Array | string,
    options: SessionOptions = {},
  ): Promise<Session> {
    if (options.optimization === undefined && model instanceof Graph && usesFloat64(model)) {
      options = { ...options, optimization: "basic" };
    }
    const prepared = prepareModel(model, options.feedWeights ?? false);
    const device = options.device ?? DEFAULT_DEVICE;
    if (!(DEVICES as readonly string[]).includes(device)) {
      throw new DeviceError(`unknown device "${device}" (devices: ${DEVICES.join(", ")})`);
    }
    initOrt(await loadOrt(device));
    if (device !== "auto") {
      if (device === "cpu") {
        return new Session(await open(prepared, "cpu", options), "cpu", [], prepared.fed);
      }
      // Without the Vulkan loader WebGPU cannot load, and Dawn would say so on stderr in lines
      // of its own before the error: said here, in one line (onnxruntime's log asked: tried).
      const vulkan = device === "webgpu" && !ortLogAsked() ? webgpuProblem() : undefined;
      if (vulkan) throw new DeviceError(`device webgpu cannot be used: ${vulkan}`);
      try {
        return new Session(await open(prepared, device, options), device, [], prepared.fed);
      } catch (error) {
        throw new DeviceError(`device ${device} cannot be used: ${loadProblem(device, error)}`);
      }
    }
    const skipped: string[] = [];
    for (const candidate of ["cuda", "webgpu"] as const) {
      // Dawn logs on stderr when it finds no Vulkan, or only a software one (no GPU device):
      // auto skips the attempt and stays quiet, unless onnxruntime's log is asked for.
      const vulkan = candidate === "webgpu"
        ? webgpuProblem() ?? (ortLogAsked() ? undefined : gpuDeviceProblem())
        : undefined;
      if (vulkan) {
        skipped.push(`webgpu: ${vulkan}`);
        continue;
      }
      try {
        return new Session(
          await open(prepared, candidate, options),
          candidate,
          skipped,
          prepared.fed,
        );
      } catch (error) {
        skipped.push(`${candidate}: ${loadProblem(candidate, error)}`);
      }
    }
    return new Session(await open(prepared, "cpu", options), "cpu", skipped, prepared.fed);
  }

  /** The graph's input names, in order (without the weights the session feeds itself). */
  get inputNames(): readonly string[] {
    return this.#session.inputNames.filter((name) => !(name in this.#fed));
  }

  /** The graph's output names, in order. */
  get outputNames(): readonly string[] {
    return this.#session.outputNames;
  }

  /**
   * Runs the graph on `feeds` and returns the outputs named in `fetch` (default all). Asking only
   * for what is needed saves the copy of the others back to JavaScript.
   */
  async run(
    feeds: Record<string, TensorData | OrtTensor>,
    fetch?: readonly string[],
  ): Promise<Record<string, TensorData>> {
    const raw = await this.runOrt(feeds, fetch);
    const out: Record<string, TensorData> = {};
    for (const [name, t] of Object.entries(raw)) out[name] = fromOrt(t);
    return out;
  }

  /** {@linkcode Session.run} returning onnxruntime tensors (to feed back without converting). */
  async runOrt(
    feeds: Record<string, TensorData | OrtTensor>,
    fetch?: readonly string[],
  ): Promise<Record<string, OrtTensor>> {
    if (this.#released) throw new Error("session already released");
    const input: Record<string, ort.Tensor> = { ...this.#fed };
    for (const [name, t] of Object.entries(feeds)) {
      input[name] = t instanceof loadedOrt().Tensor ? t as ort.Tensor : toOrt(t as TensorData);
    }
    const result = fetch
      ? await this.#session.run(input, [...fetch])
      : await this.#session.run(input);
    return result as Record<string, ort.Tensor>;
  }

  /** Ends profiling (sessions made with `profile`); onnxruntime writes the JSON file. */
  endProfiling(): void {
    this.#session.endProfiling();
  }

  /** Frees the session's native memory; the session cannot run afterwards. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    await this.#session.release();
  }
}

async function open(
  model: Model,
  device: ResolvedDevice,
  options: SessionOptions,
): Promise<ort.InferenceSession> {
  const sessionOptions: ort.InferenceSession.SessionOptions & {
    externalData?: { path: string; data: Uint8Array }[];
  } = {
    executionProviders: [
      device === "cuda" && options.deviceId ? { name: "cuda", deviceId: options.deviceId } : device,
    ],
    intraOpNumThreads: options.threads ?? cores(),
    interOpNumThreads: 1,
    executionMode: options.parallel ? "parallel" : "sequential",
    graphOptimizationLevel: options.optimization ?? "all",
  };
  if (options.profile) {
    sessionOptions.enableProfiling = true;
    sessionOptions.profileFilePrefix = options.profile;
  }
  if (options.memoryPattern === false) sessionOptions.enableMemPattern = false;
  if (options.config) sessionOptions.extra = { ...options.config };
  if (model.external) sessionOptions.externalData = model.external;
  return typeof model.bytes === "string"
    ? await loadedOrt().InferenceSession.create(model.bytes, sessionOptions)
    : await loadedOrt().InferenceSession.create(model.bytes, sessionOptions);
}
