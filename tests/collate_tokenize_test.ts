import assert from "node:assert/strict";
import { Tokenizer } from "@huggingface/tokenizers";
import {
  encodeEntity,
  splitSentences,
  type TokenizedRecord,
  tokenizeRecord,
} from "../lib/collate/tokenize.ts";
import type { TextRecord } from "../lib/data/types.ts";
import { InputError } from "../lib/errors.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { fileURLToPath } from "node:url";

const FIXTURE = fileURLToPath(new URL("../fixtures/tokenizer/tokenizer.json", import.meta.url));
const tokenizer = await TextTokenizer.load(FIXTURE);
const reference = new Tokenizer(JSON.parse(await Deno.readTextFile(FIXTURE)), {});
const RECORDS: TextRecord[] = (await Deno.readTextFile(
  new URL("../fixtures/collate/train.jsonl", import.meta.url),
)).trim().split("\n").map((line) => JSON.parse(line));

const encodeRef = (text: string) => reference.encode(text, { add_special_tokens: false }).ids;

/** The record's units as decoded text pieces grouped by sentence, plus entity flags. */
function view(record: TokenizedRecord) {
  const units: { text: string; entity: boolean; sentence: number }[] = [];
  for (let u = 0; u + 1 < record.unitStart.length; u++) {
    const ids = record.ids.subarray(record.unitStart[u], record.unitStart[u + 1]);
    units.push({
      text: tokenizer.decode(ids),
      entity: record.unitEntity[u] === 1,
      sentence: record.unitSentence[u],
    });
  }
  return units;
}

Deno.test("sentences end after . ! ? before white space or the end, and at line breaks", () => {
  const cut = (text: string) => splitSentences(text).map((p) => [p.text, p.endsSentence]);
  assert.deepEqual(cut("Nice. Cheap!\nWould buy"), [
    ["Nice.", true],
    [" Cheap!\n", true],
    ["Would buy", false],
  ]);
  assert.deepEqual(cut("Is it 2.5 oz? Yes."), [["Is it 2.5 oz?", true], [" Yes.", true]]);
  assert.deepEqual(cut("Done.  \n\n  Next"), [["Done.  \n\n", true], ["  Next", false]]);
  assert.deepEqual(cut("line one\nline two\n"), [["line one\n", true], ["line two\n", true]]);
  assert.deepEqual(cut("Wow!! ok. "), [["Wow!!", true], [" ok.", true], [" ", false]]);
  assert.deepEqual(cut("no end"), [["no end", false]]);
  assert.deepEqual(cut("a.b"), [["a.b", false]]);
  for (const text of ["Nice. Cheap!\nWould buy", "x. \n y", "..."]) {
    assert.equal(splitSentences(text).map((p) => p.text).join(""), text);
  }
});

Deno.test("a sequential prompt becomes separate tokens, whole entities and its target", () => {
  const record = tokenizeRecord(tokenizer, RECORDS[2]);
  const units = view(record);
  // Hand-written expectation of the pieces: text before an entity loses its trailing space
  // (the entity's leading space stands for it); the target is " " + entity.
  const entities = units.filter((u) => u.entity).map((u) => u.text);
  assert.deepEqual(entities, [
    " Glowberry Rose Hand Cream, 2.5 oz",
    " Dr. Fern's Tea Tree Face Wash",
    " Saltmarsh Sea Clay Mask",
    " Lumen Vitamin C Serum 30ml",
  ]);
  const prompt = units.slice(0, record.promptUnits).map((u) => u.text).join("");
  assert.equal(
    prompt,
    "User u1 has bought Glowberry Rose Hand Cream, 2.5 oz, Dr. Fern's Tea Tree Face Wash and" +
      " Saltmarsh Sea Clay Mask in this order. What will the user buy next? Answer:",
  );
  assert.equal(record.answerAt, record.promptUnits);
  assert.ok(record.hasTarget && record.answerMarked);
  assert.equal(units.length - record.promptUnits, 1);
  // Text pieces are encoded on their own, each token a unit: same ids as encoding the piece.
  const firstEntity = units.findIndex((u) => u.entity);
  assert.deepEqual(
    Array.from(record.ids.subarray(0, record.unitStart[firstEntity])),
    encodeRef("User u1 has bought"),
  );
  for (let u = 0; u < firstEntity; u++) {
    assert.equal(record.unitStart[u + 1] - record.unitStart[u], 1);
  }
  // The entity unit holds exactly the canonical entity encoding.
  assert.deepEqual(
    Array.from(
      record.ids.subarray(record.unitStart[firstEntity], record.unitStart[firstEntity + 1]),
    ),
    Array.from(encodeEntity(tokenizer, "Glowberry Rose Hand Cream, 2.5 oz")),
  );
  // Sentences: "... in this order." | " What will the user buy next?" | " Answer:" | target.
  const sentences = new Map<number, string>();
  for (const u of units) sentences.set(u.sentence, (sentences.get(u.sentence) ?? "") + u.text);
  assert.deepEqual([...sentences.values()], [
    "User u1 has bought Glowberry Rose Hand Cream, 2.5 oz, Dr. Fern's Tea Tree Face Wash and" +
    " Saltmarsh Sea Clay Mask in this order.",
    " What will the user buy next?",
    " Answer:",
    " Lumen Vitamin C Serum 30ml",
  ]);
});

