import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { sampleKey, UserSample } from "../lib/data/user_sample.ts";
import { RecordSelection } from "../lib/data/selection.ts";

Deno.test("the sample key is SHA-256 of sample:seed:user, first 8 bytes over 2^64", () => {
  for (const [user, seed] of [["42", 1], ["A2V5R832QCSOMX", 7], ["ünïcode", 3]] as const) {
    const hex = createHash("sha256").update(`sample:${seed}:${user}`).digest("hex").slice(0, 16);
    const exact = Number(BigInt(`0x${hex}`) * 10n ** 15n / 2n ** 64n) / 1e15;
    assert.ok(Math.abs(sampleKey(user, seed) - exact) < 1e-12, user);
  }
});

Deno.test("a sample of N of U users holds about N, depends on the seed, and is stable", () => {
  const users = Array.from({ length: 20000 }, (_, i) => `${i + 1}`);
  const take = (seed: number) => {
    const sample = new UserSample({ size: 1000, users: users.length, seed });
    return users.filter((u) => sample.has(u));
  };
  const a = take(1), again = take(1), b = take(2);
  // Binomial(20000, 0.05): sd about 31.
  assert.ok(Math.abs(a.length - 1000) < 130, `${a.length} users`);
  assert.deepEqual(a, again);
  const overlap = a.filter((u) => new Set(b).has(u)).length;
  assert.ok(overlap < 150, `seeds 1 and 2 share ${overlap} users`);
  const all = new UserSample({ size: 50000, users: users.length });
  assert.ok(users.every((u) => all.has(u)), "a size past the user count keeps everyone");
  assert.throws(() => new UserSample({ size: 0, users: 10 }), /whole number >= 1/);
});

Deno.test("the records a selection expects: a sample's share of the tasks asked, then the limit", () => {
  const counts = { sequential: { "seq-1": 600, "seq-2": 400 }, rating: { "rat-1": 1000 } };
  const select = (options: ConstructorParameters<typeof RecordSelection>[1]) =>
    new RecordSelection({ users: 1000 }, options);
  assert.equal(select({}).expected(counts), 2000);
  assert.equal(select({ tasks: ["sequential"] }).expected(counts), 1000);
  assert.equal(select({ templates: ["seq-2"] }).expected(counts, 50), 50);
  const sample = { size: 100, seed: 1 };
  assert.equal(select({ tasks: ["sequential"], sample }).expected(counts), 100);
  // The limit counts the sampled records: 60 of the sample's about 100, not a tenth of 60.
  assert.equal(select({ tasks: ["sequential"], sample }).expected(counts, 60), 60);
  assert.equal(select({ sample }).expected(counts, 500), 200);
  assert.equal(select({ shard: { index: 0, count: 2 } }).expected(counts), undefined);
});
