/**
 * The training engine: the onnxruntime sessions of the training graphs and the state they carry
 * from step to step (trainable tensors and AdamW moments, fed as inputs, read back as outputs).
 * One optimizer step over one micro-batch runs the step graph; over several (gradient
 * accumulation) it runs the gradient graph once per micro-batch, summing into accumulators, and
 * then the update graph. Validation runs a loss-only forward graph on the current tensors.
 *
 * Not here: data, schedules, files (see `trainer.ts`).
 *
 * @module
 */

import { LOSS_LOGIT_BIAS } from "../model/glm.ts";
import { ropePositionIds } from "../model/families/positions.ts";
import type { Batch } from "../collate/types.ts";
import type { TensorData } from "../onnx/graph.ts";
import type { Rng } from "../random.ts";
import { type Device, Session, type WeightSessionOptions } from "../runtime/session.ts";
import { dropoutMask } from "../model/lora.ts";
import { keepMask } from "./dropout.ts";
import {
  type AdamWOptions,
  buildEvalGraph,
  buildGradGraph,
  buildTrainStepGraph,
  buildUpdateGraph,
  DEFAULT_ADAMW,
  type TrainGraph,
  trainNames,
  type TrainParam,
  type TrainSetup,
} from "./train_graph.ts";

/** Options of {@linkcode TrainEngine.create}. */
export interface EngineOptions {
  /** Micro-batches per optimizer step (default 1). */
  gradAccum?: number;
  adamw?: AdamWOptions;
  device?: Device;
  /** Intra-op threads (default: the machine's cores). */
  threads?: number;
  /** Build the validation graph too (default true). */
  validation?: boolean;
  /**
   * Session settings for the model's weights (a family's `sessionOptions`: fed weights, memory
   * pattern, onnxruntime config entries).
   */
  session?: WeightSessionOptions;
  /**
   * Build the gradient and update graphs even for one micro-batch a step, so that
   * {@linkcode TrainEngine.gradients} and {@linkcode TrainEngine.apply} can run apart (a
   * data-parallel run sums the ranks' gradients between them). Default false: one micro-batch a
   * step runs the fused step graph.
   */
  split?: boolean;
  /** The CUDA device's index (`device` cuda); default 0. */
  deviceId?: number;
}

/**
 * Where one rank's part of a micro-batch sits in the global micro-batch of a data-parallel run:
 * dropout masks are drawn for the whole global batch (the same draws, in the same order, as one
 * process makes) and cut to the rank's rows, so every rank's generator stays in step.
 */
export interface BatchShare {
  /** Examples in the global micro-batch. */
  globalBatchSize: number;
  /** Its padded length (the part keeps it). */
  length: number;
  /** The global batch's first example this rank takes. */
  start: number;
}

/** A step's gradients before the optimizer: {@linkcode TrainEngine.gradients}. */
export interface StepGradients {
  /** The step's loss: the micro-batches' mean losses, weighted by their scales. */
  loss: number;
  /** The gradient of each trainable tensor, summed over the micro-batches with their scales. */
  grads: Map<string, Float32Array>;
}

/** What one optimizer step reports. */
export interface StepResult {
  /** Mean loss over the step's loss tokens. */
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
}

/**
 * The feeds of a batch for the model graphs; with `rope` (the decoder families) also
 * `rope_position_ids` derived from the positions (lib/model/families/positions.ts).
 */
export function batchFeeds(batch: Batch, rope = false): Record<string, TensorData> {
  const { batchSize: b, length: l } = batch;
  const feeds: Record<string, TensorData> = {
    input_ids: { dtype: "int32", shape: [b, l], data: batch.inputIds },
    position_ids: { dtype: "int32", shape: [b, 2, l], data: batch.positionIds },
    sep: { dtype: "int32", shape: [b], data: batch.sep },
    labels: { dtype: "int32", shape: [b, l], data: batch.labels },
    loss_mask: { dtype: "float32", shape: [b, l], data: batch.lossMask },
  };
  if (batch.lossLogitBias) {
    const { data, rows, vocab } = batch.lossLogitBias;
    feeds[LOSS_LOGIT_BIAS] = { dtype: "float32", shape: [rows, vocab], data };
  }
  if (rope) {
    feeds.rope_position_ids = { dtype: "int32", shape: [b, l], data: ropePositionIds(batch) };
  }
  return feeds;
}