Deno.test("a profile document keeps its line breaks and entity punctuation ends no sentence", () => {
  const record = tokenizeRecord(tokenizer, RECORDS[0]);
  assert.ok(!record.hasTarget);
  assert.equal(record.promptUnits, record.unitStart.length - 1);
  const units = view(record);
  const sentences = new Map<number, string>();
  for (const u of units) sentences.set(u.sentence, (sentences.get(u.sentence) ?? "") + u.text);
  assert.deepEqual([...sentences.values()], [
    "User u1 is in the age group 25-34.",
    " They like Skin Care and Makeup.\n",
    "Long-term preferences: Glowberry Rose Hand Cream, 2.5 oz, Dr. Fern's Tea Tree Face Wash" +
    " and Saltmarsh Sea Clay Mask.\n",
    "Medium-term preferences: Lumen Vitamin C Serum 30ml and Velvet Hour Matte Lipstick - Plum!.\n",
    "Short-term preferences: Morning Dew Facial Mist, Glowberry Rose Hand Cream, 2.5 oz, Travel" +
    " Pack.",
  ]);
});

Deno.test("text targets are a space plus the trimmed text, and start a sentence", () => {
  const rating = view(tokenizeRecord(tokenizer, RECORDS[3]));
  assert.equal(rating[rating.length - 1].text, " 4");
  const review = tokenizeRecord(tokenizer, RECORDS[5]);
  const units = view(review);
  const target = units.slice(review.promptUnits);
  assert.equal(target.map((u) => u.text).join(""), " Smells great. Dries fast!\nWould buy again.");
  assert.ok(target.every((u) => !u.entity));
  assert.ok(target[0].sentence > units[review.promptUnits - 1].sentence);
});

Deno.test("an answer marker in the middle records where the mask goes", () => {
  const record = tokenizeRecord(tokenizer, {
    ...RECORDS[2],
    segments: [
      { text: "The next item is " },
      { answer: true },
      { text: ", after " },
      { entity: "Saltmarsh Sea Clay Mask", kind: "item" },
      { text: "." },
    ],
  });
  const units = view(record);
  assert.equal(units.slice(0, record.answerAt).map((u) => u.text).join(""), "The next item is");
  assert.equal(units[record.answerAt].text, ",");
});

Deno.test("a prompt without a marker reads as the one with the marker after its last segment", () => {
  const segments = [
    { text: "User 7 bought " },
    { entity: "Saltmarsh Sea Clay Mask", kind: "item" },
    { text: ". They gave it: " },
  ];
  for (const target of [[{ text: "4" }], undefined]) {
    const base = { ...RECORDS[3], task: "rating" as const, target };
    const marked = tokenizeRecord(tokenizer, {
      ...base,
      segments: [...segments, { answer: true }],
    });
    const unmarked = tokenizeRecord(tokenizer, { ...base, segments });
    assert.deepEqual(unmarked.ids, marked.ids);
    assert.deepEqual(unmarked.unitStart, marked.unitStart);
    assert.equal(unmarked.answerAt, marked.answerAt);
  }
  // A document has no answer: its trailing space stays.
  const doc = tokenizeRecord(tokenizer, {
    ...RECORDS[0],
    task: "profile",
    target: undefined,
    segments: [{ text: "Likes " }, { entity: "Saltmarsh Sea Clay Mask", kind: "item" }, {
      text: ". Often ",
    }],
  });
  assert.ok(view(doc).at(-1)!.text.endsWith(" "));
});

Deno.test("bad records are input errors naming the record", () => {
  const base = RECORDS[2];
  const cases: [Partial<TextRecord> & Record<string, unknown>, RegExp][] = [
    [{ segments: [] }, /record "u1\/seq\/train": has no segments/],
    [{ segments: undefined }, /has no segments/],
    [{ segments: [{ text: "a" }, { picture: "x" }] as never }, /segment 2 is neither/],
    [{ segments: [{ answer: true }, { answer: true }] }, /more than one answer marker/],
    [{ segments: [{ text: "a" }, { entity: "", kind: "item" }] }, /empty entity/],
    [{ target: [] }, /target must be a non-empty list/],
  ];
  for (const [change, pattern] of cases) {
    assert.throws(
      () => tokenizeRecord(tokenizer, { ...base, ...change } as TextRecord),
      (error: Error) => error instanceof InputError && pattern.test(error.message),
      String(pattern),
    );
  }
});
