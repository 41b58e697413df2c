import assert from "node:assert/strict";
import { Tokenizer } from "@huggingface/tokenizers";
import {
  BYTE_TO_CHAR,
  countBpeWords,
  GPT2_PRETOKENIZE_PATTERN,
  trainBpeOnWordCounts,
  trainByteLevelBpe,
} from "../lib/tokenizer/train_bpe.ts";

const CORPUS = await Deno.readTextFile(
  new URL("../fixtures/tokenizer/corpus.txt", import.meta.url),
);
const TEXTS = CORPUS.split("\n");

/** Pre-tokenized words of `texts` in byte-level characters, with counts. */
function wordCounts(texts: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  const encoder = new TextEncoder();
  for (const text of texts) {
    for (const m of text.matchAll(GPT2_PRETOKENIZE_PATTERN)) {
      const word = Array.from(encoder.encode(m[0]), (b) => BYTE_TO_CHAR[b]).join("");
      counts.set(word, (counts.get(word) ?? 0) + 1);
    }
  }
  return counts;
}

/**
 * A slow, obviously correct trainer: recount every pair from scratch at each step, take the
 * most frequent, ties to the smaller (left id, right id), merge it everywhere left to right.
 */
function naiveTrain(texts: string[], vocabSize: number, minFrequency: number) {
  const ids = new Map<string, number>();
  const symbols: string[] = [];
  const order: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) order.push(b);
  for (let b = 0xa1; b <= 0xac; b++) order.push(b);
  for (let b = 0xae; b <= 0xff; b++) order.push(b);
  for (let b = 0; b < 256; b++) if (!order.includes(b)) order.push(b);
  for (const b of order) {
    ids.set(BYTE_TO_CHAR[b], symbols.length);
    symbols.push(BYTE_TO_CHAR[b]);
  }
  const words = [...wordCounts(texts)].map(([word, count]) => ({
    parts: Array.from(word),
    count,
  }));
  const merges: string[] = [];
  while (symbols.length < vocabSize) {
    const counts = new Map<string, number>();
    for (const { parts, count } of words) {
      for (let i = 0; i + 1 < parts.length; i++) {
        const key = JSON.stringify([parts[i], parts[i + 1]]);
        counts.set(key, (counts.get(key) ?? 0) + count);
      }
    }
    let best: [string, string] | undefined;
    let bestCount = 0;
    for (const [key, count] of counts) {
      const pair = JSON.parse(key) as [string, string];
      const better = count > bestCount ||
        (count === bestCount && best !== undefined &&
          (ids.get(pair[0])! < ids.get(best[0])! ||
            (ids.get(pair[0]) === ids.get(best[0]) && ids.get(pair[1])! < ids.get(best[1])!)));
      if (better) {
        best = pair;
        bestCount = count;
      }
    }
    if (best === undefined || bestCount < minFrequency) break;
    const merged = best[0] + best[1];
    merges.push(`${best[0]} ${best[1]}`);
    if (!ids.has(merged)) {
      ids.set(merged, symbols.length);
      symbols.push(merged);
    }
    for (const word of words) {
      const out: string[] = [];
      for (let i = 0; i < word.parts.length; i++) {
        if (
          i + 1 < word.parts.length && word.parts[i] === best[0] && word.parts[i + 1] === best[1]
        ) {
          out.push(merged);
          i++;
        } else {
          out.push(word.parts[i]);
        }
      }
      word.parts = out;
    }
  }
  return { merges, symbols, words };
}

Deno.test("the trainer learns exactly the merges of a from-scratch reference trainer", () => {
  for (const [vocabSize, minFrequency] of [[400, 2], [700, 1]]) {
    const json = trainByteLevelBpe(TEXTS, { vocabSize, minFrequency });
    const model = json.model as { merges: string[]; vocab: Record<string, number> };
    const reference = naiveTrain(TEXTS, vocabSize, minFrequency);
    assert.deepEqual(model.merges, reference.merges);
    reference.symbols.forEach((symbol, id) => assert.equal(model.vocab[symbol], id));
    assert.equal(Object.keys(model.vocab).length, reference.symbols.length);
  }
});

