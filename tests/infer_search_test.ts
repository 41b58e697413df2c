import assert from "node:assert/strict";
import { dynamicIntraPositions } from "../lib/collate/mod.ts";
import type { EntityEntry } from "../lib/data/types.ts";
import {
  buildPool,
  CachedDecoder,
  exclusionOf,
  type ItemPool,
  type PromptInput,
  rankByScore,
  ratingFromScores,
  scoreAnswers,
  searchItems,
  textAnswer,
} from "../lib/generate/mod.ts";
import {
  forwardSession,
  fullForwardScores,
  FunctionModel,
  itemAnswer,
  sequentialPrompt,
  testItems,
  TINY,
  tinyWeights,
  tokenizer,
} from "./helpers/infer.ts";

const { sop, eop } = tokenizer.special;
const ITEMS = testItems();
const ENTITIES: EntityEntry[] = [
  ...ITEMS.map((entity, i) => ({ entity, kind: "item", id: `i${i}` })),
  { entity: "Skin Care", kind: "category", id: "Skin Care" },
];
const pool = buildPool(tokenizer, ENTITIES, { vocabSize: TINY.vocabSize });
const weights = tinyWeights(TINY, 7);

const prompt = sequentialPrompt;

const PROMPTS = [
  prompt("7", [ITEMS[0], ITEMS[4], ITEMS[9]]),
  prompt("12", [ITEMS[2]], ". Next: "),
  prompt("3", [ITEMS[5], ITEMS[6], ITEMS[7], ITEMS[8], ITEMS[1]]),
];

/** Beams enough for an exhaustive search: the most nodes at any depth of the trie. */
function widestLevel(items: ItemPool): number {
  const counts = new Map<number, number>();
  for (const d of items.trie.depth) counts.set(d, (counts.get(d) ?? 0) + 1);
  return Math.max(...counts.values());
}

/** Item indices and scores of `scores` (one per item), best first, the first k. */
function topOf(scores: number[], k: number, skip = new Set<number>()) {
  const order = Array.from(rankByScore(scores)).filter((i) => !skip.has(i)).slice(0, k);
  return { items: order, scores: order.map((i) => scores[i]) };
}

async function withDecoder<T>(run: (d: CachedDecoder) => Promise<T>): Promise<T> {
  const decoder = await CachedDecoder.create({ config: TINY, weights }, {
    device: "cpu",
    threads: 1,
  });
  try {
    return await run(decoder);
  } finally {
    await decoder.release();
  }
}

// Float32 graphs with different shapes (cached steps vs one full sequence) differ by about 1e-6
// per log-probability; a title has up to ~15 tokens, so sums agree to well within 1e-4.
const TOLERANCE = 1e-4;

Deno.test("beam search with enough beams returns exactly the top-k of scoring every item by the full forward", async () => {
  const full = await forwardSession(TINY, weights);
  const answers = pool.items.items.map(itemAnswer);
  const beams = widestLevel(pool.items);
  try {
    await withDecoder(async (decoder) => {
      const found = await searchItems(decoder, PROMPTS, {
        pool: pool.items,
        sop,
        eop,
        beams,
        topK: 10,
      });
      let worst = 0;
      for (let p = 0; p < PROMPTS.length; p++) {
        const brute = await fullForwardScores(full, TINY.vocabSize, PROMPTS[p], answers, {
          sop,
          eop,
        });
        const expected = topOf(brute, 10);
        assert.deepEqual(Array.from(found[p].items), expected.items, `prompt ${p}`);
        for (let i = 0; i < 10; i++) {
          worst = Math.max(worst, Math.abs(found[p].scores[i] - expected.scores[i]));
        }
      }
      console.log(`beams ${beams}; worst score difference ${worst.toExponential(2)}`);
      assert.ok(worst < TOLERANCE, `scores differ by ${worst}`);
    });
  } finally {
    await full.release();
  }
});

