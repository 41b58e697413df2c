import assert from "node:assert/strict";
import {
  checkRecordsFit,
  Collator,
  encodePromptPartA,
  exampleRng,
  minimumLength,
  type Objective,
} from "../lib/collate/collator.ts";
import type { CollatedExample } from "../lib/collate/example.ts";
import { prefixLength, type TokenizedRecord, tokenizeRecord } from "../lib/collate/tokenize.ts";
import type { EntityEntry, Segment, TextRecord } from "../lib/data/types.ts";
import { InputError } from "../lib/errors.ts";
import { Rng } from "../lib/random.ts";
import { recordsSha256 } from "../lib/train/data.ts";
import { type SpecialIds, TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { fileURLToPath } from "node:url";

const FIXTURE = fileURLToPath(new URL("../fixtures/tokenizer/tokenizer.json", import.meta.url));
const tokenizer = await TextTokenizer.load(FIXTURE);
/**
 * The fixture with a prefix its post-processor puts before every text, as Llama's `<s>` (and, as
 * GLM-4's `[gMASK]<sop>`, one of the method's own tokens): same ids, same special tokens.
 */
const prefixed = (() => {
  const json = JSON.parse(Deno.readTextFileSync(FIXTURE));
  json.added_tokens.push({ id: 1103, content: "<s>", special: true });
  json.post_processor = {
    type: "Sequence",
    processors: [{ type: "ByteLevel" }, {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, {
        SpecialToken: { id: "[gMASK]", type_id: 0 },
      }, { Sequence: { id: "A", type_id: 0 } }],
    }],
  };
  return TextTokenizer.fromJson(json, "prefixed");
})();
/** Each test below runs with both tokenizers. */
const TOKENIZERS = [
  { tokenizer, label: "" },
  { tokenizer: prefixed, label: " (with the tokenizer's prefix)" },
];
const POOL: string[] = (JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/collate/entities.json", import.meta.url)),
) as EntityEntry[]).map((e) => e.entity);
const S = tokenizer.special;

const WORDS = [
  "the",
  "user",
  "bought",
  "and",
  "a",
  "soft",
  "brush",
  "for",
  "hair",
  "skin",
  "cream",
  "again",
  "with",
  "likes",
  "this",
  "month",
  "great",
  "Long-term",
  "preferences",
];
const STOPS = [".", "!", "?", ",", ":", ".\n", "\n"];

/** A random document: text and entities alternating (sometimes two entities in a row). */
function randomDocument(rng: Rng, id: string): TextRecord {
  const segments: Segment[] = [];
  const n = 6 + rng.int(40);
  for (let i = 0; i < n; i++) {
    if (i % 2 === 1 || rng.float() < 0.1) {
      segments.push({ entity: POOL[rng.int(POOL.length)], kind: "item" });
      continue;
    }
    let text = i === 0 ? "" : " ";
    const words = 1 + rng.int(12);
    for (let w = 0; w < words; w++) {
      text += (w > 0 ? " " : "") + WORDS[rng.int(WORDS.length)];
      if (rng.float() < 0.2) text += STOPS[rng.int(STOPS.length)];
    }
    segments.push({ text: text + " " });
  }
  return { id, task: "profile", template: "t", split: "train", user: "u", segments };
}

const documents = (t: TextTokenizer): TokenizedRecord[] =>
  Array.from(
    { length: 300 },
    (_, i) => tokenizeRecord(t, randomDocument(Rng.derive(99, "doc", i), `doc${i}`)),
  );
const DOCUMENTS = documents(tokenizer);
const DOCUMENTS_PREFIXED = documents(prefixed);

const unitTokens = (r: TokenizedRecord, s: number, e: number) => r.unitStart[e] - r.unitStart[s];

