/**
 * Every gradient rule against central finite differences on small random inputs: float64 where
 * onnxruntime's CPU kernels take it (tolerance 1e-6 on the worst relative error), float32
 * otherwise (tolerance 2e-2, stated per case). Each case prints its worst relative error.
 * The whole tiny GLM's gradients are checked in `train_gradcheck_test.ts`.
 */

import assert from "node:assert/strict";
import { attr, type DType, Graph, tensorData, type Value } from "../lib/onnx/graph.ts";
import { Rng } from "../lib/random.ts";
import { gradients } from "../lib/train/autodiff.ts";
import { Session } from "../lib/runtime/session.ts";
import { geluTanhForm } from "../lib/model/glm.ts";
import { checkGradients } from "./helpers/grad_check.ts";

/** How an input of a case is filled. */
type Fill = "normal" | "positive" | { int: number } | "bool";

interface Case {
  name: string;
  /** Inputs: name, shape, fill; float inputs are differentiated unless `fixed`. */
  inputs: { name: string; shape: number[]; fill?: Fill; fixed?: boolean }[];
  /** Builds the op(s) under test; returns the outputs the loss weights. */
  build: (g: Graph, x: Record<string, Value>, dtype: DType) => Value | Value[];
  /** Force float32 (the op has no float64 CPU kernel), with this tolerance. */
  float32?: number;
  /** Tolerance override for float64 (default 1e-6). */
  tolerance?: number;
  /** Finite-difference step override. */
  step?: number;
}

