import assert from "node:assert/strict";
import { Rng, truncatedPoissonCdf } from "../lib/random.ts";

Deno.test("the same seed gives the same stream, another seed another", () => {
  const a = new Rng(7), b = new Rng(7), c = new Rng(8);
  const xs = Array.from({ length: 8 }, () => a.u32());
  assert.deepEqual(Array.from({ length: 8 }, () => b.u32()), xs);
  assert.ok(Array.from({ length: 8 }, () => c.u32()).some((x, i) => x !== xs[i]));
});

Deno.test("xoshiro128** matches its published reference output", () => {
  // Reference: the C implementation (xoshiro128starstar.c) with state {1, 2, 3, 4}.
  const rng = Rng.fromState([1, 2, 3, 4]);
  assert.deepEqual([rng.u32(), rng.u32(), rng.u32(), rng.u32()], [11520, 0, 5927040, 70819200]);
});

Deno.test("a restored state continues the stream exactly", () => {
  const rng = new Rng(123);
  for (let i = 0; i < 10; i++) rng.float();
  const copy = Rng.fromState(rng.state());
  assert.deepEqual(
    Array.from({ length: 5 }, () => copy.normal()),
    Array.from({ length: 5 }, () => rng.normal()),
  );
});

Deno.test("derived streams depend on every key", () => {
  assert.deepEqual(Rng.derive(1, "u", 2).u32(), Rng.derive(1, "u", 2).u32());
  assert.ok(Rng.derive(1, "u", 2).u32() !== Rng.derive(1, "u", 3).u32());
  assert.ok(Rng.derive(1, "u", 2).u32() !== Rng.derive(2, "u", 2).u32());
});

Deno.test("int is uniform and in range", () => {
  const rng = new Rng(5);
  const counts = new Array(6).fill(0);
  for (let i = 0; i < 60000; i++) counts[rng.int(6)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10000) < 400, `count ${c} too far from 10000`);
  assert.throws(() => rng.int(0), RangeError);
});

Deno.test("normal samples have mean 0 and variance 1", () => {
  const rng = new Rng(9);
  let sum = 0, sq = 0;
  const n = 50000;
  for (let i = 0; i < n; i++) {
    const x = rng.normal();
    sum += x;
    sq += x * x;
  }
  assert.ok(Math.abs(sum / n) < 0.02);
  assert.ok(Math.abs(sq / n - 1) < 0.03);
});

Deno.test("sample draws distinct values, shuffle permutes", () => {
  const rng = new Rng(3);
  for (const [n, k] of [[100, 5], [10, 10], [1000, 99]]) {
    const s = rng.sample(n, k);
    assert.deepEqual(new Set(s).size, k);
    assert.ok(s.every((x) => x >= 0 && x < n));
  }
  const xs = rng.shuffle([1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual([...xs].sort(), [1, 2, 3, 4, 5, 6, 7, 8]);
});

Deno.test("truncated Poisson(3) lengths follow the pmf over 1..39", () => {
  const cdf = truncatedPoissonCdf(3, 39);
  assert.deepEqual(cdf.length, 39);
  const rng = new Rng(11);
  const counts = new Array(40).fill(0);
  const n = 100000;
  for (let i = 0; i < n; i++) counts[rng.categorical(cdf) + 1]++;
  assert.deepEqual(counts[0], 0);
  // P(k) for Poisson(3) renormalised over k >= 1: P(1) = 3e^-3 / (1 - e^-3) ~ 0.1572.
  const p1 = 3 * Math.exp(-3) / (1 - Math.exp(-3));
  const p3 = 4.5 * Math.exp(-3) / (1 - Math.exp(-3));
  assert.ok(Math.abs(counts[1] / n - p1) < 0.005, `P(1) ${counts[1] / n} vs ${p1}`);
  assert.ok(Math.abs(counts[3] / n - p3) < 0.005, `P(3) ${counts[3] / n} vs ${p3}`);
});
