/**
 * Outputs never cost the user data: ownership checks and --force, the input never inside what is
 * replaced, exclusive locks (stale ones taken over), temporaries removed on SIGINT/SIGTERM and
 * by the next run after a kill -9, and the atomic writers killed at random points.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { removeStaleTemporaries, replaceWith, writeFileAtomic } from "../lib/io/atomic.ts";
import { LockedError, lockPath, OutputLock } from "../lib/io/lock.ts";
import { siblingStem } from "../lib/io/names.ts";
import { OUTPUT_MARKER, writeOutputDir } from "../lib/io/safe_output.ts";
import { runCli, runCliProcess, startCli } from "./helpers/cli.ts";
import { runProcess, startProcess, type TestProcess } from "./helpers/process.ts";
import { fileVersion } from "./helpers/safety_child.ts";
import { withTempDir } from "./helpers/temp.ts";
import { smallConfig, writeSmallModel } from "./helpers/train.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
import { GOLDEN_CASES } from "./helpers/textualize.ts";
import { fileURLToPath } from "node:url";

const CSV = GOLDEN_CASES.find((c) => c.name === "csv")!.args;
const CHILD = fileURLToPath(new URL("./helpers/safety_child.ts", import.meta.url));

function textualize(out: string, ...extra: string[]) {
  return runCli(["textualize", ...CSV, `--out=${out}`, "--quiet", ...extra]);
}

async function names(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const e of Deno.readDir(dir)) found.push(e.name);
  return found.sort();
}

/** Starts the child in `mode` on `path` and waits until it says it is under way. */
async function startChild(mode: string, path: string): Promise<TestProcess> {
  const child = startProcess([Deno.execPath(), "run", "-A", CHILD, mode, path]);
  await child.waitFor("ready");
  return child;
}

Deno.test("textualize refuses a directory of the user's files and a regular file without suggesting --force; --force replaces them", () =>
  withTempDir(async (dir) => {
    const mine = join(dir, "x");
    await Deno.mkdir(mine);
    await Deno.writeTextFile(join(mine, "n.txt"), "k\n");
    const refused = await textualize(mine);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(
      refused.stderr,
      /^error: .*x: holds files recsysllm did not write \(n\.txt\); choose another --out, or move those files away first$/m,
    );
    // --force would destroy the user's file: the refusal does not suggest it.
    assert.doesNotMatch(refused.stderr, /--force/);
    assert.equal(refused.stderr.trim().split("\n").length, 1);
    assert.equal(await Deno.readTextFile(join(mine, "n.txt")), "k\n");

    const file = join(dir, "file");
    await Deno.writeTextFile(file, "keep");
    const onFile = await textualize(file);
    assert.equal(onFile.code, 1);
    assert.match(onFile.stderr, /file: is a file, not a directory recsysllm wrote/);
    assert.equal(await Deno.readTextFile(file), "keep");

    const forced = await textualize(mine, "--force");
    assert.equal(forced.code, 0, forced.stderr);
    assert.ok((await names(mine)).includes("manifest.json"));
    assert.ok(!(await names(mine)).includes("n.txt"));
    // Nothing left beside it: no temporary, no lock.
    assert.equal((await names(dir)).filter((n) => n.startsWith(".")).length, 0);
  }));

Deno.test("an output that is or contains an input is refused, even with --force", () =>
  withTempDir(async (dir) => {
    const data = join(dir, "data");
    await Deno.mkdir(data);
    await Deno.copyFile(CSV[1].slice("--input=".length), join(data, "interactions.csv"));
    const args = ["textualize", ...CSV.filter((a) => !a.startsWith("--input="))];
    for (const out of [data, dir]) {
      const run = await runCli([
        ...args,
        `--input=${join(data, "interactions.csv")}`,
        `--out=${out}`,
        "--force",
        "--quiet",
      ]);
      assert.equal(run.code, 1, run.stderr);
      assert.match(
        run.stderr,
        /contains the input .*interactions\.csv: writing there would destroy it/,
      );
    }
    assert.equal((await names(data)).join(), "interactions.csv");
  }));

