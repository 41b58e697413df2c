/**
 * The batch JSON that `forward` reads (`input_ids` [B][L], `position_ids` [B][2][L], `sep` [B],
 * optional `labels` [B][L] and `loss_mask` [B][L]) turned into the collator's {@linkcode Batch},
 * with every shape and range checked against the model so that a mistake is a one-line error
 * naming the file and the field, not an onnxruntime failure.
 *
 * @module
 */

import type { Batch } from "../collate/types.ts";
import { inputError } from "../errors.ts";
import type { GlmConfig } from "./config.ts";

/** A batch from JSON; labels and loss mask are absent when the file has neither. */
export interface JsonBatch extends Omit<Batch, "labels" | "lossMask"> {
  labels?: Int32Array;
  lossMask?: Float32Array;
  /** [B, L] rotary positions (decoder families, SPEC section 11), when the file has them. */
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
  const fail = (problem: string) => inputError(file, undefined, problem);
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw fail("expected a JSON object with input_ids, position_ids and sep");
  }
  const o = json as Record<string, unknown>;
  const rows = (name: string): unknown[][] => {
    const v = o[name];
    if (!Array.isArray(v) || v.length === 0 || !v.every(Array.isArray)) {
      throw fail(`"${name}" must be a non-empty array of arrays`);
    }
    return v as unknown[][];
  };
  const ids = rows("input_ids");
  const B = ids.length;
  const L = ids[0].length;
  if (L === 0) throw fail(`"input_ids"[0] is empty`);
  const numbers = (name: string, values: unknown[], at: string, integer: boolean): number[] => {
    if (values.length !== L) {
      throw fail(
        `"${name}"${at} has ${values.length} values, expected ${L} (the length of input_ids[0])`,
      );
    }
    return values.map((v, t) => {
      if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
        throw fail(
          `"${name}"${at}[${t}] must be ${integer ? "an integer" : "a number"}, got ${
            JSON.stringify(v)
          }`,
        );
      }
      return v;
    });
  };
  const inRange = (name: string, at: string, v: number, lo: number, hi: number) => {
    if (v < lo || v > hi) throw fail(`"${name}"${at} is ${v}, outside ${lo}..${hi}`);
  };
  const inputIds = new Int32Array(B * L);
  ids.forEach((row, b) => {
    numbers("input_ids", row, `[${b}]`, true).forEach((v, t) => {
      inRange("input_ids", `[${b}][${t}]`, v, 0, config.vocabSize - 1);
      inputIds[b * L + t] = v;
    });
  });
  const positions = rows("position_ids");
  if (positions.length !== B) {
    throw fail(`"position_ids" has ${positions.length} rows, expected ${B}`);
  }
  const positionIds = new Int32Array(B * 2 * L);
  positions.forEach((pair, b) => {
    if (pair.length !== 2 || !pair.every(Array.isArray)) {
      throw fail(`"position_ids"[${b}] must be [inter positions, intra positions]`);
    }
    (pair as unknown[][]).forEach((row, k) => {
      numbers("position_ids", row, `[${b}][${k}]`, true).forEach((v, t) => {
        inRange("position_ids", `[${b}][${k}][${t}]`, v, 0, config.maxSequenceLength);
        positionIds[(b * 2 + k) * L + t] = v;
      });
    });
  });
  const sepValues = o.sep;
  if (!Array.isArray(sepValues) || sepValues.length !== B) {
    throw fail(`"sep" must be an array of ${B} integers`);
  }
  const sep = new Int32Array(B);
  sepValues.forEach((v, b) => {
    if (typeof v !== "number" || !Number.isInteger(v)) throw fail(`"sep"[${b}] must be an integer`);
    inRange("sep", `[${b}]`, v, 0, L);
    sep[b] = v;
  });
  const batch: JsonBatch = { batchSize: B, length: L, inputIds, positionIds, sep };
  if ((o.labels === undefined) !== (o.loss_mask === undefined)) {
    throw fail(`"labels" and "loss_mask" go together: give both or neither`);
  }
  if (o.labels !== undefined) {
    const labelRows = rows("labels");
    const maskRows = rows("loss_mask");
    if (labelRows.length !== B || maskRows.length !== B) {
      throw fail(`"labels" and "loss_mask" must have ${B} rows`);
    }
    batch.labels = new Int32Array(B * L);
    batch.lossMask = new Float32Array(B * L);
    labelRows.forEach((row, b) => {
      numbers("labels", row, `[${b}]`, true).forEach((v, t) => {
        if (v !== -100) inRange("labels", `[${b}][${t}]`, v, 0, config.vocabSize - 1);
        batch.labels![b * L + t] = v;
      });
    });
    maskRows.forEach((row, b) => {
      numbers("loss_mask", row, `[${b}]`, false).forEach((v, t) => {
        batch.lossMask![b * L + t] = v;
      });
    });
  }
  if (o.rope_position_ids !== undefined) {
    const ropeRows = rows("rope_position_ids");
    if (ropeRows.length !== B) throw fail(`"rope_position_ids" must have ${B} rows`);
    batch.ropePositionIds = new Int32Array(B * L);
    ropeRows.forEach((row, b) => {
      numbers("rope_position_ids", row, `[${b}]`, true).forEach((v, t) => {
        inRange("rope_position_ids", `[${b}][${t}]`, v, 0, config.maxSequenceLength);
        batch.ropePositionIds![b * L + t] = v;
      });
    });
  }
  return batch;
}
