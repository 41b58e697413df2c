/**
 * Item recommendation over the whole pool: beam search inside the answer's span, constrained by
 * the item trie so that every hypothesis is a prefix of a real item and `[E]` is taken only where
 * an item is complete (docs/method.md section 7). Returns the top-k distinct items of each prompt
 * with their log-probabilities.
 *
 * Scores: the natural-log probability of the item's tokens followed by `[E]`, given part A and
 * `[S]`: sum over t of log p(token_t | ...), with no length normalisation. So the score of an item
 * is exactly what scoring that item alone gives (score.ts), and with enough beams (at least the
 * widest level of the trie) the result is exactly the top-k of scoring every item of the pool.
 * Length normalisation would favour long titles and break that equivalence; none is applied.
 *
 * Positions: every token gets the mask's inter-position; `[S]` has intra 1 and the token that
 * reaches trie node n has intra depth(n) + 1 (the dynamic position rule of docs/method.md section 7
 * gives exactly that along a path of the trie: each token continues the current entity's prefix).
 *
 * Search: B beams per prompt. At each step every beam may end (if its node is an item, not
 * excluded) with score + log p([E]), and every child of its node is a candidate continuation;
 * the B best candidates survive. An item is final once it ended: log-probabilities are at most 0,
 * so a hypothesis can only lose score, and a prompt stops when no live beam can beat its k-th
 * finished item (or none is left). Prompts are decoded together (each prompt's live beams, packed
 * prompt after prompt: no padding row goes through the model); a finished prompt leaves the
 * batch.
 *
 * Forced runs (`forcedRuns`, off by default): where every live beam's next tokens are forced by the
 * trie, they are fed in one model step of several tokens, and the search goes through them token
 * by token as above. Same top-k, fewer model runs, but no time saved on a CPU and the last digits
 * of scores then depend on the batch (docs/performance.md).
 *
 * @module
 */

import { TRIE_ROOT } from "../collate/mod.ts";
import type { Exclusion, ItemPool } from "../collate/pool.ts";
import type { PromptInput, StepModel } from "./step_model.ts";

/** Defaults of {@linkcode ItemSearchOptions}. */
export const DEFAULT_ITEM_SEARCH = Object.freeze({ beams: 20, topK: 10 });

/** Options of {@linkcode searchItems}; defaults in {@linkcode DEFAULT_ITEM_SEARCH}. */
export interface ItemSearchOptions {
  /** The items to search over. */
  pool: ItemPool;
  /** Id of `[S]`. */
  sop: number;
  /** Id of `[E]`. */
  eop: number;
  /** Beams per prompt. */
  beams?: number;
  /** Items returned per prompt. */
  topK?: number;
  /** Per prompt: nodes to avoid (exclusionOf), or null. */
  exclusions?: readonly (Exclusion | null)[];
  /**
   * Score with the trie's softmax: each step's log-probabilities renormalised over the tokens the
   * trie allows there (the node's children, and `[E]` where an item ends), so an item's score is
   * its log-probability among the items, and tokens the trie forces cost nothing.
   */
  trieSoftmax?: boolean;
  /**
   * Feed a run of tokens the trie forces in one step: when the node of every live beam of every
   * prompt has one child (or none: the beam can only end), for several tokens, those tokens go to
   * the model together and the search takes their log-probabilities from that one run. The
   * result is that of one step per token up to onnxruntime's rounding: a run of several tokens
   * rounds their attention differently from one-token steps (up to a float32 ulp), and whether a
   * run is taken depends on the other prompts of the batch, so the batch size changes the last
   * digits of scores. Default false.
   */
  forcedRuns?: boolean;
}

/** Most log-probabilities (floats) one step of a forced run may return: 128 MB. */
const maxRunFloats = 1 << 25;

/** The items found for one prompt, best first. */
export interface RankedItems {
  /** Item indices into `pool.items`. */
  items: Int32Array;
  /** Their log-probabilities (item tokens + `[E]`). */
  scores: Float64Array;
}

