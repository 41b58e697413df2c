import assert from "node:assert/strict";
import { protocolRanking } from "../lib/eval/protocol.ts";
import { targetRank } from "../lib/metrics/ranking.ts";

Deno.test("full protocol: the list as given, repeats dropped", () => {
  assert.deepEqual(protocolRanking([5, 9, 5, 2, 7], "full"), [5, 9, 2, 7]);
  assert.deepEqual(protocolRanking([], "full"), []);
});

Deno.test("sampled protocol: only the candidates, in the method's order", () => {
  assert.deepEqual(protocolRanking([5, 9, 5, 2, 7], "sampled", [7, 2, 3]), [2, 7]);
  assert.throws(() => protocolRanking([1], "sampled"), TypeError);
});

Deno.test("a method ranking every item gets the same sampled rank as one ranking the candidates", () => {
  const candidates = [40, 7, 13, 2]; // target 13
  // ranks all 50 items: 7 first, then 30 others, 13, then 40 and 2 among the rest
  const everything = [7, ...Array.from({ length: 30 }, (_, i) => 100 + i), 13, 40, 2];
  const onlyCandidates = [7, 13, 40, 2];
  const a = targetRank(protocolRanking(everything, "sampled", candidates), 13);
  const b = targetRank(protocolRanking(onlyCandidates, "sampled", candidates), 13);
  assert.equal(a, 2);
  assert.equal(b, 2);
  // under full the long list puts the target at 32
  assert.equal(targetRank(protocolRanking(everything, "full"), 13), 32);
});

Deno.test("sampled: a target the method did not list is a miss, invalid outputs take no rank", () => {
  const candidates = [1, 2, 3];
  assert.equal(targetRank(protocolRanking([2, 1], "sampled", candidates), 3), Infinity);
  // -1: an output that is not in the pool; under full it takes a rank, under sampled not
  assert.equal(targetRank(protocolRanking([-1, 3], "full"), 3), 2);
  assert.equal(targetRank(protocolRanking([-1, 3], "sampled", candidates), 3), 1);
});
