/**
 * Corpus-level BLEU exactly as tensorflow/nmt's `compute_bleu` (scripts/bleu.py) computes it
 * without smoothing, the implementation P5 reports: one reference per hypothesis.
 *
 * - For each order n = 1..4, matches are the hypothesis n-grams clipped by their count in the
 *   reference, summed over the corpus; the denominator (possible matches) adds
 *   `len(hypothesis) - n + 1` for each hypothesis, or nothing when that is not positive (a
 *   hypothesis shorter than n words adds 0).
 * - A precision with a zero denominator is 0; if any precision is 0 the geometric mean is 0
 *   (so is BLEU), otherwise it is exp(mean of log precisions).
 * - Brevity penalty with c the total hypothesis length and r the total reference length: 1 when
 *   c > r, else exp(1 - r/c).
 *
 * BLEU is returned as a fraction; the evaluation reports it x100. Because BLEU only needs these
 * sums, {@linkcode bleuStats} of each pair can be added up while streaming.
 *
 * Where nmt's script would divide by zero (an empty corpus, all hypotheses empty, all references
 * empty) this returns BLEU 0 instead of raising.
 *
 * @module
 */

/** The sufficient statistics of corpus BLEU: add them over pairs, then {@linkcode bleuFromStats}. */
export interface BleuStats {
  /** Clipped n-gram matches per order (index n - 1). */
  matches: number[];
  /** Possible matches per order: sum of max(0, hypothesis length - n + 1). */
  possible: number[];
  /** Total hypothesis length in words (c). */
  hypothesisLength: number;
  /** Total reference length in words (r). */
  referenceLength: number;
}

/** Corpus BLEU and its parts, as nmt's compute_bleu returns them. */
export interface BleuResult {
  /** BLEU as a fraction in [0, 1]. */
  bleu: number;
  /** Modified n-gram precision per order. */
  precisions: number[];
  /** The brevity penalty: 1 when c > r, else exp(1 - r / c) (0 when c = 0). */
  brevityPenalty: number;
  /** c / r. */
  ratio: number;
  /** Total hypothesis length in words (c). */
  hypothesisLength: number;
  /** Total reference length in words (r). */
  referenceLength: number;
}

function ngramCounts(tokens: readonly string[], n: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    // Words never contain white space, so a space joins them without ambiguity.
    const key = tokens.slice(i, i + n).join(" ");
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** Returns empty statistics for `maxOrder` orders, to add pairs into. */
export function emptyBleuStats(maxOrder = 4): BleuStats {
  return {
    matches: new Array(maxOrder).fill(0),
    possible: new Array(maxOrder).fill(0),
    hypothesisLength: 0,
    referenceLength: 0,
  };
}

/**
 * Returns the BLEU statistics of one hypothesis against its reference (both as words).
 *
 * @example
 * ```ts
 * bleuStats(["the", "cat"], ["the", "cat", "sat"]);
 * // matches [2, 1, 0, 0], possible [2, 1, 0, 0], hypothesisLength 2, referenceLength 3
 * ```
 */
export function bleuStats(
  hypothesis: readonly string[],
  reference: readonly string[],
  maxOrder = 4,
): BleuStats {
  const stats = emptyBleuStats(maxOrder);
  stats.hypothesisLength = hypothesis.length;
  stats.referenceLength = reference.length;
  for (let n = 1; n <= maxOrder; n++) {
    const referenceCounts = ngramCounts(reference, n);
    for (const [ngram, count] of ngramCounts(hypothesis, n)) {
      stats.matches[n - 1] += Math.min(count, referenceCounts.get(ngram) ?? 0);
    }
    stats.possible[n - 1] = Math.max(0, hypothesis.length - n + 1);
  }
  return stats;
}

/** Adds `from` into `into` (same number of orders) and returns `into`. */
export function addBleuStats(into: BleuStats, from: BleuStats): BleuStats {
  for (let i = 0; i < into.matches.length; i++) {
    into.matches[i] += from.matches[i];
    into.possible[i] += from.possible[i];
  }
  into.hypothesisLength += from.hypothesisLength;
  into.referenceLength += from.referenceLength;
  return into;
}

/** Returns corpus BLEU from summed statistics (no smoothing). */
export function bleuFromStats(stats: BleuStats): BleuResult {
  const precisions = stats.matches.map((m, i) => stats.possible[i] > 0 ? m / stats.possible[i] : 0);
  const c = stats.hypothesisLength;
  const r = stats.referenceLength;
  const ratio = r > 0 ? c / r : c > 0 ? Infinity : 0;
  // nmt: bp = 1 if ratio > 1 else exp(1 - 1/ratio); c = 0 would divide by zero there.
  const brevityPenalty = ratio > 1 ? 1 : c > 0 ? Math.exp(1 - r / c) : 0;
  let geometricMean = 0;
  if (precisions.length > 0 && Math.min(...precisions) > 0) {
    let logSum = 0;
    for (const p of precisions) logSum += Math.log(p) / precisions.length;
    geometricMean = Math.exp(logSum);
  }
  return {
    bleu: geometricMean * brevityPenalty,
    precisions,
    brevityPenalty,
    ratio,
    hypothesisLength: c,
    referenceLength: r,
  };
}

/**
 * Returns corpus BLEU-`maxOrder` of `hypotheses` against `references` (pairwise, as words).
 *
 * @example
 * ```ts
 * import { words } from "./words.ts";
 *
 * corpusBleu([words("the cat sat on the mat")], [words("the cat sat on the mat")]).bleu; // 1
 * ```
 */
export function corpusBleu(
  hypotheses: readonly (readonly string[])[],
  references: readonly (readonly string[])[],
  maxOrder = 4,
): BleuResult {
  if (hypotheses.length !== references.length) {
    throw new RangeError(`${hypotheses.length} hypotheses for ${references.length} references`);
  }
  const total = emptyBleuStats(maxOrder);
  for (let i = 0; i < hypotheses.length; i++) {
    addBleuStats(total, bleuStats(hypotheses[i], references[i], maxOrder));
  }
  return bleuFromStats(total);
}
