/**
 * Shared helpers of the textualize tests (not a test file itself): fixture paths, the golden
 * command lines, reading a dataset directory back and checking its rules. The CLI itself runs
 * through ./cli.ts.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import type {
  CandidateLine,
  EntityEntry,
  Manifest,
  Split,
  TextRecord,
} from "../../lib/data/types.ts";
import { SPLITS, type Task } from "../../lib/data/types.ts";
import { type Dataset, openDataset } from "../../lib/data/dataset.ts";
import { DEFAULT_RECORD_OPTIONS, type ItemTokenMode } from "../../lib/data/record_options.ts";
import { textualize } from "../../lib/data/textualize.ts";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** A path under `fixtures/`. */
export function fixture(...parts: string[]): string {
  return join(ROOT, "fixtures", ...parts);
}

/** The shared real data directory (`../shared/data`), and whether its files are there. */
export const SHARED_DATA = join(ROOT, "..", "shared", "data");
export const HAVE_SHARED_DATA = [
  "amazon-beauty/sequential_data.txt",
  "amazon-beauty/items.csv",
  "amazon-musical-instruments/reviews_Musical_Instruments_5.json.gz",
].every((file) => {
  try {
    return Deno.statSync(join(SHARED_DATA, file)).isFile;
  } catch {
    return false;
  }
});

/** Every record of a JSONL file. */
export function readRecords(path: string): TextRecord[] {
  const text = Deno.readTextFileSync(path);
  return text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line));
}

/** Whether a path exists. */
export function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The entity strings a record mentions (prompt segments and target), in order. */
export function mentions(record: TextRecord): string[] {
  const out: string[] = [];
  for (const s of [...record.segments, ...(record.target ?? [])]) {
    if ("entity" in s) out.push(s.entity);
  }
  return out;
}

/** The command lines of the golden fixtures, one per input format. */
export const GOLDEN_CASES: { name: string; args: string[] }[] = [
  {
    name: "p5",
    args: [
      "--format=p5",
      `--input=${fixture("textualize", "p5", "sequential_data.txt")}`,
      `--items=${fixture("textualize", "p5", "items.csv")}`,
      "--seed=3",
      "--max-entity-words=20",
    ],
  },
  {
    name: "amazon",
    args: [
      "--format=amazon-reviews",
      `--input=${fixture("textualize", "amazon", "reviews.json")}`,
      "--seed=5",
      "--negatives=3",
    ],
  },
  {
    name: "csv",
    args: [
      "--format=csv",
      `--input=${fixture("textualize", "csv", "interactions.csv")}`,
      `--users=${fixture("textualize", "csv", "people.csv")}`,
      `--items=${fixture("textualize", "csv", "products.csv")}`,
      "--user-col=customer",
      "--item-col=product",
      "--time-col=when",
      "--rating-col=stars",
      "--review-col=text",
      "--summary-col=headline",
      "--user-id-col=customer_id",
      "--item-id-col=sku",
      "--title-col=name",
      "--seed=11",
      "--negatives=2",
      "--short-days=3",
    ],
  },
  {
    name: "recbole",
    args: [
      "--format=recbole",
      `--input=${fixture("textualize", "recbole")}`,
      "--seed=2",
      "--negatives=1",
    ],
  },
];

/** The files of a dataset directory, in the order the golden test compares them. */
export const DATASET_FILES = [
  "train.jsonl",
  "valid.jsonl",
  "test.jsonl",
  "candidates.jsonl",
  "entities.json",
  "manifest.json",
];

/** The manifest and entity pool of a dataset directory, parsed. */
export function readDatasetMeta(dir: string): { manifest: Manifest; entities: EntityEntry[] } {
  return {
    manifest: JSON.parse(Deno.readTextFileSync(join(dir, "manifest.json"))),
    entities: JSON.parse(Deno.readTextFileSync(join(dir, "entities.json"))),
  };
}

/** Options of {@linkcode checkDataset}. */
export interface CheckOptions {
  /** Each kept user's item ids in time order, computed by the test from the raw input. */
  sequences: Map<string, string[]>;
  /** Negatives asked for (candidate lists have 1 + this many entries when enough items exist). */
  negatives: number;
  /** `textualize --train-through` (default `train`): `valid` lets training see the valid item. */
  trainThrough?: "train" | "valid";
}

/**
 * Checks the docs/method.md section 3 invariants of a dataset directory against sequences the test
 * derived from the raw input itself; returns the records by split for further checks.
 */
