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

import { type AnyConfig, isDecoderConfig, modelConfig } from "./config.ts";
import { blockOf, type BlockStyle, type DecoderConfig, weightNames } from "./families/config.ts";
import type {
  DecoderLinearKind,
  GlmLinearKind,
  LinearContext,
  LinearKind,
} from "./families/decoder.ts";
import type { Value } from "../onnx/graph.ts";
import type { Rng } from "../random.ts";

export { type AnyConfig, isDecoderConfig };

/** THUDM GLM's linear modules LoRA may target, by PEFT's `target_modules` names. */
export const LORA_TARGETS: Record<string, GlmLinearKind> = {
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

/** The decoder families' default targets (PEFT's for Llama-style models). */
export const DEFAULT_DECODER_TARGETS: readonly string[] = ["q_proj", "k_proj", "v_proj"];

/** Short names accepted for GLM's targets. */
export const TARGET_ALIASES: Record<string, string> = {
  qkv: "query_key_value",
  attn: "dense",
  attention_dense: "dense",
  h_to_4h: "dense_h_to_4h",
  "4h_to_h": "dense_4h_to_h",
  mlp_up: "dense_h_to_4h",
  mlp_down: "dense_4h_to_h",
};

/** A family's LoRA targets: PEFT names to module kinds, the default, the accepted aliases. */
export interface LoraTargetTable {
  /** PEFT module name (`query_key_value`, `q_proj`, ...) to the linear it adapts. */
  targets: Record<string, LinearKind>;
  /** The targets an empty target list means (PEFT names). */
  defaults: readonly string[];
  /** Short names accepted on the command line, to PEFT names. */
  aliases: Record<string, string>;
}

/** The LoRA targets of each block style (by its names), one row per style. */
export const LORA_TARGET_TABLES: Record<BlockStyle["names"], LoraTargetTable> = {
  thudm_glm: { targets: LORA_TARGETS, defaults: ["query_key_value"], aliases: TARGET_ALIASES },
  hf: { targets: DECODER_LORA_TARGETS, defaults: DEFAULT_DECODER_TARGETS, aliases: {} },
};

/** A LoRA configuration (PEFT's `adapter_config.json` fields). */
export interface LoraConfig {
  /** r: rank of the update. */
  rank: number;
  /** lora_alpha: the update is scaled by alpha / r. */
  alpha: number;
  /** lora_dropout: dropout probability on the adapter's input (default 0). */
  dropout: number;
  /** target_modules, PEFT names (`query_key_value`, `q_proj`, ...); empty: the family's default. */
  targets: string[];
}

/** Rank 8, alpha 16, no dropout, GLM's query_key_value (the paper's setting). */
export const DEFAULT_LORA: Readonly<LoraConfig> = Object.freeze({
  rank: 8,
  alpha: 16,
  dropout: 0,
  targets: ["query_key_value"],
});

/** The canonical PEFT name of a GLM target (aliases resolved); a RangeError when unknown. */
export function targetName(name: string): string {
  const canonical = TARGET_ALIASES[name] ?? name;
  if (!(canonical in LORA_TARGETS)) {
    throw new RangeError(
      `unknown LoRA target "${name}" (targets: ${Object.keys(LORA_TARGETS).join(", ")}, or qkv)`,
    );
  }
  return canonical;
}

/** The target table of `config`'s family. */
export function loraTargetTable(config: AnyConfig): LoraTargetTable {
  return LORA_TARGET_TABLES[blockOf(modelConfig(config)).names];
}

/**
 * `targets` in the family's canonical PEFT names (aliases resolved, duplicates dropped), in the
 * family table's order whatever order they were given in (a set, as PEFT's `target_modules`:
 * `v_proj,q_proj` is the run `q_proj,v_proj` is); an empty list is the family's default. Unknown
 * names and modules the family lacks are RangeErrors.
 */
export function resolveLoraTargets(config: AnyConfig, targets: readonly string[]): string[] {
  const c = modelConfig(config);
  const table = loraTargetTable(c);
  const names = targets.length ? targets.map((t) => table.aliases[t] ?? t) : [...table.defaults];
  for (const t of names) moduleFeatures(c, t);
  return inTableOrder(table, [...new Set(names)]);
}

/** `names` (PEFT names of `table`'s targets) in the table's order; others last, as given. */
export function inTableOrder(table: LoraTargetTable, names: readonly string[]): string[] {
  const order = Object.keys(table.targets);
  const rank = (name: string) => {
    const at = order.indexOf(name);
    return at < 0 ? order.length : at;
  };
  return [...names].sort((a, b) => rank(a) - rank(b));
}

/** One adapted module: its name, sizes and the names of its tensors. */
export interface LoraModule {
  /** `glm.transformer.layers.0.attention.query_key_value`. */
  module: string;
  /** Index of the layer the module sits in (0-based). */
  layer: number;
  /** Which linear of the layer it is. */
  kind: LinearKind;
  /** Input width of the adapted linear (columns of lora_A). */
  inFeatures: number;
  /** Output width of the adapted linear (rows of lora_B). */
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

/** [in, out] of the module PEFT names `target` in `c`'s family; a RangeError if it has none. */
function moduleFeatures(c: DecoderConfig, target: string): [number, number] {
  const { hiddenSize: h, intermediateSize: im } = c;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const table = loraTargetTable(c);
  const kind = table.targets[target];
  if (!kind) {
    const aliases = Object.keys(table.aliases).length ? ", or qkv" : "";
    throw new RangeError(
      `unknown LoRA target "${target}" for ${c.family} (targets: ${
        Object.keys(table.targets).join(", ")
      }${aliases})`,
    );
  }
  const fused = kind === "mlp.gate_up_proj";
  if (c.fusedGateUp ? kind === "mlp.gate_proj" || kind === "mlp.up_proj" : fused) {
    throw new RangeError(
      `LoRA target "${target}" is not a module of ${c.family} (its MLP has ${
        c.fusedGateUp ? "gate_up_proj" : "gate_proj and up_proj"
      })`,
    );
  }
  const sizes: Record<LinearKind, [number, number]> = {
    "self_attn.q_proj": [h, q],
    "self_attn.k_proj": [h, kv],
    "self_attn.v_proj": [h, kv],
    "self_attn.o_proj": [q, h],
    "mlp.gate_proj": [h, im],
    "mlp.up_proj": [h, im],
    "mlp.down_proj": [im, h],
    "mlp.gate_up_proj": [h, 2 * im],
    "attention.query_key_value": [h, q + 2 * kv],
    "attention.dense": [q, h],
    "mlp.dense_h_to_4h": [h, im],
    "mlp.dense_4h_to_h": [im, h],
  };
  return sizes[kind];
}

/**
 * Every adapted module of `config` for `lora`'s targets (canonical names, as
 * {@linkcode resolveLoraTargets} gives; GLM's aliases are accepted too), layer by layer.
 */
export function loraModules(config: AnyConfig, lora: LoraConfig): LoraModule[] {
  const c = modelConfig(config);
  const table = loraTargetTable(c);
  const targets = lora.targets.map((t) => table.aliases[t] ?? t);
  const sizes = targets.map((t) => moduleFeatures(c, t));
  const names = weightNames(c);
  const out: LoraModule[] = [];
  for (let layer = 0; layer < c.numLayers; layer++) {
    for (const [k, target] of targets.entries()) {
      const kind = table.targets[target];
      const module = `${names.layer(layer)}.${kind}`;
      const [inFeatures, outFeatures] = sizes[k];
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
