/**
 * Building one collated example from a tokenized record and its chosen spans (docs/method.md
 * section 6): part A with one mask token per span, part B with each span as `[S]` + its tokens, the
 * two position ids, `sep` and the shifted labels. Deterministic; no randomness here.
 *
 * Positions: inter-position is the index in part A, and for part B tokens the index of their
 * span's mask token. Intra-position in part A is 0 for separate tokens and mask tokens and 1..n
 * along an entity's tokens; in part B it is 1 for `[S]` and 1 + (index of the token in its unit,
 * from 1) for the rest. Labels are -100 in part A; in part B the inputs `[S] t1..tn` have labels
 * `t1..tn [E]`.
 *
 * Not here: which spans (see `spans.ts`), truncation (see `collator.ts`).
 *
 * @module
 */

import type { SpecialIds } from "../tokenizer/tokenizer.ts";
import { prefixLength, type TokenizedRecord } from "./tokenize.ts";

/** The objective an example was built with; `task` for prompts with a target. */
export type ExampleObjective = "entity" | "sentence" | "document" | "sequence" | "task";

/** One collated example (unpadded), L = `length` tokens; all arrays share one buffer. */
export interface CollatedExample {
  /** The source record's id. */
  id: string;
  /** The objective the example was built with. */
  objective: ExampleObjective;
  /** L: part A then part B. */
  length: number;
  /** Length of part A. */
  sep: number;
  /** [L] token ids. */
  inputIds: Int32Array;
  /** [L] inter-positions. */
  inter: Int32Array;
  /** [L] intra-positions. */
  intra: Int32Array;
  /** [L] next token to predict, -100 in part A. */
  labels: Int32Array;
  /**
   * [L] the source record's unit of each token, -1 for mask tokens, `[S]` and the tokenizer's
   * prefix.
   */
  units: Int32Array;
  /** [2 * spans] the masked units of each span, `start, end` pairs, in part B order. */
  spans: Int32Array;
}

/** What to build: part A's source units, the spans, and the mask token. */
export interface ExamplePlan {
  /** First source unit of part A (units before it were truncated away). */
  from: number;
  /** [U] 1 for units of `[from, to)` truncated away too (task prompts' oldest history items). */
  dropped?: Uint8Array;
  /** End of part A's source units (exclusive). */
  to: number;
  /**
   * Spans as `start, end` unit pairs, chronological. Documents: spans lie inside `[from, to)`
   * and each is replaced by one mask token. Task prompts: one span, the target's units, whose
   * mask token goes before unit `record.answerAt`.
   */
  spans: Int32Array;
  /** The number of spans in `spans`. */
  spanCount: number;
  /** Id of the mask token of every span. */
  mask: number;
  /** True for a task prompt (see `spans`). */
  task: boolean;
  /** Optional order of the spans in part B (a permutation of 0..spanCount-1); default chronological. */
  order?: Int32Array;
  /** The objective the example was built with. */
  objective: ExampleObjective;
}

/**
 * Builds the example `plan` describes.
 *
 * @example
 * ```ts
 * import type { SpecialIds } from "../tokenizer/tokenizer.ts";
 * import type { TokenizedRecord } from "./tokenize.ts";
 *
 * declare const record: TokenizedRecord, specials: SpecialIds;
 * // docs/method.md section 6: units e1 = (x1 x2 x3), e2 = (x4 x5), x6, x7; spans e1 and x6.
 * const example = assembleExample(record, {
 *   from: 0, to: 4, spans: Int32Array.of(0, 1, 2, 3), spanCount: 2,
 *   mask: specials.mask, task: false, objective: "entity",
 * }, specials);
 * example.sep; // 5
 * ```
 */
export function assembleExample(
  record: TokenizedRecord,
  plan: ExamplePlan,
  specials: SpecialIds,
): CollatedExample {
  const { unitStart } = record;
  const { from, to, spans, spanCount, task } = plan;

  let spanTokens = 0;
  for (let j = 0; j < spanCount; j++) {
    spanTokens += unitStart[spans[2 * j + 1]] - unitStart[spans[2 * j]];
  }
  let sourceTokens = unitStart[to] - unitStart[from];
  if (plan.dropped) {
    for (let u = from; u < to; u++) {
      if (plan.dropped[u]) sourceTokens -= unitStart[u + 1] - unitStart[u];
    }
  }
  const prefix = prefixLength(record);
  const lengthA = prefix + (task ? sourceTokens + 1 : sourceTokens - spanTokens + spanCount);
  const length = lengthA + spanTokens + spanCount;

  const buffer = new Int32Array(5 * length);
  const out: ExampleRows = {
    inputIds: buffer.subarray(0, length),
    inter: buffer.subarray(length, 2 * length),
    intra: buffer.subarray(2 * length, 3 * length),
    labels: buffer.subarray(3 * length, 4 * length),
    units: buffer.subarray(4 * length, 5 * length),
  };
  const maskAt = new Int32Array(spanCount);
  const sep = writePartA(record, plan, out, maskAt);
  out.labels.fill(-100, 0, sep);
  const spanOrder = writePartB(record, plan, out, maskAt, sep, specials);
  return { id: record.id, objective: plan.objective, length, sep, ...out, spans: spanOrder };
}