export function checkDataset(dir: string, options: CheckOptions): Record<Split, TextRecord[]> {
  const { manifest, entities } = readDatasetMeta(dir);
  const kindOf = new Map<string, string>();
  const byId = new Map<string, string>();
  for (const e of entities) {
    assert.ok(!kindOf.has(e.entity), `entity "${e.entity}" is not unique`);
    assert.ok(e.entity !== "" && e.entity === e.entity.replace(/\s+/g, " ").trim());
    kindOf.set(e.entity, e.kind);
    if (e.kind === "item") byId.set(e.id, e.entity);
  }
  const heldOut = new Map(manifest.templates.map((t) => [t.id, t.heldOut]));
  const candidateLists = new Map<string, Map<string, string[]>>();
  for (const line of Deno.readTextFileSync(join(dir, "candidates.jsonl")).split("\n")) {
    if (line === "") continue;
    const { user, split, items } = JSON.parse(line) as CandidateLine;
    const lists = candidateLists.get(split) ?? new Map<string, string[]>();
    assert.ok(!lists.has(user), `candidates.jsonl: two lists for user ${user} in ${split}`);
    lists.set(user, items.map((id) => byId.get(id)!));
    candidateLists.set(split, lists);
  }
  const records = {} as Record<Split, TextRecord[]>;
  const ids = new Set<string>();
  const counts: Record<string, Record<string, Record<string, number>>> = {};
  for (const split of SPLITS) {
    const lines = Deno.readTextFileSync(join(dir, `${split}.jsonl`)).split("\n");
    assert.equal(lines.pop(), "", `${split}.jsonl must end with a line break`);
    records[split] = lines.map((line) => JSON.parse(line));
    // Records are written as plain JSON.stringify would write them (the writer splices shared
    // histories in for speed; the bytes must not change).
    lines.forEach((line, i) => assert.equal(JSON.stringify(records[split][i]), line));
    // Candidate lists live in candidates.jsonl, once per user and split, as item ids.
    for (const r of records[split]) {
      assert.equal(r.candidates, undefined, `${r.id}: inline candidates`);
    }
    const lists = candidateLists.get(split) ?? new Map<string, string[]>();
    for (const r of records[split]) {
      if (r.task === "sequential" || r.task === "direct") r.candidates = lists.get(r.user);
    }
    for (const r of records[split]) {
      assert.equal(r.split, split);
      assert.ok(!ids.has(r.id), `duplicate id ${r.id}`);
      ids.add(r.id);
      const c = ((counts[split] ??= {})[r.task] ??= {});
      c[r.template] = (c[r.template] ?? 0) + 1;
      assert.ok(heldOut.has(r.template), `${r.id}: template not in the manifest`);
      if (split === "train") assert.equal(heldOut.get(r.template), false, `${r.id} held out`);
      let answers = 0;
      r.segments.forEach((s, i) => {
        if ("answer" in s) answers++;
        if (i > 0 && !("text" in s)) {
          assert.ok("text" in r.segments[i - 1], `${r.id}: two non-text segments side by side`);
        }
        if ("entity" in s) assert.equal(kindOf.get(s.entity), s.kind, `${r.id}: ${s.entity}`);
      });
      assert.equal(answers, r.task === "profile" ? 0 : 1, `${r.id}: answer markers`);
      assert.equal(r.target === undefined, r.task === "profile", `${r.id}: target`);
      for (const t of r.target ?? []) {
        if ("entity" in t) assert.equal(kindOf.get(t.entity), t.kind);
      }
    }
  }
  assert.deepEqual(counts, manifest.counts);

  const users = new Set(SPLITS.flatMap((s) => records[s].map((r) => r.user)));
  assert.deepEqual([...users].sort(), [...options.sequences.keys()].sort());
  assert.equal(manifest.users, options.sequences.size);
  const itemsOf = (user: string) => options.sequences.get(user)!.map((id) => byId.get(id)!);
  const sharedLists = new Map<string, string>();
  for (const split of SPLITS) {
    const seenFamilies = new Map<string, string[]>();
    for (const r of records[split]) {
      const items = itemsOf(r.user);
      const n = items.length;
      const trainEnd = options.trainThrough === "valid" ? n - 1 : n - 2;
      const allowed = new Set(
        split === "train"
          ? items.slice(0, trainEnd)
          : items.slice(0, n - (split === "valid" ? 1 : 0)),
      );
      for (const e of mentions(r)) {
        if (kindOf.get(e) === "item") assert.ok(allowed.has(e), `${r.id} mentions held-out ${e}`);
      }
      if (split !== "train" && (r.task === "sequential" || r.task === "direct")) {
        const p = split === "valid" ? n - 2 : n - 1;
        assert.deepEqual(r.target, [{ entity: items[p], kind: "item" }], `${r.id} target`);
        assert.deepEqual(r.history, items.slice(0, p), `${r.id} history`);
        // Each history item of the prompt carries its age: 0 for the latest before the target.
        const aged = r.segments.filter((s) => "age" in s) as { entity: string; age: number }[];
        assert.ok(aged.length > 0 || r.history!.length === 0, `${r.id}: no ages`);
        for (const { entity, age } of aged) assert.equal(entity, items[p - 1 - age], r.id);
        assert.equal(new Set(aged.map((s) => s.age)).size, aged.length, `${r.id}: ages repeat`);
        const cands = r.candidates!;
        assert.equal(new Set(cands).size, cands.length, `${r.id}: repeated candidate`);
        assert.equal(cands.filter((c) => c === items[p]).length, 1);
        const owned = new Set(items);
        for (const c of cands) if (c !== items[p]) assert.ok(!owned.has(c), `${r.id}: owned ${c}`);
        const unseen = byId.size - owned.size;
        assert.equal(cands.length, 1 + Math.min(options.negatives, unseen), `${r.id} candidates`);
        const key = `${r.user}/${split}`;
        const json = JSON.stringify(cands);
        assert.equal(sharedLists.get(key) ?? json, json, `${r.id}: candidates differ`);
        sharedLists.set(key, json);
      }
      if (split !== "train") {
        const key = `${r.user}/${r.task}`;
        seenFamilies.set(key, [...(seenFamilies.get(key) ?? []), r.template]);
      }
    }
    for (const [key, templates] of seenFamilies) {
      const task = key.slice(key.lastIndexOf("/") + 1);
      const expectedHeldOut = manifest.templates.filter((t) => t.task === task && t.heldOut)
        .map((t) => t.id);
      assert.deepEqual(templates.filter((t) => heldOut.get(t)), expectedHeldOut, key);
      assert.equal(templates.filter((t) => !heldOut.get(t)).length, 1, `${key}: seen templates`);
    }
  }
  return records;
}

