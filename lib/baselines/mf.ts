/**
 * Biased matrix factorisation for the rating task (Koren, Bell and Volinsky 2009), trained by the
 * toolkit's own engine: the loss is an ONNX graph built with `lib/onnx`, its backward pass comes
 * from `lib/train/autodiff.ts` and the update from AdamW (`lib/train/train_graph.ts`), all in one
 * onnxruntime step graph whose tensors and moments are fed in and read back each step, as SASRec
 * trains (`lib/sasrec/train.ts`).
 *
 *     r^_ui = mu + b_u + b_i + p_u . q_i                         clipped to the rating scale
 *     loss  = mean over the batch of (r^_ui - r_ui)^2
 *           + l2 * mean over the batch of (|p_u|^2 + |q_i|^2 + b_u^2 + b_i^2)
 *
 * The regulariser is the classic per-rating one of SGD matrix factorisation (each row is shrunk in
 * proportion to how often it is trained), not AdamW's decoupled decay, which would shrink every
 * row at every step. mu starts at the mean training rating and is trained too; biases start at 0,
 * factors drawn from N(0, 0.1^2). Early stopping on the validation ratings' RMSE (every epoch; the best
 * epoch's weights are kept); without validation ratings every epoch is trained. A user or item
 * without training ratings has bias 0 and factors 0, so its prediction falls back to the others.
 *
 * Deterministic for a seed: initial weights and the order of ratings each epoch come from the
 * project's {@linkcode Rng}; the graph runs on one thread.
 *
 * Shapes: B ratings a batch, U users, I items, k factors.
 *
 * @module
 */

import { OptionError, worded } from "../errors.ts";
import { Graph, type TensorData, type Value } from "../onnx/graph.ts";
import { clipRating } from "../metrics/rating.ts";
import { Rng } from "../random.ts";
import { Session } from "../runtime/session.ts";
import { gradients } from "../train/autodiff.ts";
import { appendAdamW, trainNames } from "../train/train_graph.ts";
import { TrainingDiverged } from "../train/trainer.ts";
import type { TrainingRating } from "./rating.ts";

/** Settings of {@linkcode trainMf}; defaults in {@linkcode DEFAULT_MF}. */
export interface MfOptions {
  /** Latent factors k. */
  factors?: number;
  /** Most epochs (passes over the training ratings). */
  epochs?: number;
  /** Ratings per step. */
  batchSize?: number;
  /** Adam learning rate. */
  lr?: number;
  /** Weight of the per-rating L2 regulariser. */
  l2?: number;
  /** Stop after this many epochs without a better validation RMSE (0: never). */
  patience?: number;
  /** Seed of the weights and the order. */
  seed?: number;
  /** Predictions are clipped to [min, max] (also for the validation RMSE). */
  scale?: readonly [number, number] | null;
}

/**
 * Defaults of {@linkcode MfOptions}. Chosen on the validation ratings of Amazon Musical
 * Instruments (docs/results.md): with as few as 5 ratings a user, a small k and a strong
 * regulariser; the validation RMSE stops improving after a few epochs.
 */
export const DEFAULT_MF: Readonly<Required<Omit<MfOptions, "scale">>> = Object.freeze({
  factors: 8,
  epochs: 100,
  batchSize: 128,
  lr: 1e-2,
  l2: 0.5,
  patience: 5,
  seed: 0,
});

/** Tensor names of the model. */
export const mfNames = {
  mean: "global_mean",
  userBias: "user_bias",
  itemBias: "item_bias",
  userFactors: "user_factors",
  itemFactors: "item_factors",
} as const;

/** The model's tensors with their shapes, in a fixed order. */
export function mfShapes(users: number, items: number, factors: number): Map<string, number[]> {
  return new Map([
    [mfNames.mean, [1]],
    [mfNames.userBias, [users]],
    [mfNames.itemBias, [items]],
    [mfNames.userFactors, [users, factors]],
    [mfNames.itemFactors, [items, factors]],
  ]);
}

/** What {@linkcode buildMfLossGraph} returns. */
export interface MfLossGraph {
  /** The graph, ending in `loss`. */
  graph: Graph;
  /** `loss` [1]. */
  loss: Value;
  /** The trainable tensors (graph inputs), in {@linkcode mfShapes} order. */
  params: Value[];
}

/**
 * The loss graph. Inputs: `users`, `items` int32 [B] (row indices), `ratings` [B], the model's
 * tensors. Output: `loss` [1] (see the module documentation).
 */