Deno.test("textualize replaces its own output, and an older one without a marker, but not once a user file is added", () =>
  withTempDir(async (dir) => {
    const out = join(dir, "data");
    assert.equal((await textualize(out)).code, 0);
    assert.ok((await names(out)).includes(OUTPUT_MARKER));
    assert.equal((await textualize(out)).code, 0, "its own output is replaced");
    await Deno.remove(join(out, OUTPUT_MARKER));
    assert.equal((await textualize(out)).code, 0, "an older dataset (no marker) is recognised");
    await Deno.writeTextFile(join(out, "pred.jsonl"), "{}\n");
    const run = await textualize(out);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /holds files recsysllm textualize did not write \(pred\.jsonl\)/);
    // Another command's output is not textualize's to replace.
    const model = join(dir, "model");
    await Deno.mkdir(model);
    await Deno.writeTextFile(
      join(model, OUTPUT_MARKER),
      JSON.stringify({ tool: "recsysllm", command: "init", files: [] }),
    );
    assert.match(
      (await textualize(model)).stderr,
      /holds the output of recsysllm init, not of textualize/,
    );
  }));

Deno.test("init refuses a directory it did not write", () =>
  withTempDir(async (dir) => {
    const data = join(dir, "data");
    assert.equal((await textualize(data)).code, 0);
    const out = join(dir, "model");
    await Deno.mkdir(out);
    await Deno.writeTextFile(join(out, "config.json"), "{}");
    const run = await runCli(["init", "--data", data, "--preset", "tiny", "--out", out]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /model: holds files recsysllm did not write \(config\.json\)/);
    assert.equal(await Deno.readTextFile(join(out, "config.json")), "{}");
    const onData = await runCli(["init", "--data", data, "--preset", "tiny", "--out", data]);
    assert.match(onData.stderr, /is the input/);
  }));

Deno.test("init --family refuses a directory it did not write, and replaces its own", () =>
  withTempDir(async (dir) => {
    const out = join(dir, "model");
    await Deno.mkdir(out);
    await Deno.writeTextFile(join(out, "notes.txt"), "mine");
    const tokenizer = join(ROOT, "fixtures", "tokenizer", "tokenizer.json");
    const args = ["init", "--family", "qwen3", "--preset", "tiny", "--tokenizer", tokenizer];
    const run = await runCli([...args, "--out", out]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /model: holds files recsysllm did not write \(notes\.txt\)/);
    assert.equal(await Deno.readTextFile(join(out, "notes.txt")), "mine");
    const fresh = join(dir, "fresh");
    assert.equal((await runCli([...args, "--out", fresh])).code, 0);
    assert.equal((await runCli([...args, "--out", fresh, "--seed", "2"])).code, 0);
  }));

Deno.test("a second run on a locked output is refused with the holder's PID; a dead holder's lock is taken over", () =>
  withTempDir(async (dir) => {
    const out = join(dir, "data");
    const child = await startChild("lock", out);
    try {
      const run = await textualize(out);
      assert.equal(run.code, 1, run.stderr);
      assert.match(
        run.stderr,
        new RegExp(`data: in use by recsysllm test \\(pid ${child.pid}, started`),
      );
      await assert.rejects(() => OutputLock.acquire(out, "test"), LockedError);
    } finally {
      child.kill("SIGKILL");
      await child.status;
    }
    // The killed holder left its lock file: stale, so it is taken over.
    assert.ok(await Deno.stat(lockPath(out)));
    const lock = await OutputLock.acquire(out, "test");
    assert.equal(lock.tookOverFrom?.pid, child.pid);
    lock.release();
    assert.equal((await textualize(out)).code, 0);
    assert.equal((await names(dir)).join(), "data", "no lock file left");
  }));

Deno.test("two textualize processes on one output at once: one writes it, the other is refused", () =>
  withTempDir(async (dir) => {
    const out = join(dir, "data");
    const args = ["textualize", "--format=csv", "--quiet", `--out=${out}`];
    for (const f of ["interactions", "users", "items"]) {
      args.push(`--${f === "interactions" ? "input" : f}=fixtures/demo/${f}.csv`);
    }
    const runs = await Promise.all([0, 1].map(() => runCliProcess(args)));
    const stderr = runs.map((r) => r.stderr);
    assert.deepEqual(runs.map((r) => r.code).sort(), [0, 1], stderr.join("\n"));
    assert.match(
      stderr[runs.findIndex((r) => r.code === 1)],
      /in use by recsysllm textualize \(pid/,
    );
    assert.equal((await names(dir)).join(), "data");
  }));

for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
  Deno.test(`${signal} removes the temporaries and the lock of a run being written`, () =>
    withTempDir(async (dir) => {
      for (const mode of ["build-dir", "build-file"]) {
        const out = join(dir, mode);
        const child = await startChild(mode, out);
        assert.ok((await names(dir)).some((n) => n.startsWith(`.${mode}.tmp-`)));
        child.kill(signal);
        assert.equal((await child.status).code, code);
        assert.equal((await names(dir)).join(), "", `left: ${await names(dir)}`);
      }
    }));
}

