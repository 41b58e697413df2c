// Item tokens (docs/method.md section 13, textualize --item-tokens) and exact ranking
// (lib/generate/exact_rank.ts) on the built-in demo data: every item entity starts with its own
// token through textualize -> tokenize -> collate -> trie, init sizes the GLM for them, and the
// one-step exact ranking gives what an exhaustive beam search gives on a random model.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  Collator,
  encodeEntity,
  encodePromptPartA,
  exampleRng,
  firstTokenOfItems,
  itemTokenName,
  tokenizeRecord,
  withItemTokens,
} from "../lib/collate/mod.ts";
import { buildPool, exclusionOf } from "../lib/collate/pool.ts";
import { openDataset, readRecords } from "../lib/data/dataset.ts";
import type { EntitySegment, Segment, TextRecord } from "../lib/data/types.ts";
import { rankItemsExact } from "../lib/generate/exact_rank.ts";
import { searchItems } from "../lib/generate/items.ts";
import { Predictor } from "../lib/generate/infer.ts";
import { loadForInference } from "../lib/generate/load.ts";
import { demoStages } from "../lib/demo/plan.ts";
import { initModel } from "../lib/model/init.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { withTempDir } from "./helpers/temp.ts";
import { demoSequentialDataset } from "./helpers/textualize.ts";
import { fileURLToPath } from "node:url";

const TOKENIZER = fileURLToPath(new URL("../fixtures/tokenizer/tokenizer.json", import.meta.url));

async function firstRecords(dir: string, split: "train" | "test", n: number) {
  const data = await openDataset(dir);
  const out: TextRecord[] = [];
  for await (const r of readRecords(data, split)) {
    out.push(r);
    if (out.length >= n) break;
  }
  return out;
}

const isEntity = (s: Segment): s is EntitySegment =>
  typeof (s as EntitySegment).entity === "string";

Deno.test("item tokens round-trip: textualize -> tokenize -> collate -> trie, every item entity starts with its own token", async () => {
  await withTempDir(async (dir) => {
    const plain = await demoSequentialDataset(join(dir, "plain"), "none");
    const data = await demoSequentialDataset(join(dir, "title"), "title");
    // The records are the same; only the manifest says how items are tokenized.
    assert.equal(
      await Deno.readTextFile(join(dir, "title", "train.jsonl")),
      await Deno.readTextFile(join(dir, "plain", "train.jsonl")),
    );
    assert.equal(data.manifest.options.item_tokens, "title");
    assert.equal(plain.manifest.options.item_tokens, undefined);

    const base = await TextTokenizer.load(TOKENIZER);
    assert.equal(withItemTokens(base, plain), base);
    const tokenizer = withItemTokens(base, data);
    const items = data.entities.filter((e) => e.kind === "item");
    assert.equal(tokenizer.vocabSize, base.vocabSize + items.length);
    // Past the vocabulary and the special tokens, in entities.json's order, special, named.
    items.forEach((e, i) => {
      const id = tokenizer.entityTokens!.get(e.entity)!;
      assert.equal(id, base.vocabSize + i);
      assert.ok(tokenizer.isSpecial(id));
      assert.equal(tokenizer.tokenString(id), itemTokenName(e.id));
    });
    for (const s of Object.values(base.special)) assert.ok(s < base.vocabSize);

    // Every entity unit of every record: its own token then its title for an item, unchanged
    // tokens for an attribute.
    const collator = new Collator(tokenizer.special, { objective: "entity", maxLength: 512 });
    let itemUnits = 0, maskedItemSpans = 0;
    const records = await firstRecords(join(dir, "title"), "train", 80);
    for (const [r, record] of records.entries()) {
      const t = tokenizeRecord(tokenizer, record);
      const entities = [...record.segments, ...(record.target ?? [])].filter(isEntity);
      let e = 0;
      for (let u = 0; u < t.unitEntity.length; u++) {
        if (!t.unitEntity[u]) continue;
        const { entity } = entities[e++];
        const ids = Array.from(t.ids.subarray(t.unitStart[u], t.unitStart[u + 1]));
        const own = tokenizer.entityTokens!.get(entity);
        const title = Array.from(encodeEntity(base, entity));
        assert.deepEqual(ids, own === undefined ? title : [own, ...title], entity);
        if (own !== undefined) itemUnits++;
      }
      assert.equal(e, entities.length);
      // Collated: a masked item span reads [S] <item> title..., its labels <item> title... [E],
      // and the item token takes intra-position 2 (the entity's first token).
      const ex = collator.collate(t, exampleRng(1, 0, r));
      for (let i = ex.sep; i < ex.inputIds.length; i++) {
        if (ex.inputIds[i] !== tokenizer.special.sop) continue;
        const label = ex.labels[i];
        if (label < base.vocabSize) continue;
        maskedItemSpans++;
        assert.equal(ex.inputIds[i + 1], label);
        assert.equal(ex.intra[i + 1], 2);
      }
    }
    assert.ok(itemUnits > 200, `${itemUnits} item units`);
    assert.ok(maskedItemSpans > 10, `${maskedItemSpans} masked item spans`);

    // The trie: the root's children are exactly the item tokens, one item below each.
    const pool = buildPool(tokenizer, data.entities, { vocabSize: tokenizer.vocabSize });
    const first = firstTokenOfItems(pool.items.tokens);
    assert.ok(first);
    assert.deepEqual(
      Array.from(first),
      pool.items.items.map((e: string) => tokenizer.entityTokens!.get(e)),
    );
    const { childStart, childNode } = pool.items.trie;
    assert.equal(childStart[1] - childStart[0], items.length);
    for (let c = childStart[0]; c < childStart[1]; c++) {
      assert.equal(pool.items.itemsBelow[childNode[c]], 1);
    }
    // Titles alone share first tokens, so they keep the beam search.
    const titles = buildPool(base, data.entities, { vocabSize: base.vocabSize });
    assert.equal(firstTokenOfItems(titles.items.tokens), null);

    // `only`: the item token alone.
    const only = withItemTokens(base, await demoSequentialDataset(join(dir, "only"), "only"));
    for (const e of items) assert.deepEqual(Array.from(encodeEntity(only, e.entity)).length, 1);
  });
});

