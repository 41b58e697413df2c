/**
 * An independent plain-TypeScript forward pass of the Llama-style decoders (docs/method.md section
 * 11): loops over float64 numbers, one sequence and one head at a time, written from the formulas
 * of docs/method.md (RMSNorm, grouped-query attention by head index, rotary pairs (i, i + d/2) or
 * (2i, 2i+1), SwiGLU) rather than from the graph code. Slow: small shapes only.
 *
 * @module
 */

import type { DecoderConfig } from "../../lib/model/families/config.ts";

export interface DecoderReferenceBatch {
  batchSize: number;
  length: number;
  inputIds: ArrayLike<number>;
  /** [B, 2, L]: inter, intra. */
  positionIds: ArrayLike<number>;
  ropePositionIds: ArrayLike<number>;
  sep: ArrayLike<number>;
  labels?: ArrayLike<number>;
  lossMask?: ArrayLike<number>;
}

type W = (name: string) => ArrayLike<number> | undefined;

function rms(x: number[], w: ArrayLike<number>, eps: number): number[] {
  let s = 0;
  for (const v of x) s += v * v;
  const inv = 1 / Math.sqrt(s / x.length + eps);
  return x.map((v, i) => v * inv * w[i]);
}

function linear(x: number[], w: ArrayLike<number>, b: ArrayLike<number> | undefined, out: number) {
  const n = x.length;
  const y = new Array<number>(out);
  for (let o = 0; o < out; o++) {
    let s = b ? b[o] : 0;
    for (let k = 0; k < n; k++) s += w[o * n + k] * x[k];
    y[o] = s;
  }
  return y;
}

function invFreq(c: DecoderConfig): number[] {
  const d = c.rotaryDim;
  const out: number[] = [];
  for (let i = 0; i < d / 2; i++) {
    let f = Math.pow(c.ropeTheta, -(2 * i) / d);
    const s = c.ropeScaling;
    if (s?.type === "linear") f /= s.factor;
    if (s?.type === "llama3") {
      const wl = 2 * Math.PI / f;
      const low = s.originalMaxPositions / s.lowFreqFactor;
      const high = s.originalMaxPositions / s.highFreqFactor;
      if (wl > low) f /= s.factor;
      else if (wl >= high) {
        const t = (s.originalMaxPositions / wl - s.lowFreqFactor) /
          (s.highFreqFactor - s.lowFreqFactor);
        f = (1 - t) * f / s.factor + t * f;
      }
    }
    out.push(f);
  }
  return out;
}

/** Rotates one head vector in place for position `pos`. */
function rotate(c: DecoderConfig, x: number[], pos: number, freq: number[]) {
  const d = c.rotaryDim;
  for (let i = 0; i < d / 2; i++) {
    // float32 angles, as the graphs (and Hugging Face) compute them
    const angle = Math.fround(pos * Math.fround(freq[i]));
    const cs = Math.cos(angle);
    const sn = Math.sin(angle);
    const [a, b] = c.ropeStyle === "half" ? [i, i + d / 2] : [2 * i, 2 * i + 1];
    const xa = x[a];
    const xb = x[b];
    x[a] = xa * cs - xb * sn;
    x[b] = xb * cs + xa * sn;
  }
}

/**
 * Logits [B, L, V + added] and, with labels, the masked mean cross-entropy. `added` rows (ids
 * V..) come from `model.embed_tokens.added.weight` (and `lm_head.added.weight` when untied).
 */
