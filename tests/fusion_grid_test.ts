// lib/eval/fusion.ts: the grid's HR@k / NDCG@k agree with ranking each record's candidates by
// fuseScores and rankByScore (what infer --rerank does) and counting by hand.
import assert from "node:assert/strict";
import { fusionGrid, type FusionRecord, fusionRecords } from "../lib/eval/fusion.ts";
import { fuseScores } from "../lib/generate/rerank.ts";
import { rankByScore } from "../lib/generate/score.ts";
import { Rng } from "../lib/random.ts";

function randomRecords(rng: Rng, count: number): FusionRecord[] {
  return Array.from({ length: count }, () => {
    const n = 5 + rng.int(30);
    const items = Array.from({ length: n }, (_, i) => `i${i}`);
    // Scores on a coarse grid so that ties happen.
    const first = Float64Array.from({ length: n }, (_, i) => 10 - i * 0.25);
    const lm = Float64Array.from({ length: n }, () => -rng.int(12) / 2);
    // Some targets are outside the candidates.
    const target = rng.int(4) === 0 ? "missing" : items[rng.int(n)];
    return { items, first, lm, target };
  });
}

Deno.test("fusionGrid: the same figures as ranking by fuseScores and counting by hand", () => {
  const records = randomRecords(new Rng(11), 300);
  const weights = [0, 0.3, 0.5, 1], tops = [5, 20, 100], ks = [1, 5, 10];
  const points = fusionGrid(records, { weights, tops, ks });
  assert.equal(points.length, weights.length * tops.length);
  for (const point of points) {
    for (const k of ks) {
      let hits = 0, gain = 0;
      for (const r of records) {
        const n = Math.min(point.top, r.items.length);
        const fused = fuseScores(r.first.slice(0, n), r.lm.slice(0, n), point.weight);
        const order = Array.from(rankByScore(fused), (c) => r.items[c]);
        const rank = order.indexOf(r.target);
        if (rank >= 0 && rank < k) {
          hits++;
          gain += 1 / Math.log2(rank + 2);
        }
      }
      assert.ok(Math.abs(point.metrics[`HR@${k}`] - hits / records.length) < 1e-12);
      assert.ok(Math.abs(point.metrics[`NDCG@${k}`] - gain / records.length) < 1e-12);
    }
  }
  // Not all the same: the weight changes the figures.
  const ndcg = points.filter((p) => p.top === 20).map((p) => p.metrics["NDCG@10"]);
  assert.ok(new Set(ndcg).size > 1);
});

Deno.test("fusionRecords: entries back in the first stage's order; missing scores are errors", () => {
  const [r] = fusionRecords(
    [{
      id: "u1",
      predictions: [
        { entity: "A", item_id: "a", score: -1, lm_score: -1, first_score: 2 },
        { entity: "B", item_id: "b", score: -2, lm_score: -4, first_score: 3 },
      ],
    }],
    new Map([["u1", "a"]]),
  );
  assert.deepEqual(r.items, ["b", "a"]);
  assert.deepEqual(Array.from(r.lm), [-4, -1]);
  assert.throws(
    () =>
      fusionRecords(
        [{ id: "u1", predictions: [{ entity: "A", score: 1 }] }],
        new Map([["u1", "A"]]),
      ),
    /without lm_score/,
  );
  assert.throws(() => fusionRecords([{ id: "u2" }], new Map()), /no target/);
});

Deno.test("fusionGrid: a count above the longest list is scored once, as that list's length", () => {
  const records = randomRecords(new Rng(12), 50); // 5 to 34 candidates each
  const longest = Math.max(...records.map((r) => r.items.length));
  assert.ok(longest < 50);
  const points = fusionGrid(records, { weights: [0, 0.5], tops: [10, 20, 50, 100], ks: [10] });
  // 50 and 100 score the same lists: one point each weight, named by the count the lists reach,
  // so that infer --rerank-tuned reranks no more candidates than were tuned on.
  assert.deepEqual([...new Set(points.map((p) => p.top))], [10, 20, longest]);
  assert.equal(points.length, 2 * 3);
  const at = (top: number) => points.filter((p) => p.top === top).map((p) => p.metrics);
  assert.deepEqual(
    at(longest),
    fusionGrid(records, { weights: [0, 0.5], tops: [1000], ks: [10] }).map((p) => p.metrics),
  );
});
