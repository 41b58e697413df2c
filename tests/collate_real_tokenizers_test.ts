/**
 * The real tokenizers of Qwen3 and Llama 3 (byte-level BPE) and Llama 2 (metaspace): each
 * entity's canonical encoding is the one it has after a space in running text, and
 * docs/method.md section 7's invariant (the dynamic rule reproduces the collator's part B) holds
 * with rare exceptions on the Amazon Beauty titles. The shares are printed.
 */

import assert from "node:assert/strict";
import { Tokenizer } from "@huggingface/tokenizers";
import { Collator, exampleRng } from "../lib/collate/collator.ts";
import type { CollatedExample } from "../lib/collate/example.ts";
import { encodeEntity, tokenizeRecord } from "../lib/collate/tokenize.ts";
import { EntityTrie } from "../lib/collate/trie.ts";
import { join } from "node:path";
import { buildPool } from "../lib/collate/pool.ts";
import type { TextRecord } from "../lib/data/types.ts";
import { runCli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { beautyCorpus, HAVE_BEAUTY, invariant } from "./helpers/beauty_corpus.ts";
import { REAL_TOKENIZERS } from "./helpers/real_tokenizers.ts";

const tokenizers = Object.fromEntries(
  await Promise.all(
    Object.entries(REAL_TOKENIZERS).map(async ([name, path]) =>
      [name, await TextTokenizer.load(path)] as const
    ),
  ),
);

Deno.test("the pre-tokenizer decides the leading-space rule: byte-level for Qwen3 and Llama 3, metaspace for Llama 2", () => {
  assert.equal(tokenizers.qwen3.leadingSpace, "byte-level");
  assert.equal(tokenizers.llama3.leadingSpace, "byte-level");
  assert.equal(tokenizers.llama2.leadingSpace, "metaspace");
  for (const t of Object.values(tokenizers)) {
    const inText = t.encode(
      t.leadingSpace === "metaspace" ? "has bought Nail Polish" : "has bought Nail Polish",
    );
    const alone = encodeEntity(t, "Nail Polish");
    assert.deepEqual([...inText.subarray(inText.length - alone.length)], [...alone], t.source);
    // No stray space token: a metaspace entity starts with the word's own "▁N", not "▁".
    assert.notEqual(t.tokenString(alone[0]), t.leadingSpace === "metaspace" ? "▁" : "Ġ");
  }
});

Deno.test("text after an entity or a line break reads as in the whole string, metaspace too", () => {
  // Llama 2 prepends "▁" to whatever it encodes: piece by piece, ", then" after an entity and
  // "Good" after a line break read " , then" and " Good" (377 of 400 demo prompts differed).
  const segments = [
    { text: "They bought " },
    { entity: "Nail Polish", kind: "item" },
    { text: ", then " },
    { entity: "Hair Brush", kind: "item" },
    { text: ". Nice.\nGood (really)" },
  ];
  const whole = "They bought Nail Polish, then Hair Brush. Nice.\nGood (really)";
  for (const [name, t] of Object.entries(tokenizers)) {
    const { ids } = tokenizeRecord(t, { id: "r", task: "profile", segments } as TextRecord);
    assert.equal(t.decode(ids), whole, name);
    assert.deepEqual([...ids], [...t.encode(whole)], name);
  }
});

Deno.test("a title written with decomposed accents is composed by textualize, so Qwen3's pool takes it", async () => {
  await withTempDir(async (dir) => {
    const items = join(dir, "items.csv"), interactions = join(dir, "inter.csv");
    await Deno.writeTextFile(items, "item_id,title\na,Cafe\u0301 Tutu\nb,Plain\nc,Other\n");
    await Deno.writeTextFile(interactions, "user_id,item_id\nu,a\nu,b\nu,c\n");
    const out = join(dir, "data");
    const run = await runCli([
      ...["textualize", "--format=csv", `--input=${interactions}`, `--items=${items}`],
      ...["--negatives=1", `--out=${out}`, "--quiet"],
    ]);
    assert.equal(run.code, 0, run.stderr);
    const entities = JSON.parse(await Deno.readTextFile(join(out, "entities.json")));
    assert.ok(entities.some((e: { entity: string }) => e.entity === "Caf\u00e9 Tutu"));
    const pool = buildPool(tokenizers.qwen3, entities, { vocabSize: tokenizers.qwen3.vocabSize });
    assert.equal(pool.items.items.length, 3);
  });
});

Deno.test("a special token in the middle keeps the space after it, as the tokenizers library decodes", () => {
  for (const [name, t] of Object.entries(tokenizers)) {
    // " world": a metaspace normalizer prepends the space itself.
    const hello = t.encode("Hello");
    const world = t.encode(t.leadingSpace === "metaspace" ? "world" : " world");
    const ids = [...hello, t.special.mask, ...world];
    // Byte-level text keeps its spaces as they are; a metaspace decoder strips one space at the
    // start of the whole text only (Llama 2's "▁Hello" reads "Hello"), not after the [MASK].
    const start = t.leadingSpace === "metaspace" ? "Hello" : t.decode(hello);
    assert.equal(t.decode(ids), `${start}[MASK] world`, name);
    assert.equal(t.decode(ids, { skipSpecial: true }), `${start} world`, name);
    assert.equal(t.decode([t.special.mask, ...world]), "[MASK] world", name);
  }
});

Deno.test("the prefix is what the tokenizers library puts before a text: Llama 2's <s>, Llama 3's where its template says", async () => {
  const expected = { qwen3: [], llama3: [], llama2: ["<s>"] } as Record<string, string[]>;
  // This copy of Llama 3's tokenizer.json has no template; Meta's later one puts
  // <|begin_of_text|> first by a TemplateProcessing behind its ByteLevel post-processor.
  const llama3 = JSON.parse(await Deno.readTextFile(REAL_TOKENIZERS.llama3));
  llama3.post_processor = {
    type: "Sequence",
    processors: [llama3.post_processor, {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } }, {
        Sequence: { id: "A", type_id: 0 },
      }],
      pair: [],
      special_tokens: {
        "<|begin_of_text|>": { id: "<|begin_of_text|>", ids: [128000], tokens: [] },
      },
    }],
  };
  const jsons = Object.fromEntries(
    await Promise.all(
      Object.entries(REAL_TOKENIZERS).map(async ([name, path]) =>
        [name, JSON.parse(await Deno.readTextFile(path))] as const
      ),
    ),
  );
  const cases = [
    ...Object.entries(tokenizers).map(([name, t]) => ({ name, t, json: jsons[name] })),
    { name: "llama3 (Meta's template)", t: TextTokenizer.fromJson(llama3), json: llama3 },
  ];
  expected["llama3 (Meta's template)"] = ["<|begin_of_text|>"];
  for (const { name, t, json } of cases) {
    assert.deepEqual([...t.prefix].map((id) => t.tokenString(id)), expected[name], name);
    const text = "They bought Nail Polish.";
    const library = new Tokenizer(json, {}).encode(text, { add_special_tokens: true }).ids;
    assert.deepEqual(library, [...t.prefix, ...t.encode(text)], name);
    // Every example starts with it.
    const record = tokenizeRecord(t, {
      id: "r",
      task: "profile",
      segments: [{ text: "They bought " }, { entity: "Nail Polish", kind: "item" }],
    } as TextRecord);
    const example = new Collator(t.special, { objective: "entity" }).collate(
      record,
      exampleRng(1, 0, 0),
    );
    assert.deepEqual([...example.inputIds.subarray(0, t.prefix.length)], [...t.prefix], name);
  }
});

