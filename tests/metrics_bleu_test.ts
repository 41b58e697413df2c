import assert from "node:assert/strict";
import {
  addBleuStats,
  bleuFromStats,
  bleuStats,
  corpusBleu,
  emptyBleuStats,
} from "../lib/metrics/bleu.ts";
import { words } from "../lib/metrics/words.ts";
import { P5_HYPOTHESES, P5_REFERENCES } from "./helpers/p5_corpus.ts";

const close = (actual: number, expected: number, what = "") =>
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what} ${actual} != ${expected}`);

Deno.test("identical sentences of four words or more score BLEU 1", () => {
  const s = words("the cat sat on the mat");
  const result = corpusBleu([s], [s]);
  assert.deepEqual(result.precisions, [1, 1, 1, 1]);
  assert.equal(result.brevityPenalty, 1);
  assert.equal(result.bleu, 1);
});

Deno.test("BLEU of one pair with every precision positive, by hand", () => {
  // hypothesis a b c d e f (6 words), reference a b c d x f g (7 words)
  // 1-grams: a b c d f match, e does not          -> 5/6
  // 2-grams: ab bc cd match; de ef do not          -> 3/5
  // 3-grams: abc bcd match; cde def do not          -> 2/4
  // 4-grams: abcd matches; bcde cdef do not         -> 1/3
  // geometric mean = (5/6 * 3/5 * 2/4 * 1/3)^(1/4) = (1/12)^(1/4)
  // c = 6 < r = 7: brevity penalty exp(1 - 7/6) = exp(-1/6)
  const result = corpusBleu([words("a b c d e f")], [words("a b c d x f g")]);
  assert.deepEqual(result.precisions, [5 / 6, 3 / 5, 2 / 4, 1 / 3]);
  close(result.brevityPenalty, Math.exp(-1 / 6), "BP");
  close(result.bleu, Math.pow(1 / 12, 1 / 4) * Math.exp(-1 / 6), "BLEU"); // 0.45480...
});

Deno.test("counts are clipped by the reference, and one zero precision makes BLEU 0", () => {
  // hypothesis the the the the vs reference the cat:
  // 1-grams: "the" 4 times, the reference has it once -> 1/4
  // 2-grams: "the the" x3, not in the reference         -> 0/3
  // 3-grams 0/2, 4-grams 0/1 -> geometric mean 0, no smoothing
  const result = corpusBleu([words("the the the the")], [words("the cat")]);
  assert.deepEqual(result.precisions, [1 / 4, 0, 0, 0]);
  assert.equal(result.bleu, 0);
});

Deno.test("the classic unsmoothed case: no 4-gram match gives 0 (nmt compute_bleu's value)", () => {
  // hypothesis: the cat on the mat; reference: the cat sat on the mat
  // 1-grams the x2, cat, on, mat: all clipped matches         -> 5/5
  // 2-grams the-cat, cat-on, on-the, the-mat: cat-on missing  -> 3/4
  // 3-grams the-cat-on, cat-on-the, on-the-mat: one match     -> 1/3
  // 4-grams the-cat-on-the, cat-on-the-mat: none              -> 0/2
  const result = corpusBleu([words("the cat on the mat")], [words("the cat sat on the mat")]);
  assert.deepEqual(result.precisions, [1, 3 / 4, 1 / 3, 0]);
  assert.equal(result.bleu, 0);
  // c = 5 < r = 6
  close(result.brevityPenalty, Math.exp(1 - 6 / 5), "BP");
});

Deno.test("a hypothesis shorter than n adds nothing to the n-gram denominator", () => {
  // pair 1: "the color lasts all day" vs "the color lasts all day and the price is fair"
  //   matches 5/5, 4/4, 3/3, 2/2
  // pair 2: "great value" vs "great value for money"
  //   matches 2/2, 1/1, and no 3- or 4-grams: adds 0 to those denominators
  // corpus: 7/7, 5/5, 3/3, 2/2 -> all precisions 1; c = 7, r = 14
  // BLEU = exp(1 - 14/7) = exp(-1) = 0.36787944...
  const hyps = [words("the color lasts all day"), words("great value")];
  const refs = [
    words("the color lasts all day and the price is fair"),
    words("great value for money"),
  ];
  const result = corpusBleu(hyps, refs);
  assert.deepEqual(bleuStats(hyps[1], refs[1]).possible, [2, 1, 0, 0]);
  assert.deepEqual(result.precisions, [1, 1, 1, 1]);
  assert.equal(result.hypothesisLength, 7);
  assert.equal(result.referenceLength, 14);
  close(result.bleu, Math.exp(-1), "BLEU");
});

Deno.test("BLEU is corpus level: statistics add up, it is not a mean of sentence scores", () => {
  // a perfect 2-word hypothesis alone has no 3- or 4-grams: precision 0 there, BLEU 0
  assert.equal(corpusBleu([words("nice brush")], [words("nice brush")]).bleu, 0);
  // added to a longer pair, it raises the corpus score instead of averaging a 0 in
  const a = bleuStats(words("a b c d e f"), words("a b c d x f g"));
  const b = bleuStats(words("nice brush"), words("nice brush"));
  const total = addBleuStats(addBleuStats(emptyBleuStats(), a), b);
  // matches 5+2, 3+1, 2, 1 over 6+2, 5+1, 4, 3; c = 6 + 2 = 8 < r = 7 + 2 = 9
  const result = bleuFromStats(total);
  assert.deepEqual(result.precisions, [7 / 8, 4 / 6, 2 / 4, 1 / 3]);
  close(
    result.bleu,
    Math.pow((7 / 8) * (4 / 6) * (2 / 4) * (1 / 3), 1 / 4) * Math.exp(1 - 9 / 8),
    "BLEU",
  );
});

Deno.test("a hypothesis longer than the reference has no brevity penalty", () => {
  const result = corpusBleu([words("a b c d e")], [words("a b c d")]);
  assert.equal(result.brevityPenalty, 1);
  // precisions 4/5, 3/4, 2/3, 1/2 -> (4/5 * 3/4 * 2/3 * 1/2)^(1/4) = (1/5)^(1/4)
  close(result.bleu, Math.pow(1 / 5, 1 / 4), "BLEU");
});

Deno.test("degenerate corpora give 0 instead of dividing by zero", () => {
  assert.equal(corpusBleu([], []).bleu, 0);
  assert.equal(corpusBleu([[]], [words("a b c d")]).bleu, 0);
  assert.equal(corpusBleu([words("a b c d")], [[]]).bleu, 0);
  assert.throws(() => corpusBleu([[]], []), RangeError);
});

Deno.test("words are split on white space and kept as they are", () => {
  assert.deepEqual(words("  Great  lipstick,\tlasts\nlong "), [
    "Great",
    "lipstick,",
    "lasts",
    "long",
  ]);
  assert.deepEqual(words(""), []);
  // no lowercasing: "Great" and "great" differ
  assert.deepEqual(corpusBleu([words("Great value")], [words("great value")]).precisions[0], 1 / 2);
});

Deno.test("BLEU-1/2/4 equal P5's own compute_bleu on a small corpus (reference values)", () => {
  // Values from P5's notebooks/evaluate/bleu.py (tensorflow/nmt's compute_bleu, smooth=False),
  // called as P5's bleu_score calls it: references [[ref.split()]], hypotheses hyp.split(), x100.
  const hyps = P5_HYPOTHESES, refs = P5_REFERENCES;
  const p5 = { 1: 47.76875403825262, 2: 41.36895450425725, 4: 29.02809642996139 };
  for (const [n, expected] of Object.entries(p5)) {
    const bleu = 100 * corpusBleu(hyps, refs, Number(n)).bleu;
    assert.ok(Math.abs(bleu - expected) < 1e-9, `BLEU-${n} ${bleu} != ${expected}`);
  }
});
