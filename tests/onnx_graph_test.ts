import assert from "node:assert/strict";
import { attr, DTYPE_INFO, dtypeOfOnnx, Graph, intAttr, tensorData } from "../lib/onnx/graph.ts";
import type { DType } from "../lib/onnx/types.ts";
import { broadcastShapes, divDims, isFresh, mulDims } from "../lib/onnx/shape.ts";

function weights(g: Graph, name: string, shape: number[]) {
  const n = shape.reduce((a, b) => a * b, 1);
  return g.initializer(name, { dtype: "float32", shape, data: new Float32Array(n) });
}

Deno.test("symbolic dims multiply and divide as products of symbols", () => {
  assert.equal(mulDims("B", "L"), "B*L");
  assert.equal(mulDims("L", 4, "B"), "4*B*L");
  assert.equal(divDims("4*B*L", 4), "B*L");
  assert.equal(divDims(mulDims("B", "L", 256), mulDims("B", 256)), "L");
  assert.ok(isFresh(divDims("B", "L")));
  assert.equal(mulDims(2, 3), 6);
});

Deno.test("broadcasting keeps literal 1s only where every operand has 1", () => {
  assert.deepEqual(broadcastShapes(["B", 1, "L"], [4, 1], [1]), ["B", 4, "L"]);
  assert.deepEqual(broadcastShapes([1, 1], [1]), [1, 1]);
  assert.throws(() => broadcastShapes([3, 2], [4, 2]), /cannot broadcast/);
});

Deno.test("the builder infers dtypes and shapes of common operators", () => {
  const g = new Graph("shapes");
  const x = g.input("x", "float32", ["B", "L", 8]);
  const ids = g.input("ids", "int32", ["B", "L"]);
  const w = weights(g, "w", [12, 8]);
  const table = weights(g, "table", [100, 8]);

  assert.deepEqual(g.add(x, g.constant(1)).shape, ["B", "L", 8]);
  const flat = g.reshape(x, [-1, 8]);
  assert.deepEqual(flat.shape, ["B*L", 8]);
  assert.deepEqual(g.gemm(flat, w, null, { transB: true }).shape, ["B*L", 12]);
  assert.deepEqual(g.matmul(x, g.transpose(w, [1, 0])).shape, ["B", "L", 12]);
  const heads = g.reshape(x, [0, 0, 2, 4]);
  assert.deepEqual(heads.shape, ["B", "L", 2, 4]);
  const q = g.transpose(heads, [0, 2, 1, 3]);
  assert.deepEqual(q.shape, ["B", 2, "L", 4]);
  assert.deepEqual(g.matmul(q, g.transpose(q, [0, 1, 3, 2])).shape, ["B", 2, "L", "L"]);
  assert.deepEqual(g.gather(table, ids).shape, ["B", "L", 8]);
  assert.deepEqual(g.slice(x, [0], [4], [2]).shape, ["B", "L", 4]);
  assert.deepEqual(g.slice(x, [-1], [Number.MAX_SAFE_INTEGER], [1]).shape, ["B", 1, 8]);
  assert.deepEqual(g.concat([x, x], -1).shape, ["B", "L", 16]);
  assert.deepEqual(g.split(x, [3, 5], 2).map((v) => v.shape), [["B", "L", 3], ["B", "L", 5]]);
  assert.deepEqual(g.reduceSum(x, [0, 1], true).shape, [1, 1, 8]);
  assert.deepEqual(g.reduceMean(x, [-1], false).shape, ["B", "L"]);
  assert.deepEqual(g.unsqueeze(ids, [1]).shape, ["B", 1, "L"]);
  assert.deepEqual(g.squeeze(g.unsqueeze(ids, [1]), [1]).shape, ["B", "L"]);
  const less = g.less(ids, g.constant(3, "int32"));
  assert.equal(less.dtype, "bool");
  assert.deepEqual(g.where(g.unsqueeze(less, [2]), x, g.constant(0)).shape, ["B", "L", 8]);
  assert.equal(g.cast(ids, "int64").dtype, "int64");
  const nz = g.nonZero(ids);
  assert.equal(nz.dtype, "int64");
  assert.equal(nz.shape[0], 2);
  assert.ok(isFresh(nz.shape[1]));
  const [y, mean, invStd] = g.layerNormWithStats(x, weights(g, "s", [8]), weights(g, "b", [8]));
  assert.deepEqual(y.shape, ["B", "L", 8]);
  assert.deepEqual(mean.shape, ["B", "L", 1]);
  assert.deepEqual(invStd.shape, ["B", "L", 1]);
  const r = g.range(g.constant(0, "int64"), g.constant(5, "int64"), g.constant(1, "int64"));
  assert.deepEqual(r.shape, [5]);
  assert.equal(g.softmax(x).dtype, "float32");
  assert.deepEqual(g.flatten(x, 2).shape, ["B*L", 8]);
  assert.deepEqual(g.expand(g.constant([1, 2]), [3, 2]).shape, [3, 2]);
  assert.deepEqual(g.topK(x, 3).map((v) => v.shape), [["B", "L", 3], ["B", "L", 3]]);
});

