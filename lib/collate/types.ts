/**
 * What the collator hands the model: one batch of examples as flat typed arrays, row-major, in the
 * dtypes the model graphs take as inputs (int32 ids and positions, float32 loss mask), so they go
 * to onnxruntime without conversion.
 *
 * @module
 */

/** A padded batch of collated examples. */
export interface Batch {
  /** B: examples in the batch. */
  batchSize: number;
  /** L: padded length of every example. */
  length: number;
  /** [B, L] token ids; padding is the `[PAD]` id. */
  inputIds: Int32Array;
  /** [B, 2, L]: row 0 inter-positions, row 1 intra-positions; 0 on padding. */
  positionIds: Int32Array;
  /** [B]: length of part A of each example. */
  sep: Int32Array;
  /** [B, L]: the next token to predict, -100 where there is no loss. */
  labels: Int32Array;
  /** [B, L]: 1 on part B tokens, 0 on part A and padding. */
  lossMask: Float32Array;
  /**
   * [M, V] additive bias on the logits of the M loss positions (the trie softmax's training loss,
   * `trie_loss.ts`); absent: the vocabulary's softmax everywhere.
   */
  lossLogitBias?: { data: Float32Array; rows: number; vocab: number };
}
