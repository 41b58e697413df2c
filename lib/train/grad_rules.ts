/**
 * The gradient rules of reverse-mode differentiation: ONE table, {@linkcode GRAD_RULES}, keyed by
 * ONNX operator type, one small function per operator. A rule sees the forward node (its inputs,
 * outputs and attributes), the gradients flowing into its outputs, and which inputs want a
 * gradient; it emits backward nodes in standard ONNX operators through the same {@linkcode Graph}
 * builder and returns one gradient per input (or null). Adding an operator is adding one entry.
 *
 * Broadcasting is undone in one place, {@linkcode unbroadcast}: elementwise rules compute the
 * gradient at the output's shape and hand it there. Shape-only operators (Reshape, Squeeze,
 * Unsqueeze, Flatten) share one rule that reshapes the gradient back.
 *
 * Not here: which nodes are differentiated and how gradients are summed; that is `autodiff.ts`.
 *
 * @module
 */

import {
  attr,
  type DType,
  floatAttr,
  type Graph,
  intAttr,
  intsAttr,
  isFloat,
  type Node,
  type Value,
} from "../onnx/graph.ts";
import { isStatic, normAxis, sameDim } from "../onnx/shape.ts";

/** What a gradient rule sees of one forward node. */
export interface GradContext {
  /** The graph the backward nodes go into. */
  g: Graph;
  /** The forward node. */
  node: Node;
  /** Its inputs (null for an absent optional input). */
  inputs: (Value | null)[];
  /** Its outputs. */
  outputs: Value[];
  /** The gradient flowing into each output; null where none does (an unused output). */
  grads: (Value | null)[];
  /** Which inputs want a gradient (float inputs that depend on a trainable tensor). */
  needs: boolean[];
}

/** A gradient rule: the gradient of each input (null or undefined where none is wanted). */
export type GradRule = (ctx: GradContext) => (Value | null | undefined)[];

// ---- helpers shared by the rules ---------------------------------------------------------------

/** A scalar constant of `dtype` (shared by the graph). */
function scalar(g: Graph, value: number, dtype: DType): Value {
  return g.constant(value, dtype);
}

/** The gradient of output `i`, which must exist (rules call it for outputs that matter). */
function grad(ctx: GradContext, i = 0): Value {
  const dy = ctx.grads[i];
  if (!dy) throw new Error(`${ctx.node.name}: no gradient reaches output ${i}`);
  return dy;
}

/** Input `i`, which must be present. */
function inp(ctx: GradContext, i: number): Value {
  const v = ctx.inputs[i];
  if (!v) throw new Error(`${ctx.node.name}: input ${i} is absent`);
  return v;
}

/** A tensor of zeros shaped like `like` (static shapes become a constant shape). */
export function zerosLike(g: Graph, like: Value): Value {
  const shape = isStatic(like.shape) ? g.ints(like.shape as number[]) : g.shapeOf(like);
  return g.constantOfShape(shape, 0, like.dtype);
}

/**
 * `v` reshaped to `like`'s shape: a constant target when static, else `Shape(like)` (which keeps
 * the runtime shape, symbolic dims included).
 */
export function reshapeLike(g: Graph, v: Value, like: Value): Value {
  if (v.shape.length === like.shape.length && v.shape.every((d, i) => sameDim(d, like.shape[i]))) {
    return v;
  }
  const target = isStatic(like.shape) ? g.ints(like.shape as number[]) : g.shapeOf(like);
  const out = g.reshape(v, target);
  return g.refine(out, like.shape);
}

/**
 * Undoes numpy broadcasting: sums `dy` (shaped like the broadcast result) over the axes along
 * which `x` was stretched (leading axes `x` lacks, and axes where `x` has a literal 1) and
 * reshapes the sum to `x`'s shape. Returns `dy` itself when nothing was broadcast.
 *
 * Broadcast axes are read from the static shapes: a symbolic dimension is taken to be as long
 * as the result's (the graph builder keeps every literal 1, so this is exact for graphs whose
 * symbolic dimensions are not 1 only at run time).
 */
export function unbroadcast(g: Graph, dy: Value, x: Value): Value {
  const out = dy.shape;
  const lead = out.length - x.shape.length;
  if (lead < 0) throw new Error(`unbroadcast: ${x.name} has a higher rank than its gradient`);
  const axes: number[] = [];
  for (let i = 0; i < out.length; i++) {
    if (i < lead) axes.push(i);
    else if (x.shape[i - lead] === 1 && out[i] !== 1) axes.push(i);
  }
  if (axes.length === 0) return dy;
  const summed = g.reduceSum(dy, axes, true);
  if (lead === 0) return summed;
  if (isStatic(x.shape)) return g.reshape(summed, x.shape as number[]);
  return g.squeeze(summed, axes.slice(0, lead));
}