export function buildMfLossGraph(
  users: number,
  items: number,
  options: { factors: number; l2: number; dtype?: "float32" | "float64" },
): MfLossGraph {
  const dtype = options.dtype ?? "float32";
  const g = new Graph("mf_loss");
  const u = g.input("users", "int32", ["B"]);
  const i = g.input("items", "int32", ["B"]);
  const r = g.input("ratings", dtype, ["B"]);
  const params = [...mfShapes(users, items, options.factors)].map(([name, shape]) =>
    g.input(name, dtype, shape)
  );
  const [mean, userBias, itemBias, userFactors, itemFactors] = params;
  const bu = g.gather(userBias, u); // [B]
  const bi = g.gather(itemBias, i); // [B]
  const pu = g.gather(userFactors, u); // [B, k]
  const qi = g.gather(itemFactors, i); // [B, k]
  const dot = g.reduceSum(g.mul(pu, qi), [1], false); // [B]
  const predicted = g.add(g.add(g.add(bu, bi), dot), mean); // [B]
  const err = g.sub(predicted, r);
  const mse = g.reduceMean(g.mul(err, err)); // [1]
  const squares = g.add(
    g.add(g.reduceSum(g.mul(pu, pu), [1], false), g.reduceSum(g.mul(qi, qi), [1], false)),
    g.add(g.mul(bu, bu), g.mul(bi, bi)),
  ); // [B]
  const penalty = g.mul(g.reduceMean(squares), g.constant(options.l2, dtype)); // [1]
  const loss = g.output(g.add(mse, penalty), "loss");
  return { graph: g, loss, params };
}

/** A trained model: predicts a (user, item) pair's rating. */
export class MfRating {
  readonly #users: ReadonlyMap<string, number>;
  readonly #items: ReadonlyMap<string, number>;
  readonly #weights: ReadonlyMap<string, Float32Array>;
  readonly #factors: number;
  readonly #scale: readonly [number, number] | null;
  /** The epoch whose weights these are. */
  readonly bestEpoch: number;
  /** Validation RMSE of each epoch (empty without validation ratings). */
  readonly curve: readonly number[];

  /** A trained model from its id maps, weights and training record (what `trainMf` returns). */
  constructor(init: {
    users: ReadonlyMap<string, number>;
    items: ReadonlyMap<string, number>;
    weights: ReadonlyMap<string, Float32Array>;
    factors: number;
    scale: readonly [number, number] | null;
    bestEpoch: number;
    curve: readonly number[];
  }) {
    this.#users = init.users;
    this.#items = init.items;
    this.#weights = init.weights;
    this.#factors = init.factors;
    this.#scale = init.scale;
    this.bestEpoch = init.bestEpoch;
    this.curve = init.curve;
  }

