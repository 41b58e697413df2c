/**
 * The parts of `tokenizer.json` that the tokenizer engine read differently from the Rust library
 * (lib/tokenizer/engine_parity.ts), on Llama 2's real vocabulary: the Metaspace pre-tokenizer's
 * `split`, the ByteFallback decoder's invalid bytes and the Metaspace decoder's first token. The
 * expected texts are the Rust library's rules as its documentation and its own tests state them
 * (checked against `tokenizers` 0.23.2 on 18,137 texts and 3,000 random id sequences when the
 * module was written).
 */

import assert from "node:assert/strict";
import { Tokenizer } from "@huggingface/tokenizers";
import { splitBeforeMarks } from "../lib/tokenizer/engine_parity.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { REAL_TOKENIZERS } from "./helpers/real_tokenizers.ts";

const LLAMA2 = JSON.parse(await Deno.readTextFile(REAL_TOKENIZERS.llama2)) as {
  normalizer: unknown;
  pre_tokenizer: unknown;
  decoder: unknown;
  model: { vocab: Record<string, number> };
};
const id = (piece: string) => LLAMA2.model.vocab[piece];

/** Llama 2's vocabulary behind a Metaspace pre-tokenizer (and `decoder`, else Llama 2's own). */
function metaspace(settings: Record<string, unknown>, decoder: unknown = LLAMA2.decoder) {
  return {
    ...LLAMA2,
    normalizer: null,
    pre_tokenizer: { type: "Metaspace", replacement: "\u2581", ...settings },
    decoder,
  };
}

const pieces = (t: TextTokenizer, text: string) => [...t.encode(text)].map((i) => t.tokenString(i));

Deno.test("splitBeforeMarks cuts before every mark but a leading one, as MergedWithNext", () => {
  assert.deepEqual(splitBeforeMarks("▁Hey▁▁▁friend!", "▁"), ["▁Hey", "▁", "▁", "▁friend!"]);
  assert.deepEqual(splitBeforeMarks("a▁b", "▁"), ["a", "▁b"]);
  assert.deepEqual(splitBeforeMarks("▁", "▁"), ["▁"]);
  assert.deepEqual(splitBeforeMarks("", "▁"), []);
});

Deno.test("a Metaspace pre-tokenizer that splits (or does not say) keeps every token inside one word", () => {
  const text = "a  b   c    d";
  const glued = TextTokenizer.fromJson(metaspace({ prepend_scheme: "first", split: false }));
  // Without the split, Llama 2's merges glue spaces together ("▁▁", "▁▁▁"), as the engine did.
  assert.ok(
    pieces(glued, text).some((p) => p.lastIndexOf("\u2581") > 0),
    pieces(glued, text).join("|"),
  );
  for (const settings of [{ prepend_scheme: "first", split: true }, { add_prefix_space: true }]) {
    const split = TextTokenizer.fromJson(metaspace(settings));
    assert.deepEqual(pieces(split, text), ["▁a", "▁", "▁b", "▁", "▁", "▁c", "▁", "▁", "▁", "▁d"]);
    // The engine alone merges across the spaces: the split is this toolkit's, not the engine's.
    const engine = new Tokenizer(metaspace(settings), {});
    assert.notDeepEqual(engine.encode(text, { add_special_tokens: false }).ids, [
      ...split.encode(text),
    ]);
    // Text without repeated spaces is cut where the words are anyway.
    assert.deepEqual([...split.encode("Nail Polish")], [...glued.encode("Nail Polish")]);
  }
});

Deno.test("byte tokens that are not UTF-8 decode to one U+FFFD a byte, as the Rust library's ByteFallback", () => {
  const llama2 = TextTokenizer.fromJson(LLAMA2);
  const ids = (...p: string[]) => p.map(id);
  assert.equal(llama2.decode(ids("<0xE2>", "<0x82>", "▁a")), "\uFFFD\uFFFD a");
  assert.equal(llama2.decode(ids("<0xFF>", "<0xE2>", "<0x82>", "<0xAC>")), "\uFFFD".repeat(4));
  assert.equal(llama2.decode(ids("▁x", "<0xE2>", "<0x82>")), "x\uFFFD\uFFFD");
  // Valid runs read as their characters, a byte-order mark too (Rust's from_utf8 keeps it).
  assert.equal(llama2.decode(ids("▁a", "<0xE2>", "<0x82>", "<0xAC>", "b")), "a\u20acb");
  assert.equal(llama2.decode(ids("<0xEF>", "<0xBB>", "<0xBF>", "▁a")), "\uFEFF a");
  assert.equal(llama2.decode(llama2.encode("\uFEFFhello")), "\uFEFFhello");
});

Deno.test("a Metaspace decoder drops the first token's marks unless its scheme is never", () => {
  const decoderOf = (prepend_scheme: string) => ({
    type: "Metaspace",
    replacement: "\u2581",
    prepend_scheme,
    split: true,
  });
  const ids = [id("▁▁"), id("▁a")];
  const always = TextTokenizer.fromJson(metaspace({ split: true }, decoderOf("always")));
  const never = TextTokenizer.fromJson(metaspace({ split: true }, decoderOf("never")));
  assert.equal(always.decode(ids), " a");
  assert.equal(never.decode(ids), "   a");
  assert.equal(always.decode([id("a"), id("▁b")]), "a b");
});

Deno.test("under prepend_scheme first, a piece an earlier pre-tokenizer cut gets no mark", () => {
  const json = {
    ...LLAMA2,
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "WhitespaceSplit" },
        { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: true },
      ],
    },
  };
  // The Rust library's pieces (tokenizers 0.23.2); the engine marked every word.
  const t = TextTokenizer.fromJson(json);
  assert.deepEqual(pieces(t, "hello world  foo"), ["▁hell", "o", "world", "foo"]);
  // A first piece after dropped whitespace does not start the text either.
  assert.deepEqual(pieces(t, "  x  y "), ["x", "y"]);
  // WhitespaceSplit cuts at Unicode's White_Space only: U+FEFF is text, as in the Rust library.
  assert.deepEqual(pieces(t, "x\uFEFF"), ["▁x", "\uFEFF"]);
});

Deno.test("special tokens left out do not cut the text around them, as the Rust library decodes", () => {
  const llama2 = TextTokenizer.fromJson(LLAMA2);
  const ids = (...p: string[]) => p.map(id);
  const skip = { skipSpecial: true };
  // The Rust library's texts (decode with skip_special_tokens, tokenizers 0.23.2).
  assert.equal(llama2.decode(ids("▁", "</s>", "▁a"), skip), " a");
  assert.equal(llama2.decode(ids("<0xE2>", "</s>", "<0x82>", "<0xAC>"), skip), "\u20ac");
  assert.equal(llama2.decode(ids("▁Hello", "<s>", "▁world"), skip), "Hello world");
  // Shown by name, they cut it (as the library shows them).
  assert.equal(llama2.decode(ids("▁", "</s>", "▁a")), "</s> a");
  assert.equal(llama2.decode(ids("<0xE2>", "</s>", "<0x82>", "<0xAC>")), "\uFFFD</s>\uFFFD\uFFFD");
});
