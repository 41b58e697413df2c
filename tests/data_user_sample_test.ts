import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { sampleKey, UserSample } from "../lib/data/user_sample.ts";

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
