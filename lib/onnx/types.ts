/**
 * The ONNX graph's vocabulary, shared by the builder (`graph.ts`), shape inference (`infer.ts`)
 * and the encoder (`proto.ts`): element types and the one dtype table, tensor data, values,
 * attributes and their readers, nodes. No logic beyond reading these.
 *
 * @module
 */

import type { Shape } from "./shape.ts";

/** Element types, named as onnxruntime-node names them. */
export type DType =
  | "float32"
  | "float64"
  | "float16"
  | "bfloat16"
  | "int8"
  | "uint8"
  | "int16"
  | "uint16"
  | "int32"
  | "int64"
  | "uint32"
  | "uint64"
  | "bool";

/** What is known of one {@linkcode DType}. */
export interface DTypeInfo {
  /** ONNX TensorProto.DataType code. */
  onnx: number;
  /** Bytes per element. */
  bytes: number;
  /** The typed array its data lives in (float16/bfloat16 as raw Uint16Array bits, bool as 0/1). */
  array: new (n: number) => TypedArray;
}

/** The one dtype table: ONNX code, byte size and typed array of each {@linkcode DType}. */
export const DTYPE_INFO: Readonly<Record<DType, DTypeInfo>> = {
  float32: { onnx: 1, bytes: 4, array: Float32Array },
  uint8: { onnx: 2, bytes: 1, array: Uint8Array },
  int8: { onnx: 3, bytes: 1, array: Int8Array },
  uint16: { onnx: 4, bytes: 2, array: Uint16Array },
  int16: { onnx: 5, bytes: 2, array: Int16Array },
  int32: { onnx: 6, bytes: 4, array: Int32Array },
  int64: { onnx: 7, bytes: 8, array: BigInt64Array },
  bool: { onnx: 9, bytes: 1, array: Uint8Array },
  float16: { onnx: 10, bytes: 2, array: Uint16Array },
  float64: { onnx: 11, bytes: 8, array: Float64Array },
  uint32: { onnx: 12, bytes: 4, array: Uint32Array },
  uint64: { onnx: 13, bytes: 8, array: BigUint64Array },
  bfloat16: { onnx: 16, bytes: 2, array: Uint16Array },
};

const BY_ONNX = new Map(
  (Object.entries(DTYPE_INFO) as [DType, DTypeInfo][]).map(([dtype, info]) => [info.onnx, dtype]),
);

/** The {@linkcode DType} of an ONNX TensorProto.DataType code, or undefined for one not here. */
export function dtypeOfOnnx(code: number): DType | undefined {
  return BY_ONNX.get(code);
}

/** Whether `dtype` is a floating-point type (the ones gradients flow through). */
export function isFloat(dtype: DType): boolean {
  return dtype === "float32" || dtype === "float64" || dtype === "float16" ||
    dtype === "bfloat16";
}

/** The typed arrays tensor data lives in (float16/bfloat16 as raw Uint16Array bits). */
export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** Concrete tensor contents: an initializer, or a tensor-valued attribute. */
export interface TensorData {
  /** The element type of `data`. */
  dtype: DType;
  /** Static shape (row-major). */
  shape: readonly number[];
  /** The elements, row-major, in the typed array of `dtype`. */
  data: TypedArray;
}

/** A tensor of the graph as the builder knows it: its unique name, dtype and static shape. */
export interface Value {
  /** The tensor's unique name in the graph. */
  readonly name: string;
  /** Its element type. */
  readonly dtype: DType;
  /** Its static shape. */
  readonly shape: Shape;
}

/** A node attribute, tagged with its ONNX type (a JavaScript number does not say int or float). */
export type Attribute =
  | { type: "int"; value: number }
  | { type: "float"; value: number }
  | { type: "string"; value: string }
  | { type: "ints"; value: readonly number[] }
  | { type: "floats"; value: readonly number[] }
  | { type: "strings"; value: readonly string[] }
  | { type: "tensor"; value: TensorData };

/** Attribute constructors: `{ axis: attr.int(-1) }`. */
export const attr = {
  /** An INT attribute. */
  int: (value: number): Attribute => ({ type: "int", value }),
  /** A FLOAT attribute. */
  float: (value: number): Attribute => ({ type: "float", value }),
  /** A STRING attribute. */
  string: (value: string): Attribute => ({ type: "string", value }),
  /** An INTS attribute. */
  ints: (value: readonly number[]): Attribute => ({ type: "ints", value }),
  /** A FLOATS attribute. */
  floats: (value: readonly number[]): Attribute => ({ type: "floats", value }),
  /** A STRINGS attribute. */
  strings: (value: readonly string[]): Attribute => ({ type: "strings", value }),
  /** A TENSOR attribute. */
  tensor: (value: TensorData): Attribute => ({ type: "tensor", value }),
};

/** Attributes by name. */
export type Attributes = Record<string, Attribute>;

/** One operator application. Inputs and outputs are tensor names; `""` is an absent optional. */
export interface Node {
  /** Unique node name (shown in onnxruntime's profiles). */
  readonly name: string;
  /** Operator type: `MatMul`. */
  readonly op: string;
  /** Operator domain; `""` is the default ONNX domain. */
  readonly domain: string;
  /** Input tensor names, in operator order; `""` for an absent optional input. */
  readonly inputs: string[];
  /** Output tensor names, in operator order. */
  readonly outputs: string[];
  /** The node's attributes by name. */
  readonly attrs: Attributes;
}

/** What the attribute readers read: a node, or a node being added (its name for messages). */
export interface AttributeOwner {
  /** The node's name, for messages. */
  readonly name: string;
  /** The attributes by name. */
  readonly attrs: Attributes;
}

/**
 * Reads an INT attribute of `node`, or `fallback` when absent; an attribute of another type is
 * an error (a wrong type is a bug in the graph, never a reason to use the default).
 *
 * @example
 * ```ts
 * intAttr({ name: "Softmax", attrs: { axis: attr.int(1) } }, "axis", -1); // 1
 * ```
 */
export function intAttr(node: AttributeOwner, name: string, fallback: number): number {
  const a = node.attrs[name];
  if (a === undefined) return fallback;
  if (a.type !== "int") throw new Error(`${node.name}: attribute ${name} is not an int`);
  return a.value;
}

/** Reads a FLOAT attribute of `node`, or `fallback` when absent; another type is an error. */
export function floatAttr(node: AttributeOwner, name: string, fallback: number): number {
  const a = node.attrs[name];
  if (a === undefined) return fallback;
  if (a.type !== "float") throw new Error(`${node.name}: attribute ${name} is not a float`);
  return a.value;
}

/** Reads an INTS attribute of `node`, or `fallback` when absent; another type is an error. */
export function intsAttr(
  node: AttributeOwner,
  name: string,
  fallback?: readonly number[],
): readonly number[] | undefined {
  const a = node.attrs[name];
  if (a === undefined) return fallback;
  if (a.type !== "ints") throw new Error(`${node.name}: attribute ${name} is not ints`);
  return a.value;
}
