import assert from "node:assert/strict";
import { InputError } from "../lib/errors.ts";
import { BiasRating, type TrainingRating } from "../lib/baselines/rating.ts";
import { buildMfLossGraph, mfShapes, trainMf } from "../lib/baselines/mf.ts";
import { setCosine, TextRetrieval, TrainingTexts } from "../lib/baselines/retrieval.ts";
import { createBaseline } from "../lib/baselines/baseline.ts";
import { EntityIndex } from "../lib/eval/entities.ts";
import type { TextRecord } from "../lib/data/types.ts";
import { Rng } from "../lib/random.ts";
import { checkGradients } from "./helpers/grad_check.ts";

Deno.test("matrix factorisation: the loss graph's gradients equal finite differences (float64)", async () => {
  const [users, items, factors] = [4, 5, 3];
  const { graph, loss, params } = buildMfLossGraph(users, items, {
    factors,
    l2: 0.3,
    dtype: "float64",
  });
  const rng = new Rng(7);
  const feeds: Parameters<typeof checkGradients>[3] = {
    // User 1 and item 2 appear twice: their gradients sum over the batch.
    users: { dtype: "int32", shape: [6], data: Int32Array.of(0, 1, 1, 2, 3, 0) },
    items: { dtype: "int32", shape: [6], data: Int32Array.of(2, 2, 4, 0, 1, 3) },
    ratings: { dtype: "float64", shape: [6], data: Float64Array.of(5, 4, 1, 3, 2, 5) },
  };
  for (const [name, shape] of mfShapes(users, items, factors)) {
    const n = shape.reduce((a, b) => a * b, 1);
    feeds[name] = {
      dtype: "float64",
      shape,
      data: Float64Array.from(
        { length: n },
        () => (name === "global_mean" ? 3.5 : 0.5 * rng.normal()),
      ),
    };
  }
  const result = await checkGradients(graph, loss, params, feeds);
  console.log(
    `  MF: worst relative error ${result.worst.toExponential(2)} over ${result.checked} elements`,
  );
  assert.ok(result.largest > 1e-2);
  assert.ok(result.worst < 1e-6, JSON.stringify(result.perTensor));
});

/** Ratings of a rank-2 model with biases and a little noise, on a random 60% of the pairs. */
function lowRankRatings(seed: number): { train: TrainingRating[]; held: TrainingRating[] } {
  const rng = new Rng(seed);
  const [nu, ni] = [60, 40];
  const vec = () => [rng.normal(), rng.normal()];
  const p = Array.from({ length: nu }, vec), q = Array.from({ length: ni }, vec);
  const train: TrainingRating[] = [], held: TrainingRating[] = [];
  for (let u = 0; u < nu; u++) {
    for (let i = 0; i < ni; i++) {
      if (rng.float() > 0.6) continue;
      const r = 3 + 0.8 * (p[u][0] * q[i][0] + p[u][1] * q[i][1]) + 0.1 * rng.normal();
      const rating = { user: `u${u}`, item: `i${i}`, rating: Math.min(5, Math.max(1, r)) };
      (rng.float() < 0.8 ? train : held).push(rating);
    }
  }
  return { train, held };
}

Deno.test("matrix factorisation learns what the biases cannot, early-stops, and is seeded", async () => {
  const { train, held } = lowRankRatings(3);
  const rmse = (f: (u: string, i: string) => number) =>
    Math.sqrt(held.reduce((s, r) => s + (f(r.user, r.item) - r.rating) ** 2, 0) / held.length);
  const biases = new BiasRating(train, { scale: [1, 5] });
  const options = {
    factors: 4,
    l2: 0.05,
    lr: 0.02,
    batchSize: 64,
    scale: [1, 5] as [number, number],
  };
  const mf = await trainMf(train, options, held);
  const ours = rmse((u, i) => mf.predict(u, i));
  const theirs = rmse((u, i) => biases.predict(u, i));
  console.log(
    `  MF held-out RMSE ${ours.toFixed(4)} (best epoch ${mf.bestEpoch}); biases ${
      theirs.toFixed(4)
    }`,
  );
  assert.ok(ours < 0.7 * theirs, `${ours} vs ${theirs}`);
  // The kept weights are the best epoch's: their RMSE is the curve's minimum.
  assert.ok(Math.abs(ours - Math.min(...mf.curve)) < 1e-6);
  assert.equal(mf.curve.length >= mf.bestEpoch, true);
  const again = await trainMf(train, options, held);
  assert.equal(again.predict("u1", "i2"), mf.predict("u1", "i2"));
  // Unknown ids fall back to the global mean plus the known side's bias, inside the scale.
  const unknown = mf.predict("nobody", "nothing");
  assert.ok(unknown >= 1 && unknown <= 5);
  // A bad setting is an error that names it.
  await assert.rejects(() => trainMf(train, { factors: 0 }), /factors must be a positive integer/);
  await assert.rejects(() => trainMf(train, { lr: -1 }), /lr must be positive/);
  // A learning rate it diverges with is bad input naming the option, not a bug.
  await assert.rejects(
    () => trainMf(train, { ...options, lr: 1e30, epochs: 2 }),
    (e) => e instanceof InputError && /diverged at epoch 1 .*: lower lr \(1e\+30\)/.test(e.message),
  );
  // Without validation every epoch is trained.
  const fixed = await trainMf(train.slice(0, 50), { ...options, epochs: 3 });
  assert.equal(fixed.bestEpoch, 3);
  assert.deepEqual(fixed.curve, []);
});