/** A fixed-capacity min-heap of candidates by score (keeps the best `capacity`). */
class CandidateHeap {
  readonly score: Float64Array;
  readonly row: Int32Array;
  readonly token: Int32Array;
  readonly node: Int32Array;
  size = 0;

  constructor(readonly capacity: number) {
    this.score = new Float64Array(capacity);
    this.row = new Int32Array(capacity);
    this.token = new Int32Array(capacity);
    this.node = new Int32Array(capacity);
  }

  /** The score a candidate must beat to enter (-Infinity while not full). */
  get floor(): number {
    return this.size < this.capacity ? -Infinity : this.score[0];
  }

  offer(score: number, row: number, token: number, node: number): void {
    if (this.size < this.capacity) {
      let i = this.size++;
      // Sift up.
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (this.score[parent] <= score) break;
        this.#move(parent, i);
        i = parent;
      }
      this.#set(i, score, row, token, node);
      return;
    }
    if (score <= this.score[0]) return;
    // Replace the minimum and sift down.
    let i = 0;
    const n = this.size;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.score[r] < this.score[l] ? r : l;
      if (this.score[c] >= score) break;
      this.#move(c, i);
      i = c;
    }
    this.#set(i, score, row, token, node);
  }

  /** Empties the heap into the given arrays, best first; returns the count. */
  drainDescending(
    score: Float64Array,
    row: Int32Array,
    token: Int32Array,
    node: Int32Array,
    at: number,
  ): number {
    const count = this.size;
    for (let k = count - 1; k >= 0; k--) {
      score[at + k] = this.score[0];
      row[at + k] = this.row[0];
      token[at + k] = this.token[0];
      node[at + k] = this.node[0];
      this.#popMin();
    }
    return count;
  }

  #popMin(): void {
    const last = --this.size;
    if (last === 0) return;
    const s = this.score[last], r = this.row[last], t = this.token[last], nd = this.node[last];
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= last) break;
      const rr = l + 1;
      const c = rr < last && this.score[rr] < this.score[l] ? rr : l;
      if (this.score[c] >= s) break;
      this.#move(c, i);
      i = c;
    }
    this.#set(i, s, r, t, nd);
  }

  #move(from: number, to: number): void {
    this.score[to] = this.score[from];
    this.row[to] = this.row[from];
    this.token[to] = this.token[from];
    this.node[to] = this.node[from];
  }

  #set(i: number, score: number, row: number, token: number, node: number): void {
    this.score[i] = score;
    this.row[i] = row;
    this.token[i] = token;
    this.node[i] = node;
  }
}

/** Inserts (item, score) into a prompt's descending top-k list; returns the new count. */
function insertFinished(
  items: Int32Array,
  scores: Float64Array,
  at: number,
  count: number,
  k: number,
  item: number,
  score: number,
): number {
  if (count === k && score <= scores[at + k - 1]) return count;
  let i = count < k ? count++ : k - 1;
  while (i > 0 && scores[at + i - 1] < score) {
    scores[at + i] = scores[at + i - 1];
    items[at + i] = items[at + i - 1];
    i--;
  }
  scores[at + i] = score;
  items[at + i] = item;
  return count;
}

/**
 * The top-k items of each prompt by constrained beam search (see the module docs).
 *
 * @example
 * ```ts
 * import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
 * import type { Pool } from "../collate/pool.ts";
 * import type { PromptInput, StepModel } from "./step_model.ts";
 *
 * declare const decoder: StepModel, partA: PromptInput, pool: Pool, tokenizer: TextTokenizer;
 * const [ranked] = await searchItems(decoder, [partA], {
 *   pool: pool.items, sop: tokenizer.special.sop, eop: tokenizer.special.eop, beams: 20, topK: 10,
 * });
 * Array.from(ranked.items, (i) => pool.items.items[i]); // entity strings, best first
 * ```
 */
