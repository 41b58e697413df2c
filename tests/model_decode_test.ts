import assert from "node:assert/strict";
import {
  buildForwardGraph,
  buildPrefillGraph,
  buildStepGraph,
  cacheNames,
  type StepOutputs,
} from "../lib/model/glm.ts";
import type { TensorData } from "../lib/onnx/graph.ts";
import { Session } from "../lib/runtime/session.ts";
import { maxDiff, noisyWeights, SMALL } from "./helpers/model.ts";

const weights = noisyWeights(SMALL, 2);
const V = SMALL.vocabSize;
const nh = SMALL.numHeads;
const hd = SMALL.hiddenSize / SMALL.numHeads;

/** A prompt: part A tokens and their (inter, intra) positions. */
interface Prompt {
  ids: number[];
  inter: number[];
  intra: number[];
}

/** A sequence being decoded: its prompt and the tokens fed after part A, with positions. */
interface Row {
  prompt: number;
  ids: number[];
  inter: number[];
  intra: number[];
}

const prompts: Prompt[] = [
  { ids: [5, 9, 2, 30], inter: [0, 1, 2, 3], intra: [0, 1, 2, 0] },
  { ids: [7, 1, 1, 22, 13, 3], inter: [0, 1, 2, 3, 4, 5], intra: [0, 0, 1, 2, 0, 0] },
];

function i32(shape: number[], values: number[]): TensorData {
  return { dtype: "int32", shape, data: Int32Array.from(values) };
}

/** Log-softmax of the full forward over part A + the row's tokens, at the row's positions. */
async function fullLogProbs(session: Session, row: Row): Promise<Float64Array[]> {
  const p = prompts[row.prompt];
  const ids = [...p.ids, ...row.ids];
  const L = ids.length;
  const out = await session.run({
    input_ids: i32([1, L], ids),
    position_ids: i32([1, 2, L], [...p.inter, ...row.inter, ...p.intra, ...row.intra]),
    sep: i32([1], [p.ids.length]),
  });
  const logits = out.logits.data as Float32Array;
  return row.ids.map((_, t) => {
    const at = (p.ids.length + t) * V;
    const r = Array.from(logits.subarray(at, at + V));
    const max = Math.max(...r);
    const lse = max + Math.log(r.reduce((a, v) => a + Math.exp(v - max), 0));
    return Float64Array.from(r, (v) => v - lse);
  });
}

class Decoder {
  sessions = new Map<string, Session>();
  partA: Record<string, TensorData> = {};
  /** Keys (even) and values (odd) of every generated token, by layer: rows of nh * hd floats. */
  history: number[][] = [];
  /** The history rows of each sequence of the last step, in order. */
  pastRows: number[][] = [];
  sep: TensorData = i32([0], []);

  async open(): Promise<void> {
    for (const outputs of ["last", "all", "targets"] as StepOutputs[]) {
      const { graph } = buildStepGraph({ config: SMALL, weights, outputs });
      this.sessions.set(outputs, await Session.create(graph, { device: "cpu", threads: 1 }));
    }
    const { graph } = buildPrefillGraph({ config: SMALL, weights });
    this.sessions.set("prefill", await Session.create(graph, { device: "cpu", threads: 1 }));
  }

  async prefill(): Promise<void> {
    const La = Math.max(...prompts.map((p) => p.ids.length));
    const Bp = prompts.length;
    const pad = (xs: number[]) => [...xs, ...new Array(La - xs.length).fill(0)];
    this.sep = i32([Bp], prompts.map((p) => p.ids.length));
    this.partA = await this.sessions.get("prefill")!.run({
      input_ids: i32([Bp, La], prompts.flatMap((p) => pad(p.ids))),
      position_ids: i32([Bp, 2, La], prompts.flatMap((p) => [...pad(p.inter), ...pad(p.intra)])),
      sep: this.sep,
    });
    assert.deepEqual(this.partA[cacheNames.partAKey(0)].shape, [Bp, nh, La, hd]);
    this.history = Array.from({ length: 2 * SMALL.numLayers }, () => []);
    this.pastRows = prompts.map(() => []);
  }

  /** Feeds `tokens[n]` (with positions) to row n, continuing past row `beam[n]`. */
  async step(
    outputs: StepOutputs,
    beam: number[],
    tokens: { ids: number[]; inter: number[]; intra: number[] }[],
    targets?: number[][],
  ): Promise<Record<string, TensorData>> {
    const N = tokens.length;
    const T = tokens[0].ids.length;
    const past = beam.map((b) => this.pastRows[b]);
    const P = past[0].length;
    const R = this.history[0].length / (nh * hd);
    const feeds: Record<string, TensorData> = {
      input_ids: i32([N, T], tokens.flatMap((t) => t.ids)),
      position_ids: i32([N, 2, T], tokens.flatMap((t) => [...t.inter, ...t.intra])),
      sep: this.sep,
      // K = N / Bp rows per prompt, none packed: slot s is row s.
      slot_row: i32([N], tokens.map((_, n) => n)),
      row_slot: i32([N], tokens.map((_, n) => n)),
      past_index: i32([N, P], past.flat()),
      ...this.partA,
    };
    for (let i = 0; i < SMALL.numLayers; i++) {
      const [k, v] = [this.history[2 * i], this.history[2 * i + 1]];
      feeds[cacheNames.pastKey(i)] = {
        dtype: "float32",
        shape: [R, nh, hd],
        data: Float32Array.from(k),
      };
      feeds[cacheNames.pastValue(i)] = {
        dtype: "float32",
        shape: [R, nh, hd],
        data: Float32Array.from(v),
      };
    }
    if (targets) feeds.targets = i32([N, T], targets.flat());
    const out = await this.sessions.get(outputs)!.run(feeds);
    for (let i = 0; i < SMALL.numLayers; i++) {
      assert.deepEqual(out[cacheNames.newKey(i)].shape, [N * T, nh, hd]);
      this.history[2 * i].push(...(out[cacheNames.newKey(i)].data as Float32Array));
      this.history[2 * i + 1].push(...(out[cacheNames.newValue(i)].data as Float32Array));
    }
    // Row n's new tokens are history rows R + n * T + t.
    this.pastRows = past.map((rows, n) => [...rows, ...tokens[n].ids.map((_, t) => R + n * T + t)]);
    return out;
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) await s.release();
  }
}

