// Two-stage ranking (lib/generate/rerank.ts): a first stage's candidates reranked by the fusion
// (1 - w) * first + w * lm. Checked on a random tiny GLM with item rows (exact scores) and one
// without (titles' log-likelihoods), on the demo data.
import assert from "node:assert/strict";
import { join } from "node:path";
import { encodePromptPartA, firstTokenOfItems, tokenizeRecord } from "../lib/collate/mod.ts";
import { buildPool, type Pool } from "../lib/collate/pool.ts";
import { type Dataset, readRecords } from "../lib/data/dataset.ts";
import type { TextRecord } from "../lib/data/types.ts";
import { InputError } from "../lib/errors.ts";
import { itemLogProbs } from "../lib/generate/exact_rank.ts";
import { Predictor } from "../lib/generate/infer.ts";
import { loadForInference } from "../lib/generate/load.ts";
import {
  firstStageOf,
  type FirstStageRanking,
  fuseScores,
  readFirstStage,
} from "../lib/generate/rerank.ts";
import { entityAnswer, scoreAnswers } from "../lib/generate/score.ts";
import { initModel } from "../lib/model/init.ts";
import { Rng } from "../lib/random.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { withTempDir } from "./helpers/temp.ts";
import { demoSequentialDataset } from "./helpers/textualize.ts";
import { fileURLToPath } from "node:url";

const TOKENIZER = fileURLToPath(new URL("../fixtures/tokenizer/tokenizer.json", import.meta.url));

Deno.test("fuseScores: (1 - w) * first + w * lm; lengths and weights checked", () => {
  const fused = fuseScores(Float64Array.of(2, 1, -4), Float64Array.of(-3, -1, -0.5), 0.25);
  assert.deepEqual(Array.from(fused), [0.75, 0.5, -3.125]);
  assert.deepEqual(Array.from(fuseScores(Float64Array.of(2), Float64Array.of(-3), 0)), [2]);
  assert.deepEqual(Array.from(fuseScores(Float64Array.of(2), Float64Array.of(-3), 1)), [-3]);
  // At the ends only one side counts: an item the model cannot produce (-Infinity) keeps its
  // first-stage score at weight 0 rather than NaN, which would scramble the ranking.
  assert.deepEqual(
    Array.from(fuseScores(Float64Array.of(2, 1), Float64Array.of(-Infinity, -1), 0)),
    [2, 1],
  );
  assert.throws(() => fuseScores(Float64Array.of(1, 2), Float64Array.of(1), 0.5), RangeError);
  assert.throws(() => fuseScores(Float64Array.of(1), Float64Array.of(1), 1.5), RangeError);
});

async function testSequential(data: Dataset, n: number): Promise<TextRecord[]> {
  const out: TextRecord[] = [];
  for await (const r of readRecords(data, "test")) {
    if (r.task === "sequential") out.push(r);
    if (out.length >= n) break;
  }
  return out;
}

/** A first stage of 12 seeded candidates per record (history included), scores descending. */
async function writeFirstStage(file: string, pool: Pool, records: TextRecord[]) {
  const rng = new Rng(5);
  const lines = records.map((r) => {
    const picked = new Set<number>();
    for (const h of (r.history ?? []).slice(0, 2)) picked.add(pool.items.index.get(h)!);
    while (picked.size < 12) picked.add(rng.int(pool.items.items.length));
    const predictions = [...picked].map((i, k) => ({
      entity: pool.items.items[i],
      item_id: pool.items.ids[i],
      score: 3 - 0.5 * k,
    }));
    return JSON.stringify({ id: r.id, predictions });
  });
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
}

