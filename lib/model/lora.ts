/**
 * LoRA (Hu et al. 2021) as Hugging Face PEFT defines it, for the GLM graph builder's linear hook:
 * a targeted linear module y = x W^T + b becomes y = x W^T + b + (alpha / r) * dropout(x) A^T B^T,
 * with A [r, in] and B [out, r] trainable graph inputs named exactly as PEFT names them in
 * `adapter_model.safetensors` (`base_model.model.{module}.lora_A.weight`, `...lora_B.weight`).
 * Initialization follows PEFT: A kaiming-uniform (a = sqrt 5, i.e. U(-1/sqrt(in), 1/sqrt(in))),
 * B zeros, so a fresh adapter changes nothing.
 *
 * Dropout: PEFT applies dropout to the adapter's input only. Here the keep-masks are graph inputs
 * (`{module}.lora_dropout_mask`, [rows, in], values 0 or 1/(1-p)) drawn in JavaScript with the
 * project's {@linkcode Rng}, so a run resumed from a checkpoint (which stores the generator's
 * state) draws exactly the masks the uninterrupted run drew. Default dropout 0, as in PEFT.
 *
 * Not here: saving and loading adapters (`adapter.ts`), the optimizer (lib/train/train_graph.ts).
 *
 * @module
 */

import { layerPrefix } from "./config.ts";
import type { GlmConfig } from "./config.ts";
import type { LinearContext, LinearKind } from "./glm.ts";
import { type DecoderConfig, decoderLayerPrefix } from "./families/config.ts";
import type { DecoderLinearKind } from "./families/decoder.ts";
import type { Value } from "../onnx/graph.ts";
import type { Rng } from "../random.ts";

/** The linear modules LoRA may target, by PEFT's `target_modules` names. */
export const LORA_TARGETS: Record<string, LinearKind> = {
  query_key_value: "attention.query_key_value",
  dense: "attention.dense",
  dense_h_to_4h: "mlp.dense_h_to_4h",
  dense_4h_to_h: "mlp.dense_4h_to_h",
};

/**
 * The linear modules LoRA may target in the decoder families (docs/method.md section 11), by PEFT's
 * names; `gate_up_proj` is GLM-4's fused MLP input, `gate_proj` and `up_proj` the others'.
 */
export const DECODER_LORA_TARGETS: Record<string, DecoderLinearKind> = {
  q_proj: "self_attn.q_proj",
  k_proj: "self_attn.k_proj",
  v_proj: "self_attn.v_proj",
  o_proj: "self_attn.o_proj",
  gate_proj: "mlp.gate_proj",
  up_proj: "mlp.up_proj",
  down_proj: "mlp.down_proj",
  gate_up_proj: "mlp.gate_up_proj",
};

/** The paper's choice for the decoder families: q, k and v (docs/method.md section 11). */
export const DEFAULT_DECODER_TARGETS: readonly string[] = ["q_proj", "k_proj", "v_proj"];

/** A GLM (docs/method.md section 8) or decoder-family (section 11) configuration. */
export type AnyConfig = GlmConfig | DecoderConfig;

/** Whether `config` is a decoder family's. */
export function isDecoderConfig(config: AnyConfig): config is DecoderConfig {
  return "family" in config;
}

/** Short names accepted on the command line for the targets. */
export const TARGET_ALIASES: Record<string, string> = {
  qkv: "query_key_value",
  attn: "dense",
  attention_dense: "dense",
  h_to_4h: "dense_h_to_4h",
  "4h_to_h": "dense_4h_to_h",
  mlp_up: "dense_h_to_4h",
  mlp_down: "dense_4h_to_h",
};

/** A LoRA configuration (PEFT's LoraConfig fields that matter here). */
export interface LoraConfig {
  /** r: rank of the update. */
  rank: number;
  /** lora_alpha: the update is scaled by alpha / r. */
  alpha: number;
  /** lora_dropout: dropout probability on the adapter's input (default 0). */
  dropout: number;
  /** target_modules, PEFT names (`query_key_value`, `dense`, `dense_h_to_4h`, `dense_4h_to_h`). */
  targets: string[];
}

/** PEFT's defaults as this project uses them: r 8, alpha 16, dropout 0, QKV only. */
export const DEFAULT_LORA: Readonly<LoraConfig> = Object.freeze({
  rank: 8,
  alpha: 16,
  dropout: 0,
  targets: ["query_key_value"],
});