export async function searchItems(
  model: StepModel,
  prompts: readonly PromptInput[],
  options: ItemSearchOptions,
): Promise<RankedItems[]> {
  const { pool, sop, eop } = options;
  const beams = options.beams ?? DEFAULT_ITEM_SEARCH.beams;
  const topK = options.topK ?? DEFAULT_ITEM_SEARCH.topK;
  if (!(beams >= 1 && topK >= 1)) throw new RangeError("beams and topK must be at least 1");
  const { depth } = pool.trie;
  const P = prompts.length;
  if (P === 0) return [];
  const state = new BeamState(P, beams, topK);
  const heap = new CandidateHeap(beams);

  await model.prefill(prompts);
  // Step 0: `[S]` for every prompt, one row each, every prompt at the trie's root.
  let active = Array.from({ length: P }, (_, p) => p); // prompts in the model, in its order
  let logp = await model.step({
    perPrompt: 1,
    ids: new Int32Array(P).fill(sop),
    inter: Int32Array.from(prompts, (p) => p.maskIndex),
    intra: new Int32Array(P).fill(1),
    beamIndex: new Int32Array(P),
    oneRowEach: beams === 1,
  });
  let length = 1; // tokens per row of the last step

  let maxSteps = 1;
  for (let n = 0; n < depth.length; n++) maxSteps = Math.max(maxSteps, depth[n] + 1);
  for (let stepNo = 0; stepNo < maxSteps && active.length > 0;) {
    // One search step per token fed: a run of forced tokens is searched token by token from the
    // log-probabilities after each, exactly as if they had been fed one step each.
    for (let t = 0; t < length && stepNo < maxSteps; t++, stepNo++) {
      if (t > 0) state.follow(active);
      for (const p of active) {
        state.advance(
          p,
          logp,
          model.vocabSize,
          pool,
          eop,
          options.exclusions?.[p] ?? null,
          heap,
          options.trieSoftmax ?? false,
        );
      }
    }

    // Prompts with live beams continue; the others leave the batch.
    const keep: number[] = [];
    const still: number[] = [];
    let live = 0; // rows of the next step: every live beam of every prompt
    active.forEach((p, q) => {
      if (state.nextCount[p] === 0) return;
      keep.push(q);
      still.push(p);
      live += state.nextCount[p];
    });
    if (still.length === 0) break;
    if (still.length !== active.length) model.keepPrompts(keep);
    active = still;
    const last = length;
    length = 1;
    if (options.forcedRuns) {
      const most = Math.floor(maxRunFloats / (live * model.vocabSize));
      length = Math.min(1 + state.forcedRun(active, pool.trie), most, maxSteps - stepNo);
      length = Math.max(length, 1);
    }
    logp = await model.step({
      ...state.nextRows(active, prompts, pool.trie, last, length, eop),
      oneRowEach: beams === 1,
    });
  }
  return state.results();
}

/**
 * The beams and finished items of every prompt (by its index in the search's prompts), in flat
 * typed arrays: prompt p's beams at `p * beams + j`, its finished items at `p * topK + j`.
 */
class BeamState {
  readonly beams: number;
  readonly topK: number;
  // Live beams: trie node, score, and the model row that holds their past.
  readonly node: Int32Array;
  readonly score: Float64Array;
  readonly row: Int32Array;
  readonly count: Int32Array;
  // Finished items, best first.
  readonly finItem: Int32Array;
  readonly finScore: Float64Array;
  readonly finCount: Int32Array;
  // Survivors of a step before they become beams.
  readonly nextScore: Float64Array;
  readonly nextRow: Int32Array;
  readonly nextToken: Int32Array;
  readonly nextNode: Int32Array;
  // Scratch: the trie softmax's log normaliser of each beam of the prompt being advanced.
  readonly norm: Float64Array;
  readonly nextCount: Int32Array;

