/**
 * Static dtype and shape inference for the graph builder: one rule per operator in
 * {@linkcode SHAPE_RULES}, so supporting a new operator is adding one entry. Rules see the input
 * tensors (absent optionals are undefined), the attributes, and the values of int constant inputs
 * (for Reshape targets, Slice bounds, axes). Where a size cannot be known statically the rule
 * gives a fresh symbol; ranks and literal 1s are always kept.
 *
 * @module
 */

import {
  type Attributes,
  type DType,
  dtypeOfOnnx,
  intAttr as readInt,
  intsAttr as readInts,
  type Value,
} from "./types.ts";
import {
  broadcastShapes,
  type Dim,
  divDims,
  freshDim,
  isStatic,
  mulDims,
  normAxis,
  type Shape,
  show,
} from "./shape.ts";

/** What a shape rule sees of the node being added. */
export interface InferContext {
  /** The input tensors; undefined for an absent optional input. */
  inputs: (Value | undefined)[];
  /** The node's attributes by name. */
  attrs: Attributes;
  /** The values of input `i` when it is an int constant (an initializer), else undefined. */
  constantInts(i: number): number[] | undefined;
  /** The operator, for messages. */
  opName: string;
}

/** An inferred output: dtype and shape. */
export interface OutputInfo {
  /** The output's element type. */
  dtype: DType;
  /** The output's static shape. */
  shape: Shape;
}

/** A shape rule: the outputs of one node of an operator. */
export type ShapeRule = (ctx: InferContext) => OutputInfo[];

function input(ctx: InferContext, i: number): Value {
  const v = ctx.inputs[i];
  if (!v) throw new Error(`${ctx.opName}: input ${i} is required`);
  return v;
}

// Shape rules read attributes as the node's own readers do (types.ts); messages name the op.
function intAttr(ctx: InferContext, name: string, fallback: number): number {
  return readInt({ name: ctx.opName, attrs: ctx.attrs }, name, fallback);
}

function intsAttr(ctx: InferContext, name: string): readonly number[] | undefined {
  return readInts({ name: ctx.opName, attrs: ctx.attrs }, name);
}

function sameAsInput(i = 0): ShapeRule {
  return (ctx) => {
    const x = input(ctx, i);
    return [{ dtype: x.dtype, shape: x.shape }];
  };
}

function broadcasting(resultType?: DType): ShapeRule {
  return (ctx) => {
    const xs = ctx.inputs.filter((v): v is Value => v !== undefined);
    const dtype = xs[0].dtype;
    for (const v of xs) {
      if (v.dtype !== dtype) {
        throw new Error(`${ctx.opName}: mixed dtypes ${xs.map((x) => x.dtype).join(", ")}`);
      }
    }
    try {
      return [{ dtype: resultType ?? dtype, shape: broadcastShapes(...xs.map((v) => v.shape)) }];
    } catch (error) {
      throw new Error(`${ctx.opName}: ${(error as Error).message}`);
    }
  };
}

function matmulShape(ctx: InferContext, a: Shape, b: Shape): Dim[] {
  const aa = a.length === 1 ? [1, a[0]] : a;
  const bb = b.length === 1 ? [b[0], 1] : b;
  if (aa.length < 2 || bb.length < 2) throw new Error(`${ctx.opName}: scalar operand`);
  const k1 = aa[aa.length - 1];
  const k2 = bb[bb.length - 2];
  if (typeof k1 === "number" && typeof k2 === "number" && k1 !== k2) {
    throw new Error(`${ctx.opName}: inner dims differ: ${show(a)} x ${show(b)}`);
  }
  let batch: Dim[];
  try {
    batch = broadcastShapes(aa.slice(0, -2), bb.slice(0, -2));
  } catch {
    throw new Error(`${ctx.opName}: batch dims do not broadcast: ${show(a)} x ${show(b)}`);
  }
  const out = [...batch];
  if (a.length !== 1) out.push(aa[aa.length - 2]);
  if (b.length !== 1) out.push(bb[bb.length - 1]);
  return out;
}

