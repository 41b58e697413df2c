import assert from "node:assert/strict";
import { CachedDecoder } from "../lib/generate/decoder.ts";
import { decoderFamily } from "../lib/model/family.ts";
import type { DecoderFamily } from "../lib/model/families/config.ts";
import { type AttentionMode, buildDecoderForwardGraph } from "../lib/model/families/decoder.ts";
import { Session } from "../lib/runtime/session.ts";
import { noisyDecoderWeights, TINY } from "./helpers/decoder.ts";

const prompts = [
  { ids: [5, 9, 2, 20, 7], inter: [0, 1, 2, 3, 4], intra: [0, 1, 2, 0, 0], maskIndex: 3 },
  { ids: [7, 1, 1, 22], inter: [0, 1, 2, 3], intra: [0, 0, 1, 0], maskIndex: 1 },
];

/** Log-softmax rows of the full forward over part A + `fed`, at the fed tokens. */
async function fullLogProbs(
  session: Session,
  prompt: typeof prompts[number],
  fed: { ids: number[]; intra: number[] },
  vocab: number,
): Promise<number[][]> {
  const n = fed.ids.length;
  const ids = [...prompt.ids, ...fed.ids];
  const L = ids.length;
  const inter = [...prompt.inter, ...fed.ids.map(() => prompt.maskIndex)];
  const rope = [...prompt.inter, ...fed.ids.map((_, t) => prompt.maskIndex + t + 1)];
  const i32 = (shape: number[], xs: number[]) => ({
    dtype: "int32" as const,
    shape,
    data: Int32Array.from(xs),
  });
  const out = await session.run({
    input_ids: i32([1, L], ids),
    position_ids: i32([1, 2, L], [...inter, ...prompt.intra, ...fed.intra]),
    rope_position_ids: i32([1, L], rope),
    sep: i32([1], [prompt.ids.length]),
  });
  const logits = out.logits.data as Float32Array;
  return Array.from({ length: n }, (_, t) => {
    const r = Array.from(
      logits.subarray((prompt.ids.length + t) * vocab, (prompt.ids.length + t + 1) * vocab),
    );
    const max = Math.max(...r);
    const lse = max + Math.log(r.reduce((a, v) => a + Math.exp(v - max), 0));
    return r.map((v) => v - lse);
  });
}

function worst(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i] - b[i]));
  return w;
}

const cases: [DecoderFamily, AttentionMode][] = [["qwen3", "causal"], ["glm", "prefix"], [
  "llama",
  "causal",
]];
for (const [family, attention] of cases) {
  Deno.test(`${family} (${attention}, GQA): cached decoding equals the full forward token by token`, async () => {
    const config = TINY[family];
    assert.ok(config.numKvHeads < config.numHeads);
    const weights = noisyDecoderWeights(config, 6, { intra: true });
    const V = config.vocabSize;
    const decoder = await CachedDecoder.create(decoderFamily({ config, weights }, { attention }), {
      device: "cpu",
      threads: 1,
    });
    const { graph } = buildDecoderForwardGraph({ config, weights, outputs: "logits", attention });
    const full = await Session.create(graph, { device: "cpu", threads: 1 });
    try {
      await decoder.prefill(prompts.map((p) => ({
        ids: Int32Array.from(p.ids),
        inter: Int32Array.from(p.inter),
        intra: Int32Array.from(p.intra),
        maskIndex: p.maskIndex,
      })));
      const K = 3;
      // Row histories: tokens fed so far and their intra-positions.
      let rows = Array.from(
        { length: 2 * K },
        () => ({ ids: [] as number[], intra: [] as number[] }),
      );
      const steps = [
        { ids: [3, 3, 3, 3, 3, 3], intra: [1, 1, 1, 1, 1, 1], beam: [0, 0, 0, 0, 0, 0] },
        { ids: [8, 11, 4, 2, 6, 9], intra: [2, 2, 2, 2, 2, 2], beam: [0, 1, 2, 3, 4, 5] },
        { ids: [1, 12, 12, 5, 7, 7], intra: [3, 2, 3, 3, 2, 4], beam: [1, 0, 0, 5, 3, 3] },
        { ids: [9, 2, 14, 0, 4, 8], intra: [4, 3, 2, 4, 3, 5], beam: [2, 2, 0, 3, 4, 5] },
      ];
      for (const [s, step] of steps.entries()) {
        rows = step.beam.map((b, r) => ({
          ids: [...(s === 0 ? [] : rows[b].ids), step.ids[r]],
          intra: [...(s === 0 ? [] : rows[b].intra), step.intra[r]],
        }));
        const logp = await decoder.step({
          perPrompt: K,
          ids: Int32Array.from(step.ids),
          inter: Int32Array.from(step.ids, (_, r) => prompts[Math.floor(r / K)].maskIndex),
          intra: Int32Array.from(step.intra),
          beamIndex: Int32Array.from(step.beam),
        });
        for (let r = 0; r < 2 * K; r++) {
          const want = await fullLogProbs(full, prompts[Math.floor(r / K)], rows[r], V);
          const err = worst(logp.subarray(r * V, (r + 1) * V), want[want.length - 1]);
          assert.ok(err < 1e-4, `step ${s} row ${r}: differs by ${err}`);
        }
      }
      // Scoring known continuations from part A.
      const T = 3;
      const ids = [3, 8, 1, 3, 4, 2, 3, 9, 9, 3, 2, 5];
      const intra = [1, 2, 3, 1, 2, 2, 1, 2, 3, 1, 2, 3];
      const targets = [8, 1, 4, 4, 2, 6, 9, 9, 10, 2, 5, 1];
      const scores = await decoder.scoreTargets({
        perPrompt: 2,
        length: T,
        ids: Int32Array.from(ids),
        inter: Int32Array.from(ids, (_, i) => prompts[Math.floor(i / (2 * T))].maskIndex),
        intra: Int32Array.from(intra),
        targets: Int32Array.from(targets),
      });
      for (let r = 0; r < 4; r++) {
        const want = await fullLogProbs(full, prompts[Math.floor(r / 2)], {
          ids: ids.slice(r * T, r * T + T),
          intra: intra.slice(r * T, r * T + T),
        }, V);
        for (let t = 0; t < T; t++) {
          const err = Math.abs(scores[r * T + t] - want[t][targets[r * T + t]]);
          assert.ok(err < 1e-4, `score row ${r} token ${t}: differs by ${err}`);
        }
      }
    } finally {
      await decoder.release();
      await full.release();
    }
  });
}
