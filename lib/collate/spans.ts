/**
 * Drawing the masked spans of a document (docs/method.md section 5), over units, for the three
 * objectives. A span is a half-open range of units `[start, end)`; spans come out in chronological
 * order. Every random choice goes through the caller's {@linkcode Rng}; scratch buffers are reused
 * across calls, so a sampler is not shared between concurrent users.
 *
 * - entity-level: span lengths in units from Poisson(lambda) truncated to 1..maxSpanUnits; each
 *   span is placed uniformly at random among the places that keep at least one unmasked unit
 *   between it and every span already placed; spans are drawn until the masked tokens reach
 *   `maskRatio` of the document's tokens (the last span may overshoot). When a drawn length fits
 *   nowhere, the longest length that still fits is used; when nothing fits, drawing stops.
 * - sentence-level: sentences in random order (a partial Fisher-Yates shuffle) until the masked
 *   tokens reach `sentenceRatio`; each sentence is its own span (two may be adjacent). At least
 *   one sentence stays unmasked when there are two or more.
 * - document-level: one span at the end of `k` units, `k` uniform in ceil(U/2)..U-1 (50% up to
 *   all but one unit); needs U >= 2.
 * - sequence-level (entity-level blanks, denser): of a document's m entities, the first `k` stay
 *   in part A, `k` uniform in 1..min(m-1, `sequenceMaxKeep`), and every later entity is a span
 *   of its own. Read in
 *   chronological order, span j predicts entity k + j from the first k in part A and the spans
 *   before it: next-item supervision for every item after the k-th in one example, where a task
 *   prompt supervises one. Needs m >= 2.
 *
 * Not here: truncation, mask tokens, positions (see `collator.ts` and `example.ts`).
 *
 * @module
 */

import { type Rng, truncatedPoissonCdf } from "../random.ts";

/** Entities among units `[0, units)` (`unitEntity[u]` is 1 for an entity). */
export function entityCount(unitEntity: Uint8Array, units: number): number {
  let m = 0;
  for (let u = 0; u < units; u++) m += unitEntity[u];
  return m;
}

/** Options of {@linkcode SpanSampler}; every field has the default shown. */
export interface SpanOptions {
  /** Share of the document's tokens the entity-level spans mask at least. Default 0.15. */
  maskRatio?: number;
  /** Share of the document's tokens the sentence-level spans mask at least. Default 0.15. */
  sentenceRatio?: number;
  /** Mean of the Poisson distribution of entity-level span lengths, in units. Default 3. */
  poissonLambda?: number;
  /** Longest entity-level span, in units. Default 39 (GLM's truncation). */
  maxSpanUnits?: number;
  /**
   * Sequence-level spans: the most entities kept in part A (`k` uniform in 1..min(m-1, this)).
   * Default: no cap (`k` uniform in 1..m-1); 1 masks every entity after the first.
   */
  sequenceMaxKeep?: number;
}

/**
 * Draws masked spans into {@linkcode SpanSampler.spans} (pairs `start, end` of units).
 *
 * @example
 * ```ts
 * import type { Rng } from "../random.ts";
 * import type { TokenizedRecord } from "./tokenize.ts";
 *
 * declare const record: TokenizedRecord, rng: Rng;
 * const units = record.unitStart.length - 1;
 * const sampler = new SpanSampler();
 * const count = sampler.entity(record.unitStart, units, rng);
 * for (let i = 0; i < count; i++) console.log(sampler.spans[2 * i], sampler.spans[2 * i + 1]);
 * ```
 */
export class SpanSampler {
  /** [2 * count] the spans of the last draw, chronological: start0, end0, start1, end1, ... */
  spans: Int32Array<ArrayBuffer> = new Int32Array(64);
  /** Share of the tokens the entity-level spans mask at least; see {@linkcode SpanOptions.maskRatio}. */
  readonly maskRatio: number;
  /** Share of the tokens the sentence-level spans mask at least; see {@linkcode SpanOptions.sentenceRatio}. */
  readonly sentenceRatio: number;
  /** The most entities a sequence-level span keeps in part A; see {@linkcode SpanOptions.sequenceMaxKeep}. */
  readonly sequenceMaxKeep: number;
  readonly #cdf: Float64Array;
  #gapStart = new Int32Array(32);
  #gapEnd = new Int32Array(32);
  #order = new Int32Array(32);
  #sentenceStart = new Int32Array(32);