function reshapeShape(ctx: InferContext, x: Shape, target: number[]): Dim[] {
  const out: Dim[] = target.map((d, i) => (d === 0 ? x[i] : d));
  const unknown = out.indexOf(-1);
  if (unknown >= 0) {
    const known = out.filter((_, i) => i !== unknown);
    const total = mulDims(...x);
    const rest = mulDims(...known);
    if (typeof total === "number" && typeof rest === "number" && total % rest !== 0) {
      throw new Error(`${ctx.opName}: cannot reshape ${show(x)} to ${show(target)}`);
    }
    out[unknown] = divDims(total, rest);
  }
  if (isStatic(x) && isStatic(out)) {
    const a = x.reduce((p, q) => p * q, 1);
    const b = (out as number[]).reduce((p, q) => p * q, 1);
    if (a !== b) throw new Error(`${ctx.opName}: cannot reshape ${show(x)} to ${show(target)}`);
  }
  return out;
}

function sliceDim(dim: Dim, start: number, end: number, step: number): Dim {
  const BIG = 2 ** 31 - 1;
  if (typeof dim === "number") {
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
    let s = start < 0 ? start + dim : start;
    let e = end < 0 ? end + dim : end;
    if (step > 0) {
      s = clamp(s, 0, dim);
      e = clamp(e, 0, dim);
      return Math.max(0, Math.ceil((e - s) / step));
    }
    s = clamp(s, 0, dim - 1);
    e = clamp(e, -1, dim - 1);
    return Math.max(0, Math.ceil((e - s) / step));
  }
  if (step === 1) {
    if (start === 0 && end >= BIG) return dim;
    if (start < 0 && end >= BIG) return -start;
    // A bounded slice of a symbolic dim: assume the graph is run with the dim at least `end`.
    if (start >= 0 && end >= start && end < BIG) return end - start;
  }
  return freshDim();
}

function reduceRule(ctx: InferContext): OutputInfo[] {
  const x = input(ctx, 0);
  const keep = intAttr(ctx, "keepdims", 1) === 1;
  let axes = ctx.inputs[1] ? ctx.constantInts(1) : intsAttr(ctx, "axes");
  if (ctx.inputs[1] && axes === undefined) {
    const n = ctx.inputs[1].shape[0];
    if (keep) return [{ dtype: x.dtype, shape: x.shape.map(() => freshDim()) }];
    return [{
      dtype: x.dtype,
      shape: Array.from({ length: x.shape.length - Number(n) }, freshDim),
    }];
  }
  if (axes === undefined || axes.length === 0) {
    if (intAttr(ctx, "noop_with_empty_axes", 0) === 1) return [{ dtype: x.dtype, shape: x.shape }];
    axes = x.shape.map((_, i) => i);
  }
  const set = new Set(axes.map((a) => normAxis(a, x.shape.length, `${ctx.opName} axis`)));
  const shape: Dim[] = [];
  x.shape.forEach((d, i) => {
    if (!set.has(i)) shape.push(d);
    else if (keep) shape.push(1);
  });
  return [{ dtype: x.dtype, shape }];
}

function argRule(ctx: InferContext): OutputInfo[] {
  const x = input(ctx, 0);
  const axis = normAxis(intAttr(ctx, "axis", 0), x.shape.length, `${ctx.opName} axis`);
  const keep = intAttr(ctx, "keepdims", 1) === 1;
  const shape = x.shape.flatMap((d, i) => (i !== axis ? [d] : keep ? [1] : []));
  return [{ dtype: "int64", shape }];
}