/** Part A and B rebuilt token by token from the spans the example reports (reference). */
function reference(record: TokenizedRecord, keep: number, spans: number[][], mask: number) {
  type Tok = { id: number; inter: number; intra: number; label: number; unit: number };
  const partA: Tok[] = [];
  for (const id of record.prefix ?? []) {
    partA.push({ id, inter: partA.length, intra: 0, label: -100, unit: -1 });
  }
  const maskAt = new Map<number, number>();
  const sorted = [...spans].sort((a, b) => a[0] - b[0]);
  let u = 0;
  while (u < keep) {
    const span = sorted.find((s) => s[0] === u);
    if (span) {
      maskAt.set(span[0], partA.length);
      partA.push({ id: mask, inter: partA.length, intra: 0, label: -100, unit: -1 });
      u = span[1];
      continue;
    }
    for (let t = record.unitStart[u], k = 1; t < record.unitStart[u + 1]; t++, k++) {
      const intra = record.unitEntity[u] ? k : 0;
      partA.push({ id: record.ids[t], inter: partA.length, intra, label: -100, unit: u });
    }
    u++;
  }
  const partB: Tok[] = [];
  for (const [s, e] of spans) {
    const m = maskAt.get(s)!;
    const tokens: Tok[] = [{ id: S.sop, inter: m, intra: 1, label: 0, unit: -1 }];
    for (let v = s; v < e; v++) {
      for (let t = record.unitStart[v], k = 2; t < record.unitStart[v + 1]; t++, k++) {
        tokens.push({ id: record.ids[t], inter: m, intra: k, label: 0, unit: v });
      }
    }
    tokens.forEach((tok, i) => tok.label = i + 1 < tokens.length ? tokens[i + 1].id : S.eop);
    partB.push(...tokens);
  }
  return { partA, all: [...partA, ...partB] };
}

function spansOf(example: CollatedExample): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < example.spans.length; i += 2) {
    out.push([example.spans[i], example.spans[i + 1]]);
  }
  return out;
}

const MASK_OF = (s: SpecialIds, objective: string) =>
  objective === "entity" || objective === "sequence"
    ? s.mask
    : objective === "sentence"
    ? s.smask
    : s.gmask;

/** Checks every rule of docs/method.md sections 5 and 6 on one document example. */
function checkDocument(
  record: TokenizedRecord,
  example: CollatedExample,
  options: { shuffled?: boolean; maxLength?: number } = {},
) {
  const spans = spansOf(example);
  let keep = 0;
  for (const u of example.units) keep = Math.max(keep, u + 1);
  assert.ok(spans.length >= 1);
  const ordered = [...spans].sort((a, b) => a[0] - b[0]);
  if (!options.shuffled) assert.deepEqual(spans, ordered, "spans in chronological order");
  for (const [s, e] of spans) assert.ok(0 <= s && s < e && e <= keep);
  for (let i = 1; i < ordered.length; i++) assert.ok(ordered[i][0] >= ordered[i - 1][1]);

  const tokens = unitTokens(record, 0, keep);
  const masked = spans.reduce((sum, [s, e]) => sum + unitTokens(record, s, e), 0);
  const largest = Math.max(...spans.map(([s, e]) => unitTokens(record, s, e)));
  if (example.objective === "entity") {
    for (let i = 1; i < ordered.length; i++) {
      assert.ok(ordered[i][0] > ordered[i - 1][1], "an unmasked unit between entity spans");
    }
    assert.ok(masked >= 0.15 * tokens, `coverage ${masked}/${tokens}`);
    assert.ok(masked - largest < 0.15 * tokens, "only the last span overshoots");
  } else if (example.objective === "sequence") {
    // Every entity after the first k (1 <= k < m) is its own span; nothing else is masked.
    const entities: number[] = [];
    for (let u = 0; u < keep; u++) if (record.unitEntity[u] === 1) entities.push(u);
    const k = entities.length - spans.length;
    assert.ok(k >= 1 && k < entities.length, `kept ${k} of ${entities.length} entities`);
    assert.deepEqual(spans, entities.slice(k).map((u) => [u, u + 1]));
  } else if (example.objective === "sentence") {
    const sentence = record.unitSentence;
    for (const [s, e] of spans) {
      assert.equal(sentence[s], sentence[e - 1], "a span is one sentence");
      assert.ok(s === 0 || sentence[s - 1] !== sentence[s], "a span starts its sentence");
      assert.ok(e === keep || sentence[e] !== sentence[e - 1], "a span ends its sentence");
    }
    const sentences = new Set(Array.from(sentence.subarray(0, keep))).size;
    assert.ok(masked >= 0.15 * tokens || spans.length === sentences - 1);
    assert.ok(masked - largest < 0.15 * tokens);
    if (sentences > 1) assert.ok(spans.length < sentences, "one sentence stays");
  } else {
    assert.equal(example.objective, "document");
    assert.equal(spans.length, 1);
    const [[s, e]] = spans;
    assert.equal(e, keep);
    assert.ok(e - s >= Math.ceil(keep / 2) && e - s <= keep - 1, `document span ${e - s}/${keep}`);
  }
  // Every unit that appears, appears whole (no entity is ever split).
  const seen = new Map<number, number>();
  for (const u of example.units) if (u >= 0) seen.set(u, (seen.get(u) ?? 0) + 1);
  for (let u = 0; u < keep; u++) assert.equal(seen.get(u), unitTokens(record, u, u + 1));

  const ref = reference(record, keep, spans, MASK_OF(S, example.objective));
  assert.equal(example.sep, ref.partA.length);
  assert.equal(example.length, ref.all.length);
  assert.deepEqual(Array.from(example.inputIds), ref.all.map((t) => t.id));
  assert.deepEqual(Array.from(example.inter), ref.all.map((t) => t.inter));
  assert.deepEqual(Array.from(example.intra), ref.all.map((t) => t.intra));
  assert.deepEqual(Array.from(example.labels), ref.all.map((t) => t.label));
  assert.deepEqual(Array.from(example.units), ref.all.map((t) => t.unit));
  if (options.maxLength !== undefined) assert.ok(example.length <= options.maxLength);
}

