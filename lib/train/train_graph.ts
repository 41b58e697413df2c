/**
 * The training graphs (docs/method.md section 9): the GLM forward graph with its masked
 * cross-entropy, the backward pass derived by `autodiff.ts`, global-norm gradient clipping and the
 * AdamW update, all in standard ONNX operators. Frozen weights are initializers (they stay on the
 * device); trainable tensors and the two AdamW moments are graph inputs and outputs, so a training
 * loop feeds each step's outputs back as the next step's inputs.
 *
 * Three graphs, one set of parts:
 * - the step graph: forward + backward + clip + AdamW in one run (no gradient accumulation);
 * - the gradient graph: forward + backward, adding its gradients to accumulators fed in, for
 *   gradient accumulation over micro-batches; and
 * - the update graph: clip + AdamW from accumulated gradients.
 *
 * The learning rate and AdamW's bias corrections 1 - beta^t are graph inputs, so a schedule needs
 * no rebuild; `loss_scale` seeds the backward pass, so micro-batches can be weighted by their
 * share of the loss tokens (accumulated gradients then equal those of one large batch).
 *
 * Names: a trainable tensor is fed as its own name (a checkpoint name, or PEFT's LoRA name);
 * `adam_m.{name}` and `adam_v.{name}` are its moments; `grad.{name}` its gradient;
 * `new.{name}`, `new.adam_m.{name}`, `new.adam_v.{name}` the updated values.
 *
 * @module
 */

import { decoderWeightShapes } from "../model/families/config.ts";
import {
  type AttentionMode,
  buildDecoderForwardGraph,
  methodShapes,
  residualDropoutInputs,
} from "../model/families/decoder.ts";
import { type AnyConfig, modelConfig } from "../model/config.ts";
import type { Weights } from "../model/weights.ts";
import { attr, Graph, type Value } from "../onnx/graph.ts";
import { gradients } from "./autodiff.ts";
import { type LoraConfig, loraHook, loraModules, loraShapes } from "../model/lora.ts";

/** AdamW and clipping settings (PyTorch's AdamW semantics). */
export interface AdamWOptions {
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay on matrices (not biases or LayerNorm weights). Default 0.01. */
  weightDecay?: number;
  /** Clip the global gradient norm to this (0: no clipping). Default 1. */
  clip?: number;
}

/** AdamW defaults. */
export const DEFAULT_ADAMW: Required<AdamWOptions> = Object.freeze({
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0.01,
  clip: 1,
});

/** One trainable tensor. */
export interface TrainParam {
  name: string;
  shape: number[];
  /** Whether weight decay applies (matrices and embeddings yes; biases and LayerNorm no). */
  decay: boolean;
}

/** What to train: LoRA adapters (frozen base) or every weight (`lora` null). */
export interface TrainSetup {
  /** The model's configuration (any family; a GLM's own form is normalised). */
  config: AnyConfig;
  /**
   * The run's attention rule (default: the configuration's, else causal) and the special-token
   * rows past the checkpoint's vocabulary (trained with the adapter, as a rotary family's
   * intra-position table).
   */
  decoder?: { attention?: AttentionMode; addedRows?: number };
  /** Base weights: every frozen weight must be here; trainable ones are fed at run time. */
  weights: Weights;
  /** The adapter to train; null trains every weight of the model. */
  lora: LoraConfig | null;
  /** Float type (default float32; float64 for gradient checks). */
  dtype?: "float32" | "float64";
  /**
   * The loss takes the `loss_logit_bias` input (the trie softmax, lib/collate/trie_loss.ts), so
   * every batch must carry `lossLogitBias`. Default false.
   */
  trieLoss?: boolean;
  /**
   * The model's own dropout in training graphs: keep-masks on the embeddings and on each layer's
   * attention and MLP outputs (`residualDropoutInputs`), drawn with probability `dropout` of a
   * zero. Default 0 (none). Validation runs without it.
   */
  dropout?: number;
}

/** Names of the tensors of a trainable tensor in the graphs. */
export const trainNames = {
  m: (name: string) => `adam_m.${name}`,
  v: (name: string) => `adam_v.${name}`,
  grad: (name: string) => `grad.${name}`,
  acc: (name: string) => `acc.${name}`,
  updated: (name: string) => `new.${name}`,
};

