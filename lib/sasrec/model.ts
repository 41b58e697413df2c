/**
 * SASRec (Kang and McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018) as ONNX graphs
 * built with the project's graph builder: the configuration, the tensors and their
 * initialization, and the two graphs the model needs:
 *
 * - the loss graph: mean softmax cross-entropy over ALL items at every real position of a batch
 *   of left-padded sequences (the "full cross-entropy" training that the later literature found
 *   far stronger than the paper's one sampled negative), differentiated by `lib/train/autodiff.ts`;
 * - the ranking graph: the score of every item after each sequence's last position, the user's
 *   seen items pushed to the bottom, and the best k (TopK) - plus the scores of given candidates.
 *
 * Architecture (the paper's section III, its public code's choices where the paper is silent):
 *
 *     x0 = E[items] * sqrt(d) + P[positions]                       [B*L, d]   (dropout)
 *     per block:  x = x + Dropout(Attention(LayerNorm(x)))         causal, padding keys masked
 *                 x = x + Dropout(W2 Dropout(ReLU(W1 LayerNorm(x) + b1)) + b2)
 *     h = LayerNorm(x);  score(item j) = h . E[j]                  (the shared item embedding)
 *
 * Item indices: 0 is the padding item, 1..V the items (so E is [V + 1, d] and only rows 1..V are
 * ever scored). Positions are right-aligned: the last item of a sequence has position
 * maxLength - 1, as in the public code's left-padded windows, so training windows of any length
 * and ranking windows agree.
 *
 * Shapes: B sequences of L positions, N = B*L rows, d = hidden size, nh heads of hd = d / nh,
 * M = rows that carry a loss, V = items.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import { Graph, type Value } from "../onnx/graph.ts";
import type { Rng } from "../random.ts";

/** The size of a SASRec model. */
export interface SasrecConfig {
  /** Number of items V (indices 1..V; 0 is padding). */
  numItems: number;
  /** Hidden size d (the item embedding size). */
  hidden: number;
  /** Self-attention blocks. */
  blocks: number;
  /** Attention heads (must divide `hidden`). */
  heads: number;
  /** Longest sequence the model reads (the position table's size). */
  maxLength: number;
}

/** Additive attention bias for a key a query may not see. */
const MASKED = -10000;
/** LayerNorm epsilon of the public SASRec code. */
const EPSILON = 1e-8;
/** The score given to excluded items before TopK (below any real score). */
export const EXCLUDED_SCORE = -1e30;

/** Names of the model's tensors. */
export const sasrecNames = {
  items: "item_embedding",
  positions: "position_embedding",
  block: (i: number, part: string) => `blocks.${i}.${part}`,
  finalNorm: "final_norm",
};

/** Every tensor of the model with its shape, in a fixed order. */
export function sasrecShapes(config: SasrecConfig): Map<string, number[]> {
  checkConfig(config);
  const { hidden: d, numItems: v, maxLength: m } = config;
  const shapes = new Map<string, number[]>();
  shapes.set(sasrecNames.items, [v + 1, d]);
  shapes.set(sasrecNames.positions, [m, d]);
  for (let i = 0; i < config.blocks; i++) {
    const b = (part: string, shape: number[]) => shapes.set(sasrecNames.block(i, part), shape);
    b("attention_norm.weight", [d]);
    b("attention_norm.bias", [d]);
    b("attention.qkv.weight", [3 * d, d]);
    b("attention.qkv.bias", [3 * d]);
    b("attention.out.weight", [d, d]);
    b("attention.out.bias", [d]);
    b("ffn_norm.weight", [d]);
    b("ffn_norm.bias", [d]);
    b("ffn.up.weight", [d, d]);
    b("ffn.up.bias", [d]);
    b("ffn.down.weight", [d, d]);
    b("ffn.down.bias", [d]);
  }
  shapes.set(`${sasrecNames.finalNorm}.weight`, [d]);
  shapes.set(`${sasrecNames.finalNorm}.bias`, [d]);
  return shapes;
}

/** Throws an OptionError naming the option of `config` that is wrong. */
export function checkConfig(config: SasrecConfig): void {
  const positive = (name: keyof SasrecConfig) => {
    const x = config[name];
    if (!Number.isInteger(x) || x < 1) {
      throw new OptionError(name, (n) => `${n} must be a positive integer, got ${x}`);
    }
  };
  for (const key of ["numItems", "hidden", "blocks", "heads", "maxLength"] as const) positive(key);
  if (config.hidden % config.heads !== 0) {
    throw new OptionError(
      "heads",
      (n) => `${n} must divide the hidden size ${config.hidden}, got ${config.heads}`,
    );
  }
}