/** The PEFT target name of a command-line name (`qkv` -> `query_key_value`); throws if unknown. */
export function targetName(name: string): string {
  const canonical = TARGET_ALIASES[name] ?? name;
  if (!(canonical in LORA_TARGETS)) {
    throw new RangeError(
      `unknown LoRA target "${name}" (targets: ${Object.keys(LORA_TARGETS).join(", ")}, or qkv)`,
    );
  }
  return canonical;
}

/** One adapted module: its name, sizes and the names of its tensors. */
export interface LoraModule {
  /** `glm.transformer.layers.0.attention.query_key_value`. */
  module: string;
  layer: number;
  kind: LinearKind | DecoderLinearKind;
  inFeatures: number;
  outFeatures: number;
  /** `base_model.model.{module}.lora_A.weight`: [r, in]. */
  a: string;
  /** `base_model.model.{module}.lora_B.weight`: [out, r]. */
  b: string;
  /** Graph input of the dropout keep-mask (only when dropout > 0): [rows, in]. */
  dropoutMask: string;
}

/** The PEFT tensor name of LoRA matrix `which` of `module`. */
export function loraTensorName(module: string, which: "A" | "B"): string {
  return `base_model.model.${module}.lora_${which}.weight`;
}

function features(config: GlmConfig, kind: LinearKind): [number, number] {
  const h = config.hiddenSize;
  switch (kind) {
    case "attention.query_key_value":
      return [h, 3 * h];
    case "attention.dense":
      return [h, h];
    case "mlp.dense_h_to_4h":
      return [h, 4 * h];
    case "mlp.dense_4h_to_h":
      return [4 * h, h];
  }
}

function decoderFeatures(c: DecoderConfig, target: string): [number, number] {
  const { hiddenSize: h, intermediateSize: im } = c;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const fused = target === "gate_up_proj";
  if (c.fusedGateUp ? target === "gate_proj" || target === "up_proj" : fused) {
    throw new RangeError(
      `LoRA target "${target}" is not a module of ${c.family} (its MLP has ${
        c.fusedGateUp ? "gate_up_proj" : "gate_proj and up_proj"
      })`,
    );
  }
  const table: Record<string, [number, number]> = {
    q_proj: [h, q],
    k_proj: [h, kv],
    v_proj: [h, kv],
    o_proj: [q, h],
    gate_proj: [h, im],
    up_proj: [h, im],
    down_proj: [im, h],
    gate_up_proj: [h, 2 * im],
  };
  const f = table[target];
  if (!f) {
    throw new RangeError(
      `unknown LoRA target "${target}" (targets: ${Object.keys(DECODER_LORA_TARGETS).join(", ")})`,
    );
  }
  return f;
}

/** Every module `lora` adapts in a model of `config`, layer by layer, in target order. */
export function loraModules(config: AnyConfig, lora: LoraConfig): LoraModule[] {
  const decoder = isDecoderConfig(config) ? config : null;
  const kinds = decoder
    ? lora.targets.map((t) => (decoderFeatures(decoder, t), DECODER_LORA_TARGETS[t]))
    : lora.targets.map((t) => LORA_TARGETS[targetName(t)]);
  const out: LoraModule[] = [];
  for (let layer = 0; layer < config.numLayers; layer++) {
    for (const [k, kind] of kinds.entries()) {
      const module = decoder
        ? `${decoderLayerPrefix(layer)}.${kind}`
        : `${layerPrefix(layer)}.${kind}`;
      const [inFeatures, outFeatures] = decoder
        ? decoderFeatures(decoder, lora.targets[k])
        : features(config as GlmConfig, kind as LinearKind);
      out.push({
        module,
        layer,
        kind,
        inFeatures,
        outFeatures,
        a: loraTensorName(module, "A"),
        b: loraTensorName(module, "B"),
        dropoutMask: `${module}.lora_dropout_mask`,
      });
    }
  }
  return out;
}

/** The shape of each LoRA tensor by name. */
export function loraShapes(config: AnyConfig, lora: LoraConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  for (const m of loraModules(config, lora)) {
    shapes.set(m.a, [lora.rank, m.inFeatures]);
    shapes.set(m.b, [m.outFeatures, lora.rank]);
  }
  return shapes;
}

