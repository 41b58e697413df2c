/**
 * The ONNX graph layer: a small typed representation of a graph (tensors with dtype and symbolic
 * shape, nodes, initializers, inputs and outputs) and its builder, one method per operator, each
 * creating uniquely named outputs whose dtype and shape are inferred statically (rules in
 * `infer.ts`). `proto.ts` turns a graph into ModelProto bytes for onnxruntime.
 *
 * Made to be walked backwards as well as built forwards: every tensor knows its producer and its
 * consumers, nodes are plain records (op, inputs, outputs, attributes), and new nodes go through
 * one generic {@linkcode Graph.node} method, so reverse-mode differentiation can emit backward
 * nodes into the same graph with the same methods. Standard ONNX operators only (default domain),
 * opset {@linkcode OPSET}.
 *
 * Not for running anything: that is `lib/runtime`.
 *
 * @example
 * ```ts
 * import { encodeModel } from "./proto.ts";
 *
 * const g = new Graph("mlp");
 * const x = g.input("x", "float32", ["B", 4]);
 * const w = g.initializer("w", { dtype: "float32", shape: [4, 2], data: new Float32Array(8) });
 * const y = g.relu(g.matmul(x, w)); // y.shape: ["B", 2]
 * g.output(y, "y");
 * const bytes = encodeModel(g); // proto.ts
 * ```
 *
 * @module
 */

import { inferOutputs } from "./infer.ts";
import { type Shape, show } from "./shape.ts";
import {
  attr,
  type Attributes,
  type DType,
  DTYPE_INFO,
  type Node,
  type TensorData,
  type Value,
} from "./types.ts";

export type { Dim, Shape } from "./shape.ts";
// The graph's vocabulary lives in types.ts (shared with infer.ts); importers of the builder get
// it from here too.
export * from "./types.ts";

/** The opset of the default domain every graph is built for. */
export const OPSET = 18;

/** Options of {@linkcode Graph.node}. */
export interface NodeOptions {
  /** Number of outputs (default 1), when not naming them. */
  outputs?: number;
  /** Names for the outputs (must be unused); otherwise derived from the op and scope. */
  names?: string[];
  /** Operator domain (default `""`, the standard one). */
  domain?: string;
  /**
   * Output dtypes and shapes, for an operator the inference table does not know (or to override
   * what it infers).
   */
  infer?: { dtype: DType; shape: Shape }[];
}

/** Where an int64 constant's values may be given as plain numbers. */
export type IntsOrValue = readonly number[] | Value;

/**
 * Tensor data of `dtype` and `shape` from plain numbers (booleans as 0/1; float16 not accepted:
 * pass raw bits through {@linkcode TensorData} directly).
 */
export function tensorData(
  dtype: DType,
  shape: readonly number[],
  values: ArrayLike<number>,
): TensorData {
  const n = shape.reduce((a, b) => a * b, 1);
  if (values.length !== n) {
    throw new Error(`tensorData: ${values.length} values for shape ${show(shape)}`);
  }
  if (dtype === "float16" || dtype === "bfloat16") {
    throw new Error(`tensorData: give ${dtype} data as raw bits`);
  }
  const data = new DTYPE_INFO[dtype].array(n);
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    for (let i = 0; i < n; i++) data[i] = BigInt(values[i]);
  } else {
    for (let i = 0; i < n; i++) data[i] = values[i];
  }
  return { dtype, shape: [...shape], data } as TensorData;
}

/** A graph under construction (and, once built, the thing `proto.ts` serializes). */
export class Graph {
  /** The graph's name in the ModelProto. */
  readonly name: string;
  /** Graph inputs in order (what a session is fed). */
  readonly inputs: Value[] = [];
  /** Graph outputs in order. */
  readonly outputs: Value[] = [];
  /** Nodes in a topological order (each node after the producers of its inputs). */
  readonly nodes: Node[] = [];
  /** Initializers by name: frozen weights and constants. */
  readonly initializers: Map<string, TensorData> = new Map();

  #values = new Map<string, Value>();
  #producer = new Map<string, Node>();
  #consumers = new Map<string, Node[]>();
  #counters = new Map<string, number>();
  #scopes: string[] = [];
  #scalarConstants = new Map<string, Value>();

