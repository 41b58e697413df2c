/**
 * Bad input to textualize: every kind ends with one line naming the file (and the line, where
 * there is one) and the problem, exit status 1 (2 for usage mistakes), and no output directory,
 * not even a temporary one, left behind.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { readLines } from "../lib/io/lines.ts";
import { runCli } from "./helpers/cli.ts";
import { runProcess } from "./helpers/process.ts";
import { exists } from "./helpers/textualize.ts";
import { withTempDir } from "./helpers/temp.ts";

const INTERACTIONS = "user_id,item_id,timestamp,rating\nu1,i1,1,5\nu1,i2,2,4\nu1,i3,3,3\n";

interface Case {
  name: string;
  files: Record<string, string | Uint8Array>;
  args: string[];
  code?: number;
  /** The expected message after "error: "; FILE stands for the bad file's path. */
  message: RegExp;
  file?: string;
}

const CASES: Case[] = [
  {
    name: "a missing input file",
    files: {},
    args: ["--format=csv", "--input=FILE"],
    file: "nope.csv",
    message: /^FILE: file not found$/,
  },
  {
    name: "a missing items table",
    files: { "inter.csv": INTERACTIONS },
    args: ["--format=csv", "--input=DIR/inter.csv", "--items=FILE"],
    file: "items.csv",
    message: /^FILE: file not found$/,
  },
  {
    name: "an unknown format",
    files: { "inter.csv": INTERACTIONS },
    args: ["--format=parquet", "--input=DIR/inter.csv"],
    code: 2,
    message: /^--format must be one of p5, amazon-reviews, csv, recbole, got "parquet"$/,
  },
  {
    name: "an unknown column named by a flag",
    files: { "inter.csv": INTERACTIONS },
    args: ["--format=csv", "--input=FILE", "--rating-col=stars"],
    file: "inter.csv",
    message:
      /^FILE line 1: no column "stars" \(columns: user_id, item_id, timestamp, rating\); choose another with --rating-col$/,
  },
  {
    name: "a missing default column",
    files: { "inter.csv": "user,item_id\nu1,i1\n" },
    args: ["--format=csv", "--input=FILE"],
    file: "inter.csv",
    message:
      /^FILE line 1: no column "user_id" \(columns: user, item_id\); choose another with --user-col$/,
  },
  {
    name: "a row with too few fields",
    files: { "inter.csv": "user_id,item_id,rating\nu1,i1,5\nu1,i2\n" },
    args: ["--format=csv", "--input=FILE"],
    file: "inter.csv",
    message: /^FILE line 3: expected 3 fields as in the header, found 2$/,
  },
  {
    name: "a rating that is not a number",
    files: { "inter.csv": "user_id,item_id,rating\nu1,i1,5\nu1,i2,five\n" },
    args: ["--format=csv", "--input=FILE"],
    file: "inter.csv",
    message: /^FILE line 3: column "rating": "five" is not a number$/,
  },
  {
    name: "a timestamp that is neither Unix seconds nor a date",
    files: { "inter.csv": "user_id,item_id,timestamp\nu1,i1,yesterday\n" },
    args: ["--format=csv", "--input=FILE"],
    file: "inter.csv",
    message: /^FILE line 2: column "timestamp": "yesterday" is not a timestamp/,
  },
  {
    name: "a date that is not in the calendar",
    files: { "inter.csv": "user_id,item_id,timestamp\nu1,i1,2024-02-29\nu1,i2,2023-02-30\n" },
    args: ["--format=csv", "--input=FILE"],
    file: "inter.csv",
    message:
      /^FILE line 3: column "timestamp": "2023-02-30" is not a calendar date \(2023-02 has 28 days\)$/,
  },
  {
    name: "an unterminated quote",
    files: { "inter.csv": 'user_id,item_id,review\nu1,i1,"fine\nu1,i2,ok\n' },
    args: ["--format=csv", "--input=FILE"],
    file: "inter.csv",
    message: /^FILE line 2: quoted field is never closed/,
  },
  {
    name: "an item defined twice in the items table",
    files: { "inter.csv": INTERACTIONS, "items.csv": "item_id,title\ni1,A\ni2,B\ni1,C\n" },
    args: ["--format=csv", "--input=DIR/inter.csv", "--items=FILE"],
    file: "items.csv",
    message: /^FILE line 4: item id "i1" already defined on line 2$/,
  },
  {
    name: "a users-table feature named item",
    files: { "inter.csv": INTERACTIONS, "users.csv": "user_id,item\nu1,i3\n" },
    args: ["--format=csv", "--input=DIR/inter.csv", "--users=FILE"],
    file: "users.csv",
    message:
      /^FILE line 1: column "item" may not be a user feature \("item" is the kind of items\); choose the columns with --user-features$/,
  },
  {
    name: "a P5 items-table attribute named item",
    files: {
      "seq.txt": "1 10 11 12\n",
      "items.csv": "item_id,title,item\n10,A,x\n11,B,y\n12,C,x\n",
    },
    args: ["--format=p5", "--input=DIR/seq.txt", "--items=FILE"],
    file: "items.csv",
    message:
      /^FILE line 1: column "item" may not be an item attribute \("item" is the kind of items\); choose the columns with --item-attrs$/,
  },
  {
    name: "a header after a blank line that names a column twice",
    files: { "inter.csv": "\nuser_id,item_id,item_id\nu1,i1,1\n" },
    args: ["--format=csv", "--input=FILE"],
    file: "inter.csv",
    message: /^FILE line 2: header names column "item_id" twice$/,
  },
  {
    name: "timestamps in microseconds",
    files: {
      "inter.csv": "user_id,item_id,timestamp\n" +
        [1, 2, 3, 4].map((k) => `u1,i${k},16000000${k}0000000`).join("\n") + "\n",
    },
    args: ["--format=csv", "--input=FILE"],
    file: "inter.csv",
    message:
      /^FILE line 5: timestamp 1600000040000000 is after the year 5000 even as milliseconds \(microseconds or nanoseconds\?\)/,
  },
  {
    name: "a numeric reviewer id past 2^53",
    files: { "r.json": '{"reviewerID": 9007199254740993, "asin": "x"}\n' },
    args: ["--format=amazon-reviews", "--input=FILE"],
    file: "r.json",
    message:
      /^FILE line 1: "reviewerID" is the number 9007199254740992, which JSON numbers cannot hold exactly/,
  },
  {
    name: "a review line that is not JSON",
    files: { "r.json": '{"reviewerID": "a", "asin": "x"}\n{"reviewerID": "a", asin}\n' },
    args: ["--format=amazon-reviews", "--input=FILE"],
    file: "r.json",
    message: /^FILE line 2: not valid JSON/,
  },
  {
    name: "a review without a reviewer",
    files: { "r.json": '{"reviewerID": "a", "asin": "x"}\n{"asin": "y", "overall": 4}\n' },
    args: ["--format=amazon-reviews", "--input=FILE"],
    file: "r.json",
    message: /^FILE line 2: missing "reviewerID"$/,
  },
  {
    name: "a rating of the wrong type in a review",
    files: { "r.json": '{"reviewerID": "a", "asin": "x", "overall": "great"}\n' },
    args: ["--format=amazon-reviews", "--input=FILE"],
    file: "r.json",
    message: /^FILE line 1: "overall" is not a number: "great"$/,
  },
  {
    name: "an empty file",
    files: { "inter.csv": "" },
    args: ["--format=csv", "--input=FILE"],
    file: "inter.csv",
    message: /^FILE: empty input: no header line$/,
  },
  {
    name: "a header without rows",
    files: { "inter.csv": "user_id,item_id\n" },
    args: ["--format=csv", "--input=FILE"],
    file: "inter.csv",
    message: /^FILE: empty input: no interactions$/,
  },
  {
    name: "an empty sequence file",
    files: { "seq.txt": "\n\n" },
    args: ["--format=p5", "--input=FILE"],
    file: "seq.txt",
    message: /^FILE: empty input: no interactions$/,
  },
  {
    name: "a user with two lines in a P5 file",
    files: { "seq.txt": "1 10 11 12\n2 20 21 22\n1 13 14 15\n" },
    args: ["--format=p5", "--input=FILE"],
    file: "seq.txt",
    message: /^FILE line 3: user id "1" already defined on line 1$/,
  },
  {
    name: "no user long enough to split",
    files: { "seq.txt": "1 10 11\n2 12\n" },
    args: ["--format=p5", "--input=FILE"],
    file: "seq.txt",
    message: /^FILE: no user has 3 or more interactions/,
  },
  {
    name: "invalid UTF-8",
    files: {
      "inter.csv": new Uint8Array([
        ...new TextEncoder().encode("user_id,item_id\nu1,i1\nu1,"),
        0xc3,
        0x28,
        0x0a,
      ]),
    },
    args: ["--format=csv", "--input=FILE"],
    file: "inter.csv",
    message: /^FILE line 3: not valid UTF-8 text$/,
  },
  {
    name: "a corrupt gzip file",
    files: {
      "r.json.gz": gzipSync(new TextEncoder().encode('{"reviewerID":"a","asin":"x"}\n'.repeat(50)))
        .slice(0, 30),
    },
    args: ["--format=amazon-reviews", "--input=FILE"],
    file: "r.json.gz",
    message: /^FILE: corrupt gzip data/,
  },
  {
    name: "a gzip file with bytes after its last member",
    files: {
      "r.json.gz": new Uint8Array([
        ...gzipSync(new TextEncoder().encode('{"reviewerID":"a","asin":"x"}\n'.repeat(5))),
        ...new TextEncoder().encode("not gzip"),
      ]),
    },
    args: ["--format=amazon-reviews", "--input=FILE"],
    file: "r.json.gz",
    message: /^FILE: corrupt gzip data/,
  },
  {
    name: "a RecBole directory without an .inter file",
    files: { "x.item": "item_id:token\n" },
    args: ["--format=recbole", "--input=DIR"],
    message: /^FILE: no \.inter file in this directory$/,
  },
];

