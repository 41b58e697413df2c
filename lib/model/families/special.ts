/**
 * Special tokens past a checkpoint's vocabulary (docs/method.md section 11): where the tokenizer,
 * with the method's tokens appended after its highest id, needs more ids than the embedding has
 * rows, the embedding (and an untied lm_head) grows by the missing rows, initialised to the mean of
 * the existing rows. The rows live beside the frozen table (`ADDED_ROWS` names), are trainable
 * under LoRA and are saved with the adapter.
 *
 * @module
 */

import type { Weights } from "../weights.ts";
import type { DecoderConfig } from "./config.ts";
import { ADDED_ROWS } from "./decoder.ts";

/** Rows to add for a tokenizer of `tokenizerIds` ids (0 when the embedding covers them). */
export function addedRowCount(config: DecoderConfig, tokenizerIds: number): number {
  return Math.max(0, tokenizerIds - config.vocabSize);
}

/** `rows` copies of the mean row of `table` [V, H]. */
export function meanRows(table: Float32Array, width: number, rows: number): Float32Array {
  const n = table.length / width;
  const mean = new Float64Array(width);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < width; c++) mean[c] += table[r * width + c];
  }
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < width; c++) out[r * width + c] = mean[c] / n;
  }
  return out;
}

/**
 * Adds the mean-initialised rows for `rows` special tokens to `weights` (unless already there,
 * e.g. from an adapter): `model.embed_tokens.added.weight`, and `lm_head.added.weight` when the
 * head is untied.
 */
export function addSpecialRows(config: DecoderConfig, weights: Weights, rows: number): void {
  if (rows === 0) return;
  const h = config.hiddenSize;
  if (!weights.has(ADDED_ROWS.embed)) {
    weights.set(ADDED_ROWS.embed, meanRows(weights.get("model.embed_tokens.weight")!, h, rows));
  }
  if (!config.tieWordEmbeddings && !weights.has(ADDED_ROWS.head)) {
    weights.set(ADDED_ROWS.head, meanRows(weights.get("lm_head.weight")!, h, rows));
  }
}
