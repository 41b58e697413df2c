/**
 * Training SASRec with the project's own engine: the loss graph of `model.ts`, its backward pass
 * from `lib/train/autodiff.ts`, and AdamW from `lib/train/train_graph.ts`, all in one onnxruntime
 * step graph whose tensors and moments are fed in and read back each step. Early stopping on the
 * validation users' NDCG@10 (ranking over all items, their training items excluded): the weights
 * of the best evaluation are the result.
 *
 * Deterministic for a seed: the initial weights, the order of users in each epoch and every
 * dropout keep-mask are drawn from the project's {@linkcode Rng} in JavaScript (masks as graph
 * inputs, as LoRA dropout does).
 *
 * @module
 */

import { InputError, OptionError, worded } from "../errors.ts";
import type { Graph, TensorData, Value } from "../onnx/graph.ts";
import { Rng } from "../random.ts";
import { type Device, Session } from "../runtime/session.ts";
import { gradients } from "../train/autodiff.ts";
import { appendAdamW, trainNames } from "../train/train_graph.ts";
import { TrainingDiverged } from "../train/trainer.ts";
import { trainingBatch, trainingWindow } from "./batch.ts";
import {
  buildSasrecLossGraph,
  decays,
  dropoutSites,
  initSasrec,
  type SasrecConfig,
  type SasrecGraphOptions,
  type SasrecLossGraph,
  sasrecShapes,
} from "./model.ts";
import { SasrecRanker } from "./rank.ts";

/** Training settings. */
export interface SasrecTrainOptions {
  /** Most epochs (passes over the training users). Default 200. */
  epochs?: number;
  /** Users per step. Default 128. */
  batchSize?: number;
  /**
   * Adam learning rate. Default 2e-3: on Beauty the published 1e-3 had reached a validation
   * NDCG@10 of 0.029 after 9 epochs, 2e-3 0.044 (docs/method.md, SASRec).
   */
  lr?: number;
  /** Adam beta2 (the public code uses 0.98). Default 0.98. */
  beta2?: number;
  /** Decoupled weight decay on matrices and embeddings. Default 0. */
  weightDecay?: number;
  /**
   * Dropout rate at every site of {@linkcode dropoutSites}. Default 0.5, the paper's for its
   * sparse Amazon data (0.3 peaked sooner and lower on Beauty).
   */
  dropout?: number;
  /** Epochs between validations. Default 1. */
  evalEvery?: number;
  /**
   * Stop after this many validations without a better NDCG@10 (0: never). Default 10 (RecBole's):
   * the validation NDCG@10 can stall for several epochs before it climbs again (on Musical
   * Instruments, seed 1, it fell for three epochs after epoch 4 and rose again to epoch 27, so
   * a patience of 3 kept a model far from its best; docs/results.md).
   */
  patience?: number;
  /** Seed of weights, order and dropout. Default 0. */
  seed?: number;
  /** Intra-op threads (default: the machine's cores). */
  threads?: number;
  /** Where the training steps run (default `cpu`: the published figures were measured there). */
  device?: Device;
}

/** A SASRec run's settings: the model's size and its training. */
export interface SasrecOptions extends SasrecTrainOptions {
  /** Hidden size; default 64. */
  hidden?: number;
  /** Self-attention blocks; default 2. */
  blocks?: number;
  /** Attention heads; default 1. */
  heads?: number;
  /** Longest history the model reads; default 50. */
  maxLength?: number;
  /**
   * When the test split is scored: after early stopping, train a second model from scratch, for
   * the best epoch count, on the histories that end with the validation item (what a test
   * record's input holds; the test target never), and rank with it. Default true.
   */
  refit?: boolean;
  /**
   * With the refit: train it for this many epochs without early stopping first (the epoch count
   * an earlier run with the same settings and seed chose on the same validation split: its
   * early-stopped model is the same, so the refit is too, minus the training that found it).
   * Default: early stopping chooses.
   */
  refitEpochs?: number;
  /**
   * A SASRec saved by an earlier eval (`DIR/sasrec.safetensors` of `--save-baselines DIR`,
   * lib/baselines/sasrec_saved.ts) to rank with instead of training one: accepted only where it is the
   * model this eval would train (the same items and training sequences).
   */
  model?: string;
  /** Receives each point of the training curve (and whether it is the best so far). */
  onEpoch?: (point: CurvePoint, best: boolean) => void;
}