for (const c of CASES) {
  Deno.test(`textualize reports ${c.name} in one line and writes nothing`, async () => {
    await withTempDir(async (dir) => {
      for (const [name, content] of Object.entries(c.files)) {
        if (typeof content === "string") await Deno.writeTextFile(join(dir, name), content);
        else await Deno.writeFile(join(dir, name), content);
      }
      const file = c.file ? join(dir, c.file) : dir;
      const out = join(dir, "out");
      const args = c.args.map((a) => a.replace("FILE", file).replace("DIR", dir));
      const run = await runCli(["textualize", ...args, `--out=${out}`, "--quiet"]);
      assert.equal(run.code, c.code ?? 1, run.stderr);
      assert.equal(run.stdout, "");
      assert.ok(!run.stderr.includes("\n"), `more than one line: ${run.stderr}`);
      assert.ok(run.stderr.startsWith("error: "), run.stderr);
      const message = run.stderr.slice("error: ".length).replaceAll(file, "FILE").replaceAll(
        dir,
        "DIR",
      );
      assert.match(message, c.message);
      assert.ok(!exists(out), "output directory left behind");
      const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
      assert.deepEqual(left, Object.keys(c.files).sort(), "temporary files left behind");
    });
  });
}

Deno.test({
  name: "a pipe is read line by line as a file is, plain or gzip-compressed",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await withTempDir(async (dir) => {
      const text = new TextEncoder().encode("user_id,item_id\nu1,i1\n");
      for (const [name, bytes] of [["plain", text], ["gzip", gzipSync(text)]] as const) {
        const fifo = join(dir, name);
        assert.equal((await runProcess(["mkfifo", fifo])).code, 0);
        const written = Deno.writeFile(fifo, bytes);
        const lines = [];
        for await (const { text } of readLines(fifo)) lines.push(text);
        await written;
        assert.deepEqual(lines, ["user_id,item_id", "u1,i1"], name);
      }
    });
  },
});

