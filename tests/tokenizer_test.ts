import assert from "node:assert/strict";
import { Tokenizer } from "@huggingface/tokenizers";
import { InputError } from "../lib/errors.ts";
import { SPECIAL_TOKENS, TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { trainByteLevelBpe } from "../lib/tokenizer/train_bpe.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

const FIXTURE = fileURLToPath(new URL("../fixtures/tokenizer/tokenizer.json", import.meta.url));
const FIXTURE_JSON = JSON.parse(await Deno.readTextFile(FIXTURE));

Deno.test("the fixture tokenizer's special tokens resolve to its added tokens", async () => {
  const tokenizer = await TextTokenizer.load(FIXTURE);
  const added = new Map<string, number>(
    FIXTURE_JSON.added_tokens.map((t: { content: string; id: number }) => [t.content, t.id]),
  );
  assert.deepEqual(tokenizer.special, {
    mask: added.get("[MASK]"),
    smask: added.get("[sMASK]"),
    gmask: added.get("[gMASK]"),
    sop: added.get("[S]"),
    eop: added.get("[E]"),
    pad: added.get("[PAD]"),
  });
  assert.equal(tokenizer.vocabSize, Object.keys(FIXTURE_JSON.model.vocab).length);
  for (const name of SPECIAL_TOKENS) {
    assert.equal(tokenizer.tokenString(added.get(name)!), name);
    assert.ok(tokenizer.isSpecial(added.get(name)!));
  }
});

Deno.test("encoding matches @huggingface/tokenizers and decoding gives the text back", async () => {
  const tokenizer = await TextTokenizer.load(FIXTURE);
  const reference = new Tokenizer(FIXTURE_JSON, {});
  for (
    const text of [
      " Glowberry Rose Hand Cream, 2.5 oz",
      "What will the user buy next?",
      "Crème brûlée 漢字 ✓ and  two  spaces\n\nnew lines\ttabs",
      "",
    ]
  ) {
    const ids = tokenizer.encode(text);
    assert.ok(ids instanceof Int32Array);
    assert.deepEqual(
      Array.from(ids),
      text === "" ? [] : reference.encode(text, { add_special_tokens: false }).ids,
    );
    assert.equal(tokenizer.decode(ids), text);
    assert.deepEqual(
      Array.from(ids, (id) => tokenizer.tokenString(id)),
      text === "" ? [] : reference.tokenize(text),
    );
  }
});

Deno.test("text that spells a special token is encoded as ordinary text", async () => {
  const tokenizer = await TextTokenizer.load(FIXTURE);
  const ids = tokenizer.encode("a [MASK] and [PAD]");
  for (const id of ids) assert.ok(!tokenizer.isSpecial(id), tokenizer.tokenString(id));
  assert.equal(tokenizer.decode(ids), "a [MASK] and [PAD]");
  const withSpecials = [tokenizer.special.sop, ...ids, tokenizer.special.eop];
  assert.equal(tokenizer.decode(withSpecials), "[S]a [MASK] and [PAD][E]");
  assert.equal(tokenizer.decode(withSpecials, { skipSpecial: true }), "a [MASK] and [PAD]");
});

Deno.test("an added token taken for a special one is never encoded from text, marked special or not", () => {
  const json = trainByteLevelBpe(["hello world"], { vocabSize: 300 }) as {
    model: { vocab: Record<string, number> };
    added_tokens: Record<string, unknown>[];
  };
  const id = Object.keys(json.model.vocab).length;
  json.model.vocab["<pad>"] = id;
  json.added_tokens.push({
    id,
    content: "<pad>",
    special: false,
    normalized: false,
    lstrip: false,
    rstrip: false,
    single_word: false,
  });
  const tokenizer = TextTokenizer.fromJson(json);
  assert.equal(tokenizer.special.pad, id);
  const ids = tokenizer.encode("x <pad> y");
  assert.ok(!ids.includes(id), `text became the pad id: ${Array.from(ids)}`);
  assert.equal(tokenizer.decode(ids), "x <pad> y");
});

Deno.test("encode results are the caller's own: changing one does not change the cache", async () => {
  const tokenizer = await TextTokenizer.load(FIXTURE);
  const first = tokenizer.encode(" Saltmarsh Sea Clay Mask");
  const expected = Array.from(first);
  first.fill(0);
  assert.deepEqual(Array.from(tokenizer.encode(" Saltmarsh Sea Clay Mask")), expected);
});

Deno.test("GLM's names are accepted and missing special tokens are appended", () => {
  const json = trainByteLevelBpe(["some text to learn from, some more text"], {
    vocabSize: 280,
    specialTokens: ["<|endoftext|>", "[MASK]", "<|startofpiece|>", "<|endofpiece|>"],
  });
  const vocab = (json.model as { vocab: Record<string, number> }).vocab;
  const size = Object.keys(vocab).length;
  const tokenizer = TextTokenizer.fromJson(json);
  assert.equal(tokenizer.special.pad, vocab["<|endoftext|>"]);
  assert.equal(tokenizer.special.mask, vocab["[MASK]"]);
  assert.equal(tokenizer.special.sop, vocab["<|startofpiece|>"]);
  assert.equal(tokenizer.special.eop, vocab["<|endofpiece|>"]);
  // [sMASK] and [gMASK] are absent: appended right after the vocabulary, in that order.
  assert.equal(tokenizer.special.smask, size);
  assert.equal(tokenizer.special.gmask, size + 1);
  assert.equal(tokenizer.vocabSize, size + 2);
  assert.equal(tokenizer.tokenString(size), "[sMASK]");
  assert.equal(tokenizer.decode([tokenizer.special.gmask]), "[gMASK]");
});

Deno.test("GLM-4's span markers <sop> and <eop> are [S] and [E]", () => {
  const json = trainByteLevelBpe(["some text to learn from, some more text"], {
    vocabSize: 280,
    specialTokens: ["[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>"],
  });
  const vocab = (json.model as { vocab: Record<string, number> }).vocab;
  const tokenizer = TextTokenizer.fromJson(json);
  assert.equal(tokenizer.special.sop, vocab["<sop>"]);
  assert.equal(tokenizer.special.eop, vocab["<eop>"]);
  assert.equal(tokenizer.definedIds, Object.keys(vocab).length);
});

Deno.test("a missing, invalid or foreign tokenizer file is an input error naming it", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(() => TextTokenizer.load(`${dir}/none.json`), (error: Error) => {
      assert.ok(error instanceof InputError);
      assert.match(error.message, /none\.json: tokenizer file not found/);
      return true;
    });
    await Deno.writeTextFile(`${dir}/bad.json`, "{not json");
    await assert.rejects(() => TextTokenizer.load(`${dir}/bad.json`), /bad\.json: not valid JSON/);
    await Deno.writeTextFile(`${dir}/other.json`, '{"hello": 1}');
    await assert.rejects(
      () => TextTokenizer.load(`${dir}/other.json`),
      /other\.json: not a tokenizer\.json/,
    );
  });
});

