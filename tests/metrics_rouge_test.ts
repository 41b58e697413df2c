import assert from "node:assert/strict";
import { corpusRouge, rougeL, rougeN, RougeSums } from "../lib/metrics/rouge.ts";
import { words } from "../lib/metrics/words.ts";
import { P5_HYPOTHESES, P5_REFERENCES } from "./helpers/p5_corpus.ts";

const close = (actual: number, expected: number, what = "") =>
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what} ${actual} != ${expected}`);

Deno.test("ROUGE-N counts distinct n-grams, as P5's rouge.py does", () => {
  // hypothesis {a, b} (a repeated counts once), reference {a, c}: overlap 1
  // P = 1/2, R = 1/2, F = 2 * 1/4 / 1 = 1/2
  const r = rougeN(words("a b a"), words("a c"), 1);
  assert.deepEqual(r, { precision: 1 / 2, recall: 1 / 2, f: 1 / 2 });
  // bigrams: hypothesis {a b, b a}, reference {a c}: no overlap
  assert.deepEqual(rougeN(words("a b a"), words("a c"), 2), { precision: 0, recall: 0, f: 0 });
});

Deno.test("ROUGE-L uses the LCS and P5's F with beta = P/R, by hand", () => {
  // hypothesis a x b, reference a b y z: LCS = a b = 2; P = 2/3, R = 2/4 = 1/2
  // F = P R (P^2 + R^2) / (P^3 + R^3) = (1/3)(4/9 + 1/4) / (8/27 + 1/8)
  //   = (1/3)(25/36) / (91/216) = (25/108)(216/91) = 50/91
  const r = rougeL(words("a x b"), words("a b y z"));
  close(r.precision, 2 / 3);
  close(r.recall, 1 / 2);
  close(r.f, 50 / 91, "F");
  // the original form, (1 + b^2) R P / (R + b^2 P) with b = P/R, gives the same
  const b = r.precision / r.recall;
  close(r.f, ((1 + b * b) * r.recall * r.precision) / (r.recall + b * b * r.precision), "F form");
  // P = R: F = P
  close(rougeL(words("a b c"), words("c a b")).f, 2 / 3, "P = R");
});

Deno.test("ROUGE-1/2/L on a small corpus: per-pair F-scores averaged, by hand", () => {
  // pair 1: "the color lasts all day" vs "the color lasts all day and the price is fair"
  //   R1: sets {the color lasts all day} (5) and 9 distinct words: P 1, R 5/9, F = (10/9)/(14/9) = 5/7
  //   R2: 4 bigrams, all among the reference's 9: P 1, R 4/9, F = (8/9)/(13/9) = 8/13
  //   RL: LCS 5, P 1, R 5/10 = 1/2: F = (1/2)(1 + 1/4)/(1 + 1/8) = 5/9
  // pair 2: "great value" vs "great value for money"
  //   R1: P 1, R 2/4, F 2/3;  R2: P 1, R 1/3, F 1/2;  RL: LCS 2, P 1, R 1/2, F 5/9
  // means: R1 (5/7 + 2/3)/2 = 29/42, R2 (8/13 + 1/2)/2 = 29/52, RL 5/9
  const result = corpusRouge(
    [words("the color lasts all day"), words("great value")],
    [words("the color lasts all day and the price is fair"), words("great value for money")],
  );
  close(result.rouge1.f, 29 / 42, "ROUGE-1");
  close(result.rouge2.f, 29 / 52, "ROUGE-2");
  close(result.rougeL.f, 5 / 9, "ROUGE-L");
  close(result.rouge1.recall, (5 / 9 + 1 / 2) / 2, "ROUGE-1 recall");
});

Deno.test("empty texts score 0 and words are compared as they are", () => {
  for (const [h, g] of [["", "a b"], ["a b", ""], ["", ""]]) {
    assert.equal(rougeN(words(h), words(g), 1).f, 0);
    assert.equal(rougeL(words(h), words(g)).f, 0);
  }
  // no lowercasing, no stemming, punctuation stays on its word
  assert.equal(rougeN(words("Great colors."), words("great colors"), 1).f, 0);
  // a one-word hypothesis has no bigrams
  assert.equal(rougeN(words("nice"), words("nice brush"), 2).f, 0);
});

Deno.test("streaming sums equal the corpus function; nothing added gives NaN", () => {
  const sums = new RougeSums();
  assert.ok(Number.isNaN(sums.mean().rouge1.f));
  sums.add(words("great value"), words("great value for money"));
  assert.equal(sums.count, 1);
  close(sums.mean().rouge1.f, 2 / 3);
  assert.throws(() => corpusRouge([[]], []), RangeError);
});

Deno.test("ROUGE-1/2/L equal P5's own rouge.py on a small corpus (reference values)", () => {
  // Values from P5's notebooks/evaluate/rouge.py, rouge(hypotheses, references) as P5's
  // rouge_score calls it, x100. Its 1e-8 and 1e-12 guard terms move them by < 1e-6.
  const hyps = P5_HYPOTHESES, refs = P5_REFERENCES;
  const r = corpusRouge(hyps, refs);
  const near = (actual: number, expected: number, what: string) =>
    assert.ok(Math.abs(100 * actual - expected) < 1e-6, `${what} ${100 * actual} != ${expected}`);
  near(r.rouge1.f, 48.19902287354718, "rouge_1/f_score");
  near(r.rouge1.precision, 59.72222222222222, "rouge_1/p_score");
  near(r.rouge1.recall, 50.0, "rouge_1/r_score");
  near(r.rouge2.f, 31.50183121115271, "rouge_2/f_score");
  near(r.rouge2.precision, 47.5, "rouge_2/p_score");
  near(r.rouge2.recall, 35.41666666666667, "rouge_2/r_score");
  near(r.rougeL.f, 35.44603241322973, "rouge_l/f_score");
  near(r.rougeL.precision, 55.55555555555556, "rouge_l/p_score");
  near(r.rougeL.recall, 43.25396825396825, "rouge_l/r_score");
});