/** The shape rules, keyed by operator type (default domain). */
export const SHAPE_RULES: Record<string, ShapeRule> = {
  Add: broadcasting(),
  Sub: broadcasting(),
  Mul: broadcasting(),
  Div: broadcasting(),
  Pow: (
    ctx,
  ) => [{
    dtype: input(ctx, 0).dtype,
    shape: broadcastShapes(input(ctx, 0).shape, input(ctx, 1).shape),
  }],
  Max: broadcasting(),
  Min: broadcasting(),
  Sum: broadcasting(),
  Mean: broadcasting(),
  Equal: broadcasting("bool"),
  Less: broadcasting("bool"),
  LessOrEqual: broadcasting("bool"),
  Greater: broadcasting("bool"),
  GreaterOrEqual: broadcasting("bool"),
  And: broadcasting("bool"),
  Or: broadcasting("bool"),
  Xor: broadcasting("bool"),
  Not: sameAsInput(),
  Neg: sameAsInput(),
  Abs: sameAsInput(),
  Sqrt: sameAsInput(),
  Reciprocal: sameAsInput(),
  Exp: sameAsInput(),
  Log: sameAsInput(),
  Tanh: sameAsInput(),
  Sigmoid: sameAsInput(),
  Relu: sameAsInput(),
  Erf: sameAsInput(),
  Sign: sameAsInput(),
  Floor: sameAsInput(),
  Ceil: sameAsInput(),
  Clip: sameAsInput(),
  Identity: sameAsInput(),
  Dropout: (ctx) => {
    const x = input(ctx, 0);
    return [{ dtype: x.dtype, shape: x.shape }, { dtype: "bool", shape: x.shape }];
  },
  Softmax: sameAsInput(),
  LogSoftmax: sameAsInput(),
  CumSum: sameAsInput(),
  Gelu: sameAsInput(),
  Where: (ctx) => {
    const [c, a, b] = [input(ctx, 0), input(ctx, 1), input(ctx, 2)];
    if (c.dtype !== "bool") throw new Error(`Where: condition is ${c.dtype}, not bool`);
    if (a.dtype !== b.dtype) throw new Error(`Where: branches are ${a.dtype} and ${b.dtype}`);
    return [{ dtype: a.dtype, shape: broadcastShapes(c.shape, a.shape, b.shape) }];
  },
  Cast: (ctx) => {
    const to = dtypeOfOnnx(intAttr(ctx, "to", 0));
    if (!to) throw new Error(`Cast: unknown target type`);
    return [{ dtype: to, shape: input(ctx, 0).shape }];
  },
  MatMul: (ctx) => {
    const [a, b] = [input(ctx, 0), input(ctx, 1)];
    if (a.dtype !== b.dtype) throw new Error(`MatMul: dtypes ${a.dtype} and ${b.dtype} differ`);
    return [{ dtype: a.dtype, shape: matmulShape(ctx, a.shape, b.shape) }];
  },
  Gemm: (ctx) => {
    const [a, b, c] = [input(ctx, 0), input(ctx, 1), ctx.inputs[2]];
    if (a.shape.length !== 2 || b.shape.length !== 2) {
      throw new Error(`Gemm: operands must be 2-D, got ${show(a.shape)} and ${show(b.shape)}`);
    }
    const [m, k1] = intAttr(ctx, "transA", 0) ? [a.shape[1], a.shape[0]] : a.shape;
    const [k2, n] = intAttr(ctx, "transB", 0) ? [b.shape[1], b.shape[0]] : b.shape;
    if (typeof k1 === "number" && typeof k2 === "number" && k1 !== k2) {
      throw new Error(`Gemm: inner dims differ: ${show(a.shape)} x ${show(b.shape)}`);
    }
    if (c) broadcastShapes([m, n], c.shape);
    return [{ dtype: a.dtype, shape: [m, n] }];
  },
  Reshape: (ctx) => {
    const x = input(ctx, 0);
    const target = ctx.constantInts(1);
    if (!target) {
      const n = input(ctx, 1).shape[0];
      if (typeof n !== "number") throw new Error("Reshape: shape tensor of unknown length");
      return [{ dtype: x.dtype, shape: Array.from({ length: n }, freshDim) }];
    }
    return [{ dtype: x.dtype, shape: reshapeShape(ctx, x.shape, target) }];
  },
  Flatten: (ctx) => {
    const x = input(ctx, 0);
    const axis = intAttr(ctx, "axis", 1);
    const a = axis < 0 ? axis + x.shape.length : axis;
    return [{
      dtype: x.dtype,
      shape: [mulDims(...x.shape.slice(0, a)), mulDims(...x.shape.slice(a))],
    }];
  },
  Transpose: (ctx) => {
    const x = input(ctx, 0);
    const perm = intsAttr(ctx, "perm") ?? x.shape.map((_, i) => x.shape.length - 1 - i);
    if (perm.length !== x.shape.length) {
      throw new Error(`Transpose: perm [${perm}] for rank ${x.shape.length}`);
    }
    return [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]) }];
  },
  Unsqueeze: (ctx) => {
    const x = input(ctx, 0);
    const axes = ctx.constantInts(1);
    if (!axes) throw new Error("Unsqueeze: axes must be a constant");
    const rank = x.shape.length + axes.length;
    const set = new Set(axes.map((a) => normAxis(a, rank, "Unsqueeze axis")));
    const out: Dim[] = [];
    let j = 0;
    for (let i = 0; i < rank; i++) out.push(set.has(i) ? 1 : x.shape[j++]);
    return [{ dtype: x.dtype, shape: out }];
  },
  Squeeze: (ctx) => {
    const x = input(ctx, 0);
    const axes = ctx.constantInts(1) ?? x.shape.flatMap((d, i) => (d === 1 ? [i] : []));
    const set = new Set(axes.map((a) => normAxis(a, x.shape.length, "Squeeze axis")));
    for (const a of set) {
      if (typeof x.shape[a] === "number" && x.shape[a] !== 1) {
        throw new Error(`Squeeze: axis ${a} of ${show(x.shape)} is not 1`);
      }
    }
    return [{ dtype: x.dtype, shape: x.shape.filter((_, i) => !set.has(i)) }];
  },
  Concat: (ctx) => {
    const xs = ctx.inputs.filter((v): v is Value => v !== undefined);
    const rank = xs[0].shape.length;
    const axis = normAxis(intAttr(ctx, "axis", 0), rank, "Concat axis");
    const shape = [...xs[0].shape];
    const sizes = xs.map((v) => v.shape[axis]);
    shape[axis] = sizes.every((d) => typeof d === "number")
      ? (sizes as number[]).reduce((a, b) => a + b, 0)
      : freshDim();
    for (const v of xs) {
      if (v.dtype !== xs[0].dtype) throw new Error(`Concat: mixed dtypes`);
      if (v.shape.length !== rank) throw new Error(`Concat: ranks differ`);
    }
    return [{ dtype: xs[0].dtype, shape }];
  },
  Split: (ctx) => {
    const x = input(ctx, 0);
    const axis = normAxis(intAttr(ctx, "axis", 0), x.shape.length, "Split axis");
    const sizes = ctx.constantInts(1);
    if (!sizes) throw new Error("Split: sizes must be a constant");
    return sizes.map((n) => {
      const shape = [...x.shape];
      shape[axis] = n;
      return { dtype: x.dtype, shape };
    });
  },
  Slice: (ctx) => {
    const x = input(ctx, 0);
    const starts = ctx.constantInts(1);
    const ends = ctx.constantInts(2);
    const axes = ctx.inputs[3] ? ctx.constantInts(3) : starts?.map((_, i) => i);
    const steps = ctx.inputs[4] ? ctx.constantInts(4) : starts?.map(() => 1);
    const shape = [...x.shape];
    if (!starts || !ends || !axes || !steps) {
      if (!axes) return [{ dtype: x.dtype, shape: shape.map(() => freshDim()) }];
      for (const a of axes) shape[normAxis(a, shape.length)] = freshDim();
      return [{ dtype: x.dtype, shape }];
    }
    axes.forEach((a, i) => {
      const axis = normAxis(a, shape.length, "Slice axis");
      shape[axis] = sliceDim(x.shape[axis], starts[i], ends[i], steps[i]);
    });
    return [{ dtype: x.dtype, shape }];
  },
  Gather: (ctx) => {
    const [data, indices] = [input(ctx, 0), input(ctx, 1)];
    const axis = normAxis(intAttr(ctx, "axis", 0), data.shape.length, "Gather axis");
    return [{
      dtype: data.dtype,
      shape: [...data.shape.slice(0, axis), ...indices.shape, ...data.shape.slice(axis + 1)],
    }];
  },
  GatherElements: (ctx) => [{ dtype: input(ctx, 0).dtype, shape: input(ctx, 1).shape }],
  GatherND: (ctx) => {
    const [data, indices] = [input(ctx, 0), input(ctx, 1)];
    const b = intAttr(ctx, "batch_dims", 0);
    const k = indices.shape[indices.shape.length - 1];
    if (typeof k !== "number") throw new Error("GatherND: last index dim must be static");
    return [{
      dtype: data.dtype,
      shape: [...indices.shape.slice(0, -1), ...data.shape.slice(b + k)],
    }];
  },
  ScatterElements: sameAsInput(),
  ScatterND: sameAsInput(),
  Expand: (ctx) => {
    const x = input(ctx, 0);
    const target = ctx.constantInts(1);
    if (!target) {
      const n = input(ctx, 1).shape[0];
      if (typeof n !== "number") throw new Error("Expand: shape tensor of unknown length");
      const rank = Math.max(n, x.shape.length);
      return [{
        dtype: x.dtype,
        shape: Array.from({ length: rank }, (_, i) => {
          const xi = x.shape[i - (rank - x.shape.length)];
          return xi !== undefined && xi !== 1 ? xi : freshDim();
        }),
      }];
    }
    return [{ dtype: x.dtype, shape: broadcastShapes(x.shape, target) }];
  },
  Tile: (ctx) => {
    const x = input(ctx, 0);
    const reps = ctx.constantInts(1);
    return [{
      dtype: x.dtype,
      shape: x.shape.map((d, i) => (reps ? mulDims(d, reps[i]) : freshDim())),
    }];
  },
  Shape: (ctx) => [{ dtype: "int64", shape: [input(ctx, 0).shape.length] }],
  Size: () => [{ dtype: "int64", shape: [] }],
  ConstantOfShape: (ctx) => {
    const value = ctx.attrs.value;
    const dtype = value && value.type === "tensor" ? value.value.dtype : "float32";
    const target = ctx.constantInts(0);
    if (target) return [{ dtype, shape: target }];
    const n = input(ctx, 0).shape[0];
    if (typeof n !== "number") throw new Error("ConstantOfShape: shape of unknown length");
    return [{ dtype, shape: Array.from({ length: n }, freshDim) }];
  },
  Range: (ctx) => {
    const [start, limit, delta] = [0, 1, 2].map((i) => ctx.constantInts(i)?.[0]);
    const dtype = input(ctx, 0).dtype;
    if (start !== undefined && limit !== undefined && delta !== undefined) {
      return [{ dtype, shape: [Math.max(0, Math.ceil((limit - start) / delta))] }];
    }
    return [{ dtype, shape: [freshDim()] }];
  },
  NonZero: (ctx) => [{ dtype: "int64", shape: [input(ctx, 0).shape.length, freshDim()] }],
  ReduceSum: reduceRule,
  ReduceMean: reduceRule,
  ReduceMax: reduceRule,
  ReduceMin: reduceRule,
  ReduceProd: reduceRule,
  ReduceLogSumExp: reduceRule,
  ReduceSumSquare: reduceRule,
  ReduceL2: reduceRule,
  ArgMax: argRule,
  ArgMin: argRule,
  TopK: (ctx) => {
    const x = input(ctx, 0);
    const axis = normAxis(intAttr(ctx, "axis", -1), x.shape.length, "TopK axis");
    const k = ctx.constantInts(1)?.[0];
    const shape = [...x.shape];
    shape[axis] = k ?? freshDim();
    return [{ dtype: x.dtype, shape }, { dtype: "int64", shape }];
  },
  Attention: (ctx) => {
    // Opset 23. 3-D inputs [B, L, heads * d] give [B, L, heads * dv]; 4-D [B, heads, L, d] give
    // [B, heads, L, dv]. Only the first output (no caches) is inferred.
    const [q, , v] = [input(ctx, 0), input(ctx, 1), input(ctx, 2)];
    const shape = [...q.shape];
    shape[shape.length - 1] = q.shape.length === 4 ? v.shape[3] : mulDims(
      intAttr(ctx, "q_num_heads", 1),
      divDims(v.shape[2], intAttr(ctx, "kv_num_heads", 1)),
    );
    return [{ dtype: q.dtype, shape }];
  },
  LayerNormalization: (ctx) => {
    const x = input(ctx, 0);
    const axis = normAxis(intAttr(ctx, "axis", -1), x.shape.length, "LayerNormalization axis");
    const stats = x.shape.map((d, i) => (i < axis ? d : 1));
    const stash = dtypeOfOnnx(intAttr(ctx, "stash_type", 1)) ?? "float32";
    return [
      { dtype: x.dtype, shape: x.shape },
      { dtype: stash, shape: stats },
      { dtype: stash, shape: stats },
    ];
  },
};

/** The outputs of a node of operator `op`, by its rule; throws for an operator without one. */
export function inferOutputs(op: string, ctx: InferContext): OutputInfo[] {
  const rule = SHAPE_RULES[op];
  if (!rule) {
    throw new Error(
      `no shape rule for operator ${op}: add one to SHAPE_RULES or pass options.infer`,
    );
  }
  return rule(ctx);
}