Deno.test("encoding with @huggingface/tokenizers applies exactly the learned merges", () => {
  const json = trainByteLevelBpe(TEXTS, { vocabSize: 600, minFrequency: 2 });
  const tokenizer = new Tokenizer(json, {});
  const reference = naiveTrain(TEXTS, 600, 2);
  // Every training word encodes to the segmentation training left it in.
  const decoder = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));
  for (const word of reference.words) {
    const text = new TextDecoder().decode(
      Uint8Array.from(Array.from(word.parts.join(""), (c) => decoder.get(c)!)),
    );
    assert.deepEqual(tokenizer.tokenize(text), word.parts, JSON.stringify(text));
  }
  const sample = "User 12 recently bought a sea clay mask. What will the user buy next?";
  const { ids } = tokenizer.encode(sample, { add_special_tokens: false });
  assert.equal(tokenizer.decode(ids, { clean_up_tokenization_spaces: false }), sample);
});

Deno.test("the tokenizer.json has the GPT-2 layout: bytes, merges, then special tokens", () => {
  const specials = ["[MASK]", "[PAD]"];
  const json = trainByteLevelBpe(TEXTS, { vocabSize: 300, specialTokens: specials });
  const model = json.model as { type: string; merges: string[]; vocab: Record<string, number> };
  assert.equal(json.version, "1.0");
  assert.equal(json.normalizer, null);
  assert.deepEqual(json.pre_tokenizer, {
    type: "ByteLevel",
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: true,
  });
  assert.equal((json.decoder as { type: string }).type, "ByteLevel");
  assert.equal(model.type, "BPE");
  assert.equal(Object.keys(model.vocab).length, 300);
  assert.equal(model.merges.length, 300 - 256 - specials.length);
  assert.equal(model.vocab["!"], 0);
  assert.equal(model.vocab["Ġ"], 220); // GPT-2's id for the space byte
  assert.deepEqual(
    (json.added_tokens as { id: number; content: string; special: boolean }[])
      .map((t) => [t.id, t.content, t.special]),
    [[298, "[MASK]", true], [299, "[PAD]", true]],
  );
  assert.equal(model.vocab["[MASK]"], 298);
  const tokenizer = new Tokenizer(json, {});
  assert.deepEqual(tokenizer.encode("a [MASK]", { add_special_tokens: false }).tokens, [
    "a",
    "Ġ",
    "[MASK]",
  ]);
});

Deno.test("training stops early when no pair is frequent enough, and is order-independent", () => {
  const texts = ["abab abab", "cd"];
  const json = trainByteLevelBpe(texts, { vocabSize: 1000 });
  const model = json.model as { merges: string[]; vocab: Record<string, number> };
  // Pairs seen at least twice: a b (x4), then ab ab (x2), then Ġ abab (x1: not enough).
  assert.deepEqual(model.merges, ["a b", "ab ab"]);
  assert.equal(Object.keys(model.vocab).length, 258);
  const shuffled = trainByteLevelBpe([...TEXTS].reverse(), { vocabSize: 500 });
  assert.deepEqual(shuffled, trainByteLevelBpe(TEXTS, { vocabSize: 500 }));
});

Deno.test("word counts gathered a text at a time train the tokenizer the texts train", () => {
  // What init does with a dataset too large to hold as texts.
  const counts = new Map<string, number>();
  for (const text of TEXTS) countBpeWords(text, counts);
  assert.equal(counts.get(" the"), wordCounts(TEXTS).get("Ġthe"));
  const options = { vocabSize: 600, specialTokens: ["[MASK]", "[PAD]"] };
  assert.deepEqual(trainBpeOnWordCounts(counts, options), trainByteLevelBpe(TEXTS, options));
});

Deno.test("impossible vocabulary sizes and repeated special tokens are refused", () => {
  assert.throws(() => trainByteLevelBpe(["x"], { vocabSize: 100 }), RangeError);
  assert.throws(
    () => trainByteLevelBpe(["x"], { vocabSize: 257, specialTokens: ["[A]", "[B]"] }),
    RangeError,
  );
  assert.throws(
    () => trainByteLevelBpe(["x"], { vocabSize: 300, specialTokens: ["[A]", "[A]"] }),
    RangeError,
  );
});