  /** A sampler with `options` filled from the defaults. */
  constructor(options: SpanOptions = {}) {
    this.maskRatio = options.maskRatio ?? 0.15;
    this.sentenceRatio = options.sentenceRatio ?? 0.15;
    this.sequenceMaxKeep = options.sequenceMaxKeep ?? Infinity;
    const cap = this.sequenceMaxKeep;
    if (!(cap === Infinity || (Number.isInteger(cap) && cap >= 1))) {
      throw new RangeError(`sequenceMaxKeep must be a positive integer, got ${cap}`);
    }
    const lambda = options.poissonLambda ?? 3;
    const maxUnits = options.maxSpanUnits ?? 39;
    if (!(this.maskRatio > 0 && this.maskRatio < 1)) {
      throw new RangeError(`maskRatio must be in (0, 1), got ${this.maskRatio}`);
    }
    if (!(this.sentenceRatio > 0 && this.sentenceRatio < 1)) {
      throw new RangeError(`sentenceRatio must be in (0, 1), got ${this.sentenceRatio}`);
    }
    if (!(lambda > 0) || !Number.isInteger(maxUnits) || maxUnits < 1) {
      throw new RangeError("poissonLambda must be positive and maxSpanUnits a positive integer");
    }
    this.#cdf = truncatedPoissonCdf(lambda, maxUnits);
  }