async function fullForwardSession(): Promise<Session> {
  const { graph } = buildForwardGraph({ config: SMALL, weights, outputs: "logits" });
  return await Session.create(graph, { device: "cpu", threads: 1 });
}

Deno.test("cached decoding equals the full forward token by token (padded prompts)", async () => {
  const full = await fullForwardSession();
  const dec = new Decoder();
  await dec.open();
  try {
    await dec.prefill();
    // One sequence per prompt; part B = [S] t1 t2 t3 t4 at the mask's inter-position.
    const rows: Row[] = [
      { prompt: 0, ids: [], inter: [], intra: [] },
      { prompt: 1, ids: [], inter: [], intra: [] },
    ];
    const streams = [[31, 4, 8, 15, 16], [31, 23, 36, 2, 11]];
    const maskAt = [3, 4];
    let worst = 0;
    for (let t = 0; t < 5; t++) {
      const tokens = rows.map((_, n) => ({
        ids: [streams[n][t]],
        inter: [maskAt[n]],
        intra: [t + 1],
      }));
      const out = await dec.step("last", [0, 1], tokens);
      assert.deepEqual(out.log_probs.shape, [2, V]);
      for (let n = 0; n < 2; n++) {
        rows[n].ids.push(tokens[n].ids[0]);
        rows[n].inter.push(tokens[n].inter[0]);
        rows[n].intra.push(tokens[n].intra[0]);
        const expected = (await fullLogProbs(full, rows[n]))[t];
        const got = (out.log_probs.data as Float32Array).subarray(n * V, (n + 1) * V);
        worst = Math.max(worst, maxDiff(got, expected));
      }
    }
    console.log(`worst log-prob difference ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-4, `cached decoding differs by ${worst}`);
  } finally {
    await dec.close();
    await full.release();
  }
});

Deno.test("beams share part A, steps take several tokens, and past_index reorders the cache", async () => {
  const full = await fullForwardSession();
  const dec = new Decoder();
  await dec.open();
  try {
    await dec.prefill();
    // Step 1: one sequence per prompt gets [S].
    let rows: Row[] = [
      { prompt: 0, ids: [31], inter: [3], intra: [1] },
      { prompt: 1, ids: [31], inter: [4], intra: [1] },
    ];
    await dec.step(
      "last",
      [0, 1],
      rows.map((r) => ({ ids: r.ids, inter: r.inter, intra: r.intra })),
    );
    // Step 2: three beams per prompt, two new tokens each.
    const beam2 = [0, 0, 0, 1, 1, 1];
    const new2 = beam2.map((b, n) => ({
      ids: [(n * 5 + 1) % V, (n * 7 + 2) % V],
      inter: [rows[b].inter[0], rows[b].inter[0]],
      intra: [2, 3],
    }));
    const out2 = await dec.step("all", beam2, new2);
    rows = beam2.map((b, n) => ({
      prompt: rows[b].prompt,
      ids: [...rows[b].ids, ...new2[n].ids],
      inter: [...rows[b].inter, ...new2[n].inter],
      intra: [...rows[b].intra, ...new2[n].intra],
    }));
    assert.deepEqual(out2.log_probs.shape, [6, 2, V]);
    let worst = 0;
    for (let n = 0; n < 6; n++) {
      const expected = await fullLogProbs(full, rows[n]);
      for (let t = 0; t < 2; t++) {
        const at = (n * 2 + t) * V;
        worst = Math.max(
          worst,
          maxDiff((out2.log_probs.data as Float32Array).subarray(at, at + V), expected[1 + t]),
        );
      }
    }
    // Step 3: beams reordered (some duplicated, some dropped), scored against given targets.
    const beam3 = [2, 0, 1, 5, 5, 3];
    const new3 = beam3.map((b, n) => ({
      ids: [(n * 3 + 4) % V],
      inter: [rows[b].inter[0]],
      intra: [4],
    }));
    const targets = beam3.map((_, n) => [(n * 11) % V]);
    const out3 = await dec.step("targets", beam3, new3, targets);
    assert.deepEqual(out3.target_log_probs.shape, [6, 1]);
    assert.deepEqual(out3[cacheNames.newKey(0)].shape, [6, nh, hd]);
    rows = beam3.map((b, n) => ({
      prompt: rows[b].prompt,
      ids: [...rows[b].ids, ...new3[n].ids],
      inter: [...rows[b].inter, ...new3[n].inter],
      intra: [...rows[b].intra, ...new3[n].intra],
    }));
    for (let n = 0; n < 6; n++) {
      const expected = (await fullLogProbs(full, rows[n]))[3];
      const got = (out3.target_log_probs.data as Float32Array)[n];
      worst = Math.max(worst, Math.abs(got - expected[targets[n][0]]));
    }
    console.log(`worst log-prob difference ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-4, `beam decoding differs by ${worst}`);
  } finally {
    await dec.close();
    await full.release();
  }
});