  constructor(prompts: number, beams: number, topK: number) {
    this.beams = beams;
    this.topK = topK;
    this.node = new Int32Array(prompts * beams);
    this.score = new Float64Array(prompts * beams);
    this.row = new Int32Array(prompts * beams);
    this.count = new Int32Array(prompts);
    this.finItem = new Int32Array(prompts * topK);
    this.finScore = new Float64Array(prompts * topK);
    this.finCount = new Int32Array(prompts);
    this.nextScore = new Float64Array(prompts * beams);
    this.nextRow = new Int32Array(prompts * beams);
    this.nextToken = new Int32Array(prompts * beams);
    this.nextNode = new Int32Array(prompts * beams);
    this.norm = new Float64Array(beams);
    this.nextCount = new Int32Array(prompts);
    // Before step 0: one beam per prompt at the root, continuing row p.
    for (let p = 0; p < prompts; p++) {
      this.node[p * beams] = TRIE_ROOT;
      this.score[p * beams] = 0;
      this.row[p * beams] = p;
      this.count[p] = 1;
    }
  }

  /**
   * One step of prompt `p` given the step's log-probabilities `logp` [rows, V]: the items its
   * beams end first (so the k-th finished score prunes the continuations), then its best
   * continuations into the `next*` arrays.
   */
  advance(
    p: number,
    logp: Float32Array,
    V: number,
    pool: ItemPool,
    eop: number,
    exclusion: Exclusion | null,
    heap: CandidateHeap,
    trieSoftmax: boolean,
  ): void {
    const { childStart, childToken, childNode, terminal } = pool.trie;
    const { beams, topK } = this;
    const at = p * beams;
    // Per beam: log of the probability mass the trie allows at its node (0: the vocabulary's).
    const norm = this.norm;
    for (let j = 0; j < this.count[p]; j++) {
      if (!trieSoftmax) {
        norm[j] = 0;
        continue;
      }
      const node = this.node[at + j];
      const offset = this.row[at + j] * V;
      let max = terminal[node] >= 0 ? logp[offset + eop] : -Infinity;
      for (let e = childStart[node]; e < childStart[node + 1]; e++) {
        max = Math.max(max, logp[offset + childToken[e]]);
      }
      let sum = terminal[node] >= 0 ? Math.exp(logp[offset + eop] - max) : 0;
      for (let e = childStart[node]; e < childStart[node + 1]; e++) {
        sum += Math.exp(logp[offset + childToken[e]] - max);
      }
      norm[j] = max + Math.log(sum);
    }
    for (let j = 0; j < this.count[p]; j++) {
      const node = this.node[at + j];
      const item = terminal[node];
      if (item < 0 || (exclusion !== null && exclusion.ends.has(node))) continue;
      const score = this.score[at + j] + logp[this.row[at + j] * V + eop] - norm[j];
      this.finCount[p] = insertFinished(
        this.finItem,
        this.finScore,
        p * topK,
        this.finCount[p],
        topK,
        item,
        score,
      );
    }
    const bar = this.finCount[p] === topK ? this.finScore[p * topK + topK - 1] : -Infinity;
    for (let j = 0; j < this.count[p]; j++) {
      const node = this.node[at + j];
      const base = this.score[at + j] - norm[j];
      const row = this.row[at + j];
      const offset = row * V;
      for (let e = childStart[node]; e < childStart[node + 1]; e++) {
        const token = childToken[e];
        const score = base + logp[offset + token];
        if (score <= bar || score <= heap.floor) continue;
        const child = childNode[e];
        if (exclusion !== null && exclusion.dead.has(child)) continue;
        heap.offer(score, row, token, child);
      }
    }
    this.nextCount[p] = heap.drainDescending(
      this.nextScore,
      this.nextRow,
      this.nextToken,
      this.nextNode,
      at,
    );
  }

