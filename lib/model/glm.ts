/**
 * The GLM model (docs/method.md section 8) as ONNX graphs: the forward graph (logits, the masked
 * mean cross-entropy, or both) and the two decoding graphs with a key/value cache (part A encoded
 * once; then steps of one or more new tokens per sequence). Layers are small functions that read
 * top to bottom with the shape of every tensor in a comment; the graph layer (lib/onnx) does the
 * rest.
 *
 * Made to be reused unchanged by training: every weight is an initializer (frozen) or a graph
 * input named as the weight (trainable), chosen per tensor by `trainable`; `linear` wraps any of
 * the four linear modules of a layer (LoRA adds its update there); `dtype: "float64"` builds the
 * same graph in double precision for finite-difference checks.
 *
 * Shapes: B sequences of L tokens, H = hidden size, nh heads of hd = H / nh, V = vocabulary;
 * activations between layers are 2-D, [B*L, H], so every linear is one Gemm.
 *
 * @module
 */

import { type DType, Graph, type Shape, type Value } from "../onnx/graph.ts";
import { type GlmConfig, layerPrefix } from "./config.ts";
import type { Weights } from "./weights.ts";

/** The four linear modules of a layer, by their name inside `glm.transformer.layers.{i}`. */
export type LinearKind =
  | "attention.query_key_value"
  | "attention.dense"
  | "mlp.dense_h_to_4h"
  | "mlp.dense_4h_to_h";

/** What a {@linkcode LinearHook} is given for one linear module. */
export interface LinearContext {
  /** The graph being built (add LoRA inputs and nodes to it). */
  g: Graph;
  /** The full module name: `glm.transformer.layers.0.attention.query_key_value`. */
  module: string;
  layer: number;
  kind: LinearKind;
  /** The input activations: [N, inFeatures]. */
  x: Value;
  inFeatures: number;
  outFeatures: number;
  /** The module's weight [out, in] and bias [out] as graph tensors. */
  weight: Value;
  bias: Value;
  /** The float type of the graph (constants a hook adds should use it). */
  dtype: "float32" | "float64";
  /** The module's own output, x W^T + b: [N, outFeatures]. */
  base(): Value;
}

/**
 * Replaces a linear module's output: return `ctx.base()` plus whatever the adapter adds.
 *
 * @example
 * ```ts
 * // LoRA on the QKV projection: y = x W^T + b + (alpha / r) * x A^T B^T
 * const lora: LinearHook = (ctx) => {
 *   if (ctx.kind !== "attention.query_key_value") return ctx.base();
 *   const a = ctx.g.input(`${ctx.module}.lora_A.weight`, ctx.dtype, [8, ctx.inFeatures]);
 *   const b = ctx.g.input(`${ctx.module}.lora_B.weight`, ctx.dtype, [ctx.outFeatures, 8]);
 *   const xa = ctx.g.gemm(ctx.x, a, null, { transB: true });
 *   return ctx.g.add(ctx.base(), ctx.g.gemm(xa, b, null, { transB: true, alpha: 2 }));
 * };
 * ```
 */
export type LinearHook = (ctx: LinearContext) => Value;

/** How the GLM graphs are built (shared by every graph builder below). */
export interface GlmOptions {
  config: GlmConfig;
  /** Weight data by name; needed for every frozen weight (trainable ones may be absent). */
  weights: Weights;
  /**
   * Which weights are graph inputs (fed at run time, named as the weight) rather than
   * initializers. Default: none (all frozen).
   */
  trainable?: (name: string) => boolean;
  /** Float type of the whole graph (default float32; float64 for gradient checks). */
  dtype?: "float32" | "float64";
  /** Wraps each linear module (default: the plain linear). */
  linear?: LinearHook;
  /**
   * Attention written in standard operators (`ops`, default, differentiable by the project's
   * autodiff) or as one opset-23 Attention node (`fused`, forward only).
   */
  attention?: "ops" | "fused";
  /**
   * Give each float32 LayerNormalization node its Mean and InvStdDev outputs too, so that
   * training's backward pass reuses them instead of recomputing them (default false).
   */
  layerNormStats?: boolean;
  /**
   * With a loss: a `loss_logit_bias` float32 input [M, V] added to the logits of the M loss
   * positions (row-major over [B, L], the positions whose loss weight is not 0) before the
   * softmax. The trie softmax's training loss feeds 0 where the trie allows a token and a large
   * negative value elsewhere (lib/collate/trie_loss.ts). Default false.
   */
  lossLogitBias?: boolean;
  /**
   * Each float32 GELU as one Gelu node (opset 20) instead of its elementwise form. For training
   * graphs: onnxruntime fuses the form into one kernel only where nothing else reads its
   * intermediates, and the backward pass reads them; the Gelu rule (lib/train/grad_rules.ts)
   * needs fewer passes over the activations than the form's nine nodes differentiated one by one.
   * Default false (float64 graphs keep the form: the independent reference of the rule).
   */
  geluNode?: boolean;
}