for (const objective of ["entity", "sentence", "document", "sequence"] as Objective[]) {
  Deno.test(`${objective}-level examples keep every rule over random documents and seeds`, () => {
    const collator = new Collator(S, { objective });
    let masked = 0, total = 0;
    for (const docs of [DOCUMENTS, DOCUMENTS_PREFIXED]) {
      for (let i = 0; i < docs.length; i++) {
        for (const seed of [1, 2, 3]) {
          const example = collator.collate(docs[i], exampleRng(seed, 0, i));
          assert.equal(example.objective, objective);
          checkDocument(docs[i], example);
          for (const [s, e] of spansOf(example)) masked += unitTokens(docs[i], s, e);
          total += docs[i].ids.length;
        }
      }
    }
    if (objective === "entity" || objective === "sentence") {
      // Near 15%: at least 15% and no more than the overshoot of the last span allows.
      assert.ok(masked / total >= 0.15 && masked / total < 0.3, `coverage ${masked / total}`);
    }
  });
}

Deno.test("document spans cover the whole range from half to all but one unit", () => {
  const collator = new Collator(S, { objective: "document" });
  const record = DOCUMENTS.find((r) => r.promptUnits >= 20 && r.promptUnits <= 40)!;
  const lengths = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const [s, e] = collator.collate(record, new Rng(i)).spans;
    lengths.add(e - s);
  }
  const units = record.promptUnits;
  assert.equal(Math.min(...lengths), Math.ceil(units / 2));
  assert.equal(Math.max(...lengths), units - 1);
  assert.equal(lengths.size, units - Math.ceil(units / 2));
});

/** A document with 8 to 16 entities, and its entity count. */
function documentOfEight(): [TokenizedRecord, number] {
  const count = (r: TokenizedRecord) => r.unitEntity.reduce((sum, e) => sum + e, 0);
  const record = DOCUMENTS.find((r) => count(r) >= 8 && count(r) <= 16)!;
  return [record, count(record)];
}

Deno.test("sequence-level spans keep 1 to m-1 entities in part A, every count drawn", () => {
  const collator = new Collator(S, { objective: "sequence" });
  const [record, m] = documentOfEight();
  const kept = new Set<number>();
  for (let i = 0; i < 1000; i++) {
    kept.add(m - collator.collate(record, new Rng(i)).spans.length / 2);
  }
  assert.deepEqual([...kept].sort((a, b) => a - b), Array.from({ length: m - 1 }, (_, i) => i + 1));
  // A document of one entity cannot keep one and mask another: it gets the entity objective.
  const one = tokenizeRecord(tokenizer, {
    id: "one",
    task: "profile",
    template: "p",
    split: "train",
    user: "u",
    segments: [{ text: "Bought " }, { entity: POOL[0], kind: "item" }, { text: " today." }],
  });
  assert.equal(collator.collate(one, new Rng(1)).objective, "entity");
});