Deno.test("the trie softmax: scores are log-probabilities among the items, and the search finds their top-k", async () => {
  const full = await forwardSession(TINY, weights);
  const answers = pool.items.items.map(itemAnswer);
  // What may follow each prefix, read off the items' tokens (not the trie): the next token of
  // every item that continues the prefix, and [E] where an item ends there.
  const allowed = (b: number, i: number) => {
    const prefix = answers[b].ids.slice(0, i);
    const next = new Set<number>();
    for (const a of answers) {
      if (a.ids.length < i || prefix.some((t, j) => a.ids[j] !== t)) continue;
      next.add(i < a.ids.length ? a.ids[i] : eop);
    }
    return [...next];
  };
  const beams = widestLevel(pool.items);
  try {
    await withDecoder(async (decoder) => {
      const excluded = [ITEMS[0], ITEMS[4]];
      const found = await searchItems(decoder, PROMPTS, {
        pool: pool.items,
        sop,
        eop,
        beams,
        topK: 8,
        trieSoftmax: true,
        exclusions: [exclusionOf(pool.items, excluded), null, null],
      });
      let worst = 0;
      for (let p = 0; p < PROMPTS.length; p++) {
        const specials = { sop, eop };
        const brute = await fullForwardScores(
          full,
          TINY.vocabSize,
          PROMPTS[p],
          answers,
          specials,
          allowed,
        );
        // A distribution over the items: the probabilities sum to 1.
        const total = brute.reduce((sum, s) => sum + Math.exp(s), 0);
        assert.ok(
          Math.abs(total - 1) < 1e-4,
          `prompt ${p}: the items' probabilities sum to ${total}`,
        );
        const skip = p === 0
          ? new Set(excluded.map((e) => pool.items.items.indexOf(e)))
          : undefined;
        const expected = topOf(brute, 8, skip);
        assert.deepEqual(Array.from(found[p].items), expected.items, `prompt ${p}`);
        for (let i = 0; i < 8; i++) {
          worst = Math.max(worst, Math.abs(found[p].scores[i] - expected.scores[i]));
        }
        // Not the vocabulary's scores: those are lower (mass goes to tokens no item continues with).
        const vocab = await fullForwardScores(full, TINY.vocabSize, PROMPTS[p], answers, specials);
        assert.ok(vocab.every((v, i) => v < brute[i]));
      }
      assert.ok(worst < TOLERANCE, `scores differ by ${worst}`);
    });
  } finally {
    await full.release();
  }
});

Deno.test("candidate and rating scores from the cached decoding equal the full forward's", async () => {
  const full = await forwardSession(TINY, weights);
  const items = pool.items.items.map(itemAnswer);
  const ratings = ["1", "2.5", "4", "5"].map((r) => textAnswer(tokenizer, r));
  try {
    await withDecoder(async (decoder) => {
      // Small runs so that the answers are split over several runs and padded.
      const cached = await scoreAnswers(
        decoder,
        PROMPTS,
        PROMPTS.map(() => [...items, ...ratings]),
        {
          sop,
          eop,
          tokensPerRun: 200,
        },
      );
      let worst = 0;
      for (let p = 0; p < PROMPTS.length; p++) {
        const brute = await fullForwardScores(full, TINY.vocabSize, PROMPTS[p], [
          ...items,
          ...ratings,
        ], { sop, eop });
        brute.forEach((s, i) => (worst = Math.max(worst, Math.abs(s - cached[p][i]))));
      }
      console.log(`worst score difference ${worst.toExponential(2)}`);
      assert.ok(worst < TOLERANCE, `scores differ by ${worst}`);
    });
  } finally {
    await full.release();
  }
});

Deno.test("batched search and scoring equal one prompt at a time", async () => {
  await withDecoder(async (decoder) => {
    const options = { pool: pool.items, sop, eop, beams: 6, topK: 8 };
    const together = await searchItems(decoder, PROMPTS, options);
    const answers = PROMPTS.map((_, p) => pool.items.items.slice(p, p + 9).map(itemAnswer));
    const scored = await scoreAnswers(decoder, PROMPTS, answers, { sop, eop });
    let worst = 0;
    for (let p = 0; p < PROMPTS.length; p++) {
      const [alone] = await searchItems(decoder, [PROMPTS[p]], options);
      assert.deepEqual(Array.from(together[p].items), Array.from(alone.items));
      alone.scores.forEach((
        s,
        i,
      ) => (worst = Math.max(worst, Math.abs(s - together[p].scores[i]))));
      const [one] = await scoreAnswers(decoder, [PROMPTS[p]], [answers[p]], { sop, eop });
      one.forEach((s, i) => (worst = Math.max(worst, Math.abs(s - scored[p][i]))));
    }
    console.log(`worst difference batched vs alone ${worst.toExponential(2)}`);
    assert.ok(worst < TOLERANCE);
  });
});

Deno.test("a beam-search score is the item's own candidate score, and every result is a distinct pool item", async () => {
  await withDecoder(async (decoder) => {
    for (const beams of [1, 2, 5]) {
      const found = await searchItems(decoder, PROMPTS, {
        pool: pool.items,
        sop,
        eop,
        beams,
        topK: 5,
      });
      for (let p = 0; p < PROMPTS.length; p++) {
        const items = Array.from(found[p].items);
        assert.ok(items.length >= 1 && items.length <= 5);
        assert.equal(new Set(items).size, items.length, "distinct");
        for (const i of items) assert.ok(i >= 0 && i < pool.items.items.length);
        const [own] = await scoreAnswers(decoder, [PROMPTS[p]], [
          items.map((i) => itemAnswer(pool.items.items[i])),
        ], { sop, eop });
        own.forEach((s, r) => assert.ok(Math.abs(s - found[p].scores[r]) < TOLERANCE));
        for (let r = 1; r < items.length; r++) {
          assert.ok(found[p].scores[r - 1] >= found[p].scores[r], "best first");
        }
      }
    }
  });
});