Deno.test({
  name: "textualize reads a pipe as it reads the file: the same records, the same manifest hash",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await withTempDir(async (dir) => {
      const file = join(dir, "file", "inter.csv");
      await Deno.mkdir(join(dir, "file"));
      await Deno.writeTextFile(file, INTERACTIONS);
      const fifo = join(dir, "inter.csv");
      assert.equal((await runProcess(["mkfifo", fifo])).code, 0);
      const written = Deno.writeTextFile(fifo, INTERACTIONS);
      const run = (input: string, out: string) =>
        runCli(["textualize", "--format=csv", `--input=${input}`, `--out=${out}`, "--quiet"]);
      const piped = await run(fifo, join(dir, "piped"));
      await written;
      assert.equal(piped.code, 0, piped.stderr);
      assert.equal((await run(file, join(dir, "filed"))).code, 0);
      for (const name of ["train.jsonl", "valid.jsonl", "test.jsonl", "manifest.json"]) {
        assert.equal(
          await Deno.readTextFile(join(dir, "piped", name)),
          await Deno.readTextFile(join(dir, "filed", name)),
          name,
        );
      }
    });
  },
});

Deno.test({
  name: "an error about a piped input names the pipe, not the copy read from it",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    await withTempDir(async (dir) => {
      const fifo = join(dir, "inter.csv");
      assert.equal((await runProcess(["mkfifo", fifo])).code, 0);
      const written = Deno.writeTextFile(fifo, "user_id,item_id,rating\nu1,i1,4\nu1,i2,x\n");
      const run = await runCli([
        ...["textualize", "--format=csv", `--input=${fifo}`, "--rating-col=rating"],
        ...[`--out=${join(dir, "out")}`, "--quiet"],
      ]);
      await written;
      assert.equal(run.code, 1);
      assert.ok(run.stderr.includes(`${fifo} line 3: `), run.stderr);
      assert.doesNotMatch(run.stderr, /recsysllm-pipes-/);
    });
  },
});

Deno.test("a failed run leaves an existing output directory as it was", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "out");
    await Deno.mkdir(out);
    await Deno.writeTextFile(join(out, "marker"), "old");
    await Deno.writeTextFile(join(dir, "bad.csv"), "user_id,item_id,rating\nu1,i1,x\n");
    const run = await runCli([
      "textualize",
      "--format=csv",
      `--input=${join(dir, "bad.csv")}`,
      `--out=${out}`,
      "--quiet",
    ]);
    assert.equal(run.code, 1);
    assert.equal(await Deno.readTextFile(join(out, "marker")), "old");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["bad.csv", "out"]);
  });
});