/**
 * `x` with its axes permuted by `perm`. When `x` is itself a Transpose's output the two
 * permutations are composed into one node, and a composition that is the identity gives the
 * Transpose's input back: the backward of `q @ k^T` multiplies by `k` itself, no copy.
 */
export function transposed(g: Graph, x: Value, perm: readonly number[]): Value {
  let source = x;
  let total = [...perm];
  const producer = g.producer(x.name);
  if (producer?.op === "Transpose") {
    const inner = g.value(producer.inputs[0]);
    const first = intsAttr(producer, "perm") ??
      inner.shape.map((_, i) => inner.shape.length - 1 - i);
    // y = transpose(inner, first); z = transpose(y, perm): z axis i is inner axis first[perm[i]].
    total = perm.map((p) => first[p]);
    source = inner;
  }
  if (total.every((p, i) => p === i)) return source;
  return g.transpose(source, total);
}

/** The last two axes of `x` swapped. */
function swapLast(g: Graph, x: Value): Value {
  const r = x.shape.length;
  const perm = Array.from({ length: r }, (_, i) => i);
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return transposed(g, x, perm);
}

/** The normalized `axes` of a Reduce node (input 1 or attribute), or undefined for "all". */
function reduceAxes(ctx: GradContext): number[] | undefined {
  const x = inp(ctx, 0);
  const rank = x.shape.length;
  let axes: readonly number[] | undefined;
  if (ctx.inputs[1]) {
    axes = ctx.g.constantInts(ctx.inputs[1].name);
    if (!axes) throw new Error(`${ctx.node.name}: reduction axes must be a constant`);
  } else axes = intsAttr(ctx.node, "axes");
  if (axes === undefined || axes.length === 0) {
    if (intAttr(ctx.node, "noop_with_empty_axes", 0) === 1) return [];
    return Array.from({ length: rank }, (_, i) => i);
  }
  return axes.map((a) => normAxis(a, rank, `${ctx.node.name} axis`));
}

/**
 * `dy` of a reduction brought back to the input's shape: the removed axes restored as 1s (when
 * keepdims was 0), then expanded.
 */
function expandReduced(ctx: GradContext, dy: Value, axes: number[]): Value {
  const { g } = ctx;
  const x = inp(ctx, 0);
  let kept = dy;
  if (intAttr(ctx.node, "keepdims", 1) === 0 && axes.length > 0) kept = g.unsqueeze(dy, axes);
  const target = isStatic(x.shape) ? g.ints(x.shape as number[]) : g.shapeOf(x);
  return g.refine(g.expand(kept, target), x.shape);
}

/** Number of elements reduced, as a scalar of `dtype` (static when possible). */
function reducedCount(ctx: GradContext, axes: number[], dtype: DType): Value {
  const { g } = ctx;
  const x = inp(ctx, 0);
  const dims = axes.map((a) => x.shape[a]);
  if (dims.every((d) => typeof d === "number")) {
    return scalar(g, (dims as number[]).reduce((a, b) => a * b, 1), dtype);
  }
  const dimsOf = g.gather(g.shapeOf(x), g.ints(axes));
  const [count] = g.node("ReduceProd", [dimsOf], { keepdims: attr.int(0) });
  return g.cast(count, dtype);
}

/** The elementwise rule of a unary op: dx = dy * f'(x, y), from `derivative`. */
function unary(derivative: (ctx: GradContext, dy: Value) => Value): GradRule {
  return (ctx) => [ctx.needs[0] ? derivative(ctx, grad(ctx)) : null];
}

/** Whether inputs 0 and 1 of a binary node want gradients; shared by Add/Sub/Mul/Div/Pow. */
function binary(
  ctx: GradContext,
  da: () => Value,
  db: () => Value,
): (Value | null)[] {
  const [a, b] = [inp(ctx, 0), inp(ctx, 1)];
  return [
    ctx.needs[0] ? unbroadcast(ctx.g, da(), a) : null,
    ctx.needs[1] ? unbroadcast(ctx.g, db(), b) : null,
  ];
}

