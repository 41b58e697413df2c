/**
 * The pieces of textualize one by one: text helpers, the entity pool's naming rules, preference
 * windows, candidate sampling, time ordering of the splits, and the template table.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CandidateSampler } from "../lib/data/candidates.ts";
import { buildEntityPool } from "../lib/data/entities.ts";
import { type InteractionLog, LogBuilder } from "../lib/data/log.ts";
import { preferenceWindows, samplePositions, topValues } from "../lib/data/profile.ts";
import { SegmentBuilder } from "../lib/data/segments.ts";
import { userSequences } from "../lib/data/splits.ts";
import { type TaskInputs, TEMPLATES } from "../lib/data/templates.ts";
import {
  capWords,
  explanationSentence,
  foldLines,
  foldSpace,
  formatRating,
  sentences,
} from "../lib/data/text.ts";
import { TASKS, type TextRecord } from "../lib/data/types.ts";
import { InputError } from "../lib/errors.ts";
import { Rng } from "../lib/random.ts";
import { runCli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp.ts";

Deno.test("white space folds, words cap, sentences cut at . ! ? and line breaks", () => {
  assert.equal(foldSpace("  a \t b\n\nc "), "a b c");
  // Decomposed accents are composed (NFC), as tokenizers' normalizers compose them.
  assert.equal(foldSpace("Cafe\u0301  Tutu"), "Caf\u00e9 Tutu");
  assert.equal(foldLines("Cre\u0300me\nbru\u0302le\u0301e"), "Cr\u00e8me\nbr\u00fbl\u00e9e");
  assert.equal(capWords("one two three four", 2), "one two");
  assert.equal(capWords("one two", 5), "one two");
  assert.deepEqual(sentences("Great strings! Stay in tune.\nWould buy again"), [
    "Great strings!",
    "Stay in tune.",
    "Would buy again",
  ]);
  assert.deepEqual(sentences("Version 2.5 works... really well?! Yes"), [
    "Version 2.5 works...",
    "really well?!",
    "Yes",
  ]);
});

Deno.test("the explanation is the first sentence of at least N words, capped", () => {
  assert.equal(
    explanationSentence("Nice. Ok then. This one is good for me.", 4, 30),
    "This one is good for me.",
  );
  assert.equal(explanationSentence("Ok. Fine.", 4, 30), undefined);
  assert.equal(explanationSentence("one two three four five six", 4, 3), "one two three");
});

Deno.test("ratings print as integers or shortest decimals", () => {
  assert.equal(formatRating(4), "4");
  assert.equal(formatRating(5.0), "5");
  assert.equal(formatRating(3.5), "3.5");
  assert.equal(formatRating(0.1 + 0.2), "0.30000000000000004");
});

function logWith(fill: (b: LogBuilder) => void): InteractionLog {
  const b = new LogBuilder("test", "t.csv");
  fill(b);
  return b.build();
}

Deno.test("entity names: repeated titles get labels, colliding attribute values their kind", () => {
  const log = logWith((b) => {
    b.setUserFeatureNames(["age", "city"]);
    b.defineUser("u1", ["25-34", "Aurora"]);
    b.setItemAttrNames(["brand"]);
    b.defineItem("1", { label: "B01", title: "Lip  Balm", attrs: [["Aurora"]] });
    b.defineItem("2", { label: "B02", title: "Lip Balm", attrs: [["Nimbus"]] });
    b.defineItem("3", { label: "B03", title: "Aurora", attrs: [["Nimbus"]] });
    b.defineItem("4", { label: "B04", title: "", attrs: [[""]] });
    b.defineItem("5", { label: "B05", title: "a b c d e f", attrs: [["25-34"]] });
    b.defineItem("6", { label: "B06", title: "Never Bought" });
    for (const item of ["1", "2", "3", "4", "5"]) b.addInteraction("u1", item, {}, 2);
  });
  const pool = buildEntityPool(log, {
    items: Uint8Array.from([1, 1, 1, 1, 1, 0]),
    users: Uint8Array.from([1]),
    maxWords: 3,
  });
  assert.deepEqual(pool.entries, [
    { entity: "Aurora", kind: "item", id: "3" },
    { entity: "B04", kind: "item", id: "4" },
    { entity: "Lip Balm (B01)", kind: "item", id: "1" },
    { entity: "Lip Balm (B02)", kind: "item", id: "2" },
    { entity: "a b c", kind: "item", id: "5" },
    { entity: "25-34 (age)", kind: "age", id: "25-34" },
    { entity: "25-34 (brand)", kind: "brand", id: "25-34" },
    { entity: "Aurora (brand)", kind: "brand", id: "Aurora" },
    { entity: "Nimbus", kind: "brand", id: "Nimbus" },
    { entity: "Aurora (city)", kind: "city", id: "Aurora" },
  ]);
  assert.equal(pool.items[5], undefined);
  assert.equal(pool.attr("city", "Aurora"), "Aurora (city)");
});

Deno.test("entity names stay unique even when a suffixed name exists as a title", () => {
  const log = logWith((b) => {
    b.defineItem("1", { label: "X", title: "Mug" });
    b.defineItem("2", { label: "Y", title: "Mug" });
    b.defineItem("3", { label: "Z", title: "Mug (X)" });
    for (const item of ["1", "2", "3"]) b.addInteraction("u", item, {}, 2);
  });
  const pool = buildEntityPool(log, {
    items: Uint8Array.from([1, 1, 1]),
    users: Uint8Array.from([1]),
  });
  const names = pool.entries.map((e) => e.entity);
  assert.equal(new Set(names).size, 3);
  assert.ok(names.includes("Mug (Y)"));
});

Deno.test("a labelled name keeps to the character cap: its title is cut to leave the label room", () => {
  const log = logWith((b) => {
    b.defineItem("a", { label: "a", title: "Alpha Shampoo Deluxe Edition" });
    b.defineItem("b", { label: "b", title: "Alpha Shampoo Deluxe Version" });
    b.defineItem("c", { label: "c", title: "C" });
    for (const item of ["a", "b", "c"]) b.addInteraction("u", item, {}, 2);
  });
  const pool = buildEntityPool(log, {
    items: Uint8Array.from([1, 1, 1]),
    users: Uint8Array.from([1]),
    maxChars: 20,
  });
  // Cut to 20 ("Alpha Shampoo Deluxe"), the two collide; with " (a)" they keep 16 characters.
  assert.deepEqual(pool.entries.map((e) => e.entity), [
    "Alpha Shampoo (a)",
    "Alpha Shampoo (b)",
    "C",
  ]);
  for (const e of pool.entries) assert.ok(Array.from(e.entity).length <= 20, e.entity);
  assert.deepEqual(pool.cut.map((c) => [c.id, c.entity, c.chars]), [
    ["a", "Alpha Shampoo (a)", 28],
    ["b", "Alpha Shampoo (b)", 28],
  ]);
});

Deno.test("the log refuses rows with and without timestamps mixed, and empty input", () => {
  assert.throws(
    () =>
      logWith((b) => {
        b.addInteraction("u", "1", { time: 5 }, 2);
        b.addInteraction("u", "2", {}, 3);
      }),
    (e: Error) =>
      e instanceof InputError && e.message.startsWith("t.csv line 3: row has no timestamp"),
  );
  assert.throws(() => logWith(() => {}), /t\.csv: empty input/);
});

Deno.test("a review keeps its line breaks until it is cut into sentences", () => {
  const log = logWith((b) => {
    b.addInteraction("u", "1", { review: "Great  strings\r\n\n They stay in tune for weeks " }, 2);
    b.addInteraction("u", "2", { review: "One line,\t folded" }, 3);
  });
  assert.deepEqual(log.review, ["Great strings\nThey stay in tune for weeks", "One line, folded"]);
  // The explanation is the first sentence of 4+ words, not the first line joined to the next.
  assert.equal(explanationSentence(log.review![0], 4, 30), "They stay in tune for weeks");
  assert.equal(foldLines(" \n \r\n"), "");
});

Deno.test("textualize: explanations from multi-line reviews are their first long sentence; review prompts stay one line", async () => {
  await withTempDir(async (dir) => {
    const rows = [
      'u1,a,1,"Great strings\nThey stay in tune for weeks and sound warm",Good',
      'u1,b,2,"Fine\r\nThe pick holds up well under heavy use",Ok',
      'u1,c,3,"Meh\nNot what I expected from this brand at all",Meh',
      'u1,d,4,"Bad\nBroke after two days of light playing sadly",Bad',
    ];
    await Deno.writeTextFile(
      join(dir, "inter.csv"),
      "user_id,item_id,timestamp,review,summary\n" + rows.join("\n") + "\n",
    );
    const out = join(dir, "out");
    const run = await runCli([
      "textualize",
      "--format=csv",
      `--input=${join(dir, "inter.csv")}`,
      "--tasks=explanation,review",
      `--out=${out}`,
      "--quiet",
    ]);
    assert.equal(run.code, 0, run.stderr);
    const records = ["train", "valid", "test"].flatMap((split) =>
      Deno.readTextFileSync(join(out, `${split}.jsonl`)).trim().split("\n").map((l) =>
        JSON.parse(l) as TextRecord
      )
    );
    const explanations = new Set(
      records.filter((r) => r.task === "explanation").map((r) => JSON.stringify(r.target)),
    );
    assert.deepEqual(
      [...explanations].sort(),
      [
        "They stay in tune for weeks and sound warm",
        "The pick holds up well under heavy use",
        "Not what I expected from this brand at all",
        "Broke after two days of light playing sadly",
      ].map((text) => JSON.stringify([{ text }])).sort(),
    );
    // Review prompts quote the review folded onto one line, as before.
    const quoted = records.filter((r) => r.task === "review")
      .map((r) => r.segments.map((s) => "text" in s ? s.text : "").join(""))
      .filter((text) => text.includes("Great"));
    assert.ok(quoted.length > 0);
    for (const text of quoted) assert.match(text, /: "?Great strings They stay in tune/, text);
  });
});

Deno.test("splits sort by time with ties in input order, and count users too short to split", () => {
  const log = logWith((b) => {
    b.addInteraction("a", "1", { time: 30 }, 2);
    b.addInteraction("b", "1", { time: 1 }, 3);
    b.addInteraction("a", "2", { time: 10 }, 4);
    b.addInteraction("a", "3", { time: 30 }, 5);
    b.addInteraction("a", "4", { time: 20 }, 6);
    b.addInteraction("b", "2", { time: 2 }, 7);
  });
  const seqs = userSequences(log);
  assert.equal(seqs.skipped, 1);
  assert.deepEqual([...seqs.users], [0]);
  assert.deepEqual([...seqs.order].map((i) => log.items[log.item[i]]), ["2", "4", "1", "3"]);
});

Deno.test("preference windows by time (relative to the last interaction) and by position", () => {
  const day = 86400;
  const times = [0, 10 * day, 200 * day, 250 * day, 290 * day, 296 * day, 300 * day];
  const w = { shortDays: 7, mediumDays: 90, shortItems: 3, mediumItems: 10 };
  // short: > day 293 -> 296, 300; medium: > day 210 -> 250, 290; long: the rest
  assert.deepEqual(preferenceWindows(7, times, w), { longEnd: 3, mediumEnd: 5 });
  assert.deepEqual(preferenceWindows(12, undefined, w), { longEnd: 2, mediumEnd: 9 });
  assert.deepEqual(preferenceWindows(2, undefined, w), { longEnd: 0, mediumEnd: 0 });
});

Deno.test("window samples are distinct, in order, and seeded", () => {
  const a = samplePositions(new Rng(4), 10, 30, 5);
  assert.deepEqual(a, samplePositions(new Rng(4), 10, 30, 5));
  assert.equal(new Set(a).size, 5);
  assert.deepEqual(a, [...a].sort((x, y) => x - y));
  assert.ok(a.every((p) => p >= 10 && p < 30));
  assert.deepEqual(samplePositions(new Rng(4), 3, 5, 9), [3, 4]);
  assert.deepEqual(topValues(["b", "a", "b", "a", "c", "d", "d", "d"], 2), ["d", "a"]);
  assert.deepEqual(topValues(["x", "y"], 2), []);
});

Deno.test("candidates: the target plus unseen pool items, seeded, sparse and dense alike", () => {
  const pool = Int32Array.from({ length: 1000 }, (_, i) => i);
  const sampler = new CandidateSampler(pool, 1000);
  const owned = [5, 6, 7, 8];
  for (const negatives of [99, 900, 996, 2000]) {
    const list = sampler.draw(new Rng(1), owned, 8, negatives);
    assert.equal(list.length, 1 + Math.min(negatives, 996));
    assert.equal(new Set(list).size, list.length);
    assert.equal(list.filter((i) => owned.includes(i)).join(), "8");
    assert.deepEqual(sampler.draw(new Rng(1), owned, 8, negatives), list);
  }
  // Uniform over the unseen items: every item turns up about equally often.
  const hits = new Int32Array(1000);
  const rng = new Rng(9);
  for (let i = 0; i < 2000; i++) for (const item of sampler.draw(rng, owned, 8, 99)) hits[item]++;
  const counts = [...hits].filter((_, i) => !owned.includes(i));
  const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
  assert.ok(Math.abs(mean - 198.8) < 1, `${mean}`);
  assert.ok(Math.max(...counts) < 260 && Math.min(...counts) > 140);
});

Deno.test("segments never put two entities side by side, and hold one answer", () => {
  const b = new SegmentBuilder().text("a").text("b").entity("X", "item");
  assert.throws(() => b.entity("Y", "item"), /template bug/);
  b.text(" ").answer();
  assert.throws(() => b.text(" ").answer(), /two answer markers/);
  assert.deepEqual(
    new SegmentBuilder().list([{ entity: "A", kind: "k" }, { entity: "B", kind: "k" }, {
      entity: "C",
      kind: "k",
    }]).build().map((s) => "text" in s ? s.text : "entity" in s ? s.entity : "?").join(""),
    "A, B and C",
  );
});

Deno.test("every family has 3+ templates, one or more held out, each rendering valid segments", () => {
  const user = {
    id: "7",
    features: [{ name: "age_band", values: [{ entity: "25-34", kind: "age_band" }] }],
    favourites: [{ name: "brand", values: [{ entity: "Lumora", kind: "brand" }] }],
  };
  const bare = { id: "7", features: [], favourites: [] };
  const item = {
    entity: "Rose Shampoo",
    attrs: [{ name: "brand", values: [{ entity: "Lumora", kind: "brand" }] }],
  };
  const inputs = (u: typeof user): { [T in keyof TaskInputs]: TaskInputs[T][] } => ({
    profile: [{ user: u, long: ["A"], medium: ["B", "C"], short: [] }, {
      user: u,
      long: [],
      medium: [],
      short: ["A"],
    }],
    rating: [{ user: u, item, scale: [1, 5], recent: ["A", "B"] }, {
      user: u,
      item,
      scale: [1, 5],
      recent: [],
    }],
    sequential: [{ user: u, history: ["A"] }, { user: u, history: ["A", "B", "C"] }],
    explanation: [{ user: u, item, rating: "4" }, { user: u, item: { entity: "X", attrs: [] } }],
    review: [{ user: u, item, review: "Nice one." }],
    direct: [{ user: u, recent: ["A", "B"] }, { user: u, recent: [] }],
  });
  const ids = new Set<string>();
  for (const task of TASKS) {
    const templates = TEMPLATES[task];
    assert.ok(templates.length >= (task === "profile" ? 1 : 3), task);
    if (task !== "profile") assert.ok(templates.some((t) => t.heldOut), task);
    assert.ok(templates.some((t) => !t.heldOut), task);
    for (const t of templates) {
      assert.ok(!ids.has(t.id));
      ids.add(t.id);
      for (const input of [...inputs(user)[task], ...inputs(bare)[task]]) {
        const segments = (t.render as (i: unknown) => ReturnType<typeof t.render>)(input);
        const answers = segments.filter((s) => "answer" in s).length;
        assert.equal(answers, task === "profile" ? 0 : 1, t.id);
        segments.forEach((s, i) => {
          if (i > 0 && !("text" in s)) assert.ok("text" in segments[i - 1], t.id);
          if ("text" in s) assert.ok(s.text !== "", t.id);
        });
      }
    }
  }
});
