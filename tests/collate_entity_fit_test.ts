import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { checkEntityLengths, longEntities } from "../lib/collate/entity_fit.ts";
import { encodeEntity } from "../lib/collate/tokenize.ts";
import { InputError } from "../lib/errors.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";

const base = await TextTokenizer.load(
  fileURLToPath(new URL("../fixtures/tokenizer/tokenizer.json", import.meta.url)),
);

Deno.test("an entity whose item token takes it past the limit is named too long", () => {
  // Characters the fixture's BPE never merged: one token per UTF-8 byte, 3 per character, plus
  // the leading space: the most tokens a string of this length can take without an item token.
  const entity = "漢字".repeat(8);
  const plain = encodeEntity(base, entity).length;
  assert.equal(plain, 3 * entity.length + 1);
  const tokenizer = base.withEntityTokens([{ entity, name: "<item:I1>" }], { titles: true });
  const tokens = encodeEntity(tokenizer, entity).length;
  assert.equal(tokens, plain + 1); // the item token, then the title
  const pool = [{ entity, kind: "item", id: "I1" }];
  const limit = tokens - 1;
  assert.deepEqual(longEntities(tokenizer, pool, limit), [{
    kind: "item",
    id: "I1",
    entity,
    tokens,
  }]);
  assert.deepEqual(longEntities(tokenizer, pool, tokens), []);
  // At a maximum length of 65 an entity may take 49 tokens; this one takes 50.
  assert.throws(
    () =>
      checkEntityLengths(tokenizer, pool, { maxLength: 65, lengthFrom: "test", file: "e.json" }),
    (e) =>
      e instanceof InputError &&
      /is 50 tokens, more than the 49 an entity may take/.test(e.message),
  );
});

Deno.test("the tokenizer's prefix, which starts every example, leaves an entity that much less room", () => {
  const json = JSON.parse(
    Deno.readTextFileSync(new URL("../fixtures/tokenizer/tokenizer.json", import.meta.url)),
  );
  json.added_tokens.push({ id: 1103, content: "<s>", special: true });
  json.post_processor = {
    type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
  };
  const prefixed = TextTokenizer.fromJson(json, "prefixed");
  const entity = "漢字".repeat(8); // 49 tokens: just fits a maximum length of 65 without a prefix
  const pool = [{ entity, kind: "item", id: "I1" }];
  const options = { maxLength: 65, lengthFrom: "test", file: "e.json" };
  checkEntityLengths(base, pool, options);
  assert.throws(
    () => checkEntityLengths(prefixed, pool, options),
    /is 49 tokens, more than the 48 an entity may take/,
  );
});