/**
 * Fresh weights: Xavier-normal matrices and embeddings (the public code's init), LayerNorm
 * weights 1, biases 0, the padding row of the item embedding 0. Drawn tensor by tensor from
 * `rng`, so a seed gives one model.
 */
export function initSasrec(config: SasrecConfig, rng: Rng): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of sasrecShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (shape.length === 2) {
      const std = Math.sqrt(2 / (shape[0] + shape[1]));
      for (let i = 0; i < n; i++) data[i] = std * rng.normal();
      if (name === sasrecNames.items) data.fill(0, 0, shape[1]);
    } else if (name.endsWith("norm.weight")) {
      data.fill(1);
    }
    out.set(name, data);
  }
  return out;
}

/** Whether a tensor gets weight decay (matrices and embeddings yes; biases, LayerNorm no). */
export function decays(shape: readonly number[]): boolean {
  return shape.length >= 2;
}

/** The dropout keep-mask inputs of a training graph: one per dropout site, each [N, d]. */
export function dropoutSites(config: SasrecConfig): string[] {
  const sites = ["dropout.embedding"];
  for (let i = 0; i < config.blocks; i++) {
    sites.push(`dropout.${i}.attention`, `dropout.${i}.ffn_hidden`, `dropout.${i}.ffn_out`);
  }
  return sites;
}

/** Options of the graph builders. */
export interface SasrecGraphOptions {
  config: SasrecConfig;
  /** Float type (default float32; float64 for gradient checks). */
  dtype?: "float32" | "float64";
  /** Tensors that are initializers (frozen, e.g. for ranking); the others are graph inputs. */
  weights?: ReadonlyMap<string, Float32Array>;
  /** Add the dropout keep-mask inputs of {@linkcode dropoutSites} (training with dropout). */
  dropout?: boolean;
}

/** Builds SASRec's layers into one graph (shared by the loss and ranking graphs). */
class SasrecBuilder {
  readonly g: Graph;
  readonly config: SasrecConfig;
  readonly dtype: "float32" | "float64";
  /** Every model tensor used, by name. */
  readonly params = new Map<string, Value>();
  readonly #options: SasrecGraphOptions;
  readonly #shapes: Map<string, number[]>;

  constructor(g: Graph, options: SasrecGraphOptions) {
    this.g = g;
    this.config = options.config;
    this.dtype = options.dtype ?? "float32";
    this.#options = options;
    this.#shapes = sasrecShapes(options.config);
  }

  scalar(x: number): Value {
    return this.g.constant(x, this.dtype);
  }

  /** Tensor `name`: an initializer when its data was given, else a graph input. */
  tensor(name: string): Value {
    const known = this.params.get(name);
    if (known) return known;
    const shape = this.#shapes.get(name);
    if (!shape) throw new Error(`SASRec has no tensor ${name}`);
    const data = this.#options.weights?.get(name);
    const v = data
      ? this.g.initializer(name, {
        dtype: this.dtype,
        shape,
        data: this.dtype === "float64" ? Float64Array.from(data) : data,
      })
      : this.g.input(name, this.dtype, shape);
    this.params.set(name, v);
    return v;
  }

