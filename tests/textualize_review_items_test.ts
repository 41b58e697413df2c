/**
 * `textualize --format amazon-reviews --items FILE`: review data gets titles (and brands) from
 * Amazon's metadata JSON lines or a CSV table; items the file does not name keep their ASIN, and
 * entries for items nobody reviewed are ignored.
 *
 * @module
 */

import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp.ts";

/** Six reviewers, five reviews each over eight ASINs (A000..A007), seeded. */
function reviews(): string {
  const lines: string[] = [];
  for (let u = 0; u < 6; u++) {
    for (let k = 0; k < 5; k++) {
      const asin = `A00${(u + 2 * k) % 8}`;
      lines.push(JSON.stringify({
        reviewerID: `U${u}`,
        asin,
        overall: 1 + ((u + k) % 5),
        reviewText: "solid build and a clear sound",
        summary: "nice",
        unixReviewTime: 1_400_000_000 + u * 1000 + k,
      }));
    }
  }
  return lines.join("\n") + "\n";
}

async function items(dir: string, file: string, text: string | Uint8Array, ...extra: string[]) {
  const input = join(dir, "reviews.json");
  await Deno.writeTextFile(input, reviews());
  if (typeof text === "string") await Deno.writeTextFile(join(dir, file), text);
  else await Deno.writeFile(join(dir, file), text);
  const out = join(dir, `out-${file}`);
  const run = await runCli([
    "textualize",
    ...["--format", "amazon-reviews", "--input", input, "--items", join(dir, file)],
    ...["--out", out, "--quiet", ...extra],
  ]);
  assert.equal(run.code, 0, run.stderr);
  const entities: { entity: string; kind: string; id: string }[] = JSON.parse(
    await Deno.readTextFile(join(out, "entities.json")),
  );
  return { entities, out };
}

Deno.test("amazon-reviews --items: titles and brands from Amazon's metadata JSON lines", () =>
  withTempDir(async (dir) => {
    const meta = ["A000", "A001", "A002", "A003", "A004", "A005", "Z999"].map((asin) =>
      JSON.stringify({ asin, title: `String Set ${asin}`, brand: asin < "A002" ? "Acme" : "" })
    ).join("\n") + "\n";
    const { entities, out } = await items(dir, "meta.json", meta);
    const byId = new Map(
      entities.filter((e) =>
        e.kind === "item"
      ).map((e) => [e.id, e.entity]),
    );
    assert.equal(byId.get("A000"), "String Set A000");
    assert.equal(byId.get("A005"), "String Set A005");
    assert.equal(byId.get("A006"), "A006"); // not in the file: its ASIN
    assert.ok(!byId.has("Z999")); // nobody reviewed it
    assert.deepEqual(entities.filter((e) => e.kind === "brand").map((e) => e.entity), ["Acme"]);
    // The records name the items by their titles.
    const train = await Deno.readTextFile(join(out, "train.jsonl"));
    assert.match(train, /"entity":"String Set A00\d","kind":"item"/);
  }));

Deno.test("amazon-reviews --items: a CSV with asin and title; a duplicate asin names both lines", () =>
  withTempDir(async (dir) => {
    const { entities } = await items(
      dir,
      "items.csv",
      "asin,title\nA000,Pedal One\nA001,Pedal Two\n",
    );
    const byId = new Map(entities.map((e) => [e.id, e.entity]));
    assert.equal(byId.get("A000"), "Pedal One");
    assert.equal(byId.get("A002"), "A002");
    const input = join(dir, "reviews.json");
    await Deno.writeTextFile(join(dir, "dup.csv"), "asin,title\nA000,One\nA000,Again\n");
    const dup = await runCli([
      "textualize",
      ...["--format", "amazon-reviews", "--input", input, "--items", join(dir, "dup.csv")],
      ...["--out", join(dir, "dup"), "--quiet"],
    ]);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /dup\.csv line 3: item id "A000" already defined on line 2/);
  }));

