import assert from "node:assert/strict";
import { openDataset, readRecords } from "../lib/data/dataset.ts";
import type { TextRecord } from "../lib/data/types.ts";
import { join } from "node:path";
import { createBaseline } from "../lib/baselines/baseline.ts";
import { loadBaselines } from "../lib/baselines/load.ts";
import { TrainingHistories } from "../lib/baselines/histories.ts";
import { ItemKnn } from "../lib/baselines/itemknn.ts";
import { orderItems, popularityCounts, topItems } from "../lib/baselines/popularity.ts";
import { Rng } from "../lib/random.ts";
import { BiasRating, TrainingRatings } from "../lib/baselines/rating.ts";
import { EntityIndex } from "../lib/eval/entities.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

// The fixture (fixtures/eval/tiny), items A..H in pool order, sequences oldest first:
//   user 1: A B C | valid D | test E        user 4: A D | valid B | test C
//   user 2: A B   | valid C | test D        user 5: B E | valid A | test C
//   user 3: A C   | valid B | test F
const DIR = fileURLToPath(new URL("../fixtures/eval/tiny", import.meta.url));
const NAMES: Record<string, string> = {
  A: "Alpha Lipstick",
  B: "Beta Mascara",
  C: "Gamma Nail Polish",
  D: "Delta Shampoo",
  E: "Epsilon Serum",
  F: "Zeta Brush",
  G: "Eta Perfume",
  H: "Theta Lotion",
};
const letter = (entity: string) => Object.keys(NAMES).find((k) => NAMES[k] === entity) ?? entity;
const close = (actual: number, expected: number, what = "") =>
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what} ${actual} != ${expected}`);

async function load() {
  const data = await openDataset(DIR);
  const pool = new EntityIndex(data.entities);
  const histories = new TrainingHistories(pool);
  for await (const r of readRecords(data, "valid")) histories.addValid(r, "valid.jsonl");
  for await (const r of readRecords(data, "test")) histories.addTest(r, "test.jsonl");
  const test: TextRecord[] = [];
  for await (const r of readRecords(data, "test")) test.push(r);
  const ratings = new TrainingRatings();
  for await (const r of readRecords(data, "train")) ratings.add(r);
  return { data, pool, histories: histories.byUser, test, ratings: ratings.list };
}

const byId = (records: TextRecord[], id: string) => records.find((r) => r.id === id)!;
const ranked = (line: { predictions?: { entity: string }[] } | undefined) =>
  line!.predictions!.map((p) => letter(p.entity)).join(" ");

Deno.test("training histories are the valid records' histories: no valid or test target", async () => {
  const { pool, histories } = await load();
  const asLetters = (user: string) =>
    Array.from(histories.get(user)!, (id) => letter(pool.name(id))).join(" ");
  assert.equal(asLetters("1"), "A B C");
  assert.equal(asLetters("2"), "A B");
  assert.equal(asLetters("3"), "A C");
  assert.equal(asLetters("4"), "A D");
  assert.equal(asLetters("5"), "B E");
});

Deno.test("a user without a valid record falls back to the test history minus the validation item", async () => {
  const { pool } = await load();
  const histories = new TrainingHistories(pool);
  const test = {
    id: "u9/sequential/seq-1/test",
    task: "sequential",
    template: "seq-1",
    split: "test",
    user: "9",
    segments: [],
    history: [NAMES.A, NAMES.B, NAMES.G], // G is the validation item
  } as TextRecord;
  histories.addTest(test, "test.jsonl");
  assert.deepEqual(Array.from(histories.byUser.get("9")!), [pool.id(NAMES.A), pool.id(NAMES.B)]);
  assert.throws(
    () => histories.addTest({ ...test, user: "10", history: ["No Such Item"] }, "test.jsonl"),
    /test\.jsonl: record "u9\/sequential\/seq-1\/test": history item "No Such Item" is not an item/,
  );
});

Deno.test("popularity counts training interactions only", async () => {
  const { pool, histories } = await load();
  const counts = popularityCounts(histories.values(), pool.size);
  // A: users 1 2 3 4; B: 1 2 5; C: 1 3; D: 4; E: 5; F G H: none; the brand entity: none
  assert.deepEqual(Array.from(counts), [4, 3, 2, 1, 1, 0, 0, 0, 0]);
  // a repeated purchase counts twice
  assert.deepEqual(Array.from(popularityCounts([Int32Array.of(0, 1, 0)], 3)), [2, 1, 0]);
});

Deno.test("most-popular over all items: unseen items by count, ties in pool order", async () => {
  const { pool, histories, test } = await load();
  const pop = createBaseline("pop", { pool, histories }, { protocol: "full" });
  // user 1 has seen A B C D: E (1), then F G H (0, pool order)
  assert.equal(ranked(pop.predict(byId(test, "u1/sequential/seq-1/test"))), "E F G H");
  // user 2 has seen A B C: D and E tie at 1, D comes first in the pool
  assert.equal(ranked(pop.predict(byId(test, "u2/sequential/seq-1/test"))), "D E F G H");
  // user 4 has seen A D B: C (2), E (1), F G H
  const line = pop.predict(byId(test, "u4/sequential/seq-1/test"))!;
  assert.equal(ranked(line), "C E F G H");
  assert.deepEqual(line.predictions!.map((p) => p.score), [2, 1, 0, 0, 0]);
  assert.deepEqual(
    { id: line.id, user: line.user, task: line.task, template: line.template },
    { id: "u4/sequential/seq-1/test", user: "4", task: "sequential", template: "seq-1" },
  );
  // with seen items kept and a cut at 3: A (4), B (3), C (2)
  const all = createBaseline("pop", { pool, histories }, {
    protocol: "full",
    excludeSeen: false,
    top: 3,
  });
  assert.equal(ranked(all.predict(byId(test, "u4/sequential/seq-1/test"))), "A B C");
  // no prediction for tasks it does not answer
  assert.equal(pop.predict(byId(test, "u1/rating/rating-1/test")), undefined);
});

Deno.test("most-popular ranks the candidates under sampled and every item under full, for both item tasks", async () => {
  const { pool, histories, test } = await load();
  const sampled = createBaseline("pop", { pool, histories }, { protocol: "sampled" });
  // user 1's candidates G E F: E (1), F (0), G (0)
  assert.equal(ranked(sampled.predict(byId(test, "u1/sequential/seq-1/test"))), "E F G");
  // user 3's direct candidates H D F: D (1), F, H
  assert.equal(ranked(sampled.predict(byId(test, "u3/direct/direct-1/test"))), "D F H");
  const full = createBaseline("pop", { pool, histories }, { protocol: "full" });
  // open direct recommendation: user 3 has seen A C B; the rest by count D (1), E (1), F G H (0)
  assert.equal(ranked(full.predict(byId(test, "u3/direct/direct-1/test"))), "D E F G H");
});

Deno.test("item-kNN cosine similarities from co-occurrence, by hand", async () => {
  const { pool, histories } = await load();
  const knn = new ItemKnn(histories.values(), pool.size);
  const [A, B, C, D, E] = ["A", "B", "C", "D", "E"].map((k) => pool.id(NAMES[k]));
  // users holding: A 4, B 3, C 2, D 1, E 1; together: AB 2 (users 1, 2), AC 2 (1, 3),
  // BC 1 (1), AD 1 (4), BE 1 (5)
  close(knn.similarity(A, B), 2 / Math.sqrt(4 * 3), "AB");
  close(knn.similarity(B, A), 2 / Math.sqrt(4 * 3), "BA");
  close(knn.similarity(A, C), 2 / Math.sqrt(4 * 2), "AC");
  close(knn.similarity(B, C), 1 / Math.sqrt(3 * 2), "BC");
  close(knn.similarity(A, D), 1 / Math.sqrt(4 * 1), "AD");
  close(knn.similarity(B, E), 1 / Math.sqrt(3 * 1), "BE");
  assert.equal(knn.similarity(C, D), 0);
  // keeping one neighbour: C keeps A (2/sqrt 8 > 1/sqrt 6) and loses B
  const one = new ItemKnn(histories.values(), pool.size, { neighbors: 1 });
  close(one.similarity(C, A), 2 / Math.sqrt(8), "CA kept");
  assert.equal(one.similarity(C, B), 0);
});

Deno.test("item-kNN ranks by summed similarity to the history, then popularity", async () => {
  const { pool, histories, test } = await load();
  const knn = createBaseline("itemknn", { pool, histories }, { protocol: "full" });
  // user 3 (history A C B): D = sim(A,D) = 1/2, E = sim(B,E) = 1/sqrt 3; F G H score 0
  const u3 = knn.predict(byId(test, "u3/sequential/seq-1/test"))!;
  assert.equal(ranked(u3), "E D F G H");
  close(u3.predictions![0].score!, 1 / Math.sqrt(3), "E");
  close(u3.predictions![1].score!, 1 / 2, "D");
  // user 5 (history B E A): C = sim(A,C) + sim(B,C) = 2/sqrt 8 + 1/sqrt 6, D = 1/2
  const u5 = knn.predict(byId(test, "u5/sequential/seq-1/test"))!;
  assert.equal(ranked(u5), "C D F G H");
  close(u5.predictions![0].score!, 2 / Math.sqrt(8) + 1 / Math.sqrt(6), "C");
  // the scratch scores are reset between records: the same record scores the same again
  assert.deepEqual(knn.predict(byId(test, "u5/sequential/seq-1/test")), u5);
  // recency 0.5: A (last) weighs 1, E 1/2, B 1/4: C = 2/sqrt 8 + (1/4)(1/sqrt 6)
  const recent = createBaseline("itemknn", { pool, histories }, { protocol: "full", recency: 0.5 });
  close(
    recent.predict(byId(test, "u5/sequential/seq-1/test"))!.predictions![0].score!,
    2 / Math.sqrt(8) + 0.25 / Math.sqrt(6),
    "C recency",
  );
  // sampled: user 3's candidates H D F: D (1/2), then F and H at 0 by popularity, pool order
  const sampled = createBaseline("itemknn", { pool, histories }, { protocol: "sampled" });
  assert.equal(ranked(sampled.predict(byId(test, "u3/sequential/seq-1/test"))), "D F H");
});

Deno.test("item-kNN weighs a repeated history item by its latest occurrence", () => {
  // items 0, 1, 2; users {0, 2}, {1, 2}: sim(0,2) = 1/sqrt 2 = sim(1,2)
  const knn = new ItemKnn([Int32Array.of(0, 2), Int32Array.of(1, 2)], 3, { recency: 0.5 });
  const scores = new Float64Array(3);
  // history 0 1 0: item 0's latest occurrence is last (weight 1), item 1 one step back (1/2)
  const touched = knn.score(Int32Array.of(0, 1, 0), scores);
  assert.deepEqual(touched, [2]);
  close(scores[2], 1 / Math.sqrt(2) + 0.5 / Math.sqrt(2));
});

Deno.test("the random baseline is seeded, excludes history, and permutes candidates", async () => {
  const { pool, histories, test } = await load();
  const make = (seed: number, protocol: "full" | "sampled") =>
    createBaseline("random", { pool, histories }, { protocol, seed, top: 3 });
  const record = byId(test, "u1/sequential/seq-1/test");
  const a = make(1, "full").predict(record)!;
  assert.deepEqual(make(1, "full").predict(record), a);
  assert.equal(a.predictions!.length, 3);
  // user 1 has seen A B C D: only E F G H may appear
  for (const p of a.predictions!) assert.ok("EFGH".includes(letter(p.entity)));
  const seeds = [1, 2, 3, 4, 5, 6].map((s) => ranked(make(s, "full").predict(record)));
  assert.ok(new Set(seeds).size > 1, "different seeds should give different rankings");
  const sampled = ranked(make(1, "sampled").predict(record));
  assert.deepEqual(sampled.split(" ").sort(), ["E", "F", "G"]);
});

Deno.test("the random baseline's first item is any item alike, the pool's last quarter too", () => {
  // 400 items, top 20: a draw small against the pool, where an unshuffled Floyd sample ranks the
  // last items first too rarely (20.5% from the last quarter here, instead of 25%).
  const pool = new EntityIndex(
    Array.from({ length: 400 }, (_, i) => ({ entity: `item ${i}`, kind: "item", id: `i${i}` })),
  );
  const random = createBaseline("random", { pool, histories: new Map() }, {
    protocol: "full",
    seed: 3,
    top: 20,
  });
  let lastQuarter = 0;
  const records = 3000;
  for (let r = 0; r < records; r++) {
    const line = random.predict({
      id: `u${r}/sequential/seq-1/test`,
      task: "sequential",
      template: "seq-1",
      split: "test",
      user: `${r}`,
      segments: [],
    })!;
    if (Number(line.predictions![0].entity.slice(5)) >= 300) lastQuarter++;
  }
  // Binomial(3000, 0.25): sd 0.8%.
  const share = lastQuarter / records;
  assert.ok(share > 0.22 && share < 0.28, `${share} of the first items from the last quarter`);
});

Deno.test("the rating baseline: mean plus damped biases over every training rating", async () => {
  const { ratings, test } = await load();
  // training ratings (the fixture's train.jsonl; user 1 rates A twice, a repeat purchase, and
  // each rating counts):
  //   1: A5 A5 B4 C4   2: A4 B2   3: A5 C3   4: A3 D2   5: B3 E4   -> 12 ratings, sum 44
  assert.equal(ratings.length, 12);
  const mu = 44 / 12;
  // damping 0: b_i = mean of item i - mu, so mu + b_E = E's mean = 4; A's mean is 22 / 5;
  // b_u1 = mean of (r - item mean) over A A B C = (0.6 + 0.6 + (4 - 3) + (4 - 3.5)) / 4 = 0.675
  const plain = new BiasRating(ratings, { damping: 0 });
  close(plain.mean, mu, "mu");
  close(plain.predict("1", NAMES.E), 4 + 0.675, "user 1, E");
  // damping 5: every sum is divided by 5 + n
  const bA = (3 * (5 - mu) + (4 - mu) + (3 - mu)) / (5 + 5);
  const bB = ((4 - mu) + (2 - mu) + (3 - mu)) / (5 + 3);
  const bC = ((4 - mu) + (3 - mu)) / (5 + 2);
  const bE = (4 - mu) / (5 + 1);
  const bU1 = (2 * (5 - mu - bA) + (4 - mu - bB) + (4 - mu - bC)) / (5 + 4);
  const damped = new BiasRating(ratings, { damping: 5, scale: [1, 5] });
  close(damped.predict("1", NAMES.E), mu + bU1 + bE, "damped");
  // unknown user and item: the mean; predictions are clipped to the scale
  close(damped.predict("nobody", "nothing"), mu, "unknown");
  assert.equal(
    new BiasRating([{ user: "u", item: "i", rating: 9 }], { damping: 0, scale: [1, 5] }).predict(
      "u",
      "i",
    ),
    5,
  );
  // as a baseline: a rating line for rating records only
  const mean = createBaseline(
    "mean",
    { pool: new EntityIndex([]), histories: new Map(), ratings },
    {
      protocol: "full",
      damping: 0,
    },
  );
  const line = mean.predict(byId(test, "u1/rating/rating-1/test"))!;
  assert.equal(line.id, "u1/rating/rating-1/test");
  close(line.rating!, 4.675, "line");
  assert.equal(mean.predict(byId(test, "u1/sequential/seq-1/test")), undefined);
});

Deno.test("validation ratings count each (user, item) once: the split asks it in several templates", () => {
  const rating = (split: "train" | "valid", template: string, value: number): TextRecord => ({
    id: `u1/rating/${template}/${split}`,
    task: "rating",
    template,
    split,
    user: "1",
    segments: [{ entity: NAMES.A, kind: "item" }, { answer: true }],
    rating: value,
  });
  const valid = new TrainingRatings();
  for (const t of ["rating-1", "rating-3", "rating-4"]) valid.add(rating("valid", t, 4));
  assert.deepEqual(valid.list, [{ user: "1", item: NAMES.A, rating: 4 }]);
  const train = new TrainingRatings();
  train.add(rating("train", "rating-1", 4));
  train.add(rating("train", "rating-1", 2)); // bought again, rated again
  assert.deepEqual(train.list.map((r) => r.rating), [4, 2]);
});

Deno.test("top-k selection equals the first k of the full order, ties included", () => {
  const rng = new Rng(11);
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + rng.int(60);
    const ids = rng.sample(100, n);
    // few distinct scores and popularities, so ties are common
    const scores = new Float64Array(100).map(() => rng.int(4));
    const popularity = new Float64Array(100).map(() => rng.int(3));
    const skipped = new Set(rng.sample(100, 10));
    const k = rng.int(25);
    const score = (id: number) => scores[id];
    const expected = orderItems(ids.filter((id) => !skipped.has(id)), score, popularity).slice(
      0,
      k,
    );
    assert.deepEqual(topItems(ids, score, popularity, k, (id) => skipped.has(id)), expected);
  }
});

/** A copy of the fixture whose manifest says it was textualized with `--train-through valid`. */
async function refitCopy(dir: string): Promise<string> {
  for (const entry of Deno.readDirSync(DIR)) {
    await Deno.copyFile(join(DIR, entry.name), join(dir, entry.name));
  }
  const manifest = JSON.parse(await Deno.readTextFile(join(DIR, "manifest.json")));
  manifest.options.train_through = "valid";
  await Deno.writeTextFile(join(dir, "manifest.json"), JSON.stringify(manifest));
  return dir;
}

Deno.test("a refit dataset (--train-through valid): the item baselines learn the validation item too", async () => {
  await withTempDir(async (dir) => {
    const data = await openDataset(await refitCopy(dir));
    const pool = new EntityIndex(data.entities);
    const histories = new TrainingHistories(pool, { throughValid: true });
    for await (const r of readRecords(data, "valid")) histories.addValid(r, "valid.jsonl");
    for await (const r of readRecords(data, "test")) histories.addTest(r, "test.jsonl");
    const asLetters = (user: string) =>
      Array.from(histories.byUser.get(user)!, (id) => letter(pool.name(id))).join(" ");
    // The test histories in full: training items then the validation item, never the test item.
    assert.deepEqual(["1", "2", "3", "4", "5"].map(asLetters), [
      "A B C D",
      "A B C",
      "A C B",
      "A D B",
      "B E A",
    ]);
    // loadBaselines takes them from the manifest: its item-kNN is the one trained on these
    // histories, and it ranks some test record differently from the plain fixture's.
    const options = { protocol: "full" as const };
    const plain = (await loadBaselines(await openDataset(DIR), ["itemknn"], options)).get(
      "itemknn",
    )!;
    const refit = (await loadBaselines(data, ["itemknn"], options)).get("itemknn")!;
    const expected = createBaseline("itemknn", { pool, histories: histories.byUser }, options);
    let differs = 0;
    for await (const r of readRecords(data, "test")) {
      if (r.task !== "sequential") continue;
      assert.deepEqual(refit.predict(r), expected.predict(r), r.id);
      if (ranked(refit.predict(r)) !== ranked(plain.predict(r))) differs++;
    }
    assert.ok(differs > 0);
  });
});