Deno.test("sequenceMaxKeep caps the entities kept in part A (1: every entity after the first)", () => {
  const [record, m] = documentOfEight();
  for (const cap of [1, 3]) {
    const collator = new Collator(S, { objective: "sequence", sequenceMaxKeep: cap });
    const kept = new Set<number>();
    for (let i = 0; i < 300; i++) {
      const example = collator.collate(record, new Rng(i));
      checkDocument(record, example);
      kept.add(m - example.spans.length / 2);
    }
    assert.deepEqual([...kept].sort((a, b) => a - b), Array.from({ length: cap }, (_, i) => i + 1));
  }
  // No cap draws as before: the same examples as the default collator.
  const plain = new Collator(S, { objective: "sequence" });
  const huge = new Collator(S, { objective: "sequence", sequenceMaxKeep: 1000 });
  for (let i = 0; i < 20; i++) {
    assert.deepEqual(huge.collate(record, new Rng(i)), plain.collate(record, new Rng(i)));
  }
  assert.throws(() => new Collator(S, { objective: "sequence", sequenceMaxKeep: 0 }), RangeError);
  assert.throws(() => new Collator(S, { objective: "sequence", sequenceMaxKeep: 1.5 }), RangeError);
});

Deno.test("the same seed gives the same example, other seeds other examples", () => {
  const collator = new Collator(S, { objective: "mix" });
  let differ = 0;
  for (let i = 0; i < 50; i++) {
    const a = collator.collate(DOCUMENTS[i], exampleRng(7, 0, i));
    const b = new Collator(S, { objective: "mix" }).collate(DOCUMENTS[i], exampleRng(7, 0, i));
    assert.deepEqual(a, b);
    const c = collator.collate(DOCUMENTS[i], exampleRng(7, 1, i));
    if (JSON.stringify(Array.from(c.inputIds)) !== JSON.stringify(Array.from(a.inputIds))) differ++;
  }
  assert.ok(differ > 40, `${differ} of 50 differ`);
});

Deno.test("mixing draws the objectives with the configured probabilities", () => {
  const collator = new Collator(S, { mix: { entity: 0.5, sentence: 0.25, document: 0.25 } });
  const counts: Record<string, number> = { entity: 0, sentence: 0, document: 0 };
  for (let i = 0; i < 3000; i++) {
    const example = collator.collate(DOCUMENTS[i % DOCUMENTS.length], exampleRng(5, 0, i));
    counts[example.objective]++;
    if (i < 300) checkDocument(DOCUMENTS[i % DOCUMENTS.length], example);
  }
  assert.ok(Math.abs(counts.entity / 3000 - 0.5) < 0.04, JSON.stringify(counts));
  assert.ok(Math.abs(counts.sentence / 3000 - 0.25) < 0.04, JSON.stringify(counts));
  assert.ok(Math.abs(counts.document / 3000 - 0.25) < 0.04, JSON.stringify(counts));
  const only = new Collator(S, { mix: { entity: 0, sentence: 1, document: 0 } });
  assert.equal(only.collate(DOCUMENTS[0], new Rng(1)).objective, "sentence");
});

Deno.test("shuffled spans (ablation) still pair every span with its own mask", () => {
  const collator = new Collator(S, { objective: "entity", shuffleSpans: true });
  let reordered = 0;
  for (let i = 0; i < DOCUMENTS.length; i++) {
    const example = collator.collate(DOCUMENTS[i], exampleRng(3, 0, i));
    checkDocument(DOCUMENTS[i], example, { shuffled: true });
    const spans = spansOf(example);
    if (spans.some((s, j) => j > 0 && s[0] < spans[j - 1][0])) reordered++;
  }
  assert.ok(reordered > 50);
});

Deno.test("documents are truncated at the end to the maximum length, never inside a unit", () => {
  for (const objective of ["entity", "sentence", "document", "mix"] as const) {
    for (const [i, record] of [...DOCUMENTS, ...DOCUMENTS_PREFIXED].entries()) {
      const rng = new Rng(i);
      const maxLength = prefixLength(record) + record.unitStart[1] + 2 +
        rng.int(record.ids.length + 10);
      const collator = new Collator(S, { objective, maxLength });
      const example = collator.collate(record, exampleRng(11, 0, i));
      checkDocument(record, example, { maxLength });
    }
  }
});