  /**
   * Between two tokens of one step (a forced run): the survivors become the beams, each reading
   * the log-probabilities after the next token of its own row.
   */
  follow(active: readonly number[]): void {
    for (const p of active) {
      const at = p * this.beams;
      const count = this.nextCount[p];
      for (let j = 0; j < count; j++) {
        this.node[at + j] = this.nextNode[at + j];
        this.score[at + j] = this.nextScore[at + j];
        this.row[at + j] = this.nextRow[at + j] + 1;
      }
      this.count[p] = count;
    }
  }

  /**
   * How many tokens after the survivors' next one the trie forces for all of them: the fewest
   * nodes with exactly one child along each survivor's path (a node without children ends the
   * beam, so it sets no limit; 0 when every survivor's node is one).
   */
  forcedRun(active: readonly number[], trie: ItemPool["trie"]): number {
    const { childStart, childNode } = trie;
    let run = Infinity;
    for (const p of active) {
      const at = p * this.beams;
      for (let j = 0; j < this.nextCount[p] && run > 0; j++) {
        let node = this.nextNode[at + j];
        let forced = 0;
        while (forced < run && childStart[node + 1] - childStart[node] === 1) {
          node = childNode[childStart[node]];
          forced++;
        }
        if (childStart[node + 1] === childStart[node]) continue; // a leaf: it only ends
        run = Math.min(run, forced);
      }
    }
    return run === Infinity ? 0 : run;
  }

  /**
   * Makes the survivors of `active` prompts the beams and returns the next step's rows: each
   * prompt's beams, packed prompt after prompt (`rows`: their counts; `perPrompt`, the most); each
   * row's `length` tokens are its survivor's token and the tokens the trie forces after it
   * (after a leaf: `[E]`, whose log-probabilities nothing reads). `last` is the previous step's
   * tokens per row: its row r holds log-probabilities r * last .. r * last + last - 1.
   */
  nextRows(
    active: readonly number[],
    prompts: readonly PromptInput[],
    trie: ItemPool["trie"],
    last: number,
    length: number,
    eop: number,
  ) {
    const { depth, childStart, childToken, childNode } = trie;
    const rows = Int32Array.from(active, (p) => this.nextCount[p]);
    const n = rows.reduce((a, c) => a + c, 0);
    const ids = new Int32Array(n * length);
    const inter = new Int32Array(n * length);
    const intra = new Int32Array(n * length);
    const beamIndex = new Int32Array(n);
    let first = 0; // the row of prompt q's first beam
    for (let q = 0; q < active.length; q++) {
      const p = active[q];
      const at = p * this.beams;
      const mask = prompts[p].maskIndex;
      const count = rows[q];
      for (let j = 0; j < count; j++) {
        const src = at + j;
        const r = first + j;
        let node = this.nextNode[src];
        ids[r * length] = this.nextToken[src];
        intra[r * length] = depth[node] + 1;
        for (let t = 1; t < length; t++) {
          const e = childStart[node];
          const leaf = e === childStart[node + 1];
          if (!leaf) node = childNode[e];
          ids[r * length + t] = leaf ? eop : childToken[e];
          intra[r * length + t] = leaf ? intra[r * length + t - 1] : depth[node] + 1;
        }
        inter.fill(mask, r * length, (r + 1) * length);
        beamIndex[r] = Math.floor(this.nextRow[src] / last);
      }
      for (let j = 0; j < count; j++) {
        this.node[at + j] = this.nextNode[at + j];
        this.score[at + j] = this.nextScore[at + j];
        this.row[at + j] = (first + j) * length;
      }
      this.count[p] = count;
      first += count;
    }
    return { perPrompt: Math.max(...rows), rows, length, ids, inter, intra, beamIndex };
  }

  /** Each prompt's finished items, best first. */
  results(): RankedItems[] {
    const { topK } = this;
    const out: RankedItems[] = [];
    for (let p = 0; p < this.count.length; p++) {
      const c = this.finCount[p];
      out.push({
        items: this.finItem.slice(p * topK, p * topK + c),
        scores: this.finScore.slice(p * topK, p * topK + c),
      });
    }
    return out;
  }
}