Deno.test("a flag the format does not read is refused, naming the flag and the format", async () => {
  await withTempDir(async (dir) => {
    for (
      const [format, flag] of [
        ["amazon-reviews", "--rating-col=stars"],
        ["amazon-reviews", "--time-col=when"],
        ["amazon-reviews", "--user-col=who"],
        ["amazon-reviews", "--item-attrs=brand"],
        ["amazon-reviews", "--user-features=age"],
        ["p5", "--rating-scale=1-5"],
        ["p5", "--user-col=who"],
        ["p5", "--time-col=when"],
        ["p5", "--timestamp-unit=ms"],
        ["csv", "--label-col=asin"],
        ["recbole", "--delimiter=;"],
      ]
    ) {
      const out = join(dir, "out");
      const args = [`--format=${format}`, `--input=${dir}`, `--out=${out}`, flag, "--quiet"];
      const run = await runCli(["textualize", ...args]);
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
      const name = flag.slice(0, flag.indexOf("="));
      assert.equal(run.stderr, `error: ${name} is not used by the ${format} format`);
      assert.ok(!exists(out));
    }
  });
});

Deno.test("a column of the items or users table without the table is refused, naming both", async () => {
  await withTempDir(async (dir) => {
    for (
      const [format, flag, table] of [
        ["csv", "--title-col=name", "--items"],
        ["csv", "--item-attrs=brand", "--items"],
        ["csv", "--user-features=age", "--users"],
        ["csv", "--user-id-col=uid", "--users"],
        ["p5", "--title-col=name", "--items"],
        ["amazon-reviews", "--item-id-col=asin", "--items"],
      ]
    ) {
      const out = join(dir, "out");
      const args = [`--format=${format}`, `--input=${dir}`, `--out=${out}`, flag, "--quiet"];
      const run = await runCli(["textualize", ...args]);
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
      const name = flag.slice(0, flag.indexOf("="));
      const what = table.slice(2);
      assert.equal(
        run.stderr,
        `error: ${name} names a column of the ${what} table: give ${table} too`,
      );
      assert.ok(!exists(out));
    }
  });
});

Deno.test("p5's items table is tab-separated when named .tsv or told by --delimiter, which needs it", async () => {
  await withTempDir(async (dir) => {
    const seq = join(dir, "seq.txt");
    await Deno.writeTextFile(seq, "1 10 11 12 10\n2 11 12 10 11\n");
    const table = "item_id\tasin\ttitle\n10\tB1\tTen\n11\tB2\tEleven\n12\tB3\tTwelve\n";
    await Deno.writeTextFile(join(dir, "items.tsv"), table);
    await Deno.writeTextFile(join(dir, "items.txt"), table);
    for (const items of [["--items=DIR/items.tsv"], ["--items=DIR/items.txt", "--delimiter=tab"]]) {
      const out = join(dir, "out");
      const run = await runCli([
        "textualize",
        "--format=p5",
        `--input=${seq}`,
        ...items.map((a) => a.replace("DIR", dir)),
        `--out=${out}`,
        "--quiet",
      ]);
      assert.equal(run.code, 0, run.stderr);
      const entities = JSON.parse(await Deno.readTextFile(join(out, "entities.json")));
      assert.deepEqual(
        entities.filter((e: { kind: string }) => e.kind === "item").map((e: { entity: string }) =>
          e.entity
        ).sort(),
        ["Eleven", "Ten", "Twelve"],
      );
      await Deno.remove(out, { recursive: true });
    }
    const run = await runCli([
      "textualize",
      "--format=p5",
      `--input=${seq}`,
      "--delimiter=tab",
      `--out=${join(dir, "out")}`,
      "--quiet",
    ]);
    assert.equal(run.code, 2, run.stderr);
    assert.equal(
      run.stderr,
      "error: --delimiter is the separator of the p5 items table: it needs --items",
    );
  });
});

Deno.test("usage mistakes exit 2 with one line", async () => {
  for (
    const args of [
      ["--input=x.csv", "--out=o"],
      ["--format=csv", "--out=o"],
      ["--format=csv", "--input=x", "--out=o", "--tasks=rating,poetry"],
      ["--format=csv", "--input=x", "--out=o", "--negatives=-1"],
      ["--format=csv", "--input=x", "--out=o", "--bogus"],
      ["--format=amazon-reviews", "--input=x", "--out=o", "--users=u.csv", "--quiet"],
    ]
  ) {
    const run = await runCli(["textualize", ...args]);
    assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
    assert.ok(run.stderr.startsWith("error: ") && !run.stderr.includes("\n"), run.stderr);
  }
});