/** The model-size defaults (Kang and McAuley's settings for the Amazon datasets). */
export const DEFAULT_SASREC_SIZE = Object.freeze({
  hidden: 64,
  blocks: 2,
  heads: 1,
  maxLength: 50,
});

/** SASRec training defaults. */
export const DEFAULT_SASREC_TRAIN: Readonly<
  Required<Omit<SasrecTrainOptions, "threads" | "device">>
> = Object
  .freeze({
    epochs: 200,
    batchSize: 128,
    lr: 2e-3,
    beta2: 0.98,
    weightDecay: 0,
    dropout: 0.5,
    evalEvery: 1,
    patience: 10,
    seed: 0,
  });

/** Where SASRec's training steps run when no device is given. */
export const DEFAULT_SASREC_DEVICE: Device = "cpu";

/** Every default of {@linkcode SasrecOptions} (model size, training and device). */
export const DEFAULT_SASREC = Object.freeze({
  ...DEFAULT_SASREC_SIZE,
  ...DEFAULT_SASREC_TRAIN,
  refit: true,
  device: DEFAULT_SASREC_DEVICE,
});

/** Validation users: what each has seen (training items) and the item to find. */
export interface SasrecValidation {
  histories: readonly Int32Array[];
  targets: Int32Array;
}

/** One point of the training curve. */
export interface CurvePoint {
  /** The epoch, counted from 1. */
  epoch: number;
  /** Mean training loss over the epoch's positions. */
  loss: number;
  /** Validation NDCG@10 and HR@10 (absent without validation or between evaluations). */
  ndcg10?: number;
  /** Validation HR@10 (absent as `ndcg10` is). */
  hr10?: number;
  /** Seconds since training began. */
  seconds: number;
}

/** A trained model. */
export interface TrainedSasrec {
  /** The model's configuration. */
  config: SasrecConfig;
  /** The weights by tensor name. */
  weights: Map<string, Float32Array>;
  /** The training curve, one point per epoch. */
  curve: CurvePoint[];
  /** The epoch whose weights these are (the best validation), or the last one. */
  bestEpoch: number;
  /** Steps taken. */
  steps: number;
}

/**
 * The gradient graph: {@linkcode buildSasrecLossGraph}'s `loss` (the batch's mean) and the
 * gradients of `loss` times the input `loss_scale` [1] (see {@linkcode lossScale}), one per
 * trainable tensor in `params` order.
 */
export function buildSasrecGradientGraph(options: SasrecGraphOptions): SasrecLossGraph & {
  grads: Value[];
} {
  const { graph: g, loss, params } = buildSasrecLossGraph(options);
  const seed = g.input("loss_scale", loss.dtype, loss.shape);
  return { graph: g, loss, params, grads: gradients(g, loss, params, { seed }) };
}

/**
 * The `loss_scale` of a batch with `rows` loss rows in an epoch of `epochRows` rows cut into
 * `steps` batches: its rows over the mean rows per batch. Batches are cut by length, so their
 * rows differ up to fifty-fold; scaled so, every position of the epoch weighs alike, as with
 * random batches. (A plain batch mean made a short user's positions count up to twenty times a
 * long one's, and cost SASRec about a tenth of its validation NDCG@10 on Beauty.)
 *
 * @example
 * ```ts
 * lossScale(10, 300, 3); // 0.1: a tenth of a mean batch's rows
 * ```
 */
export function lossScale(rows: number, epochRows: number, steps: number): number {
  return rows * steps / epochRows;
}

/**
 * The step graph: loss, backward and AdamW (no clipping); tensors and moments in and out. The
 * output `loss` is the batch's mean; the gradient is that of `loss` times the input `loss_scale`.
 */
export function buildSasrecStepGraph(
  config: SasrecConfig,
  options: Required<Pick<SasrecTrainOptions, "dropout" | "beta2" | "weightDecay">>,
): Graph {
  const { graph: g, params, grads } = buildSasrecGradientGraph({
    config,
    dropout: options.dropout > 0,
  });
  const shapes = sasrecShapes(config);
  appendAdamW(
    g,
    params.map((value, i) => ({ value, grad: grads[i], decay: decays(shapes.get(value.name)!) })),
    { beta1: 0.9, beta2: options.beta2, eps: 1e-8, weightDecay: options.weightDecay, clip: 0 },
  );
  g.prune();
  return g;
}