/** The trainable tensors of `setup`, in a fixed order (checkpoint order, or adapter order). */
export function trainableParams(
  setup: Pick<TrainSetup, "config" | "lora" | "decoder">,
): TrainParam[] {
  const c = modelConfig(setup.config);
  const shapes = setup.lora ? loraShapes(c, setup.lora) : decoderWeightShapes(c);
  for (const [name, shape] of methodShapes(c, setup.decoder?.addedRows)) shapes.set(name, shape);
  return [...shapes].map(([name, shape]) => ({
    name,
    shape,
    decay: shape.length >= 2,
  }));
}

/**
 * The model's forward graph with loss whose trainable tensors are graph inputs; with `dropout`,
 * the keep-mask inputs of the adapter's dropout and of the model's own (each where its rate is
 * above 0).
 */
function forwardForTraining(setup: TrainSetup, dropout: boolean) {
  const params = trainableParams(setup);
  const trainable = new Set(params.map((p) => p.name));
  const c = modelConfig(setup.config);
  const lora = setup.lora;
  const built = buildDecoderForwardGraph({
    config: c,
    weights: setup.weights,
    outputs: "loss",
    dtype: setup.dtype,
    // LoRA tensors enter through the hook; the method's tensors (and, in full training, every
    // weight) are inputs named as themselves.
    trainable: (name) => trainable.has(name),
    linear: lora ? loraHook(c, lora, { dropout }) : undefined,
    residualDropout: dropout && (setup.dropout ?? 0) > 0,
    attention: setup.decoder?.attention,
    addedRows: setup.decoder?.addedRows,
    lossLogitBias: setup.trieLoss,
    // For LayerNorm and GELU blocks: their statistics and one Gelu node, for the backward pass.
    layerNormStats: true,
    geluNode: true,
  });
  const g = built.graph;
  return { g, loss: built.loss!, params: params.map((p) => g.value(p.name)) };
}

/** Forward + backward; the gradients of the trainable tensors, in {@linkcode trainableParams} order. */
function forwardBackward(setup: TrainSetup) {
  const { g, loss, params } = forwardForTraining(setup, true);
  const seed = g.input("loss_scale", loss.dtype, loss.shape);
  const grads = gradients(g, loss, params, { seed });
  return { g, loss, params, grads };
}

/**
 * Appends global-norm clipping and AdamW to `g` for `params` with gradients `grads`; adds the
 * inputs `lr`, `bias_correction1`, `bias_correction2` (scalars) and the moments, and the outputs
 * `grad_norm` (before clipping) and the updated tensors and moments.
 */
export function appendAdamW(
  g: Graph,
  params: readonly { value: Value; grad: Value; decay: boolean }[],
  adamw: AdamWOptions,
): void {
  const o = { ...DEFAULT_ADAMW, ...adamw };
  const dtype = params[0].value.dtype;
  const c = (x: number) => g.constant(x, dtype);
  g.scope("adamw", () => {
    const lr = g.input("lr", dtype, []);
    const bc1 = g.input("bias_correction1", dtype, []);
    const bc2 = g.input("bias_correction2", dtype, []);
    const squares = params.map((p) =>
      g.node("ReduceSumSquare", [p.grad], { keepdims: attr.int(0) })[0]
    );
    const sumSq = squares.length === 1 ? squares[0] : g.sum(...squares);
    const norm = g.output(g.sqrt(sumSq), "grad_norm"); // []
    // torch.nn.utils.clip_grad_norm_: scale by min(1, clip / (norm + 1e-6)).
    const coef = o.clip > 0 ? g.min(g.div(c(o.clip), g.add(norm, c(1e-6))), c(1)) : null;
    const stepSize = g.div(lr, bc1); // lr / (1 - beta1^t)
    const bc2Sqrt = g.sqrt(bc2);
    const decayed = g.sub(c(1), g.mul(lr, c(o.weightDecay))); // 1 - lr * wd
    for (const p of params) {
      const name = p.value.name;
      const m = g.input(trainNames.m(name), dtype, p.value.shape);
      const v = g.input(trainNames.v(name), dtype, p.value.shape);
      const grad = coef ? g.mul(p.grad, coef) : p.grad;
      const m2 = g.add(g.mul(m, c(o.beta1)), g.mul(grad, c(1 - o.beta1)));
      const v2 = g.add(g.mul(v, c(o.beta2)), g.mul(g.mul(grad, grad), c(1 - o.beta2)));
      const denom = g.add(g.div(g.sqrt(v2), bc2Sqrt), c(o.eps));
      const base = p.decay && o.weightDecay > 0 ? g.mul(p.value, decayed) : p.value;
      const updated = g.sub(base, g.mul(stepSize, g.div(m2, denom)));
      g.output(updated, trainNames.updated(name));
      g.output(m2, trainNames.updated(trainNames.m(name)));
      g.output(v2, trainNames.updated(trainNames.v(name)));
    }
  });
}

