/**
 * Every model family as ONNX graphs: the Llama-style decoders (llama, mistral, qwen2, qwen3,
 * GLM-4; docs/method.md section 11) and THUDM's GLM (section 8, whose configuration
 * `lib/model/glm.ts` normalises into a {@linkcode DecoderConfig} with the GLM block style). The
 * graphs: the forward graph (logits, the masked mean cross-entropy, or both), the prefill
 * graph (part A's keys and values) and the cached step graph. Every graph runs the one layer
 * function {@linkcode DecoderBuilder.layer}; what differs between them is only how a layer's
 * queries meet keys and values (the `attend` callback): the whole sequence under a mask in the
 * forward and prefill graphs, part A's cache plus the generated tokens in the step graph.
 *
 * The method's additions (docs/method.md section 11): the intra-position table
 * `model.intra_position_embeddings.weight` [R, H] added to the token embeddings (zero where the
 * weights lack it, so an unadapted model computes what the pretrained LLM computes); rotary
 * positions from `rope_position_ids`; `prefix` (docs/method.md section 6) or `causal` attention;
 * special tokens past the checkpoint's rows as `addedRows` extra rows
 * (`model.embed_tokens.added.weight`, and `lm_head.added.weight` when untied) beside the frozen
 * table, so training them never touches a gradient of the full vocabulary.
 *
 * What differs between families is data, read from the configuration's {@linkcode BlockStyle}:
 * RMSNorm or LayerNorm, a gated SiLU or a GELU MLP, separate or fused q/k/v projections, rotary
 * or learned absolute positions, and the weight names.
 *
 * Shapes: B sequences of L tokens, H hidden, nh query heads and nkv key/value heads of hd each
 * (g = nh / nkv queries per kv head), d rotated dims, V vocabulary; rows between layers are 2-D
 * [B*L, H], so every linear is one Gemm. Grouped-query attention never repeats keys: queries are
 * regrouped to [B, nkv, g*T, hd] against keys [B, nkv, S, hd].
 *
 * @module
 */

import { type DType, Graph, type Shape, type Value } from "../../onnx/graph.ts";
import type { Weights } from "../weights.ts";
import {
  attentionOf,
  blockOf,
  type BlockStyle,
  type DecoderConfig,
  INTRA_TABLE,
  type WeightNames,
  weightNames,
} from "./config.ts";
import type { WeightSessionOptions } from "../../runtime/session.ts";

/** Names of the cache tensors of layer i (inputs and outputs of the decoding graphs). */
export const cacheNames = {
  /** Part A keys/values of layer i: [Bp, nkv, La, hd] (output of the prefill, input of steps). */
  partAKey: (i: number) => `part_a_key_${i}`,
  partAValue: (i: number) => `part_a_value_${i}`,
  /**
   * Keys/values of every token generated so far, one row a token: [R, nkv, hd] (input of
   * steps). The history only grows: a step reads its rows' tokens through `past_index`.
   */
  pastKey: (i: number) => `past_key_${i}`,
  pastValue: (i: number) => `past_value_${i}`,
  /** Keys/values of a step's new tokens, row after row: [N * T, nkv, hd] (output of steps). */
  newKey: (i: number) => `new_key_${i}`,
  newValue: (i: number) => `new_value_${i}`,
};

/** Which outputs a decoding step returns. */
export type StepOutputs =
  /** `log_probs` [N, V]: log-softmax of the last new token's logits (beam search). */
  | "last"
  /** `log_probs` [N, T, V]: log-softmax at every new token. */
  | "all"
  /** `target_log_probs` [N, T]: log-probability of input `targets` [N, T] at every new token. */
  | "targets";

/** Name of the input of {@linkcode DecoderOptions.lossLogitBias}. */
export const LOSS_LOGIT_BIAS = "loss_logit_bias";

/**
 * GELU's tanh approximation in elementwise nodes, written as (0.5 x) (1 + tanh((c x) (1 + 0.044715
 * x x))), the form onnxruntime fuses into one kernel (and the reference of the Gelu rule's tests).
 */
export function geluTanhForm(g: Graph, x: Value, scalar: (v: number) => Value): Value {
  const inner = g.add(g.mul(g.mul(x, scalar(0.044715)), x), scalar(1)); // 1 + 0.044715 x^2
  const t = g.tanh(g.mul(g.mul(x, scalar(0.7978845608028654)), inner));
  return g.mul(g.mul(x, scalar(0.5)), g.add(t, scalar(1)));
}

/** THUDM GLM's linear modules, by their name after `glm.transformer.layers.{i}.`. */
export type GlmLinearKind =
  | "attention.query_key_value"
  | "attention.dense"
  | "mlp.dense_h_to_4h"
  | "mlp.dense_4h_to_h";

/** The linear modules of a decoder layer, by their name after `model.layers.{i}.`. */
export type DecoderLinearKind =
  | "self_attn.q_proj"
  | "self_attn.k_proj"
  | "self_attn.v_proj"
  | "self_attn.o_proj"
  | "mlp.gate_proj"
  | "mlp.up_proj"
  | "mlp.down_proj"
  | "mlp.gate_up_proj";

/** A linear module of any family, by its name after the layer prefix. */
export type LinearKind = DecoderLinearKind | GlmLinearKind;

/** What a {@linkcode LinearHook} is given for one linear module. */
export interface LinearContext {
  /** The graph being built (add LoRA inputs and nodes to it). */
  g: Graph;
  /** The full module name: `model.layers.0.self_attn.q_proj`. */
  module: string;
  /** Index of the layer (0-based). */
  layer: number;
  /** Which linear of the layer it is. */
  kind: LinearKind;
  /** The input activations: [N, inFeatures]. */
  x: Value;
  /** Input width of the linear. */
  inFeatures: number;
  /** Output width of the linear. */
  outFeatures: number;
  /** The module's weight: [out, in]. */
  weight: Value;
  /** The module's bias [out], or null where the family has none. */
  bias: Value | null;
  /** The float type of the graph (constants a hook adds should use it). */
  dtype: "float32" | "float64";
  /** The module's own output, x W^T (+ b): [N, outFeatures]. */
  base(): Value;
}

/**
 * Replaces a linear module's output: return `ctx.base()` plus whatever the adapter adds.
 *
 * @example
 * ```ts
 * // LoRA on a query projection: y = x W^T + (alpha / r) * x A^T B^T
 * const lora: LinearHook = (ctx) => {
 *   if (ctx.kind !== "self_attn.q_proj") return ctx.base();
 *   const a = ctx.g.input(`${ctx.module}.lora_A.weight`, ctx.dtype, [8, ctx.inFeatures]);
 *   const b = ctx.g.input(`${ctx.module}.lora_B.weight`, ctx.dtype, [ctx.outFeatures, 8]);
 *   const xa = ctx.g.gemm(ctx.x, a, null, { transB: true });
 *   return ctx.g.add(ctx.base(), ctx.g.gemm(xa, b, null, { transB: true, alpha: 2 }));
 * };
 * ```
 */
