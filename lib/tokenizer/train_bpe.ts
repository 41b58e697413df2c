/**
 * Training a byte-level BPE tokenizer (GPT-2 style) in plain TypeScript, so the toolkit needs no
 * native tokenizer library and works inside `deno compile` binaries. The result is a plain object
 * in the Hugging Face `tokenizer.json` layout, loadable by `npm:@huggingface/tokenizers` (see
 * `tokenizer.ts`) and by Python `tokenizers`.
 *
 * Not for encoding: encoding goes through `@huggingface/tokenizers` in `tokenizer.ts`.
 *
 * Layout of the vocabulary: ids 0..255 are the 256 byte symbols in GPT-2's order (the printable
 * bytes first), then one id per merge, then the special tokens. Pre-tokenization is GPT-2's regex
 * (the ByteLevel pre-tokenizer with `use_regex: true`, `add_prefix_space: false`).
 *
 * Algorithm: the text is pre-tokenized once into a table of distinct words and their counts; pair
 * counts are kept in a map and updated incrementally for the words a merge touches (each pair
 * remembers the words it occurs in); the best pair comes from a max-heap with lazy deletion (an
 * entry whose count went stale is pushed back with its current count). Ties between pairs of equal
 * count go to the smaller pair of symbol ids (left id, then right id), so the result is
 * deterministic. A merge applies to a word left to right, without overlaps, exactly as the BPE
 * model applies it when encoding.
 *
 * @module
 */

/** GPT-2's pre-tokenization pattern, the one the ByteLevel pre-tokenizer uses. */
export const GPT2_PRETOKENIZE_PATTERN =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * GPT-2's reversible map from bytes to printable characters: entry `b` is the character that
 * stands for byte `b` in vocabulary strings (byte 0x20, the space, is `Ġ`).
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const chars = new Array<string>(256);
  for (const b of printable) chars[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (chars[b] === undefined) chars[b] = String.fromCharCode(256 + n++);
  }
  return chars;
})();

/** The 256 byte symbols in GPT-2's vocabulary order (printable bytes first). */
function byteOrder(): number[] {
  const order: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) order.push(b);
  for (let b = 0xa1; b <= 0xac; b++) order.push(b);
  for (let b = 0xae; b <= 0xff; b++) order.push(b);
  for (let b = 0; b < 256; b++) if (!order.includes(b)) order.push(b);
  return order;
}

/** Options of {@linkcode trainByteLevelBpe}. */
export interface TrainBpeOptions {
  /**
   * Size of the whole vocabulary: the 256 byte symbols, the merged symbols and the special
   * tokens. Training stops early (a smaller vocabulary) when no pair is frequent enough.
   */
  vocabSize: number;
  /** Tokens added after the merges, as special added tokens (e.g. `[MASK]`). Default none. */
  specialTokens?: string[];
  /** A pair seen fewer times than this is never merged. Default 2. */
  minFrequency?: number;
}

// Pair keys pack (left, right) into one number; ids stay below 2^20 (checked).
const PAIR_SHIFT = 1048576;
const MAX_SYMBOLS = PAIR_SHIFT;

/** A max-heap of (count, pair key); larger count first, then smaller key. */
class PairHeap {
  counts: number[] = [];
  keys: number[] = [];

  get size(): number {
    return this.counts.length;
  }

  #before(i: number, j: number): boolean {
    const ci = this.counts[i], cj = this.counts[j];
    return ci > cj || (ci === cj && this.keys[i] < this.keys[j]);
  }

  #swap(i: number, j: number): void {
    const c = this.counts[i];
    this.counts[i] = this.counts[j];
    this.counts[j] = c;
    const k = this.keys[i];
    this.keys[i] = this.keys[j];
    this.keys[j] = k;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(i, parent)) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  /** Removes the top; read `counts[0]` and `keys[0]` before calling. */
  pop(): void {
    const last = this.counts.length - 1;
    this.#swap(0, last);
    this.counts.pop();
    this.keys.pop();
    const n = this.counts.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let best = i;
      if (l < n && this.#before(l, best)) best = l;
      if (r < n && this.#before(r, best)) best = r;
      if (best === i) break;
      this.#swap(i, best);
      i = best;
    }
  }
}

/**
 * Adds the pre-tokenized words of `text` to `counts` (word -> occurrences) and returns `counts`:
 * all {@linkcode trainBpeOnWordCounts} needs of a corpus, so a corpus read a text at a time need
 * not be held whole.
 *
 * @example
 * ```ts
 * const counts = new Map<string, number>();
 * countBpeWords("a b", counts);
 * countBpeWords(" b", counts); // Map { "a" => 1, " b" => 2 }
 * ```
 */
