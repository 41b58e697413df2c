/**
 * Weight-only quantization for inference: every linear module's weight [out, in] is stored in
 * `bits` (4 or 8) per value, block-wise along the input (one float scale per `blockSize` values of
 * a row, symmetric, onnxruntime's default zero point 2^(bits-1)), and its product is onnxruntime's
 * `MatMulNBits` (com.microsoft, CPU and CUDA), which reads the small weights and dequantizes as it
 * multiplies. A decoding step reads every weight once, so it moves 4 (8 bits) or 8 (4 bits) times
 * fewer bytes of the linear modules; whether that is faster depends on whether a step is bound by
 * memory or by compute (measured on a 2-core CPU at 80 rows a step: slower, docs/performance.md).
 * Embeddings, the output projection and the norms stay in float. Not for training: the gradient
 * graphs keep float weights.
 *
 * @module
 */

import { attr, type Graph, type Value } from "../onnx/graph.ts";
import type { Weights } from "./weights.ts";

/** Bits per quantized weight. */
export type QuantBits = 4 | 8;

/** The bit widths {@linkcode quantizedLinear} takes. */
export const QUANT_BITS: readonly QuantBits[] = [4, 8];

/** A weight [rows, cols] in MatMulNBits' layout. */
export interface QuantizedWeight {
  /** [rows, blocks, blockSize * bits / 8]: row-major, two 4-bit values a byte low nibble first. */
  data: Uint8Array;
  /** [rows * blocks]: each block's scale; value = (q - 2^(bits-1)) * scale. */
  scales: Float32Array;
  /** Blocks per row: ceil(cols / blockSize), the last one zero-padded. */
  blocks: number;
}

/**
 * Quantizes `w` [rows, cols] (row-major) to `bits` per value in blocks of `blockSize` along each
 * row: scale = max |w| of the block / (2^(bits-1) - 1), q = round(w / scale) + 2^(bits-1), so the
 * error of a value is at most half its block's scale.
 *
 * @example
 * ```ts
 * const q = quantizeBlockwise(new Float32Array([0.5, -1, 0.25, 1]), 1, 4, 8, 16);
 * q.scales[0]; // 1 / 127
 * ```
 */
export function quantizeBlockwise(
  w: Float32Array,
  rows: number,
  cols: number,
  bits: QuantBits,
  blockSize: number,
): QuantizedWeight {
  if (w.length !== rows * cols) {
    throw new RangeError(`quantize: ${w.length} values for ${rows}x${cols}`);
  }
  if (!(blockSize >= 16 && (blockSize & (blockSize - 1)) === 0)) {
    throw new RangeError(`quantize: block size ${blockSize} is not a power of 2 of at least 16`);
  }
  const blocks = Math.ceil(cols / blockSize);
  const bytes = (blockSize * bits) / 8;
  const data = new Uint8Array(rows * blocks * bytes);
  const scales = new Float32Array(rows * blocks);
  const zero = 1 << (bits - 1);
  const top = zero - 1;
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocks; b++) {
      const from = r * cols + b * blockSize;
      const end = r * cols + Math.min(cols, (b + 1) * blockSize);
      let amax = 0;
      for (let i = from; i < end; i++) amax = Math.max(amax, Math.abs(w[i]));
      // Math.fround: the graph holds the scale in float32, so the rounding must use that value.
      const scale = Math.fround(amax / top) || 1;
      scales[r * blocks + b] = scale;
      const at = (r * blocks + b) * bytes;
      for (let i = 0; i < blockSize; i++) {
        const value = from + i < end ? w[from + i] : 0;
        const q = Math.max(zero - top, Math.min(zero + top, Math.round(value / scale) + zero));
        if (bits === 8) data[at + i] = q;
        else data[at + (i >> 1)] |= i & 1 ? q << 4 : q;
      }
    }
  }
  return { data, scales, blocks };
}

/** The float values a {@linkcode QuantizedWeight} stands for, [rows, cols] (for tests). */
export function dequantize(
  q: QuantizedWeight,
  rows: number,
  cols: number,
  bits: QuantBits,
  blockSize: number,
): Float32Array {
  const out = new Float32Array(rows * cols);
  const bytes = (blockSize * bits) / 8;
  const zero = 1 << (bits - 1);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const b = Math.floor(c / blockSize);
      const i = c % blockSize;
      const at = (r * q.blocks + b) * bytes;
      const v = bits === 8 ? q.data[at + i] : (q.data[at + (i >> 1)] >> (i & 1 ? 4 : 0)) & 15;
      out[r * cols + c] = (v - zero) * q.scales[r * q.blocks + b];
    }
  }
  return out;
}

/** What {@linkcode quantizedLinear} needs of a linear module (GLM's and the decoders' hooks give it). */
export interface QuantizableLinear {
  g: Graph;
  /** The module name; its weight is `${module}.weight` in the weights. */
  module: string;
  /** [N, inFeatures]. */
  x: Value;
  inFeatures: number;
  outFeatures: number;
  bias: Value | null;
  dtype: "float32" | "float64";
  base(): Value;
}

/** Options of {@linkcode quantizedLinear}. */
export interface QuantizeOptions {
  /** Bits per value: 4 or 8. */
  bits: QuantBits;
  /** Values per scale along a row (default 32: a power of 2, at least 16). */
  blockSize?: number;
}

/**
 * A linear hook (for GLM's `linear` and the decoders' alike) that computes every linear module
 * whose weight is in `weights` with `MatMulNBits` over its quantized weight, then adds the bias.
 * A float64 graph, or a module without its weight in `weights`, keeps the float product.
 *
 * @example
 * ```ts ignore
 * const family = glmFamily(model, { linear: quantizedLinear(model.weights, { bits: 8 }) });
 * ```
 */
export function quantizedLinear(
  weights: Weights,
  options: QuantizeOptions,
): (ctx: QuantizableLinear) => Value {
  const blockSize = options.blockSize ?? 32;
  const cache = new Map<string, QuantizedWeight>(); // prefill and step graphs share the packing
  return (ctx) => {
    const w = weights.get(`${ctx.module}.weight`);
    if (!w || ctx.dtype !== "float32") return ctx.base();
    const { g, inFeatures: k, outFeatures: n } = ctx;
    let q = cache.get(ctx.module);
    if (!q) {
      q = quantizeBlockwise(w, n, k, options.bits, blockSize);
      cache.set(ctx.module, q);
    }
    const packed = g.initializer(`${ctx.module}.weight.q${options.bits}`, {
      dtype: "uint8",
      shape: [n, q.blocks, (blockSize * options.bits) / 8],
      data: q.data,
    });
    const scales = g.initializer(`${ctx.module}.weight.scales`, {
      dtype: "float32",
      shape: [n * q.blocks],
      data: q.scales,
    });
    const [y] = g.node("MatMulNBits", [ctx.x, packed, scales], {
      K: attr.int(k),
      N: attr.int(n),
      bits: attr.int(options.bits),
      block_size: attr.int(blockSize),
    }, {
      domain: "com.microsoft",
      infer: [{ dtype: "float32", shape: [g.value(ctx.x.name).shape[0], n] }],
    });
    return ctx.bias ? g.add(y, ctx.bias) : y;
  };
}