/** Dropout keep-masks [N, d] for the real rows of a batch (padding rows are never read). */
function dropoutMask(
  rows: Int32Array,
  n: number,
  d: number,
  p: number,
  rng: Rng,
): Float32Array {
  const mask = new Float32Array(n * d);
  const keep = 1 / (1 - p);
  const threshold = p * 0x100000000;
  for (const row of rows) {
    for (let j = row * d; j < row * d + d; j++) mask[j] = rng.u32() < threshold ? 0 : keep;
  }
  return mask;
}

/** Batches of similar length drawn together from this many batches' worth of users. */
const BUCKET_BATCHES = 64;

/**
 * One epoch's batches (window indices): users in a random order, then, within each run of
 * {@linkcode BUCKET_BATCHES} batches' worth, sorted by length and cut into batches, and the
 * batches shuffled. A batch is as long as its longest window, so this saves most of the
 * padding (on Beauty the average window is 6 items, the longest 50) while every batch still
 * mixes users at random.
 */
export function epochBatches(
  windows: readonly Int32Array[],
  batchSize: number,
  rng: Rng,
): number[][] {
  const order = rng.shuffle(windows.map((_, i) => i));
  const batches: number[][] = [];
  const span = batchSize * BUCKET_BATCHES;
  for (let start = 0; start < order.length; start += span) {
    const chunk = order.slice(start, start + span);
    // A stable sort: users of one length keep this epoch's random order, so batches differ
    // from epoch to epoch (a tie broken by user index would cut the same batches every time).
    chunk.sort((a, b) => windows[a].length - windows[b].length);
    for (let s = 0; s < chunk.length; s += batchSize) batches.push(chunk.slice(s, s + batchSize));
  }
  return rng.shuffle(batches);
}

/** Returns NDCG@10 and HR@10 of `model` on the validation users. */
async function validate(
  ranker: SasrecRanker,
  weights: ReadonlyMap<string, Float32Array>,
  validation: SasrecValidation,
): Promise<{ ndcg10: number; hr10: number }> {
  const results = await ranker.rank(
    weights,
    validation.histories.map((h) => ({ history: h, exclude: h })),
  );
  let ndcg = 0;
  let hits = 0;
  results.forEach((r, i) => {
    const at = r.items.indexOf(validation.targets[i]);
    if (at >= 0 && at < 10) {
      hits++;
      ndcg += 1 / Math.log2(at + 2);
    }
  });
  const n = Math.max(1, results.length);
  return { ndcg10: ndcg / n, hr10: hits / n };
}

/**
 * Trains a SASRec model of `config` on `sequences` (each user's training items as indices
 * 1..V, oldest first) and returns the weights of the best validation (or of the last epoch
 * without validation). `onEpoch` receives every curve point as it is made (progress).
 *
 * @example
 * ```ts
 * import type { SasrecConfig } from "./model.ts";
 *
 * declare const config: SasrecConfig;
 * declare const sequences: Int32Array[]; // each user's training items, 1..V
 * declare const validation: SasrecValidation;
 * const model = await trainSasrec(config, sequences, { epochs: 50 }, validation);
 * model.curve.at(-1); // {epoch, loss, ndcg10, hr10, seconds}
 * ```
 */