/**
 * GELU's tanh approximation in elementwise nodes, written as (0.5 x) (1 + tanh((c x) (1 + 0.044715
 * x x))), the form onnxruntime fuses into one kernel (and the reference of the Gelu rule's tests).
 */
export function geluTanhForm(g: Graph, x: Value, scalar: (v: number) => Value): Value {
  const inner = g.add(g.mul(g.mul(x, scalar(0.044715)), x), scalar(1)); // 1 + 0.044715 x^2
  const t = g.tanh(g.mul(g.mul(x, scalar(0.7978845608028654)), inner));
  return g.mul(g.mul(x, scalar(0.5)), g.add(t, scalar(1)));
}

/** Name of the input of {@linkcode GlmOptions.lossLogitBias}. */
export const LOSS_LOGIT_BIAS = "loss_logit_bias";

/** GLM's additive mask value for positions a token may not see. */
const MASKED = -10000;

/** A float constant in a graph's dtype. */
type Scalar = (x: number) => Value;

/**
 * Builds GLM layers into a graph: the pieces every GLM graph shares. The graph builders below use
 * it; training code may use it directly to assemble other graphs from the same parts.
 */
export class GlmBuilder {
  readonly g: Graph;
  readonly config: GlmConfig;
  readonly dtype: "float32" | "float64";
  /** Every weight tensor the graph uses, by its checkpoint name. */
  readonly params: Map<string, Value> = new Map();
  readonly #options: GlmOptions;
  readonly scalar: Scalar;

  constructor(g: Graph, options: GlmOptions) {
    this.g = g;
    this.config = options.config;
    this.dtype = options.dtype ?? "float32";
    this.#options = options;
    this.scalar = (x) => g.constant(x, this.dtype);
  }

  /** Heads and head size. */
  get heads(): { nh: number; hd: number } {
    return { nh: this.config.numHeads, hd: this.config.hiddenSize / this.config.numHeads };
  }

  /** Weight `name` of `shape`: a graph input when trainable, else an initializer. */
  weight(name: string, shape: number[]): Value {
    const known = this.params.get(name);
    if (known) return known;
    let v: Value;
    if (this.#options.trainable?.(name)) {
      v = this.g.input(name, this.dtype, shape);
    } else {
      const data = this.#options.weights.get(name);
      if (!data) throw new Error(`weight ${name} is missing`);
      const n = shape.reduce((a, b) => a * b, 1);
      if (data.length !== n) {
        throw new Error(`weight ${name}: ${data.length} values for shape [${shape.join(", ")}]`);
      }
      v = this.g.initializer(name, {
        dtype: this.dtype,
        shape,
        data: this.dtype === "float64" ? Float64Array.from(data) : data,
      });
    }
    this.params.set(name, v);
    return v;
  }

  /** Token + position + block-position embeddings: ids and positions [..., L] -> [..., L, H]. */
  embed(inputIds: Value, inter: Value, intra: Value): Value {
    const { hiddenSize: h, vocabSize: v, maxSequenceLength: m } = this.config;
    const g = this.g;
    return g.scope("embed", () => {
      const words = g.gather(this.weight("glm.word_embeddings.weight", [v, h]), inputIds);
      const pos = g.gather(
        this.weight("glm.transformer.position_embeddings.weight", [m + 1, h]),
        inter,
      );
      const block = g.gather(
        this.weight("glm.transformer.block_position_embeddings.weight", [m + 1, h]),
        intra,
      );
      return g.add(g.add(words, pos), block);
    });
  }

  /**
   * LayerNorm with the weights at `prefix` ({prefix}.weight, {prefix}.bias) over the last axis.
   * In float64 graphs it is spelled out in elementary operators, since onnxruntime computes
   * LayerNormalization's statistics in float32 whatever the input type.
   */
  layerNorm(prefix: string, x: Value): Value {
    const h = this.config.hiddenSize;
    const g = this.g;
    const w = this.weight(`${prefix}.weight`, [h]);
    const b = this.weight(`${prefix}.bias`, [h]);
    const epsilon = this.config.layernormEpsilon;
    if (this.dtype === "float32") {
      return this.#options.layerNormStats
        ? g.layerNormWithStats(x, w, b, { epsilon })[0]
        : g.layerNorm(x, w, b, { epsilon });
    }
    const centered = g.sub(x, g.reduceMean(x, [-1])); // [N, H]
    const variance = g.reduceMean(g.mul(centered, centered), [-1]); // [N, 1]
    const normed = g.div(centered, g.sqrt(g.add(variance, this.scalar(epsilon))));
    return g.add(g.mul(normed, w), b);
  }