export type LinearHook = (ctx: LinearContext) => Value;

/** The attention rule of a run: `prefix` (docs/method.md section 6) or `causal` (j <= i). */
export type AttentionMode = "prefix" | "causal";

/**
 * How every session over a decoder's graphs holds its weights. They are large (2 GB in float32
 * for a 0.5B model), so onnxruntime reads the toolkit's one copy as fed inputs instead of making
 * initializers of its own (the training, validation, prefill and step sessions share it), and
 * allocates activations as it goes instead of planning one block from the first run. Measured
 * on the Qwen2.5-0.5B shape (bench llm): LoRA step peak RSS 9.6 GB -> 4.1 GB and forward
 * 6.8 -> 2.3 GB at the same tokens/s; infer (a prefill and several step sessions) 10.6 ->
 * 2.7 GB for 15% fewer users/s, the GEMM prepacking that fed weights cannot have. A 7B model
 * would not fit in memory the other way.
 */
export const DECODER_SESSION_OPTIONS: WeightSessionOptions = {
  feedWeights: true,
  memoryPattern: false,
};

/** Names of the extra rows for special tokens beyond the checkpoint's vocabulary. */
export const ADDED_ROWS = {
  embed: "model.embed_tokens.added.weight",
  head: "lm_head.added.weight",
} as const;

/**
 * The method's own tensors, trained with the adapter and saved with it (docs/method.md section
 * 11): the intra-position table of a rotary family (GLM's is part of its checkpoint) and the
 * special-token rows past the checkpoint's vocabulary.
 */
export function methodShapes(config: DecoderConfig, addedRows = 0): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  if (blockOf(config).positions === "rotary") {
    shapes.set(INTRA_TABLE, [config.intraRows, config.hiddenSize]);
  }
  if (addedRows > 0) {
    shapes.set(ADDED_ROWS.embed, [addedRows, config.hiddenSize]);
    if (!config.tieWordEmbeddings) shapes.set(ADDED_ROWS.head, [addedRows, config.hiddenSize]);
  }
  return shapes;
}

/** How the decoder graphs are built. */
export interface DecoderOptions {
  config: DecoderConfig;
  /** Weights by name; every frozen weight must be here (the intra table may be absent: zero). */
  weights: Weights;
  /** Which weights are graph inputs (fed at run time, named as the weight). Default none. */
  trainable?: (name: string) => boolean;
  /** Float type of the graph (default float32; float64 for gradient checks). */
  dtype?: "float32" | "float64";
  linear?: LinearHook;
  /** Default: the configuration's own, else `causal` ({@linkcode attentionOf}). */
  attention?: AttentionMode;
  /**
   * Forward graphs: attention as one opset-23 Attention node per layer instead of standard
   * operators (forward only: the project's autodiff has no rule for it). Default false.
   */
  fusedAttention?: boolean;
  /**
   * LayerNorm blocks: each float32 LayerNormalization node also outputs its Mean and InvStdDev,
   * so training's backward pass reuses them instead of recomputing them. Default false.
   */
  layerNormStats?: boolean;
  /**
   * GELU blocks: each float32 GELU as one Gelu node (opset 20) instead of its elementwise form.
   * For training graphs: onnxruntime fuses the form into one kernel only where nothing else reads
   * its intermediates, and the backward pass reads them; the Gelu rule (lib/train/grad_rules.ts)
   * needs fewer passes over the activations than the form's nine nodes differentiated one by one.
   * Default false (float64 graphs keep the form: the independent reference of the rule).
   */
  geluNode?: boolean;
  /** Rows for ids V .. V + addedRows - 1 (special tokens the checkpoint lacks). Default 0. */
  addedRows?: number;
  /**
   * Forward graphs for training: the model's own dropout, as keep-mask inputs (values 0 or
   * 1/(1-p), drawn by the training loop) multiplying the embeddings and each layer's attention
   * and MLP outputs before their residual additions ({@linkcode residualDropoutInputs}). Default
   * false.
   */
  residualDropout?: boolean;
  /**
   * With a loss: a `loss_logit_bias` float32 input [M, V'] added to the logits of the M loss
   * positions (row-major over [B, L]) before the softmax: the trie softmax's training loss feeds 0
   * where the trie allows a token and a large negative value elsewhere (lib/collate/trie_loss.ts).
   * Default false.
   */
  lossLogitBias?: boolean;
}

/**
 * The keep-mask inputs of {@linkcode DecoderOptions.residualDropout}, in the order a training loop
 * draws them: the embeddings', then each layer's attention output and MLP output; each is
 * [rows, hiddenSize] over the rows of the batch ([B*L]).
 *
 * @example
 * ```ts
 * import type { DecoderConfig } from "./config.ts";
 *
 * declare const config: DecoderConfig; // 2 layers
 * residualDropoutInputs(config).map((m) => m.name);
 * // ["dropout.embed", "dropout.layers.0.attention", "dropout.layers.0.mlp", ...]
 * ```
 */
export function residualDropoutInputs(
  config: Pick<DecoderConfig, "numLayers" | "hiddenSize">,
): { name: string; features: number }[] {
  const names = ["dropout.embed"];
  for (let i = 0; i < config.numLayers; i++) {
    names.push(`dropout.layers.${i}.attention`, `dropout.layers.${i}.mlp`);
  }
  return names.map((name) => ({ name, features: config.hiddenSize }));
}

/** Additive mask value for keys a query may not see (exp underflows to exactly 0). */
const MASKED = -1e9;

/** The rotary inverse frequencies theta^(-2i/d), with `linear` or `llama3` scaling applied. */
export function inverseFrequencies(config: DecoderConfig): Float64Array {
  const d = config.rotaryDim;
  const inv = new Float64Array(d / 2);
  for (let i = 0; i < d / 2; i++) inv[i] = 1 / Math.pow(config.ropeTheta, (2 * i) / d);
  const s = config.ropeScaling;
  if (s?.type === "linear") {
    for (let i = 0; i < inv.length; i++) inv[i] /= s.factor;
  } else if (s?.type === "llama3") {
    const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositions / s.highFreqFactor;
    for (let i = 0; i < inv.length; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowWavelen) inv[i] /= s.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) /
          (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = (1 - smooth) * inv[i] / s.factor + smooth * inv[i];
      }
    }
  }
  return inv;
}

/** A layer's rotary factors: cos and sin of each token's angles, [B, 1, T, d/2]. */
export interface Rotary {
  cos: Value;
  sin: Value;
}