  /** x times the keep-mask input `site` when dropout is on. */
  dropout(site: string, x: Value): Value {
    if (!this.#options.dropout) return x;
    return this.g.mul(x, this.g.input(site, this.dtype, ["N", this.config.hidden]));
  }

  /**
   * LayerNorm over the last axis. Spelled out in float64 graphs (onnxruntime computes
   * LayerNormalization's statistics in float32); in float32 the node also exposes its
   * statistics, which the backward pass reuses.
   */
  layerNorm(prefix: string, x: Value): Value {
    const g = this.g;
    const w = this.tensor(`${prefix}.weight`);
    const b = this.tensor(`${prefix}.bias`);
    if (this.dtype === "float32") return g.layerNormWithStats(x, w, b, { epsilon: EPSILON })[0];
    const centered = g.sub(x, g.reduceMean(x, [-1]));
    const variance = g.reduceMean(g.mul(centered, centered), [-1]);
    const normed = g.div(centered, g.sqrt(g.add(variance, this.scalar(EPSILON))));
    return g.add(g.mul(normed, w), b);
  }

  linear(prefix: string, x: Value): Value {
    return this.g.gemm(x, this.tensor(`${prefix}.weight`), this.tensor(`${prefix}.bias`), {
      transB: true,
    });
  }

  /**
   * The attention bias [B, 1, L, L]: query i sees key j iff j <= i and j is a real item
   * (0 where it sees, -10000 where not). A padding query sees nothing real; its row is
   * never used.
   */
  attentionBias(items: Value, bl: Value): Value {
    const g = this.g;
    return g.scope("mask", () => {
      const length = g.gather(bl, g.constant(1, "int64")); // scalar L
      const range = g.refine(
        g.range(g.constant(0, "int64"), length, g.constant(1, "int64")),
        ["L"],
      );
      const causal = g.lessOrEqual(g.unsqueeze(range, [0]), g.unsqueeze(range, [1])); // [L, L]
      const real = g.not(g.equal(items, g.constant(0, "int32"))); // [B, L]
      const seen = g.and(g.unsqueeze(causal, [0]), g.unsqueeze(real, [1])); // [B, L, L]
      return g.unsqueeze(g.where(seen, this.scalar(0), this.scalar(MASKED)), [1]); // [B,1,L,L]
    });
  }

  /** Block i's causal self-attention on the normalized rows h [N, d]: returns [N, d]. */
  attention(i: number, h: Value, bias: Value, bl: Value): Value {
    const g = this.g;
    const d = this.config.hidden;
    const nh = this.config.heads;
    const hd = d / nh;
    const mixed = this.linear(sasrecNames.block(i, "attention.qkv"), h); // [N, 3d]
    const shape = g.concat([bl, g.constant([3 * nh, hd], "int64")], 0);
    const split = g.refine(g.reshape(mixed, shape), ["B", "L", 3 * nh, hd]); // [B, L, 3nh, hd]
    const [q, k, v] = g.split(g.transpose(split, [0, 2, 1, 3]), [nh, nh, nh], 1); // [B,nh,L,hd]
    const scores = g.mul(g.matmul(q, g.transpose(k, [0, 1, 3, 2])), this.scalar(1 / Math.sqrt(hd)));
    const probs = g.softmax(g.add(scores, bias), -1); // [B, nh, L, L]
    const ctx = g.matmul(probs, v); // [B, nh, L, hd]
    const rows = g.reshape(g.transpose(ctx, [0, 2, 1, 3]), [-1, d]); // [N, d]
    return this.linear(sasrecNames.block(i, "attention.out"), rows);
  }

  /** Block i's point-wise feed-forward network on the normalized rows h [N, d]. */
  feedForward(i: number, h: Value): Value {
    const up = this.g.relu(this.linear(sasrecNames.block(i, "ffn.up"), h)); // [N, d]
    const hidden = this.dropout(`dropout.${i}.ffn_hidden`, up);
    return this.linear(sasrecNames.block(i, "ffn.down"), hidden); // [N, d]
  }

  /**
   * The encoder: `items` and `positions` int32 [B, L] -> the rows after the last block,
   * [N, d], before the final LayerNorm.
   */
  encode(items: Value, positions: Value): Value {
    const g = this.g;
    const d = this.config.hidden;
    const bl = g.shapeOf(items); // (B, L)
    let x = g.scope("embed", () => {
      const words = g.gather(this.tensor(sasrecNames.items), items); // [B, L, d]
      const pos = g.gather(this.tensor(sasrecNames.positions), positions); // [B, L, d]
      const sum = g.add(g.mul(words, this.scalar(Math.sqrt(d))), pos);
      return this.dropout("dropout.embedding", g.reshape(sum, [-1, d])); // [N, d]
    });
    const bias = this.attentionBias(items, bl);
    for (let i = 0; i < this.config.blocks; i++) {
      x = g.scope(`blocks.${i}`, () => {
        const attn = this.attention(
          i,
          this.layerNorm(sasrecNames.block(i, "attention_norm"), x),
          bias,
          bl,
        );
        const mid = g.add(x, this.dropout(`dropout.${i}.attention`, attn));
        const ffn = this.feedForward(i, this.layerNorm(sasrecNames.block(i, "ffn_norm"), mid));
        return g.add(mid, this.dropout(`dropout.${i}.ffn_out`, ffn));
      });
    }
    return x;
  }

  /** The item rows of the embedding, [V, d] (row 0, the padding item, is never scored). */
  itemTable(): Value {
    const v = this.config.numItems;
    return this.g.slice(this.tensor(sasrecNames.items), [1], [v + 1], [0]);
  }
}

/** What {@linkcode buildSasrecLossGraph} returns. */
export interface SasrecLossGraph {
  graph: Graph;
  /** `loss` [1]: the mean cross-entropy over the M loss rows. */
  loss: Value;
  /** The model tensors that are graph inputs, in {@linkcode sasrecShapes} order. */
  params: Value[];
}

/**
 * The loss graph. Inputs: `items`, `positions` int32 [B, L]; `rows` int32 [M] (indices into the
 * N = B*L rows that carry a loss: the real positions); `targets` int32 [M] (the next item of
 * each such row, 0-based: item index - 1); with dropout, the keep-masks [N, d]; the trainable
 * tensors. Output: `loss` [1] = mean over the M rows of -log softmax(scores)[target], the softmax
 * over all V items.
 */
export function buildSasrecLossGraph(options: SasrecGraphOptions): SasrecLossGraph {
  const g = new Graph("sasrec_loss");
  const m = new SasrecBuilder(g, options);
  const items = g.input("items", "int32", ["B", "L"]);
  const positions = g.input("positions", "int32", ["B", "L"]);
  const rows = g.input("rows", "int32", ["M"]);
  const targets = g.input("targets", "int32", ["M"]);
  const x = m.encode(items, positions); // [N, d]
  const sum = g.scope("loss", () => {
    // Only the M real rows get the final LayerNorm and the [M, V] scores: padding is most of
    // a batch on sparse data, and the product with all V items is the dominant cost.
    const h = m.layerNorm(sasrecNames.finalNorm, g.gather(x, rows)); // [M, d]
    const logits = g.gemm(h, m.itemTable(), null, { transB: true }); // [M, V]
    // -log softmax(logits)[target] = logsumexp(logits) - h . E[target]: the target's score as
    // a row-wise dot product, and logsumexp spelled out as c + log(sum(exp(logits - c))) with
    // c the row maximum rounded to an integer (exact for any c; the round trip through int32
    // keeps c out of the backward pass, which is right since the result does not depend on
    // it). The backward pass then makes just two [M, V] tensors, and onnxruntime's own
    // ReduceLogSumExp measured several times slower than these four passes.
    const c = g.cast(g.cast(g.reduceMax(logits, [1], true), "int32"), logits.dtype); // [M, 1]
    const lse = g.add(c, g.log(g.reduceSum(g.exp(g.sub(logits, c)), [1], true))); // [M, 1]
    const targetRows = g.gather(
      m.tensor(sasrecNames.items),
      g.add(targets, g.constant(1, "int32")),
    );
    const picked = g.reduceSum(g.mul(h, targetRows), [1], true); // [M, 1]
    return g.reshape(g.reduceMean(g.sub(lse, picked), [0, 1], false), [1]); // [1]
  });
  const loss = g.output(sum, "loss");
  const params = [...sasrecShapes(options.config).keys()]
    .filter((name) => !options.weights?.has(name))
    .map((name) => m.tensor(name));
  return { graph: g, loss, params };
}

/**
 * The ranking graph (the tensors of `weights` as initializers, the others graph inputs, so one
 * session can rank with the weights of every epoch). Inputs: `items`, `positions` int32 [B, L]
 * (left-padded windows: the last column is each sequence's latest item); `exclude` int64 [B, S]
 * (item indices to push below every other item; repeat an index to pad a row, and put the
 * padding item 0 in every row); `candidates` int64 [B, C] (item indices whose scores are wanted;
 * [B, 1] of zeros when none). Outputs: `top_scores` [B, k] and `top_items` int64 [B, k] (item
 * indices, best first; entries scoring {@linkcode EXCLUDED_SCORE} are excluded ones) and
 * `candidate_scores` [B, C].
 */
export function buildSasrecRankGraph(options: SasrecGraphOptions & { k: number }): Graph {
  const g = new Graph("sasrec_rank");
  const m = new SasrecBuilder(g, { ...options, dropout: false });
  const d = options.config.hidden;
  const items = g.input("items", "int32", ["B", "L"]);
  const positions = g.input("positions", "int32", ["B", "L"]);
  const exclude = g.input("exclude", "int64", ["B", "S"]);
  const candidates = g.input("candidates", "int64", ["B", "C"]);
  const x = m.encode(items, positions); // [N, d]
  const bl = g.shapeOf(items);
  const rows = g.refine(g.reshape(x, g.concat([bl, g.constant([d], "int64")], 0)), ["B", "L", d]);
  const last = g.reshape(g.slice(rows, [-1], [Number.MAX_SAFE_INTEGER], [1]), [-1, d]); // [B, d]
  const h = m.layerNorm(sasrecNames.finalNorm, last); // [B, d]
  // Scores of the padding item too ([B, V + 1]), so column j is item index j.
  const scores = g.gemm(h, m.tensor(sasrecNames.items), null, { transB: true });
  g.output(g.gatherElements(scores, candidates, 1), "candidate_scores");
  const low = g.expand(m.scalar(EXCLUDED_SCORE), g.shapeOf(exclude)); // [B, S]
  const masked = g.scatterElements(scores, exclude, low, 1); // [B, V + 1]
  const k = Math.min(options.k, options.config.numItems + 1);
  const [topScores, topItems] = g.topK(masked, k, 1);
  g.output(topScores, "top_scores");
  g.output(topItems, "top_items");
  return g;
}
