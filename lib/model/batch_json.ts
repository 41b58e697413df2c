/**
 * The batch JSON that `forward` reads (`input_ids` [B][L], `position_ids` [B][2][L], `sep` [B],
 * optional `labels` [B][L] and `loss_mask` [B][L]) turned into the collator's {@linkcode Batch},
 * with every shape and range checked against the model so that a mistake is a one-line error
 * naming the file and the field, not an onnxruntime failure.
 *
 * @module
 */

import type { Batch } from "../collate/types.ts";
import { type InputError, inputError } from "../errors.ts";
import type { GlmConfig } from "./config.ts";

/** A batch from JSON; labels and loss mask are absent when the file has neither. */
export interface JsonBatch extends Omit<Batch, "labels" | "lossMask"> {
  /** [B, L]: the next token to predict, -100 where there is no loss (when the file has `labels`). */
  labels?: Int32Array;
  /** [B, L]: 1 where a position's loss counts, 0 elsewhere (when the file has `loss_mask`). */
  lossMask?: Float32Array;
  /** [B, L] rotary positions (decoder families, docs/method.md section 11), when present. */
  ropePositionIds?: Int32Array;
}

/** The limits a batch is checked against (a GLM config has both). */
export interface BatchLimits {
  vocabSize: number;
  /** Largest position id. */
  maxSequenceLength: number;
}

/** Parses and checks a batch object (`file` is named in errors). */
export function parseBatchJson(
  json: unknown,
  file: string,
  config: GlmConfig | BatchLimits,
): JsonBatch {
  const fields = new BatchFields(json, file);
  const { inputIds, B, L } = readInputIds(fields, config.vocabSize);
  const positionIds = readPositionIds(fields, B, L, config.maxSequenceLength);
  const sep = readSep(fields, B, L);
  const batch: JsonBatch = { batchSize: B, length: L, inputIds, positionIds, sep };
  const labelled = readLabels(fields, B, L, config.vocabSize);
  if (labelled) Object.assign(batch, labelled);
  const rope = readRopePositionIds(fields, B, L, config.maxSequenceLength);
  if (rope) batch.ropePositionIds = rope;
  return batch;
}

/** The fields of one batch object and the checks they share; errors name the file and field. */
class BatchFields {
  readonly o: Record<string, unknown>;
  readonly #file: string;

  constructor(json: unknown, file: string) {
    this.#file = file;
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      throw this.fail("expected a JSON object with input_ids, position_ids and sep");
    }
    this.o = json as Record<string, unknown>;
  }

  /** The one-line error for `problem`. */
  fail(problem: string): InputError {
    return inputError(this.#file, undefined, problem);
  }

  /** Field `name` as a non-empty array of arrays. */
  rows(name: string): unknown[][] {
    const v = this.o[name];
    if (!Array.isArray(v) || v.length === 0 || !v.every(Array.isArray)) {
      throw this.fail(`"${name}" must be a non-empty array of arrays`);
    }
    return v as unknown[][];
  }

  /** One row (`name` at `at`) of L finite numbers, integers when `integer`. */
  numbers(name: string, values: unknown[], at: string, integer: boolean, L: number): number[] {
    if (values.length !== L) {
      throw this.fail(
        `"${name}"${at} has ${values.length} values, expected ${L} (the length of input_ids[0])`,
      );
    }
    return values.map((v, t) => {
      if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
        throw this.fail(
          `"${name}"${at}[${t}] must be ${integer ? "an integer" : "a number"}, got ${
            JSON.stringify(v)
          }`,
        );
      }
      return v;
    });
  }

  /** Checks lo <= v <= hi. */
  inRange(name: string, at: string, v: number, lo: number, hi: number): void {
    if (v < lo || v > hi) throw this.fail(`"${name}"${at} is ${v}, outside ${lo}..${hi}`);
  }
}

/** `input_ids` [B][L], each id below the vocabulary size; it sets B and L. */
function readInputIds(f: BatchFields, vocabSize: number) {
  const ids = f.rows("input_ids");
  const B = ids.length;
  const L = ids[0].length;
  if (L === 0) throw f.fail(`"input_ids"[0] is empty`);
  const inputIds = new Int32Array(B * L);
  ids.forEach((row, b) => {
    f.numbers("input_ids", row, `[${b}]`, true, L).forEach((v, t) => {
      f.inRange("input_ids", `[${b}][${t}]`, v, 0, vocabSize - 1);
      inputIds[b * L + t] = v;
    });
  });
  return { inputIds, B, L };
}