  /** Returns mu + b_u + b_i + p_u . q_i, clipped to the scale (unknown ids: zeros). */
  predict(user: string, item: string): number {
    return clipRating(
      predictRows(this.#weights, this.#factors, this.#users.get(user), this.#items.get(item)),
      this.#scale,
    );
  }
}

function predictRows(
  w: ReadonlyMap<string, Float32Array>,
  k: number,
  u: number | undefined,
  i: number | undefined,
): number {
  let r = w.get(mfNames.mean)![0];
  if (u !== undefined) r += w.get(mfNames.userBias)![u];
  if (i !== undefined) r += w.get(mfNames.itemBias)![i];
  if (u !== undefined && i !== undefined) {
    const p = w.get(mfNames.userFactors)!, q = w.get(mfNames.itemFactors)!;
    for (let j = 0; j < k; j++) r += p[u * k + j] * q[i * k + j];
  }
  return r;
}

function indexOf(keys: Iterable<string>): Map<string, number> {
  const out = new Map<string, number>();
  for (const key of keys) if (!out.has(key)) out.set(key, out.size);
  return out;
}

function positiveInt(key: string, x: number): void {
  if (!Number.isInteger(x) || x < 1) {
    throw new OptionError(key, (n) => `${n} must be a positive integer, got ${x}`);
  }
}

/**
 * Trains biased MF on `ratings` (each distinct (user, item) once, rating.ts); early-stops on
 * `validation` when given. `onEpoch` receives each epoch's mean training loss and validation RMSE.
 *
 * @example
 * ```ts
 * import type { TrainingRating } from "./rating.ts";
 *
 * declare const train: TrainingRating[], valid: TrainingRating[];
 * const mf = await trainMf(train, { scale: [1, 5] }, valid);
 * mf.predict("A2IBPI20UZIR0U", "Alpha Lipstick"); // a number in [1, 5] (items by entity)
 * ```
 */
export async function trainMf(
  ratings: readonly TrainingRating[],
  mfOptions: MfOptions = {},
  validation: readonly TrainingRating[] = [],
  onEpoch?: (epoch: number, loss: number, rmse?: number) => void,
): Promise<MfRating> {
  const options = { ...DEFAULT_MF, ...mfOptions };
  for (const key of ["factors", "epochs", "batchSize"] as const) positiveInt(key, options[key]);
  if (!(options.lr > 0)) throw new OptionError("lr", (n) => `${n} must be positive`);
  if (!(options.l2 >= 0)) throw new OptionError("l2", (n) => `${n} must be at least 0`);
  const scale = options.scale ?? null;
  const k = options.factors;
  const users = indexOf(ratings.map((r) => r.user));
  const items = indexOf(ratings.map((r) => r.item));
  const rng = new Rng(options.seed);
  const shapes = mfShapes(Math.max(1, users.size), Math.max(1, items.size), k);
  const mean = ratings.length ? ratings.reduce((s, r) => s + r.rating, 0) / ratings.length : 0;
  const state = new Map<string, TensorData>();
  for (const [name, shape] of shapes) {
    const size = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    if (name === mfNames.mean) data[0] = mean;
    if (shape.length === 2) { for (let j = 0; j < size; j++) data[j] = 0.1 * rng.normal(); }
    state.set(name, { dtype: "float32", shape, data });
    state.set(trainNames.m(name), { dtype: "float32", shape, data: new Float32Array(size) });
    state.set(trainNames.v(name), { dtype: "float32", shape, data: new Float32Array(size) });
  }
  const current = () =>
    new Map([...shapes.keys()].map((n) => [n, state.get(n)!.data as Float32Array]));
  const model = (weights: Map<string, Float32Array>, bestEpoch: number, curve: number[]) =>
    new MfRating({ users, items, weights, factors: k, scale, bestEpoch, curve });
  if (ratings.length === 0) return model(current(), 0, []);

  const { graph, loss, params } = buildMfLossGraph(
    shapes.get(mfNames.userBias)![0],
    shapes.get(mfNames.itemBias)![0],
    { factors: k, l2: options.l2 },
  );
  const grads = gradients(graph, loss, params);
  appendAdamW(graph, params.map((value, j) => ({ value, grad: grads[j], decay: false })), {
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weightDecay: 0,
    clip: 0,
  });
  graph.prune();
  // A graph this small gains nothing from more threads, and spinning threads slow a shared machine.
  const step = await Session.create(graph, { device: "cpu", threads: 1 });
  const scalar = (x: number): TensorData => ({
    dtype: "float32",
    shape: [],
    data: Float32Array.of(x),
  });
  const rmseOf = (weights: Map<string, Float32Array>) => {
    let sum = 0;
    for (const v of validation) {
      const p = clipRating(predictRows(weights, k, users.get(v.user), items.get(v.item)), scale);
      sum += (p - v.rating) ** 2;
    }
    return Math.sqrt(sum / validation.length);
  };
  try {
    const userIds = Int32Array.from(ratings, (r) => users.get(r.user)!);
    const itemIds = Int32Array.from(ratings, (r) => items.get(r.item)!);
    const values = Float32Array.from(ratings, (r) => r.rating);
    const curve: number[] = [];
    let best = Infinity, bestEpoch = 0, stale = 0, t = 0;
    let weights = current();
    for (let epoch = 1; epoch <= options.epochs; epoch++) {
      const order = rng.shuffle(ratings.map((_, j) => j));
      let lossSum = 0, steps = 0;
      for (let s = 0; s < order.length; s += options.batchSize) {
        const batch = order.slice(s, s + options.batchSize);
        const b = [batch.length];
        const feeds: Record<string, TensorData> = {
          users: { dtype: "int32", shape: b, data: Int32Array.from(batch, (j) => userIds[j]) },
          items: { dtype: "int32", shape: b, data: Int32Array.from(batch, (j) => itemIds[j]) },
          ratings: { dtype: "float32", shape: b, data: Float32Array.from(batch, (j) => values[j]) },
          lr: scalar(options.lr),
          bias_correction1: scalar(1 - 0.9 ** (t + 1)),
          bias_correction2: scalar(1 - 0.999 ** (t + 1)),
        };
        for (const [name, tensor] of state) feeds[name] = tensor;
        const out = await step.run(feeds);
        const value = (out.loss.data as Float32Array)[0];
        if (!Number.isFinite(value)) {
          throw worded(
            new TrainingDiverged(`matrix factorisation diverged (loss ${value})`),
            "lr",
            (name) =>
              `matrix factorisation diverged at epoch ${epoch} (loss ${value}): lower ${name} ` +
              `(${options.lr})`,
          );
        }
        for (const name of state.keys()) state.set(name, out[trainNames.updated(name)]);
        lossSum += value;
        steps++;
        t++;
      }
      if (validation.length === 0) {
        onEpoch?.(epoch, lossSum / steps);
        continue;
      }
      const rmse = rmseOf(current());
      curve.push(rmse);
      onEpoch?.(epoch, lossSum / steps, rmse);
      if (rmse < best) {
        best = rmse;
        bestEpoch = epoch;
        weights = new Map([...current()].map(([n, v]) => [n, v.slice()]));
        stale = 0;
      } else if (options.patience > 0 && ++stale >= options.patience) {
        break;
      }
    }
    return validation.length === 0
      ? model(current(), options.epochs, curve)
      : model(weights, bestEpoch, curve);
  } finally {
    await step.release();
  }
}