Deno.test("token ids that are not a vocabulary's are an input error, before a table of them", () => {
  const cases: [(t: typeof FIXTURE_JSON) => void, RegExp][] = [
    // One stray id would size the id table (and the model's rows) by itself.
    [(t) => (t.model.vocab.stray = 2 ** 40), /token "stray" has id 1099511627776, not a token id/],
    [(t) => (t.model.vocab.stray = 5e8), /its highest token id is 500000000, for \d+ tokens/],
    [(t) => (t.model.vocab.stray = "5"), /token "stray" has id "5", not a token id/],
    // A special token at -1 reached the graphs as an id.
    [(t) => (t.added_tokens[0].id = -1), /added_tokens entries need content and an id/],
    // The engine would guess another model from the keys and encode with it.
    [(t) => (t.model.type = "WordLevel"), /model type "WordLevel" is not supported/],
  ];
  for (const [corrupt, pattern] of cases) {
    const copy = structuredClone(FIXTURE_JSON);
    corrupt(copy);
    assert.throws(() => TextTokenizer.fromJson(copy, "t/tokenizer.json"), (e: Error) => {
      assert.ok(e instanceof InputError, e.message);
      assert.match(e.message, /^t\/tokenizer\.json: /);
      assert.match(e.message, pattern);
      return true;
    });
  }
});