Deno.test("shape mistakes fail when the node is added, naming the operator", () => {
  const g = new Graph("bad");
  const a = g.input("a", "float32", [3, 4]);
  const b = g.input("b", "float32", [5, 6]);
  assert.throws(() => g.matmul(a, b), /MatMul: inner dims differ/);
  assert.throws(() => g.add(a, b), /Add: cannot broadcast/);
  assert.throws(() => g.reshape(a, [5, -1, 7]), /Reshape|cannot reshape/);
  assert.throws(() => g.add(a, g.input("c", "float64", [3, 4])), /mixed dtypes/);
  assert.throws(() => g.node("NoSuchOp", [a]), /no shape rule for operator NoSuchOp/);
});

Deno.test("shape rules and gradient rules read attributes alike: a wrong type is an error", () => {
  // Shape inference used to fall back to the default on a wrongly typed attribute (a Gemm with a
  // float transB was inferred untransposed, so a mistake surfaced, if at all, at run time);
  // now it reads attributes with the readers the backward rules use, which reject it.
  const g = new Graph("attrs");
  const a = g.input("a", "float32", [3, 4]);
  const b = g.input("b", "float32", [5, 4]);
  assert.deepEqual(g.node("Gemm", [a, b], { transB: attr.int(1) })[0].shape, [3, 5]);
  assert.throws(
    () => g.node("Gemm", [a, b], { transB: attr.float(1) }),
    /Gemm: attribute transB is not an int/,
  );
  assert.throws(
    () => g.node("Transpose", [a], { perm: attr.int(1) }),
    /Transpose: attribute perm is not ints/,
  );
  const [y] = g.node("Softmax", [a], { axis: attr.int(1) });
  assert.equal(intAttr(g.producer(y.name)!, "axis", -1), 1);
  assert.equal(intAttr(g.producer(y.name)!, "missing", 7), 7);
});

Deno.test("one dtype table: ONNX codes map back to their dtype, Cast uses it", () => {
  for (const [dtype, info] of Object.entries(DTYPE_INFO) as [DType, typeof DTYPE_INFO[DType]][]) {
    assert.equal(dtypeOfOnnx(info.onnx), dtype);
    assert.equal(new info.array(2).BYTES_PER_ELEMENT, dtype === "bool" ? 1 : info.bytes);
  }
  assert.equal(dtypeOfOnnx(8), undefined); // STRING: not a tensor type here
  const g = new Graph("cast");
  const x = g.input("x", "float32", [2]);
  assert.equal(g.cast(x, "float16").dtype, "float16");
  assert.throws(() => g.node("Cast", [x], { to: attr.int(8) }), /Cast: unknown target type/);
});

Deno.test("every tensor knows its producer and consumers", () => {
  const g = new Graph("walk");
  const x = g.input("x", "float32", [2, 3]);
  const y = g.exp(x);
  const z = g.mul(y, y);
  const u = g.add(z, x);
  assert.equal(g.producer(x.name), undefined);
  assert.equal(g.producer(y.name)?.op, "Exp");
  assert.deepEqual(g.consumers(x.name).map((n) => n.op), ["Exp", "Add"]);
  // A node reading the same tensor twice is listed once; its inputs say how often.
  assert.deepEqual(g.consumers(y.name).map((n) => n.op), ["Mul"]);
  assert.deepEqual(g.producer(z.name)?.inputs, [y.name, y.name]);
  assert.deepEqual(g.producer(u.name)?.inputs, [z.name, x.name]);
});

Deno.test("outputs can be renamed, and names stay unique across scopes", () => {
  const g = new Graph("names");
  const x = g.input("x", "float32", [2]);
  const a = g.scope("layers.0", () => g.tanh(x));
  const b = g.scope("layers.0", () => g.tanh(x));
  assert.notEqual(a.name, b.name);
  assert.ok(a.name.startsWith("layers.0/"));
  const out = g.output(a, "y");
  assert.equal(out.name, "y");
  assert.equal(g.producer("y")?.op, "Tanh");
  assert.throws(() => g.value(a.name), /no tensor named/);
  // An input cannot be renamed: an Identity gives the output its name.
  const same = g.output(x, "x_copy");
  assert.equal(g.producer(same.name)?.op, "Identity");
});

Deno.test("prune removes what no output needs, unused constants included", () => {
  const g = new Graph("prune");
  const x = g.input("x", "float32", [2]);
  const used = g.mul(x, g.constant(2));
  g.add(x, g.constant(7)); // dead
  g.output(used, "y");
  assert.equal(g.prune(), 1);
  assert.deepEqual(g.nodes.map((n) => n.op), ["Mul"]);
  assert.equal(g.initializers.size, 1);
  assert.equal(g.consumers(x.name).length, 1);
});

Deno.test("scalar constants are shared and typed", () => {
  const g = new Graph("consts");
  assert.equal(g.constant(1).name, g.constant(1).name);
  assert.notEqual(g.constant(1).name, g.constant(1, "int64").name);
  assert.deepEqual(g.constant(1, "int64").shape, []);
  const t = tensorData("int64", [2], [3, -1]);
  assert.deepEqual(Array.from(t.data as BigInt64Array), [3n, -1n]);
  assert.deepEqual(g.constantInts(g.constant([4, -1], "int64").name), [4, -1]);
  const [s] = g.node("Softmax", [g.input("x", "float32", [3])], { axis: attr.int(0) });
  assert.deepEqual(s.shape, [3]);
});