Deno.test("what a kill -9 left (temporaries, the lock) is removed by the next run on the output", () =>
  withTempDir(async (dir) => {
    const out = join(dir, "data");
    const child = await startChild("build-dir", out);
    child.kill("SIGKILL");
    await child.status;
    assert.ok((await names(dir)).some((n) => n.startsWith(".data.tmp-")));
    await writeOutputDir(out, { command: "test" }, async (tmp) => {
      await Deno.writeTextFile(join(tmp, "a.txt"), "complete");
    });
    assert.equal((await names(dir)).join(), "data");
    assert.deepEqual(await names(out), [OUTPUT_MARKER, "a.txt"]);
  }));

/** Waits a random time, then kills `child` with SIGKILL. */
async function killAtRandom(child: TestProcess, maxMs: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, Math.random() * maxMs));
  child.kill("SIGKILL");
  await child.status;
}

Deno.test("fault injection: a file writer killed at random points leaves the old or the new file, whole", () =>
  withTempDir(async (dir) => {
    const path = join(dir, "out.bin");
    await Deno.writeFile(path, fileVersion(0));
    const seen = new Set<number>();
    for (let trial = 0; trial < 10; trial++) {
      await killAtRandom(await startChild("file-loop", path), 300);
      const bytes = await Deno.readFile(path);
      assert.equal(bytes.length, 2 << 20, `trial ${trial}: a file of ${bytes.length} bytes`);
      assert.ok(bytes.every((b) => b === bytes[0]), `trial ${trial}: versions mixed`);
      seen.add(bytes[0]);
      await removeStaleTemporaries(path);
      assert.equal((await names(dir)).join(), "out.bin");
    }
    console.log(`versions found after the kills: ${[...seen].sort((a, b) => a - b).join(", ")}`);
  }));

Deno.test("fault injection: a directory replaced and killed at random points is the old or the new one, whole", () =>
  withTempDir(async (dir) => {
    const path = join(dir, "out");
    const first = join(dir, "first");
    await Deno.mkdir(first);
    for (let f = 0; f < 8; f++) await Deno.writeTextFile(join(first, `f${f}.txt`), "0\n");
    await replaceWith(first, path);
    for (let trial = 0; trial < 10; trial++) {
      await killAtRandom(await startChild("dir-loop", path), 300);
      // The next run's clean-up restores an old directory a kill left moved aside.
      await removeStaleTemporaries(path);
      assert.equal((await names(dir)).join(), "out", `trial ${trial}`);
      const texts = await Promise.all(
        Array.from({ length: 8 }, (_, f) => Deno.readTextFile(join(path, `f${f}.txt`))),
      );
      const version = texts[0].split("\n")[0];
      for (const text of texts) {
        const lines = text.split("\n").slice(0, -1);
        assert.ok(lines.every((l) => l === version), `trial ${trial}: versions mixed`);
        assert.ok(version === "0" || lines.length === 20_000, `trial ${trial}: a file cut short`);
      }
    }
  }));

Deno.test("writeFileAtomic into a missing directory names it, and leaves nothing", () =>
  withTempDir(async (dir) => {
    await assert.rejects(
      () => writeFileAtomic(join(dir, "missing", "a.txt"), "x"),
      /missing\/a\.txt: cannot write: its directory does not exist \(ENOENT\)/,
    );
    assert.equal((await names(dir)).join(), "");
  }));