  /**
   * The default domain's opset the graph is built for ({@linkcode OPSET} unless a graph uses a
   * newer operator, such as Attention from opset 23).
   */
  opset: number;

  /** An empty graph named `name`. */
  constructor(name = "graph", options: { opset?: number } = {}) {
    this.name = name;
    this.opset = options.opset ?? OPSET;
  }

  // ---- looking things up -------------------------------------------------------------------

  /** The tensor called `name`; throws when there is none. */
  value(name: string): Value {
    const v = this.#values.get(name);
    if (!v) throw new Error(`graph ${this.name}: no tensor named "${name}"`);
    return v;
  }

  /** Whether a tensor, input or initializer called `name` exists. */
  has(name: string): boolean {
    return this.#values.has(name);
  }

  /** Every tensor of the graph (inputs, initializers, node outputs). */
  values(): IterableIterator<Value> {
    return this.#values.values();
  }

  /** The node whose output `name` is; undefined for inputs and initializers. */
  producer(name: string): Node | undefined {
    return this.#producer.get(name);
  }

  /** The nodes that read `name`, in the order they were added. */
  consumers(name: string): readonly Node[] {
    return this.#consumers.get(name) ?? [];
  }

  /** Whether `name` is a graph input. */
  isInput(name: string): boolean {
    return this.inputs.some((v) => v.name === name);
  }

  /** The values of a small int constant (an int32/int64 initializer), or undefined. */
  constantInts(name: string): number[] | undefined {
    const t = this.initializers.get(name);
    if (!t || (t.dtype !== "int64" && t.dtype !== "int32")) return undefined;
    return Array.from(t.data as ArrayLike<number | bigint>, Number);
  }

  // ---- naming --------------------------------------------------------------------------------

  /** A name no tensor has yet, from `hint` and the current scope: `layers.0/attn/matmul_3`. */
  freshName(hint: string): string {
    const base = [...this.#scopes, hint].join("/");
    let n = this.#counters.get(base) ?? 0;
    let name: string;
    do {
      name = `${base}_${n++}`;
    } while (this.#values.has(name));
    this.#counters.set(base, n);
    return name;
  }

  /**
   * Runs `build` with `scope` appended to the names of the tensors and nodes it creates, so
   * profiles and errors say where a node comes from; returns what `build` returns.
   */
  scope<T>(scope: string, build: () => T): T {
    this.#scopes.push(scope);
    try {
      return build();
    } finally {
      this.#scopes.pop();
    }
  }

  #define(name: string, dtype: DType, shape: Shape): Value {
    if (this.#values.has(name)) {
      throw new Error(`graph ${this.name}: tensor "${name}" is defined twice`);
    }
    const v: Value = Object.freeze({ name, dtype, shape: Object.freeze([...shape]) });
    this.#values.set(name, v);
    return v;
  }

  // ---- inputs, initializers, outputs ------------------------------------------------------------

  /** Declares a graph input; dims may be symbols (`["B", "L"]`). */
  input(name: string, dtype: DType, shape: Shape): Value {
    const v = this.#define(name, dtype, shape);
    this.inputs.push(v);
    return v;
  }

  /** Adds a named initializer (a frozen weight); the data is referenced, not copied. */
  initializer(name: string, data: TensorData): Value {
    const n = data.shape.reduce((a, b) => a * b, 1);
    if (data.data.length !== n) {
      throw new Error(
        `initializer ${name}: ${data.data.length} elements for shape ${show(data.shape)}`,
      );
    }
    const v = this.#define(name, data.dtype, data.shape);
    this.initializers.set(name, data);
    return v;
  }

  /**
   * A constant tensor (an auto-named initializer). Numbers become `dtype` (default float32);
   * a bare number is a scalar (shape []), an array is 1-D. Scalars are shared: asking twice for
   * the same scalar gives the same tensor.
   */
  constant(values: number | readonly number[] | TensorData, dtype: DType = "float32"): Value {
    if (typeof values === "number") {
      const key = `${dtype}:${Object.is(values, -0) ? "-0" : values}`;
      const known = this.#scalarConstants.get(key);
      if (known) return known;
      const v = this.#constantData(tensorData(dtype, [], [values]));
      this.#scalarConstants.set(key, v);
      return v;
    }
    if ("data" in values) return this.#constantData(values as TensorData);
    const list = values as readonly number[];
    return this.#constantData(tensorData(dtype, [list.length], list));
  }

  #constantData(data: TensorData): Value {
    const saved = this.#scopes;
    this.#scopes = [];
    try {
      return this.initializer(this.freshName("const"), data);
    } finally {
      this.#scopes = saved;
    }
  }