/** A built training graph and the names a training loop needs. */
export interface TrainGraph {
  graph: Graph;
  /** The trainable tensors, in order. */
  params: TrainParam[];
  /**
   * The dropout keep-mask inputs, in the order they are drawn: the adapter's, then the model's
   * own; each with its feature size (a mask is [rows, features]) and its rate. Empty without
   * dropout.
   */
  dropoutMasks: DropoutInput[];
}

/** One dropout keep-mask input of a training graph. */
export interface DropoutInput {
  name: string;
  /** Its width: the mask is [rows, features]. */
  features: number;
  /** Probability of a zero. */
  rate: number;
  /** Whose mask it is: the adapter's or the model's own (each drawn its way). */
  owner: "adapter" | "model";
}

function dropoutInputs(setup: TrainSetup): DropoutInput[] {
  const masks: DropoutInput[] = [];
  if (setup.lora && setup.lora.dropout > 0) {
    const rate = setup.lora.dropout;
    for (const m of loraModules(setup.config, setup.lora)) {
      masks.push({ name: m.dropoutMask, features: m.inFeatures, rate, owner: "adapter" });
    }
  }
  const rate = setup.dropout ?? 0;
  if (rate > 0) {
    for (const m of residualDropoutInputs(modelConfig(setup.config))) {
      masks.push({ ...m, rate, owner: "model" });
    }
  }
  return masks;
}

/**
 * The step graph: forward, loss, backward, clipping and AdamW in one graph. Inputs: the batch
 * (`input_ids`, `position_ids`, `sep`, `labels`, `loss_mask`), `loss_scale` [1] (1 for a plain
 * step), the trainable tensors and their moments, `lr`, `bias_correction1`, `bias_correction2`,
 * and the LoRA dropout masks when dropout > 0. Outputs: `loss` [1], `grad_norm` [], and the
 * updated tensors and moments (`new.*`).
 */
export function buildTrainStepGraph(
  setup: TrainSetup,
  adamw: AdamWOptions = {},
): TrainGraph {
  const { g, params, grads } = forwardBackward(setup);
  const list = trainableParams(setup);
  appendAdamW(
    g,
    params.map((value, i) => ({ value, grad: grads[i], decay: list[i].decay })),
    adamw,
  );
  g.prune();
  return { graph: g, params: list, dropoutMasks: dropoutInputs(setup) };
}

/**
 * The gradient graph for accumulation: forward, loss and backward, with outputs `loss` and
 * `grad.{name}` = `acc.{name}` (an input: the sum so far, zeros at the first micro-batch) + this
 * micro-batch's gradient times `loss_scale`. Without `accumulate`, `grad.{name}` is the gradient
 * alone and there are no `acc.*` inputs.
 */
export function buildGradGraph(
  setup: TrainSetup,
  options: { accumulate?: boolean } = {},
): TrainGraph {
  const { g, params, grads } = forwardBackward(setup);
  params.forEach((p, i) => {
    const total = options.accumulate
      ? g.add(g.input(trainNames.acc(p.name), p.dtype, p.shape), grads[i])
      : grads[i];
    g.output(total, trainNames.grad(p.name));
  });
  g.prune();
  return { graph: g, params: trainableParams(setup), dropoutMasks: dropoutInputs(setup) };
}

/**
 * The update graph: clipping and AdamW from accumulated gradients. Inputs: each tensor, its
 * `grad.{name}` and moments, `lr`, `bias_correction1`, `bias_correction2`. Outputs as the step
 * graph's, without `loss`.
 */
export function buildUpdateGraph(
  params: readonly TrainParam[],
  adamw: AdamWOptions = {},
  dtype: "float32" | "float64" = "float32",
): Graph {
  const g = new Graph("adamw_update");
  const list = params.map((p) => ({
    value: g.input(p.name, dtype, p.shape),
    grad: g.input(trainNames.grad(p.name), dtype, p.shape),
    decay: p.decay,
  }));
  appendAdamW(g, list, adamw);
  return g;
}

/**
 * The forward graph for validation: loss only, trainable tensors as inputs (no dropout of any
 * kind), so the current values are fed without rebuilding.
 */
export function buildEvalGraph(setup: TrainSetup): Graph {
  const g = forwardForTraining(setup, false).g;
  g.prune();
  return g;
}
