/**
 * ROUGE-1, ROUGE-2 and ROUGE-L as the `rouge.py` P5 evaluates with (tf_seq2seq's, also shipped in
 * tensorflow/nmt's scripts, after sumy): each hypothesis is scored against its one reference and
 * the per-pair F-scores are averaged over the corpus (a macro average, not a pooled one).
 *
 * Definitions (P precision, R recall; words as `words()` splits them):
 * - ROUGE-N counts DISTINCT n-grams: H and G are the sets of n-grams of the hypothesis and the
 *   reference, P = |H ∩ G| / |H|, R = |H ∩ G| / |G| (0 when the set is empty), F = 2PR / (P + R).
 *   A repeated n-gram counts once, unlike ROUGE-1.5.5's clipped counts; that is what P5's
 *   numbers mean.
 * - ROUGE-L (sentence level): L = length of the longest common subsequence of the two word lists,
 *   P = L / |hypothesis|, R = L / |reference|, and F = (1 + β²)PR / (R + β²P) with β = P / R as
 *   that script sets it, which simplifies to F = PR(P² + R²) / (P³ + R³); F = P = R when they
 *   are equal.
 * - F = 0 when P + R = 0, where the script adds 1e-8 (N) or 1e-12 (L) to its denominators to get
 *   the same 0; those guard terms are left out here, which changes a score by less than 1e-6 on
 *   the x100 scale.
 *
 * Fractions here; the evaluation reports them x100.
 *
 * @module
 */

/** Precision, recall and F-score of one pair (fractions). */
export interface Prf {
  /** Matched units over the hypothesis's units (n-grams, or LCS length over words). */
  precision: number;
  /** Matched units over the reference's units. */
  recall: number;
  /** The F-score of precision and recall, as the module header defines it per metric (0 when both are 0). */
  f: number;
}

/** Mean per-pair F-scores (and P, R) of a corpus. */
export interface RougeResult {
  /** ROUGE-1: unigram overlap. */
  rouge1: Prf;
  /** ROUGE-2: bigram overlap. */
  rouge2: Prf;
  /** ROUGE-L: longest common subsequence. */
  rougeL: Prf;
}

function ngramSet(tokens: readonly string[], n: number): Set<string> {
  const set = new Set<string>();
  for (let i = 0; i + n <= tokens.length; i++) set.add(tokens.slice(i, i + n).join(" "));
  return set;
}

function lcsLength(a: readonly string[], b: readonly string[]): number {
  // Two rows of the classic table: row[j] = LCS of a[..i] and b[..j].
  let previous = new Int32Array(b.length + 1);
  let current = new Int32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      current[j] = a[i - 1] === b[j - 1]
        ? previous[j - 1] + 1
        : Math.max(previous[j], current[j - 1]);
    }
    [previous, current] = [current, previous];
  }
  return previous[b.length];
}

/**
 * Returns ROUGE-N of one hypothesis against its reference (word lists), over distinct n-grams.
 *
 * @example
 * ```ts
 * rougeN(["a", "b", "a"], ["a", "c"], 1); // P 1/2 (set {a, b}), R 1/2, F 1/2
 * ```
 */
export function rougeN(
  hypothesis: readonly string[],
  reference: readonly string[],
  n: number,
): Prf {
  const h = ngramSet(hypothesis, n);
  const g = ngramSet(reference, n);
  let overlap = 0;
  for (const ngram of h) if (g.has(ngram)) overlap++;
  const precision = h.size > 0 ? overlap / h.size : 0;
  const recall = g.size > 0 ? overlap / g.size : 0;
  const f = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, f };
}

/**
 * Returns sentence-level ROUGE-L of one hypothesis against its reference (word lists), with the
 * F-score P5's script computes (β = P / R).
 *
 * @example
 * ```ts
 * rougeL(["a", "b", "c", "d"], ["a", "c"]); // LCS 2: P 1/2, R 1, F = (1/2)(5/4)/(9/8) = 5/9
 * ```
 */
export function rougeL(hypothesis: readonly string[], reference: readonly string[]): Prf {
  const l = lcsLength(hypothesis, reference);
  if (l === 0) return { precision: 0, recall: 0, f: 0 };
  const precision = l / hypothesis.length;
  const recall = l / reference.length;
  const p2 = precision * precision;
  const r2 = recall * recall;
  const f = (precision * recall * (p2 + r2)) / (p2 * precision + r2 * recall);
  return { precision, recall, f };
}

/**
 * Running sums of per-pair ROUGE scores, for scoring a stream of pairs without keeping them.
 *
 * @example
 * ```ts
 * import { words } from "./words.ts";
 *
 * const sums = new RougeSums();
 * sums.add(words("great value"), words("great value for money"));
 * sums.mean().rouge1.f; // 2/3
 * ```
 */
export class RougeSums {
  #count = 0;
  readonly #sums = { rouge1: [0, 0, 0], rouge2: [0, 0, 0], rougeL: [0, 0, 0] };

  /** Adds one hypothesis and its reference (word lists). */
  add(hypothesis: readonly string[], reference: readonly string[]): void {
    const scores = {
      rouge1: rougeN(hypothesis, reference, 1),
      rouge2: rougeN(hypothesis, reference, 2),
      rougeL: rougeL(hypothesis, reference),
    };
    for (const key of ["rouge1", "rouge2", "rougeL"] as const) {
      this.#sums[key][0] += scores[key].precision;
      this.#sums[key][1] += scores[key].recall;
      this.#sums[key][2] += scores[key].f;
    }
    this.#count++;
  }

  /** How many pairs were added. */
  get count(): number {
    return this.#count;
  }

  /** Returns the mean P, R and F of each variant; NaN when nothing was added. */
  mean(): RougeResult {
    const mean = (s: number[]): Prf => ({
      precision: s[0] / this.#count,
      recall: s[1] / this.#count,
      f: s[2] / this.#count,
    });
    return {
      rouge1: mean(this.#sums.rouge1),
      rouge2: mean(this.#sums.rouge2),
      rougeL: mean(this.#sums.rougeL),
    };
  }
}

/**
 * Returns the mean per-pair ROUGE-1/2/L of `hypotheses` against `references` (word lists).
 *
 * @example
 * ```ts
 * import { words } from "./words.ts";
 *
 * corpusRouge([words("a b")], [words("a b")]).rougeL.f; // 1
 * ```
 */
export function corpusRouge(
  hypotheses: readonly (readonly string[])[],
  references: readonly (readonly string[])[],
): RougeResult {
  if (hypotheses.length !== references.length) {
    throw new RangeError(`${hypotheses.length} hypotheses for ${references.length} references`);
  }
  const sums = new RougeSums();
  for (let i = 0; i < hypotheses.length; i++) sums.add(hypotheses[i], references[i]);
  return sums.mean();
}
