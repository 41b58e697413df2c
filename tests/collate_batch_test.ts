import assert from "node:assert/strict";
import { bucketByLength, makeBatch } from "../lib/collate/batch.ts";
import { Collator, exampleRng } from "../lib/collate/collator.ts";
import { tokenizeRecord } from "../lib/collate/tokenize.ts";
import type { TextRecord } from "../lib/data/types.ts";
import { Rng } from "../lib/random.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { fileURLToPath } from "node:url";

const tokenizer = await TextTokenizer.load(
  fileURLToPath(new URL("../fixtures/tokenizer/tokenizer.json", import.meta.url)),
);
const RECORDS: TextRecord[] = (await Deno.readTextFile(
  new URL("../fixtures/collate/train.jsonl", import.meta.url),
)).trim().split("\n").map((line) => JSON.parse(line));
const collator = new Collator(tokenizer.special);
const EXAMPLES = RECORDS.map((r, i) =>
  collator.collate(tokenizeRecord(tokenizer, r), exampleRng(1, 0, i))
);

Deno.test("a batch pads on the right: [PAD], positions 0, label -100, loss mask 0", () => {
  const pad = tokenizer.special.pad;
  const batch = makeBatch(EXAMPLES, pad);
  const L = Math.max(...EXAMPLES.map((e) => e.length));
  assert.equal(batch.batchSize, EXAMPLES.length);
  assert.equal(batch.length, L);
  assert.equal(batch.inputIds.length, EXAMPLES.length * L);
  assert.equal(batch.positionIds.length, EXAMPLES.length * 2 * L);
  EXAMPLES.forEach((example, b) => {
    assert.equal(batch.sep[b], example.sep);
    for (let i = 0; i < L; i++) {
      const at = b * L + i;
      const inter = batch.positionIds[b * 2 * L + i];
      const intra = batch.positionIds[b * 2 * L + L + i];
      if (i < example.length) {
        assert.equal(batch.inputIds[at], example.inputIds[i]);
        assert.equal(inter, example.inter[i]);
        assert.equal(intra, example.intra[i]);
        assert.equal(batch.labels[at], example.labels[i]);
        assert.equal(batch.lossMask[at], i >= example.sep ? 1 : 0);
        // The loss mask is 1 exactly where there is a label.
        assert.equal(batch.lossMask[at] === 1, example.labels[i] !== -100);
      } else {
        assert.deepEqual([batch.inputIds[at], inter, intra, batch.labels[at]], [pad, 0, 0, -100]);
        assert.equal(batch.lossMask[at], 0);
      }
    }
  });
  assert.ok(batch.inputIds instanceof Int32Array && batch.lossMask instanceof Float32Array);
});

Deno.test("a batch can be padded to a fixed length or a multiple, never truncated", () => {
  const pad = tokenizer.special.pad;
  assert.equal(makeBatch(EXAMPLES, pad, { length: 200 }).length, 200);
  const longest = Math.max(...EXAMPLES.map((e) => e.length));
  assert.equal(makeBatch(EXAMPLES, pad, { multipleOf: 64 }).length, Math.ceil(longest / 64) * 64);
  assert.throws(() => makeBatch(EXAMPLES, pad, { length: longest - 1 }), RangeError);
  assert.throws(() => makeBatch([], pad), RangeError);
});

Deno.test("length buckets cover every index once, group similar lengths, and are seeded", () => {
  const rng = new Rng(1);
  const lengths = Array.from({ length: 1000 }, () => 10 + rng.int(500));
  const plan = bucketByLength(lengths, 16, new Rng(7), 10);
  const all = plan.flatMap((b) => Array.from(b)).sort((a, b) => a - b);
  assert.deepEqual(all, Array.from({ length: 1000 }, (_, i) => i));
  assert.ok(plan.every((b) => b.length >= 1 && b.length <= 16));
  assert.deepEqual(plan, bucketByLength(lengths, 16, new Rng(7), 10));
  assert.notDeepEqual(plan, bucketByLength(lengths, 16, new Rng(8), 10));
  // Padding waste: far less than batches of random indices.
  const waste = (batches: ArrayLike<number>[]) =>
    batches.reduce((sum, b) => {
      const ls = Array.from(b, (i) => lengths[i]);
      return sum + ls.reduce((s, l) => s + Math.max(...ls) - l, 0);
    }, 0);
  const random = [];
  const shuffled = new Rng(7).shuffle(Array.from({ length: 1000 }, (_, i) => i));
  for (let i = 0; i < 1000; i += 16) random.push(shuffled.slice(i, i + 16));
  assert.ok(waste(plan) < waste(random) / 4, `${waste(plan)} vs ${waste(random)}`);
});