/** A sequential training prompt of `segments` whose target is the item `target`. */
function itemPrompt(
  id: string,
  segments: Segment[],
  target: string,
  t: TextTokenizer = tokenizer,
): TokenizedRecord {
  return tokenizeRecord(t, {
    id,
    task: "sequential",
    template: "t",
    split: "train",
    user: "u",
    segments,
    target: [{ entity: target, kind: "item" }],
  });
}

Deno.test("task prompts lose their oldest history first; question and target stay whole", () => {
  for (const { tokenizer: t } of TOKENIZERS) {
    const rng = new Rng(4);
    for (let i = 0; i < 200; i++) {
      const history: Segment[] = [{ text: "User u1 has bought " }];
      const n = 1 + rng.int(12);
      for (let k = 0; k < n; k++) {
        if (k > 0) history.push({ text: k === n - 1 ? " and " : ", " });
        history.push({ entity: POOL[rng.int(POOL.length)], kind: "item" });
      }
      const question = " in this order. What will the user buy next? Answer:";
      const record = itemPrompt(
        `p${i}`,
        [...history, { text: question }, { answer: true }],
        POOL[rng.int(POOL.length)],
        t,
      );
      const units = record.unitStart.length - 1;
      let lastEntity = 0;
      for (let u = 0; u < record.promptUnits; u++) if (record.unitEntity[u]) lastEntity = u + 1;
      const prefix = prefixLength(record);
      const fixed = prefix + unitTokens(record, lastEntity, units) + 2;
      const maxLength = fixed + rng.int(record.ids.length - fixed + 6);
      const example = new Collator(S, { maxLength }).collate(record, new Rng(0));
      assert.ok(example.length <= maxLength);
      const kept = Array.from(example.units.subarray(0, example.sep)).filter((u) => u >= 0);
      const from = kept[0];
      // Part A is the prompt's units from `from` on, whole and in order, then the mask.
      assert.deepEqual(
        [...new Set(kept)],
        Array.from({ length: record.promptUnits - from }, (_, k) => from + k),
      );
      assert.ok(from <= lastEntity);
      // Dropping one unit fewer would not fit.
      if (from > 0) {
        assert.ok(prefix + unitTokens(record, from - 1, units) + 2 > maxLength);
      }
      assert.equal(example.inputIds[example.sep - 1], S.mask);
      assert.deepEqual(
        Array.from(example.inputIds.subarray(example.sep + 1)),
        Array.from(record.ids.subarray(record.unitStart[record.promptUnits])),
      );
      assert.equal(example.labels[example.length - 1], S.eop);
      assert.deepEqual(example.inputIds.slice(0, prefix), record.prefix ?? new Int32Array(0));
    }
  }
});

