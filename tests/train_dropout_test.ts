/** The model's dropout keep-masks (lib/train/dropout.ts): their rate, values and use of the stream. */

import assert from "node:assert/strict";
import { Rng } from "../lib/random.ts";
import { keepMask } from "../lib/train/dropout.ts";

Deno.test("keep-masks drop about p of the values and scale the others by 1/(1-p)", () => {
  for (const p of [0.1, 0.3, 0.5]) {
    const n = 200_001; // odd: the last value takes a draw of its own
    const mask = keepMask(n, p, new Rng(3));
    const zeros = mask.filter((x) => x === 0).length;
    const sd = Math.sqrt(p * (1 - p) / n);
    assert.ok(Math.abs(zeros / n - p) < 5 * sd, `p ${p}: ${zeros / n}`);
    const kept = new Set(mask.filter((x) => x !== 0));
    assert.deepEqual([...kept], [Math.fround(1 / (1 - p))]);
  }
  assert.ok(keepMask(1000, 0, new Rng(1)).every((x) => x === 1));
});

Deno.test("keep-masks: one 32-bit draw gives two values, so a seed gives one mask and the stream goes on", () => {
  const a = new Rng(11);
  const b = new Rng(11);
  assert.deepEqual(keepMask(5, 0.4, a), keepMask(5, 0.4, b));
  const twin = new Rng(11);
  for (let i = 0; i < 3; i++) twin.u32(); // 5 values: two draws of two, one of one
  assert.equal(a.u32(), twin.u32());
  // The two halves of a draw are independent values: a mask of 2 from one draw.
  const u = new Rng(12).u32();
  const pair = keepMask(2, 0.5, new Rng(12));
  assert.deepEqual([...pair], [(u & 0xffff) < 32768 ? 0 : 2, (u >>> 16) < 32768 ? 0 : 2]);
});
