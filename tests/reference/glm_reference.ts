/**
 * An independent plain-TypeScript GLM forward pass (loops over float64 numbers, one sequence at a
 * time), written from the model's definition rather than from the graph code, for tests to hold
 * the ONNX graphs against. Slow: for small shapes only.
 *
 * @module
 */

export interface ReferenceConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  layernormEpsilon: number;
}

export interface ReferenceBatch {
  batchSize: number;
  length: number;
  inputIds: ArrayLike<number>;
  /** [B, 2, L]. */
  positionIds: ArrayLike<number>;
  sep: ArrayLike<number>;
  labels?: ArrayLike<number>;
  lossMask?: ArrayLike<number>;
}

type W = (name: string) => ArrayLike<number>;

function layerNorm(x: number[], w: ArrayLike<number>, b: ArrayLike<number>, eps: number) {
  const n = x.length;
  const mean = x.reduce((a, v) => a + v, 0) / n;
  const variance = x.reduce((a, v) => a + (v - mean) * (v - mean), 0) / n;
  const inv = 1 / Math.sqrt(variance + eps);
  return x.map((v, i) => (v - mean) * inv * w[i] + b[i]);
}

/** y = W x + b with W stored [out, in] row-major. */
function linear(x: number[], w: ArrayLike<number>, b: ArrayLike<number> | null, out: number) {
  const n = x.length;
  const y = new Array<number>(out);
  for (let o = 0; o < out; o++) {
    let s = b ? b[o] : 0;
    for (let k = 0; k < n; k++) s += w[o * n + k] * x[k];
    y[o] = s;
  }
  return y;
}

function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}

/** The hidden states after the final LayerNorm of one sequence: [L][H]. */
function sequenceHidden(
  config: ReferenceConfig,
  weight: W,
  ids: number[],
  inter: number[],
  intra: number[],
  sep: number,
): number[][] {
  const H = config.hiddenSize;
  const nh = config.numHeads;
  const hd = H / nh;
  const L = ids.length;
  const eps = config.layernormEpsilon;
  const wte = weight("glm.word_embeddings.weight");
  const wpe = weight("glm.transformer.position_embeddings.weight");
  const wbe = weight("glm.transformer.block_position_embeddings.weight");
  let xs = ids.map((id, t) => {
    const row = new Array<number>(H);
    for (let c = 0; c < H; c++) {
      row[c] = wte[id * H + c] + wpe[inter[t] * H + c] + wbe[intra[t] * H + c];
    }
    return row;
  });
  for (let layer = 0; layer < config.numLayers; layer++) {
    const p = (s: string) => weight(`glm.transformer.layers.${layer}.${s}`);
    const normed = xs.map((x) =>
      layerNorm(x, p("input_layernorm.weight"), p("input_layernorm.bias"), eps)
    );
    const qkv = normed.map((x) =>
      linear(x, p("attention.query_key_value.weight"), p("attention.query_key_value.bias"), 3 * H)
    );
    const context = xs.map(() => new Array<number>(H).fill(0));
    for (let head = 0; head < nh; head++) {
      for (let i = 0; i < L; i++) {
        // Token i sees j iff j < sep (part A) or j <= i (causal).
        const visible: number[] = [];
        for (let j = 0; j < L; j++) if (j < sep || j <= i) visible.push(j);
        const scores = visible.map((j) => {
          let s = 0;
          for (let c = 0; c < hd; c++) s += qkv[i][head * hd + c] * qkv[j][H + head * hd + c];
          return s / Math.sqrt(hd);
        });
        const max = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - max));
        const z = exps.reduce((a, b) => a + b, 0);
        visible.forEach((j, n) => {
          for (let c = 0; c < hd; c++) {
            context[i][head * hd + c] += (exps[n] / z) * qkv[j][2 * H + head * hd + c];
          }
        });
      }
    }
    const attn = context.map((c) =>
      linear(c, p("attention.dense.weight"), p("attention.dense.bias"), H)
    );
    const mid = xs.map((x, t) => x.map((v, c) => v + attn[t][c]));
    xs = mid.map((x) => {
      const n2 = layerNorm(
        x,
        p("post_attention_layernorm.weight"),
        p("post_attention_layernorm.bias"),
        eps,
      );
      const up = linear(n2, p("mlp.dense_h_to_4h.weight"), p("mlp.dense_h_to_4h.bias"), 4 * H).map(
        gelu,
      );
      const down = linear(up, p("mlp.dense_4h_to_h.weight"), p("mlp.dense_4h_to_h.bias"), H);
      return x.map((v, c) => v + down[c]);
    });
  }
  return xs.map((x) =>
    layerNorm(
      x,
      weight("glm.transformer.final_layernorm.weight"),
      weight("glm.transformer.final_layernorm.bias"),
      eps,
    )
  );
}

/**
 * Logits [B * L * V] (row-major) and the masked mean cross-entropy (sum over positions with a
 * non-negative label of loss_mask * nll, divided by the sum of those loss_mask values, or by 1
 * when that is smaller).
 */
export function referenceForward(
  config: ReferenceConfig,
  weights: Map<string, ArrayLike<number>>,
  batch: ReferenceBatch,
): { logits: Float64Array; loss: number } {
  const weight: W = (name) => {
    const w = weights.get(name);
    if (!w) throw new Error(`reference: missing weight ${name}`);
    return w;
  };
  const { batchSize: B, length: L } = batch;
  const V = config.vocabSize;
  const wte = weight("glm.word_embeddings.weight");
  const logits = new Float64Array(B * L * V);
  let total = 0;
  let count = 0;
  for (let b = 0; b < B; b++) {
    const ids = Array.from({ length: L }, (_, t) => batch.inputIds[b * L + t]);
    const inter = Array.from({ length: L }, (_, t) => batch.positionIds[b * 2 * L + t]);
    const intra = Array.from({ length: L }, (_, t) => batch.positionIds[b * 2 * L + L + t]);
    const hidden = sequenceHidden(config, weight, ids, inter, intra, batch.sep[b]);
    for (let t = 0; t < L; t++) {
      const row = linear(hidden[t], wte, null, V);
      logits.set(row, (b * L + t) * V);
      const label = batch.labels?.[b * L + t] ?? -100;
      const w = batch.lossMask?.[b * L + t] ?? 0;
      if (label >= 0 && w !== 0) {
        const max = Math.max(...row);
        const lse = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
        total += w * (lse - row[label]);
        count += w;
      }
    }
  }
  return { logits, loss: total / Math.max(count, 1) };
}
