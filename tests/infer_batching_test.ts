// Batches of prompts of different lengths (lib/generate/infer.ts, step_model.ts PART_A_QUANTUM):
// part A is padded to the batch's longest prompt, a multiple of 64, and a prompt's
// log-probabilities are the same bits at any such length, so the predictor fills its batches
// with prompts of any length and a record's line does not depend on its batch.
import assert from "node:assert/strict";
import { encodePromptPartA, tokenizeRecord } from "../lib/collate/mod.ts";
import type { EntityEntry, TextRecord } from "../lib/data/types.ts";
import { buildPool, CachedDecoder, Predictor, type PromptInput } from "../lib/generate/mod.ts";
import { paddedLength, PART_A_QUANTUM } from "../lib/generate/step_model.ts";
import { glmFamily, type ModelFamily, modelFamily } from "../lib/model/family.ts";
import { Rng } from "../lib/random.ts";
import { noisyDecoderWeights, TINY as TINY_DECODERS } from "./helpers/decoder.ts";
import {
  FunctionModel,
  randomPrompt,
  testItems,
  TINY,
  tinyWeights,
  tokenizer,
} from "./helpers/infer.ts";

/** The log-probabilities of the first prompt's 3 rows over 3 steps, after prefilling `prompts`. */
async function firstPromptSteps(decoder: CachedDecoder, prompts: PromptInput[]) {
  await decoder.prefill(prompts);
  const K = 3;
  const n = prompts.length * K;
  const V = decoder.vocabSize;
  const out: number[][] = [];
  for (let s = 0; s < 3; s++) {
    const logp = await decoder.step({
      perPrompt: K,
      ids: Int32Array.from({ length: n }, (_, r) => 5 + ((7 * r + s) % 23)),
      inter: Int32Array.from({ length: n }, (_, r) => prompts[Math.floor(r / K)].maskIndex),
      intra: new Int32Array(n).fill(s + 1),
      beamIndex: Int32Array.from({ length: n }, (_, r) => (r % K === 0 ? r + 1 : r)),
    });
    out.push(Array.from(logp.subarray(0, K * V)));
  }
  return out;
}

const families: [string, () => ModelFamily][] = [
  ["glm", () => glmFamily({ config: TINY, weights: tinyWeights(TINY, 3) })],
  ["qwen3", () => {
    const config = { ...TINY_DECODERS.qwen3, vocabSize: 300, maxPositionEmbeddings: 256 };
    return modelFamily({ config, weights: noisyDecoderWeights(config, 4, { intra: true }) });
  }],
];
for (const [name, family] of families) {
  Deno.test(`${name}: a prompt's log-probabilities are the same bits at any padded length of its batch`, async () => {
    const decoder = await CachedDecoder.create(family(), { device: "cpu", threads: 2 });
    try {
      const rng = new Rng(8);
      const V = Math.min(decoder.vocabSize, 300);
      const prompt = randomPrompt(rng, 37, V);
      const alone = await firstPromptSteps(decoder, [prompt]); // part A padded to 64
      for (const others of [[100], [250, 20], [130, 70, 180]]) {
        const batch = [prompt, ...others.map((l) => randomPrompt(rng, l, V))];
        const longest = Math.max(...batch.map((p) => p.ids.length));
        assert.ok(paddedLength(longest, PART_A_QUANTUM) > PART_A_QUANTUM);
        // deepEqual on numbers compares with Object.is: every bit of every log-probability.
        const rows = decoder.prefillRows;
        assert.deepEqual(await firstPromptSteps(decoder, batch), alone, `with ${others}`);
        // Each prompt was encoded at its own length: no padding row went through the model.
        const tokens = batch.reduce((a, p) => a + p.ids.length, 0);
        assert.equal(decoder.prefillRows - rows, tokens);
      }
    } finally {
      await decoder.release();
    }
  });
}

Deno.test("the predictor batches prompts of different lengths, and each line is what it is alone", async () => {
  const items = testItems();
  const entities: EntityEntry[] = items.map((entity, i) => ({ entity, kind: "item", id: `i${i}` }));
  const pool = buildPool(tokenizer, entities, { vocabSize: TINY.vocabSize });
  const record = (user: string, history: string[]): TextRecord => ({
    id: `u${user}/seq`,
    task: "sequential",
    template: "seq-1",
    split: "test",
    user,
    segments: [
      { text: `User ${user} bought ` },
      ...history.flatMap((
        entity,
        i,
      ) => [...(i > 0 ? [{ text: ", " }] : []), { entity, kind: "item" }]),
      { text: ". What next? " },
      { answer: true },
    ],
    history,
    candidates: items.slice(0, 12),
  });
  // Two short prompts and two long ones: one batch of 4 holds both padded lengths (64, 128).
  const records = [
    record("1", [items[0]]),
    record("2", items.slice(0, 9)),
    record("3", [items[5], items[2]]),
    record("4", items.slice(3, 14)),
  ];
  const padded = records.map((r) =>
    paddedLength(encodePromptPartA(tokenizeRecord(tokenizer, r), tokenizer.special).ids.length, 64)
  );
  assert.deepEqual(padded, [64, 128, 64, 128]);
  const decoder = await CachedDecoder.create({ config: TINY, weights: tinyWeights(TINY, 5) }, {
    device: "cpu",
    threads: 1,
  });
  try {
    const predict = async (batchSize: number, protocol: "full" | "sampled") => {
      const predictor = new Predictor({ model: decoder, tokenizer, pool }, {
        protocol,
        beams: 4,
        topK: 3,
        batchSize,
        maxLength: TINY.maxSequenceLength,
      });
      const batches: number[] = [];
      const lines = await predictor.predict(records, (n) => batches.push(n));
      return { lines: lines.map((l) => JSON.stringify(l)), batches };
    };
    // The item search over the pool, and scoring the candidates (the sampled protocol).
    for (const protocol of ["full", "sampled"] as const) {
      const together = await predict(4, protocol);
      assert.deepEqual(together.batches, [4], "one batch");
      const alone = await predict(1, protocol);
      assert.deepEqual(alone.batches, [1, 2, 3, 4]);
      assert.deepEqual(together.lines, alone.lines, protocol);
      assert.ok(together.lines.every((l) => JSON.parse(l).predictions.length === 3));
    }
  } finally {
    await decoder.release();
  }
});