const CASES: Case[] = [
  // ---- linear algebra
  {
    name: "MatMul batched x shared weight",
    inputs: [{ name: "a", shape: [2, 3, 4] }, { name: "b", shape: [4, 5] }],
    build: (g, x) => g.matmul(x.a, x.b),
  },
  {
    name: "MatMul batched x batched (attention)",
    inputs: [{ name: "a", shape: [2, 2, 3, 4] }, { name: "b", shape: [2, 2, 4, 3] }],
    build: (g, x) => g.matmul(x.a, x.b),
  },
  {
    name: "MatMul with a transposed operand (q @ k^T, whose backward elides the transposes)",
    inputs: [{ name: "q", shape: [2, 3, 4] }, { name: "k", shape: [2, 5, 4] }],
    build: (g, x) => g.matmul(g.transpose(x.q, [0, 1, 2]), g.transpose(x.k, [0, 2, 1])),
  },
  {
    name: "Transpose of a Transpose (composed permutations)",
    inputs: [{ name: "a", shape: [2, 3, 4] }],
    build: (g, x) => g.transpose(g.transpose(x.a, [1, 2, 0]), [2, 0, 1]),
  },
  {
    name: "MatMul with broadcast batch dims",
    inputs: [{ name: "a", shape: [3, 4] }, { name: "b", shape: [2, 1, 4, 5] }],
    build: (g, x) => g.matmul(x.a, x.b),
  },
  ...([[false, false], [false, true], [true, false], [true, true]] as const).map((
    [transA, transB],
  ): Case => ({
    name: `Gemm transA=${+transA} transB=${+transB} with C broadcast, alpha, beta`,
    inputs: [
      { name: "a", shape: transA ? [4, 3] : [3, 4] },
      { name: "b", shape: transB ? [5, 4] : [4, 5] },
      { name: "c", shape: [5] },
    ],
    build: (g, x) => g.gemm(x.a, x.b, x.c, { transA, transB, alpha: 0.7, beta: 1.3 }),
  })),
  // ---- elementwise with broadcasting
  {
    name: "Add broadcasting [2,3,4] + [4]",
    inputs: [{ name: "a", shape: [2, 3, 4] }, { name: "b", shape: [4] }],
    build: (g, x) => g.add(x.a, x.b),
  },
  {
    name: "Sub broadcasting [3,1] - [2,3,4]",
    inputs: [{ name: "a", shape: [3, 1] }, { name: "b", shape: [2, 3, 4] }],
    build: (g, x) => g.sub(x.a, x.b),
  },
  {
    name: "Mul broadcasting [2,3,4] * [1,3,1]",
    inputs: [{ name: "a", shape: [2, 3, 4] }, { name: "b", shape: [1, 3, 1] }],
    build: (g, x) => g.mul(x.a, x.b),
  },
  {
    name: "Div broadcasting [2,3] / [3]",
    inputs: [{ name: "a", shape: [2, 3] }, { name: "b", shape: [3], fill: "positive" }],
    build: (g, x) => g.div(x.a, x.b),
  },
  {
    name: "Pow with a constant exponent (GELU's x^3)",
    inputs: [{ name: "a", shape: [2, 3] }],
    build: (g, x, dtype) => g.pow(x.a, g.constant(3, dtype)),
  },
  {
    name: "Pow with both operands differentiated",
    inputs: [{ name: "a", shape: [2, 3], fill: "positive" }, { name: "b", shape: [3] }],
    build: (g, x) => g.pow(x.a, x.b),
  },
  {
    name: "Sum of three broadcast inputs",
    inputs: [{ name: "a", shape: [2, 3] }, { name: "b", shape: [3] }, { name: "c", shape: [2, 1] }],
    build: (g, x) => g.sum(x.a, x.b, x.c),
  },
  {
    name: "Max and Min",
    inputs: [{ name: "a", shape: [2, 3] }, { name: "b", shape: [2, 3] }],
    build: (g, x) => [g.max(x.a, x.b), g.min(x.a, x.b)],
  },
  {
    name: "Where with a mask (cond broadcast, branches broadcast)",
    inputs: [
      { name: "c", shape: [2, 1, 4], fill: "bool" },
      { name: "a", shape: [2, 3, 4] },
      { name: "b", shape: [4] },
    ],
    build: (g, x) => g.where(x.c, x.a, x.b),
  },
  {
    name: "Clip",
    inputs: [{ name: "a", shape: [3, 4] }],
    build: (g, x, dtype) => g.clip(x.a, g.constant(-0.5, dtype), g.constant(0.6, dtype)),
  },
  // ---- unary
  ...([
    ["Tanh", (g: Graph, v: Value) => g.tanh(v), "normal"],
    ["Sigmoid", (g: Graph, v: Value) => g.sigmoid(v), "normal"],
    ["Exp", (g: Graph, v: Value) => g.exp(v), "normal"],
    ["Log", (g: Graph, v: Value) => g.log(v), "positive"],
    ["Sqrt", (g: Graph, v: Value) => g.sqrt(v), "positive"],
    ["Reciprocal", (g: Graph, v: Value) => g.reciprocal(v), "positive"],
    ["Neg", (g: Graph, v: Value) => g.neg(v), "normal"],
    ["Relu", (g: Graph, v: Value) => g.relu(v), "normal"],
    ["Abs", (g: Graph, v: Value) => g.abs(v), "normal"],
    ["Identity", (g: Graph, v: Value) => g.identity(v), "normal"],
  ] as const).map(([name, f, fill]): Case => ({
    name,
    inputs: [{ name: "a", shape: [3, 4], fill }],
    build: (g, x) => f(g, x.a),
  })),
  {
    name: "Erf (float32: no float64 kernel)",
    inputs: [{ name: "a", shape: [3, 4] }],
    build: (g, x) => g.erf(x.a),
    float32: 2e-2,
  },
  {
    // onnxruntime's float64 Gelu kernel is exact to about 6e-9 only: a wider step keeps the
    // finite differences above that rounding.
    name: "Gelu, tanh approximation (opset 20)",
    inputs: [{ name: "a", shape: [4, 5] }],
    build: (g, x, dtype) => g.gelu(g.mul(x.a, g.constant(2, dtype)), "tanh"),
    tolerance: 5e-5,
    step: 1e-3,
  },
  {
    name: "Gelu, exact (float32: its rule uses Erf)",
    inputs: [{ name: "a", shape: [4, 5] }],
    build: (g, x, dtype) => g.gelu(g.mul(x.a, g.constant(2, dtype)), "none"),
    float32: 2e-2,
  },
  {
    name: "Cast float64 -> float32 -> float64 (float32 rounding inside)",
    inputs: [{ name: "a", shape: [3, 4] }],
    build: (g, x) => g.mul(g.cast(g.cast(x.a, "float32"), "float64"), x.a),
    tolerance: 1e-4,
    step: 1e-2,
  },
  // ---- shapes and indexing
  {
    name: "Reshape, Flatten, Unsqueeze, Squeeze",
    inputs: [{ name: "a", shape: [2, 3, 4] }],
    build: (g, x) => [
      g.reshape(x.a, [6, 4]),
      g.flatten(x.a, 2),
      g.squeeze(g.unsqueeze(x.a, [1]), [1]),
      g.unsqueeze(x.a, [0, 3]),
    ],
  },
  {
    name: "Transpose",
    inputs: [{ name: "a", shape: [2, 3, 4] }],
    build: (g, x) => g.transpose(x.a, [2, 0, 1]),
  },
  {
    name: "Slice with negative and clamped bounds",
    inputs: [{ name: "a", shape: [4, 5, 3] }],
    build: (g, x) => [g.slice(x.a, [1, -4], [3, 100], [0, 1]), g.slice(x.a, [1], [2], [2])],
  },
  {
    name: "Concat",
    inputs: [{ name: "a", shape: [2, 3] }, { name: "b", shape: [2, 2] }],
    build: (g, x) => g.concat([x.a, x.b, x.a], 1),
  },
  {
    name: "Split (one piece unused)",
    inputs: [{ name: "a", shape: [2, 7] }],
    build: (g, x) => g.split(x.a, [2, 3, 2], 1).filter((_, i) => i !== 1),
  },
  {
    name: "Expand",
    inputs: [{ name: "a", shape: [3, 1] }],
    build: (g, x) => g.expand(x.a, [2, 3, 4]),
  },
  {
    name: "Gather rows (embedding lookup with repeated ids)",
    inputs: [{ name: "w", shape: [6, 3] }, { name: "ids", shape: [2, 5], fill: { int: 6 } }],
    build: (g, x) => g.gather(x.w, x.ids),
  },
  {
    name: "GatherElements",
    inputs: [{ name: "a", shape: [3, 5] }, { name: "i", shape: [3, 2], fill: { int: 5 } }],
    build: (g, x) => g.gatherElements(x.a, g.cast(x.i, "int64"), 1),
  },
  {
    name: "GatherND",
    inputs: [{ name: "a", shape: [4, 3] }, { name: "i", shape: [5, 1], fill: { int: 4 } }],
    build: (g, x) => g.node("GatherND", [x.a, g.cast(x.i, "int64")])[0],
  },
  {
    // Tuples of two indices, repeated and negative (counted from the end of each dim).
    name: "GatherND (repeated and negative index tuples)",
    inputs: [{ name: "a", shape: [3, 4, 2] }, { name: "i", shape: [5, 2], fill: { int: 3 } }],
    build: (g, x) => g.node("GatherND", [x.a, g.sub(g.cast(x.i, "int64"), g.ints([3]))])[0],
  },
  // ---- normalization and reductions
  {
    name: "Softmax (last axis and axis 1)",
    inputs: [{ name: "a", shape: [2, 3, 4] }],
    build: (g, x) => [g.softmax(x.a, -1), g.softmax(x.a, 1)],
  },
  {
    name: "LogSoftmax",
    inputs: [{ name: "a", shape: [2, 3, 4] }],
    build: (g, x) => g.logSoftmax(x.a, -1),
  },
  {
    // A cross-entropy's shape; repeated indices in a row. The LogSoftmax rule sees the
    // scatter-add GatherElements' rule emits and scatters onto -softmax * sum instead.
    name: "GatherElements of LogSoftmax (repeated indices)",
    inputs: [{ name: "a", shape: [3, 5] }, { name: "i", shape: [3, 3], fill: { int: 5 } }],
    build: (g, x) => g.gatherElements(g.logSoftmax(x.a, -1), g.cast(x.i, "int64"), 1),
  },
  {
    // Indices over fewer rows than the data: the rows they skip take no softmax share.
    name: "GatherElements of LogSoftmax (indices over fewer rows than the data)",
    inputs: [{ name: "a", shape: [3, 4] }, { name: "i", shape: [2, 1], fill: { int: 4 } }],
    build: (g, x) => g.gatherElements(g.logSoftmax(x.a, -1), g.cast(x.i, "int64"), 1),
  },
  {
    name: "LayerNormalization with Mean/InvStdDev outputs",
    inputs: [{ name: "a", shape: [2, 3, 6] }, { name: "s", shape: [6] }, { name: "b", shape: [6] }],
    build: (g, x) => g.layerNormWithStats(x.a, x.s, x.b, { epsilon: 1e-5 })[0],
  },
  {
    name: "LayerNormalization reusing Mean/InvStdDev (float32, the path training takes)",
    inputs: [{ name: "a", shape: [2, 3, 6] }, { name: "s", shape: [6] }, { name: "b", shape: [6] }],
    build: (g, x) => g.layerNormWithStats(x.a, x.s, x.b, { epsilon: 1e-5 })[0],
    float32: 2e-2,
  },
  {
    name: "LayerNormalization without stats, over two axes",
    inputs: [{ name: "a", shape: [2, 3, 4] }, { name: "s", shape: [3, 4] }, {
      name: "b",
      shape: [4],
    }],
    build: (g, x) => g.layerNorm(x.a, x.s, x.b, { epsilon: 1e-5, axis: 1 }),
  },
  {
    name: "ReduceSum and ReduceMean (keepdims 0 and 1, all axes)",
    inputs: [{ name: "a", shape: [2, 3, 4] }],
    build: (g, x) => [
      g.reduceSum(x.a, [1], false),
      g.reduceMean(x.a, [0, 2], true),
      g.reduceMean(x.a, undefined, false),
    ],
  },
  {
    name: "ReduceLogSumExp",
    inputs: [{ name: "a", shape: [2, 3, 4] }],
    build: (g, x) => g.reduceLogSumExp(x.a, [2], false),
  },
  {
    name: "logsumexp spelled out (Exp feeding a ReduceSum: the broadcast left to the Mul)",
    inputs: [{ name: "a", shape: [3, 5] }, { name: "b", shape: [2, 4, 3] }],
    build: (g, x) => [
      g.log(g.reduceSum(g.exp(x.a), [1], true)),
      g.reduceSum(g.exp(x.b), [1], false), // keepdims 0: unsqueezed before the Expand
    ],
  },
  // ---- composites
  {
    name: "a tensor feeding several nodes (gradients summed)",
    inputs: [{ name: "a", shape: [3, 4] }],
    build: (g, x) => g.add(g.mul(x.a, x.a), g.tanh(x.a)),
  },
  {
    name: "masked cross-entropy (LogSoftmax, GatherElements, mask, mean over the mask)",
    inputs: [
      { name: "logits", shape: [2, 3, 5] },
      { name: "labels", shape: [2, 3, 1], fill: { int: 5 } },
      { name: "mask", shape: [2, 3, 1], fill: "bool" },
    ],
    build: (g, x, dtype) => {
      const logp = g.logSoftmax(x.logits, -1);
      const picked = g.gatherElements(logp, g.cast(x.labels, "int64"), 2);
      const mask = g.cast(x.mask, dtype);
      const total = g.reduceSum(g.mul(picked, mask), undefined, false);
      return g.neg(g.div(total, g.reduceSum(mask, undefined, false)));
    },
  },
];