Deno.test("excluded items never come back, a title that another extends included", async () => {
  const full = await forwardSession(TINY, weights);
  const answers = pool.items.items.map(itemAnswer);
  try {
    await withDecoder(async (decoder) => {
      const brute = await fullForwardScores(full, TINY.vocabSize, PROMPTS[0], answers, {
        sop,
        eop,
      });
      // Exclude the three best items, and the short title that "..., Travel Pack" extends.
      const excluded = [...topOf(brute, 3).items.map((i) => ITEMS[i]), ITEMS[0]];
      const exclusion = exclusionOf(pool.items, excluded);
      assert.ok(exclusion);
      const [found] = await searchItems(decoder, [PROMPTS[0]], {
        pool: pool.items,
        sop,
        eop,
        beams: widestLevel(pool.items),
        topK: 10,
        exclusions: [exclusion],
      });
      const names = Array.from(found.items, (i) => pool.items.items[i]);
      for (const e of excluded) assert.ok(!names.includes(e), `${e} is excluded`);
      const skip = new Set(excluded.map((e) => pool.items.index.get(e)!));
      assert.deepEqual(Array.from(found.items), topOf(brute, 10, skip).items);
      // The extension of an excluded title stays reachable.
      assert.equal(exclusion.dead.size > 0, true);
      assert.ok(!exclusion.ends.has(pool.items.trie.walk(pool.items.tokens[1])));
    });
  } finally {
    await full.release();
  }
});

Deno.test("exhaustive beam search equals brute force over a plain-function model, many seeds", async () => {
  const beams = widestLevel(pool.items);
  for (let seed = 0; seed < 6; seed++) {
    const model = new FunctionModel(TINY.vocabSize, seed);
    const found = await searchItems(model, PROMPTS, { pool: pool.items, sop, eop, beams, topK: 7 });
    for (let p = 0; p < PROMPTS.length; p++) {
      const brute = pool.items.tokens.map((tokens) => {
        const fed = [sop];
        let total = model.logProbs(PROMPTS[p], fed)[tokens[0]];
        for (let i = 1; i <= tokens.length; i++) {
          fed.push(tokens[i - 1]);
          total += model.logProbs(PROMPTS[p], fed)[i < tokens.length ? tokens[i] : eop];
        }
        return total;
      });
      const expected = topOf(brute, 7);
      assert.deepEqual(Array.from(found[p].items), expected.items, `seed ${seed} prompt ${p}`);
      found[p].scores.forEach((s, i) => assert.ok(Math.abs(s - expected.scores[i]) < 1e-4));
    }
  }
});

Deno.test("[E] is taken only where an item is complete, even when the model prefers it everywhere", async () => {
  class EndEager extends FunctionModel {
    override logProbs(p: PromptInput, tokens: readonly number[]): Float64Array {
      const out = super.logProbs(p, tokens);
      out[eop] = -1e-3; // almost certain end, at every step
      return out;
    }
  }
  const found = await searchItems(new EndEager(TINY.vocabSize), PROMPTS, {
    pool: pool.items,
    sop,
    eop,
    beams: 6,
    topK: 6,
  });
  // With at least as many beams as items asked for, there are always that many complete items.
  for (const f of found) {
    assert.equal(f.items.length, 6);
    for (const i of f.items) assert.ok(pool.items.items[i] !== undefined);
  }
});

Deno.test("the expected rating follows the rating values' scores", async () => {
  await withDecoder(async (decoder) => {
    const values = [1, 2, 3, 4, 5];
    const answers = values.map((v) => textAnswer(tokenizer, String(v)));
    const [scores] = await scoreAnswers(decoder, [PROMPTS[1]], [answers], { sop, eop });
    const r = ratingFromScores(scores, values);
    const z = scores.reduce((a, s) => a + Math.exp(s), 0);
    const expected = values.reduce((a, v, i) => a + v * Math.exp(scores[i]) / z, 0);
    assert.ok(Math.abs(r.expected - expected) < 1e-9);
    assert.equal(r.mostLikely, values[rankByScore(scores)[0]]);
    assert.ok(Math.abs(r.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  });
});

Deno.test("ratingFromScores on hand-computed likelihoods", () => {
  const r = ratingFromScores(Float64Array.of(Math.log(0.1), Math.log(0.3)), [4, 5]);
  assert.ok(Math.abs(r.expected - 4.75) < 1e-12);
  assert.equal(r.mostLikely, 5);
  assert.ok(Math.abs(r.probabilities[0] - 0.25) < 1e-12);
});

Deno.test("along any item the dynamic position rule gives intra 2 .. n + 1, as search and scoring use", () => {
  for (const tokens of pool.items.tokens) {
    const intra = dynamicIntraPositions(pool.entities, tokens);
    assert.deepEqual(Array.from(intra), Array.from(tokens, (_, i) => i + 2));
  }
});
