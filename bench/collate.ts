/**
 * Collation speed: examples per second for 512-token documents (entity-level objective, and the
 * default mix), from already tokenized records, on one core; the same at 1,024 tokens; batching;
 * and, measured on its own, tokenizing textualized records (Amazon Beauty profiles written from
 * ../shared/data, a byte-level BPE trained on its titles; cold cache, then warm).
 *
 * Reference: THUDM/GLM's ConstructBlockStrategy (Python + NumPy) does about 2,200 examples/s at
 * 512 tokens and 1,100 at 1,024 on this class of machine; the target is 10 times that.
 *
 *     deno task bench collate
 *
 * @module
 */

import { makeBatch } from "../lib/collate/batch.ts";
import { Collator, exampleRng, type Objective } from "../lib/collate/collator.ts";
import type { CollatedExample } from "../lib/collate/example.ts";
import { type TokenizedRecord, tokenizeRecord } from "../lib/collate/tokenize.ts";
import type { Segment, TextRecord } from "../lib/data/types.ts";
import { Rng } from "../lib/random.ts";
import { SPECIAL_TOKENS, TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { trainByteLevelBpe } from "../lib/tokenizer/train_bpe.ts";

const SPECIALS = { mask: 50001, smask: 50002, gmask: 50003, sop: 50004, eop: 50005, pad: 50000 };

/**
 * A tokenized profile-like document of exactly `tokens` tokens: runs of 1-6 separate tokens
 * between entities of 4-20 tokens (item titles), a sentence every 4-10 entities.
 */
function syntheticDocument(rng: Rng, tokens: number, id: string): TokenizedRecord {
  const ids: number[] = [],
    unitStart: number[] = [],
    entity: number[] = [],
    sentence: number[] = [];
  let s = 0, sinceStop = 0, stopAfter = 4 + rng.int(7);
  const unit = (length: number, isEntity: boolean) => {
    length = Math.min(length, tokens - ids.length);
    if (length <= 0) return;
    unitStart.push(ids.length);
    entity.push(isEntity ? 1 : 0);
    sentence.push(s);
    for (let k = 0; k < length; k++) ids.push(rng.int(50000));
  };
  while (ids.length < tokens) {
    const run = 1 + rng.int(6);
    for (let k = 0; k < run; k++) unit(1, false);
    unit(4 + rng.int(17), true);
    if (++sinceStop >= stopAfter) {
      unit(1, false);
      s++;
      sinceStop = 0;
      stopAfter = 4 + rng.int(7);
    }
  }
  unitStart.push(ids.length);
  return {
    id,
    ids: Int32Array.from(ids),
    unitStart: Int32Array.from(unitStart),
    unitEntity: Uint8Array.from(entity),
    unitSentence: Int32Array.from(sentence),
    promptUnits: entity.length,
    answerAt: entity.length,
    hasTarget: false,
    answerMarked: false,
  };
}

/** Examples per second collating `records` round-robin for about `seconds`. */
function collateRate(
  records: TokenizedRecord[],
  objective: Objective | "mix",
  seconds: number,
): number {
  const collator = new Collator(SPECIALS, { objective });
  let sink = 0;
  for (let i = 0; i < 2000; i++) {
    sink += collator.collate(records[i % records.length], exampleRng(1, 0, i)).length;
  }
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < seconds * 1000) {
    for (let k = 0; k < 1000; k++, n++) {
      const example = collator.collate(records[n % records.length], exampleRng(1, 0, n));
      sink += example.length;
    }
    elapsed = performance.now() - start;
  }
  if (sink < 0) console.log(sink);
  return n / (elapsed / 1000);
}

async function beautyProfiles(users: number): Promise<{ titles: string[]; records: TextRecord[] }> {
  const base = new URL("../../shared/data/amazon-beauty/", import.meta.url);
  const titleOf = new Map<string, string>();
  for (const line of (await Deno.readTextFile(new URL("items.csv", base))).split("\n").slice(1)) {
    const m = line.match(/^(\d+),[^,]*,(.*)$/);
    if (m) titleOf.set(m[1], m[2].replace(/^"(.*)"$/, "$1").replaceAll('""', '"'));
  }
  const records: TextRecord[] = [];
  const lines = (await Deno.readTextFile(new URL("sequential_data.txt", base))).split("\n");
  for (const line of lines.slice(0, users)) {
    const [user, ...items] = line.trim().split(" ");
    if (!user) continue;
    const segments: Segment[] = [{ text: `User ${user} bought ` }];
    items.forEach((item, k) => {
      if (k > 0) segments.push({ text: k % 4 === 0 ? ".\nThen " : ", " });
      segments.push({ entity: titleOf.get(item) ?? item, kind: "item" });
    });
    segments.push({ text: ". They like it." });
    records.push({ id: user, task: "profile", template: "b", split: "train", user, segments });
  }
  return { titles: [...titleOf.values()], records };
}

/** Runs the benchmark and returns its figures. */
export async function run(): Promise<Record<string, unknown>> {
  const rng = new Rng(2024);
  const docs512 = Array.from({ length: 256 }, (_, i) => syntheticDocument(rng, 512, `d${i}`));
  const docs1024 = Array.from({ length: 256 }, (_, i) => syntheticDocument(rng, 1024, `e${i}`));

  const examplesPerS = collateRate(docs512, "entity", 3);
  const mixPerS = collateRate(docs512, "mix", 2);
  const examples1024PerS = collateRate(docs1024, "entity", 2);

  // Batching 32 collated examples of ~530 tokens into the model's typed arrays.
  const collator = new Collator(SPECIALS, { objective: "entity" });
  const examples: CollatedExample[] = docs512.slice(0, 32).map((d, i) =>
    collator.collate(d, exampleRng(1, 0, i))
  );
  let batches = 0;
  const batchStart = performance.now();
  while (performance.now() - batchStart < 1000) {
    makeBatch(examples, SPECIALS.pad, { multipleOf: 8 });
    batches++;
  }
  const batchExamplesPerS = (batches * 32) / ((performance.now() - batchStart) / 1000);

  // Tokenizing textualized records: cold (every string new to the cache), then warm.
  const { titles, records } = await beautyProfiles(2000);
  const json = trainByteLevelBpe(titles.map((t) => " " + t), {
    vocabSize: 8000,
    specialTokens: [...SPECIAL_TOKENS],
  });
  const tokenizer = TextTokenizer.fromJson(json);
  let t0 = performance.now();
  let tokens = 0;
  for (const record of records) tokens += tokenizeRecord(tokenizer, record).ids.length;
  const coldPerS = records.length / ((performance.now() - t0) / 1000);
  t0 = performance.now();
  for (const record of records) tokenizeRecord(tokenizer, record);
  const warmPerS = records.length / ((performance.now() - t0) / 1000);

  const round = (x: number) => Math.round(x);
  return {
    examples_per_s: round(examplesPerS),
    tokens_per_s: round(examplesPerS * 512),
    mix_examples_per_s: round(mixPerS),
    examples_per_s_1024: round(examples1024PerS),
    batch_examples_per_s: round(batchExamplesPerS),
    tokenize_records_per_s: round(coldPerS),
    tokenize_records_per_s_warm: round(warmPerS),
    tokenize_tokens_per_record: round(tokens / records.length),
    target_examples_per_s: 22000,
    note: "one core; 512-token documents unless named; provisional on a shared machine",
  };
}
