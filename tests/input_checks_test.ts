/**
 * Inputs validated where they enter (issue 29, points 5 and 7), through the CLI: an entity too
 * long for the model is cut by textualize (with a warning) or refused by init with the item, its
 * length in tokens and the flag that cuts it; an empty training split, a named task the input
 * cannot give, ratings outside a declared or known scale are one-line errors that leave nothing
 * behind; a task without training records, empty validation and test splits, ratings far
 * outside the range of the others and millisecond timestamps read as such are warnings with the
 * count.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { exists, fixture, readRecords } from "./helpers/textualize.ts";
import { withTempDir } from "./helpers/temp.ts";
import type { EntityEntry } from "../lib/data/types.ts";

/** A seeded stream of integers in [0, n), so the fixtures are the same every run. */
function lcg(seed: number): (n: number) => number {
  let s = seed;
  return (n) => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return Math.floor(s / 65536) % n; // the high bits: the low ones of an LCG cycle
  };
}

/** One interaction row. */
interface Row {
  user: string;
  item: string;
  time: number;
  rating: number;
}

/** `users` users with `per` interactions each over `items` items, timestamps in seconds. */
function rows(users: number, per: number, items = 30, seed = 7): Row[] {
  const next = lcg(seed);
  const out: Row[] = [];
  for (let u = 0; u < users; u++) {
    for (let k = 0; k < per; k++) {
      out.push({
        user: `U${u}`,
        item: `I${next(items)}`,
        time: 1_600_000_000 + u * 10_000 + k * 60,
        rating: 1 + next(5),
      });
    }
  }
  return out;
}

function csv(list: Row[], time = (r: Row) => String(r.time)): string {
  return "user_id,item_id,timestamp,rating\n" +
    list.map((r) => `${r.user},${r.item},${time(r)},${r.rating}\n`).join("");
}

/** An items table of `items` short titles, item `I7` titled with one 4,000-character word. */
function itemsCsv(items = 30): string {
  const next = lcg(3);
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const long = Array.from({ length: 4000 }, () => alphabet[next(alphabet.length)]).join("");
  const lines = ["item_id,title"];
  for (let i = 0; i < items; i++) lines.push(`I${i},${i === 7 ? long : `Soft travel brush ${i}`}`);
  return lines.join("\n") + "\n";
}

/** Runs textualize on `files` written into `dir`; `args` may name `DIR/<file>`. */
async function textualize(dir: string, files: Record<string, string>, args: string[]) {
  for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(join(dir, name), text);
  return await runCli([
    "textualize",
    "--format=csv",
    ...args.map((a) => a.replaceAll("DIR", dir)),
    "--quiet",
  ]);
}

/** The lines of stderr that start with `warning: `. */
function warnings(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l.startsWith("warning: "));
}

/** Asserts one error line matching `pattern`, exit `code`, nothing on stdout and no `out`. */
function assertRefused(
  run: { code: number; stdout: string; stderr: string },
  pattern: RegExp,
  out: string,
  code = 1,
) {
  assert.equal(run.code, code, run.stderr);
  assert.equal(run.stdout, "");
  const errors = run.stderr.split("\n").filter((l) => l.startsWith("error: "));
  assert.equal(errors.length, 1, run.stderr);
  assert.match(errors[0], pattern);
  assert.ok(!exists(out), `${out} was written`);
}

// ---- point 5: an entity longer than the model's length ----

Deno.test("textualize cuts a title without spaces to --max-entity-chars, with one warning naming the item", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "data");
    const run = await textualize(dir, {
      "inter.csv": csv(rows(40, 6)),
      "items.csv": itemsCsv(),
    }, ["--input=DIR/inter.csv", "--items=DIR/items.csv", `--out=${out}`]);
    assert.equal(run.code, 0, run.stderr);
    const lines = warnings(run.stderr);
    assert.equal(lines.length, 1, run.stderr);
    assert.match(
      lines[0],
      /^warning: 1 entity cut to 256 characters \(--max-entity-chars\): item "I7" \(4000 characters: "[a-z0-9]{40}…"\)$/,
    );
    const entities: EntityEntry[] = JSON.parse(await Deno.readTextFile(join(out, "entities.json")));
    const i7 = entities.find((e) => e.id === "I7")!;
    assert.equal(i7.entity.length, 256);
    const manifest = JSON.parse(await Deno.readTextFile(join(out, "manifest.json")));
    assert.equal(manifest.options.max_entity_chars, 256);
    // Every other title is whole.
    assert.ok(entities.filter((e) => e.id !== "I7").every((e) => e.entity.startsWith("Soft")));
  });
});

