/**
 * Ranking with a SASRec model: for each query (a history of item indices), the best k items over
 * ALL items with the given items excluded, and optionally the scores of given candidates. One
 * onnxruntime session whose tensors are inputs, so training can rank with each epoch's weights
 * without rebuilding it; queries run in batches of similar length (less padding), and the
 * answers come back in query order.
 *
 * @module
 */

import type { TensorData } from "../onnx/graph.ts";
import { Session } from "../runtime/session.ts";
import { rankingBatch } from "./batch.ts";
import { buildSasrecRankGraph, EXCLUDED_SCORE, type SasrecConfig, sasrecShapes } from "./model.ts";

/** One query. */
export interface RankQuery {
  /** Item indices (1..V), oldest first; the model reads the last maxLength. */
  history: ArrayLike<number>;
  /** Item indices left out of the ranking (e.g. the whole history). */
  exclude?: ArrayLike<number>;
  /** Item indices whose scores are wanted. */
  candidates?: ArrayLike<number>;
}

/** The answer to one query. */
export interface RankResult {
  /** The best items (indices, best first), at most k, excluded ones left out. */
  items: Int32Array;
  /** Their scores. */
  scores: Float32Array;
  /** The scores of the query's candidates, in their order (empty without candidates). */
  candidateScores: Float32Array;
}

/** Options of {@linkcode SasrecRanker.create}. */
export interface RankerOptions {
  /** How many items each answer ranks. */
  k: number;
  /** Queries per run (default 256). */
  batchSize?: number;
  /** Intra-op threads (default: the machine's cores). */
  threads?: number;
}

function int64(shape: number[], values: ArrayLike<number>): TensorData {
  const data = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) data[i] = BigInt(values[i]);
  return { dtype: "int64", shape, data };
}

/** A padded [B, W] int64 matrix of per-row index lists (rows padded by repeating `fill`). */
function indexMatrix(lists: readonly ArrayLike<number>[], first: number[], fill: number) {
  let width = 1;
  for (let i = 0; i < lists.length; i++) width = Math.max(width, first.length + lists[i].length);
  const values = new Array<number>(lists.length * width).fill(fill);
  lists.forEach((list, i) => {
    let c = i * width;
    for (const x of first) values[c++] = x;
    for (let j = 0; j < list.length; j++) values[c++] = list[j];
  });
  return int64([lists.length, width], values);
}

/** Ranks items for histories with a SASRec model. */
export class SasrecRanker {
  readonly config: SasrecConfig;
  readonly #session: Session;
  readonly #options: RankerOptions;

  private constructor(config: SasrecConfig, session: Session, options: RankerOptions) {
    this.config = config;
    this.#session = session;
    this.#options = options;
  }

  /** Builds the ranking graph of `config` and opens its session (CPU). */
  static async create(config: SasrecConfig, options: RankerOptions): Promise<SasrecRanker> {
    const graph = buildSasrecRankGraph({ config, k: options.k });
    const session = await Session.create(graph, { device: "cpu", threads: options.threads });
    return new SasrecRanker(config, session, options);
  }

  /** Answers `queries` with the model `weights` (every tensor of {@linkcode sasrecShapes}). */
  async rank(
    weights: ReadonlyMap<string, Float32Array>,
    queries: readonly RankQuery[],
  ): Promise<RankResult[]> {
    const feeds: Record<string, TensorData> = {};
    for (const [name, shape] of sasrecShapes(this.config)) {
      const data = weights.get(name);
      if (!data) throw new Error(`SASRec tensor ${name} is missing`);
      feeds[name] = { dtype: "float32", shape, data };
    }
    // Similar lengths together: a batch is as long as its longest history.
    const order = queries.map((_, i) => i).sort((a, b) =>
      Math.min(queries[a].history.length, this.config.maxLength) -
        Math.min(queries[b].history.length, this.config.maxLength) || a - b
    );
    const results = new Array<RankResult>(queries.length);
    const size = this.#options.batchSize ?? 256;
    for (let start = 0; start < order.length; start += size) {
      const ids = order.slice(start, start + size);
      const batch = rankingBatch(ids.map((i) => queries[i].history), this.config.maxLength);
      const shape = [batch.batchSize, batch.length];
      const wantCandidates = ids.some((i) => queries[i].candidates !== undefined);
      const out = await this.#session.run({
        ...feeds,
        items: { dtype: "int32", shape, data: batch.items },
        positions: { dtype: "int32", shape, data: batch.positions },
        exclude: indexMatrix(ids.map((i) => queries[i].exclude ?? []), [0], 0),
        candidates: indexMatrix(ids.map((i) => queries[i].candidates ?? []), [], 0),
      }, wantCandidates ? undefined : ["top_scores", "top_items"]);
      const k = out.top_items.shape[1];
      const top = out.top_items.data as BigInt64Array;
      const topScores = out.top_scores.data as Float32Array;
      const candidateWidth = wantCandidates ? out.candidate_scores.shape[1] : 0;
      ids.forEach((q, row) => {
        const items: number[] = [];
        const scores: number[] = [];
        for (let j = 0; j < k && items.length < this.#options.k; j++) {
          const score = topScores[row * k + j];
          if (score <= EXCLUDED_SCORE / 2) break;
          items.push(Number(top[row * k + j]));
          scores.push(score);
        }
        const c = queries[q].candidates?.length ?? 0;
        results[q] = {
          items: Int32Array.from(items),
          scores: Float32Array.from(scores),
          candidateScores: c > 0
            ? (out.candidate_scores.data as Float32Array).slice(
              row * candidateWidth,
              row * candidateWidth + c,
            )
            : new Float32Array(0),
        };
      });
    }
    return results;
  }

  /** Frees the session. */
  async release(): Promise<void> {
    await this.#session.release();
  }
}
