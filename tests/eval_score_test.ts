import assert from "node:assert/strict";
import type { TextRecord } from "../lib/data/types.ts";
import { EntityIndex } from "../lib/eval/entities.ts";
import { storePrediction } from "../lib/eval/predictions.ts";
import { MethodScorer, prepareRecord, type ScoreOptions } from "../lib/eval/score.ts";

const pool = new EntityIndex([
  { entity: "A", kind: "item", id: "1" },
  { entity: "B", kind: "item", id: "2" },
  { entity: "C", kind: "item", id: "3" },
  { entity: "Acme", kind: "brand", id: "Acme" },
]);
const options: ScoreOptions = {
  protocol: "full",
  ks: [1, 5],
  ratingScale: [1, 5],
  heldOut: new Set(["seq-9"]),
};
const seq = (id: string, template: string, target: string): TextRecord => ({
  id,
  task: "sequential",
  template,
  split: "test",
  user: "u",
  segments: [{ text: "next? " }, { answer: true }],
  target: [{ entity: target, kind: "item" }],
  candidates: ["A", "B", "C"],
});

Deno.test("a task whose records all lack predictions reports null metrics and its missing count", () => {
  const scorer = new MethodScorer(pool, options);
  scorer.add(prepareRecord(seq("r1", "seq-1", "A"), pool, options, "test.jsonl")!, undefined);
  const result = scorer.result().sequential!;
  assert.equal(result.missing, 1);
  assert.deepEqual(result.metrics, {
    "HR@1": null,
    "HR@5": null,
    "NDCG@5": null,
    valid: null,
    count: 0,
  });
  assert.deepEqual(result.templates, {});
  assert.equal(result.seen, undefined);
});

Deno.test("entities outside the pool or not items are invalid outputs that still take a rank", () => {
  const scorer = new MethodScorer(pool, options);
  const record = prepareRecord(seq("r1", "seq-9", "B"), pool, options, "test.jsonl")!;
  assert.equal(record.heldOut, true);
  const prediction = storePrediction(
    {
      id: "r1",
      predictions: [{ entity: "Acme" }, { entity: "zzz" }, { entity: "zzz" }, { entity: "B" }],
    },
    pool,
  );
  // distinct outputs Acme, zzz, B: rank of B is 3; 1 valid output of 3
  scorer.add(record, prediction);
  const result = scorer.result().sequential!;
  assert.equal(result.metrics["HR@1"], 0);
  assert.equal(result.metrics["NDCG@5"], 0.5);
  assert.equal(result.metrics.valid, 1 / 3);
  assert.deepEqual(result.heldOut, result.metrics);
});

Deno.test("records that break the dataset contract are input errors naming the record", () => {
  const sampled = { ...options, protocol: "sampled" as const };
  assert.throws(
    () => prepareRecord(seq("r1", "seq-1", "Z"), pool, options, "test.jsonl"),
    /test\.jsonl: record "r1": target "Z" is not an item of the pool/,
  );
  assert.throws(
    () => prepareRecord({ ...seq("r2", "seq-1", "A"), candidates: ["B", "C"] }, pool, sampled, "t"),
    /record "r2": its target is not among its candidates/,
  );
  assert.throws(
    () => prepareRecord({ ...seq("r3", "seq-1", "A"), candidates: ["A", "Q"] }, pool, sampled, "t"),
    /record "r3": candidate "Q" is not in the entity pool/,
  );
  const rating: TextRecord = {
    ...seq("r4", "rating-1", "A"),
    task: "rating",
    target: [{ text: "4" }],
  };
  assert.throws(
    () => prepareRecord(rating, pool, options, "t"),
    /record "r4": has no numeric "rating"/,
  );
  // profile documents are not scored
  assert.equal(prepareRecord({ ...rating, task: "profile" }, pool, options, "t"), undefined);
});

Deno.test("a rating given as plain-number text is read; other text is no rating", () => {
  assert.equal(storePrediction({ id: "x", text: " 4.5 " }, pool).rating, 4.5);
  assert.equal(storePrediction({ id: "x", text: "4 stars" }, pool).rating, null);
  assert.equal(storePrediction({ id: "x", rating: 2, text: "4" }, pool).rating, 2);
});