Deno.test("init refuses a dataset whose entity cannot fit the model, naming the item, its tokens and the flag", async () => {
  await withTempDir(async (dir) => {
    const data = join(dir, "data");
    const made = await textualize(dir, {
      "inter.csv": csv(rows(40, 6)),
      "items.csv": itemsCsv(),
    }, [
      "--input=DIR/inter.csv",
      "--items=DIR/items.csv",
      `--out=${data}`,
      "--max-entity-chars=0",
    ]);
    assert.equal(made.code, 0, made.stderr);
    assert.deepEqual(warnings(made.stderr), []);
    const model = join(dir, "model");
    const run = await runCli(["init", `--data=${data}`, "--preset=tiny", `--out=${model}`]);
    assertRefused(
      run,
      /^error: .*entities\.json: item "I7" \("[a-z0-9]{32}…", 4000 characters\) is \d{3,4} tokens, more than the 480 an entity may take within the maximum length 512 \(the tiny preset's max_sequence_length\); textualize the data again with --max-entity-chars \d+ to cut long titles$/,
      model,
    );
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "data",
      "inter.csv",
      "items.csv",
    ]);
    // The flag the message names fixes it: the same data cut as it says initializes.
    const suggested = /--max-entity-chars (\d+)/.exec(run.stderr)![1];
    const again = await textualize(dir, {}, [
      "--input=DIR/inter.csv",
      "--items=DIR/items.csv",
      `--out=${data}`,
      `--max-entity-chars=${suggested}`,
    ]);
    assert.equal(again.code, 0, again.stderr);
    const ok = await runCli(["init", `--data=${data}`, "--preset=tiny", `--out=${model}`]);
    assert.equal(ok.code, 0, ok.stderr);
  });
});

// ---- point 7: empty splits, tasks that cannot be built ----

Deno.test("textualize refuses a dataset without training records, saying why and how many users", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "data");
    const run = await textualize(dir, { "inter.csv": csv(rows(5, 3)) }, [
      "--input=DIR/inter.csv",
      `--out=${out}`,
      "--tasks=sequential,direct",
    ]);
    assertRefused(
      run,
      /^error: .*inter\.csv: no training records for 5 users \(sequential: it needs users with 4 or more interactions, and none of the 5 has more than 3; direct: it needs users with 4 or more interactions, and none of the 5 has more than 3\)$/,
      out,
    );
  });
});

Deno.test("textualize refuses a task named with --tasks that the input cannot give, naming the flag", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "data");
    const run = await textualize(dir, { "inter.csv": csv(rows(5, 5)) }, [
      "--input=DIR/inter.csv",
      `--out=${out}`,
      "--tasks=sequential,review",
    ]);
    assertRefused(
      run,
      /^error: .*inter\.csv: --tasks names review, but the input has no review texts; --review-col and --summary-col name the columns$/,
      out,
    );
    // Without --tasks the family is skipped as before, and the dataset is written.
    const all = await textualize(dir, {}, ["--input=DIR/inter.csv", `--out=${out}`]);
    assert.equal(all.code, 0, all.stderr);
    assert.deepEqual(warnings(all.stderr), []);
  });
});

Deno.test("a task without training records and empty test splits are warnings with the count", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "data");
    const run = await textualize(dir, { "inter.csv": csv(rows(6, 3)) }, [
      "--input=DIR/inter.csv",
      `--out=${out}`,
      "--tasks=sequential,rating",
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(warnings(run.stderr).map((l) => l.replace(dir, "DIR")), [
      "warning: DIR/inter.csv: no training records of sequential for 6 users: it needs users " +
      "with 4 or more interactions, and none of the 6 has more than 3",
    ]);
    assert.equal(readRecords(join(out, "train.jsonl")).length, 6); // one rating each
    const profile = await textualize(dir, {}, [
      "--input=DIR/inter.csv",
      `--out=${out}`,
      "--tasks=profile",
    ]);
    assert.equal(profile.code, 0, profile.stderr);
    assert.deepEqual(warnings(profile.stderr).map((l) => l.replace(dir, "DIR")), [
      "warning: DIR/inter.csv: valid.jsonl and test.jsonl hold no records: profile has no " +
      "prompts (infer and eval need a task that has)",
    ]);
  });
});

