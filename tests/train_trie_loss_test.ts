/**
 * The trie softmax as a training loss: the logit bias a batch gets (which positions, which
 * tokens), the loss the graphs compute with it against a plain computation from the reference
 * forward pass, its gradients against finite differences, and `pretrain --trie-softmax` end to
 * end.
 */

import assert from "node:assert/strict";
import { EntityTrie, TRIE_LOSS_MASKED, trieLossBias } from "../lib/collate/mod.ts";
import type { Batch } from "../lib/collate/types.ts";
import { buildDecoderForwardGraph } from "../lib/model/families/decoder.ts";
import { buildForwardGraph, LOSS_LOGIT_BIAS } from "../lib/model/glm.ts";
import type { TensorData } from "../lib/onnx/graph.ts";
import { Rng } from "../lib/random.ts";
import { Session } from "../lib/runtime/session.ts";
import { buildGradGraph, trainNames } from "../lib/train/train_graph.ts";
import { runCli } from "./helpers/cli.ts";
import { decoderBatch, decoderFeeds, noisyDecoderWeights, TINY } from "./helpers/decoder.ts";
import { compareWithFiniteDifferences } from "./helpers/grad_check.ts";
import { forwardFeeds, noisyWeights, randomBatch, SMALL } from "./helpers/model.ts";
import { referenceForward } from "./reference/glm_reference.ts";
import { withTempDir } from "./helpers/temp.ts";
import { demoDataset, smallConfig, writeSmallModel } from "./helpers/train.ts";

const SOP = 1, EOP = 2, V = 40;

/** One row of a hand-made batch: part A of `sep` tokens, then part B inputs with their labels. */
function handBatch(rows: { sep: number; partB: [number, number][] }[], length: number): Batch {
  const B = rows.length;
  const batch: Batch = {
    batchSize: B,
    length,
    inputIds: new Int32Array(B * length),
    positionIds: new Int32Array(B * 2 * length),
    sep: Int32Array.from(rows, (r) => r.sep),
    labels: new Int32Array(B * length).fill(-100),
    lossMask: new Float32Array(B * length),
  };
  rows.forEach((r, b) => {
    for (let t = 0; t < r.sep; t++) batch.inputIds[b * length + t] = 30 + t;
    r.partB.forEach(([input, label], j) => {
      const at = b * length + r.sep + j;
      batch.inputIds[at] = input;
      batch.labels[at] = label;
      batch.lossMask[at] = 1;
    });
  });
  return batch;
}

/** The allowed tokens of bias row `row` (those at 0), or "all" for a row left at 0. */
function allowedOf(bias: Float32Array, row: number): number[] | "all" {
  const slice = bias.subarray(row * V, (row + 1) * V);
  if (slice.every((x) => x === 0)) return "all";
  assert.ok(slice.every((x) => x === 0 || x === TRIE_LOSS_MASKED));
  return [...slice.keys()].filter((v) => slice[v] === 0);
}

Deno.test("trieLossBias restricts exactly the spans that spell an item, to the trie's next tokens", () => {
  // Items: 10 11 12, 10 13, 20, and 10 11 (a title that another extends).
  const trie = EntityTrie.build([[10, 11, 12], [10, 13], [20], [10, 11]]);
  const batch = handBatch([
    // Two item spans: 10 11 12, then 20.
    { sep: 3, partB: [[SOP, 10], [10, 11], [11, 12], [12, EOP], [SOP, 20], [20, EOP]] },
    // Text (30 31 is no item), a prefix that is no item (10 alone), then the item 10 11.
    {
      sep: 2,
      partB: [[SOP, 30], [30, 31], [31, EOP], [SOP, 10], [10, EOP], [SOP, 10], [10, 11], [11, EOP]],
    },
  ], 12); // row 0 is padded from position 9
  const { bias, rows, restricted } = trieLossBias(batch, trie, { sop: SOP, eop: EOP, vocab: V });
  assert.equal(rows, 14);
  assert.equal(bias.length, 14 * V);
  const expected: (number[] | "all")[] = [
    [10, 20], // root
    [11, 13], // after 10
    [EOP, 12], // after 10 11: the item 10 11 ends here, and 12 continues
    [EOP], // after 10 11 12
    [10, 20],
    [EOP],
    "all", // text
    "all",
    "all",
    "all", // 10 then [E]: no item
    "all",
    [10, 20], // the item 10 11
    [11, 13],
    [EOP, 12],
  ];
  assert.deepEqual(expected.map((_, r) => allowedOf(bias, r)), expected);
  assert.equal(restricted, 9);
});