export async function trainSasrec(
  config: SasrecConfig,
  sequences: readonly Int32Array[],
  trainOptions: SasrecTrainOptions = {},
  validation?: SasrecValidation,
  onEpoch?: (point: CurvePoint, best: boolean) => void,
  onStep?: (epoch: number, step: number, steps: number, loss: number) => void,
): Promise<TrainedSasrec> {
  const options = {
    ...DEFAULT_SASREC_TRAIN,
    threads: undefined,
    device: DEFAULT_SASREC_DEVICE,
    ...trainOptions,
  } as Required<SasrecTrainOptions>;
  if (!(options.dropout >= 0 && options.dropout < 1)) {
    throw new OptionError("dropout", (n) => `${n} must be in [0, 1), got ${options.dropout}`);
  }
  const windows = sequences.flatMap((s) => {
    const w = trainingWindow(s, config.maxLength);
    return w ? [w] : [];
  });
  if (windows.length === 0) {
    // Each training step predicts a user's next item from the ones before it.
    throw new InputError(
      "SASRec: no user has two training items (it learns each next item from the ones before it)",
    );
  }
  // Every window of w items carries w - 1 loss rows, each epoch.
  const epochRows = windows.reduce((sum, w) => sum + w.length - 1, 0);
  const rng = new Rng(options.seed);
  let weights = initSasrec(config, rng);
  const shapes = sasrecShapes(config);
  const step = await Session.create(buildSasrecStepGraph(config, options), {
    device: options.device,
    threads: options.threads,
  });
  const ranker = validation
    ? await SasrecRanker.create(config, { k: 10, threads: options.threads })
    : undefined;
  try {
    const state = new Map<string, TensorData>();
    for (const [name, shape] of shapes) {
      const size = shape.reduce((a, b) => a * b, 1);
      state.set(name, { dtype: "float32", shape, data: weights.get(name)! });
      state.set(trainNames.m(name), { dtype: "float32", shape, data: new Float32Array(size) });
      state.set(trainNames.v(name), { dtype: "float32", shape, data: new Float32Array(size) });
    }
    const scalar = (x: number): TensorData => ({
      dtype: "float32",
      shape: [],
      data: Float32Array.of(x),
    });
    const current = () =>
      new Map([...shapes.keys()].map((n) => [n, state.get(n)!.data as Float32Array]));
    const curve: CurvePoint[] = [];
    const start = performance.now();
    let best = -1;
    let bestEpoch = 0;
    let stale = 0;
    let t = 0;
    const sites = options.dropout > 0 ? dropoutSites(config) : [];
    for (let epoch = 1; epoch <= options.epochs; epoch++) {
      const batches = epochBatches(windows, options.batchSize, rng);
      const stepsPerEpoch = batches.length;
      let lossSum = 0;
      for (let s = 0; s < stepsPerEpoch; s++) {
        const ids = batches[s];
        const batch = trainingBatch(ids.map((i) => windows[i]), config.maxLength);
        const shape = [batch.batchSize, batch.length];
        const n = batch.batchSize * batch.length;
        const feeds: Record<string, TensorData> = {
          items: { dtype: "int32", shape, data: batch.items },
          positions: { dtype: "int32", shape, data: batch.positions },
          rows: { dtype: "int32", shape: [batch.rows.length], data: batch.rows },
          targets: { dtype: "int32", shape: [batch.targets.length], data: batch.targets },
          loss_scale: {
            dtype: "float32",
            shape: [1],
            data: Float32Array.of(lossScale(batch.rows.length, epochRows, stepsPerEpoch)),
          },
          lr: scalar(options.lr),
          bias_correction1: scalar(1 - 0.9 ** (t + 1)),
          bias_correction2: scalar(1 - options.beta2 ** (t + 1)),
        };
        for (const site of sites) {
          feeds[site] = {
            dtype: "float32",
            shape: [n, config.hidden],
            data: dropoutMask(batch.rows, n, config.hidden, options.dropout, rng),
          };
        }
        for (const [name, tensor] of state) feeds[name] = tensor;
        const out = await step.run(feeds);
        const loss = (out.loss.data as Float32Array)[0];
        if (!Number.isFinite(loss)) {
          throw worded(
            new TrainingDiverged(`SASRec training diverged (loss ${loss})`),
            "lr",
            (name) =>
              `SASRec training diverged at epoch ${epoch} step ${s + 1} (loss ${loss}): ` +
              `lower ${name} (${options.lr})`,
          );
        }
        for (const name of state.keys()) state.set(name, out[trainNames.updated(name)]);
        t++;
        lossSum += loss * batch.rows.length;
        onStep?.(epoch, s + 1, stepsPerEpoch, loss);
      }
      const point: CurvePoint = { epoch, loss: lossSum / epochRows, seconds: 0 };
      let improved = false;
      const last = epoch === options.epochs;
      if (ranker && validation && (epoch % options.evalEvery === 0 || last)) {
        const metrics = await validate(ranker, current(), validation);
        point.ndcg10 = metrics.ndcg10;
        point.hr10 = metrics.hr10;
        if (metrics.ndcg10 > best) {
          best = metrics.ndcg10;
          bestEpoch = epoch;
          weights = new Map([...current()].map(([k, v]) => [k, v.slice()]));
          stale = 0;
          improved = true;
        } else {
          stale++;
        }
      }
      point.seconds = (performance.now() - start) / 1000;
      curve.push(point);
      onEpoch?.(point, improved);
      if (options.patience > 0 && stale >= options.patience) break;
    }
    if (!validation) {
      weights = current();
      bestEpoch = curve.length;
    }
    return { config, weights, curve, bestEpoch, steps: t };
  } finally {
    await step.release();
    await ranker?.release();
  }
}