// ---- point 7: ratings outside the scale ----

Deno.test("a rating outside --rating-scale is an error naming the file and line", async () => {
  await withTempDir(async (dir) => {
    const list = rows(10, 4);
    list[9].rating = 50; // line 11 (the header is line 1)
    const out = join(dir, "data");
    const run = await textualize(dir, { "inter.csv": csv(list) }, [
      "--input=DIR/inter.csv",
      `--out=${out}`,
      "--rating-scale=1-5",
    ]);
    assertRefused(
      run,
      /^error: .*inter\.csv line 11: rating 50 is outside the rating scale 1-5 \(--rating-scale\)$/,
      out,
    );
    const bad = await textualize(dir, {}, [
      "--input=DIR/inter.csv",
      `--out=${out}`,
      "--rating-scale=5-1",
    ]);
    assertRefused(bad, /^error: --rating-scale must be MIN-MAX with MIN below MAX/, out, 2);
  });
});

Deno.test("a declared --rating-scale is the dataset's scale even when the data does not reach it", async () => {
  await withTempDir(async (dir) => {
    const list = rows(10, 4).map((r) => ({ ...r, rating: 2 + (r.rating % 3) })); // 2..4
    const out = join(dir, "data");
    const run = await textualize(dir, { "inter.csv": csv(list) }, [
      "--input=DIR/inter.csv",
      `--out=${out}`,
      "--rating-scale=1..5",
    ]);
    assert.equal(run.code, 0, run.stderr);
    const manifest = JSON.parse(await Deno.readTextFile(join(out, "manifest.json")));
    assert.deepEqual(manifest.rating_scale, [1, 5]);
  });
});

Deno.test("an Amazon review rated outside 1-5 stars is an error naming the line", async () => {
  await withTempDir(async (dir) => {
    const lines = rows(4, 4).map((r, i) =>
      JSON.stringify({
        reviewerID: r.user,
        asin: r.item,
        overall: i === 6 ? 0 : r.rating,
        unixReviewTime: r.time,
      })
    );
    const out = join(dir, "data");
    await Deno.writeTextFile(join(dir, "r.json"), lines.join("\n") + "\n");
    const run = await runCli([
      "textualize",
      "--format=amazon-reviews",
      `--input=${join(dir, "r.json")}`,
      `--out=${out}`,
      "--quiet",
    ]);
    assertRefused(
      run,
      /^error: .*r\.json line 7: rating 0 is outside the rating scale 1-5 \(Amazon reviews rate 1-5 stars; --rating-scale declares another\)$/,
      out,
    );
  });
});