  #ensure(units: number): void {
    if (this.spans.length < 2 * units + 2) this.spans = new Int32Array(2 * units + 2);
    if (this.#gapStart.length < units + 2) {
      this.#gapStart = new Int32Array(units + 2);
      this.#gapEnd = new Int32Array(units + 2);
      this.#order = new Int32Array(units + 2);
      this.#sentenceStart = new Int32Array(units + 2);
    }
  }

  /**
   * Entity-level spans over units `[0, units)`; `unitStart` gives each unit's first token.
   * Returns the number of spans.
   */
  entity(unitStart: Int32Array, units: number, rng: Rng): number {
    this.#ensure(units);
    const spans = this.spans, gapStart = this.#gapStart, gapEnd = this.#gapEnd;
    const cdf = this.#cdf;
    const goal = this.maskRatio * (unitStart[units] - unitStart[0]);
    let gaps = 1;
    gapStart[0] = 0;
    gapEnd[0] = units;
    let count = 0;
    let masked = 0;
    while (masked < goal) {
      let k = rng.categorical(cdf) + 1;
      // Places for a span of k units: inside a gap, one unit away from any neighbouring span.
      let places = 0;
      let widest = 0;
      for (let g = 0; g < gaps; g++) {
        const room = gapEnd[g] - gapStart[g] - (gapStart[g] > 0 ? 1 : 0) -
          (gapEnd[g] < units ? 1 : 0);
        if (room > widest) widest = room;
        if (room >= k) places += room - k + 1;
      }
      if (places === 0) {
        if (widest <= 0) break;
        k = widest;
        for (let g = 0; g < gaps; g++) {
          const room = gapEnd[g] - gapStart[g] - (gapStart[g] > 0 ? 1 : 0) -
            (gapEnd[g] < units ? 1 : 0);
          if (room >= k) places += room - k + 1;
        }
      }
      let pick = rng.int(places);
      let g = 0;
      for (;; g++) {
        const room = gapEnd[g] - gapStart[g] - (gapStart[g] > 0 ? 1 : 0) -
          (gapEnd[g] < units ? 1 : 0);
        const here = room >= k ? room - k + 1 : 0;
        if (pick < here) break;
        pick -= here;
      }
      const start = gapStart[g] + (gapStart[g] > 0 ? 1 : 0) + pick;
      const end = start + k;
      masked += unitStart[end] - unitStart[start];
      // Split gap g into [gapStart, start) and [end, gapEnd), dropping empty parts.
      const left = start > gapStart[g], right = end < gapEnd[g];
      const oldEnd = gapEnd[g];
      if (left && right) {
        for (let h = gaps; h > g + 1; h--) {
          gapStart[h] = gapStart[h - 1];
          gapEnd[h] = gapEnd[h - 1];
        }
        gapEnd[g] = start;
        gapStart[g + 1] = end;
        gapEnd[g + 1] = oldEnd;
        gaps++;
      } else if (left) {
        gapEnd[g] = start;
      } else if (right) {
        gapStart[g] = end;
      } else {
        for (let h = g; h + 1 < gaps; h++) {
          gapStart[h] = gapStart[h + 1];
          gapEnd[h] = gapEnd[h + 1];
        }
        gaps--;
      }
      // Insert the span in chronological order.
      let i = count;
      while (i > 0 && spans[2 * (i - 1)] > start) {
        spans[2 * i] = spans[2 * (i - 1)];
        spans[2 * i + 1] = spans[2 * (i - 1) + 1];
        i--;
      }
      spans[2 * i] = start;
      spans[2 * i + 1] = end;
      count++;
    }
    return count;
  }

  /**
   * Sentence-level spans over units `[0, units)`; `unitSentence` is each unit's sentence
   * (non-decreasing). Returns the number of spans.
   */
  sentence(unitStart: Int32Array, unitSentence: Int32Array, units: number, rng: Rng): number {
    this.#ensure(units);
    const starts = this.#sentenceStart, order = this.#order, spans = this.spans;
    // Sentence s covers units starts[s] .. starts[s + 1] - 1.
    let s = 0;
    for (let u = 0; u < units; u++) {
      if (u === 0 || unitSentence[u] !== unitSentence[u - 1]) starts[s++] = u;
    }
    const present = s;
    starts[present] = units;
    for (let i = 0; i < present; i++) order[i] = i;
    const goal = this.sentenceRatio * (unitStart[units] - unitStart[0]);
    const limit = present > 1 ? present - 1 : 1;
    let masked = 0;
    let chosen = 0;
    while (masked < goal && chosen < limit) {
      const j = chosen + rng.int(present - chosen);
      const pick = order[j];
      order[j] = order[chosen];
      order[chosen] = pick;
      masked += unitStart[starts[pick + 1]] - unitStart[starts[pick]];
      chosen++;
    }
    // Chronological order: sort the chosen sentence indices (insertion sort; few of them).
    for (let i = 1; i < chosen; i++) {
      const v = order[i];
      let j = i - 1;
      while (j >= 0 && order[j] > v) {
        order[j + 1] = order[j];
        j--;
      }
      order[j + 1] = v;
    }
    for (let i = 0; i < chosen; i++) {
      spans[2 * i] = starts[order[i]];
      spans[2 * i + 1] = starts[order[i] + 1];
    }
    return chosen;
  }

  /**
   * Sequence-level spans over units `[0, units)`: every entity after the first `k` (`k` uniform
   * in 1..min(m-1, `sequenceMaxKeep`) of the m entities), each its own one-unit span. Returns
   * the number of spans.
   */
  sequence(unitEntity: Uint8Array, units: number, rng: Rng): number {
    const m = entityCount(unitEntity, units);
    if (m < 2) throw new RangeError("the sequence-level spans need at least two entities");
    this.#ensure(units);
    const keep = 1 + rng.int(Math.min(m - 1, this.sequenceMaxKeep));
    let seen = 0, count = 0;
    for (let u = 0; u < units; u++) {
      if (unitEntity[u] !== 1 || seen++ < keep) continue;
      this.spans[2 * count] = u;
      this.spans[2 * count + 1] = u + 1;
      count++;
    }
    return count;
  }

  /** The document-level span over units `[0, units)` (needs units >= 2). Returns 1. */
  document(units: number, rng: Rng): number {
    if (units < 2) throw new RangeError("the document-level span needs at least two units");
    this.#ensure(units);
    const lo = Math.ceil(units / 2), hi = units - 1;
    const k = lo + rng.int(hi - lo + 1);
    this.spans[0] = units - k;
    this.spans[1] = units;
    return 1;
  }
}
