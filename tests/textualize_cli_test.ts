/**
 * textualize as a user runs it: a real `deno run main.ts textualize` process (two of them, as
 * process start-up is slow): the JSON summary on stdout, the human line on stderr, exit codes;
 * and its help, in this process.
 */

import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { type CliRun, runCli, runCliProcess } from "./helpers/cli.ts";
import { fixture, GOLDEN_CASES } from "./helpers/textualize.ts";
import { withTempDir } from "./helpers/temp.ts";

function cli(args: string[]): Promise<CliRun> {
  return runCliProcess(["textualize", ...args]);
}

Deno.test("textualize prints a JSON summary on stdout and a human line on stderr", async () => {
  await withTempDir(async (tmp) => {
    const csv = GOLDEN_CASES.find((c) => c.name === "csv")!;
    const out = join(tmp, "data");
    const run = await cli([...csv.args, `--out=${out}`]);
    assert.equal(run.code, 0, run.stderr);
    const summary = JSON.parse(run.stdout);
    const manifest = JSON.parse(await Deno.readTextFile(join(out, "manifest.json")));
    assert.equal(summary.users, manifest.users);
    assert.equal(summary.items, manifest.items);
    for (const split of ["train", "valid", "test"]) {
      for (const [task, byTemplate] of Object.entries(manifest.counts[split])) {
        const total = Object.values(byTemplate as Record<string, number>).reduce((a, b) => a + b);
        assert.equal(summary.records[split][task], total, `${split}/${task}`);
      }
    }
    assert.match(run.stderr, /textualize: \d+ records for 4 users and 5 items written to /);
  });
});

Deno.test("textualize exits 1 with one line on bad input", async () => {
  await withTempDir(async (tmp) => {
    const run = await cli([
      "--format=recbole",
      `--input=${fixture("textualize", "recbole", "mini.item")}`,
      `--out=${join(tmp, "data")}`,
      "--quiet",
    ]);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    assert.match(
      run.stderr,
      /^error: .*mini\.item line 1: no column "user_id" \(columns: item_id, /,
    );
    assert.equal(run.stderr.trimEnd().split("\n").length, 1);
    assert.deepEqual([...Deno.readDirSync(tmp)], []);
  });
});

Deno.test("every training *-per-user flag's help says what 0 means", async () => {
  const help = await runCli(["textualize", "--help"]);
  assert.equal(help.code, 0, help.stderr);
  const lines = help.stdout.split("\n").filter((l) => /training \w+ records per user/.test(l));
  assert.equal(lines.length, 5, help.stdout);
  for (const line of lines) assert.match(line, /, 0 = (all|every position) \(default/, line);
});

Deno.test("a short-term window as long as the medium-term one or longer is refused for the data's kind only, nothing written", async () => {
  await withTempDir(async (tmp) => {
    const rows = ["u1,a", "u1,b", "u1,c", "u1,d"];
    const timed = join(tmp, "timed.csv"), plain = join(tmp, "plain.csv");
    await Deno.writeTextFile(
      timed,
      "user_id,item_id,timestamp\n" + rows.map((r, i) => `${r},${1_600_000_000 + i}`).join("\n"),
    );
    await Deno.writeTextFile(plain, "user_id,item_id\n" + rows.join("\n"));
    const out = join(tmp, "out", "d");
    const textualize = (input: string, ...flags: string[]) =>
      runCli([
        "textualize",
        "--format=csv",
        `--input=${input}`,
        "--negatives=1",
        ...flags,
        `--out=${out}`,
      ]);
    for (
      const [input, flags, message] of [
        [timed, ["--short-days=100"], /^error: --short-days 100 is longer than --medium-days 90: /],
        [
          plain,
          ["--short-items=3", "--medium-items=3"],
          /^error: --short-items 3 is as long as --medium-items 3: /,
        ],
      ] as const
    ) {
      const run = await textualize(input, ...flags);
      assert.equal(run.code, 2);
      assert.match(run.stderr, message);
    }
    assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name).sort(), [
      "plain.csv",
      "timed.csv",
    ]);
    // The other kind's windows are not read: only a warning, whatever they say.
    const other = await textualize(plain, "--medium-days=5", "--quiet");
    assert.equal(other.code, 0, other.stderr);
    assert.match(other.stderr, /--medium-days applies to timestamped input/);
  });
});

Deno.test("a preference window of the other kind of data (days without timestamps, items with them) is a warning", async () => {
  await withTempDir(async (tmp) => {
    const timed = join(tmp, "timed.csv"), plain = join(tmp, "plain.csv");
    const rows = ["u1,a", "u1,b", "u1,c", "u1,d"];
    await Deno.writeTextFile(
      timed,
      "user_id,item_id,timestamp\n" + rows.map((r, i) => `${r},${1_600_000_000 + i}`).join("\n"),
    );
    await Deno.writeTextFile(plain, "user_id,item_id\n" + rows.join("\n"));
    for (
      const [input, flag, message] of [
        [
          plain,
          "--short-days=1",
          /^warning: --short-days applies to timestamped input; this input has none/m,
        ],
        [
          timed,
          "--medium-items=4",
          /^warning: --medium-items applies to input without timestamps; this input has them/m,
        ],
      ] as const
    ) {
      const run = await runCli([
        ...["textualize", "--format=csv", `--input=${input}`, flag, "--negatives=1"],
        ...[`--out=${join(tmp, basename(input))}-out`, "--quiet"],
      ]);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, message);
    }
    // The windows of the data's own kind, or the defaults given, say nothing.
    const quiet = await runCli([
      ...["textualize", "--format=csv", `--input=${plain}`, "--short-items=1", "--short-days=7"],
      ...["--negatives=1", `--out=${join(tmp, "q")}`, "--quiet"],
    ]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stderr, /applies to/);
  });
});