Deno.test("exact ranking gives the exhaustive beam search's top-k under the trie's softmax (random GLM with item rows)", async () => {
  await withTempDir(async (dir) => {
    const data = await demoSequentialDataset(join(dir, "data"), "title");
    // init draws the item rows: vocab_size = the tokenizer's ids + one per item.
    const model = join(dir, "model");
    const init = await initModel({
      data: join(dir, "data"),
      preset: "tiny",
      shape: { hiddenSize: 32, numLayers: 1, numHeads: 2 },
      tokenizer: TOKENIZER,
      out: model,
      seed: 3,
    });
    const items = data.entities.filter((e) => e.kind === "item").length;
    const base = await TextTokenizer.load(TOKENIZER);
    assert.equal(init.config.vocabSize, base.vocabSize + items);

    const loaded = await loadForInference({ model, data, device: "cpu", threads: 1 });
    const { tokenizer, decoder } = loaded;
    try {
      assert.equal(loaded.vocabSize, tokenizer.vocabSize);
      const pool = buildPool(tokenizer, data.entities, { vocabSize: loaded.vocabSize });
      const firstTokens = firstTokenOfItems(pool.items.tokens)!;
      const records = (await firstRecords(join(dir, "data"), "test", 40))
        .filter((r) => r.task === "sequential").slice(0, 3);
      assert.equal(records.length, 3);
      let longest = 0;
      for (const t of pool.items.tokens) longest = Math.max(longest, t.length);
      const prompts = records.map((r) =>
        encodePromptPartA(tokenizeRecord(tokenizer, r), tokenizer.special, {
          maxLength: loaded.maxLength,
          reserve: 1 + longest,
        })
      );
      const exclusions = records.map((r) => exclusionOf(pool.items, r.history ?? []));
      assert.ok(exclusions.every((e) => e !== null));
      const { sop, eop } = tokenizer.special;
      const topK = 10;
      const exact = await rankItemsExact(decoder, prompts, {
        pool: pool.items,
        firstTokens,
        sop,
        topK,
        exclusions,
        trieSoftmax: true,
      });
      // Every item at the root: as many beams as items makes the search exhaustive.
      const beam = await searchItems(decoder, prompts, {
        pool: pool.items,
        sop,
        eop,
        beams: items,
        topK,
        exclusions,
        trieSoftmax: true,
      });
      for (let p = 0; p < prompts.length; p++) {
        assert.equal(exact[p].items.length, topK);
        assert.deepEqual(Array.from(exact[p].items), Array.from(beam[p].items));
        for (let k = 0; k < topK; k++) {
          assert.ok(Math.abs(exact[p].scores[k] - beam[p].scores[k]) < 1e-4);
          assert.ok(k === 0 || exact[p].scores[k] <= exact[p].scores[k - 1]);
        }
        // The history is never returned.
        const seen = new Set(records[p].history ?? []);
        for (const i of exact[p].items) assert.ok(!seen.has(pool.items.items[i]));
      }
      // Not a constant ranking: the prompts disagree.
      assert.notDeepEqual(Array.from(exact[0].items), Array.from(exact[1].items));
      // Both protocols give an item one score: the sampled protocol's candidates are scored as
      // exact ranking scores them.
      const parts = { model: decoder, tokenizer, pool };
      const settings = { maxLength: loaded.maxLength, topK: 5, excludeSeen: true };
      const full = await new Predictor(parts, { ...settings, protocol: "full" }).predict(records);
      const sampled = await new Predictor(parts, { ...settings, protocol: "sampled" }).predict(
        records.map((r, p) => ({
          ...r,
          candidates: Array.from(exact[p].items, (i) => pool.items.items[i]).reverse(),
        })),
      );
      for (let p = 0; p < records.length; p++) {
        assert.deepEqual(sampled[p].predictions, full[p].predictions);
      }
    } finally {
      await decoder.release();
    }
  });
});

Deno.test("demo --item-tokens passes the mode to textualize, and only to textualize", () => {
  const args = (itemTokens?: string) =>
    demoStages({ out: "/tmp/d", itemTokens }).map((stage) => stage.args.join(" "));
  const plain = args("none"), title = args("title");
  const at = plain.findIndex((line) => line.startsWith("textualize "));
  assert.ok(!plain[at].includes("--item-tokens"));
  assert.match(title[at], / --item-tokens title( |$)/);
  title.forEach((line, i) => i === at || assert.equal(line, plain[i]));
});
