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
  readonly #dropout: number;
  /** Whether the graphs take rotary positions (decoder families). */
  readonly #rope: boolean;
  /** Current tensors and moments, by input name (`name`, `adam_m.name`, `adam_v.name`). */
  readonly #state = new Map<string, TensorData>();
  #zeros?: Map<string, TensorData>;

  private constructor(
    graph: TrainGraph,
    sessions: { step?: Session; grad?: Session; update?: Session; eval?: Session },
    dropout: number,
  ) {
    this.#graph = graph;
    this.params = graph.params;
    this.#step = sessions.step;
    this.#grad = sessions.grad;
    this.#update = sessions.update;
    this.#eval = sessions.eval;
    this.#dropout = dropout;
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
    };
    const sessions: { step?: Session; grad?: Session; update?: Session; eval?: Session } = {};
    let graph: TrainGraph;
    try {
      if (accum === 1) {
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
    return new TrainEngine(graph, sessions, setup.lora?.dropout ?? 0);
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

  #maskFeeds(batch: Batch, rng: Rng): Record<string, TensorData> {
    const feeds: Record<string, TensorData> = {};
    const rows = batch.batchSize * batch.length;
    for (const mask of this.#graph.dropoutMasks) {
      feeds[mask.name] = {
        dtype: "float32",
        shape: [rows, mask.features],
        data: dropoutMask(rows * mask.features, this.#dropout, rng),
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
    let outputs: Record<string, TensorData>;
    let loss = 0;
    if (this.#step) {
      if (batches.length !== 1) throw new Error("the step graph takes one micro-batch");
      outputs = await this.#step.run({
        ...batchFeeds(batches[0], this.#rope),
        ...this.#maskFeeds(batches[0], rng),
        ...this.#paramFeeds(),
        ...this.#optimizerFeeds(lr, bc),
        loss_scale: { dtype: "float32", shape: [1], data: Float32Array.of(scales[0]) },
      });
      loss = (outputs.loss.data as Float32Array)[0];
    } else {
      let acc = this.#zerosOfGrads();
      for (let i = 0; i < batches.length; i++) {
        const accFeeds: Record<string, TensorData> = {};
        for (const p of this.params) accFeeds[trainNames.acc(p.name)] = acc.get(p.name)!;
        const out = await this.#grad!.run({
          ...batchFeeds(batches[i], this.#rope),
          ...this.#maskFeeds(batches[i], rng),
          ...this.#paramFeeds(),
          ...accFeeds,
          loss_scale: { dtype: "float32", shape: [1], data: Float32Array.of(scales[i]) },
        });
        loss += scales[i] * (out.loss.data as Float32Array)[0];
        acc = new Map(this.params.map((p) => [p.name, out[trainNames.grad(p.name)]]));
      }
      const gradFeeds: Record<string, TensorData> = {};
      for (const p of this.params) gradFeeds[trainNames.grad(p.name)] = acc.get(p.name)!;
      outputs = await this.#update!.run({
        ...this.#paramFeeds(),
        ...gradFeeds,
        ...this.#optimizerFeeds(lr, bc),
      });
    }
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
