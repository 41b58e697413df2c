import assert from "node:assert/strict";
import { compare, compareTopTen, run } from "../bench/parity.ts";

Deno.test("the parity check's tolerance is float32's: 1e-4 absolute plus 1e-3 relative", () => {
  const want = Float32Array.of(0, 1, -200, 5);
  assert.deepEqual(compare(want, want), { max_abs: 0, max_rel: 0, within_tolerance: true });
  const near = compare(want, Float32Array.of(5e-5, 1.0005, -200.1, 5));
  assert.ok(near.within_tolerance, JSON.stringify(near));
  const far = compare(want, Float32Array.of(0, 1.01, -200, 5));
  assert.equal(far.within_tolerance, false);
  assert.ok(Math.abs(far.max_abs - 0.01) < 1e-6, JSON.stringify(far));
  assert.equal(compare(want, Float32Array.of(0, NaN, -200, 5)).within_tolerance, false);
});

Deno.test("the parity check of the CPU against itself finds no difference", async () => {
  const r = await run({ device: "cpu" });
  assert.equal(r.device, "cpu");
  assert.equal(r.within_tolerance, true);
  for (const key of ["forward_logits", "train_step_updated", "train_step_loss"]) {
    assert.equal((r[key] as { max_abs: number }).max_abs, 0, key);
  }
  assert.equal((r.train_step_updated as { tensors: number }).tensors, 24);
  const top10 = r.top10 as {
    identical_lists: number;
    overlap: number;
    users: number;
    scores: { max_abs: number; within_tolerance: boolean };
  };
  assert.deepEqual(
    [top10.identical_lists, top10.overlap, top10.users, top10.scores.max_abs],
    [1, 1, 8, 0],
  );
  assert.equal(top10.scores.within_tolerance, true);
});

Deno.test("the top-10 comparison goes by items: rounding of a score is not another item, a swap is", () => {
  const list = [{ entity: "A", score: -1 }, { entity: "B", score: -2 }];
  const rounded = list.map((p) => ({ ...p, score: p.score * (1 + 1e-6) }));
  const same = compareTopTen([list], [rounded]);
  assert.deepEqual([same.identical_lists, same.overlap], [1, 1]);
  assert.equal(same.scores!.within_tolerance, true);
  const swapped = compareTopTen([list], [[list[1], list[0]]]);
  assert.deepEqual([swapped.identical_lists, swapped.overlap, swapped.scores], [0, 1, undefined]);
  const off = compareTopTen([list], [[list[0], { entity: "B", score: -3 }]]);
  assert.equal(off.scores!.within_tolerance, false);
  const other = compareTopTen([list], [[list[0], { entity: "C", score: -2 }]]);
  assert.deepEqual([other.identical_lists, other.overlap], [0, 0.5]);
});