/** The per-token arrays of an example being written. */
interface ExampleRows {
  inputIds: Int32Array;
  inter: Int32Array;
  intra: Int32Array;
  labels: Int32Array;
  units: Int32Array;
}

/**
 * Writes part A from position 0: the tokenizer's prefix (`record.prefix`, no unit), then the
 * source units with each span replaced by its mask token (documents), or with the one mask token
 * before unit `record.answerAt` (task prompts). Records each span's mask position in `maskAt`;
 * returns part A's length (`sep`).
 */
function writePartA(
  record: TokenizedRecord,
  plan: ExamplePlan,
  out: ExampleRows,
  maskAt: Int32Array,
): number {
  const { unitStart, unitEntity, ids } = record;
  const { from, to, spans, spanCount, mask, task, dropped } = plan;
  const { inputIds, inter, intra, units } = out;
  let p = 0;
  for (const id of record.prefix ?? []) {
    inputIds[p] = id;
    inter[p] = p;
    intra[p] = 0;
    units[p] = -1;
    p++;
  }
  let next = 0; // next span to meet (documents)
  const answerAt = task ? record.answerAt : -1;
  for (let u = from; u < to;) {
    if (u === answerAt) {
      maskAt[0] = p;
      inputIds[p] = mask;
      inter[p] = p;
      units[p] = -1;
      p++;
    }
    if (!task && next < spanCount && spans[2 * next] === u) {
      maskAt[next] = p;
      inputIds[p] = mask;
      inter[p] = p;
      units[p] = -1;
      p++;
      u = spans[2 * next + 1];
      next++;
      continue;
    }
    if (dropped?.[u]) {
      u++;
      continue;
    }
    const t0 = unitStart[u], t1 = unitStart[u + 1];
    const entity = unitEntity[u] === 1;
    for (let t = t0; t < t1; t++) {
      inputIds[p] = ids[t];
      inter[p] = p;
      intra[p] = entity ? t - t0 + 1 : 0;
      units[p] = u;
      p++;
    }
    u++;
  }
  if (task && answerAt >= to) {
    maskAt[0] = p;
    inputIds[p] = mask;
    inter[p] = p;
    units[p] = -1;
    p++;
  }
  return p;
}

/**
 * Writes part B from position `sep`: each span, in `plan.order`, as `[S]` + its tokens at its
 * mask token's inter-position, with labels shifted by one and `[E]` last. Returns the spans'
 * units as `start, end` pairs in part B order.
 */
function writePartB(
  record: TokenizedRecord,
  plan: ExamplePlan,
  out: ExampleRows,
  maskAt: Int32Array,
  sep: number,
  specials: SpecialIds,
): Int32Array {
  const { unitStart, ids } = record;
  const { spans, spanCount } = plan;
  const { inputIds, inter, intra, labels, units } = out;
  const spanOrder = new Int32Array(2 * spanCount);
  let p = sep;
  for (let k = 0; k < spanCount; k++) {
    const j = plan.order ? plan.order[k] : k;
    const s = spans[2 * j], e = spans[2 * j + 1], m = maskAt[j];
    spanOrder[2 * k] = s;
    spanOrder[2 * k + 1] = e;
    const begin = p;
    inputIds[p] = specials.sop;
    inter[p] = m;
    intra[p] = 1;
    units[p] = -1;
    p++;
    for (let u = s; u < e; u++) {
      const t0 = unitStart[u], t1 = unitStart[u + 1];
      for (let t = t0; t < t1; t++) {
        inputIds[p] = ids[t];
        inter[p] = m;
        intra[p] = t - t0 + 2;
        units[p] = u;
        p++;
      }
    }
    for (let i = begin; i < p - 1; i++) labels[i] = inputIds[i + 1];
    labels[p - 1] = specials.eop;
  }
  return spanOrder;
}