  /** An int64 1-D constant from numbers, or `v` itself when it already is a tensor. */
  ints(values: IntsOrValue): Value {
    return "name" in values ? values as Value : this.constant(values as number[], "int64");
  }

  /**
   * Marks `v` as a graph output. With `name`, the output is called that: the tensor is renamed
   * when a node made it (use the returned value from then on), else an Identity copies it.
   */
  output(v: Value, name?: string): Value {
    let out = this.value(v.name);
    if (name !== undefined && name !== out.name) {
      const renamable = this.#producer.has(out.name) && !this.outputs.includes(out) &&
        !this.#values.has(name);
      out = renamable ? this.rename(out, name) : this.identity(out, name);
    }
    this.outputs.push(out);
    return out;
  }

  /**
   * Records a more precise static shape for `v` (same rank), for tensors whose size depends on
   * values shape inference cannot see (a Range up to a sequence length, a Reshape to a computed
   * shape). Returns the refined value; the runtime does not check it.
   */
  refine(v: Value, shape: Shape): Value {
    const old = this.value(v.name);
    if (old.shape.length !== shape.length) {
      throw new Error(`refine: ${v.name} has rank ${old.shape.length}, not ${shape.length}`);
    }
    const refined: Value = Object.freeze({
      name: old.name,
      dtype: old.dtype,
      shape: Object.freeze([...shape]),
    });
    this.#values.set(old.name, refined);
    const at = this.inputs.indexOf(old);
    if (at >= 0) this.inputs[at] = refined;
    const out = this.outputs.indexOf(old);
    if (out >= 0) this.outputs[out] = refined;
    return refined;
  }

  /** Renames a tensor made by a node everywhere it is used; returns the renamed value. */
  rename(v: Value, name: string): Value {
    const producer = this.#producer.get(v.name);
    if (!producer) throw new Error(`rename: ${v.name} is not made by a node`);
    const renamed = this.#define(name, v.dtype, v.shape);
    this.#values.delete(v.name);
    producer.outputs[producer.outputs.indexOf(v.name)] = name;
    this.#producer.delete(v.name);
    this.#producer.set(name, producer);
    const consumers = this.#consumers.get(v.name) ?? [];
    for (const node of consumers) {
      for (let i = 0; i < node.inputs.length; i++) {
        if (node.inputs[i] === v.name) node.inputs[i] = name;
      }
    }
    this.#consumers.delete(v.name);
    if (consumers.length) this.#consumers.set(name, consumers);
    return renamed;
  }

  // ---- nodes -----------------------------------------------------------------------------------

  /**
   * Adds a node of operator `op` and returns its outputs (dtype and shape inferred from the
   * table in `infer.ts`, or given through `options.infer`). `null` marks an absent optional
   * input. This is the one way nodes enter the graph; the op methods below call it.
   *
   * @example
   * ```ts
   * import { attr, type Value } from "./types.ts";
   *
   * declare const g: Graph, x: Value;
   * const [y] = g.node("Softmax", [x], { axis: attr.int(-1) });
   * ```
   */
  node(
    op: string,
    inputs: readonly (Value | null)[],
    attrs: Attributes = {},
    options: NodeOptions = {},
  ): Value[] {
    const known = inputs.map((v) => (v === null ? undefined : this.value(v.name)));
    const domain = options.domain ?? "";
    const infos = options.infer ??
      inferOutputs(op, {
        inputs: known,
        attrs,
        constantInts: (i) => (known[i] ? this.constantInts(known[i]!.name) : undefined),
        opName: op,
      });
    const count = options.names?.length ?? options.outputs ?? infos.length;
    if (infos.length < count) {
      throw new Error(`${op}: inferred ${infos.length} outputs, ${count} wanted`);
    }
    const hint = op.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
    const outputs = Array.from({ length: count }, (_, i) => {
      const name = options.names?.[i] ?? this.freshName(hint);
      return this.#define(name, infos[i].dtype, infos[i].shape);
    });
    const node: Node = {
      name: this.freshName(`${op}`),
      op,
      domain,
      inputs: inputs.map((v) => (v === null ? "" : v.name)),
      outputs: outputs.map((v) => v.name),
      attrs,
    };
    this.nodes.push(node);
    for (const name of node.outputs) this.#producer.set(name, node);
    for (const name of new Set(node.inputs)) {
      if (name === "") continue;
      const list = this.#consumers.get(name);
      if (list) list.push(node);
      else this.#consumers.set(name, [node]);
    }
    return outputs;
  }