/** Restricted cross-entropy, in plain float64 from logits [B, L, vocab]. */
function referenceLoss(
  batch: Batch,
  logits: ArrayLike<number>,
  bias: Float32Array,
  vocab = SMALL.vocabSize,
): number {
  let total = 0, count = 0, row = 0;
  for (let i = 0; i < batch.batchSize * batch.length; i++) {
    if (batch.lossMask[i] === 0 || batch.labels[i] < 0) continue;
    const allowed: number[] = [];
    for (let v = 0; v < vocab; v++) if (bias[row * vocab + v] === 0) allowed.push(v);
    const z = Array.from(allowed, (v) => logits[i * vocab + v]);
    const max = Math.max(...z);
    const lse = max + Math.log(z.reduce((s, x) => s + Math.exp(x - max), 0));
    total += lse - logits[i * vocab + batch.labels[i]];
    count++;
    row++;
  }
  return total / count;
}

/** A random bias for every loss position: each row allows its label and a random third. */
function randomBias(batch: Batch, seed: number, vocab = SMALL.vocabSize): Float32Array {
  const rng = new Rng(seed);
  const rows: number[] = [];
  for (let i = 0; i < batch.labels.length; i++) {
    if (batch.lossMask[i] !== 0 && batch.labels[i] >= 0) rows.push(batch.labels[i]);
  }
  const bias = new Float32Array(rows.length * vocab).fill(TRIE_LOSS_MASKED);
  rows.forEach((label, r) => {
    if (r === 1) bias.fill(0, r * vocab, (r + 1) * vocab); // a text row
    for (let v = 0; v < vocab; v++) {
      if (v === label || rng.float() < 1 / 3) bias[r * vocab + v] = 0;
    }
  });
  return bias;
}

Deno.test("with loss_logit_bias the graphs' loss is the cross-entropy over the allowed tokens", async () => {
  const weights = noisyWeights(SMALL, 4);
  const batch = randomBatch(SMALL, [4, 2, 6], 9, 3, [0, 2, 0]);
  const bias = randomBias(batch, 8);
  const rows = bias.length / SMALL.vocabSize;
  const ref = referenceForward(SMALL, weights, batch);
  const expected = referenceLoss(batch, ref.logits, bias);
  assert.ok(expected < ref.loss - 0.1, `${expected} is not below the vocabulary's ${ref.loss}`);
  for (const outputs of ["loss", "both"] as const) {
    const { graph } = buildForwardGraph({ config: SMALL, weights, outputs, lossLogitBias: true });
    const session = await Session.create(graph, { device: "cpu", threads: 1 });
    try {
      const out = await session.run({
        ...forwardFeeds(batch),
        [LOSS_LOGIT_BIAS]: { dtype: "float32", shape: [rows, SMALL.vocabSize], data: bias },
      });
      const loss = (out.loss.data as Float32Array)[0];
      assert.ok(Math.abs(loss - expected) < 1e-4, `${outputs}: ${loss} against ${expected}`);
    } finally {
      await session.release();
    }
  }
});

Deno.test("a decoder family's loss with loss_logit_bias is the cross-entropy over the allowed tokens", async () => {
  const config = TINY.llama;
  const added = 2;
  const vocab = config.vocabSize + added;
  const weights = noisyDecoderWeights(config, 6, { intra: true, addedRows: added });
  const batch = decoderBatch(vocab, [4, 2], 8, 5, [0, 1]);
  const bias = randomBias(batch, 3, vocab);
  const run = async (outputs: "logits" | "loss") => {
    const { graph } = buildDecoderForwardGraph({
      config,
      weights,
      outputs,
      addedRows: added,
      lossLogitBias: outputs === "loss",
    });
    const session = await Session.create(graph, { device: "cpu", threads: 1 });
    try {
      const extra: Record<string, TensorData> = {};
      if (outputs === "loss") {
        extra[LOSS_LOGIT_BIAS] = {
          dtype: "float32",
          shape: [bias.length / vocab, vocab],
          data: bias,
        };
      }
      return await session.run({ ...decoderFeeds(batch, outputs === "loss"), ...extra });
    } finally {
      await session.release();
    }
  };
  const logits = (await run("logits")).logits.data as Float32Array;
  const expected = referenceLoss(batch, logits, bias, vocab);
  const loss = ((await run("loss")).loss.data as Float32Array)[0];
  assert.ok(Math.abs(loss - expected) < 1e-4, `${loss} against ${expected}`);
});

