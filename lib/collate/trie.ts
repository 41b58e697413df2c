/**
 * The entity trie (docs/method.md section 7): every entity of the pool as its canonical token
 * sequence (`encodeEntity`, i.e. `" " + entity`), in a compressed-sparse-row layout of typed arrays
 * so the hot loops (the dynamic position rule, constrained beam search) walk it without objects.
 *
 * Layout: node 0 is the root. The children of node `n` are the edges
 * `childStart[n] .. childStart[n + 1] - 1`; edge `e` is labelled by token `childToken[e]` (sorted
 * ascending within a node, so {@linkcode EntityTrie.child} is a binary search) and leads to node
 * `childNode[e]`. `terminal[n]` is the index (in the list the trie was built from) of the entity
 * that ends at `n`, or -1; `depth[n]` is the number of tokens from the root.
 *
 * Not here: the position rule itself (`dynamic_positions.ts`).
 *
 * @module
 */

import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { encodeEntity } from "./tokenize.ts";

/** The root node's index. */
export const TRIE_ROOT = 0;

/**
 * A trie over token ids.
 *
 * @example
 * ```ts
 * import type { EntityEntry } from "../data/types.ts";
 * import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
 * import { encodeEntity } from "./tokenize.ts";
 *
 * declare const tokenizer: TextTokenizer, pool: EntityEntry[];
 * const trie = EntityTrie.fromEntities(tokenizer, pool.map((e) => e.entity));
 * let node = TRIE_ROOT;
 * for (const id of encodeEntity(tokenizer, "OPI Nail Lacquer")) node = trie.child(node, id);
 * trie.terminal[node]; // index of "OPI Nail Lacquer" in the pool
 * // allowed next tokens from `node`:
 * for (let e = trie.childStart[node]; e < trie.childStart[node + 1]; e++) trie.childToken[e];
 * ```
 */
export class EntityTrie {
  /** [nodes + 1] first edge of each node. */
  readonly childStart: Int32Array;
  /** [edges] token of each edge, ascending within a node. */
  readonly childToken: Int32Array;
  /** [edges] node each edge leads to. */
  readonly childNode: Int32Array;
  /** [nodes] index of the entity ending at the node, or -1. */
  readonly terminal: Int32Array;
  /** [nodes] tokens from the root to the node. */
  readonly depth: Int32Array;
  /** Number of entities (sequences) the trie was built from. */
  readonly entityCount: number;

  private constructor(
    childStart: Int32Array,
    childToken: Int32Array,
    childNode: Int32Array,
    terminal: Int32Array,
    depth: Int32Array,
    entityCount: number,
  ) {
    this.childStart = childStart;
    this.childToken = childToken;
    this.childNode = childNode;
    this.terminal = terminal;
    this.depth = depth;
    this.entityCount = entityCount;
  }

  /** Number of nodes, the root included. */
  get nodeCount(): number {
    return this.terminal.length;
  }

  /**
   * A trie over `sequences` (entity `i` is `sequences[i]`). An empty sequence, or the same
   * sequence twice, is a RangeError (the pool's entities are unique and non-empty).
   */
  static build(sequences: readonly ArrayLike<number>[]): EntityTrie {
    // Insertion with a hash map from (parent, token) to node; flattened to CSR afterwards.
    const edges = new Map<number, number>();
    const parents: number[] = [-1];
    const tokens: number[] = [-1];
    const terminalList: number[] = [-1];
    const depthList: number[] = [0];
    // The key of edge (node, token) is node * base + token with base above every token: exact
    // while it stays below 2^53 (2^35 nodes at a vocabulary of 2^18), checked per new node.
    let base = 1;
    for (const seq of sequences) {
      for (let i = 0; i < seq.length; i++) {
        const token = seq[i];
        if (!Number.isInteger(token) || token < 0) {
          throw new RangeError(`entity tokens must be ids >= 0 (got ${token})`);
        }
        base = Math.max(base, token + 1);
      }
    }
    for (let s = 0; s < sequences.length; s++) {
      const seq = sequences[s];
      if (seq.length === 0) throw new RangeError(`entity ${s} has no tokens`);
      let node = 0;
      for (let i = 0; i < seq.length; i++) {
        const token = seq[i];
        const key = node * base + token;
        let next = edges.get(key);
        if (next === undefined) {
          next = parents.length;
          if (next * base + base > Number.MAX_SAFE_INTEGER) {
            throw new RangeError(`the trie outgrows ${next} nodes at ${base} token ids`);
          }
          edges.set(key, next);
          parents.push(node);
          tokens.push(token);
          terminalList.push(-1);
          depthList.push(depthList[node] + 1);
        }
        node = next;
      }
      if (terminalList[node] !== -1) {
        throw new RangeError(`entities ${terminalList[node]} and ${s} have the same tokens`);
      }
      terminalList[node] = s;
    }

    const nodes = parents.length;
    const childStart = new Int32Array(nodes + 1);
    for (let n = 1; n < nodes; n++) childStart[parents[n] + 1]++;
    for (let n = 0; n < nodes; n++) childStart[n + 1] += childStart[n];
    const fill = childStart.slice(0, nodes);
    const childToken = new Int32Array(nodes - 1);
    const childNode = new Int32Array(nodes - 1);
    for (let n = 1; n < nodes; n++) {
      const e = fill[parents[n]]++;
      childToken[e] = tokens[n];
      childNode[e] = n;
    }
    // Sort each node's edges by token (insertion sort: fan-outs are small except at the root).
    for (let n = 0; n < nodes; n++) {
      const lo = childStart[n], hi = childStart[n + 1];
      if (hi - lo > 32) {
        const order = Array.from({ length: hi - lo }, (_, i) => lo + i)
          .sort((a, b) => childToken[a] - childToken[b]);
        const t = order.map((e) => childToken[e]), c = order.map((e) => childNode[e]);
        childToken.set(t, lo);
        childNode.set(c, lo);
        continue;
      }
      for (let i = lo + 1; i < hi; i++) {
        const t = childToken[i], c = childNode[i];
        let j = i - 1;
        while (j >= lo && childToken[j] > t) {
          childToken[j + 1] = childToken[j];
          childNode[j + 1] = childNode[j];
          j--;
        }
        childToken[j + 1] = t;
        childNode[j + 1] = c;
      }
    }
    return new EntityTrie(
      childStart,
      childToken,
      childNode,
      Int32Array.from(terminalList),
      Int32Array.from(depthList),
      sequences.length,
    );
  }

  /** The trie of `entities`, each encoded canonically with {@linkcode encodeEntity}. */
  static fromEntities(tokenizer: TextTokenizer, entities: readonly string[]): EntityTrie {
    return EntityTrie.build(entities.map((entity) => encodeEntity(tokenizer, entity)));
  }

  /** The child of `node` along `token`, or -1. */
  child(node: number, token: number): number {
    let lo = this.childStart[node], hi = this.childStart[node + 1] - 1;
    const tokens = this.childToken;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const t = tokens[mid];
      if (t === token) return this.childNode[mid];
      if (t < token) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** The node reached from the root along `ids`, or -1 when `ids` is no entity's prefix. */
  walk(ids: ArrayLike<number>): number {
    let node = TRIE_ROOT;
    for (let i = 0; i < ids.length && node >= 0; i++) node = this.child(node, ids[i]);
    return node;
  }

  /** The index of the entity whose tokens are exactly `ids`, or -1. */
  entityOf(ids: ArrayLike<number>): number {
    const node = this.walk(ids);
    return node >= 0 ? this.terminal[node] : -1;
  }
}
