// Item-token spans (pretrain --item-spans token; lib/collate/example.ts): an item entity's span
// generates its item token only, not its title. Checked on the demo data's real records against
// the whole spans of the same draws, and through pretrain (the option's errors, a short run).
import assert from "node:assert/strict";
import { join } from "node:path";
import { Collator, exampleRng, tokenizeRecord, withItemTokens } from "../lib/collate/mod.ts";
import { openDataset, readRecords } from "../lib/data/dataset.ts";
import type { TextRecord } from "../lib/data/types.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { runCli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp.ts";
import { demoSequentialDataset } from "./helpers/textualize.ts";

const TOKENIZER = new URL("../fixtures/tokenizer/tokenizer.json", import.meta.url).pathname;

Deno.test("item-token spans: part A as with whole spans, part B [S] <item> per item span, the token its one label", async () => {
  await withTempDir(async (dir) => {
    const data = await demoSequentialDataset(join(dir, "title"), "title");
    const base = await TextTokenizer.load(TOKENIZER);
    const tokenizer = withItemTokens(base, data);
    const first = base.vocabSize; // item tokens come after the vocabulary and the specials
    const records: TextRecord[] = [];
    for await (const r of readRecords(await openDataset(join(dir, "title")), "train")) {
      records.push(r);
      if (records.length === 120) break;
    }
    let itemSpans = 0, tasks = 0;
    for (const objective of ["sequence", "entity", "sentence"] as const) {
      const whole = new Collator(tokenizer.special, { objective, maxLength: 512 });
      const short = new Collator(tokenizer.special, {
        objective,
        maxLength: 512,
        tokenOnlyFrom: first,
      });
      for (const [i, record] of records.entries()) {
        const t = tokenizeRecord(tokenizer, record);
        const a = whole.collate(t, exampleRng(3, 0, i));
        const b = short.collate(t, exampleRng(3, 0, i));
        if (t.hasTarget) tasks++;
        // The same spans drawn, the same part A.
        assert.deepEqual(b.spans, a.spans);
        assert.equal(b.sep, a.sep);
        for (const key of ["inputIds", "inter", "intra", "labels", "units"] as const) {
          assert.deepEqual(b[key].subarray(0, b.sep), a[key].subarray(0, a.sep), key);
        }
        // Part B, span by span: an item span with a title becomes [S] <item>; any other span
        // is unchanged.
        let pa = a.sep, pb = b.sep;
        for (let k = 0; k < a.spans.length / 2; k++) {
          let ea = pa + 1;
          while (ea < a.length && a.inputIds[ea] !== tokenizer.special.sop) ea++;
          const isItem = a.spans[2 * k + 1] === a.spans[2 * k] + 1 && a.inputIds[pa + 1] >= first &&
            ea - pa > 2;
          if (isItem) {
            itemSpans++;
            assert.deepEqual(Array.from(b.inputIds.subarray(pb, pb + 2)), [
              tokenizer.special.sop,
              a.inputIds[pa + 1],
            ]);
            assert.deepEqual(Array.from(b.labels.subarray(pb, pb + 2)), [a.inputIds[pa + 1], -100]);
            assert.deepEqual(Array.from(b.intra.subarray(pb, pb + 2)), [1, 2]);
            assert.equal(b.inter[pb], a.inter[pa]);
            assert.equal(b.inter[pb + 1], a.inter[pa]);
            pb += 2;
          } else {
            for (const key of ["inputIds", "inter", "intra", "labels", "units"] as const) {
              assert.deepEqual(b[key].subarray(pb, pb + ea - pa), a[key].subarray(pa, ea), key);
            }
            pb += ea - pa;
          }
          pa = ea;
        }
        assert.equal(pa, a.length);
        assert.equal(pb, b.length);
      }
    }
    assert.ok(itemSpans > 200, `${itemSpans} item spans`);
    assert.ok(tasks > 0, "task prompts among the records");
  });
});

Deno.test("pretrain --item-spans token: trains on item tokens with titles; refused without them or beside --trie-softmax", async () => {
  await withTempDir(async (dir) => {
    await demoSequentialDataset(join(dir, "title"), "title");
    await demoSequentialDataset(join(dir, "none"), "none");
    for (const d of ["title", "none"]) {
      const init = await runCli([
        "init",
        "--data",
        join(dir, d),
        "--preset",
        "tiny",
        "--hidden-size",
        "32",
        "--out",
        join(dir, `model-${d}`),
        "--seed",
        "1",
        "--quiet",
      ]);
      assert.equal(init.code, 0, init.stderr);
    }
    const pretrain = (d: string, out: string, ...extra: string[]) =>
      runCli([
        "pretrain",
        "--data",
        join(dir, d),
        "--model",
        join(dir, `model-${d}`),
        "--out",
        join(dir, out),
        "--full",
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--val-batches",
        "1",
        "--objective",
        "sequence",
        "--threads",
        "1",
        "--quiet",
        ...extra,
      ]);
    const none = await pretrain("none", "run-none", "--item-spans", "token");
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /--item-spans token needs item tokens before the titles/);
    assert.equal(none.stderr.trim().split("\n").length, 1, none.stderr);
    const trie = await pretrain("title", "run-trie", "--item-spans", "token", "--trie-softmax");
    assert.notEqual(trie.code, 0);
    assert.match(trie.stderr, /--item-spans token .*drop --trie-softmax/);

    const ok = await pretrain("title", "run-title", "--item-spans", "token");
    assert.equal(ok.code, 0, ok.stderr);
    const lines = (await Deno.readTextFile(join(dir, "run-title", "metrics.jsonl"))).trim()
      .split("\n").map((l) => JSON.parse(l));
    assert.equal(lines.length, 3);
    for (const l of lines) assert.ok(Number.isFinite(l.loss) && l.loss > 0, JSON.stringify(l));
    // The whole spans of the same draws: more tokens a step (the titles in part B).
    const full = await pretrain("title", "run-full");
    assert.equal(full.code, 0, full.stderr);
    const fullLines = (await Deno.readTextFile(join(dir, "run-full", "metrics.jsonl"))).trim()
      .split("\n").map((l) => JSON.parse(l));
    assert.ok(fullLines[2].tokens > lines[2].tokens, `${fullLines[2].tokens} ${lines[2].tokens}`);
  });
});
