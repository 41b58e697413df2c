/**
 * Tensors as the rest of the toolkit sees them ({@linkcode TensorData}: dtype, shape, a typed array)
 * and their conversion to and from onnxruntime's `Tensor`, without copying the data. The only other
 * file besides `session.ts` that touches onnxruntime.
 *
 * @module
 */

import type * as ort from "onnxruntime-node";
import { loadedOrt } from "./ort.ts";
import type { DType, TensorData, TypedArray } from "../onnx/graph.ts";

export type { DType, TensorData, TypedArray } from "../onnx/graph.ts";

/** An onnxruntime tensor (for callers that keep one across runs without converting). */
export type OrtTensor = ort.Tensor;

/** Wraps tensor data as an onnxruntime tensor (the typed array is shared, not copied). */
export function toOrt(t: TensorData): OrtTensor {
  // onnxruntime-node takes bool data as Uint8Array and float16 as raw Uint16Array bits.
  const { Tensor } = loadedOrt();
  return new Tensor(t.dtype as ort.Tensor.Type, t.data as never, [...t.shape]);
}

/** The data of an onnxruntime tensor in the toolkit's form (shares its buffer). */
export function fromOrt(t: OrtTensor): TensorData {
  let data = t.data as unknown as TypedArray;
  // Newer runtimes may hand float16 out as Float16Array; the toolkit keeps raw bits.
  if (t.type === "float16" && !(data instanceof Uint16Array)) {
    const d = data as unknown as { buffer: ArrayBuffer; byteOffset: number; length: number };
    data = new Uint16Array(d.buffer, d.byteOffset, d.length);
  }
  if (t.type === "bool" && !(data instanceof Uint8Array)) {
    data = Uint8Array.from(data as ArrayLike<number>);
  }
  return { dtype: t.type as DType, shape: [...t.dims], data };
}

/** A float32 tensor of `shape` over `data` (default zeros). */
export function float32(shape: readonly number[], data?: Float32Array): TensorData {
  return { dtype: "float32", shape, data: checked(shape, data ?? new Float32Array(size(shape))) };
}

/** An int32 tensor of `shape` over `data` (default zeros). */
export function int32(shape: readonly number[], data?: Int32Array): TensorData {
  return { dtype: "int32", shape, data: checked(shape, data ?? new Int32Array(size(shape))) };
}

/** An int64 tensor of `shape` from numbers or a BigInt64Array. */
export function int64(
  shape: readonly number[],
  data: ArrayLike<number> | BigInt64Array,
): TensorData {
  const out = data instanceof BigInt64Array ? data : BigInt64Array.from(data, (x) => BigInt(x));
  return { dtype: "int64", shape, data: checked(shape, out) } as TensorData;
}

/** The number of elements of a static shape. */
export function size(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checked<T extends TypedArray>(shape: readonly number[], data: T): T {
  if (data.length !== size(shape)) {
    throw new Error(`tensor of shape [${shape.join(", ")}] given ${data.length} elements`);
  }
  return data;
}