Deno.test("full training under the trie softmax: gradients match finite differences (float64)", async () => {
  const weights = noisyWeights(SMALL, 3);
  const setup = { config: SMALL, weights, lora: null, dtype: "float64" as const, trieLoss: true };
  const { graph, params } = buildGradGraph(setup);
  const batch = randomBatch(SMALL, [5, 3], 9, 11, [0, 2]);
  const bias = randomBias(batch, 2);
  const feeds: Record<string, TensorData> = {
    ...forwardFeeds(batch) as Record<string, TensorData>,
    [LOSS_LOGIT_BIAS]: {
      dtype: "float32",
      shape: [bias.length / SMALL.vocabSize, SMALL.vocabSize],
      data: bias,
    },
    loss_scale: { dtype: "float64", shape: [1], data: Float64Array.of(1) },
  };
  for (const p of params) {
    feeds[p.name] = {
      dtype: "float64",
      shape: p.shape,
      data: Float64Array.from(weights.get(p.name)!),
    };
  }
  const session = await Session.create(graph, { device: "cpu", threads: 1 });
  try {
    const pairs = params.map((p) => ({ input: p.name, grad: trainNames.grad(p.name) }));
    const result = await compareWithFiniteDifferences(session, feeds, "loss", pairs, {
      maxElements: 4,
    });
    console.log(`  worst relative error ${result.worst.toExponential(2)} over ${result.checked}`);
    assert.ok(result.largest > 1e-3);
    assert.ok(result.worst < 1e-5, JSON.stringify(result.perTensor));
  } finally {
    await session.release();
  }
});

Deno.test("pretrain --trie-softmax trains on the item trie's softmax and keeps it on resume", () =>
  withTempDir(async (dir) => {
    const data = await demoDataset();
    const model = `${dir}/model`;
    await writeSmallModel(model, await smallConfig());
    const train = (out: string, ...extra: string[]) =>
      runCli([
        "pretrain",
        ...["--data", data, "--model", model, "--out", out, "--full", "--steps", "6"],
        ...["--batch-size", "4", "--objective", "sequence", "--val-batches", "0", "--quiet"],
        ...extra,
      ]);
    const plain = await train(`${dir}/plain`);
    assert.equal(plain.code, 0, plain.stderr);
    const trie = await train(`${dir}/trie`, "--trie-softmax");
    assert.equal(trie.code, 0, trie.stderr);
    const losses = async (run: string): Promise<number[]> =>
      (await Deno.readTextFile(`${run}/metrics.jsonl`)).trim().split("\n").map((l) =>
        JSON.parse(l).loss
      );
    // The same batches; only the softmax differs. A batch without item targets (a review, a
    // rating) has the same loss both ways; one with items has a far lower loss over the small
    // sets of allowed tokens (none at all where the trie forces the token).
    const [plainLosses, trieLosses] = [await losses(`${dir}/plain`), await losses(`${dir}/trie`)];
    assert.equal(trieLosses.length, 6);
    assert.ok(
      trieLosses.every((l, i) => l <= plainLosses[i] + 1e-3),
      `${trieLosses} ${plainLosses}`,
    );
    assert.ok(trieLosses.some((l, i) => l < plainLosses[i] - 1), `${trieLosses} ${plainLosses}`);
    // A resume must keep the setting.
    const resumed = await train(`${dir}/trie`, "--resume");
    assert.notEqual(resumed.code, 0);
    assert.match(resumed.stderr, /trieSoftmax/);
  }));
