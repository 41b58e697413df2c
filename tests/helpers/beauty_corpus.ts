/**
 * Test helper (not a test file): docs/method.md section 7's invariant (the dynamic intra-position
 * rule run over the collator's part B spans) and a corpus of Amazon Beauty records to measure it on
 * (read from ../shared/data; the tests that need it are ignored where the data is missing).
 *
 * @module
 */

import assert from "node:assert/strict";
import { dynamicIntraPositions } from "../../lib/collate/dynamic_positions.ts";
import type { CollatedExample } from "../../lib/collate/example.ts";
import type { EntityTrie } from "../../lib/collate/trie.ts";
import type { Segment, TextRecord } from "../../lib/data/types.ts";

/** Spans of part B as [start, end) token ranges, `[S]` excluded. */
export function partBSpans(example: CollatedExample): [number, number][] {
  const spans: [number, number][] = [];
  let start = -1;
  for (let i = example.sep; i <= example.length; i++) {
    if (i === example.length || example.intra[i] === 1) {
      if (start >= 0) spans.push([start, i]);
      start = i + 1;
    }
  }
  return spans;
}

/**
 * Runs the dynamic rule over every part B span of `examples`; returns the spans and the spans
 * where the rule differs from the collator. Every difference must start where the rule cannot
 * know better: the collator starts a new unit but the current unit plus the token is an entity
 * prefix (the rule grows).
 */
export function invariant(trie: EntityTrie, examples: CollatedExample[]) {
  let spans = 0, exceptions = 0;
  /** Each exception's current unit (the tokens before the differing one) and that token. */
  const cases: [Int32Array, number][] = [];
  for (const example of examples) {
    for (const [s, e] of partBSpans(example)) {
      spans++;
      const rule = dynamicIntraPositions(trie, example.inputIds.subarray(s, e));
      const first = rule.findIndex((v, k) => v !== example.intra[s + k]);
      if (first < 0) continue;
      exceptions++;
      let unit = s + first - 1;
      while (unit > s && example.intra[unit] > 2) unit--;
      cases.push([example.inputIds.slice(unit, s + first), example.inputIds[s + first]]);
      assert.equal(example.intra[s + first], 2, "the collator starts a unit here");
      assert.ok(rule[first] > 2, "the rule grows here: the unit plus the token is a prefix");
    }
  }
  return { spans, exceptions, cases };
}

const BEAUTY = new URL("../../../shared/data/amazon-beauty/", import.meta.url);

function parseCsvLine(line: string): string[] {
  const fields: string[] = [];
  let field = "", quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') field += '"', i++;
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") fields.push(field), field = "";
    else field += c;
  }
  fields.push(field);
  return fields;
}

/**
 * Profile documents and sequential prompts for the first `users` Beauty users, written here
 * (textualize was not in the tree when this test was written): item titles are the entities,
 * repeated titles made unique with their ASIN as docs/method.md section 3 says.
 */
export async function beautyCorpus(users: number) {
  const lines = (await Deno.readTextFile(new URL("items.csv", BEAUTY))).split("\n").slice(1);
  const titles = new Map<string, string>();
  const seen = new Map<string, number>();
  const rows = lines.filter((l) => l.trim() !== "").map(parseCsvLine);
  for (const [, , title] of rows) seen.set(title, (seen.get(title) ?? 0) + 1);
  for (const [id, asin, title] of rows) {
    titles.set(id, seen.get(title)! > 1 ? `${title} (${asin})` : title);
  }
  const sequences = (await Deno.readTextFile(new URL("sequential_data.txt", BEAUTY)))
    .split("\n").filter((l) => l.trim() !== "").slice(0, users).map((l) => l.trim().split(" "));
  const list = (items: string[]): Segment[] =>
    items.flatMap((item, k) => [
      ...(k === 0 ? [] : [{ text: k === items.length - 1 ? " and " : ", " }]),
      { entity: titles.get(item)!, kind: "item" },
    ]);
  const records: TextRecord[] = [];
  for (const [user, ...items] of sequences) {
    const third = Math.max(1, Math.floor(items.length / 3));
    records.push({
      id: `${user}/profile`,
      task: "profile",
      template: "p",
      split: "train",
      user,
      segments: [
        { text: `User ${user} has long-term preferences for ` },
        ...list(items.slice(0, third)),
        { text: ".\nMedium-term preferences: " },
        ...list(items.slice(third, 2 * third)),
        { text: ".\nShort-term preferences: " },
        ...list(items.slice(2 * third)),
        { text: "." },
      ],
    });
    records.push({
      id: `${user}/seq`,
      task: "sequential",
      template: "s",
      split: "train",
      user,
      segments: [
        { text: `User ${user} has bought ` },
        ...list(items.slice(0, -1)),
        { text: ". What will the user buy next?" },
      ],
      target: [{ entity: titles.get(items[items.length - 1])!, kind: "item" }],
    });
  }
  return { pool: [...new Set(titles.values())], records };
}

/** Whether the real data is beside the checkout (it is not part of the repository). */
export const HAVE_BEAUTY = (() => {
  try {
    return Deno.statSync(new URL("items.csv", BEAUTY)).isFile;
  } catch {
    return false;
  }
})();
