/**
 * The training data stream: a dataset split tokenized once, cut every epoch into length-bucketed
 * batches (a plan drawn from the seed and the epoch), each batch collated with per-example
 * generators (seed, epoch, record). Micro-batch m of a run is a pure function of the seed and m,
 * so a run resumed at micro-batch m sees exactly the batches an uninterrupted run sees.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import { bucketByLength, makeBatch } from "../collate/batch.ts";
import { Collator, type CollatorOptions, exampleRng } from "../collate/collator.ts";
import { prefixLength, type TokenizedRecord, tokenizeRecord } from "../collate/tokenize.ts";
import type { EntityTrie } from "../collate/trie.ts";
import { trieLossBias } from "../collate/trie_loss.ts";
import type { Batch } from "../collate/types.ts";
import { type Dataset, readNumberedRecords } from "../data/dataset.ts";
import type { Split } from "../data/types.ts";
import { InputError, inputError } from "../errors.ts";
import { Rng } from "../random.ts";
import type { TextTokenizer } from "../tokenizer/tokenizer.ts";

/**
 * SHA-256 (hex) of tokenized records, in order: every field the collator reads. Two datasets
 * train alike exactly when their hashes are equal, whatever their record counts (a resumed run
 * checks its data by it).
 */
export function recordsSha256(records: readonly TokenizedRecord[]): string {
  const hash = createHash("sha256");
  const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  for (const r of records) {
    hash.update(
      JSON.stringify([
        r.id,
        r.task ?? null,
        r.promptUnits,
        r.answerAt,
        r.hasTarget,
        r.answerMarked,
      ]),
    );
    for (const array of [r.ids, r.unitStart, r.unitEntity, r.unitSentence]) {
      hash.update(String(array.length)).update(bytes(array));
    }
    // Ages decide what truncation keeps; records without them hash as before they existed.
    if (r.unitAge) hash.update("age").update(bytes(r.unitAge));
    // So does the tokenizer's prefix, which starts every example (absent: hashed as before).
    if (r.prefix) hash.update("prefix").update(bytes(r.prefix));
  }
  return hash.digest("hex");
}

/**
 * Reads and tokenizes every record of `split`. A missing validation or test file gives an empty
 * array; a missing training file is an InputError.
 */
export async function tokenizeSplit(
  data: Dataset,
  split: Split,
  tokenizer: TextTokenizer,
): Promise<TokenizedRecord[]> {
  if (split !== "train") {
    try {
      await Deno.stat(join(data.dir, `${split}.jsonl`));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return [];
      throw error;
    }
  }
  const records: TokenizedRecord[] = [];
  for await (const { line, record } of readNumberedRecords(data, split)) {
    try {
      records.push(tokenizeRecord(tokenizer, record));
    } catch (error) {
      // The record's own problem, said where it is (as collate says it).
      if (error instanceof InputError) {
        throw inputError(join(data.dir, `${split}.jsonl`), line, error.message);
      }
      throw error;
    }
  }
  return records;
}

/** Options of {@linkcode BatchStream}. */
export interface BatchStreamOptions {
  batchSize: number;
  seed: number;
  /** Collator settings (objective, maximum length). */
  collator: CollatorOptions;
  /**
   * Key of the random streams (default `train`), so that training and validation draw
   * independently; validation reads the first batches of its epoch 0, the same every time.
   */
  stream?: string;
  /**
   * Records per epoch by task, as a multiple of the task's records (default 1 each): 3 puts
   * every record of the task in each epoch three times (each time masked anew), 0.25 a quarter
   * of them, drawn anew each epoch. A task not named keeps weight 1.
   */
  taskWeights?: Readonly<Record<string, number>>;
  /**
   * Train under the trie's softmax: each batch carries the logit bias of `trieLossBias` for
   * this trie of the items and the model's logit width.
   */
  trieLoss?: { trie: EntityTrie; vocab: number };
}

/**
 * The records of one epoch as indices into the records, with `weights` per task: each record
 * floor(w) times, and round(frac(w) * n) of the task's n records once more, drawn by `rng`.
 * Without weights: every record once, in order.
 */
export function epochRecords(
  tasks: readonly (string | undefined)[],
  weights: Readonly<Record<string, number>> | undefined,
  rng: Rng,
): Int32Array {
  if (!weights || Object.keys(weights).length === 0) {
    return Int32Array.from({ length: tasks.length }, (_, i) => i);
  }
  const byTask = new Map<string, number[]>();
  tasks.forEach((task, i) => {
    const key = task ?? "";
    let list = byTask.get(key);
    if (!list) byTask.set(key, list = []);
    list.push(i);
  });
  // Plain loops, not push(...list): a task's records can outnumber the arguments a call takes.
  const out: number[] = [];
  for (const [task, list] of byTask) {
    const w = weights[task] ?? 1;
    const whole = Math.floor(w);
    for (let r = 0; r < whole; r++) for (const i of list) out.push(i);
    const extra = Math.round((w - whole) * list.length);
    if (extra > 0) {
      for (const i of rng.shuffle(Int32Array.from(list)).subarray(0, extra)) out.push(i);
    }
  }
  return Int32Array.from(out);
}

/**
 * Batches of one split, addressed by a global micro-batch index: epoch = floor(m / perEpoch).
 *
 * @example
 * ```ts
 * import type { TokenizedRecord } from "../collate/tokenize.ts";
 * import type { TextTokenizer } from "../tokenizer/tokenizer.ts";
 *
 * declare const records: TokenizedRecord[], tokenizer: TextTokenizer;
 * const stream = new BatchStream(records, tokenizer.special, { batchSize: 8, seed: 1,
 *   collator: { objective: "mix", maxLength: 512 } });
 * const batch = stream.batch(0); // the first batch of epoch 0
 * ```
 */
