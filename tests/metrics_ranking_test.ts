import assert from "node:assert/strict";
import { hitAt, meanRanking, ndcgAt, targetRank } from "../lib/metrics/ranking.ts";
import { validOutputs, validRate } from "../lib/metrics/valid.ts";

const close = (actual: number, expected: number, what = "") =>
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what} ${actual} != ${expected}`);

Deno.test("a prediction list is taken in its given order", () => {
  assert.equal(targetRank(["c", "b", "a"], "a"), 3);
  assert.equal(targetRank(["a", "b", "c"], "a"), 1);
});

Deno.test("a repeated entry takes no rank after its first occurrence", () => {
  // distinct entries before "t": x, y (the second x is a repeat) -> rank 3
  assert.equal(targetRank(["x", "y", "x", "t"], "t"), 3);
  // the target itself repeated: its first occurrence counts
  assert.equal(targetRank(["t", "x", "t"], "t"), 1);
});

Deno.test("an absent target and an empty list are misses at every k", () => {
  assert.equal(targetRank(["x", "y"], "t"), Infinity);
  assert.equal(targetRank([], "t"), Infinity);
  for (const k of [1, 5, 10, 1000]) {
    assert.equal(hitAt(Infinity, k), 0);
    assert.equal(ndcgAt(Infinity, k), 0);
  }
});

Deno.test("HR@k and NDCG@k of one relevant item, by hand", () => {
  // rank 1: 1/log2(2) = 1
  assert.equal(hitAt(1, 1), 1);
  assert.equal(ndcgAt(1, 5), 1);
  // rank 2: 1/log2(3) = ln 2 / ln 3 = 0.693147.../1.098612... = 0.6309297535714575
  close(ndcgAt(2, 5), 0.6309297535714575, "rank 2");
  // rank 3: 1/log2(4) = 1/2
  assert.equal(ndcgAt(3, 5), 0.5);
  // rank 7: 1/log2(8) = 1/3
  close(ndcgAt(7, 10), 1 / 3, "rank 7");
  // rank 6 is outside k = 5
  assert.equal(hitAt(6, 5), 0);
  assert.equal(ndcgAt(6, 5), 0);
  assert.equal(hitAt(5, 5), 1);
});

Deno.test("k larger than the list: a listed target still counts, a missing one does not", () => {
  const list = ["a", "b", "c"];
  assert.equal(hitAt(targetRank(list, "c"), 10), 1);
  assert.equal(ndcgAt(targetRank(list, "c"), 10), 0.5); // rank 3
  assert.equal(hitAt(targetRank(list, "z"), 10), 0);
});

Deno.test("mean HR and NDCG over records, by hand", () => {
  // ranks 1, 3, 2, miss
  const means = meanRanking([1, 3, 2, Infinity], [1, 5]);
  assert.equal(means["HR@1"], 1 / 4);
  assert.equal(means["HR@5"], 3 / 4);
  // (1 + 1/2 + 0.6309297535714575 + 0) / 4
  close(means["NDCG@5"], (1 + 0.5 + 0.6309297535714575) / 4, "NDCG@5");
});

Deno.test("valid outputs: distinct entries among the first k that are items", () => {
  const items = new Set(["A", "B", "C"]);
  const isItem = (e: string) => items.has(e);
  // first 3 distinct: A, junk, B (the second A is a repeat) -> 2 of 3
  assert.deepEqual(validOutputs(["A", "junk", "A", "B", "C"], 3, isItem), { valid: 2, total: 3 });
  // k larger than the list: all 2 looked at
  assert.deepEqual(validOutputs(["A", "junk"], 10, isItem), { valid: 1, total: 2 });
  assert.deepEqual(validOutputs([], 10, isItem), { valid: 0, total: 0 });
  // pooled over records: (2 + 1 + 0) / (3 + 2 + 0)
  assert.equal(
    validRate([{ valid: 2, total: 3 }, { valid: 1, total: 2 }, { valid: 0, total: 0 }]),
    3 / 5,
  );
  assert.equal(validRate([]), 0);
});