Deno.test("every command that writes refuses an output another run holds", () =>
  withTempDir(async (dir) => {
    const data = join(dir, "data");
    assert.equal((await textualize(data)).code, 0);
    const out = (name: string) => join(dir, name);
    const runs: [string, string[]][] = [
      ["data2", ["textualize", ...CSV, `--out=${out("data2")}`]],
      ["model", ["init", "--data", data, "--preset", "tiny", "--out", out("model")]],
      ["run", ["pretrain", "--data", data, "--model", out("none"), "--out", out("run")]],
      ["p.jsonl", ["infer", "--data", data, "--model", out("none"), "--out", out("p.jsonl")]],
      ["f.st", ["forward", "--model", out("none"), "--batch", out("b"), "--out", out("f.st")]],
      ["c.svg", ["eval", "--data", data, "--baseline", "pop", "--chart", out("c.svg")]],
    ];
    for (const [name, args] of runs) {
      const lock = await OutputLock.acquire(out(name), "test");
      try {
        const run = await runCli(args);
        assert.equal(run.code, 1, `${args[0]}: ${run.stderr}`);
        assert.match(
          run.stderr,
          new RegExp(`${name}: in use by recsysllm test \\(pid ${Deno.pid}`),
        );
      } finally {
        lock.release();
      }
    }
    assert.deepEqual(await names(dir), ["data"]);
  }));

/** Waits until `dir` holds an entry that `test` accepts (or `ms` pass). */
async function waitFor(dir: string, test: (name: string) => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if ((await names(dir)).some(test)) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`nothing appeared in ${dir}`);
}

Deno.test("Ctrl-C during a real textualize leaves nothing behind, and the old output as it was", () =>
  withTempDir(async (dir) => {
    const out = join(dir, "data");
    assert.equal((await textualize(out)).code, 0);
    const manifest = await Deno.readTextFile(join(out, "manifest.json"));
    const args = ["textualize", "--format=csv", "--quiet", `--out=${out}`];
    for (const f of ["interactions", "users", "items"]) {
      args.push(`--${f === "interactions" ? "input" : f}=fixtures/demo/${f}.csv`);
    }
    const child = startCli(args);
    await waitFor(dir, (n) => n.startsWith(".data.tmp-"));
    child.kill("SIGINT");
    assert.equal((await child.status).code, 130);
    assert.deepEqual(await names(dir), ["data"]);
    assert.equal(await Deno.readTextFile(join(out, "manifest.json")), manifest);
  }));