Deno.test("without a declared scale, ratings far outside the others are a warning with the count and first line", async () => {
  await withTempDir(async (dir) => {
    const list = rows(300, 4);
    list[41].rating = 50; // line 43
    list[700].rating = 50;
    const out = join(dir, "data");
    const run = await textualize(dir, { "inter.csv": csv(list) }, [
      "--input=DIR/inter.csv",
      `--out=${out}`,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(warnings(run.stderr).map((l) => l.replace(dir, "DIR")), [
      "warning: DIR/inter.csv: 2 of 1200 ratings lie far outside 1-5, the range of the others " +
      "(first: 50 on line 43); undeclared, the rating scale is the range of the training " +
      "ratings, which they widen (and as held-out targets they lie outside it): declare it " +
      "with --rating-scale MIN-MAX to reject them",
    ]);
    // A rare value at an end of the scale is no outlier: the demo's 1-star ratings are 0.35%.
    const demo = await runCli([
      "textualize",
      "--format=csv",
      `--input=${fixture("demo", "interactions.csv")}`,
      `--out=${out}`,
      "--quiet",
    ]);
    assert.equal(demo.code, 0, demo.stderr);
    assert.deepEqual(warnings(demo.stderr), []);
    // Ratings within the scale give no warning, whatever their spread.
    const clean = await textualize(dir, { "clean.csv": csv(rows(300, 4)) }, [
      "--input=DIR/clean.csv",
      `--out=${out}`,
    ]);
    assert.equal(clean.code, 0, clean.stderr);
    assert.deepEqual(warnings(clean.stderr), []);
  });
});

// ---- point 7: millisecond timestamps ----

Deno.test("millisecond timestamps are read as milliseconds, with a notice: the records equal those of seconds", async () => {
  await withTempDir(async (dir) => {
    const list = rows(12, 8);
    const seconds = await textualize(dir, { "s.csv": csv(list) }, [
      "--input=DIR/s.csv",
      `--out=${join(dir, "s")}`,
    ]);
    assert.equal(seconds.code, 0, seconds.stderr);
    assert.deepEqual(warnings(seconds.stderr), []);
    const ms = await textualize(dir, { "ms.csv": csv(list, (r) => `${r.time}000`) }, [
      "--input=DIR/ms.csv",
      `--out=${join(dir, "ms")}`,
    ]);
    assert.equal(ms.code, 0, ms.stderr);
    const notes = warnings(ms.stderr);
    assert.equal(notes.length, 1, ms.stderr);
    assert.match(
      notes[0],
      /^warning: .*ms\.csv: timestamps read as milliseconds \(line \d+ has 1600\d{6}000, after the year 5000 as seconds\); --timestamp-unit s reads them as seconds$/,
    );
    for (const file of ["train.jsonl", "valid.jsonl", "test.jsonl", "candidates.jsonl"]) {
      assert.equal(
        await Deno.readTextFile(join(dir, "ms", file)),
        await Deno.readTextFile(join(dir, "s", file)),
        file,
      );
    }
    const manifest = JSON.parse(await Deno.readTextFile(join(dir, "ms", "manifest.json")));
    assert.equal(manifest.options.timestamp_unit, "ms");
    // --timestamp-unit ms says so without a notice.
    const said = await textualize(dir, {}, [
      "--input=DIR/ms.csv",
      `--out=${join(dir, "ms")}`,
      "--timestamp-unit=ms",
    ]);
    assert.equal(said.code, 0, said.stderr);
    assert.deepEqual(warnings(said.stderr), []);
  });
});

Deno.test("a column mixing seconds and milliseconds is an error naming the line", async () => {
  await withTempDir(async (dir) => {
    const list = rows(4, 4);
    const out = join(dir, "data");
    const run = await textualize(dir, {
      "inter.csv": csv(list, (r) => (r === list[5] ? String(r.time) : `${r.time}000`)),
    }, ["--input=DIR/inter.csv", `--out=${out}`]);
    assertRefused(
      run,
      /^error: .*inter\.csv line 7: timestamp 1600010060 reads as seconds but line \d+ has 1600\d+000, milliseconds \(above 100000000000\); give the unit with --timestamp-unit s or ms$/,
      out,
    );
  });
});

// ---- interactions whose item the items table does not define ----

Deno.test("interactions dropped for items missing from the items table: a warning above 10%, an error when all are", async () => {
  await withTempDir(async (dir) => {
    const list = rows(300, 4);
    /** An items table of items I0 .. I(n-1). */
    const items = (n: number) =>
      "item_id,title\n" + Array.from({ length: n }, (_, i) => `I${i},Brush ${i}\n`).join("");
    const missing = (n: number) => list.filter((r) => Number(r.item.slice(1)) >= n).length;
    const out = join(dir, "data");
    const run = await textualize(dir, { "inter.csv": csv(list), "items.csv": items(25) }, [
      "--input=DIR/inter.csv",
      "--items=DIR/items.csv",
      `--out=${out}`,
    ]);
    assert.equal(run.code, 0, run.stderr);
    const n = missing(25);
    assert.ok(n > 120 && n < 1200, `${n} of 1200 dropped`);
    assert.deepEqual(warnings(run.stderr).map((l) => l.replaceAll(dir, "DIR")), [
      `warning: DIR/inter.csv: ${n} of 1200 interactions (${Math.round(n / 12)}%) skipped: ` +
      "their items are missing from the items table DIR/items.csv",
    ]);
    // A few dropped is no warning (still counted in the manifest).
    assert.ok(missing(29) > 0 && missing(29) < 120);
    const few = await textualize(dir, { "few.csv": items(29) }, [
      "--input=DIR/inter.csv",
      "--items=DIR/few.csv",
      `--out=${out}`,
    ]);
    assert.equal(few.code, 0, few.stderr);
    assert.deepEqual(warnings(few.stderr), []);
    // None left: the error says why instead of "no interactions".
    const none = await textualize(dir, { "none.csv": "item_id,title\nJ1,Comb\n" }, [
      "--input=DIR/inter.csv",
      "--items=DIR/none.csv",
      `--out=${out}-none`,
    ]);
    assertRefused(
      none,
      /^error: .*inter\.csv: 1200 interactions read, and all 1200 name items missing from the items table .*none\.csv \(not one id in common; --item-id-col chooses its id column\)$/,
      `${out}-none`,
    );
  });
});

/**
 * A model initialized on data whose long title was cut, and the same interactions textualized
 * with the title whole (`whole`): a dataset another model could take, this one cannot.
 */
async function modelAndWholeData(dir: string): Promise<{ model: string; whole: string }> {
  const files = { "inter.csv": csv(rows(40, 6)), "items.csv": itemsCsv() };
  const input = ["--input=DIR/inter.csv", "--items=DIR/items.csv"];
  const cut = await textualize(dir, files, [...input, `--out=${join(dir, "cut")}`]);
  assert.equal(cut.code, 0, cut.stderr);
  const model = join(dir, "model");
  const init = await runCli([
    "init",
    `--data=${join(dir, "cut")}`,
    "--preset=tiny",
    `--out=${model}`,
  ]);
  assert.equal(init.code, 0, init.stderr);
  const whole = join(dir, "whole");
  const made = await textualize(dir, {}, [...input, `--out=${whole}`, "--max-entity-chars=0"]);
  assert.equal(made.code, 0, made.stderr);
  return { model, whole };
}

/** The one-line refusal of an entity too long for the model, as init, pretrain and infer say it. */
const TOO_LONG =
  /^error: .*whole\/entities\.json: item "I7" \("[a-z0-9]{32}…", 4000 characters\) is \d{3,4} tokens, more than the \d+ an entity may take within the maximum length \d+ \(.*\); textualize the data again with --max-entity-chars \d+ to cut long titles$/;

Deno.test("infer refuses at its start a dataset whose item cannot fit the model", async () => {
  await withTempDir(async (dir) => {
    const { model, whole } = await modelAndWholeData(dir);
    const predictions = join(dir, "predictions.jsonl");
    const inferred = await runCli([
      "infer",
      `--data=${whole}`,
      `--model=${model}`,
      `--out=${predictions}`,
      "--tasks=sequential",
      "--limit=2",
      "--quiet",
    ]);
    assertRefused(inferred, TOO_LONG, predictions);
  });
});

Deno.test("pretrain refuses at its start a dataset whose item cannot fit the model", async () => {
  await withTempDir(async (dir) => {
    const { model, whole } = await modelAndWholeData(dir);
    const run = join(dir, "run");
    const trained = await runCli([
      "pretrain",
      `--data=${whole}`,
      `--model=${model}`,
      `--out=${run}`,
      "--steps=1",
      "--batch-size=1",
      "--val-batches=0",
      "--quiet",
    ]);
    assertRefused(trained, TOO_LONG, run);
  });
});

Deno.test("pretrain refuses at its start a record that cannot fit --max-length, not when its batch comes", async () => {
  await withTempDir(async (dir) => {
    // One review of 60 words among short ones: its review prompt quotes it whole.
    const long = Array.from({ length: 60 }, (_, i) => `word${i}`).join(" ");
    const list = rows(20, 5);
    const text = "user_id,item_id,timestamp,rating,review,summary\n" +
      list.map((r, i) =>
        `${r.user},${r.item},${r.time},${r.rating},${i === 37 ? long : "Nice one."},Good\n`
      ).join("");
    const data = join(dir, "data");
    const made = await textualize(dir, { "inter.csv": text }, [
      "--input=DIR/inter.csv",
      `--out=${data}`,
      "--tasks=sequential,review",
    ]);
    assert.equal(made.code, 0, made.stderr);
    const model = join(dir, "model");
    const init = await runCli(["init", `--data=${data}`, "--preset=tiny", `--out=${model}`]);
    assert.equal(init.code, 0, init.stderr);
    const run = join(dir, "run");
    const trained = await runCli([
      "pretrain",
      `--data=${data}`,
      `--model=${model}`,
      `--out=${run}`,
      "--max-length=48",
      "--steps=1",
      "--batch-size=1",
      "--val-batches=0",
      "--quiet",
    ]);
    assertRefused(
      trained,
      /^error: \d of \d+ training records cannot fit the maximum length 48 \(--max-length\); the longest: record "uU7\/review\/review-\d\/train\/\d+": needs (\d+) tokens even without its history \(\d+ for the instruction, \d+ for the mask and answer\), more than the maximum length 48; all fit from \1 tokens \(the instruction of a prompt and the first unit of a document are never cut\)$/,
      run,
    );
  });
});