function fill(rng: Rng, dtype: DType, shape: number[], how: Fill = "normal") {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = Array.from({ length: n }, () => {
    if (how === "positive") return 0.5 + rng.float() * 1.5;
    if (how === "bool") return rng.float() < 0.6 ? 1 : 0;
    if (typeof how === "object") return rng.int(how.int);
    return rng.normal();
  });
  if (how === "bool") return tensorData("bool", shape, values);
  if (typeof how === "object") return tensorData("int32", shape, values);
  return tensorData(dtype, shape, values);
}

for (const c of CASES) {
  Deno.test(`gradient of ${c.name} matches central finite differences`, async () => {
    const dtype: DType = c.float32 ? "float32" : "float64";
    const tolerance = c.float32 ?? c.tolerance ?? 1e-6;
    const rng = Rng.derive(7, c.name);
    const g = new Graph("case");
    const x: Record<string, Value> = {};
    const feeds: Record<string, ReturnType<typeof fill>> = {};
    const wrt: Value[] = [];
    for (const input of c.inputs) {
      const data = fill(rng, dtype, input.shape, input.fill);
      x[input.name] = g.input(input.name, data.dtype, input.shape);
      feeds[input.name] = data;
      if (data.dtype === dtype && !input.fixed) wrt.push(x[input.name]);
    }
    const built = c.build(g, x, dtype);
    const outputs = Array.isArray(built) ? built : [built];
    // loss = sum_k sum(y_k * r_k) with random r_k, so every output element's gradient differs.
    const terms = outputs.map((y) => {
      const shape = y.shape as number[];
      const r = g.constant(fill(rng, y.dtype, shape));
      return g.reduceSum(g.mul(y, r), undefined, false);
    });
    const loss = terms.length === 1 ? terms[0] : g.sum(...terms);
    const result = await checkGradients(g, loss, wrt, feeds, { step: c.step });
    console.log(
      `  ${c.name} [${dtype}]: worst relative error ${result.worst.toExponential(2)} over ` +
        `${result.checked} elements (tolerance ${tolerance})`,
    );
    assert.ok(result.largest > 1e-3, `gradients are all ~0 (${result.largest})`);
    assert.ok(result.worst < tolerance, JSON.stringify(result.perTensor));
  });
}