export function decoderReference(
  c: DecoderConfig,
  weight: W,
  batch: DecoderReferenceBatch,
  options: { attention: "prefix" | "causal"; addedRows?: number },
): { logits: Float64Array; loss: number } {
  const { hiddenSize: H, headDim: hd, numHeads: nh, numKvHeads: nkv } = c;
  const added = options.addedRows ?? 0;
  const V = c.vocabSize + added;
  const { batchSize: B, length: L } = batch;
  const must = (name: string) => {
    const w = weight(name);
    if (!w) throw new Error(`reference: ${name} missing`);
    return w;
  };
  const freq = invFreq(c);
  const logits = new Float64Array(B * L * V);
  let lossSum = 0;
  let weightSum = 0;
  for (let b = 0; b < B; b++) {
    const sep = batch.sep[b];
    const embedRow = (id: number) => {
      if (id < c.vocabSize) {
        return Array.from(must("model.embed_tokens.weight")).slice(id * H, id * H + H);
      }
      const t = must("model.embed_tokens.added.weight");
      return Array.from(t).slice((id - c.vocabSize) * H, (id - c.vocabSize + 1) * H);
    };
    const intraTable = weight("model.intra_position_embeddings.weight");
    let xs: number[][] = [];
    for (let t = 0; t < L; t++) {
      const row = embedRow(batch.inputIds[b * L + t]);
      const r = Math.min(batch.positionIds[b * 2 * L + L + t], c.intraRows - 1);
      if (intraTable) { for (let k = 0; k < H; k++) row[k] += intraTable[r * H + k]; }
      xs.push(row);
    }
    const sees = (i: number, j: number) => j <= i || (options.attention === "prefix" && j < sep);
    for (let layer = 0; layer < c.numLayers; layer++) {
      const p = (s: string) => weight(`model.layers.${layer}.${s}`);
      const q: number[][][] = []; // [t][head][hd]
      const k: number[][][] = [];
      const v: number[][][] = [];
      for (let t = 0; t < L; t++) {
        const n = rms(xs[t], p("input_layernorm.weight")!, c.rmsNormEps);
        const qa = linear(n, p("self_attn.q_proj.weight")!, p("self_attn.q_proj.bias"), nh * hd);
        const ka = linear(n, p("self_attn.k_proj.weight")!, p("self_attn.k_proj.bias"), nkv * hd);
        const va = linear(n, p("self_attn.v_proj.weight")!, p("self_attn.v_proj.bias"), nkv * hd);
        const split = (a: number[], heads: number) =>
          Array.from({ length: heads }, (_, h) => a.slice(h * hd, h * hd + hd));
        let qh = split(qa, nh);
        let kh = split(ka, nkv);
        if (c.qkNorm) {
          qh = qh.map((x) => rms(x, p("self_attn.q_norm.weight")!, c.rmsNormEps));
          kh = kh.map((x) => rms(x, p("self_attn.k_norm.weight")!, c.rmsNormEps));
        }
        const pos = batch.ropePositionIds[b * L + t];
        for (const x of qh) rotate(c, x, pos, freq);
        for (const x of kh) rotate(c, x, pos, freq);
        q.push(qh);
        k.push(kh);
        v.push(split(va, nkv));
      }
      const next: number[][] = [];
      for (let t = 0; t < L; t++) {
        const ctx = new Array<number>(nh * hd).fill(0);
        for (let h = 0; h < nh; h++) {
          const kvh = Math.floor(h / (nh / nkv));
          const scores: number[] = [];
          for (let j = 0; j < L; j++) {
            if (!sees(t, j)) {
              scores.push(-Infinity);
              continue;
            }
            let s = 0;
            for (let e = 0; e < hd; e++) s += q[t][h][e] * k[j][kvh][e];
            scores.push(s / Math.sqrt(hd));
          }
          const mx = Math.max(...scores);
          const ex = scores.map((s) => Math.exp(s - mx));
          const z = ex.reduce((a, e) => a + e, 0);
          for (let j = 0; j < L; j++) {
            for (let e = 0; e < hd; e++) ctx[h * hd + e] += (ex[j] / z) * v[j][kvh][e];
          }
        }
        let o = linear(ctx, p("self_attn.o_proj.weight")!, p("self_attn.o_proj.bias"), H);
        // glm4: the attention's output normed before its residual sum.
        if (c.sandwichNorms) o = rms(o, p("post_self_attn_layernorm.weight")!, c.rmsNormEps);
        const mid = xs[t].map((x, i) => x + o[i]);
        const n2 = rms(mid, p("post_attention_layernorm.weight")!, c.rmsNormEps);
        const I = c.intermediateSize;
        let gate: number[];
        let up: number[];
        if (c.fusedGateUp) {
          const both = linear(n2, p("mlp.gate_up_proj.weight")!, p("mlp.gate_up_proj.bias"), 2 * I);
          gate = both.slice(0, I);
          up = both.slice(I);
        } else {
          gate = linear(n2, p("mlp.gate_proj.weight")!, p("mlp.gate_proj.bias"), I);
          up = linear(n2, p("mlp.up_proj.weight")!, p("mlp.up_proj.bias"), I);
        }
        const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
        let down = linear(act, p("mlp.down_proj.weight")!, p("mlp.down_proj.bias"), H);
        if (c.sandwichNorms) down = rms(down, p("post_mlp_layernorm.weight")!, c.rmsNormEps);
        next.push(mid.map((x, i) => x + down[i]));
      }
      xs = next;
    }
    const head = must(c.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight");
    const addedHead = added
      ? must(c.tieWordEmbeddings ? "model.embed_tokens.added.weight" : "lm_head.added.weight")
      : undefined;
    for (let t = 0; t < L; t++) {
      const n = rms(xs[t], must("model.norm.weight"), c.rmsNormEps);
      const row = linear(n, head, undefined, c.vocabSize);
      if (addedHead) row.push(...linear(n, addedHead, undefined, added));
      logits.set(row, (b * L + t) * V);
      const label = batch.labels?.[b * L + t] ?? -100;
      const w = (batch.lossMask?.[b * L + t] ?? 0) * (label >= 0 ? 1 : 0);
      weightSum += w;
      if (w > 0) {
        const mx = Math.max(...row);
        const lse = mx + Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0));
        lossSum += w * (lse - row[label]);
      }
    }
  }
  return { logits, loss: lossSum / Math.max(weightSum, 1) };
}