Deno.test("set cosine", () => {
  assert.equal(setCosine(new Set(["a", "b"]), new Set(["b", "c", "d", "e"])), 1 / Math.sqrt(8));
  assert.equal(setCosine(new Set(), new Set(["a"])), 0);
  assert.equal(setCosine(undefined, new Set(["a"])), 0);
});

Deno.test("retrieval: the text of the most similar training pair, by hand", () => {
  const t = (task: string, user: string, item: string, text: string) => ({
    task,
    user,
    item,
    text,
  });
  const texts = [
    t("review", "ann", "x", "ann on x"),
    t("review", "ann", "y", "ann on y"),
    t("review", "bob", "x", "bob on x"),
    t("review", "bob", "z", "bob on z"),
    t("review", "cat", "y", "cat on y"),
    t("review", "cat", "z", "cat on z"),
    t("review", "dan", "w", "dan on w"),
    t("explanation", "ann", "x", "because x"),
  ];
  const r = new TextRetrieval(texts);
  // cat about x: the same-item candidates are ann (items x, y: cosine with cat's y, z = 1/2) and
  // bob (x, z: 1/2); cat's own items y (users ann, cat; cosine with x's ann, bob = 1/2) and z
  // (bob, cat: 1/2). All tie: the same-item pair of the earlier record wins.
  assert.equal(r.retrieve("review", "cat", "x"), "ann on x");
  // dan about z: same item bob (x, z vs w: 0) and cat (0); dan's w (users dan vs z's bob, cat: 0).
  // All 0: the same-item pair first.
  assert.equal(r.retrieve("review", "dan", "z"), "bob on z");
  // ann about z: bob shares x with ann (cosine 1/2), cat shares y (1/2); ann's x has users
  // ann, bob against z's bob, cat (1/2); y: ann, cat (1/2). Tie: bob's earlier record.
  assert.equal(r.retrieve("review", "ann", "z"), "bob on z");
  // A new user about a new item: the most frequent text (each once: the first).
  assert.equal(r.retrieve("review", "eve", "v"), "ann on x");
  // Another task has its own texts; a task without texts has no answer.
  assert.equal(r.retrieve("explanation", "bob", "x"), "because x");
  assert.equal(r.retrieve("rating", "bob", "x"), undefined);
});

Deno.test("retrieval prefers the more similar user's text about the same item", () => {
  const t = (user: string, item: string, text: string) => ({ task: "review", user, item, text });
  const r = new TextRetrieval([
    t("far", "target", "far's text"),
    t("far", "p", "-"),
    t("near", "target", "near's text"),
    t("near", "a", "-"),
    t("near", "b", "-"),
    t("me", "a", "-"),
    t("me", "b", "-"),
  ]);
  assert.equal(r.retrieve("review", "me", "target"), "near's text");
});

Deno.test("the retrieval baseline answers text records with training targets, one per (task, user, item)", () => {
  const record = (task: string, user: string, item: string, text: string): TextRecord => ({
    id: `${user}/${task}/${item}`,
    task: task as TextRecord["task"],
    template: `${task}-1`,
    split: "train",
    user,
    segments: [{ text: "User wrote about " }, { entity: item, kind: "item" }, { answer: true }],
    target: [{ text }],
  });
  const texts = new TrainingTexts(["explanation", "review"]);
  texts.add(record("review", "ann", "Guitar", "Great"));
  texts.add(record("review", "ann", "Guitar", "a second record of the pair: ignored"));
  texts.add(record("rating", "ann", "Guitar", "5"));
  texts.add(record("explanation", "bob", "Guitar", "It stays in tune."));
  assert.deepEqual(texts.list.map((x) => x.text), ["Great", "It stays in tune."]);
  const pool = new EntityIndex([{ entity: "Guitar", kind: "item", id: "g1" }]);
  const retrieval = createBaseline("retrieval", { pool, histories: new Map(), texts: texts.list }, {
    protocol: "full",
  });
  assert.deepEqual(retrieval.tasks, ["explanation", "review"]);
  const test = record("review", "bob", "Guitar", "unseen");
  assert.equal(retrieval.predict(test)?.text, "Great");
  assert.equal(retrieval.predict(record("rating", "bob", "Guitar", "4")), undefined);
});