Deno.test("a progress callback that throws stops every decoder, not only its own", async () => {
  const items = testItems();
  const entities: EntityEntry[] = items.map((entity, i) => ({ entity, kind: "item", id: `i${i}` }));
  const pool = buildPool(tokenizer, entities, { vocabSize: TINY.vocabSize });
  const records: TextRecord[] = Array.from({ length: 10 }, (_, u) => ({
    id: `u${u}/seq`,
    task: "sequential",
    template: "seq-1",
    split: "test",
    user: `${u}`,
    segments: [{ text: `User ${u} bought ` }, { entity: items[u], kind: "item" }, { answer: true }],
    history: [items[u]],
    candidates: items.slice(0, 12),
  }));
  class Counted extends FunctionModel {
    batches = 0;
    override prefill(prompts: readonly PromptInput[]) {
      this.batches++;
      return super.prefill(prompts);
    }
  }
  const models = [new Counted(TINY.vocabSize), new Counted(TINY.vocabSize)];
  const predictor = new Predictor({ model: models, tokenizer, pool }, {
    protocol: "sampled",
    batchSize: 1,
    maxLength: TINY.maxSequenceLength,
  });
  let calls = 0;
  await assert.rejects(
    () =>
      predictor.predict(records, () => {
        if (++calls === 1) throw new Error("progress: broken pipe");
      }),
    /broken pipe/,
  );
  // The other decoder finishes at most the batch it holds; before, it went on to the end.
  const batches = models[0].batches + models[1].batches;
  assert.ok(batches <= 2 && calls <= 2, `${batches} batches, ${calls} progress calls`);
});

Deno.test("a predictor refuses a batch size, top-k or beam count below 1 (a batch of 0 looped for ever), and the trie softmax with the sampled protocol", () => {
  const entities: EntityEntry[] = testItems().map((entity, i) => ({
    entity,
    kind: "item",
    id: `i${i}`,
  }));
  const pool = buildPool(tokenizer, entities, { vocabSize: TINY.vocabSize });
  const model = new FunctionModel(TINY.vocabSize);
  for (const bad of [{ batchSize: 0 }, { topK: 0 }, { beams: Number.NaN }, { textBeams: 1.5 }]) {
    assert.throws(
      () => new Predictor({ model, tokenizer, pool }, { maxLength: 64, ...bad }),
      /must be a whole number >= 1/,
      JSON.stringify(bad),
    );
  }
  // The sampled protocol scores under the vocabulary's softmax: a library caller asking for the
  // trie's was silently ignored (titles) or obeyed (item tokens), where the command refused it.
  assert.throws(
    () =>
      new Predictor({ model, tokenizer, pool }, {
        maxLength: 64,
        protocol: "sampled",
        trieSoftmax: true,
      }),
    /the sampled protocol scores its candidates under the vocabulary's softmax/,
  );
});

Deno.test("a text prompt the model's length cannot hold with --max-new-tokens keeps its head, its text shortened", async () => {
  const items = testItems();
  const entities: EntityEntry[] = items.map((entity, i) => ({ entity, kind: "item", id: `i${i}` }));
  const pool = buildPool(tokenizer, entities, { vocabSize: TINY.vocabSize });
  const record: TextRecord = {
    id: "u1/explanation/explanation-1/test",
    task: "explanation",
    template: "explanation-1",
    split: "test",
    user: "1",
    segments: [
      { text: "Explain why user 1 would buy " },
      { entity: items[0], kind: "item" },
      { text: " from this shop, in one sentence:" },
      { answer: true },
    ],
  };
  const prompt = tokenizeRecord(tokenizer, record);
  const head = prompt.ids[0];
  const promptTokens = prompt.unitStart[prompt.promptUnits];
  class Seen extends FunctionModel {
    first: number[] = [];
    override prefill(prompts: readonly PromptInput[]) {
      this.first.push(...prompts.map((p) => p.ids[0]));
      return super.prefill(prompts);
    }
  }
  // Room for 20 text tokens beside the whole prompt (its mask and [S]): the head is kept.
  for (const [room, kept] of [[20, true], [5, false]] as const) {
    const model = new Seen(TINY.vocabSize);
    const predictor = new Predictor({ model, tokenizer, pool }, {
      maxLength: promptTokens + 2 + room,
      maxNewTokens: 64,
    });
    const [line] = await predictor.predict([record]);
    assert.equal(typeof line.text, "string");
    // Below 16 tokens of room, the head is cut (the collator's rule) for all the room there is.
    assert.equal(model.first[0] === head, kept, `room ${room}`);
  }
});