  /** Linear module `kind` of layer `i` on x [N, in] -> [N, out], through the hook if any. */
  linear(i: number, kind: LinearKind, x: Value, inFeatures: number, outFeatures: number): Value {
    const module = `${layerPrefix(i)}.${kind}`;
    const weight = this.weight(`${module}.weight`, [outFeatures, inFeatures]);
    const bias = this.weight(`${module}.bias`, [outFeatures]);
    const base = () => this.g.gemm(x, weight, bias, { transB: true });
    const hook = this.#options.linear;
    if (!hook) return base();
    return hook({
      g: this.g,
      module,
      layer: i,
      kind,
      x,
      inFeatures,
      outFeatures,
      weight,
      bias,
      dtype: this.dtype,
      base,
    });
  }

  /**
   * GELU, tanh approximation: 0.5 x (1 + tanh(0.7978845608028654 (x + 0.044715 x^3))), written
   * as (0.5 x) (1 + tanh((c x) (1 + 0.044715 x x))), the form onnxruntime fuses into one kernel.
   */
  gelu(x: Value): Value {
    const { g, scalar } = this;
    if (this.#options.geluNode && this.dtype === "float32") return g.gelu(x, "tanh");
    return geluTanhForm(g, x, scalar);
  }

  /** The MLP of layer i: x [N, H] -> [N, H]. */
  mlp(i: number, x: Value): Value {
    const h = this.config.hiddenSize;
    const up = this.linear(i, "mlp.dense_h_to_4h", x, h, 4 * h); // [N, 4H]
    return this.linear(i, "mlp.dense_4h_to_h", this.gelu(up), 4 * h, h); // [N, H]
  }

  /**
   * Q, K and V of layer i from its normalized input x [B*T, H]: each [B, nh, T, hd]. `bt` is the
   * runtime shape [B, T] (int64) of the tokens, `bShape`/`tShape` their static names.
   */
  qkv(i: number, x: Value, bt: Value, bShape: Shape[number], tShape: Shape[number]) {
    const g = this.g;
    const { nh, hd } = this.heads;
    const h = this.config.hiddenSize;
    const mixed = this.linear(i, "attention.query_key_value", x, h, 3 * h); // [B*T, 3H]
    const shape = g.concat([bt, g.constant([3 * nh, hd], "int64")], 0);
    const heads = g.refine(g.reshape(mixed, shape), [bShape, tShape, 3 * nh, hd]); // [B, T, 3nh, hd]
    const all = g.transpose(heads, [0, 2, 1, 3]); // [B, 3nh, T, hd]
    const [q, k, v] = g.split(all, [nh, nh, nh], 1); // each [B, nh, T, hd]
    return { q, k, v };
  }

  /**
   * Attention of queries q [B, nh, T, hd] over keys/values [B, nh, S, hd] with an additive mask
   * broadcastable to [B, nh, T, S]: returns the context [B, nh, T, hd].
   */
  attend(q: Value, k: Value, v: Value, mask: Value): Value {
    const g = this.g;
    const scale = this.scalar(1 / Math.sqrt(this.heads.hd));
    const scores = g.mul(g.matmul(q, g.transpose(k, [0, 1, 3, 2])), scale); // [B, nh, T, S]
    const probs = g.softmax(g.add(scores, mask), -1);
    return g.matmul(probs, v); // [B, nh, T, hd]
  }

  /** Context [B, nh, T, hd] back to rows [B*T, H]. */
  mergeHeads(ctx: Value): Value {
    const g = this.g;
    return g.reshape(g.transpose(ctx, [0, 2, 1, 3]), [-1, this.config.hiddenSize]);
  }

  /**
   * Transformer layer i over the rows x [B*L, H] of one full sequence batch with the additive
   * mask [B, 1, L, L]: pre-LN attention and MLP, each added back to x. Returns the new rows and
   * the layer's K and V ([B, nh, L, hd]) for caching.
   */
  layer(
    i: number,
    x: Value,
    mask: Value,
    shape: { bl: Value; b: Shape[number]; l: Shape[number] },
  ): { x: Value; k: Value; v: Value } {
    const g = this.g;
    const p = layerPrefix(i);
    return g.scope(`layers.${i}`, () => {
      const h = this.config.hiddenSize;
      const normed = this.layerNorm(`${p}.input_layernorm`, x); // [B*L, H]
      let ctx: Value;
      let k: Value;
      let v: Value;
      if (this.#options.attention === "fused") {
        const { nh } = this.heads;
        const mixed = this.linear(i, "attention.query_key_value", normed, h, 3 * h);
        const bl3 = g.concat([shape.bl, g.constant([3 * h], "int64")], 0);
        const rows = g.refine(g.reshape(mixed, bl3), [shape.b, shape.l, 3 * h]);
        const [q3, k3, v3] = g.split(rows, [h, h, h], 2); // each [B, L, H]
        const [out] = g.node("Attention", [q3, k3, v3, mask], {
          q_num_heads: { type: "int", value: nh },
          kv_num_heads: { type: "int", value: nh },
        });
        ctx = g.reshape(out, [-1, h]); // [B*L, H]
        k = k3;
        v = v3;
      } else {
        const qkv = this.qkv(i, normed, shape.bl, shape.b, shape.l);
        ctx = this.mergeHeads(this.attend(qkv.q, qkv.k, qkv.v, mask)); // [B*L, H]
        k = qkv.k;
        v = qkv.v;
      }
      const attn = this.linear(i, "attention.dense", ctx, h, h); // [B*L, H]
      const mid = g.add(x, attn);
      const out = g.add(mid, this.mlp(i, this.layerNorm(`${p}.post_attention_layernorm`, mid)));
      return { x: out, k, v };
    });
  }

  /** The final LayerNorm: [M, H] -> [M, H]. */
  finalNorm(x: Value): Value {
    return this.g.scope("final", () => this.layerNorm("glm.transformer.final_layernorm", x));
  }

  /** Logits tied to the word embedding: [..., H] -> [..., V] (one Gemm for 2-D rows). */
  logits(x: Value): Value {
    const { vocabSize: v, hiddenSize: h } = this.config;
    const g = this.g;
    const table = this.weight("glm.word_embeddings.weight", [v, h]);
    return g.scope(
      "logits",
      () =>
        x.shape.length === 2
          ? g.gemm(x, table, null, { transB: true })
          : g.matmul(x, g.transpose(table, [1, 0])),
    );
  }

  /**
   * GLM's attention mask as an additive bias [B, 1, L, L]: token i sees token j iff j < sep or
   * j <= i (0 where it sees, -10000 where not). `length` is L as an int64 scalar.
   */
  sepMask(sep: Value, length: Value, l: Shape[number]): Value {
    const g = this.g;
    return g.scope("mask", () => {
      const range = g.refine(g.range(g.constant(0, "int64"), length, g.constant(1, "int64")), [l]);
      const j = g.unsqueeze(range, [0, 1]); // [1, 1, L]: the key position
      const i = g.unsqueeze(range, [0, 2]); // [1, L, 1]: the query position
      const partA = g.less(j, g.unsqueeze(g.cast(sep, "int64"), [1, 2])); // [B, 1, L]
      const seen = g.or(partA, g.lessOrEqual(j, i)); // [B, L, L]
      const bias = g.where(seen, this.scalar(0), this.scalar(MASKED));
      return g.unsqueeze(bias, [1]); // [B, 1, L, L]
    });
  }

  /**
   * Masked mean cross-entropy of logits [M, V] against labels [M] (int) with weights [M]:
   * sum(w * -logSoftmax(logits)[label]) / max(sum(wAll), 1), where `wAll` is every
   * position's weight (so positions left out of `logits` count as weight 0). Returns [1].
   */
  crossEntropy(logits: Value, labels: Value, weights: Value, weightSum: Value): Value {
    const g = this.g;
    return g.scope("loss", () => {
      const logp = g.logSoftmax(logits, -1); // [M, V]
      const target = g.reshape(g.gatherElements(logp, g.unsqueeze(labels, [1]), 1), [-1]); // [M]
      const total = g.reduceSum(g.mul(target, weights), [0], true); // [1]: minus the loss sum
      // 0 - total rather than -total, so that no loss positions give 0, not -0.
      return g.div(g.sub(this.scalar(0), total), g.max(weightSum, this.scalar(1))); // [1]
    });
  }
}

/** Which outputs a forward graph has. */
export type ForwardOutputs = "logits" | "loss" | "both";

/** What {@linkcode buildForwardGraph} returns. */
export interface ForwardGraph {
  graph: Graph;
  builder: GlmBuilder;
  /** `logits` [B, L, V] when asked for. */
  logits?: Value;
  /** `loss` [1] when asked for. */
  loss?: Value;
  /** The final hidden rows [B*L, H] before the final LayerNorm (for other heads). */
  hidden: Value;
}

/**
 * The GLM forward graph. Inputs: `input_ids` int32 [B, L], `position_ids` int32 [B, 2, L] (inter,
 * intra), `sep` int32 [B]; with a loss also `labels` int32 [B, L] (-100 or any negative: no loss)
 * and `loss_mask` float [B, L]. Outputs: `logits` [B, L, V] and/or `loss` [1]. With `loss` only,
 * logits are computed only at the positions that carry loss (NonZero of the mask, a Gather of
 * their rows, then the tied projection), which saves most of the output projection.
 *
 * @example
 * ```ts
 * import { Session } from "../runtime/session.ts";
 * import type { GlmConfig } from "./config.ts";
 * import type { Weights } from "./weights.ts";
 *
 * declare const config: GlmConfig, weights: Weights;
 * const { graph } = buildForwardGraph({ config, weights, outputs: "loss" });
 * const session = await Session.create(graph);
 * ```
 */
export function buildForwardGraph(options: GlmOptions & { outputs: ForwardOutputs }): ForwardGraph {
  const dtype = options.dtype ?? "float32";
  const g = new Graph(`glm_forward_${options.outputs}`, {
    opset: options.attention === "fused" ? 23 : undefined,
  });
  const m = new GlmBuilder(g, options);
  const { hiddenSize: h } = options.config;

  const inputIds = g.input("input_ids", "int32", ["B", "L"]);
  const positionIds = g.input("position_ids", "int32", ["B", 2, "L"]);
  const sep = g.input("sep", "int32", ["B"]);
  const wantLoss = options.outputs !== "logits";
  const labels = wantLoss ? g.input("labels", "int32", ["B", "L"]) : undefined;
  const lossMask = wantLoss ? g.input("loss_mask", "float32", ["B", "L"]) : undefined;
  const logitBias = wantLoss && options.lossLogitBias
    ? g.input(LOSS_LOGIT_BIAS, "float32", ["M", options.config.vocabSize])
    : undefined;
  // [M, V] logits of the loss positions, with the bias when there is one.
  const biased = (logits: Value) =>
    logitBias
      ? g.add(logits, dtype === "float64" ? g.cast(logitBias, "float64") : logitBias)
      : logits;

  const bl = g.shapeOf(inputIds); // [2] = (B, L)
  const length = g.gather(bl, g.constant(1, "int64")); // scalar L
  const inter = g.gather(positionIds, g.constant(0, "int64"), 1); // [B, L]
  const intra = g.gather(positionIds, g.constant(1, "int64"), 1); // [B, L]
  let x = g.reshape(m.embed(inputIds, inter, intra), [-1, h]); // [B*L, H]
  const mask = m.sepMask(sep, length, "L"); // [B, 1, L, L]
  for (let i = 0; i < options.config.numLayers; i++) {
    x = m.layer(i, x, mask, { bl, b: "B", l: "L" }).x;
  }
  const hidden = x;

  const result: ForwardGraph = { graph: g, builder: m, hidden };
  let logits3: Value | undefined;
  if (options.outputs !== "loss") {
    // [B, L, V] straight from a 3-D MatMul: a Reshape of the 2-D product to the graph output
    // would copy all B*L*V logits once more.
    const normed = m.finalNorm(x); // [B*L, H]
    const rows3 = g.refine(g.reshape(normed, g.concat([bl, g.constant([h], "int64")], 0)), [
      "B",
      "L",
      h,
    ]);
    logits3 = g.output(m.logits(rows3), "logits"); // [B, L, V]
    result.logits = logits3;
  }
  if (labels && lossMask) {
    // Loss weight per position: the loss mask where the label is a real token.
    const valid = g.cast(g.greaterOrEqual(labels, g.constant(0, "int32")), "float32");
    const weight32 = g.mul(lossMask, valid); // [B, L]
    // (NonZero has no float64 kernel: positions are found on the float32 weights.)
    const weight = dtype === "float64" ? g.cast(weight32, "float64") : weight32;
    const weightSum = g.reshape(g.reduceSum(weight), [1]); // [1]
    let loss: Value;
    if (logits3) {
      const where = g.transpose(g.nonZero(weight32), [1, 0]); // [M, 2]: (b, t) with loss
      const picked = biased(g.gatherND(logits3, where)); // [M, V]
      loss = m.crossEntropy(
        picked,
        g.gatherND(labels, where),
        g.gatherND(weight, where),
        weightSum,
      );
    } else {
      const rows = g.reshape(g.nonZero(g.reshape(weight32, [-1])), [-1]); // [M]: rows with loss
      const picked = biased(m.logits(m.finalNorm(g.gather(x, rows)))); // [M, V]
      const flat = (v: Value) => g.gather(g.reshape(v, [-1]), rows); // [M]
      loss = m.crossEntropy(picked, flat(labels), flat(weight), weightSum);
    }
    result.loss = g.output(loss, "loss");
  }
  return result;
}

// ---- decoding with a key/value cache -------------------------------------------------------------

/** Names of the cache tensors of layer i (inputs and outputs of the decoding graphs). */
export const cacheNames = {
  /** Part A keys/values of layer i: [Bp, nh, La, hd] (output of the prefill, input of steps). */
  partAKey: (i: number) => `part_a_key_${i}`,
  partAValue: (i: number) => `part_a_value_${i}`,
  /** Generated-token keys/values before a step: [N, nh, P, hd]. */
  pastKey: (i: number) => `past_key_${i}`,
  pastValue: (i: number) => `past_value_${i}`,
  /** Generated-token keys/values after a step: [N, nh, P + T, hd]. */
  presentKey: (i: number) => `present_key_${i}`,
  presentValue: (i: number) => `present_value_${i}`,
};

/**
 * The prefill graph: encodes part A once (bidirectional among its real tokens) and returns each
 * layer's keys and values. Inputs: `input_ids` int32 [Bp, La], `position_ids` int32 [Bp, 2, La],
 * `sep` int32 [Bp] (each prompt's real length; positions past it are right padding, which no real
 * token sees). Outputs: `part_a_key_{i}`, `part_a_value_{i}` [Bp, nh, La, hd] for every layer.
 */
export function buildPrefillGraph(options: GlmOptions): { graph: Graph; builder: GlmBuilder } {
  const g = new Graph("glm_prefill");
  const m = new GlmBuilder(g, { ...options, attention: "ops" });
  const h = options.config.hiddenSize;
  const inputIds = g.input("input_ids", "int32", ["Bp", "La"]);
  const positionIds = g.input("position_ids", "int32", ["Bp", 2, "La"]);
  const sep = g.input("sep", "int32", ["Bp"]);
  const bl = g.shapeOf(inputIds);
  const inter = g.gather(positionIds, g.constant(0, "int64"), 1);
  const intra = g.gather(positionIds, g.constant(1, "int64"), 1);
  let x = g.reshape(m.embed(inputIds, inter, intra), [-1, h]); // [Bp*La, H]
  const mask = m.sepMask(sep, g.gather(bl, g.constant(1, "int64")), "La"); // [Bp, 1, La, La]
  const last = options.config.numLayers - 1;
  for (let i = 0; i <= last; i++) {
    const out = m.layer(i, x, mask, { bl, b: "Bp", l: "La" });
    g.output(out.k, cacheNames.partAKey(i));
    g.output(out.v, cacheNames.partAValue(i));
    x = out.x;
  }
  // The last layer's MLP feeds nothing: drop it.
  g.prune();
  return { graph: g, builder: m };
}

/** Which outputs a decoding step returns. */
export type StepOutputs =
  /** `log_probs` [N, V]: log-softmax of the last new token's logits (beam search). */
  | "last"
  /** `log_probs` [N, T, V]: log-softmax at every new token. */
  | "all"
  /** `target_log_probs` [N, T]: log-probability of input `targets` [N, T] at every new token. */
  | "targets";

/**
 * One decoding step over N = Bp * K sequences (K per prompt, rows grouped by prompt: row n
 * continues prompt floor(n / K)). Each sequence gets T new tokens with their own positions; they
 * attend to their prompt's part A (shared by its K sequences, never copied per sequence), to the
 * tokens generated before (the past cache), and causally among themselves.
 *
 * Inputs:
 * - `input_ids` int32 [N, T], `position_ids` int32 [N, 2, T]
 * - `sep` int32 [Bp]: each prompt's part-A length (padding beyond it is not attended)
 * - `part_a_key_{i}`, `part_a_value_{i}` [Bp, nh, La, hd]: from the prefill graph
 * - `past_key_{i}`, `past_value_{i}` [Nprev, nh, P, hd]: the previous step's presents (P = 0 at
 *   the first step: a [Nprev, nh, 0, hd] tensor)
 * - `beam_index` int32 [N]: which row of the past each sequence continues (beam reordering
 *   without copying in JavaScript; 0..N-1 when nothing is reordered)
 * - `targets` int32 [N, T] with outputs `targets`
 *
 * Outputs: per {@linkcode StepOutputs}, plus `present_key_{i}`, `present_value_{i}`
 * [N, nh, P + T, hd].
 */
export function buildStepGraph(
  options: GlmOptions & { outputs: StepOutputs },
): { graph: Graph; builder: GlmBuilder } {
  const g = new Graph(`glm_step_${options.outputs}`);
  const m = new GlmBuilder(g, { ...options, attention: "ops" });
  const { hiddenSize: h, numLayers } = options.config;
  const { nh, hd } = m.heads;
  const dtype: DType = m.dtype;

  const inputIds = g.input("input_ids", "int32", ["N", "T"]);
  const positionIds = g.input("position_ids", "int32", ["N", 2, "T"]);
  const sep = g.input("sep", "int32", ["Bp"]);
  const beamIndex = g.input("beam_index", "int32", ["N"]);
  const partA = Array.from({ length: numLayers }, (_, i) => ({
    k: g.input(cacheNames.partAKey(i), dtype, ["Bp", nh, "La", hd]),
    v: g.input(cacheNames.partAValue(i), dtype, ["Bp", nh, "La", hd]),
  }));
  const past = Array.from({ length: numLayers }, (_, i) => ({
    k: g.input(cacheNames.pastKey(i), dtype, ["Nprev", nh, "P", hd]),
    v: g.input(cacheNames.pastValue(i), dtype, ["Nprev", nh, "P", hd]),
  }));
  const targets = options.outputs === "targets" ? g.input("targets", "int32", ["N", "T"]) : null;

  const sizes = stepSizes(g, inputIds, sep, partA[0].k, past[0].k, nh, hd);
  const masks = stepMasks(g, m, sep, sizes);
  const inter = g.gather(positionIds, g.constant(0, "int64"), 1); // [N, T]
  const intra = g.gather(positionIds, g.constant(1, "int64"), 1); // [N, T]
  let x = g.reshape(m.embed(inputIds, inter, intra), [-1, h]); // [N*T, H]
  const shared: StepLayerParts = {
    g,
    m,
    h,
    sizes,
    masks,
    beam: g.cast(beamIndex, "int64"),
    scale: m.scalar(1 / Math.sqrt(hd)),
    end: g.constant([Number.MAX_SAFE_INTEGER], "int64"),
    axis3: g.constant([3], "int64"),
  };
  for (let i = 0; i < numLayers; i++) {
    x = g.scope(`layers.${i}`, () => stepLayer(shared, i, x, partA[i], past[i]));
  }
  stepHead(g, m, options, x, sizes, targets);
  return { graph: g, builder: m };
}

/** A decoding step's sizes at run time ([1] int64 tensors) and its row regroupings. */
interface StepSizes {
  /** (N, T). */
  nt: Value;
  n1: Value;
  t1: Value;
  la1: Value;
  p1: Value;
  /** Regroupings with the head size and with La as the last dimension. */
  rgHd: Regroup;
  rgLa: Regroup;
  /** Rows of sequences [N, nh, T, D] to rows of prompts [Bp, nh, K*T, D]. */
  toPrompts(x: Value, rg: Regroup, d: Shape[number]): Value;
  /** Rows of prompts back to rows of sequences. */
  toRows(x: Value, rg: Regroup, d: Shape[number]): Value;
}

/** The target shapes of one regrouping (see {@linkcode stepSizes}). */
interface Regroup {
  split5: Value;
  byPrompt: Value;
  split5b: Value;
  byRow: Value;
}

function stepSizes(
  g: Graph,
  inputIds: Value,
  sep: Value,
  partAKey: Value,
  pastKey: Value,
  nh: number,
  hd: number,
): StepSizes {
  const nt = g.shapeOf(inputIds); // (N, T)
  const n1 = g.slice(nt, [0], [1]);
  const t1 = g.slice(nt, [1], [2]);
  const bp1 = g.shapeOf(sep);
  const k1 = g.div(n1, bp1); // K: sequences per prompt
  const la1 = g.slice(g.shapeOf(partAKey), [2], [3]);
  const p1 = g.slice(g.shapeOf(pastKey), [2], [3]);
  const nh1 = g.constant([nh], "int64");
  const hd1 = g.constant([hd], "int64");
  const kt1 = g.mul(k1, t1);
  // Regrouping between rows of sequences [N, nh, T, D] and rows of prompts [Bp, nh, K*T, D], so
  // each prompt's part-A cache is used once for all its K sequences (one matmul, no copies).
  const regroup = (d1: Value): Regroup => ({
    split5: g.concat([bp1, k1, nh1, t1, d1], 0), // [Bp, K, nh, T, D]
    byPrompt: g.concat([bp1, nh1, kt1, d1], 0), // [Bp, nh, K*T, D]
    split5b: g.concat([bp1, nh1, k1, t1, d1], 0), // [Bp, nh, K, T, D]
    byRow: g.concat([n1, nh1, t1, d1], 0), // [N, nh, T, D]
  });
  const rgHd = regroup(hd1);
  const rgLa = regroup(la1);
  return {
    nt,
    n1,
    t1,
    la1,
    p1,
    rgHd,
    rgLa,
    toPrompts: (x, rg, d) =>
      g.refine(
        g.reshape(g.transpose(g.reshape(x, rg.split5), [0, 2, 1, 3, 4]), rg.byPrompt),
        ["Bp", nh, "K*T", d],
      ),
    toRows: (x, rg, d) =>
      g.refine(
        g.reshape(g.transpose(g.reshape(x, rg.split5b), [0, 2, 1, 3, 4]), rg.byRow),
        ["N", nh, "T", d],
      ),
  };
}

/**
 * The step's additive masks. Part A: key j of prompt p is seen iff j < sep[p]: [Bp, 1, 1, La].
 * Generated: new token t sees generated key j iff j <= P + t: [1, 1, T, P+T].
 */
function stepMasks(g: Graph, m: GlmBuilder, sep: Value, sizes: StepSizes) {
  const zero = g.constant(0, "int64");
  const step = g.constant(1, "int64");
  const jA = g.refine(g.range(zero, g.reshape(sizes.la1, []), step), ["La"]);
  const seenA = g.less(g.unsqueeze(jA, [0]), g.unsqueeze(g.cast(sep, "int64"), [1])); // [Bp, La]
  const maskA = g.unsqueeze(g.where(seenA, m.scalar(0), m.scalar(MASKED)), [1, 2]);
  const p = g.reshape(sizes.p1, []);
  const tq = g.refine(g.range(zero, g.reshape(sizes.t1, []), step), ["T"]);
  const jG = g.refine(g.range(zero, g.add(p, g.reshape(sizes.t1, [])), step), ["P+T"]);
  const seenG = g.lessOrEqual(g.unsqueeze(jG, [0]), g.unsqueeze(g.add(tq, p), [1])); // [T, P+T]
  const maskG = g.unsqueeze(g.where(seenG, m.scalar(0), m.scalar(MASKED)), [0, 1]);
  return { maskA, maskG };
}

/** What every layer of a step graph shares. */
interface StepLayerParts {
  g: Graph;
  m: GlmBuilder;
  /** Hidden size. */
  h: number;
  sizes: StepSizes;
  masks: { maskA: Value; maskG: Value };
  /** `beam_index` as int64. */
  beam: Value;
  /** 1 / sqrt(hd). */
  scale: Value;
  end: Value;
  axis3: Value;
}

/**
 * Layer `i` of a step: attention over the prompt's part A and the generated tokens (one softmax
 * over both), writing the presents, then the MLP. `x` [N*T, H] in, [N*T, H] out.
 */
function stepLayer(
  parts: StepLayerParts,
  i: number,
  x: Value,
  partA: { k: Value; v: Value },
  past: { k: Value; v: Value },
): Value {
  const { g, m, h, sizes, beam, scale, end, axis3 } = parts;
  const { toPrompts, toRows, rgHd, rgLa, la1, nt } = sizes;
  const { nh, hd } = m.heads;
  const pre = layerPrefix(i);
  const normed = m.layerNorm(`${pre}.input_layernorm`, x); // [N*T, H]
  const { q, k, v } = m.qkv(i, normed, nt, "N", "T"); // each [N, nh, T, hd]
  const qs = g.mul(q, scale);
  // Scores against part A, per prompt, then back to rows: [N, nh, T, La].
  const sA = g.matmul(toPrompts(qs, rgHd, hd), g.transpose(partA.k, [0, 1, 3, 2]));
  const scoresA = toRows(g.add(sA, parts.masks.maskA), rgLa, "La");
  // Scores against the generated tokens (reordered past + new): [N, nh, T, P+T].
  const keys = g.output(
    g.refine(g.concat([g.gather(past.k, beam), k], 2), ["N", nh, "P+T", hd]),
    cacheNames.presentKey(i),
  ); // [N, nh, P+T, hd]
  const values = g.output(
    g.refine(g.concat([g.gather(past.v, beam), v], 2), ["N", nh, "P+T", hd]),
    cacheNames.presentValue(i),
  );
  const scoresG = g.add(g.matmul(qs, g.transpose(keys, [0, 1, 3, 2])), parts.masks.maskG);
  // One softmax over both parts: [N, nh, T, La + P + T].
  const probs = g.softmax(g.concat([scoresA, scoresG], 3), -1);
  const probsA = g.refine(g.slice(probs, g.constant([0], "int64"), la1, axis3), [
    "N",
    nh,
    "T",
    "La",
  ]);
  const probsG = g.refine(g.slice(probs, la1, end, axis3), ["N", nh, "T", "P+T"]);
  const ctxA = toRows(g.matmul(toPrompts(probsA, rgLa, "La"), partA.v), rgHd, hd);
  const ctx = g.add(ctxA, g.matmul(probsG, values)); // [N, nh, T, hd]
  const attn = m.linear(i, "attention.dense", m.mergeHeads(ctx), h, h); // [N*T, H]
  const mid = g.add(x, attn);
  return g.add(mid, m.mlp(i, m.layerNorm(`${pre}.post_attention_layernorm`, mid)));
}

/** The step's outputs from the last hidden states `x` [N*T, H], per {@linkcode StepOutputs}. */
function stepHead(
  g: Graph,
  m: GlmBuilder,
  options: GlmOptions & { outputs: StepOutputs },
  x: Value,
  sizes: StepSizes,
  targets: Value | null,
): void {
  const { hiddenSize: h, vocabSize } = options.config;
  const { nt, n1, t1 } = sizes;
  if (options.outputs === "last") {
    // Only the last new token of each sequence: rows T-1, 2T-1, ...
    const rows = g.reshape(x, g.concat([n1, t1, g.constant([h], "int64")], 0));
    const lastRow = g.reshape(g.slice(rows, [-1], [Number.MAX_SAFE_INTEGER], [1]), [-1, h]); // [N, H]
    const logp = g.logSoftmax(m.logits(m.finalNorm(lastRow)), -1); // [N, V]
    g.output(g.refine(logp, ["N", vocabSize]), "log_probs");
  } else {
    const logp = g.logSoftmax(m.logits(m.finalNorm(x)), -1); // [N*T, V]
    if (options.outputs === "all") {
      const shape = g.concat([nt, g.constant([vocabSize], "int64")], 0);
      g.output(g.refine(g.reshape(logp, shape), ["N", "T", vocabSize]), "log_probs");
    } else {
      const picked = g.gatherElements(logp, g.reshape(targets!, [-1, 1]), 1); // [N*T, 1]
      g.output(g.refine(g.reshape(picked, nt), ["N", "T"]), "target_log_probs");
    }
  }
}
