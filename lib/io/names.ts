/**
 * Names of the hidden siblings an output gets (its temporaries `.NAME.tmp-…`, its lock
 * `.NAME.lock`): a name the file system takes even where the output's own name is near the
 * limit of 255 bytes, which the sibling's additions would pass.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** The longest file name most file systems take, in bytes. */
const NAME_MAX = 255;

/**
 * `name` as the stem of a hidden sibling `.STEM` + `extra` bytes: itself where that fits in
 * 255 bytes, else its head and a hash of the whole name, so two long names sharing a head keep
 * distinct siblings (and one output always gets the same stem).
 *
 * @example
 * ```ts
 * siblingStem("pred.jsonl", 40); // "pred.jsonl"
 * siblingStem("a".repeat(250), 40).length; // 214: 201 "a"s, "~" and 12 hex digits
 * ```
 */
export function siblingStem(name: string, extra: number): string {
  const encoder = new TextEncoder();
  if (1 + encoder.encode(name).length + extra <= NAME_MAX) return name;
  const hash = createHash("sha256").update(name).digest("hex").slice(0, 12);
  const room = NAME_MAX - 1 - extra - 1 - hash.length;
  let head = "";
  let bytes = 0;
  for (const char of name) { // by code point: a character is never split
    const size = encoder.encode(char).length;
    if (bytes + size > room) break;
    head += char;
    bytes += size;
  }
  return `${head}~${hash}`;
}