  #one(op: string, inputs: readonly (Value | null)[], attrs: Attributes = {}, name?: string) {
    return this.node(op, inputs, attrs, name ? { names: [name] } : {})[0];
  }

  /**
   * Removes every node, initializer and tensor that no graph output depends on (graph inputs
   * stay). Returns the number of nodes removed.
   */
  prune(): number {
    const needed = new Set<string>(this.outputs.map((v) => v.name));
    const keep: Node[] = [];
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const node = this.nodes[i];
      if (node.outputs.some((o) => needed.has(o))) {
        keep.push(node);
        for (const name of node.inputs) if (name !== "") needed.add(name);
      }
    }
    keep.reverse();
    const removed = this.nodes.length - keep.length;
    const dropped = new Set(this.nodes.filter((n) => !keep.includes(n)));
    this.nodes.splice(0, this.nodes.length, ...keep);
    for (const node of dropped) {
      for (const o of node.outputs) {
        this.#producer.delete(o);
        this.#values.delete(o);
        this.#consumers.delete(o);
      }
    }
    for (const [name, list] of this.#consumers) {
      const kept = list.filter((n) => !dropped.has(n));
      if (kept.length) this.#consumers.set(name, kept);
      else this.#consumers.delete(name);
    }
    for (const name of [...this.initializers.keys()]) {
      if (!needed.has(name)) {
        this.initializers.delete(name);
        this.#values.delete(name);
        for (const [k, v] of this.#scalarConstants) {
          if (v.name === name) this.#scalarConstants.delete(k);
        }
      }
    }
    return removed;
  }

  // ---- elementwise --------------------------------------------------------------------------------

  /** a + b (broadcasting). */
  add(a: Value, b: Value): Value {
    return this.#one("Add", [a, b]);
  }
  /** a - b (broadcasting). */
  sub(a: Value, b: Value): Value {
    return this.#one("Sub", [a, b]);
  }
  /** a * b (broadcasting). */
  mul(a: Value, b: Value): Value {
    return this.#one("Mul", [a, b]);
  }
  /** a / b (broadcasting). */
  div(a: Value, b: Value): Value {
    return this.#one("Div", [a, b]);
  }
  /** a ** b (broadcasting). */
  pow(a: Value, b: Value): Value {
    return this.#one("Pow", [a, b]);
  }
  /** -x. */
  neg(x: Value): Value {
    return this.#one("Neg", [x]);
  }
  /** sqrt(x). */
  sqrt(x: Value): Value {
    return this.#one("Sqrt", [x]);
  }
  /** 1 / x. */
  reciprocal(x: Value): Value {
    return this.#one("Reciprocal", [x]);
  }
  /** e^x. */
  exp(x: Value): Value {
    return this.#one("Exp", [x]);
  }
  /** ln x. */
  log(x: Value): Value {
    return this.#one("Log", [x]);
  }
  /** tanh x. */
  tanh(x: Value): Value {
    return this.#one("Tanh", [x]);
  }
  /**
   * GELU as one opset-20 Gelu node: x Phi(x) (`approximate: "none"`) or its tanh approximation
   * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (`"tanh"`). Raises the graph's opset to 20
   * when it is lower (the operators used here mean the same from opset 18 to 20).
   */
  gelu(x: Value, approximate: "none" | "tanh"): Value {
    this.opset = Math.max(this.opset, 20);
    return this.#one("Gelu", [x], { approximate: attr.string(approximate) });
  }
  /** 1 / (1 + e^-x). */
  sigmoid(x: Value): Value {
    return this.#one("Sigmoid", [x]);
  }
  /** max(x, 0). */
  relu(x: Value): Value {
    return this.#one("Relu", [x]);
  }
  /** |x|. */
  abs(x: Value): Value {
    return this.#one("Abs", [x]);
  }
  /** erf x. */
  erf(x: Value): Value {
    return this.#one("Erf", [x]);
  }
  /** Elementwise maximum of the inputs (broadcasting). */
  max(...xs: Value[]): Value {
    return this.#one("Max", xs);
  }
  /** Elementwise minimum of the inputs (broadcasting). */
  min(...xs: Value[]): Value {
    return this.#one("Min", xs);
  }
  /** Sum of the inputs (broadcasting). */
  sum(...xs: Value[]): Value {
    return this.#one("Sum", xs);
  }
  /** Clips x to [min, max] (scalars; either may be null). */
  clip(x: Value, min: Value | null, max: Value | null): Value {
    return this.#one("Clip", [x, min, max]);
  }
  /** A copy of x (optionally named). */
  identity(x: Value, name?: string): Value {
    return this.#one("Identity", [x], {}, name);
  }
  /** x converted to `dtype`. */
  cast(x: Value, dtype: DType): Value {
    return this.#one("Cast", [x], { to: attr.int(DTYPE_INFO[dtype].onnx) });
  }

  // ---- comparisons and logic ------------------------------------------------------------------

  /** a == b (bool, broadcasting). */
  equal(a: Value, b: Value): Value {
    return this.#one("Equal", [a, b]);
  }
  /** a < b (bool, broadcasting). */
  less(a: Value, b: Value): Value {
    return this.#one("Less", [a, b]);
  }
  /** a <= b (bool, broadcasting). */
  lessOrEqual(a: Value, b: Value): Value {
    return this.#one("LessOrEqual", [a, b]);
  }
  /** a > b (bool, broadcasting). */
  greater(a: Value, b: Value): Value {
    return this.#one("Greater", [a, b]);
  }
  /** a >= b (bool, broadcasting). */
  greaterOrEqual(a: Value, b: Value): Value {
    return this.#one("GreaterOrEqual", [a, b]);
  }
  /** Logical not. */
  not(x: Value): Value {
    return this.#one("Not", [x]);
  }
  /** Logical and (broadcasting). */
  and(a: Value, b: Value): Value {
    return this.#one("And", [a, b]);
  }
  /** Logical or (broadcasting). */
  or(a: Value, b: Value): Value {
    return this.#one("Or", [a, b]);
  }
  /** cond ? a : b, elementwise (broadcasting all three). */
  where(cond: Value, a: Value, b: Value): Value {
    return this.#one("Where", [cond, a, b]);
  }

  // ---- linear algebra -------------------------------------------------------------------------------

  /** Matrix product with numpy batch broadcasting. */
  matmul(a: Value, b: Value): Value {
    return this.#one("MatMul", [a, b]);
  }

  /**
   * alpha * A' B' + beta * C for 2-D A and B (A' = A^T when transA, B' likewise); C broadcasts
   * to [M, N]. `transB: true` takes a linear weight in the [out, in] layout as it is.
   */
  gemm(
    a: Value,
    b: Value,
    c: Value | null = null,
    options: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {},
  ): Value {
    const attrs: Attributes = {};
    if (options.transA) attrs.transA = attr.int(1);
    if (options.transB) attrs.transB = attr.int(1);
    if (options.alpha !== undefined && options.alpha !== 1) attrs.alpha = attr.float(options.alpha);
    if (options.beta !== undefined && options.beta !== 1) attrs.beta = attr.float(options.beta);
    return this.#one("Gemm", c ? [a, b, c] : [a, b], attrs);
  }

  // ---- shape manipulation -------------------------------------------------------------------------

  /** x reshaped to `shape` (0 keeps the input dim, -1 is inferred), constant or a tensor. */
  reshape(x: Value, shape: IntsOrValue): Value {
    return this.#one("Reshape", [x, this.ints(shape)]);
  }
  /** x with its axes permuted. */
  transpose(x: Value, perm: readonly number[]): Value {
    return this.#one("Transpose", [x], { perm: attr.ints(perm) });
  }
  /** x with size-1 axes inserted at `axes` (of the output). */
  unsqueeze(x: Value, axes: readonly number[]): Value {
    return this.#one("Unsqueeze", [x, this.ints(axes)]);
  }
  /** x with the size-1 axes `axes` removed. */
  squeeze(x: Value, axes: readonly number[]): Value {
    return this.#one("Squeeze", [x, this.ints(axes)]);
  }
  /** x flattened to 2-D at `axis`: [prod(dims < axis), prod(dims >= axis)]. */
  flatten(x: Value, axis = 1): Value {
    return this.#one("Flatten", [x], { axis: attr.int(axis) });
  }
  /** The inputs joined along `axis`. */
  concat(xs: readonly Value[], axis: number): Value {
    return this.#one("Concat", xs, { axis: attr.int(axis) });
  }
  /** x cut along `axis` into pieces of the given sizes. */
  split(x: Value, sizes: readonly number[], axis: number): Value[] {
    return this.node("Split", [x, this.ints(sizes)], { axis: attr.int(axis) });
  }
  /**
   * x[starts:ends:steps] on `axes` (default the first axes). Ends past the dim clamp, so
   * `Number.MAX_SAFE_INTEGER` means "to the end".
   */
  slice(
    x: Value,
    starts: IntsOrValue,
    ends: IntsOrValue,
    axes?: IntsOrValue,
    steps?: IntsOrValue,
  ): Value {
    const inputs = [x, this.ints(starts), this.ints(ends)];
    if (axes !== undefined || steps !== undefined) {
      inputs.push(
        axes !== undefined ? this.ints(axes) : this.ints(
          Array.from({ length: (starts as number[]).length }, (_, i) => i),
        ),
      );
    }
    if (steps !== undefined) inputs.push(this.ints(steps));
    return this.#one("Slice", inputs);
  }
  /** Rows of `data` along `axis` picked by `indices` (embedding lookup with axis 0). */
  gather(data: Value, indices: Value, axis = 0): Value {
    return this.#one("Gather", [data, indices], axis === 0 ? {} : { axis: attr.int(axis) });
  }
  /** Slices of `data` picked by index tuples: indices [..., k] address the first k axes. */
  gatherND(data: Value, indices: Value): Value {
    return this.#one("GatherND", [data, indices]);
  }
  /** Elements of `data` picked along `axis` by `indices` of the same rank. */
  gatherElements(data: Value, indices: Value, axis: number): Value {
    return this.#one("GatherElements", [data, indices], { axis: attr.int(axis) });
  }
  /** `data` with `updates` added (or written) at `indices` along `axis`. */
  scatterElements(
    data: Value,
    indices: Value,
    updates: Value,
    axis: number,
    reduction: "none" | "add" = "none",
  ): Value {
    const attrs: Attributes = { axis: attr.int(axis) };
    if (reduction !== "none") attrs.reduction = attr.string(reduction);
    return this.#one("ScatterElements", [data, indices, updates], attrs);
  }
  /** `data` with `updates` written (or added) at the index tuples `indices`. */
  scatterND(
    data: Value,
    indices: Value,
    updates: Value,
    reduction: "none" | "add" = "none",
  ): Value {
    const attrs: Attributes = reduction === "none" ? {} : { reduction: attr.string(reduction) };
    return this.#one("ScatterND", [data, indices, updates], attrs);
  }
  /** x broadcast to `shape`. */
  expand(x: Value, shape: IntsOrValue): Value {
    return this.#one("Expand", [x, this.ints(shape)]);
  }
  /** x repeated `repeats` times along each axis. */
  tile(x: Value, repeats: IntsOrValue): Value {
    return this.#one("Tile", [x, this.ints(repeats)]);
  }
  /** The shape of x as a 1-D int64 tensor. */
  shapeOf(x: Value): Value {
    return this.#one("Shape", [x]);
  }
  /** A tensor of the given shape (1-D int64 tensor) filled with `value`. */
  constantOfShape(shape: Value, value: number, dtype: DType = "float32"): Value {
    return this.#one("ConstantOfShape", [shape], {
      value: attr.tensor(tensorData(dtype, [1], [value])),
    });
  }
  /** [start, start + delta, ...) below `limit`; scalars of one dtype. */
  range(start: Value, limit: Value, delta: Value): Value {
    return this.#one("Range", [start, limit, delta]);
  }
  /** Indices of the non-zero elements: int64 [rank(x), N]. */
  nonZero(x: Value): Value {
    return this.#one("NonZero", [x]);
  }
  /** Running sum along `axis` (a scalar int tensor or number). */
  cumSum(
    x: Value,
    axis: number,
    options: { exclusive?: boolean; reverse?: boolean } = {},
  ): Value {
    const attrs: Attributes = {};
    if (options.exclusive) attrs.exclusive = attr.int(1);
    if (options.reverse) attrs.reverse = attr.int(1);
    return this.#one("CumSum", [x, this.constant(axis, "int64")], attrs);
  }

  // ---- reductions and normalization -------------------------------------------------------------

  #reduce(op: string, x: Value, axes: readonly number[] | undefined, keepdims: boolean) {
    const attrs: Attributes = { keepdims: attr.int(keepdims ? 1 : 0) };
    return this.#one(op, axes === undefined ? [x] : [x, this.ints(axes)], attrs);
  }
  /** Sum over `axes` (all when undefined). */
  reduceSum(x: Value, axes?: readonly number[], keepdims = true): Value {
    return this.#reduce("ReduceSum", x, axes, keepdims);
  }
  /** Mean over `axes` (all when undefined). */
  reduceMean(x: Value, axes?: readonly number[], keepdims = true): Value {
    return this.#reduce("ReduceMean", x, axes, keepdims);
  }
  /** Maximum over `axes` (all when undefined). */
  reduceMax(x: Value, axes?: readonly number[], keepdims = true): Value {
    return this.#reduce("ReduceMax", x, axes, keepdims);
  }
  /** log(sum(exp(x))) over `axes`. */
  reduceLogSumExp(x: Value, axes?: readonly number[], keepdims = true): Value {
    return this.#reduce("ReduceLogSumExp", x, axes, keepdims);
  }
  /** Indices of the maxima along `axis` (int64). */
  argMax(x: Value, axis: number, keepdims = true): Value {
    return this.#one("ArgMax", [x], { axis: attr.int(axis), keepdims: attr.int(keepdims ? 1 : 0) });
  }
  /** The k largest values along `axis` and their int64 indices. */
  topK(x: Value, k: number, axis = -1): [Value, Value] {
    const [v, i] = this.node("TopK", [x, this.constant([k], "int64")], { axis: attr.int(axis) });
    return [v, i];
  }
  /** Softmax along `axis`. */
  softmax(x: Value, axis = -1): Value {
    return this.#one("Softmax", [x], { axis: attr.int(axis) });
  }
  /** Log-softmax along `axis`. */
  logSoftmax(x: Value, axis = -1): Value {
    return this.#one("LogSoftmax", [x], { axis: attr.int(axis) });
  }

  /**
   * LayerNormalization over the axes from `axis` on (default the last).
   * {@linkcode Graph.layerNormWithStats} also returns the mean and inverse standard deviation
   * (shape of x with the normalized axes set to 1), which a backward pass can reuse.
   */
  layerNorm(
    x: Value,
    scale: Value,
    bias: Value | null,
    options: { epsilon?: number; axis?: number } = {},
  ): Value {
    return this.#one("LayerNormalization", [x, scale, bias], this.#lnAttrs(x, options));
  }

  /**
   * {@linkcode Graph.layerNorm} that also returns [mean, invStdDev] (shape of x with the
   * normalized axes set to 1).
   */
  layerNormWithStats(
    x: Value,
    scale: Value,
    bias: Value | null,
    options: { epsilon?: number; axis?: number } = {},
  ): [Value, Value, Value] {
    const [y, mean, invStd] = this.node(
      "LayerNormalization",
      [x, scale, bias],
      this.#lnAttrs(x, options),
      { outputs: 3 },
    );
    return [y, mean, invStd];
  }

  #lnAttrs(x: Value, options: { epsilon?: number; axis?: number }): Attributes {
    // onnxruntime computes the statistics in float32 even for float64 inputs (it has no kernel
    // for stash_type double): decompose the normalization where full precision matters.
    void x;
    return {
      axis: attr.int(options.axis ?? -1),
      epsilon: attr.float(options.epsilon ?? 1e-5),
    };
  }
}