for (const itemTokens of ["title", "none"] as const) {
  Deno.test(`rerank (${itemTokens === "title" ? "item tokens: exact scores" : "titles: likelihoods"}): w = 0 keeps the first stage's order, w = 1 the model's, the history left out`, async () => {
    await withTempDir(async (dir) => {
      const data = await demoSequentialDataset(join(dir, "data"), itemTokens);
      const model = join(dir, "model");
      await initModel({
        data: join(dir, "data"),
        preset: "tiny",
        shape: { hiddenSize: 32, numLayers: 1, numHeads: 2 },
        tokenizer: TOKENIZER,
        out: model,
        seed: 3,
      });
      const loaded = await loadForInference({ model, data, device: "cpu", threads: 1 });
      const { tokenizer, decoder } = loaded;
      try {
        const pool = buildPool(tokenizer, data.entities, { vocabSize: loaded.vocabSize });
        const records = await testSequential(data, 4);
        assert.equal(records.length, 4);
        const file = join(dir, "first.jsonl");
        await writeFirstStage(file, pool, records);
        const stage = await readFirstStage(file, pool.items);
        const predict = async (weight: number) =>
          await new Predictor({ model: decoder, tokenizer, pool }, {
            maxLength: loaded.maxLength,
            topK: 12,
            excludeSeen: true,
            trieSoftmax: itemTokens === "title",
            rerank: { stage, file, weight },
          }).predict(records);
        const first = await predict(0);
        const lm = await predict(1);
        const half = await predict(0.5);

        // The model's own scores of each record's candidates, computed here independently.
        const prompts = records.map((r) =>
          encodePromptPartA(tokenizeRecord(tokenizer, r), tokenizer.special, {
            maxLength: loaded.maxLength,
            reserve: 1 + Math.max(...pool.items.tokens.map((t) => t.length)),
          })
        );
        const own: Map<string, number>[] = [];
        const firstTokens = firstTokenOfItems(pool.items.tokens);
        if (itemTokens === "title") {
          assert.ok(firstTokens);
          const all = await itemLogProbs(decoder, prompts, {
            firstTokens,
            sop: tokenizer.special.sop,
            trieSoftmax: true,
          });
          records.forEach((r, p) => {
            const scores = new Map<string, number>();
            for (const item of stage.get(r.id)!.items) {
              scores.set(pool.items.ids[item], all[p][item]);
            }
            own.push(scores);
          });
        } else {
          assert.equal(firstTokens, null);
          // Titles have no trie softmax to rerank by: asked for, it is refused, not ignored.
          assert.throws(
            () =>
              new Predictor({ model: decoder, tokenizer, pool }, {
                maxLength: loaded.maxLength,
                trieSoftmax: true,
                rerank: { stage, file, weight: 1 },
              }),
            /trieSoftmax with rerank needs a dataset with item tokens/,
          );
          const lists = records.map((r) => Array.from(stage.get(r.id)!.items));
          const scores = await scoreAnswers(
            decoder,
            prompts,
            lists.map((l) => l.map((i) => entityAnswer(tokenizer, pool.items.items[i]))),
            tokenizer.special,
          );
          lists.forEach((l, p) =>
            own.push(new Map(l.map((i, c) => [pool.items.ids[i], scores[p][c]])))
          );
        }

        records.forEach((r, p) => {
          const ranking: FirstStageRanking = stage.get(r.id)!;
          const seen = new Set(r.history ?? []);
          const expected = Array.from(ranking.items)
            .filter((i) => !seen.has(pool.items.items[i]))
            .map((i) => pool.items.ids[i]);
          assert.ok(expected.length < ranking.items.length, "some history was proposed");
          // w = 0: the first stage's order, its history dropped.
          assert.deepEqual(first[p].predictions!.map((e) => e.item_id), expected);
          // w = 1: the model's order of the same candidates, its scores as computed above.
          const byModel = [...expected].sort((a, b) => own[p].get(b)! - own[p].get(a)!);
          assert.deepEqual(lm[p].predictions!.map((e) => e.item_id), byModel);
          for (const e of lm[p].predictions!) {
            assert.ok(Math.abs(e.lm_score! - own[p].get(e.item_id!)!) < 1e-5);
            assert.equal(e.score, e.lm_score);
          }
          // w = 0.5: the mean of the two scores, ranked.
          for (const e of half[p].predictions!) {
            assert.ok(Math.abs(e.score! - 0.5 * (e.lm_score! + e.first_score!)) < 1e-5);
          }
          const fusedScores = half[p].predictions!.map((e) => e.score!);
          assert.deepEqual(fusedScores, [...fusedScores].sort((a, b) => b - a));
        });
        // The two orders differ somewhere (the model is not the first stage).
        assert.notDeepEqual(
          first.map((l) => l.predictions!.map((e) => e.item_id)),
          lm.map((l) => l.predictions!.map((e) => e.item_id)),
        );

        // A record the first stage does not cover is an error that names the file.
        const partial = new Map([...stage].slice(1));
        await assert.rejects(
          () =>
            new Predictor({ model: decoder, tokenizer, pool }, {
              maxLength: loaded.maxLength,
              rerank: { stage: partial, file, weight: 0.5 },
            }).predict(records),
          (e: Error) =>
            e instanceof InputError && e.message.includes(file) &&
            e.message.includes(records[0].id),
        );
      } finally {
        await decoder.release();
      }
    });
  });
}