/** `position_ids` [B][2][L] (inter, intra), each in 0..maxPosition. */
function readPositionIds(f: BatchFields, B: number, L: number, maxPosition: number): Int32Array {
  const positions = f.rows("position_ids");
  if (positions.length !== B) {
    throw f.fail(`"position_ids" has ${positions.length} rows, expected ${B}`);
  }
  const positionIds = new Int32Array(B * 2 * L);
  positions.forEach((pair, b) => {
    if (pair.length !== 2 || !pair.every(Array.isArray)) {
      throw f.fail(`"position_ids"[${b}] must be [inter positions, intra positions]`);
    }
    (pair as unknown[][]).forEach((row, k) => {
      f.numbers("position_ids", row, `[${b}][${k}]`, true, L).forEach((v, t) => {
        f.inRange("position_ids", `[${b}][${k}][${t}]`, v, 0, maxPosition);
        positionIds[(b * 2 + k) * L + t] = v;
      });
    });
  });
  return positionIds;
}

/** `sep` [B]: each sequence's part-A length, in 0..L. */
function readSep(f: BatchFields, B: number, L: number): Int32Array {
  const sepValues = f.o.sep;
  if (!Array.isArray(sepValues) || sepValues.length !== B) {
    throw f.fail(`"sep" must be an array of ${B} integers`);
  }
  const sep = new Int32Array(B);
  sepValues.forEach((v, b) => {
    if (typeof v !== "number" || !Number.isInteger(v)) {
      throw f.fail(`"sep"[${b}] must be an integer`);
    }
    f.inRange("sep", `[${b}]`, v, 0, L);
    sep[b] = v;
  });
  return sep;
}

/**
 * `labels` [B][L] (ids below the vocabulary size, or -100: no loss) and `loss_mask` [B][L],
 * both or neither; undefined when neither.
 */
function readLabels(
  f: BatchFields,
  B: number,
  L: number,
  vocabSize: number,
): { labels: Int32Array; lossMask: Float32Array } | undefined {
  if ((f.o.labels === undefined) !== (f.o.loss_mask === undefined)) {
    throw f.fail(`"labels" and "loss_mask" go together: give both or neither`);
  }
  if (f.o.labels === undefined) return undefined;
  const labelRows = f.rows("labels");
  const maskRows = f.rows("loss_mask");
  if (labelRows.length !== B || maskRows.length !== B) {
    throw f.fail(`"labels" and "loss_mask" must have ${B} rows`);
  }
  const labels = new Int32Array(B * L);
  const lossMask = new Float32Array(B * L);
  labelRows.forEach((row, b) => {
    f.numbers("labels", row, `[${b}]`, true, L).forEach((v, t) => {
      if (v !== -100) f.inRange("labels", `[${b}][${t}]`, v, 0, vocabSize - 1);
      labels[b * L + t] = v;
    });
  });
  let counted = 0;
  maskRows.forEach((row, b) => {
    f.numbers("loss_mask", row, `[${b}]`, false, L).forEach((v, t) => {
      if (!(v >= 0)) throw f.fail(`"loss_mask"[${b}][${t}] is ${v}: a weight of 0 or more`);
      lossMask[b * L + t] = v;
      if (v > 0 && labels[b * L + t] !== -100) counted++;
    });
  });
  // The loss is a mean over the counted positions: with none it does not exist (not 0).
  if (counted === 0) {
    throw f.fail(`no position counts toward the loss: every "loss_mask" is 0 or its label -100`);
  }
  return { labels, lossMask };
}

/**
 * `rope_position_ids` [B][L] (decoder families), each in 0..maxPosition - 1 (the rotary table's
 * rows); undefined if absent.
 */
function readRopePositionIds(
  f: BatchFields,
  B: number,
  L: number,
  maxPosition: number,
): Int32Array | undefined {
  if (f.o.rope_position_ids === undefined) return undefined;
  const ropeRows = f.rows("rope_position_ids");
  if (ropeRows.length !== B) throw f.fail(`"rope_position_ids" must have ${B} rows`);
  const rope = new Int32Array(B * L);
  ropeRows.forEach((row, b) => {
    f.numbers("rope_position_ids", row, `[${b}]`, true, L).forEach((v, t) => {
      // A rotary table has one row a position below the model's length: the length itself
      // would be read as the row before it.
      f.inRange("rope_position_ids", `[${b}][${t}]`, v, 0, maxPosition - 1);
      rope[b * L + t] = v;
    });
  });
  return rope;
}