function scalar(x: number): TensorData {
  return { dtype: "float32", shape: [], data: Float32Array.of(x) };
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Sessions and state of one training run. */
export class TrainEngine {
  /** The trainable tensors, in order. */
  readonly params: readonly TrainParam[];
  /** The device the sessions run on. */
  readonly device: string;
  readonly #graph: TrainGraph;
  readonly #step?: Session;
  readonly #grad?: Session;
  readonly #update?: Session;
  readonly #eval?: Session;
  /** Whether the graphs take rotary positions (the rotary families). */
  readonly #rope: boolean;
  /** Current tensors and moments, by input name (`name`, `adam_m.name`, `adam_v.name`). */
  readonly #state = new Map<string, TensorData>();
  #zeros?: Map<string, TensorData>;

  private constructor(
    graph: TrainGraph,
    sessions: { step?: Session; grad?: Session; update?: Session; eval?: Session },
  ) {
    this.#graph = graph;
    this.params = graph.params;
    this.#step = sessions.step;
    this.#grad = sessions.grad;
    this.#update = sessions.update;
    this.#eval = sessions.eval;
    this.#rope = graph.graph.isInput("rope_position_ids");
    this.device = (sessions.step ?? sessions.grad)!.device;
  }

  /** Builds the graphs of `setup` and opens their sessions. */
  static async create(setup: TrainSetup, options: EngineOptions = {}): Promise<TrainEngine> {
    const accum = options.gradAccum ?? 1;
    const adamw = { ...DEFAULT_ADAMW, ...options.adamw };
    const session = {
      ...options.session,
      device: options.device ?? "cpu",
      threads: options.threads,
      deviceId: options.deviceId,
    };
    const sessions: { step?: Session; grad?: Session; update?: Session; eval?: Session } = {};
    let graph: TrainGraph;
    try {
      if (accum === 1 && !options.split) {
        graph = buildTrainStepGraph(setup, adamw);
        sessions.step = await Session.create(graph.graph, session);
      } else {
        graph = buildGradGraph(setup, { accumulate: true });
        sessions.grad = await Session.create(graph.graph, session);
        const device = sessions.grad.device;
        sessions.update = await Session.create(buildUpdateGraph(graph.params, adamw), {
          ...session,
          device,
        });
      }
      if (options.validation !== false) {
        sessions.eval = await Session.create(buildEvalGraph(setup), {
          ...session,
          device: (sessions.step ?? sessions.grad)!.device,
        });
      }
    } catch (error) {
      for (const s of Object.values(sessions)) await s?.release();
      throw error;
    }
    return new TrainEngine(graph, sessions);
  }

  /** Sets the trainable tensors and moments (a fresh run: zero moments). */
  load(
    params: ReadonlyMap<string, Float32Array>,
    m?: ReadonlyMap<string, Float32Array>,
    v?: ReadonlyMap<string, Float32Array>,
  ): void {
    for (const p of this.params) {
      const get = (map: ReadonlyMap<string, Float32Array> | undefined, what: string) => {
        const data = map ? map.get(p.name) : new Float32Array(size(p.shape));
        if (!data) throw new Error(`${what} of ${p.name} is missing`);
        if (data.length !== size(p.shape)) throw new Error(`${what} of ${p.name}: wrong size`);
        return { dtype: "float32", shape: p.shape, data: data.slice() } as TensorData;
      };
      this.#state.set(p.name, get(params, "tensor"));
      this.#state.set(trainNames.m(p.name), get(m, "first moment"));
      this.#state.set(trainNames.v(p.name), get(v, "second moment"));
    }
  }

  /** The current tensors (`params`), first (`m`) and second (`v`) moments, by trainable name. */
  snapshot(): {
    params: Map<string, Float32Array>;
    m: Map<string, Float32Array>;
    v: Map<string, Float32Array>;
  } {
    const pick = (name: string) => this.#state.get(name)!.data as Float32Array;
    return {
      params: new Map(this.params.map((p) => [p.name, pick(p.name)])),
      m: new Map(this.params.map((p) => [p.name, pick(trainNames.m(p.name))])),
      v: new Map(this.params.map((p) => [p.name, pick(trainNames.v(p.name))])),
    };
  }

  #paramFeeds(): Record<string, TensorData> {
    const feeds: Record<string, TensorData> = {};
    for (const p of this.params) feeds[p.name] = this.#state.get(p.name)!;
    return feeds;
  }

  /**
   * The dropout masks of `batch` (undefined: a rank's empty part of a global batch, whose masks
   * are drawn all the same), drawn from `rng` for the whole global batch when `share` says where
   * the batch sits in it.
   */
  #maskFeeds(batch: Batch | undefined, rng: Rng, share?: BatchShare): Record<string, TensorData> {
    const feeds: Record<string, TensorData> = {};
    const length = share?.length ?? batch!.length;
    const drawn = (share?.globalBatchSize ?? batch!.batchSize) * length;
    for (const mask of this.#graph.dropoutMasks) {
      const draw = mask.owner === "adapter" ? dropoutMask : keepMask;
      const all = draw(drawn * mask.features, mask.rate, rng);
      if (!batch) continue;
      const rows = batch.batchSize * batch.length;
      const from = (share?.start ?? 0) * length * mask.features;
      feeds[mask.name] = {
        dtype: "float32",
        shape: [rows, mask.features],
        data: share ? all.subarray(from, from + rows * mask.features) : all,
      };
    }
    return feeds;
  }

  #optimizerFeeds(lr: number, bc: [number, number]): Record<string, TensorData> {
    const feeds: Record<string, TensorData> = {
      lr: scalar(lr),
      bias_correction1: scalar(bc[0]),
      bias_correction2: scalar(bc[1]),
    };
    for (const p of this.params) {
      feeds[trainNames.m(p.name)] = this.#state.get(trainNames.m(p.name))!;
      feeds[trainNames.v(p.name)] = this.#state.get(trainNames.v(p.name))!;
    }
    return feeds;
  }

  /**
   * One optimizer step over `batches` (micro-batches), each weighted by `scales` (its share of
   * the step's loss tokens), at learning rate `lr` with bias corrections `bc`. Returns the
   * step's loss and gradient norm; the new tensors are kept only when both are finite (else the
   * state is left as it was, so the last good state can be saved).
   */
  async step(
    batches: readonly Batch[],
    scales: readonly number[],
    lr: number,
    bc: [number, number],
    rng: Rng,
  ): Promise<StepResult> {
    if (!this.#step) {
      const { loss, grads } = await this.gradients(batches, scales, rng);
      return await this.apply(grads, loss, lr, bc);
    }
    if (batches.length !== 1) throw new Error("the step graph takes one micro-batch");
    const outputs = await this.#step.run({
      ...batchFeeds(batches[0], this.#rope),
      ...this.#maskFeeds(batches[0], rng),
      ...this.#paramFeeds(),
      ...this.#optimizerFeeds(lr, bc),
      loss_scale: { dtype: "float32", shape: [1], data: Float32Array.of(scales[0]) },
    });
    return this.#keep(outputs, (outputs.loss.data as Float32Array)[0]);
  }

  /**
   * The gradients of `batches` (micro-batches, each weighted by `scales`) under the current
   * tensors, without updating them: the first half of {@linkcode TrainEngine.step} (engines made
   * with `split` or `gradAccum` > 1). In a data-parallel run `batches` are this rank's parts of
   * the global micro-batches (undefined where the part is empty), placed by `shares`.
   */
  async gradients(
    batches: readonly (Batch | undefined)[],
    scales: readonly number[],
    rng: Rng,
    shares?: readonly BatchShare[],
  ): Promise<StepGradients> {
    if (!this.#grad) throw new Error("the engine was made without the gradient graph (split)");
    let acc = this.#zerosOfGrads();
    let loss = 0;
    for (let i = 0; i < batches.length; i++) {
      const batch = batches[i];
      const masks = this.#maskFeeds(batch, rng, shares?.[i]);
      if (!batch) continue;
      const accFeeds: Record<string, TensorData> = {};
      for (const p of this.params) accFeeds[trainNames.acc(p.name)] = acc.get(p.name)!;
      const out = await this.#grad.run({
        ...batchFeeds(batch, this.#rope),
        ...masks,
        ...this.#paramFeeds(),
        ...accFeeds,
        loss_scale: { dtype: "float32", shape: [1], data: Float32Array.of(scales[i]) },
      });
      loss += scales[i] * (out.loss.data as Float32Array)[0];
      acc = new Map(this.params.map((p) => [p.name, out[trainNames.grad(p.name)]]));
    }
    return {
      loss,
      grads: new Map(this.params.map((p) => [p.name, acc.get(p.name)!.data as Float32Array])),
    };
  }

  /**
   * The AdamW step on `grads` (as {@linkcode TrainEngine.gradients} returns them, or their sum
   * over the ranks) at learning rate `lr` with bias corrections `bc`; `loss` is the step's loss,
   * reported back. The new tensors are kept only when the loss and the gradient norm are finite.
   */
  async apply(
    grads: ReadonlyMap<string, Float32Array>,
    loss: number,
    lr: number,
    bc: [number, number],
  ): Promise<StepResult> {
    if (!this.#update) throw new Error("the engine was made without the update graph (split)");
    const gradFeeds: Record<string, TensorData> = {};
    for (const p of this.params) {
      const data = grads.get(p.name);
      if (!data || data.length !== size(p.shape)) throw new Error(`gradient of ${p.name}`);
      gradFeeds[trainNames.grad(p.name)] = { dtype: "float32", shape: p.shape, data };
    }
    const outputs = await this.#update.run({
      ...this.#paramFeeds(),
      ...gradFeeds,
      ...this.#optimizerFeeds(lr, bc),
    });
    return this.#keep(outputs, loss);
  }

  /** Keeps the updated tensors and moments of `outputs` when the step stayed finite. */
  #keep(outputs: Record<string, TensorData>, loss: number): StepResult {
    const gradNorm = Number((outputs.grad_norm.data as Float32Array)[0]);
    if (Number.isFinite(loss) && Number.isFinite(gradNorm)) {
      for (const p of this.params) {
        for (const name of [p.name, trainNames.m(p.name), trainNames.v(p.name)]) {
          this.#state.set(name, outputs[trainNames.updated(name)]);
        }
      }
    }
    return { loss, gradNorm };
  }

  #zerosOfGrads(): Map<string, TensorData> {
    if (!this.#zeros) {
      this.#zeros = new Map(this.params.map((p) => [p.name, {
        dtype: "float32",
        shape: p.shape,
        data: new Float32Array(size(p.shape)),
      } as TensorData]));
    }
    return this.#zeros;
  }

  /** The mean loss of `batch` under the current tensors (no dropout, no update). */
  async evaluate(batch: Batch): Promise<number> {
    if (!this.#eval) throw new Error("the engine was made without validation");
    const out = await this.#eval.run({ ...batchFeeds(batch, this.#rope), ...this.#paramFeeds() }, [
      "loss",
    ]);
    return (out.loss.data as Float32Array)[0];
  }

  /** Releases every session. */
  async release(): Promise<void> {
    for (const s of [this.#step, this.#grad, this.#update, this.#eval]) await s?.release();
  }
}