/**
 * Fresh adapter weights as PEFT initializes them: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming-uniform
 * with a = sqrt 5), B = 0. Drawn module by module from `rng`, so a seed gives one adapter.
 */
export function initLora(config: AnyConfig, lora: LoraConfig, rng: Rng): Map<string, Float32Array> {
  const weights = new Map<string, Float32Array>();
  for (const m of loraModules(config, lora)) {
    const bound = 1 / Math.sqrt(m.inFeatures);
    const a = new Float32Array(lora.rank * m.inFeatures);
    for (let i = 0; i < a.length; i++) a[i] = (2 * rng.float() - 1) * bound;
    weights.set(m.a, a);
    weights.set(m.b, new Float32Array(m.outFeatures * lora.rank));
  }
  return weights;
}

/** Options of {@linkcode loraHook}. */
export interface LoraHookOptions {
  /** Add the dropout keep-mask inputs (training with dropout > 0). Default false. */
  dropout?: boolean;
  /**
   * Which LoRA tensors are graph inputs (default all); the others are initializers from
   * `weights` (a frozen adapter applied for inference).
   */
  weights?: Map<string, Float32Array>;
  /** Collects the graph tensors of the adapter, by name (A, B and masks). */
  inputs?: Map<string, Value>;
}

/** What the LoRA hook reads of a linear module (GLM's and the decoders' contexts both have it). */
export type LoraHookContext = Pick<LinearContext, "g" | "module" | "x" | "dtype" | "base">;

/**
 * The linear hook that adds LoRA to the targeted modules of a GLM or decoder graph. A and B are graph inputs
 * named as in PEFT (or initializers, when `options.weights` is given); the update is one Gemm
 * x A^T [rows, r] then one Gemm (alpha / r) (x A^T) B^T + base, which adds the base output in the
 * same kernel.
 *
 * @example
 * ```ts
 * import type { GlmConfig } from "./config.ts";
 * import { buildForwardGraph } from "./glm.ts";
 * import type { Weights } from "./weights.ts";
 *
 * declare const config: GlmConfig, weights: Weights;
 * const { graph } = buildForwardGraph({ config, weights, outputs: "loss",
 *   linear: loraHook(config, DEFAULT_LORA) });
 * ```
 */
export function loraHook(
  config: AnyConfig,
  lora: LoraConfig,
  options: LoraHookOptions = {},
): (ctx: LoraHookContext) => Value {
  const modules = new Map(loraModules(config, lora).map((m) => [m.module, m]));
  const scaling = lora.alpha / lora.rank;
  return (ctx) => {
    const m = modules.get(ctx.module);
    if (!m) return ctx.base();
    const { g } = ctx;
    const tensor = (name: string, shape: number[]): Value => {
      const data = options.weights?.get(name);
      const v = data
        ? g.initializer(name, {
          dtype: ctx.dtype,
          shape,
          data: ctx.dtype === "float64" ? Float64Array.from(data) : data,
        })
        : g.input(name, ctx.dtype, shape);
      options.inputs?.set(name, v);
      return v;
    };
    const a = tensor(m.a, [lora.rank, m.inFeatures]);
    const b = tensor(m.b, [m.outFeatures, lora.rank]);
    let x = ctx.x; // [rows, in]
    if (options.dropout && lora.dropout > 0) {
      const mask = g.input(m.dropoutMask, ctx.dtype, x.shape);
      options.inputs?.set(m.dropoutMask, mask);
      x = g.mul(x, mask);
    }
    return g.scope("lora", () => {
      const xa = g.gemm(x, a, null, { transB: true }); // [rows, r]
      return g.gemm(xa, b, ctx.base(), { transB: true, alpha: scaling }); // [rows, out]
    });
  };
}

/**
 * Draws one dropout keep-mask of `n` values: 0 with probability p, else 1/(1-p) (inverted
 * dropout, as torch.nn.Dropout), from `rng`.
 */
export function dropoutMask(n: number, p: number, rng: Rng): Float32Array {
  const mask = new Float32Array(n);
  const keep = 1 / (1 - p);
  for (let i = 0; i < n; i++) mask[i] = rng.float() < p ? 0 : keep;
  return mask;
}