Deno.test("prompts with ages lose their oldest history items first, in any listing order", () => {
  let cut = 0, listedNewestFirst = 0, allHistoryGone = 0;
  for (const { tokenizer: t } of TOKENIZERS) {
    const rng = new Rng(9);
    for (let i = 0; i < 300; i++) {
      const n = 1 + rng.int(10);
      const newestFirst = rng.float() < 0.5;
      // A rating-3-like prompt names an item (no age) before the history; others open with text.
      const about = rng.float() < 0.3;
      const segments: Segment[] = [{ text: "Predict for user u3" }];
      if (about) segments.push({ entity: POOL[rng.int(POOL.length)], kind: "item" });
      segments.push({ text: newestFirst ? ", most recent first: " : ", oldest first: " });
      for (let k = 0; k < n; k++) {
        if (k > 0) segments.push({ text: k === n - 1 ? " and " : "; " });
        const age = newestFirst ? k : n - 1 - k;
        segments.push({ entity: POOL[rng.int(POOL.length)], kind: "item", age });
      }
      segments.push({ text: ". What comes next?" }, { answer: true });
      const record = itemPrompt(`a${i}`, segments, POOL[rng.int(POOL.length)], t);
      const units = record.unitStart.length - 1;
      const age = record.unitAge!;
      const history: number[] = [];
      for (let u = 0; u < record.promptUnits; u++) if (age[u] >= 0) history.push(u);
      assert.equal(history.length, n);
      const first = history[0], last = history[n - 1];
      const fixed = prefixLength(record) + unitTokens(record, last + 1, units) + 2;
      const maxLength = fixed + rng.int(record.ids.length - fixed + 6);
      const example = new Collator(S, { maxLength }).collate(record, new Rng(0));
      assert.ok(example.length <= maxLength);
      const kept = new Set(
        Array.from(example.units.subarray(0, example.sep)).filter((u) => u >= 0),
      );
      const keptHistory = history.filter((u) => kept.has(u));
      // The history kept is the newest items, and within the list one contiguous run of units
      // from an entity to an entity: no separator left dangling.
      const oldestKept = Math.max(-1, ...keptHistory.map((u) => age[u]));
      assert.equal(keptHistory.length, oldestKept + 1);
      if (keptHistory.length > 0) {
        const runStart = keptHistory[0], runEnd = keptHistory[keptHistory.length - 1];
        for (let u = first; u <= last; u++) {
          assert.equal(kept.has(u), u >= runStart && u <= runEnd, `record a${i} unit ${u}`);
        }
        // Everything around the history stays while any of it is kept.
        for (let u = 0; u < first; u++) assert.ok(kept.has(u));
      } else allHistoryGone++;
      for (let u = last + 1; u < record.promptUnits; u++) assert.ok(kept.has(u));
      if (keptHistory.length < n) {
        cut++;
        if (newestFirst) listedNewestFirst++;
        // Minimal: the dropped run next to the youngest dropped item would not have fitted.
        const youngest = history.find((u) => age[u] === oldestKept + 1)!;
        let s = youngest, e = youngest + 1;
        while (s > 0 && !kept.has(s - 1)) s--;
        while (e < record.promptUnits && !kept.has(e)) e++;
        if (keptHistory.length > 0) {
          assert.ok(example.length + unitTokens(record, s, e) > maxLength);
        }
      }
      // Inference cuts alike.
      const reserve = unitTokens(record, record.promptUnits, units) + 1;
      const partA = encodePromptPartA(record, S, { maxLength, reserve });
      assert.deepEqual(partA.units, example.units.slice(0, example.sep));
      assert.deepEqual(partA.inter, example.inter.slice(0, example.sep));
    }
  }
  assert.ok(cut > 100 && listedNewestFirst > 40 && allHistoryGone > 5, `${cut} ${allHistoryGone}`);
});

Deno.test("an age that is not a whole number >= 0 is an input error naming the record", () => {
  for (const age of [-1, 1.5, "2", null]) {
    assert.throws(
      () =>
        tokenizeRecord(tokenizer, {
          id: "bad-age",
          task: "sequential",
          template: "t",
          split: "train",
          user: "u",
          segments: [{ text: "Had " }, { entity: POOL[0], kind: "item", age: age as number }, {
            answer: true,
          }],
          target: [{ entity: POOL[1], kind: "item" }],
        }),
      (error: Error) =>
        error instanceof InputError &&
        /record "bad-age": entity .* has age .*; an age is a whole number >= 0/.test(error.message),
    );
  }
});

Deno.test("with itemRoom, a too-long item prompt is cut alike whatever its item, in training and inference", () => {
  const itemRoom = Math.max(...POOL.map((e) => tokenizer.encode(" " + e).length));
  let cut = 0;
  for (const { tokenizer: t, label } of TOKENIZERS) {
    for (let i = 0; i < 60; i++) {
      const rng = new Rng(300 + i);
      const segments: Segment[] = [{ text: "User u9 bought " }];
      const n = 2 + rng.int(10);
      for (let k = 0; k < n; k++) {
        if (k > 0) segments.push({ text: ", " });
        segments.push({ entity: POOL[rng.int(POOL.length)], kind: "item", age: n - 1 - k });
      }
      segments.push({ text: ". Next?" }, { answer: true });
      const maxLength = 20 + rng.int(60);
      const layouts = new Set<string>();
      for (const target of POOL.slice(0, 5)) {
        const record = itemPrompt(`r${i}`, segments, target, t);
        let example: CollatedExample;
        try {
          example = new Collator(S, { maxLength, itemRoom }).collate(record, new Rng(0));
        } catch {
          continue;
        }
        const partA = encodePromptPartA(record, S, { maxLength, reserve: 1 + itemRoom });
        assert.deepEqual(partA.ids, example.inputIds.slice(0, example.sep));
        layouts.add(Array.from(partA.units).join(","));
        const promptTokens = prefixLength(record) + record.unitStart[record.promptUnits];
        if (partA.units.length - 1 < promptTokens) cut++;
      }
      assert.ok(layouts.size <= 1, `record r${i}${label}: part A depends on the item`);
    }
  }
  assert.ok(cut > 20, `only ${cut} cut prompts`);
});

