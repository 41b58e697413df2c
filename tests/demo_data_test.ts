/**
 * The built-in demo dataset (fixtures/demo): the committed files are exactly what the seeded
 * generator writes, and the data has the size and the learnable structure the demo relies on
 * (short-term "next item" patterns a tiny model can pick up, preferred categories).
 */

import assert from "node:assert/strict";
import { parseCsv } from "../lib/data/csv.ts";
import { sentences } from "../lib/data/text.ts";
import { readLines } from "../lib/io/lines.ts";
import { generateDemo } from "../fixtures/demo/generate.ts";
import { fixture } from "./helpers/textualize.ts";

async function table(name: string): Promise<Record<string, string>[]> {
  const rows: Record<string, string>[] = [];
  let header: string[] | undefined;
  for await (const { fields } of parseCsv(readLines(fixture("demo", name)))) {
    if (!header) header = fields;
    else rows.push(Object.fromEntries(header.map((h, i) => [h, fields[i]])));
  }
  return rows;
}

Deno.test("the committed demo files are exactly what the generator writes", async () => {
  const data = generateDemo();
  assert.equal(await Deno.readTextFile(fixture("demo", "interactions.csv")), data.interactions);
  assert.equal(await Deno.readTextFile(fixture("demo", "users.csv")), data.users);
  assert.equal(await Deno.readTextFile(fixture("demo", "items.csv")), data.items);
  assert.notEqual(generateDemo(7).interactions, data.interactions);
});

Deno.test("demo catalog, users and interactions have the documented shape", async () => {
  const items = await table("items.csv");
  const users = await table("users.csv");
  const rows = await table("interactions.csv");
  assert.ok(items.length >= 280 && items.length <= 320, `${items.length} items`);
  assert.equal(new Set(items.map((i) => i.title)).size, items.length);
  assert.equal(new Set(items.map((i) => i.category)).size, 10);
  assert.equal(new Set(items.map((i) => i.brand)).size, 20);
  assert.equal(users.length, 600);
  assert.deepEqual(Object.keys(users[0]), ["user_id", "age_band", "occupation", "region"]);
  const perUser = new Map<string, number>();
  for (const r of rows) {
    perUser.set(r.user_id, (perUser.get(r.user_id) ?? 0) + 1);
    assert.ok(Number.isInteger(Number(r.timestamp)) && Number(r.timestamp) > 1.6e9);
    assert.ok(["1", "2", "3", "4", "5"].includes(r.rating));
    const n = sentences(r.review).length;
    assert.ok(n >= 1 && n <= 3, r.review);
    assert.ok(r.summary.length > 0);
  }
  assert.equal(perUser.size, 600);
  for (const n of perUser.values()) assert.ok(n >= 8 && n <= 20);
});

Deno.test("demo sequences have next-item patterns that beat popularity by far", async () => {
  const rows = await table("interactions.csv");
  const seqs = new Map<string, { t: number; item: string }[]>();
  for (const r of rows) {
    seqs.set(r.user_id, [...(seqs.get(r.user_id) ?? []), {
      t: Number(r.timestamp),
      item: r.item_id,
    }]);
  }
  // Learn successor counts and popularity from everything but each user's last item.
  const next = new Map<string, Map<string, number>>();
  const pop = new Map<string, number>();
  for (const s of seqs.values()) {
    s.sort((a, b) => a.t - b.t);
    const train = s.slice(0, -1).map((x) => x.item);
    train.forEach((item, i) => {
      pop.set(item, (pop.get(item) ?? 0) + 1);
      if (i > 0) {
        const m = next.get(train[i - 1]) ?? new Map<string, number>();
        m.set(item, (m.get(item) ?? 0) + 1);
        next.set(train[i - 1], m);
      }
    });
  }
  const ranked = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).map(([k]) => k);
  const popular = ranked(pop);
  let markov = 0, popularity = 0;
  for (const s of seqs.values()) {
    const seen = new Set(s.slice(0, -1).map((x) => x.item));
    const target = s[s.length - 1].item;
    const fromPrev = ranked(next.get(s[s.length - 2].item) ?? new Map()).filter((i) =>
      !seen.has(i)
    );
    const top = [...fromPrev, ...popular.filter((i) => !seen.has(i) && !fromPrev.includes(i))];
    if (top.slice(0, 10).includes(target)) markov++;
    if (popular.filter((i) => !seen.has(i)).slice(0, 10).includes(target)) popularity++;
  }
  assert.ok(markov / seqs.size > 0.45, `successor HR@10 ${markov / seqs.size}`);
  assert.ok(popularity / seqs.size < 0.2, `popularity HR@10 ${popularity / seqs.size}`);
});

Deno.test("the generator's truth is the distribution it draws from (calibrated top-1 and top-10)", () => {
  const { truth } = generateDemo(undefined, undefined, { truth: true });
  assert.equal(truth.length, 1200);
  let top1Mass = 0, top1Hits = 0, top10Mass = 0, top10Hits = 0;
  for (const t of truth) {
    const total = t.ranking.reduce((a, r) => a + r.p, 0);
    assert.ok(Math.abs(total - 1) < 1e-9, `probabilities sum to ${total}`);
    const rank = t.ranking.findIndex((r) => r.item === t.item);
    assert.ok(rank >= 0, `user ${t.user} bought ${t.item}, which the truth gives no chance`);
    top1Mass += t.ranking[0].p;
    top1Hits += rank === 0 ? 1 : 0;
    top10Mass += t.ranking.slice(0, 10).reduce((a, r) => a + r.p, 0);
    top10Hits += rank < 10 ? 1 : 0;
    assert.ok(t.expectedRating >= 1 && t.expectedRating <= 5);
    // A follow-up has at least 0.68 * 0.3 of the mass; while one is left, so does the top item.
    if (t.draw === "followed") assert.ok(t.ranking[rank].p > 0.2, `${t.user}: ${t.item}`);
    if (t.draw === "preferred") assert.ok(t.ranking[0].p > 0.2, `${t.user}: no follow-up`);
  }
  // About two purchases in three follow a series where a follow-up is left (FOLLOW = 0.68).
  const open = truth.filter((t) => t.draw !== "free");
  const followed = open.filter((t) => t.draw === "followed").length / open.length;
  assert.ok(Math.abs(followed - 0.68) < 4 * Math.sqrt(0.25 / open.length), `${followed}`);
  // Hits of the most likely items match their probability mass: a distribution that is not the
  // one drawn from (a follow-up chance off by 0.1, say) misses by several standard errors.
  const n = truth.length;
  const se = Math.sqrt(0.25 / n); // the largest standard error of a share over n draws
  for (const [mass, hits] of [[top1Mass, top1Hits], [top10Mass, top10Hits]]) {
    assert.ok(Math.abs(mass / n - hits / n) < 4 * se, `mass ${mass / n} against hits ${hits / n}`);
  }
  // Ratings: the expected values beat the overall mean by far (0.62 against 0.89: the noise is
  // 0.6 before rounding).
  const mean = truth.reduce((a, t) => a + t.rating, 0) / n;
  const rmse = (f: (t: (typeof truth)[number]) => number) =>
    Math.sqrt(truth.reduce((a, t) => a + (f(t) - t.rating) ** 2, 0) / n);
  assert.ok(rmse((t) => t.expectedRating) < 0.7 && rmse(() => mean) > 0.85);
});