Deno.test({
  name:
    "real tokenizers on Beauty: entities keep their running-text encoding; the dynamic rule holds with rare exceptions",
  ignore: !HAVE_BEAUTY,
}, async () => {
  const { pool, records } = await beautyCorpus(600);
  for (const [name, t] of Object.entries(tokenizers)) {
    // Canonical encoding vs the same title after "bought " in running text.
    let same = 0;
    for (const title of pool) {
      const alone = encodeEntity(t, title);
      const inText = t.encode("bought " + title);
      const tail = inText.subarray(inText.length - alone.length);
      if (tail.length === alone.length && tail.every((v, i) => v === alone[i])) same++;
    }
    const trie = EntityTrie.fromEntities(t, pool);
    const examples: CollatedExample[] = [];
    for (const objective of ["entity", "sentence", "document"] as const) {
      const collator = new Collator(t.special, { objective, maxLength: 4096 });
      records.forEach((r, i) =>
        examples.push(collator.collate(tokenizeRecord(t, r), exampleRng(1, 0, i)))
      );
    }
    const { spans, exceptions, cases } = invariant(trie, examples);
    // Qwen's and Llama 3's pre-tokenizers split a space from the digits after it, so the text
    // "User 1234" holds a lone space token followed by "1": the start of every title that begins
    // with a digit. Counted apart (text that happens to begin an entity, as docs/method.md
    // section 7 says).
    const digits = cases.filter(([unit, next]) =>
      unit.length === 1 && t.decode(unit).trim() === "" && /^[0-9]/.test(t.decode([next]))
    ).length;
    const other = exceptions - digits;
    const pct = (x: number, n: number) =>
      `${(100 * x / n).toFixed(3)}%`;
    console.log(
      `${name}: ${same} of ${pool.length} titles (${pct(same, pool.length)}) encode as in ` +
        `running text; ${spans} part B spans, ${exceptions} (${pct(exceptions, spans)}) where ` +
        `the dynamic rule differs: ${digits} a space token before a digit, ${other} others ` +
        `(${pct(other, spans)})`,
    );
    assert.ok(same / pool.length > 0.99, name);
    assert.ok(spans > 2000);
    assert.ok(other / spans < 0.01, `${name}: ${other} of ${spans}`);
  }
});