Deno.test("the Gelu rule equals the autodiff of GELU's elementwise form (float64)", async () => {
  // Both exact in float64 (no finite differences): the rule against the nine-node form it
  // replaces in training graphs, over x in [-6, 6].
  const n = 241;
  const xs = Float64Array.from({ length: n }, (_, i) => -6 + i * 0.05);
  const dy = Float64Array.from({ length: n }, (_, i) => Math.cos(i));
  const slope = async (form: (g: Graph, x: Value) => Value) => {
    const g = new Graph("gelu");
    const x = g.input("x", "float64", [n]);
    const r = g.input("r", "float64", [n]);
    const loss = g.reduceSum(g.mul(form(g, x), r), undefined, false);
    g.output(gradients(g, loss, [x])[0], "dx");
    const session = await Session.create(g, { device: "cpu", threads: 1 });
    try {
      const out = await session.run({
        x: tensorData("float64", [n], xs),
        r: tensorData("float64", [n], dy),
      });
      return out.dx.data as Float64Array;
    } finally {
      await session.release();
    }
  };
  const rule = await slope((g, x) => g.gelu(x, "tanh"));
  const form = await slope((g, x) => geluTanhForm(g, x, (v) => g.constant(v, "float64")));
  let worst = 0;
  for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(rule[i] - form[i]));
  console.log(`  Gelu rule against the form: worst absolute difference ${worst.toExponential(2)}`);
  // The rule reads the Gelu kernel's output, exact to about 6e-9 in float64.
  assert.ok(worst < 1e-7, `worst ${worst}`);
});