export function countBpeWords(
  text: string,
  counts: Map<string, number> = new Map(),
): Map<string, number> {
  for (const match of text.matchAll(GPT2_PRETOKENIZE_PATTERN)) {
    const word = match[0];
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  return counts;
}

/**
 * Trains a byte-level BPE tokenizer on `texts` and returns it as a Hugging Face `tokenizer.json`
 * object (`JSON.stringify` it to write the file).
 *
 * @example
 * ```ts
 * const json = trainByteLevelBpe(["a few lines of text", "and more text"], {
 *   vocabSize: 300,
 *   specialTokens: ["[MASK]", "[PAD]"],
 * });
 * await Deno.writeTextFile("tokenizer.json", JSON.stringify(json));
 * ```
 */
export function trainByteLevelBpe(
  texts: Iterable<string>,
  options: TrainBpeOptions,
): Record<string, unknown> {
  const counts = new Map<string, number>();
  for (const text of texts) countBpeWords(text, counts);
  return trainBpeOnWordCounts(counts, options);
}

/**
 * {@linkcode trainByteLevelBpe} on the word counts of a corpus ({@linkcode countBpeWords}):
 * the same tokenizer as on the texts themselves.
 *
 * @example
 * ```ts
 * const counts = new Map<string, number>();
 * for (const text of ["a few lines of text", "and more text"]) countBpeWords(text, counts);
 * const json = trainBpeOnWordCounts(counts, { vocabSize: 300 });
 * ```
 */
export function trainBpeOnWordCounts(
  counts: ReadonlyMap<string, number>,
  options: TrainBpeOptions,
): Record<string, unknown> {
  const specials = options.specialTokens ?? [];
  const minFrequency = Math.max(1, options.minFrequency ?? 2);
  checkOptions(options, specials);
  const symbols = new SymbolTable();
  const words = encodeWords(counts, symbols.byteId);
  const merges = learnMerges(words, symbols, options.vocabSize - specials.length, minFrequency);
  return tokenizerJson(symbols.strings, merges, specials);
}

function checkOptions(options: TrainBpeOptions, specials: readonly string[]): void {
  if (!Number.isInteger(options.vocabSize) || options.vocabSize < 256 + specials.length) {
    throw new RangeError(
      `vocabSize must be an integer of at least 256 + ${specials.length} special tokens, got ${options.vocabSize}`,
    );
  }
  if (options.vocabSize > MAX_SYMBOLS) {
    throw new RangeError(`vocabSize must be at most ${MAX_SYMBOLS}, got ${options.vocabSize}`);
  }
  if (new Set(specials).size !== specials.length) {
    throw new RangeError("specialTokens must not repeat a token");
  }
}

/** Symbols: strings by id, ids by string. Ids 0..255 are the bytes in GPT-2's order. */
class SymbolTable {
  readonly strings: string[] = [];
  readonly #ids = new Map<string, number>();
  /** The symbol id of each byte. */
  readonly byteId = new Int32Array(256);

  constructor() {
    for (const b of byteOrder()) {
      this.byteId[b] = this.strings.length;
      this.#ids.set(BYTE_TO_CHAR[b], this.strings.length);
      this.strings.push(BYTE_TO_CHAR[b]);
    }
  }

  get size(): number {
    return this.strings.length;
  }

  /** The id of symbol `text`, added when new. */
  intern(text: string): number {
    let id = this.#ids.get(text);
    if (id === undefined) {
      id = this.strings.length;
      this.strings.push(text);
      this.#ids.set(text, id);
    }
    return id;
  }
}

/** The corpus's distinct words as runs of symbol ids in one pool; a word shrinks as merges apply. */
interface Words {
  count: number;
  pool: Int32Array;
  freq: Float64Array;
  start: Int32Array;
  len: Int32Array;
}

function encodeWords(wordCounts: ReadonlyMap<string, number>, byteId: Int32Array): Words {
  const encoder = new TextEncoder();
  const count = wordCounts.size;
  const freq = new Float64Array(count);
  const start = new Int32Array(count);
  const len = new Int32Array(count);
  const chunks: Uint8Array[] = [];
  let total = 0;
  let w = 0;
  for (const [word, n] of wordCounts) {
    const bytes = encoder.encode(word);
    chunks.push(bytes);
    freq[w] = n;
    start[w] = total;
    len[w] = bytes.length;
    total += bytes.length;
    w++;
  }
  const pool = new Int32Array(total);
  let at = 0;
  for (const bytes of chunks) {
    for (let i = 0; i < bytes.length; i++) pool[at++] = byteId[bytes[i]];
  }
  return { count, pool, freq, start, len };
}

/** Pair counts (weighted by word frequency) and the words each pair occurs in, by pair key. */
interface PairIndex {
  count: Map<number, number>;
  words: Map<number, number[]>;
}

function indexPairs(words: Words): PairIndex {
  const { pool } = words;
  const count = new Map<number, number>();
  const wordsOf = new Map<number, number[]>();
  for (let w = 0; w < words.count; w++) {
    const start = words.start[w], end = start + words.len[w], f = words.freq[w];
    for (let i = start; i + 1 < end; i++) {
      const key = pool[i] * PAIR_SHIFT + pool[i + 1];
      count.set(key, (count.get(key) ?? 0) + f);
      const list = wordsOf.get(key);
      if (list === undefined) wordsOf.set(key, [w]);
      else if (list[list.length - 1] !== w) list.push(w);
    }
  }
  return { count, words: wordsOf };
}

/**
 * Merges the most frequent pair (ties: see {@linkcode PairHeap}) until `budget` symbols or no
 * pair of `minFrequency`; returns the merges in order. The heap may hold stale counts: an entry
 * whose count is no longer the pair's is dropped (or pushed again with the current count).
 */
function learnMerges(
  words: Words,
  symbols: SymbolTable,
  budget: number,
  minFrequency: number,
): string[] {
  const pairs = indexPairs(words);
  const heap = new PairHeap();
  for (const [key, count] of pairs.count) heap.push(count, key);
  const merges: string[] = [];
  const seenStamp = new Int32Array(words.count).fill(-1);
  const touched = new Set<number>();

  while (symbols.size < budget && heap.size > 0) {
    const count = heap.counts[0], key = heap.keys[0];
    heap.pop();
    const current = pairs.count.get(key) ?? 0;
    if (current !== count) {
      if (current > 0) heap.push(current, key);
      continue;
    }
    if (count < minFrequency) break;

    const a = Math.floor(key / PAIR_SHIFT), b = key - a * PAIR_SHIFT;
    merges.push(`${symbols.strings[a]} ${symbols.strings[b]}`);
    const id = symbols.intern(symbols.strings[a] + symbols.strings[b]);

    const step = merges.length;
    const list = pairs.words.get(key) ?? [];
    pairs.words.delete(key);
    for (const w of list) {
      if (seenStamp[w] === step) continue;
      seenStamp[w] = step;
      mergeInWord(words, w, a, b, id, pairs, touched);
    }
    pairs.count.delete(key);
    for (const k of touched) {
      const c = pairs.count.get(k) ?? 0;
      if (c > 0) heap.push(c, k);
    }
    touched.clear();
  }
  return merges;
}

/**
 * Applies merge (a, b) -> `id` to word `w`, left to right without overlaps, keeping `pairs` up to
 * date; adds to `touched` (in first-touched order) the keys of the pairs with the new symbol.
 */
function mergeInWord(
  words: Words,
  w: number,
  a: number,
  b: number,
  id: number,
  pairs: PairIndex,
  touched: Set<number>,
): void {
  const { pool } = words;
  const start = words.start[w], end = start + words.len[w], f = words.freq[w];
  let found = false;
  for (let i = start; i + 1 < end; i++) {
    if (pool[i] === a && pool[i + 1] === b) {
      found = true;
      break;
    }
  }
  if (!found) return;
  const addPair = (key: number, df: number) => {
    pairs.count.set(key, (pairs.count.get(key) ?? 0) + df);
  };
  // Take the word's pairs out, merge, put its pairs back.
  for (let i = start; i + 1 < end; i++) addPair(pool[i] * PAIR_SHIFT + pool[i + 1], -f);
  let out = start;
  for (let i = start; i < end; i++) {
    if (i + 1 < end && pool[i] === a && pool[i + 1] === b) {
      pool[out++] = id;
      i++;
    } else {
      pool[out++] = pool[i];
    }
  }
  words.len[w] = out - start;
  for (let i = start; i + 1 < out; i++) {
    const k = pool[i] * PAIR_SHIFT + pool[i + 1];
    addPair(k, f);
    if (pool[i] === id || pool[i + 1] === id) {
      // Only pairs with the new symbol are new to this word; the others already list it.
      let list = pairs.words.get(k);
      if (list === undefined) pairs.words.set(k, list = []);
      if (list[list.length - 1] !== w) list.push(w);
      touched.add(k);
    }
  }
}

/** The Hugging Face `tokenizer.json` object of a byte-level BPE model. */
function tokenizerJson(
  symbols: readonly string[],
  merges: string[],
  specials: readonly string[],
): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  for (let i = 0; i < symbols.length; i++) vocab[symbols[i]] = i;
  const addedTokens = specials.map((content, i) => {
    if (content in vocab) {
      throw new RangeError(
        `special token ${JSON.stringify(content)} is already a vocabulary symbol`,
      );
    }
    const id = symbols.length + i;
    vocab[content] = id;
    return {
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    };
  });

  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: {
      type: "ByteLevel",
      add_prefix_space: false,
      trim_offsets: true,
      use_regex: true,
    },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}