Deno.test("records that cannot fit or cannot be trained on are input errors", () => {
  const doc = tokenizeRecord(tokenizer, {
    id: "doc-long-entity",
    task: "profile",
    template: "t",
    split: "train",
    user: "u",
    segments: [{ entity: POOL[1], kind: "item" }, { text: " is nice." }],
  });
  assert.ok(doc.unitStart[1] > 3);
  const tooShort = new Collator(S, { maxLength: doc.unitStart[1] + 1 });
  assert.throws(() => tooShort.collate(doc, new Rng(1)), (error: Error) => {
    assert.ok(error instanceof InputError);
    assert.match(error.message, /record "doc-long-entity": its first unit has \d+ tokens/);
    return true;
  });
  assert.equal(
    new Collator(S, { maxLength: doc.unitStart[1] + 2 }).collate(doc, new Rng(1)).length,
    doc.unitStart[1] + 2,
  );
  const prompt = tokenizeRecord(tokenizer, {
    id: "q1",
    task: "rating",
    template: "t",
    split: "train",
    user: "u",
    segments: [{ text: "How would user u2 rate " }, { entity: POOL[0], kind: "item" }, {
      text: "? Answer with a number from 1 to 5:",
    }],
    target: [{ text: "4" }],
  });
  // The question after the item and the target must stay: one token less than they need fails.
  const item = prompt.unitEntity.indexOf(1);
  const needed = unitTokens(prompt, item + 1, prompt.unitStart.length - 1) + 2;
  const fits = new Collator(S, { maxLength: needed }).collate(prompt, new Rng(1));
  assert.equal(fits.length, needed);
  const tight = new Collator(S, { maxLength: needed - 1 });
  assert.throws(() => tight.collate(prompt, new Rng(1)), /record "q1": needs \d+ tokens even/);
  const noTarget = tokenizeRecord(tokenizer, {
    id: "q2",
    task: "rating",
    template: "t",
    split: "train",
    user: "u",
    segments: [{ text: "Rate it:" }, { answer: true }],
  });
  assert.throws(
    () => new Collator(S).collate(noTarget, new Rng(1)),
    /record "q2": has an answer marker but no target/,
  );
  // A task prompt without a marker or a target was trained on as a document; a profile
  // document, or a record of no task with an answer, still is one. Refused before training too.
  const bare = (task: string) =>
    tokenizeRecord(
      tokenizer,
      { id: "q3", task, segments: [{ text: "Rate it. Now." }] } as TextRecord,
    );
  const message = /record "q3": a rating prompt without a target \(only profile documents/;
  assert.throws(() => new Collator(S).collate(bare("rating"), new Rng(1)), message);
  assert.throws(
    () => checkRecordsFit([bare("rating")], 64, { what: "training records", lengthFrom: "x" }),
    message,
  );
  for (const task of ["profile", "notes"]) {
    assert.notEqual(new Collator(S).collate(bare(task), new Rng(1)).objective, "task");
  }
});

Deno.test("inference part A is the training part A: the prompt with the mask at the answer", () => {
  for (const { tokenizer: t } of TOKENIZERS) {
    for (let i = 0; i < 50; i++) {
      const rng = new Rng(100 + i);
      const items = Array.from({ length: 1 + rng.int(10) }, () => POOL[rng.int(POOL.length)]);
      const segments: Segment[] = [{ text: "User u7 bought " }];
      items.forEach((entity, k) => {
        if (k > 0) segments.push({ text: ", " });
        segments.push({ entity, kind: "item" });
      });
      segments.push({ text: ". Next?" });
      const record = tokenizeRecord(t, {
        id: `q${i}`,
        task: "sequential",
        template: "t",
        split: "test",
        user: "u7",
        segments,
        target: [{ entity: POOL[rng.int(POOL.length)], kind: "item" }],
      });
      const maxLength = 12 + rng.int(80);
      const reserve = unitTokens(record, record.promptUnits, record.unitStart.length - 1) + 1;
      let training: CollatedExample;
      try {
        training = new Collator(S, { maxLength }).collate(record, new Rng(0));
      } catch {
        assert.throws(() => encodePromptPartA(record, S, { maxLength, reserve }), InputError);
        continue;
      }
      const partA = encodePromptPartA(record, S, { maxLength, reserve });
      assert.equal(partA.length, training.sep);
      assert.deepEqual(partA.ids, training.inputIds.slice(0, training.sep));
      assert.deepEqual(partA.inter, training.inter.slice(0, training.sep));
      assert.deepEqual(partA.intra, training.intra.slice(0, training.sep));
      assert.deepEqual(partA.units, training.units.slice(0, training.sep));
      assert.equal(partA.maskIndex, training.inter[training.sep]);
      assert.equal(partA.ids[partA.maskIndex], S.mask);
    }
    const noTarget = tokenizeRecord(t, {
      id: "free",
      task: "sequential",
      template: "t",
      split: "test",
      user: "u",
      segments: [{ text: "Recommend something like" }, { entity: POOL[2], kind: "item" }, {
        answer: true,
      }, { text: " please." }],
    });
    // The answer's [gMASK], not the one of the prefix (GLM-4's tokenizer starts every text so).
    const partA = encodePromptPartA(noTarget, S, { mask: S.gmask });
    assert.equal(partA.ids[partA.maskIndex], S.gmask);
    assert.equal(t.decode(partA.ids.subarray(partA.maskIndex + 1)), " please.");
    assert.deepEqual(partA.ids.slice(0, prefixLength(noTarget)), t.prefix);
  }
});

Deno.test("the tokenizer's prefix comes first, never cut, and counts toward the maximum length", () => {
  assert.deepEqual([...prefixed.prefix], [1103, S.gmask]);
  assert.equal(tokenizer.prefix.length, 0);
  const text: Segment[] = [{ entity: POOL[1], kind: "item" }, { text: " is nice." }];
  const docRecord = { id: "d", task: "profile", segments: text } as TextRecord;
  const doc = tokenizeRecord(prefixed, docRecord);
  assert.deepEqual(doc.ids, tokenizeRecord(tokenizer, docRecord).ids); // the prefix is beside them
  // The training data's hash (resume, ranks) sees it.
  assert.notEqual(recordsSha256([doc]), recordsSha256([tokenizeRecord(tokenizer, docRecord)]));
  const first = doc.unitStart[1];
  assert.throws(
    () => new Collator(S, { maxLength: first + 3 }).collate(doc, new Rng(1)),
    /record "d": its first unit has \d+ tokens, more than the maximum length \d+ allows with a mask and \[S\] and the 2 token\(s\) the tokenizer puts first/,
  );
  const fits = new Collator(S, { maxLength: first + 4 }).collate(doc, new Rng(1));
  assert.equal(fits.length, first + 4);
  assert.deepEqual([...fits.inputIds.subarray(0, 2)], [1103, S.gmask]);
  assert.deepEqual([...fits.inter.subarray(0, 3)], [0, 1, 2]);
  const prompt = tokenizeRecord(prefixed, {
    id: "q1",
    task: "rating",
    segments: [{ text: "How would user u2 rate " }, { entity: POOL[0], kind: "item" }, {
      text: "? Answer with a number from 1 to 5:",
    }],
    target: [{ text: "4" }],
  } as TextRecord);
  const item = prompt.unitEntity.indexOf(1);
  const needed = 2 + unitTokens(prompt, item + 1, prompt.unitStart.length - 1) + 2;
  assert.equal(minimumLength(prompt), needed);
  assert.equal(new Collator(S, { maxLength: needed }).collate(prompt, new Rng(1)).length, needed);
  assert.throws(
    () => new Collator(S, { maxLength: needed - 1 }).collate(prompt, new Rng(1)),
    /needs \d+ tokens even without its history \(\d+ for the instruction, \d+ for the mask and answer, 2 the tokenizer puts first\)/,
  );
  assert.throws(
    () => checkRecordsFit([prompt], needed - 1, { what: "records", lengthFrom: "x" }),
    new RegExp(`all fit from ${needed} tokens`),
  );
});