/** The inverse of a permutation. */
function inverse(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

/** The gradient of a shape-only operator: the output gradient reshaped to the input's shape. */
const reshapeBack: GradRule = (ctx) => [
  ctx.needs[0] ? reshapeLike(ctx.g, grad(ctx), inp(ctx, 0)) : null,
];

/** The concrete values of a small int constant input, or an error naming the node. */
function constInts(ctx: GradContext, i: number, what: string): number[] {
  const v = ctx.inputs[i];
  const values = v ? ctx.g.constantInts(v.name) : undefined;
  if (!values) throw new Error(`${ctx.node.name}: ${what} must be a constant to differentiate`);
  return values;
}

/** Int64 indices (ScatterND and ScatterElements take only int64). */
function int64(g: Graph, indices: Value): Value {
  return indices.dtype === "int64" ? indices : g.cast(indices, "int64");
}

// ---- the rules ---------------------------------------------------------------------------------

function matmulGrads(ctx: GradContext): (Value | null)[] {
  const { g, needs } = ctx;
  const [a, b] = [inp(ctx, 0), inp(ctx, 1)];
  const dy = grad(ctx);
  if (a.shape.length < 2 || b.shape.length < 2) {
    throw new Error(`${ctx.node.name}: MatMul gradient needs operands of rank >= 2`);
  }
  let da: Value | null = null;
  let db: Value | null = null;
  if (needs[0]) {
    // da: [..., M, K] = dy [..., M, N] @ b^T [..., N, K]
    da = unbroadcast(g, g.matmul(dy, swapLast(g, b)), a);
  }
  if (needs[1]) {
    const k = a.shape[a.shape.length - 1];
    const n = b.shape[b.shape.length - 1];
    if (
      b.shape.length === 2 && a.shape.length > 2 && typeof k === "number" && typeof n === "number"
    ) {
      // A shared weight b [K, N] under batched a [..., M, K]: one Gemm over every row,
      // db = a2^T [K, rows] @ dy2 [rows, N], instead of a batched product summed afterwards.
      db = g.gemm(g.reshape(a, [-1, k]), g.reshape(dy, [-1, n]), null, { transA: true });
    } else {
      // db: [..., K, N] = a^T [..., K, M] @ dy [..., M, N]
      db = unbroadcast(g, g.matmul(swapLast(g, a), dy), b);
    }
  }
  return [da, db];
}

function gemmGrads(ctx: GradContext): (Value | null)[] {
  const { g, needs, node } = ctx;
  const [a, b, c] = [inp(ctx, 0), inp(ctx, 1), ctx.inputs[2]];
  const dy = grad(ctx);
  const transA = intAttr(node, "transA", 0) === 1;
  const transB = intAttr(node, "transB", 0) === 1;
  const alpha = floatAttr(node, "alpha", 1);
  const beta = floatAttr(node, "beta", 1);
  const o = { alpha };
  let da: Value | null = null;
  let db: Value | null = null;
  // Y = A' B' with A' = transA ? A^T : A, B' likewise; dA' = dY B'^T, dB' = A'^T dY.
  if (needs[0]) {
    da = !transA
      ? g.gemm(dy, b, null, { ...o, transB: !transB })
      : g.gemm(b, dy, null, { ...o, transA: transB, transB: true });
  }
  if (needs[1]) {
    db = !transB
      ? g.gemm(a, dy, null, { ...o, transA: !transA })
      : g.gemm(dy, a, null, { ...o, transA: true, transB: transA });
  }
  let dc: Value | null = null;
  if (c && needs[2]) {
    dc = unbroadcast(g, beta === 1 ? dy : g.mul(dy, scalar(g, beta, dy.dtype)), c);
  }
  return [da, db, dc];
}

function gatherGrads(ctx: GradContext): (Value | null)[] {
  const { g, node } = ctx;
  if (!ctx.needs[0]) return [null, null];
  const [data, indices] = [inp(ctx, 0), inp(ctx, 1)];
  const axis = normAxis(intAttr(node, "axis", 0), data.shape.length, `${node.name} axis`);
  if (axis !== 0) throw new Error(`${node.name}: Gather gradient supports axis 0 only`);
  // Rows picked several times get the sum of their gradients: ScatterElements with reduction
  // add into zeros [rows, D], every element of a gradient row addressed by its row's index. Not
  // ScatterND: onnxruntime's CPU kernel spreads ScatterND's updates over its threads with no
  // synchronisation, so two threads adding into one row race (lost updates, and results that
  // change from run to run); its ScatterElements is one sequential loop.
  const rowShape = data.shape.slice(1);
  if (!isStatic(rowShape)) throw new Error(`${node.name}: Gather gradient needs static row dims`);
  const width = (rowShape as number[]).reduce((a, b) => a * b, 1);
  const rows = g.reshape(grad(ctx), [-1, width]); // [K, D]
  const idx = g.expand(g.reshape(int64(g, indices), [-1, 1]), g.shapeOf(rows)); // [K, D]
  const summed = g.scatterElements(g.reshape(zerosLike(g, data), [-1, width]), idx, rows, 0, "add");
  return [reshapeLike(g, summed, data), null];
}

function gatherElementsGrads(ctx: GradContext): (Value | null)[] {
  const { g, node } = ctx;
  if (!ctx.needs[0]) return [null, null];
  const [data, indices] = [inp(ctx, 0), inp(ctx, 1)];
  const axis = intAttr(node, "axis", 0);
  return [g.scatterElements(zerosLike(g, data), int64(g, indices), grad(ctx), axis, "add"), null];
}

function gatherNDGrads(ctx: GradContext): (Value | null)[] {
  const { g, node } = ctx;
  if (!ctx.needs[0]) return [null, null];
  if (intAttr(node, "batch_dims", 0) !== 0) {
    throw new Error(`${node.name}: GatherND gradient supports batch_dims 0 only`);
  }
  const [data, indices] = [inp(ctx, 0), inp(ctx, 1)];
  // Not ScatterND (its CPU kernel adds repeated index tuples from several threads unsynchronised,
  // see gatherGrads): the tuples become row numbers of data seen as [prod(dims < k), rest], and
  // the rows are added as Gather's are, with ScatterElements.
  const k = indices.shape[indices.shape.length - 1];
  const [leading, trailing] = [data.shape.slice(0, Number(k)), data.shape.slice(Number(k))];
  if (typeof k !== "number" || !isStatic(leading) || !isStatic(trailing)) {
    throw new Error(`${node.name}: GatherND gradient needs static data dims`);
  }
  const [lead, rest]: (readonly number[])[] = [leading, trailing];
  const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
  const strides = lead.map((_, i) => product(lead.slice(i + 1)));
  const width = product(rest);
  const idx = g.reshape(int64(g, indices), [-1, k]); // [K, k]
  const dims = g.ints(lead);
  const wrapped = g.node("Mod", [g.add(idx, dims), dims], { fmod: attr.int(0) }, {
    infer: [{ dtype: "int64", shape: idx.shape }],
  })[0]; // negative indices count from the end
  const row = g.reduceSum(g.mul(wrapped, g.ints(strides)), [1], true); // [K, 1]
  const rows = g.reshape(grad(ctx), [-1, width]); // [K, D]
  const zeros = g.constantOfShape(g.ints([product(lead), width]), 0, data.dtype);
  const summed = g.scatterElements(zeros, g.expand(row, g.shapeOf(rows)), rows, 0, "add");
  return [reshapeLike(g, summed, data), null];
}

function sliceGrads(ctx: GradContext): (Value | null)[] {
  const { g } = ctx;
  if (!ctx.needs[0]) return [null];
  const x = inp(ctx, 0);
  const starts = constInts(ctx, 1, "Slice starts");
  const ends = constInts(ctx, 2, "Slice ends");
  const axes = ctx.inputs[3] ? constInts(ctx, 3, "Slice axes") : starts.map((_, i) => i);
  const steps = ctx.inputs[4] ? constInts(ctx, 4, "Slice steps") : starts.map(() => 1);
  const rank = x.shape.length;
  const pads = new Array<number>(2 * rank).fill(0);
  for (let i = 0; i < axes.length; i++) {
    const axis = normAxis(axes[i], rank, `${ctx.node.name} axis`);
    const dim = x.shape[axis];
    if (steps[i] !== 1) throw new Error(`${ctx.node.name}: Slice gradient needs step 1`);
    if (typeof dim !== "number") {
      // Symbolic dim: exact only for slices that run to the end.
      if (starts[i] >= 0 && ends[i] >= 2 ** 31 - 1) {
        pads[axis] = starts[i];
        continue;
      }
      throw new Error(`${ctx.node.name}: Slice gradient needs a static dim on axis ${axis}`);
    }
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
    const s = clamp(starts[i]);
    const e = Math.max(s, clamp(ends[i]));
    pads[axis] = s;
    pads[rank + axis] = dim - e;
  }
  const [dx] = g.node("Pad", [grad(ctx), g.ints(pads)], { mode: attr.string("constant") }, {
    infer: [{ dtype: x.dtype, shape: x.shape }],
  });
  return [dx];
}

function concatGrads(ctx: GradContext): (Value | null)[] {
  const { g, node } = ctx;
  const xs = ctx.inputs.map((v) => v!);
  const axis = normAxis(intAttr(node, "axis", 0), xs[0].shape.length, `${node.name} axis`);
  const sizes = xs.map((v) => v.shape[axis]);
  if (!sizes.every((d) => typeof d === "number")) {
    throw new Error(`${node.name}: Concat gradient needs static sizes along axis ${axis}`);
  }
  const parts = g.split(grad(ctx), sizes as number[], axis);
  return parts.map((p, i) => (ctx.needs[i] ? p : null));
}

function splitGrads(ctx: GradContext): (Value | null)[] {
  const { g, node } = ctx;
  if (!ctx.needs[0]) return [null];
  const x = inp(ctx, 0);
  const axis = normAxis(intAttr(node, "axis", 0), x.shape.length, `${node.name} axis`);
  const parts = ctx.outputs.map((out, i) => ctx.grads[i] ?? zerosLike(g, out));
  return [g.refine(g.concat(parts, axis), x.shape), null];
}

function softmaxGrads(ctx: GradContext): (Value | null)[] {
  const { g, node } = ctx;
  if (!ctx.needs[0]) return [null];
  const y = ctx.outputs[0];
  const dy = grad(ctx);
  const axis = normAxis(intAttr(node, "axis", -1), y.shape.length, `${node.name} axis`);
  // dx = y * (dy - sum(dy * y))
  const dot = g.reduceSum(g.mul(dy, y), [axis], true);
  return [g.mul(y, g.sub(dy, dot))];
}

function logSoftmaxGrads(ctx: GradContext): (Value | null)[] {
  const { g, node } = ctx;
  if (!ctx.needs[0]) return [null];
  const y = ctx.outputs[0];
  const dy = grad(ctx);
  const axis = normAxis(intAttr(node, "axis", -1), y.shape.length, `${node.name} axis`);
  // dx = dy - softmax(x) * sum(dy)
  const scatter = zeroScatterAdd(g, dy, axis);
  if (scatter) {
    // dy is GatherElements' gradient (a cross-entropy's: a few entries a row). Then dx is the
    // same scatter-add onto -softmax(x) * sum(updates): the zeros, the reduction over dy and the
    // subtraction are never materialised (3 passes over the logits instead of 6; the unused
    // scatter is pruned).
    const { indices, updates } = scatter;
    const data = g.mul(g.exp(y), g.neg(g.reduceSum(updates, [axis], true)));
    return [g.scatterElements(data, indices, updates, axis, "add")];
  }
  return [g.sub(dy, g.mul(g.exp(y), g.reduceSum(dy, [axis], true)))];
}

/**
 * The indices and updates when `v` is ScatterElements(zeros, indices, updates, axis, add): what
 * GatherElements' rule emits. Undefined for anything else.
 */
function zeroScatterAdd(
  g: Graph,
  v: Value,
  axis: number,
): { indices: Value; updates: Value } | undefined {
  const node = g.producer(v.name);
  if (node?.op !== "ScatterElements" || node.inputs.length !== 3) return undefined;
  const reduction = node.attrs.reduction;
  if (reduction?.type !== "string" || reduction.value !== "add") return undefined;
  if (normAxis(intAttr(node, "axis", 0), v.shape.length, `${node.name} axis`) !== axis) {
    return undefined;
  }
  const zeros = g.producer(node.inputs[0]);
  const fill = zeros?.attrs.value;
  if (zeros?.op !== "ConstantOfShape" || fill?.type !== "tensor") return undefined;
  if (!Array.from(fill.value.data as ArrayLike<number | bigint>).every((x) => Number(x) === 0)) {
    return undefined;
  }
  const indices = g.value(node.inputs[1]);
  // The fast path broadcasts sum(updates) against the data: only when the indices span it.
  if (indices.shape.some((d, i) => i !== axis && !sameDim(d, v.shape[i]))) return undefined;
  return { indices, updates: g.value(node.inputs[2]) };
}

/**
 * The tensor `v` expands when `v` is Expand(a, shape) with `shape` the shape of `like` (Shape(like),
 * or constant ints equal to like's static shape): what a reduction's rule emits for its input.
 * Then Mul(a, like) broadcasts to exactly Mul(v, like), element for element, without `v`.
 * Undefined for anything else.
 */
function expandedOnto(g: Graph, v: Value, like: Value): Value | undefined {
  const node = g.producer(v.name);
  if (node?.op !== "Expand") return undefined;
  const shape = g.producer(node.inputs[1]);
  const matches = shape?.op === "Shape" && shape.inputs[0] === like.name &&
      shape.attrs.start === undefined && shape.attrs.end === undefined ||
    isStatic(like.shape) &&
      sameInts(g.constantInts(node.inputs[1]), like.shape as readonly number[]);
  if (!matches) return undefined;
  const a = g.value(node.inputs[0]);
  // Mul broadcasts a against like: the same shape as the Expand's only if a has no more axes.
  return a.shape.length <= like.shape.length ? a : undefined;
}

function sameInts(a: readonly number[] | undefined, b: readonly number[]): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

function layerNormGrads(ctx: GradContext): (Value | null)[] {
  const { g, node, needs } = ctx;
  const [x, scale, bias] = [inp(ctx, 0), inp(ctx, 1), ctx.inputs[2]];
  if (ctx.grads[1] || ctx.grads[2]) {
    throw new Error(`${node.name}: gradients through LayerNormalization's Mean/InvStdDev`);
  }
  const dy = grad(ctx);
  const rank = x.shape.length;
  const axis = normAxis(intAttr(node, "axis", -1), rank, `${node.name} axis`);
  const axes = Array.from({ length: rank - axis }, (_, i) => axis + i);
  // The statistics the forward node computed when it exposes them (float32 graphs); recomputed
  // otherwise, and for float64 graphs, whose node stashes them at float32 precision (the ONNX
  // default stash_type 1), too coarse for a float64 gradient check.
  let mean: Value;
  let invStd: Value;
  if (ctx.outputs.length >= 3 && x.dtype === "float32") {
    [mean, invStd] = [ctx.outputs[1], ctx.outputs[2]];
  } else {
    const eps = floatAttr(node, "epsilon", 1e-5);
    mean = g.reduceMean(x, axes, true);
    const centered = g.sub(x, mean);
    const variance = g.reduceMean(g.mul(centered, centered), axes, true);
    invStd = g.reciprocal(g.sqrt(g.add(variance, scalar(g, eps, x.dtype))));
  }
  // xhat: [..., N] normalized input; dxhat = dy * scale
  const xhat = g.mul(g.sub(x, mean), invStd);
  let dx: Value | null = null;
  if (needs[0]) {
    const dxhat = g.mul(dy, scale);
    // dx = invStd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    const m1 = g.reduceMean(dxhat, axes, true);
    const m2 = g.reduceMean(g.mul(dxhat, xhat), axes, true);
    dx = g.mul(invStd, g.sub(g.sub(dxhat, m1), g.mul(xhat, m2)));
  }
  const dScale = needs[1] ? unbroadcast(g, g.mul(dy, xhat), scale) : null;
  const dBias = bias && needs[2] ? unbroadcast(g, dy, bias) : null;
  return [dx, dScale, dBias];
}

function whereGrads(ctx: GradContext): (Value | null)[] {
  const { g, needs } = ctx;
  const [cond, a, b] = [inp(ctx, 0), inp(ctx, 1), inp(ctx, 2)];
  const dy = grad(ctx);
  const zero = scalar(g, 0, dy.dtype);
  return [
    null,
    needs[1] ? unbroadcast(g, g.where(cond, dy, zero), a) : null,
    needs[2] ? unbroadcast(g, g.where(cond, zero, dy), b) : null,
  ];
}

function reduceSumGrads(ctx: GradContext): (Value | null)[] {
  if (!ctx.needs[0]) return [null];
  const axes = reduceAxes(ctx)!;
  return [expandReduced(ctx, grad(ctx), axes)];
}

function reduceMeanGrads(ctx: GradContext): (Value | null)[] {
  const { g } = ctx;
  if (!ctx.needs[0]) return [null];
  const axes = reduceAxes(ctx)!;
  const dy = grad(ctx);
  const scaled = g.div(dy, reducedCount(ctx, axes, dy.dtype));
  return [expandReduced(ctx, scaled, axes)];
}

function reduceLogSumExpGrads(ctx: GradContext): (Value | null)[] {
  const { g } = ctx;
  if (!ctx.needs[0]) return [null];
  const axes = reduceAxes(ctx)!;
  const x = inp(ctx, 0);
  // dx = dy * exp(x - y), y broadcast back over the reduced axes
  const y = expandReduced(ctx, ctx.outputs[0], axes);
  return [g.mul(expandReduced(ctx, grad(ctx), axes), g.exp(g.sub(x, y)))];
}

function castGrads(ctx: GradContext): (Value | null)[] {
  const x = inp(ctx, 0);
  if (!ctx.needs[0] || !isFloat(x.dtype)) return [null];
  const dy = grad(ctx);
  return [dy.dtype === x.dtype ? dy : ctx.g.cast(dy, x.dtype)];
}

function maxMinGrads(ctx: GradContext): (Value | null)[] {
  const { g, node } = ctx;
  if (ctx.inputs.length !== 2) throw new Error(`${node.name}: ${node.op} gradient needs 2 inputs`);
  const [a, b] = [inp(ctx, 0), inp(ctx, 1)];
  const y = ctx.outputs[0];
  const dy = grad(ctx);
  const zero = scalar(g, 0, dy.dtype);
  // Ties go to the first input, so the gradient is counted once.
  const fromA = g.equal(a, y);
  return [
    ctx.needs[0] ? unbroadcast(g, g.where(fromA, dy, zero), a) : null,
    ctx.needs[1] ? unbroadcast(g, g.where(fromA, zero, dy), b) : null,
  ];
}

function clipGrads(ctx: GradContext): (Value | null)[] {
  const { g } = ctx;
  if (!ctx.needs[0]) return [null];
  const [x, lo, hi] = [inp(ctx, 0), ctx.inputs[1], ctx.inputs[2]];
  const dy = grad(ctx);
  let inside: Value | null = null;
  if (lo) inside = g.greaterOrEqual(x, lo);
  if (hi) {
    const below = g.lessOrEqual(x, hi);
    inside = inside ? g.and(inside, below) : below;
  }
  return [inside ? g.where(inside, dy, scalar(g, 0, dy.dtype)) : dy, null, null];
}

function expandGrads(ctx: GradContext): (Value | null)[] {
  return [ctx.needs[0] ? unbroadcast(ctx.g, grad(ctx), inp(ctx, 0)) : null, null];
}

function transposeGrads(ctx: GradContext): (Value | null)[] {
  if (!ctx.needs[0]) return [null];
  const x = inp(ctx, 0);
  const perm = intsAttr(ctx.node, "perm") ?? x.shape.map((_, i) => x.shape.length - 1 - i);
  return [transposed(ctx.g, grad(ctx), inverse(perm))];
}

function powGrads(ctx: GradContext): (Value | null)[] {
  const { g } = ctx;
  const [a, b] = [inp(ctx, 0), inp(ctx, 1)];
  const y = ctx.outputs[0];
  const dy = grad(ctx);
  const one = scalar(g, 1, a.dtype);
  // An exponent of another dtype is cast to a's for the derivative.
  const bf = b.dtype === a.dtype ? b : g.cast(b, a.dtype);
  return binary(
    ctx,
    // d/da a^b = b * a^(b-1)
    () => g.mul(dy, g.mul(bf, g.pow(a, g.sub(bf, one)))),
    // d/db a^b = a^b * ln a
    () => g.mul(dy, g.mul(y, g.log(a))),
  );
}

/**
 * Gelu (opset 20): dx = dy gelu'(x), in as few passes over x as the formula allows (training's
 * activations are the largest elementwise tensors of a step).
 * - `tanh`: gelu(x) = x s with s = sigmoid(z), z = k x (1 + b x^2), k = 2 sqrt(2/pi), b = 0.044715
 *   (0.5 (1 + tanh u) is sigmoid(2u)); gelu'(x) = s + y (1 - s) (k + 3 k b x^2), y the output.
 * - `none`: gelu(x) = x Phi(x); gelu'(x) = Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
 */
function geluGrad(ctx: GradContext, dy: Value): Value {
  const { g } = ctx;
  const x = inp(ctx, 0);
  const c = (v: number) => scalar(g, v, dy.dtype);
  const mode = ctx.node.attrs.approximate;
  const approximate = mode === undefined ? "none" : mode.type === "string" ? mode.value : "";
  if (approximate !== "none" && approximate !== "tanh") {
    throw new Error(`${ctx.node.name}: Gelu approximate must be "none" or "tanh"`);
  }
  const x2 = g.mul(x, x);
  if (approximate === "tanh") {
    const k = 2 * Math.sqrt(2 / Math.PI), b = 0.044715;
    const s = g.sigmoid(g.mul(x, g.add(g.mul(x2, c(k * b)), c(k))));
    const q = g.add(g.mul(x2, c(3 * k * b)), c(k));
    const slope = g.add(s, g.mul(g.mul(ctx.outputs[0], g.sub(c(1), s)), q));
    return g.mul(dy, slope);
  }
  const cdf = g.mul(g.add(g.erf(g.mul(x, c(Math.SQRT1_2))), c(1)), c(0.5));
  const pdf = g.mul(g.exp(g.mul(x2, c(-0.5))), c(1 / Math.sqrt(2 * Math.PI)));
  return g.mul(dy, g.add(cdf, g.mul(x, pdf)));
}

/**
 * The gradient rules, keyed by operator type (default ONNX domain). Each returns one gradient
 * per input of the node, null where none is wanted or the input is not differentiable.
 */
export const GRAD_RULES: Record<string, GradRule> = {
  Identity: (ctx) => [ctx.needs[0] ? grad(ctx) : null],
  Cast: castGrads,
  Reshape: reshapeBack,
  Flatten: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,
  Transpose: transposeGrads,
  Expand: expandGrads,
  Slice: sliceGrads,
  Concat: concatGrads,
  Split: splitGrads,
  Gather: gatherGrads,
  GatherElements: gatherElementsGrads,
  GatherND: gatherNDGrads,

  Add: (ctx) => binary(ctx, () => grad(ctx), () => grad(ctx)),
  Sub: (ctx) => binary(ctx, () => grad(ctx), () => ctx.g.neg(grad(ctx))),
  Mul: (ctx) =>
    binary(
      ctx,
      () => ctx.g.mul(grad(ctx), inp(ctx, 1)),
      () => ctx.g.mul(grad(ctx), inp(ctx, 0)),
    ),
  // y = a / b: da = dy / b, db = -dy * y / b
  Div: (ctx) =>
    binary(
      ctx,
      () => ctx.g.div(grad(ctx), inp(ctx, 1)),
      () => ctx.g.neg(ctx.g.div(ctx.g.mul(grad(ctx), ctx.outputs[0]), inp(ctx, 1))),
    ),
  Pow: powGrads,
  Sum: (ctx) => ctx.inputs.map((x, i) => (ctx.needs[i] ? unbroadcast(ctx.g, grad(ctx), x!) : null)),
  Max: maxMinGrads,
  Min: maxMinGrads,
  Where: whereGrads,
  Clip: clipGrads,

  Neg: unary((ctx, dy) => ctx.g.neg(dy)),
  // y = sqrt x: dx = dy / (2 y)
  Sqrt: unary((ctx, dy) => ctx.g.div(dy, ctx.g.mul(ctx.outputs[0], scalar(ctx.g, 2, dy.dtype)))),
  // y = 1 / x: dx = -dy y^2
  Reciprocal: unary((ctx, dy) => {
    const y = ctx.outputs[0];
    return ctx.g.neg(ctx.g.mul(dy, ctx.g.mul(y, y)));
  }),
  // dy * exp(x), with dy's broadcast left to the Mul when dy only expands a reduction's
  // gradient back onto this output (a logsumexp: one [M, V] tensor fewer, the same products).
  Exp: unary((ctx, dy) => ctx.g.mul(expandedOnto(ctx.g, dy, ctx.outputs[0]) ?? dy, ctx.outputs[0])),
  Log: unary((ctx, dy) => ctx.g.div(dy, inp(ctx, 0))),
  // y = tanh x: dx = dy (1 - y^2)
  Tanh: unary((ctx, dy) => {
    const { g } = ctx;
    const y = ctx.outputs[0];
    return g.mul(dy, g.sub(scalar(g, 1, dy.dtype), g.mul(y, y)));
  }),
  // y = sigmoid x: dx = dy y (1 - y)
  Sigmoid: unary((ctx, dy) => {
    const { g } = ctx;
    const y = ctx.outputs[0];
    return g.mul(dy, g.mul(y, g.sub(scalar(g, 1, dy.dtype), y)));
  }),
  Relu: unary((ctx, dy) =>
    ctx.g.where(
      ctx.g.greater(inp(ctx, 0), scalar(ctx.g, 0, dy.dtype)),
      dy,
      scalar(ctx.g, 0, dy.dtype),
    )
  ),
  // y = erf x: dx = dy 2/sqrt(pi) exp(-x^2)
  Erf: unary((ctx, dy) => {
    const { g } = ctx;
    const x = inp(ctx, 0);
    const bell = g.exp(g.neg(g.mul(x, x)));
    return g.mul(dy, g.mul(bell, scalar(g, 2 / Math.sqrt(Math.PI), dy.dtype)));
  }),
  Abs: unary((ctx, dy) => ctx.g.mul(dy, ctx.g.node("Sign", [inp(ctx, 0)])[0])),
  Gelu: unary(geluGrad),

  MatMul: matmulGrads,
  Gemm: gemmGrads,
  Softmax: softmaxGrads,
  LogSoftmax: logSoftmaxGrads,
  LayerNormalization: layerNormGrads,
  ReduceSum: reduceSumGrads,
  ReduceMean: reduceMeanGrads,
  ReduceLogSumExp: reduceLogSumExpGrads,
};
