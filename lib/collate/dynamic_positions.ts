/**
 * Dynamic position infilling (docs/method.md section 7): while generating inside a part B span, the
 * intra-position of each new token is decided from the entity trie, one token at a time, as a
 * pure step function. The inter-position stays at the span's mask index (not handled here).
 *
 * Rule: if the tokens of the current unit followed by the new token are a prefix of some entity,
 * the intra-position grows by one; otherwise the token starts a new unit and gets 2. The first
 * token after `[S]` (intra 1) always starts a unit. A separate token (one not starting any
 * entity) is a unit on its own, so the token after it starts a new unit too.
 *
 * This reproduces the collator's part B intra-positions except where the rule cannot know
 * better: a unit followed by a token that continues it into a prefix of some entity (a title
 * that extends another title, or text that happens to begin an entity).
 *
 * @module
 */

import { type EntityTrie, TRIE_ROOT } from "./trie.ts";

/** Where generation stands inside a span. */
export interface IntraState {
  /** Trie node of the current unit's tokens, or -1 when they are no entity's prefix. */
  readonly node: number;
  /** Intra-position of the last token (1 for `[S]`). */
  readonly intra: number;
}

/** The state right after a span's `[S]` (intra-position 1). */
export const SPAN_START: IntraState = Object.freeze({ node: -1, intra: 1 });

/**
 * The state after `token`; its `intra` is the token's intra-position.
 *
 * @example
 * ```ts
 * import type { EntityTrie } from "./trie.ts";
 *
 * declare const trie: EntityTrie, generated: number[], maskIndex: number;
 * declare function feed(token: number, position: { inter: number; intra: number }): void;
 * let state = SPAN_START;
 * for (const token of generated) {
 *   state = nextIntraState(trie, state, token);
 *   feed(token, { inter: maskIndex, intra: state.intra });
 * }
 * ```
 */
export function nextIntraState(trie: EntityTrie, state: IntraState, token: number): IntraState {
  if (state.node >= 0) {
    const next = trie.child(state.node, token);
    if (next >= 0) return { node: next, intra: state.intra + 1 };
  }
  return { node: trie.child(TRIE_ROOT, token), intra: 2 };
}

/**
 * The intra-positions the rule gives to `tokens` (a span's tokens after `[S]`), written into
 * `out` (allocated when absent) and returned.
 */
export function dynamicIntraPositions(
  trie: EntityTrie,
  tokens: ArrayLike<number>,
  out: Int32Array = new Int32Array(tokens.length),
): Int32Array {
  let node = -1;
  let intra = 1;
  for (let i = 0; i < tokens.length; i++) {
    const next = node >= 0 ? trie.child(node, tokens[i]) : -1;
    if (next >= 0) {
      node = next;
      intra++;
    } else {
      node = trie.child(TRIE_ROOT, tokens[i]);
      intra = 2;
    }
    out[i] = intra;
  }
  return out;
}