Deno.test("a cross-entropy's LogSoftmax gradient scatters onto the softmax (no zeros, no Sub)", () => {
  const g = new Graph("ce");
  const logits = g.input("logits", "float32", [4, 7]);
  const labels = g.input("labels", "int64", [4, 1]);
  const picked = g.gatherElements(g.logSoftmax(logits, -1), labels, 1);
  const loss = g.reduceSum(picked, undefined, false);
  g.output(gradients(g, loss, [logits])[0], "d_logits");
  g.prune();
  const ops = g.nodes.map((n) => n.op);
  const scatters = g.nodes.filter((n) => n.op === "ScatterElements");
  assert.equal(scatters.length, 1, ops.join(" "));
  assert.equal(g.producer(scatters[0].inputs[0])?.op, "Mul", "scattered onto -softmax * sum");
  assert.ok(!ops.includes("Sub"), ops.join(" "));
});

Deno.test("a logsumexp's gradient multiplies exp by the row's gradient without expanding it", () => {
  // As SASRec's loss spells it, with a dynamic row count: no [M, V] Expand in the backward pass.
  for (const rows of ["M", 4] as const) {
    const g = new Graph("lse");
    const logits = g.input("logits", "float32", [rows, 7]);
    const lse = g.log(g.reduceSum(g.exp(logits), [1], true)); // [M, 1]
    const loss = g.reduceSum(lse, undefined, false);
    const before = g.nodes.length;
    g.output(gradients(g, loss, [logits])[0], "d_logits");
    g.prune();
    const backward = g.nodes.slice(g.nodes.findIndex((n) => n.op === "Log") + 1);
    assert.ok(g.nodes.length > before);
    const ops = backward.map((n) => n.op).join(" ");
    const exp = g.nodes.find((n) => n.op === "Exp")!.outputs[0];
    const mul = backward.find((n) => n.op === "Mul" && n.inputs.includes(exp));
    assert.ok(mul, `rows ${rows}: a Mul of exp's output: ${ops}`);
    const other = mul.inputs.find((name) => name !== exp)!;
    assert.notEqual(g.producer(other)?.op, "Expand", `rows ${rows}: ${ops}`);
    assert.equal(g.value(other).shape[1], 1, "the row's gradient, [M, 1]");
  }
});

Deno.test("only nodes between the trainable tensors and the loss are differentiated", () => {
  const g = new Graph("prune");
  const x = g.input("x", "float32", [2, 4]);
  const frozen = g.initializer("frozen", tensorData("float32", [4, 4], new Array(16).fill(0.1)));
  const w = g.input("w", "float32", [4, 4]);
  const h = g.tanh(g.matmul(x, frozen)); // below the trainable tensor: no backward
  const y = g.matmul(h, w);
  const side = g.exp(x); // not on the loss's path
  g.output(side, "side");
  const loss = g.reduceSum(g.mul(y, y), undefined, false);
  const before = g.nodes.length;
  const [dw] = gradients(g, loss, [w]);
  const backward = g.nodes.slice(before);
  assert.ok(backward.length > 0);
  assert.equal(dw.shape.join(","), "4,4");
  assert.ok(!backward.some((n) => n.op === "Tanh" || n.op === "Exp"));
  // The frozen MatMul gets no gradient node: every backward MatMul/Gemm reads h or y's gradient.
  const frozenGrads = backward.filter((n) => n.inputs.includes("frozen"));
  assert.deepEqual(frozenGrads, []);
});