Deno.test("Ctrl-C leaves no directory a run made: textualize's new parents, a pretrain run before its first checkpoint", () =>
  withTempDir(async (dir) => {
    const appears = async (test: () => Promise<boolean>) => {
      for (const end = Date.now() + 60_000; Date.now() < end;) {
        if (await test().catch(() => false)) return;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      throw new Error("nothing appeared");
    };
    const args = ["textualize", "--format=csv", "--quiet", `--out=${join(dir, "x", "y", "data")}`];
    for (const f of ["interactions", "users", "items"]) {
      args.push(`--${f === "interactions" ? "input" : f}=fixtures/demo/${f}.csv`);
    }
    const textualizing = startCli(args);
    await appears(async () => (await names(join(dir, "x", "y"))).some((n) => n.includes(".tmp-")));
    textualizing.kill("SIGINT");
    assert.equal((await textualizing.status).code, 130);
    assert.deepEqual(await names(dir), []);

    const data = join(dir, "data");
    assert.equal((await textualize(data)).code, 0);
    const model = join(dir, "model");
    await writeSmallModel(model, await smallConfig());
    const run = join(dir, "runs", "r1");
    const training = startCli([
      ...["pretrain", "--data", data, "--model", model, "--out", run, "--quiet"],
      // Its first save far off: a loaded machine's slow poll still kills it before one.
      ...["--steps", "100000", "--save-every", "100000", "--batch-size", "2", "--val-batches", "0"],
    ]);
    await appears(async () => (await names(run)).includes("metrics.jsonl"));
    training.kill("SIGINT");
    assert.equal((await training.status).code, 130);
    assert.deepEqual(await names(dir), ["data", "model"]);
  }));

Deno.test("a file output that is a pipe is written as it is: not replaced by a file, no lock beside it; a part's sidecar is never an output", () =>
  withTempDir(async (dir) => {
    const data = join(dir, "data");
    const parts = join(dir, "parts");
    assert.equal((await textualize(data)).code, 0);
    for (const shard of ["0/2", "1/2"]) {
      const run = await runCli([
        ...["eval", "--data", data, "--baseline", "pop", "--tasks", "sequential", "--quiet"],
        ...["--save-baselines", parts, "--shard", shard],
      ]);
      assert.equal(run.code, 0, run.stderr);
    }
    const files = ["pop-00000-of-00002.jsonl", "pop-00001-of-00002.jsonl"].map((f) =>
      join(parts, f)
    );
    const merged = join(dir, "merged.jsonl");
    assert.equal((await runCli(["merge", "--out", merged, ...files, "--quiet"])).code, 0);
    // `--out /dev/null` or `--out >(gzip > x.gz)`: a renamed temporary would replace the device.
    const fifo = join(dir, "fifo");
    assert.equal((await runProcess(["mkfifo", fifo])).code, 0);
    const reader = Deno.readFile(fifo);
    const run = await runCli(["merge", "--out", fifo, ...files, "--quiet"]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(await reader, await Deno.readFile(merged));
    assert.ok((await Deno.lstat(fifo)).isFifo, "the pipe was replaced");
    assert.deepEqual(await names(dir), ["data", "fifo", "merged.jsonl", "parts"]);
    // A part's sidecar is an input too, even with --force (the part set would be lost).
    const sidecar = `${files[0]}.shard.json`;
    const before = await Deno.readTextFile(sidecar);
    const onSidecar = await runCli(["merge", "--force", "--out", sidecar, ...files, "--quiet"]);
    assert.equal(onSidecar.code, 1);
    assert.match(onSidecar.stderr, /is the input .*\.shard\.json: writing there would destroy it/);
    assert.equal(await Deno.readTextFile(sidecar), before);
  }));

Deno.test("Ctrl-C while textualize copies a piped input leaves no copy behind", () =>
  withTempDir(async (dir) => {
    const tmp = join(dir, "tmp");
    await Deno.mkdir(tmp);
    const fifo = join(dir, "interactions.csv");
    assert.equal((await runProcess(["mkfifo", fifo])).code, 0);
    const child = startCli(
      ["textualize", "--format=csv", "--quiet", `--input=${fifo}`, `--out=${join(dir, "data")}`],
      { env: { TMPDIR: tmp } },
    );
    // Half the input, the pipe kept open: textualize is copying it into its spool directory.
    const writer = await Deno.open(fifo, { write: true });
    await writer.write(await Deno.readFile("fixtures/demo/interactions.csv"));
    await waitFor(tmp, (n) => n.startsWith("recsysllm-pipes-"));
    child.kill("SIGINT");
    assert.equal((await child.status).code, 130);
    writer.close();
    assert.deepEqual(await names(tmp), []);
  }));

Deno.test("a run that fails leaves no directory it made for its output", () =>
  withTempDir(async (dir) => {
    const bad = join(dir, "bad.txt");
    await Deno.writeFile(
      bad,
      new Uint8Array([0x75, 0x31, 0x20, 0x31, 0x0a, 0x75, 0x32, 0x20, 0xff, 0x0a]),
    );
    const run = await runCli([
      ...["textualize", "--format", "p5", "--input", bad, "--quiet"],
      ...["--out", join(dir, "sub", "dir", "data")],
    ]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /bad\.txt line 2: not valid UTF-8 text/);
    assert.deepEqual(await names(dir), ["bad.txt"]);
    // A directory that held something before is kept, whatever the run made inside it.
    await Deno.mkdir(join(dir, "kept"));
    await runCli([
      ...["textualize", "--format", "p5", "--input", bad, "--quiet"],
      ...["--out", join(dir, "kept", "new", "data")],
    ]);
    assert.deepEqual(await names(dir), ["bad.txt", "kept"]);
    assert.deepEqual(await names(join(dir, "kept")), []);
  }));

Deno.test("an output whose name is near the 255-byte limit is written, and replaced: its hidden siblings' names are shortened", () =>
  withTempDir(async (dir) => {
    assert.equal(siblingStem("pred.jsonl", 48), "pred.jsonl");
    const long = "é".repeat(120); // 240 bytes
    const stem = siblingStem(long, 48);
    assert.ok(new TextEncoder().encode(`.${stem}`).length + 48 <= 255);
    assert.notEqual(siblingStem(long + "x", 48), stem, "long names sharing a head stay apart");
    const out = join(dir, long);
    for (let run = 0; run < 2; run++) {
      const made = await textualize(out);
      assert.equal(made.code, 0, made.stderr);
    }
    assert.deepEqual(await names(dir), [long]);
  }));