/**
 * How a layer's queries meet keys and values: q [B, nh, T, hd], k and v [B, nkv, T, hd] (after
 * the rotary embedding) -> context [B, nh, T, hd].
 */
export type Attend = (layer: number, q: Value, k: Value, v: Value) => Value;

/** Builds a family's pieces into a graph (shared by every graph builder below). */
export class DecoderBuilder {
  readonly g: Graph;
  readonly config: DecoderConfig;
  readonly block: BlockStyle;
  readonly names: WeightNames;
  readonly dtype: "float32" | "float64";
  readonly params: Map<string, Value> = new Map();
  readonly addedRows: number;
  readonly #options: DecoderOptions;

  constructor(g: Graph, options: DecoderOptions) {
    this.g = g;
    this.config = options.config;
    this.block = blockOf(options.config);
    this.names = weightNames(options.config);
    this.dtype = options.dtype ?? "float32";
    this.addedRows = options.addedRows ?? 0;
    this.#options = options;
  }

  /** A float constant in the graph's dtype. */
  scalar(x: number): Value {
    return this.g.constant(x, this.dtype);
  }

  /** g = nh / nkv: query heads per key/value head. */
  get groups(): number {
    return this.config.numHeads / this.config.numKvHeads;
  }

  /**
   * `x` [N, H] times the keep-mask input `name` under {@linkcode DecoderOptions.residualDropout};
   * else `x` itself.
   */
  dropout(name: string, x: Value): Value {
    if (!this.#options.residualDropout) return x;
    return this.g.mul(x, this.g.input(name, this.dtype, x.shape));
  }

  /** Whether the graphs take `rope_position_ids` (rotary positions). */
  get usesRope(): boolean {
    return this.block.positions === "rotary";
  }

  /** Weight `name`: a graph input when trainable, else an initializer (zeros when `zero`). */
  weight(name: string, shape: number[], zero = false): Value {
    const known = this.params.get(name);
    if (known) return known;
    let v: Value;
    if (this.#options.trainable?.(name)) {
      v = this.g.input(name, this.dtype, shape);
    } else {
      const n = shape.reduce((a, b) => a * b, 1);
      let data: Float32Array | undefined = this.#options.weights.get(name);
      if (!data && zero) data = new Float32Array(n);
      if (!data) throw new Error(`weight ${name} is missing`);
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

  /**
   * Token embeddings plus the position tables: ids and positions [B, T] -> [B*T, H]. Ids at or
   * past V read the added rows. Rotary families add the intra-position table (zero where the
   * weights lack it; ids past its last row use the last row); GLM adds its inter- and
   * intra-position tables.
   */
  embed(ids: Value, inter: Value, intra: Value): Value {
    const g = this.g;
    const { vocabSize: v, hiddenSize: h, intraRows: r } = this.config;
    return g.scope("embed", () => {
      const table = this.weight(this.names.embed, [v, h]);
      let words: Value;
      if (this.addedRows > 0) {
        const vocab = g.constant(v, "int32");
        const isNew = g.greaterOrEqual(ids, vocab); // [B, T]
        const zero = g.constant(0, "int32");
        const baseIds = g.where(isNew, zero, ids);
        const newIds = g.where(isNew, g.sub(ids, vocab), zero);
        const added = this.weight(ADDED_ROWS.embed, [this.addedRows, h]);
        words = g.where(
          g.unsqueeze(isNew, [2]),
          g.gather(added, newIds),
          g.gather(table, baseIds),
        ); // [B, T, H]
      } else {
        words = g.gather(table, ids); // [B, T, H]
      }
      if (this.block.positions === "learned") {
        const rows = this.config.maxPositionEmbeddings + 1;
        const pos = g.gather(this.weight(this.names.interTable, [rows, h]), inter);
        const block = g.gather(this.weight(this.names.intraTable, [r, h]), intra);
        return g.reshape(g.add(g.add(words, pos), block), [-1, h]); // [B*T, H]
      }
      const intraIds = g.min(intra, g.constant(r - 1, "int32"));
      const pos = g.gather(this.weight(this.names.intraTable, [r, h], true), intraIds); // [B, T, H]
      return g.reshape(g.add(words, pos), [-1, h]);
    });
  }

  /**
   * cos and sin of rotary positions rope [B, T] (int32): each [B, 1, T, d/2], gathered from
   * tables of every position's values computed once here in float64 (positions past the model's
   * longest sequence use its last row). Not onnxruntime's Cos and Sin: they compute a tensor in
   * vector chunks and a scalar tail whose results differ in the last bit, so the same position
   * got other bits depending on how many rows its batch had, and a sharded run could differ from
   * an unsharded one.
   */
  rotary(rope: Value): Rotary {
    const g = this.g;
    return g.scope("rotary", () => {
      const inv = inverseFrequencies(this.config);
      const half = inv.length;
      const rows = Math.min(
        this.config.maxPositionEmbeddings,
        this.config.positionLimit ?? Infinity,
      );
      const cosTable = new Float64Array(rows * half);
      const sinTable = new Float64Array(rows * half);
      for (let p = 0; p < rows; p++) {
        for (let i = 0; i < half; i++) {
          cosTable[p * half + i] = Math.cos(p * inv[i]);
          sinTable[p * half + i] = Math.sin(p * inv[i]);
        }
      }
      const table = (data: Float64Array) =>
        g.constant({
          dtype: this.dtype,
          shape: [rows, half],
          data: this.dtype === "float64" ? data : Float32Array.from(data),
        });
      const ids = g.unsqueeze(g.min(rope, g.constant(rows - 1, "int32")), [1]); // [B, 1, T]
      return { cos: g.gather(table(cosTable), ids), sin: g.gather(table(sinTable), ids) };
    });
  }

  /**
   * The rotary embedding of x [B, n, T, hd]: the first d dims rotated (rotate_half, or
   * interleaved pairs (2i, 2i+1) by permuting them to halves and back), the rest passed through.
   */
  applyRotary(x: Value, rot: Rotary): Value {
    const g = this.g;
    const { rotaryDim: d, headDim: hd, ropeStyle } = this.config;
    const [rotated, ...pass] = d < hd ? g.split(x, [d, hd - d], 3) : [x];
    let r = rotated; // [B, n, T, d]
    // Interleaved pairs (2i, 2i+1) become halves (evens, odds) and back: reshape-transposes.
    const regroup = (v: Value, from: [number, number]) =>
      g.reshape(g.transpose(g.reshape(v, [0, 0, 0, ...from]), [0, 1, 2, 4, 3]), [0, 0, 0, d]);
    if (ropeStyle === "interleaved") r = regroup(r, [d / 2, 2]);
    const [x1, x2] = g.split(r, [d / 2, d / 2], 3);
    const out1 = g.sub(g.mul(x1, rot.cos), g.mul(x2, rot.sin));
    const out2 = g.add(g.mul(x2, rot.cos), g.mul(x1, rot.sin));
    let y = g.concat([out1, out2], 3);
    if (ropeStyle === "interleaved") y = regroup(y, [2, d / 2]);
    return pass.length ? g.concat([y, ...pass], 3) : y;
  }

  /** RMSNorm x * rsqrt(mean(x^2) + eps) * w over the last axis, w = `{name}` [width]. */
  rmsNorm(name: string, x: Value, width: number): Value {
    const g = this.g;
    const w = this.weight(name, [width]);
    const meanSquare = g.reduceMean(g.mul(x, x), [-1]);
    const inv = g.reciprocal(g.sqrt(g.add(meanSquare, this.scalar(this.config.rmsNormEps))));
    return g.mul(g.mul(x, inv), w);
  }

  /**
   * LayerNorm with `{prefix}.weight` and `{prefix}.bias` over the last axis. In float64 graphs it
   * is spelled out in elementary operators, since onnxruntime computes LayerNormalization's
   * statistics in float32 whatever the input type.
   */
  layerNorm(prefix: string, x: Value, width: number): Value {
    const g = this.g;
    const w = this.weight(`${prefix}.weight`, [width]);
    const b = this.weight(`${prefix}.bias`, [width]);
    const epsilon = this.config.rmsNormEps;
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

  /** The block's norm with the weights at `prefix` (`{prefix}.weight`, and `.bias` for LayerNorm). */
  norm(prefix: string, x: Value, width: number): Value {
    return this.block.norm === "layer"
      ? this.layerNorm(prefix, x, width)
      : this.rmsNorm(`${prefix}.weight`, x, width);
  }

  /** Linear module `kind` of layer i on x [N, in] -> [N, out], through the hook if any. */
  linear(i: number, kind: LinearKind, x: Value, inFeatures: number, outFeatures: number): Value {
    const module = `${this.names.layer(i)}.${kind}`;
    const { biases } = this.config;
    const hasBias = kind.startsWith("mlp.")
      ? biases.mlp
      : kind === this.names.attentionOutput
      ? biases.o
      : biases.qkv;
    const weight = this.weight(`${module}.weight`, [outFeatures, inFeatures]);
    const bias = hasBias ? this.weight(`${module}.bias`, [outFeatures]) : null;
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

  /** Rows [B*T, n*hd] to heads [B, n, T, hd]; `bt` is (B, T) as int64 [2]. */
  heads(x: Value, n: number, bt: Value, b: Shape[number], t: Shape[number]): Value {
    const g = this.g;
    const hd = this.config.headDim;
    const shaped = g.refine(g.reshape(x, g.concat([bt, g.constant([n, hd], "int64")], 0)), [
      b,
      t,
      n,
      hd,
    ]);
    return g.transpose(shaped, [0, 2, 1, 3]);
  }

  /**
   * The layer's q [B, nh, T, hd], k and v [B, nkv, T, hd] from its normalized input rows
   * [B*T, H]: three projections, or one fused projection (GLM's `query_key_value`, columns
   * q | k | v) shaped into heads once and split along the heads (one transpose, not three).
   */
  #projections(
    i: number,
    x: Value,
    shape: { bt: Value; b: Shape[number]; t: Shape[number] },
  ): [Value, Value, Value] {
    const c = this.config;
    const h = c.hiddenSize;
    const { numHeads: nh, numKvHeads: nkv, headDim: hd } = c;
    const kinds = this.names.attention as readonly LinearKind[];
    if (this.block.qkv === "fused") {
      const mixed = this.linear(i, kinds[0], x, h, (nh + 2 * nkv) * hd); // [B*T, (nh+2nkv)*hd]
      const all = this.heads(mixed, nh + 2 * nkv, shape.bt, shape.b, shape.t); // [B, nh+2nkv, T, hd]
      const [q, k, v] = this.g.split(all, [nh, nkv, nkv], 1);
      return [q, k, v];
    }
    return [
      this.heads(this.linear(i, kinds[0], x, h, nh * hd), nh, shape.bt, shape.b, shape.t),
      this.heads(this.linear(i, kinds[1], x, h, nkv * hd), nkv, shape.bt, shape.b, shape.t),
      this.heads(this.linear(i, kinds[2], x, h, nkv * hd), nkv, shape.bt, shape.b, shape.t),
    ];
  }

  /**
   * Layer i over rows x [B*T, H]: norm, q/k/v projections, (qwen3) q/k norm, rotary (rotary
   * families), `attend`, output projection, residual; norm, MLP, residual. Returns the new rows
   * and the layer's keys and values (after the rotary embedding, [B, nkv, T, hd]).
   */
  layer(
    i: number,
    x: Value,
    rot: Rotary | null,
    shape: { bt: Value; b: Shape[number]; t: Shape[number] },
    attend: Attend,
  ): { x: Value; k: Value; v: Value } {
    const g = this.g;
    const c = this.config;
    const p = this.names.layer(i);
    const h = c.hiddenSize;
    const qw = c.numHeads * c.headDim;
    return g.scope(`layers.${i}`, () => {
      const normed = this.norm(`${p}.input_layernorm`, x, h); // [B*T, H]
      let [q, k, v] = this.#projections(i, normed, shape); // [B, nh or nkv, T, hd]
      if (c.qkNorm) {
        q = this.rmsNorm(`${p}.self_attn.q_norm.weight`, q, c.headDim);
        k = this.rmsNorm(`${p}.self_attn.k_norm.weight`, k, c.headDim);
      }
      if (rot) {
        q = this.applyRotary(q, rot); // [B, nh, T, hd]
        k = this.applyRotary(k, rot); // [B, nkv, T, hd]
      }
      const ctx = attend(i, q, k, v); // [B, nh, T, hd]
      const merged = g.reshape(g.transpose(ctx, [0, 2, 1, 3]), [-1, qw]); // [B*T, nh*hd]
      const output = this.names.attentionOutput as LinearKind;
      let attended = this.linear(i, output, merged, qw, h); // [B*T, H]
      if (c.sandwichNorms) attended = this.norm(`${p}.post_self_attn_layernorm`, attended, h);
      const mid = g.add(x, this.dropout(`dropout.layers.${i}.attention`, attended));
      let mlp = this.mlp(i, this.norm(`${p}.post_attention_layernorm`, mid, h)); // [B*T, H]
      if (c.sandwichNorms) mlp = this.norm(`${p}.post_mlp_layernorm`, mlp, h);
      return {
        x: g.add(mid, this.dropout(`dropout.layers.${i}.mlp`, mlp)),
        k,
        v,
      };
    });
  }

  /**
   * GELU, tanh approximation: 0.5 x (1 + tanh(0.7978845608028654 (x + 0.044715 x^3))), as one
   * Gelu node (`geluNode`, float32) or in the elementwise form onnxruntime fuses into one kernel.
   */
  gelu(x: Value): Value {
    if (this.#options.geluNode && this.dtype === "float32") return this.g.gelu(x, "tanh");
    return geluTanhForm(this.g, x, (v) => this.scalar(v));
  }

  /** The MLP: down(silu(gate(x)) * up(x)), or GLM's dense_4h_to_h(gelu(dense_h_to_4h(x))). */
  mlp(i: number, x: Value): Value {
    const g = this.g;
    const { hiddenSize: h, intermediateSize: im } = this.config;
    if (this.block.mlp === "gelu") {
      const up = this.linear(i, "mlp.dense_h_to_4h", x, h, im); // [N, I]
      return this.linear(i, "mlp.dense_4h_to_h", this.gelu(up), im, h); // [N, H]
    }
    let gate: Value;
    let up: Value;
    if (this.config.fusedGateUp) {
      [gate, up] = g.split(this.linear(i, "mlp.gate_up_proj", x, h, 2 * im), [im, im], 1);
    } else {
      gate = this.linear(i, "mlp.gate_proj", x, h, im);
      up = this.linear(i, "mlp.up_proj", x, h, im);
    }
    const act = g.mul(g.mul(gate, g.sigmoid(gate)), up); // [N, I]
    return this.linear(i, "mlp.down_proj", act, im, h);
  }

  /**
   * Scaled dot-product attention with grouped heads: q [B, nh, T, hd] against k, v
   * [B, nkv, S, hd] under an additive mask [B or 1, 1, T, S] -> [B, nh, T, hd].
   */
  attendAll(q: Value, k: Value, v: Value, mask: Value): Value {
    const g = this.g;
    const { numKvHeads: nkv, headDim: hd } = this.config;
    const gr = this.groups;
    const qg = gr === 1 ? q : g.reshape(q, [0, nkv, -1, hd]); // [B, nkv, g*T, hd]
    const scores = g.mul(
      g.matmul(qg, g.transpose(k, [0, 1, 3, 2])),
      this.scalar(1 / Math.sqrt(hd)),
    );
    // Row j*T + t of a kv head's queries is query head kvh*g + j at token t: the mask repeats g times.
    const probs = g.softmax(g.add(scores, gr === 1 ? mask : g.tile(mask, [1, 1, gr, 1])), -1);
    const ctx = g.matmul(probs, v); // [B, nkv, g*T, hd]
    return gr === 1 ? ctx : g.reshape(ctx, [0, this.config.numHeads, -1, hd]); // [B, nh, T, hd]
  }

  /**
   * The same attention as one opset-23 Attention node (4-D q, k, v; the graph must be built with
   * opset 23). Forward graphs only.
   */
  attendFused(q: Value, k: Value, v: Value, mask: Value): Value {
    const [out] = this.g.node("Attention", [q, k, v, mask], {}, {
      infer: [{ dtype: q.dtype, shape: q.shape }],
    });
    return out; // [B, nh, T, hd]
  }

  /**
   * The additive mask [B, 1, L, L] of `mode`: causal j <= i; prefix also j < sep.
   */
  mask(mode: AttentionMode, sep: Value, length: Value, l: Shape[number]): Value {
    const g = this.g;
    return g.scope("mask", () => {
      const range = g.refine(g.range(g.constant(0, "int64"), length, g.constant(1, "int64")), [l]);
      const j = g.unsqueeze(range, [0, 1]); // [1, 1, L]
      const i = g.unsqueeze(range, [0, 2]); // [1, L, 1]
      let seen = g.lessOrEqual(j, i); // [1, L, L]
      if (mode === "prefix") {
        seen = g.or(seen, g.less(j, g.unsqueeze(g.cast(sep, "int64"), [1, 2]))); // [B, L, L]
      }
      return g.unsqueeze(g.where(seen, this.scalar(0), this.scalar(MASKED)), [1]);
    });
  }

  /** The final norm: rows [..., H] -> [..., H]. */
  finalNorm(x: Value): Value {
    return this.g.scope("final", () => this.norm(this.names.finalNorm, x, this.config.hiddenSize));
  }

  /**
   * The output projection of normed rows: [M, H] -> [M, V'] (one Gemm), or [B, L, H] ->
   * [B, L, V'] (one MatMul: a Reshape of a 2-D product to a graph output would copy every logit
   * once more). V' = V + addedRows.
   */
  project(x: Value): Value {
    const g = this.g;
    const { vocabSize: v, hiddenSize: h, tieWordEmbeddings: tied } = this.config;
    return g.scope("logits", () => {
      const product = (table: Value) =>
        x.shape.length === 2
          ? g.gemm(x, table, null, { transB: true })
          : g.matmul(x, g.transpose(table, [1, 0]));
      const out = product(this.weight(tied ? this.names.embed : this.names.head, [v, h]));
      if (this.addedRows === 0) return out;
      const added = this.weight(tied ? ADDED_ROWS.embed : ADDED_ROWS.head, [this.addedRows, h]);
      return g.concat([out, product(added)], x.shape.length - 1);
    });
  }

  /** The final norm then the output projection: rows [M, H] -> logits [M, V']. */
  logits(x: Value): Value {
    return this.project(this.finalNorm(x));
  }

  /**
   * Masked mean cross-entropy of logits [M, V] against labels [M] with weights [M]:
   * sum(w * -logSoftmax(logits)[label]) / max(sum(wAll), 1), where `wAll` is every position's
   * weight (so positions left out of `logits` count as weight 0). Returns [1].
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
export type DecoderOutputs = "logits" | "loss" | "both";

/** What {@linkcode buildDecoderForwardGraph} returns. */
export interface DecoderForwardGraph {
  graph: Graph;
  builder: DecoderBuilder;
  /** `logits` [B, L, V'] when asked for. */
  logits?: Value;
  /** `loss` [1] when asked for. */
  loss?: Value;
  /** The last layer's rows [B*L, H] before the final norm (for other heads). */
  hidden: Value;
}

/** The sequence inputs every graph over whole sequences reads (rope only for rotary families). */
function sequenceInputs(m: DecoderBuilder, b: string, l: string) {
  const g = m.g;
  const inputIds = g.input("input_ids", "int32", [b, l]);
  const positionIds = g.input("position_ids", "int32", [b, 2, l]);
  const rope = m.usesRope ? g.input("rope_position_ids", "int32", [b, l]) : null;
  const sep = g.input("sep", "int32", [b]);
  const inter = g.gather(positionIds, g.constant(0, "int64"), 1); // [B, L]
  const intra = g.gather(positionIds, g.constant(1, "int64"), 1); // [B, L]
  return { inputIds, positionIds, rope, sep, inter, intra };
}

/**
 * The forward graph. Inputs: `input_ids` int32 [B, L], `position_ids` int32 [B, 2, L] (inter,
 * intra), `sep` int32 [B], for rotary families `rope_position_ids` int32 [B, L]; with a loss also
 * `labels` int32 [B, L] (negative: no loss) and `loss_mask` float [B, L]. Outputs `logits`
 * [B, L, V'] (V' = V + addedRows) and/or `loss` [1]; with the loss only, logits are computed at
 * the loss positions only (NonZero of the mask, a Gather of their rows, then the projection),
 * which saves most of the output projection.
 *
 * @example
 * ```ts
 * import { Session } from "../../runtime/session.ts";
 * import type { DecoderConfig } from "./config.ts";
 * import type { Weights } from "../weights.ts";
 *
 * declare const config: DecoderConfig, weights: Weights;
 * const { graph } = buildDecoderForwardGraph({ config, weights, outputs: "loss" });
 * const session = await Session.create(graph);
 * ```
 */
export function buildDecoderForwardGraph(
  options: DecoderOptions & { outputs: DecoderOutputs },
): DecoderForwardGraph {
  const g = new Graph(`${options.config.family}_forward_${options.outputs}`, {
    opset: options.fusedAttention ? 23 : undefined,
  });
  const m = new DecoderBuilder(g, options);
  const h = options.config.hiddenSize;
  const mode = attentionOf(options.config, options.attention);
  const { inputIds, rope, sep, inter, intra } = sequenceInputs(m, "B", "L");
  const wantLoss = options.outputs !== "logits";
  const labels = wantLoss ? g.input("labels", "int32", ["B", "L"]) : undefined;
  const lossMask = wantLoss ? g.input("loss_mask", "float32", ["B", "L"]) : undefined;
  const vocab = options.config.vocabSize + m.addedRows;
  const logitBias = wantLoss && options.lossLogitBias
    ? g.input(LOSS_LOGIT_BIAS, "float32", ["M", vocab])
    : undefined;
  // [M, V'] logits of the loss positions, with the bias when there is one.
  const biased = (logits: Value) =>
    logitBias
      ? g.add(logits, m.dtype === "float64" ? g.cast(logitBias, "float64") : logitBias)
      : logits;

  const bl = g.shapeOf(inputIds); // (B, L)
  const length = g.gather(bl, g.constant(1, "int64")); // scalar L
  let x = m.dropout("dropout.embed", m.embed(inputIds, inter, intra)); // [B*L, H]
  const rot = rope ? m.rotary(rope) : null;
  const mask = m.mask(mode, sep, length, "L"); // [B, 1, L, L]
  const attend: Attend = options.fusedAttention
    ? (_i, q, k, v) => m.attendFused(q, k, v, mask)
    : (_i, q, k, v) => m.attendAll(q, k, v, mask);
  for (let i = 0; i < options.config.numLayers; i++) {
    x = m.layer(i, x, rot, { bt: bl, b: "B", t: "L" }, attend).x;
  }
  const result: DecoderForwardGraph = { graph: g, builder: m, hidden: x };
  let logits3: Value | undefined;
  if (options.outputs !== "loss") {
    const rows3 = g.refine(g.reshape(m.finalNorm(x), g.concat([bl, g.constant([h], "int64")], 0)), [
      "B",
      "L",
      h,
    ]);
    logits3 = g.output(g.refine(m.project(rows3), ["B", "L", vocab]), "logits"); // [B, L, V']
    result.logits = logits3;
  }
  if (labels && lossMask) {
    // Loss weight per position: the loss mask where the label is a real token.
    const valid = g.cast(g.greaterOrEqual(labels, g.constant(0, "int32")), "float32");
    const weight32 = g.mul(lossMask, valid); // [B, L]
    // (NonZero has no float64 kernel: positions are found on the float32 weights.)
    const weight = m.dtype === "float64" ? g.cast(weight32, "float64") : weight32;
    const weightSum = g.reshape(g.reduceSum(weight), [1]); // [1]
    let loss: Value;
    if (logits3) {
      const where = g.transpose(g.nonZero(weight32), [1, 0]); // [M, 2]: (b, t) with loss
      const picked = biased(g.gatherND(logits3, where)); // [M, V']
      loss = m.crossEntropy(
        picked,
        g.gatherND(labels, where),
        g.gatherND(weight, where),
        weightSum,
      );
    } else {
      const rows = g.reshape(g.nonZero(g.reshape(weight32, [-1])), [-1]); // [M]: rows with loss
      const flat = (v: Value) => g.gather(g.reshape(v, [-1]), rows); // [M]
      const picked = biased(m.logits(g.gather(x, rows))); // [M, V']
      loss = m.crossEntropy(picked, flat(labels), flat(weight), weightSum);
    }
    result.loss = g.output(loss, "loss");
  }
  return result;
}

/**
 * The prefill graph: part A through every layer under the run's attention mode; outputs each
 * layer's keys and values (after the rotary embedding), `part_a_key_{i}`/`part_a_value_{i}`
 * [Bp, nkv, La, hd]. Inputs as the forward graph's, over [Bp, La] (`sep` is each prompt's real
 * length; positions past it are right padding, which no real token sees).
 */
export function buildDecoderPrefillGraph(
  options: DecoderOptions,
): { graph: Graph; builder: DecoderBuilder } {
  const g = new Graph(`${options.config.family}_prefill`);
  const m = new DecoderBuilder(g, options);
  const { inputIds, rope, sep, inter, intra } = sequenceInputs(m, "Bp", "La");
  const bl = g.shapeOf(inputIds);
  let x = m.embed(inputIds, inter, intra);
  const rot = rope ? m.rotary(rope) : null;
  const mask = m.mask(
    attentionOf(options.config, options.attention),
    sep,
    g.gather(bl, g.constant(1, "int64")),
    "La",
  );
  const attend: Attend = (_i, q, k, v) => m.attendAll(q, k, v, mask);
  for (let i = 0; i < options.config.numLayers; i++) {
    const out = m.layer(i, x, rot, { bt: bl, b: "Bp", t: "La" }, attend);
    g.output(out.k, cacheNames.partAKey(i));
    g.output(out.v, cacheNames.partAValue(i));
    x = out.x;
  }
  // The last layer's MLP feeds nothing: drop it.
  g.prune();
  return { graph: g, builder: m };
}

/**
 * One decoding step over N sequences, T new tokens each, through the same layer function as the
 * forward graph. Queries attend to their prompt's part A (cached once per prompt, shared by its
 * rows: queries are regrouped per prompt, never the cache per row), to the tokens each row
 * generated before (gathered from the history by `past_index`) and causally among the new ones.
 * Caches are per key/value head after the rotary embedding.
 *
 * Prompts may have different numbers of rows (a beam search whose prompts keep different numbers
 * of live beams): the rows are packed, and only part A's attention sees them in S = Bp * K slots,
 * K per prompt (the most rows of any prompt); `slot_row` names the row each slot reads (a prompt
 * with fewer rows repeats one), `row_slot` the slot of each row. So every other product (the
 * linear layers, the output projection, the attention to the past) runs on real rows only.
 *
 * The history of generated tokens is append-only: a step returns only its new tokens' keys and
 * values, which the caller appends, so no step copies the old cache back out (issue 30). Which
 * history rows a sequence continues is `past_index`, so a beam search reorders its beams by
 * reordering index rows, not keys.
 *
 * Inputs: `input_ids`, `rope_position_ids` int32 [N, T], `position_ids` int32 [N, 2, T], `sep`
 * int32 [Bp], `slot_row` int32 [S], `row_slot` int32 [N], `past_index` int32 [N, P] (row n's P
 * generated tokens as history rows),
 * `part_a_key_{i}`/`part_a_value_{i}` [Bp, nkv, La, hd], `past_key_{i}`/`past_value_{i}` [R, nkv,
 * hd] (the history), `targets` int32 [N, T] with outputs `targets`. Outputs: `log_probs` or
 * `target_log_probs`, and `new_key_{i}`/`new_value_{i}` [N * T, nkv, hd].
 *
 * Built in stages, in this order (the order fixes the node names, so the graph's bytes):
 * {@linkcode stepInputs}, {@linkcode stepLayout}, {@linkcode stepMasks}, {@linkcode stepAttend},
 * the layers, {@linkcode stepOutputs}.
 */
export function buildDecoderStepGraph(
  options: DecoderOptions & { outputs: StepOutputs },
): { graph: Graph; builder: DecoderBuilder } {
  const g = new Graph(`${options.config.family}_step_${options.outputs}`);
  const m = new DecoderBuilder(g, options);
  const inputs = stepInputs(m, options.outputs);
  const layout = stepLayout(m, inputs);
  const attend = stepAttend(m, inputs, layout, stepMasks(m, inputs, layout));
  const inter = g.gather(inputs.positionIds, g.constant(0, "int64"), 1); // [N, T]
  const intra = g.gather(inputs.positionIds, g.constant(1, "int64"), 1); // [N, T]
  let x = m.embed(inputs.inputIds, inter, intra); // [N*T, H]
  const rot = inputs.rope ? m.rotary(inputs.rope) : null;
  for (let i = 0; i < options.config.numLayers; i++) {
    x = m.layer(i, x, rot, { bt: layout.nt, b: "N", t: "T" }, attend).x;
  }
  stepOutputs(m, x, options.outputs, layout, inputs.targets);
  // What no output reads goes: a linear hook that replaces a module (quantization) leaves its
  // float weight unread, which the session would otherwise load beside the packed one.
  g.prune();
  return { graph: g, builder: m };
}

/** The step graph's inputs, declared in the order the graph lists them. */
function stepInputs(m: DecoderBuilder, outputs: StepOutputs) {
  const g = m.g;
  const { numLayers, numKvHeads: nkv, headDim: hd } = m.config;
  const dtype: DType = m.dtype;
  const inputIds = g.input("input_ids", "int32", ["N", "T"]);
  const positionIds = g.input("position_ids", "int32", ["N", 2, "T"]);
  const rope = m.usesRope ? g.input("rope_position_ids", "int32", ["N", "T"]) : null;
  const sep = g.input("sep", "int32", ["Bp"]);
  const slotRow = g.input("slot_row", "int32", ["S"]);
  const rowSlot = g.input("row_slot", "int32", ["N"]);
  const pastIndex = g.input("past_index", "int32", ["N", "P"]);
  const partA = Array.from({ length: numLayers }, (_, i) => ({
    k: g.input(cacheNames.partAKey(i), dtype, ["Bp", nkv, "La", hd]),
    v: g.input(cacheNames.partAValue(i), dtype, ["Bp", nkv, "La", hd]),
  }));
  const past = Array.from({ length: numLayers }, (_, i) => ({
    k: g.input(cacheNames.pastKey(i), dtype, ["R", nkv, hd]),
    v: g.input(cacheNames.pastValue(i), dtype, ["R", nkv, hd]),
  }));
  const targets = outputs === "targets" ? g.input("targets", "int32", ["N", "T"]) : null;
  return { inputIds, positionIds, rope, sep, slotRow, rowSlot, pastIndex, partA, past, targets };
}

/** What {@linkcode stepInputs} declares. */
type StepInputs = ReturnType<typeof stepInputs>;

/**
 * The step's run-time sizes as 1-element int64 tensors (N, T, Bp, K = S / Bp, La, P) and the
 * regrouping between rows [N, nh, T, D] and prompts [Bp, nkv, K*g*T, D] (slot s = p*K + k reads
 * row slot_row[s]; head = kvh*g + j), which lets K rows share their prompt's part-A cache.
 */
function stepLayout(m: DecoderBuilder, inputs: StepInputs) {
  const g = m.g;
  const c = m.config;
  const nkv = c.numKvHeads;
  const gr = m.groups;
  const nt = g.shapeOf(inputs.inputIds);
  const n1 = g.slice(nt, [0], [1]);
  const t1 = g.slice(nt, [1], [2]);
  const bp1 = g.shapeOf(inputs.sep);
  const k1 = g.div(g.shapeOf(inputs.slotRow), bp1);
  const slotRow = g.cast(inputs.slotRow, "int64");
  const rowSlot = g.cast(inputs.rowSlot, "int64");
  const la1 = g.slice(g.shapeOf(inputs.partA[0].k), [2], [3]);
  const p1 = g.slice(g.shapeOf(inputs.pastIndex), [1], [2]);
  const ints = (xs: number[]) => g.constant(xs, "int64");
  const toPrompts = (x: Value, d1: Value, d: Shape[number]) => {
    const slots = g.gather(x, slotRow); // [S, nh, T, D]
    const six = g.reshape(slots, g.concat([bp1, k1, ints([nkv, gr]), t1, d1], 0)); // [Bp, K, nkv, g, T, D]
    const moved = g.transpose(six, [0, 2, 1, 3, 4, 5]); // [Bp, nkv, K, g, T, D]
    return g.refine(g.reshape(moved, g.concat([bp1, ints([nkv, -1]), d1], 0)), [
      "Bp",
      nkv,
      "K*g*T",
      d,
    ]);
  };
  const toRows = (x: Value, d1: Value, d: Shape[number]) => {
    const six = g.reshape(x, g.concat([bp1, ints([nkv]), k1, ints([gr]), t1, d1], 0));
    const moved = g.transpose(six, [0, 2, 1, 3, 4, 5]); // [Bp, K, nkv, g, T, D]
    const slots = g.reshape(moved, g.concat([ints([-1, nkv * gr]), t1, d1], 0)); // [S, nh, T, D]
    return g.refine(g.gather(slots, rowSlot), ["N", c.numHeads, "T", d]);
  };
  return { nt, n1, t1, la1, p1, ints, toPrompts, toRows };
}

/** What {@linkcode stepLayout} returns. */
type StepLayout = ReturnType<typeof stepLayout>;

/**
 * The step's additive masks: `maskA` [Bp, 1, 1, La] hides part-A keys at or past each prompt's
 * `sep`; `maskG` [g*T, P+T] lets new token t see the past and the new tokens up to itself (query
 * row j*T + t of a kv head is new token t).
 */
function stepMasks(m: DecoderBuilder, inputs: StepInputs, layout: StepLayout) {
  const g = m.g;
  const { la1, p1, t1 } = layout;
  const zero = g.constant(0, "int64");
  const one = g.constant(1, "int64");
  const jA = g.refine(g.range(zero, g.reshape(la1, []), one), ["La"]);
  const seenA = g.less(g.unsqueeze(jA, [0]), g.unsqueeze(g.cast(inputs.sep, "int64"), [1])); // [Bp, La]
  const maskA = g.unsqueeze(g.where(seenA, m.scalar(0), m.scalar(MASKED)), [1, 2]); // [Bp,1,1,La]
  const p = g.reshape(p1, []);
  const tq = g.refine(g.range(zero, g.reshape(t1, []), one), ["T"]);
  const jG = g.refine(g.range(zero, g.add(p, g.reshape(t1, [])), one), ["P+T"]);
  const seenG = g.lessOrEqual(g.unsqueeze(jG, [0]), g.unsqueeze(g.add(tq, p), [1])); // [T, P+T]
  const maskG = g.tile(g.where(seenG, m.scalar(0), m.scalar(MASKED)), [m.groups, 1]);
  return { maskA, maskG };
}

/**
 * The step's attention for layer i: scores against the prompt's part A (queries regrouped per
 * prompt) and against each row's past (gathered from the history by `past_index`) plus the new
 * keys, one softmax over both; outputs the layer's `new_key_{i}`/`new_value_{i}` on the way.
 */
function stepAttend(
  m: DecoderBuilder,
  inputs: StepInputs,
  layout: StepLayout,
  masks: { maskA: Value; maskG: Value },
): Attend {
  const g = m.g;
  const c = m.config;
  const { numKvHeads: nkv, headDim: hd } = c;
  const { partA, past } = inputs;
  const { la1, ints, toPrompts, toRows } = layout;
  const { maskA, maskG } = masks;
  const pastIndex = g.cast(inputs.pastIndex, "int64");
  const scale = m.scalar(1 / Math.sqrt(hd));
  const hd1 = ints([hd]);
  const axis3 = ints([3]);
  const end = ints([Number.MAX_SAFE_INTEGER]);
  return (i, q, k, v) => {
    const qs = g.mul(q, scale); // [N, nh, T, hd]
    const sA = g.add(
      g.matmul(toPrompts(qs, hd1, hd), g.transpose(partA[i].k, [0, 1, 3, 2])),
      maskA,
    );
    const scoresA = toRows(sA, la1, "La"); // [N, nh, T, La]
    // [R, nkv, hd] -> [N, P, nkv, hd] -> [N, nkv, P, hd]
    const pastOf = (history: Value) => g.transpose(g.gather(history, pastIndex), [0, 2, 1, 3]);
    // [N, nkv, T, hd] -> [N, T, nkv, hd] -> [N * T, nkv, hd]: history rows, token after token
    const rowsOf = (x: Value) => g.reshape(g.transpose(x, [0, 2, 1, 3]), [-1, nkv, hd]);
    g.output(g.refine(rowsOf(k), ["N*T", nkv, hd]), cacheNames.newKey(i));
    g.output(g.refine(rowsOf(v), ["N*T", nkv, hd]), cacheNames.newValue(i));
    const keys = g.refine(g.concat([pastOf(past[i].k), k], 2), ["N", nkv, "P+T", hd]);
    const values = g.refine(g.concat([pastOf(past[i].v), v], 2), ["N", nkv, "P+T", hd]);
    const qg = g.reshape(qs, [0, nkv, -1, hd]); // [N, nkv, g*T, hd]
    const sG = g.add(g.matmul(qg, g.transpose(keys, [0, 1, 3, 2])), maskG); // [N, nkv, g*T, P+T]
    const scoresG = g.reshape(sG, [0, c.numHeads, -1, 0]); // [N, nh, T, P+T]
    const probs = g.softmax(g.concat([scoresA, scoresG], 3), -1);
    const probsA = g.refine(g.slice(probs, ints([0]), la1, axis3), ["N", c.numHeads, "T", "La"]);
    const probsG = g.slice(probs, la1, end, axis3); // [N, nh, T, P+T]
    const ctxA = toRows(g.matmul(toPrompts(probsA, la1, "La"), partA[i].v), hd1, hd);
    const ctxG = g.reshape(g.matmul(g.reshape(probsG, [0, nkv, -1, 0]), values), [
      0,
      c.numHeads,
      -1,
      hd,
    ]);
    return g.add(ctxA, ctxG); // [N, nh, T, hd]
  };
}

/**
 * The step's log-probabilities from the last layer's rows x [N*T, H]: `last`, the last new
 * token's row of each sequence (`log_probs` [N, V']); `all`, every row (`log_probs` [N, T, V']);
 * `targets`, the log-probability of each given target (`target_log_probs` [N, T]).
 */
function stepOutputs(
  m: DecoderBuilder,
  x: Value,
  outputs: StepOutputs,
  layout: StepLayout,
  targets: Value | null,
): void {
  const g = m.g;
  const { nt, n1, t1, ints } = layout;
  const h = m.config.hiddenSize;
  const vocab = m.config.vocabSize + m.addedRows;
  if (outputs === "last") {
    const rows = g.reshape(x, g.concat([n1, t1, ints([h])], 0));
    const lastRow = g.reshape(g.slice(rows, [-1], [Number.MAX_SAFE_INTEGER], [1]), [-1, h]);
    g.output(g.refine(g.logSoftmax(m.logits(lastRow), -1), ["N", vocab]), "log_probs");
  } else {
    const logp = g.logSoftmax(m.logits(x), -1); // [N*T, V']
    if (outputs === "all") {
      const shape = g.concat([nt, ints([vocab])], 0);
      g.output(g.refine(g.reshape(logp, shape), ["N", "T", vocab]), "log_probs");
    } else {
      const picked = g.gatherElements(logp, g.reshape(targets!, [-1, 1]), 1);
      g.output(g.refine(g.reshape(picked, nt), ["N", "T"]), "target_log_probs");
    }
  }
}