Deno.test("an operator without a rule is a clear error naming it", () => {
  const g = new Graph("norule");
  const x = g.input("x", "float32", [3]);
  const [y] = g.node("Softplus", [x], {}, { infer: [{ dtype: "float32", shape: [3] }] });
  const loss = g.reduceSum(y, undefined, false);
  assert.throws(() => gradients(g, loss, [x]), /no gradient rule for operator Softplus/);
});

Deno.test("a Softmax attribute other than the last axis is honoured by the rule", () => {
  // A guard that the rule reads the node's axis: the gradient graph contains a ReduceSum over 1.
  const g = new Graph("axis");
  const x = g.input("x", "float32", [2, 3, 4]);
  const [y] = g.node("Softmax", [x], { axis: attr.int(1) });
  const loss = g.reduceSum(g.mul(y, g.constant(2)), undefined, false);
  const before = g.nodes.length;
  gradients(g, loss, [x]);
  const sums = g.nodes.slice(before).filter((n) => n.op === "ReduceSum");
  assert.ok(sums.some((n) => JSON.stringify(g.constantInts(n.inputs[1])) === "[1]"));
});

Deno.test("Gather's gradient adds repeated rows exactly on 2 threads (no lost updates)", async () => {
  // 20,000 lookups of 3 rows: onnxruntime's ScatterND-add spreads such updates over its threads
  // unsynchronised and lost some in about one run of 30; the rule must not depend on it.
  const [k, v, d] = [20000, 3, 64];
  const g = new Graph("gather_grad_threads");
  const table = g.input("table", "float32", [v, d]);
  const ids = g.input("ids", "int32", [k]);
  const [dTable] = gradients(g, g.reduceSum(g.gather(table, ids), undefined, false), [table]);
  g.output(dTable, "d_table");
  const session = await Session.create(g, { device: "cpu", threads: 2 });
  try {
    const feeds = {
      table: tensorData("float32", [v, d], new Float32Array(v * d)),
      ids: tensorData("int32", [k], Int32Array.from({ length: k }, (_, i) => i % v)),
    };
    for (let run = 0; run < 60; run++) {
      const out = (await session.run(feeds)).d_table.data as Float32Array;
      out.forEach((x, i) => assert.equal(x, Math.ceil((k - Math.floor(i / d)) / v), `run ${run}`));
    }
  } finally {
    await session.release();
  }
});

Deno.test("GatherND's gradient adds repeated index tuples exactly on 2 threads", async () => {
  // As Gather's: ScatterND-add loses repeated updates spread over threads.
  const [k, v, d] = [20000, 3, 64];
  const g = new Graph("gather_nd_grad_threads");
  const table = g.input("table", "float32", [v, d]);
  const ids = g.input("ids", "int32", [k, 1]);
  const picked = g.node("GatherND", [table, g.cast(ids, "int64")])[0];
  const [dTable] = gradients(g, g.reduceSum(picked, undefined, false), [table]);
  g.output(dTable, "d_table");
  const session = await Session.create(g, { device: "cpu", threads: 2 });
  try {
    const feeds = {
      table: tensorData("float32", [v, d], new Float32Array(v * d)),
      ids: tensorData("int32", [k, 1], Int32Array.from({ length: k }, (_, i) => i % v)),
    };
    for (let run = 0; run < 60; run++) {
      const out = (await session.run(feeds)).d_table.data as Float32Array;
      out.forEach((x, i) => assert.equal(x, Math.ceil((k - Math.floor(i / d)) / v), `run ${run}`));
    }
  } finally {
    await session.release();
  }
});

Deno.test("gradients with respect to a tensor made by an op without a rule, from inputs not trained", () => {
  const g = new Graph("wrt_intermediate");
  const x = g.input("x", "float32", [3]);
  const h = g.node("Floor", [x])[0];
  const [dh] = gradients(g, g.reduceSum(g.mul(h, h), undefined, false), [h]);
  assert.deepEqual(dh.shape, [3]);
});
