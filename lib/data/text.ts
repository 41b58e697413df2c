/**
 * Small text helpers for textualize: folding white space, capping by words, cutting review text
 * into sentences, and printing ratings. Pure functions on strings; no knowledge of records.
 *
 * @module
 */

/**
 * `text` in Unicode NFC with every run of white space turned into one space and the ends
 * trimmed. NFC because tokenizers normalise so (Qwen's NFC normalizer): an entity written
 * decomposed (`e` + U+0301) would not decode to itself, and the entity pool refuses such entities.
 *
 * @example
 * ```ts
 * foldSpace(" Cafe\u0301   Tutu "); // "Caf\u00e9 Tutu"
 * ```
 */
export function foldSpace(text: string): string {
  return text.normalize("NFC").replace(/\s+/g, " ").trim();
}

/**
 * `text` folded line by line (in NFC, as {@linkcode foldSpace}): white space folded within each
 * line, the lines that are not empty kept, one `\n` between them. Review texts keep their line
 * breaks so, as a line break ends a sentence (see {@linkcode sentences}).
 *
 * @example
 * ```ts
 * foldLines("Great  strings\r\n\nThey stay in tune "); // "Great strings\nThey stay in tune"
 * ```
 */
export function foldLines(text: string): string {
  if (!/[\r\n]/.test(text)) return foldSpace(text);
  return text.split(/[\r\n]+/).map(foldSpace).filter((line) => line !== "").join("\n");
}

/** The first `maxWords` space-separated words of already folded `text` (all of it if fewer). */
export function capWords(text: string, maxWords: number): string {
  let seen = 0;
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) === 32 && ++seen === maxWords) return text.slice(0, i);
  }
  return text;
}

/**
 * Folded `text` cut to at most `maxChars` characters (code points, so a character outside the
 * Basic Multilingual Plane is never split): at the last space within the limit when there is one
 * past its first half, else mid-word. Text without spaces (a CJK title, a long product code) is
 * where the word cap of {@linkcode capWords} does nothing.
 *
 * @example
 * ```ts
 * capChars("Deep Care Shampoo, Travel Size", 20); // "Deep Care Shampoo,"
 * capChars("ABCDEFGH", 3); // "ABC"
 * ```
 */
export function capChars(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const chars = Array.from(text);
  if (chars.length <= maxChars) return text;
  const head = chars.slice(0, maxChars).join("");
  // A word boundary right after the limit keeps the whole last word.
  if (chars[maxChars] === " ") return head;
  const space = head.lastIndexOf(" ");
  return space > head.length / 2 ? head.slice(0, space) : head;
}

/** The number of space-separated words in folded `text`. */
export function countWords(text: string): number {
  if (text === "") return 0;
  let n = 1;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 32) n++;
  return n;
}

/**
 * The sentences of `text`: it is cut after `.`, `!` or `?` (and any run of them) followed by
 * white space, and at line breaks. Each sentence comes back folded; empty pieces are dropped.
 *
 * @example
 * ```ts
 * sentences("Great strings! Stay in tune.\nWould buy again"); // 3 sentences
 * ```
 */
export function sentences(text: string): string[] {
  return [...eachSentence(text)];
}

/**
 * The sentences of `text` one at a time, as {@linkcode sentences} cuts them: a caller that needs
 * only the first few does not cut a review of many megabytes whole.
 */
export function* eachSentence(text: string): Generator<string> {
  const boundary = /(?<=[.!?])\s+|[\r\n]+/g;
  let start = 0;
  for (let m = boundary.exec(text); m !== null; m = boundary.exec(text)) {
    const sentence = foldSpace(text.slice(start, m.index));
    if (sentence !== "") yield sentence;
    start = m.index + m[0].length;
  }
  const last = foldSpace(text.slice(start));
  if (last !== "") yield last;
}

/**
 * The explanation taken from a review: its first sentence of at least `minWords` words, capped
 * at `maxWords` words; undefined when no sentence is long enough.
 */
export function explanationSentence(
  review: string,
  minWords: number,
  maxWords: number,
): string | undefined {
  for (const sentence of eachSentence(review)) {
    if (countWords(sentence) >= minWords) return capWords(sentence, maxWords);
  }
  return undefined;
}

/** A rating as text: integers without decimals (`4`), others as the shortest decimal (`4.5`). */
export function formatRating(rating: number): string {
  return String(rating);
}

/**
 * Joins words in English: `["a"]` -> `a`, `["a", "b"]` -> `a and b`, three or more with commas.
 * Used for plain-text lists; entity lists are built segment by segment in `templates.ts`.
 */
export function joinWords(words: string[], last = "and"): string {
  if (words.length <= 1) return words.join("");
  return `${words.slice(0, -1).join(", ")} ${last} ${words[words.length - 1]}`;
}