Deno.test("amazon-reviews --items: --item-id-col and --title-col name JSON fields too; a table's delimiter follows its name or --delimiter", () =>
  withTempDir(async (dir) => {
    const meta = JSON.stringify({ parent_asin: "A000", name: "Capo", title: "not this" }) + "\n";
    const json = await items(
      dir,
      "meta.JSONL",
      meta,
      "--item-id-col",
      "parent_asin",
      "--title-col",
      "name",
    );
    assert.equal(new Map(json.entities.map((e) => [e.id, e.entity])).get("A000"), "Capo");
    const tsv = "asin\ttitle\nA000\tFirst, thing\n";
    for (
      const [file, text, extra] of [
        ["meta.tsv.gz", gzipSync(new TextEncoder().encode(tsv)), []],
        ["meta.TAB", tsv, []],
        ["meta.txt", tsv, ["--delimiter", "tab"]],
      ] as const
    ) {
      const { entities } = await items(dir, file, text, ...extra);
      assert.equal(
        new Map(entities.map((e) => [e.id, e.entity])).get("A000"),
        "First, thing",
        file,
      );
    }
    const input = join(dir, "reviews.json");
    const refused = await runCli([
      "textualize",
      ...["--format", "amazon-reviews", "--input", input, "--items", join(dir, "meta.JSONL")],
      ...["--delimiter", "tab", "--out", join(dir, "x"), "--quiet"],
    ]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(
      refused.stderr,
      /--delimiter is for an items table; .*meta\.JSONL is read as JSON lines/,
    );
    const alone = await runCli([
      "textualize",
      ...["--format", "amazon-reviews", "--input", input, "--delimiter", "tab"],
      ...["--out", join(dir, "y"), "--quiet"],
    ]);
    assert.equal(alone.code, 2, alone.stderr);
    assert.match(alone.stderr, /--delimiter is the separator of the items table: it needs --items/);
  }));

Deno.test("amazon-reviews: a rating of white space only is no rating, not a rating of 0", () =>
  withTempDir(async (dir) => {
    const input = join(dir, "reviews.json");
    const lines = reviews().trimEnd().split("\n");
    lines[0] = lines[0].replace(/"overall":\d/, '"overall":" "');
    await Deno.writeTextFile(input, lines.join("\n") + "\n");
    const out = join(dir, "out");
    const run = await runCli([
      "textualize",
      ...["--format", "amazon-reviews", "--input", input, "--out", out, "--quiet"],
    ]);
    assert.equal(run.code, 0, run.stderr);
    const manifest = JSON.parse(await Deno.readTextFile(join(out, "manifest.json")));
    assert.ok(manifest.counts.train.rating, "the other reviews still give rating prompts");
  }));

Deno.test("amazon-reviews --items: the 2014 metadata, Python dict literals rather than JSON, gives titles and brands", () =>
  withTempDir(async (dir) => {
    const meta = [
      "{'asin': 'A000', 'title': \"Kid's String Set\", 'brand': 'Acme', 'related': {'also_bought': ['A001']}, 'price': 6.99}",
      "{'asin': 'A001', 'title': 'Capo \\xe9', 'salesRank': {'Musical Instruments': 12}, 'categories': [['Music']]}",
    ].join("\n") + "\n";
    const { entities } = await items(dir, "meta_Musical_Instruments.json", meta);
    const byId = new Map(entities.filter((e) => e.kind === "item").map((e) => [e.id, e.entity]));
    assert.equal(byId.get("A000"), "Kid's String Set");
    assert.equal(byId.get("A001"), "Capo é");
    assert.deepEqual(entities.filter((e) => e.kind === "brand").map((e) => e.entity), ["Acme"]);
    // Neither JSON nor a literal: one line naming the line.
    await Deno.writeTextFile(join(dir, "bad.json"), meta + "{'asin': 'A002', 'title': oops}\n");
    const run = await runCli([
      "textualize",
      ...["--format", "amazon-reviews", "--input", join(dir, "reviews.json")],
      ...["--items", join(dir, "bad.json"), "--out", join(dir, "bad"), "--quiet"],
    ]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(
      run.stderr,
      /bad\.json line 3: neither JSON nor a Python dict literal \(unexpected "o" at column \d+\)/,
    );
  }));

Deno.test("amazon-reviews --items: a metadata line repeated alike is accepted, one that names the item otherwise is refused", () =>
  withTempDir(async (dir) => {
    const line = (title: string) => JSON.stringify({ asin: "A000", title, brand: "Acme" });
    const { entities } = await items(
      dir,
      "meta.json",
      [line("Capo"), line("Capo")].join("\n") + "\n",
    );
    assert.equal(new Map(entities.map((e) => [e.id, e.entity])).get("A000"), "Capo");
    await Deno.writeTextFile(
      join(dir, "two.json"),
      [line("Capo"), line("Capo"), line("Tuner")].join("\n") + "\n",
    );
    const run = await runCli([
      "textualize",
      ...["--format", "amazon-reviews", "--input", join(dir, "reviews.json")],
      ...["--items", join(dir, "two.json"), "--out", join(dir, "two"), "--quiet"],
    ]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /two\.json line 3: item id "A000" already defined on line 1/);
  }));

Deno.test("amazon-reviews --items: a dict literal whose first key is u'' is read; items nobody reviewed and repeated lines are counted", () =>
  withTempDir(async (dir) => {
    const meta = [
      "{u'asin': u'A000', u'title': u'Caf\\xe9 Tutu', u'brand': u'Acme'}",
      "{u'asin': u'A000', u'title': u'Caf\\xe9 Tutu', u'brand': u'Acme'}",
      '{"asin": "Z998", "title": "Never reviewed"}',
      "{'asin': 'Z999', 'title': 'Never reviewed either'}",
    ].join("\n") + "\n";
    const { entities, out } = await items(dir, "meta.json", meta);
    const byId = new Map(entities.filter((e) => e.kind === "item").map((e) => [e.id, e.entity]));
    assert.equal(byId.get("A000"), "Café Tutu");
    const manifest = JSON.parse(await Deno.readTextFile(join(out, "manifest.json")));
    const skipped = new Map(
      manifest.skipped.map((s: { reason: string; count: number }) => [s.reason, s.count]),
    );
    assert.equal(skipped.get("items-file items nobody reviewed (not in the entity pool)"), 2);
    assert.equal(
      skipped.get("items-file lines repeating an earlier line of their item alike"),
      1,
    );
  }));

Deno.test("amazon-reviews: the rating scale is 1-5 whatever the training ratings span", () =>
  withTempDir(async (dir) => {
    // Training ratings 5 and 4 only; the held-out ones 1 and 2.
    const input = join(dir, "r.json");
    await Deno.writeTextFile(
      input,
      [5, 4, 1, 2].map((overall, k) =>
        JSON.stringify({ reviewerID: "R1", asin: `A${k}`, overall, unixReviewTime: k + 1 })
      ).join("\n") + "\n",
    );
    const out = join(dir, "out");
    const run = await runCli([
      "textualize",
      ...["--format", "amazon-reviews", "--input", input, "--out", out, "--quiet"],
      ...["--negatives", "1"],
    ]);
    assert.equal(run.code, 0, run.stderr);
    const manifest = JSON.parse(await Deno.readTextFile(join(out, "manifest.json")));
    assert.deepEqual(manifest.rating_scale, [1, 5]);
    const test = await Deno.readTextFile(join(out, "test.jsonl"));
    assert.doesNotMatch(test, /from 4 to 5/);
  }));