/** The textualize command line for the built-in demo dataset (as the report documents it). */
export const DEMO_ARGS = [
  "--format=csv",
  `--input=${fixture("demo", "interactions.csv")}`,
  `--users=${fixture("demo", "users.csv")}`,
  `--items=${fixture("demo", "items.csv")}`,
  "--seed=1",
  "--rating-per-user=3",
  "--explanation-per-user=2",
  "--review-per-user=2",
];

/**
 * `textualize` arguments for the demo's profiles and sequential prompts only (fast: a few
 * seconds), seed 1, into `out`, then `extra` (e.g. `--item-tokens title`).
 */
export function demoSequentialArgs(out: string, ...extra: string[]): string[] {
  return [
    "textualize",
    "--format=csv",
    `--input=${fixture("demo", "interactions.csv")}`,
    `--items=${fixture("demo", "items.csv")}`,
    "--tasks=profile,sequential",
    "--seed=1",
    "--quiet",
    `--out=${out}`,
    ...extra,
  ];
}

/** The demo's data as textualize reads it (its CSV files: interactions, users, items). */
export const DEMO_READ = {
  format: "csv",
  input: fixture("demo", "interactions.csv"),
  users: fixture("demo", "users.csv"),
  items: fixture("demo", "items.csv"),
} as const;

/**
 * The demo's profiles and sequential prompts (users' features included) textualized in this
 * process into `dir` (seed 1) with `itemTokens`, and opened.
 */
export async function demoSequentialDataset(
  dir: string,
  itemTokens: ItemTokenMode = "none",
): Promise<Dataset> {
  await textualize({
    read: DEMO_READ,
    records: { ...DEFAULT_RECORD_OPTIONS, seed: 1, tasks: ["profile", "sequential"], itemTokens },
    out: dir,
  });
  return await openDataset(dir);
}

/**
 * A small dataset of `users` users with `each` rated interactions over `items` items (user u's
 * t-th: item (7u + 3t) mod items, rating 1 + (u + t) mod 5), textualized with `tasks` into
 * `dir/data`; returns that directory.
 */
export async function gridDataset(
  dir: string,
  options: { users: number; each: number; items: number; tasks: readonly Task[] },
): Promise<string> {
  const rows = ["user_id,item_id,timestamp,rating"];
  for (let u = 0; u < options.users; u++) {
    for (let t = 0; t < options.each; t++) {
      rows.push(`u${u},I${(u * 7 + t * 3) % options.items},${t + 1},${1 + (u + t) % 5}`);
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  await Deno.mkdir(dir, { recursive: true });
  const input = join(dir, "interactions.csv");
  await Deno.writeTextFile(input, rows.join("\n") + "\n");
  const out = join(dir, "data");
  await textualize({
    read: { format: "csv", input },
    records: { ...DEFAULT_RECORD_OPTIONS, tasks: [...options.tasks] },
    out,
  });
  return out;
}
