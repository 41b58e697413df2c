/**
 * The trie softmax as a training loss: for every loss position of a batch that predicts a token
 * of an item (a part-B span whose labels spell an item of the trie, then `[E]`), the logits the
 * softmax runs over are those of the tokens the trie allows after the span's tokens so far (the
 * node's children, and `[E]` where an item ends). This is the distribution `infer --trie-softmax`
 * ranks by, so training and ranking agree: a token the trie forces carries no loss, and the model
 * learns to tell apart the items that share a prefix rather than to spell their titles.
 *
 * Encoded as an additive bias [M, V] over the logits of the M loss positions (row-major over
 * [B, L], the positions with loss mask 1 and a real label, the order the graph's NonZero takes):
 * 0 where allowed, {@linkcode TRIE_LOSS_MASKED} elsewhere; rows of other spans (text, several
 * units, anything the trie does not spell) are all 0: the vocabulary's softmax.
 *
 * @module
 */

import type { Batch } from "./types.ts";
import { type EntityTrie, TRIE_ROOT } from "./trie.ts";

/** The bias of a token the trie does not allow (exp underflows to exactly 0 in float32). */
export const TRIE_LOSS_MASKED: number = -1e4;

/** What {@linkcode trieLossBias} returns. */
export interface TrieLossBias {
  /** [rows, vocab] additive logit bias, row-major. */
  bias: Float32Array;
  /** M: the batch's loss positions. */
  rows: number;
  /** Loss positions under the trie's softmax (the others keep the vocabulary's). */
  restricted: number;
}

/**
 * The logit bias of the trie softmax for `batch` (see the module docs). `vocab`: the width of the
 * model's logits. `sop` / `eop`: the ids of `[S]` and `[E]`.
 *
 * @example
 * ```ts
 * import type { Batch } from "./types.ts";
 * import type { EntityTrie } from "./trie.ts";
 *
 * declare const batch: Batch, trie: EntityTrie;
 * const { bias, rows } = trieLossBias(batch, trie, { sop: 4, eop: 5, vocab: 8000 });
 * bias.length === rows * 8000; // true
 * ```
 */
export function trieLossBias(
  batch: Batch,
  trie: EntityTrie,
  options: { sop: number; eop: number; vocab: number },
): TrieLossBias {
  const { sop, eop, vocab } = options;
  const { batchSize: B, length: L, inputIds, labels, lossMask } = batch;
  // Row of each loss position, -1 elsewhere.
  const rowOf = new Int32Array(B * L).fill(-1);
  let rows = 0;
  for (let i = 0; i < B * L; i++) {
    if (lossMask[i] !== 0 && labels[i] >= 0) rowOf[i] = rows++;
  }
  const bias = new Float32Array(rows * vocab);
  const path: number[] = []; // the trie node before each label of the span
  let restricted = 0;
  for (let b = 0; b < B; b++) {
    const at = b * L;
    for (let t = batch.sep[b]; t < L; t++) {
      if (inputIds[at + t] !== sop || rowOf[at + t] < 0) continue;
      // A span starts at [S]: walk its labels down the trie until [E].
      path.length = 0;
      let node = TRIE_ROOT;
      let item = false;
      for (let k = t; k < L && rowOf[at + k] >= 0; k++) {
        path.push(node);
        const label = labels[at + k];
        if (label === eop) {
          item = trie.terminal[node] >= 0;
          break;
        }
        node = trie.child(node, label);
        if (node < 0) break;
      }
      if (!item) continue;
      for (let j = 0; j < path.length; j++) {
        const n = path[j];
        const row = rowOf[at + t + j] * vocab;
        bias.fill(TRIE_LOSS_MASKED, row, row + vocab);
        for (let e = trie.childStart[n]; e < trie.childStart[n + 1]; e++) {
          bias[row + trie.childToken[e]] = 0;
        }
        if (trie.terminal[n] >= 0) bias[row + eop] = 0;
        restricted++;
      }
      t += path.length - 1;
    }
  }
  return { bias, rows, restricted };
}