export class BatchStream {
  /** Batches per epoch. */
  readonly perEpoch: number;
  readonly #records: readonly TokenizedRecord[];
  readonly #collator: Collator;
  readonly #pad: number;
  readonly #options: BatchStreamOptions;
  readonly #lengths: Int32Array;
  readonly #tasks: (string | undefined)[];
  /** The epoch's records (indices into the records) and its batches (indices into those). */
  #plan: { epoch: number; records: Int32Array; batches: Int32Array[] } | undefined;

  constructor(
    records: readonly TokenizedRecord[],
    specials: ConstructorParameters<typeof Collator>[0],
    options: BatchStreamOptions,
  ) {
    if (records.length === 0) throw new RangeError("no records to batch");
    this.#records = records;
    this.#collator = new Collator(specials, options.collator);
    this.#pad = specials.pad;
    this.#options = options;
    const max = options.collator.maxLength ?? Infinity;
    this.#lengths = Int32Array.from(
      records,
      (r) => Math.min(prefixLength(r) + r.ids.length + 2, max),
    );
    this.#tasks = records.map((r) => r.task);
    const weights = options.taskWeights ?? {};
    for (const [task, w] of Object.entries(weights)) {
      if (!(w >= 0) || !Number.isFinite(w)) {
        throw new RangeError(`task weight of ${task} must be a number >= 0, got ${w}`);
      }
    }
    const perEpochRecords = this.#epochRecords(0).length;
    if (perEpochRecords === 0) throw new RangeError("the task weights leave no records to batch");
    this.perEpoch = Math.ceil(perEpochRecords / options.batchSize);
  }

  #epochRecords(epoch: number): Int32Array {
    const rng = Rng.derive(this.#options.seed, this.#options.stream ?? "train", "tasks", epoch);
    return epochRecords(this.#tasks, this.#options.taskWeights, rng);
  }

  /**
   * The record indices of every batch of `epoch`: shuffled, bucketed by length (so little is
   * padded) and the batches shuffled, all from the seed, the stream and the epoch.
   */
  plan(epoch: number): Int32Array[] {
    return this.#epochPlan(epoch).batches;
  }

  #epochPlan(epoch: number): { records: Int32Array; batches: Int32Array[] } {
    if (this.#plan?.epoch !== epoch) {
      const records = this.#epochRecords(epoch);
      const lengths = records.map((i) => this.#lengths[i]);
      const rng = Rng.derive(this.#options.seed, this.#options.stream ?? "train", "plan", epoch);
      this.#plan = {
        epoch,
        records,
        batches: bucketByLength(lengths, this.#options.batchSize, rng),
      };
    }
    return this.#plan;
  }

  /** Epoch and index within the epoch of global micro-batch `m`. */
  position(m: number): { epoch: number; index: number } {
    return { epoch: Math.floor(m / this.perEpoch), index: m % this.perEpoch };
  }

  /** Global micro-batch `m`, collated and padded (to a multiple of 8 tokens). */
  batch(m: number): Batch {
    const { epoch, index } = this.position(m);
    const { records, batches } = this.#epochPlan(epoch);
    const seedEpoch = this.#options.stream && this.#options.stream !== "train" ? -1 - epoch : epoch;
    // Example j of the epoch draws from stream j: a record repeated within an epoch is masked
    // anew each time (without task weights, j is the record's index, as it always was).
    const examples = Array.from(
      batches[index],
      (j) =>
        this.#collator.collate(
          this.#records[records[j]],
          exampleRng(this.#options.seed, seedEpoch, j),
        ),
    );
    const batch = makeBatch(examples, this.#pad, { multipleOf: 8 });
    const trie = this.#options.trieLoss;
    if (trie) {
      const { sop, eop } = this.#collator.specials;
      const { bias, rows } = trieLossBias(batch, trie.trie, { sop, eop, vocab: trie.vocab });
      batch.lossLogitBias = { data: bias, rows, vocab: trie.vocab };
    }
    return batch;
  }
}

/** Loss positions of a batch: loss mask 1 and a real label (what the loss averages over). */
export function lossTokens(batch: Batch): number {
  let n = 0;
  for (let i = 0; i < batch.lossMask.length; i++) {
    if (batch.lossMask[i] !== 0 && batch.labels[i] >= 0) n++;
  }
  return n;
}

/**
 * Examples `[start, end)` of `batch` as a batch of their own, at the same padded length (so each
 * example's positions, padding and dropout rows are those it has in the whole batch); the trie
 * softmax's bias keeps the rows of their loss positions. A data-parallel rank's part of a global
 * batch.
 */
export function sliceBatch(batch: Batch, start: number, end: number): Batch {
  if (!(0 <= start && start < end && end <= batch.batchSize)) {
    throw new RangeError(`sliceBatch: rows ${start}..${end} of a batch of ${batch.batchSize}`);
  }
  const l = batch.length;
  const part: Batch = {
    batchSize: end - start,
    length: l,
    inputIds: batch.inputIds.slice(start * l, end * l),
    positionIds: batch.positionIds.slice(start * 2 * l, end * 2 * l),
    sep: batch.sep.slice(start, end),
    labels: batch.labels.slice(start * l, end * l),
    lossMask: batch.lossMask.slice(start * l, end * l),
  };
  if (batch.lossLogitBias) {
    // The bias has one row per loss position of the batch, in row-major order.
    const before = lossTokens({ ...batch, lossMask: batch.lossMask.subarray(0, start * l) });
    const rows = lossTokens(part);
    const { vocab, data } = batch.lossLogitBias;
    part.lossLogitBias = {
      rows,
      vocab,
      data: data.slice(before * vocab, (before + rows) * vocab),
    };
  }
  return part;
}