Deno.test("readFirstStage: unknown items, missing scores and repeated records are errors with file and line", async () => {
  await withTempDir(async (dir) => {
    const data = await demoSequentialDataset(join(dir, "data"), "none");
    const tokenizer = await TextTokenizer.load(TOKENIZER);
    const pool = buildPool(tokenizer, data.entities, { vocabSize: tokenizer.vocabSize });
    const [a, b] = [0, 1].map((i) => ({
      entity: pool.items.items[i],
      item_id: pool.items.ids[i],
      score: 1 - i,
    }));
    const file = join(dir, "first.jsonl");
    const write = (lines: unknown[]) =>
      Deno.writeTextFile(file, lines.map((l) => JSON.stringify(l)).join("\n") + "\n");

    await write([{ id: "r1", predictions: [a, b] }, { id: "r2", predictions: [b] }]);
    const stage = await readFirstStage(file, pool.items, { top: 1 });
    assert.deepEqual(Array.from(stage.get("r1")!.items), [0]);
    assert.deepEqual(Array.from(stage.get("r2")!.scores), [0]);
    const kept = await readFirstStage(file, pool.items, { keep: (id) => id === "r2" });
    assert.deepEqual([...kept.keys()], ["r2"]);

    const cases: [unknown[], string][] = [
      [
        [{ id: "r1", predictions: [a] }, { id: "r2", predictions: [{ ...b, item_id: "nope" }] }],
        `${file} line 2: predictions[0]: item id "nope" is not an item`,
      ],
      [
        [{ id: "r1", predictions: [{ entity: a.entity, item_id: a.item_id }] }],
        `${file} line 1: predictions[0] has no finite "score"`,
      ],
      [
        [{ id: "r1", predictions: [a] }, { id: "r1", predictions: [b] }],
        `${file} line 2: record "r1" is given twice`,
      ],
      [
        [{ id: "r1", predictions: [a, b, { ...a, score: -3 }] }],
        `${file} line 1: predictions[2]: ${a.item_id} is listed twice (first at predictions[0])`,
      ],
      // A record with no candidates would be answered with nothing.
      [
        [{ id: "r1", predictions: [a] }, { id: "r2", predictions: [] }],
        `${file} line 2: record "r2": no candidates`,
      ],
      [[{ id: "r1" }], `${file} line 1: record "r1": no candidates`],
    ];
    for (const [lines, message] of cases) {
      await write(lines);
      await assert.rejects(
        () => readFirstStage(file, pool.items),
        (e: Error) => e instanceof InputError && e.message.startsWith(message),
      );
    }
  });
});

Deno.test("a record the first stage lacks is named, with the split the stage's records are of", () => {
  const ranking = { items: Int32Array.of(0), scores: Float64Array.of(1) };
  const stage = new Map([["u1/sequential/seq-1/valid", ranking]]);
  assert.equal(firstStageOf(stage, "u1/sequential/seq-1/valid", "f.jsonl"), ranking);
  assert.throws(
    () => firstStageOf(stage, "u2/sequential/seq-1/valid", "f.jsonl"),
    /^InputError: f\.jsonl: no candidates for record "u2\/sequential\/seq-1\/valid" \(rerank needs every record\)$/,
  );
  assert.throws(
    () => firstStageOf(stage, "u1/sequential/seq-1/test", "f.jsonl"),
    /no candidates for record "u1\/sequential\/seq-1\/test" \(rerank needs every record; its records are of the valid split\)$/,
  );
});
