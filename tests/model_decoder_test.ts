import assert from "node:assert/strict";
import type { DecoderConfig, DecoderFamily } from "../lib/model/families/config.ts";
import {
  type AttentionMode,
  buildDecoderForwardGraph,
  type DecoderOutputs,
} from "../lib/model/families/decoder.ts";
import { ropePositionIds } from "../lib/model/families/positions.ts";
import type { Weights } from "../lib/model/weights.ts";
import { Session } from "../lib/runtime/session.ts";
import {
  decoderBatch,
  decoderFeeds,
  noisyDecoderWeights,
  relativeError,
  TINY,
} from "./helpers/decoder.ts";
import { decoderReference } from "./reference/decoder_reference.ts";

async function run(
  config: DecoderConfig,
  weights: Weights,
  batch: ReturnType<typeof decoderBatch>,
  outputs: DecoderOutputs,
  attention: AttentionMode,
  addedRows = 0,
) {
  const { graph } = buildDecoderForwardGraph({ config, weights, outputs, attention, addedRows });
  const session = await Session.create(graph, { device: "cpu", threads: 1 });
  try {
    return await session.run(decoderFeeds(batch, outputs !== "logits"));
  } finally {
    await session.release();
  }
}

for (const family of Object.keys(TINY) as DecoderFamily[]) {
  Deno.test(`${family}: logits and loss equal the loop reference to 1e-4 (prefix and causal)`, async () => {
    const config = TINY[family];
    const weights = noisyDecoderWeights(config, 3, { intra: true });
    const batch = decoderBatch(config.vocabSize, [4, 3, 5], 9, 11, [0, 2, 0]);
    for (const attention of ["prefix", "causal"] as const) {
      const ref = decoderReference(config, (n) => weights.get(n), batch, { attention });
      const out = await run(config, weights, batch, "both", attention);
      assert.deepEqual(out.logits.shape, [3, 9, config.vocabSize]);
      const logitErr = relativeError(out.logits.data as Float32Array, ref.logits);
      const loss = (out.loss.data as Float32Array)[0];
      const lossErr = Math.abs(loss - ref.loss) / ref.loss;
      assert.ok(logitErr < 1e-4, `${family} ${attention}: logits differ by ${logitErr}`);
      assert.ok(lossErr < 1e-4, `${family} ${attention}: loss differs by ${lossErr}`);
      assert.ok(ref.loss > 0.5, "the loss is not trivially small");
      const only = await run(config, weights, batch, "loss", attention);
      assert.ok(Math.abs((only.loss.data as Float32Array)[0] - ref.loss) / ref.loss < 1e-4);
    }
  });
}

Deno.test("attention modes: under causal no token sees a later one; under prefix part A does", async () => {
  const config = TINY.qwen3;
  const weights = noisyDecoderWeights(config, 5);
  const batch = decoderBatch(config.vocabSize, [5], 8, 2);
  const changed = { ...batch, inputIds: Int32Array.from(batch.inputIds) };
  changed.inputIds[4] = (changed.inputIds[4] + 1) % config.vocabSize; // last part A token
  const V = config.vocabSize;
  const first4 = (out: Record<string, { data: unknown }>) =>
    (out.logits.data as Float32Array).subarray(0, 4 * V);
  const causal = [
    first4(await run(config, weights, batch, "logits", "causal")),
    first4(await run(config, weights, changed, "logits", "causal")),
  ];
  const prefix = [
    first4(await run(config, weights, batch, "logits", "prefix")),
    first4(await run(config, weights, changed, "logits", "prefix")),
  ];
  assert.equal(relativeError(causal[0], causal[1]), 0);
  assert.ok(relativeError(prefix[0], prefix[1]) > 1e-3);
});

Deno.test("special-token rows past the checkpoint's vocabulary: embedding and head, tied or not", async () => {
  for (const family of ["llama", "qwen2"] as const) {
    const config = TINY[family];
    const weights = noisyDecoderWeights(config, 8, { intra: true, addedRows: 3 });
    const batch = decoderBatch(config.vocabSize + 3, [4, 4], 7, 5);
    const ref = decoderReference(config, (n) => weights.get(n), batch, {
      attention: "causal",
      addedRows: 3,
    });
    const out = await run(config, weights, batch, "both", "causal", 3);
    assert.deepEqual(out.logits.shape, [2, 7, config.vocabSize + 3]);
    assert.ok(relativeError(out.logits.data as Float32Array, ref.logits) < 1e-4, family);
    assert.ok(Math.abs((out.loss.data as Float32Array)[0] - ref.loss) / ref.loss < 1e-4);
  }
});

Deno.test("identity before training: zero intra table, causal, rope 0..L-1 is the plain causal LM", async () => {
  for (const family of ["qwen3", "glm"] as const) {
    const config = TINY[family];
    const weights = noisyDecoderWeights(config, 4); // no intra table: the graph's is zero
    const adapted = decoderBatch(config.vocabSize, [3, 6], 8, 9);
    // Rotary positions 0..L-1, whatever the inter/intra ids say.
    adapted.ropePositionIds = Int32Array.from({ length: 16 }, (_, i) => i % 8);
    const out = await run(config, weights, adapted, "both", "causal");
    // The plain causal LM: same tokens, no position ids at all, positions 0..L-1.
    const plain = { ...adapted, positionIds: new Int32Array(adapted.positionIds.length) };
    const ref = decoderReference(config, (n) => weights.get(n), plain, { attention: "causal" });
    assert.ok(relativeError(out.logits.data as Float32Array, ref.logits) < 1e-4, family);
    assert.ok(Math.abs((out.loss.data as Float32Array)[0] - ref.loss) / ref.loss < 1e-4);
  }
});

Deno.test("rope positions: part A its inter-position, part B the mask index plus the offset", () => {
  // docs/method.md section 6's worked example.
  const positionIds = Int32Array.from([
    ...[0, 1, 2, 3, 4, 0, 0, 0, 0, 3, 3, 0],
    ...[0, 1, 2, 0, 0, 1, 2, 3, 4, 1, 2, 0],
  ]);
  const rope = ropePositionIds({ batchSize: 1, length: 12, positionIds, sep: [5] });
  assert.deepEqual([...rope], [0, 1, 2, 3, 4, 1, 2, 3, 4, 4, 5, 0]);
});
