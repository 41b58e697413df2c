/**
 * What `--force` can never destroy: the current directory, the home directory, the root, a
 * repository, an input or a file of an input directory; a file output never replaces a
 * directory; refusals suggest `--force` only where it would replace the tool's own work; links
 * are followed and named as links; a lock message never advises removing a live lock.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { LockedError, OutputLock } from "../lib/io/lock.ts";
import { runCli, runCliProcess } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp.ts";
import { GOLDEN_CASES } from "./helpers/textualize.ts";
import { demoDataset, smallConfig, writeSmallModel } from "./helpers/train.ts";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CSV = GOLDEN_CASES.find((c) => c.name === "csv")!.args.map((a) =>
  a.replace(/=(?!\/)(fixtures\/)/, `=${ROOT}$1`)
);

function textualize(out: string, ...extra: string[]) {
  return runCli(["textualize", ...CSV, `--out=${out}`, "--quiet", ...extra]);
}

function exit1(run: { code: number; stderr: string }, pattern: RegExp): void {
  assert.equal(run.code, 1, run.stderr);
  assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
  assert.match(run.stderr, pattern);
}

/** A project tree as a user has it: a repository with a file, under a home directory. */
async function userTree(dir: string): Promise<{ home: string; project: string }> {
  const home = join(dir, "home");
  const project = join(home, "project");
  await Deno.mkdir(join(project, ".git"), { recursive: true });
  await Deno.writeTextFile(join(project, ".git", "HEAD"), "ref: refs/heads/main\n");
  await Deno.writeTextFile(join(project, "notes.txt"), "mine\n");
  return { home, project };
}

async function intact(tree: { project: string }): Promise<void> {
  assert.equal(
    await Deno.readTextFile(join(tree.project, ".git", "HEAD")),
    "ref: refs/heads/main\n",
  );
  assert.equal(await Deno.readTextFile(join(tree.project, "notes.txt")), "mine\n");
}

Deno.test("--out naming the current directory, a parent of it, the home directory, the root or a repository is refused, even with --force", () =>
  withTempDir(async (dir) => {
    const tree = await userTree(dir);
    // A separate process: the current directory and HOME are its own.
    const cli = (out: string) =>
      runCliProcess(["textualize", ...CSV, `--out=${out}`, "--force"], {
        cwd: tree.project,
        env: { HOME: tree.home },
      });
    for (
      const [out, what] of [
        [".", /--out \. is the current directory/],
        ["..", /--out \.\. contains the current directory/],
        [tree.home, /contains the current directory|is your home directory/],
        ["/", /--out \/ (contains the input|is the file-system root)/],
      ] as const
    ) {
      const run = await cli(out);
      const stderr = run.stderr;
      assert.equal(run.code, 1, stderr);
      assert.equal(stderr.trim().split("\n").length, 1, stderr);
      assert.match(stderr, what);
      assert.match(stderr, /; choose another --out$/m);
      assert.doesNotMatch(stderr, /--force/);
      await intact(tree);
    }
    // A repository elsewhere: --force does not replace it either.
    exit1(
      await textualize(tree.project, "--force"),
      /project: holds \.git \(a repository\): recsysllm never replaces it/,
    );
    await intact(tree);
  }));

Deno.test("a file output never replaces a directory, even with --force; an input directory's files are never replaced", () =>
  withTempDir(async (dir) => {
    const data = join(dir, "data");
    assert.equal((await textualize(data)).code, 0);
    const model = join(dir, "model");
    await writeSmallModel(model, await smallConfig());
    const keep = join(dir, "keep");
    await Deno.mkdir(keep);
    await Deno.writeTextFile(join(keep, "a.txt"), "a\n");
    const never = /keep: is a directory; a file output never replaces a directory/;
    const infer = (out: string) =>
      runCli([
        "infer",
        ...["--data", data, "--model", model, "--out", out, "--force", "--device", "cpu"],
        ...["--tasks", "rating", "--limit", "2", "--quiet"],
      ]);
    exit1(await infer(keep), never);
    exit1(
      await runCli(["eval", "--data", data, "--baseline", "pop", "--chart", keep, "--force"]),
      never,
    );
    assert.equal(await Deno.readTextFile(join(keep, "a.txt")), "a\n");

    const valid = join(data, "valid.jsonl");
    const before = await Deno.readTextFile(valid);
    exit1(await infer(valid), /valid\.jsonl is part of the input directory .*data: replacing it/);
    assert.equal(await Deno.readTextFile(valid), before);
  }));

Deno.test("refusals suggest --force only where it replaces the tool's own work", () =>
  withTempDir(async (dir) => {
    const data = join(dir, "data");
    assert.equal((await textualize(data)).code, 0);
    // The output of another command: the tool's own, so --force is offered.
    exit1(
      await runCli(["init", "--data", join(dir, "data"), "--preset", "tiny", "--out", data]),
      /data is the input .*data: writing there would destroy it; choose another --out$/,
    );
    const model = join(dir, "model");
    assert.equal(
      (await runCli(["init", "--data", data, "--preset", "tiny", "--out", model])).code,
      0,
    );
    exit1(
      await textualize(model),
      /model: holds the output of recsysllm init, not of textualize; choose another --out, or pass --force to replace it$/,
    );
    // The user's files: not offered.
    const mine = join(dir, "mine");
    await Deno.mkdir(mine);
    await Deno.writeTextFile(join(mine, "n.txt"), "k\n");
    const run = await textualize(mine);
    exit1(
      run,
      /mine: holds files recsysllm did not write \(n\.txt\); choose another --out, or move those files away first$/,
    );

    // A run directory is written into, not replaced: --force is offered over another command's
    // output, and over files of names the run does not write; not where a run file would
    // overwrite one of the user's.
    const train = (out: string) =>
      runCli([
        ...["pretrain", "--data", data, "--model", model, "--out", out, "--steps", "1"],
        ...["--device", "cpu", "--quiet"],
      ]);
    const other = join(dir, "other-model");
    assert.equal(
      (await runCli(["init", "--data", data, "--preset", "tiny", "--out", other])).code,
      0,
    );
    exit1(
      await train(other),
      /other-model: holds the output of recsysllm init, not of pretrain; .*pass --force to write into it$/,
    );
    exit1(await train(mine), /mine: holds files .*\(n\.txt\); .*pass --force to write into it$/);
    const clash = join(dir, "clash");
    await Deno.mkdir(clash);
    await Deno.writeTextFile(join(clash, "metrics.jsonl"), "mine\n");
    exit1(
      await train(clash),
      /clash: holds files .*\(metrics\.jsonl\); choose another --out, or move those files away first$/,
    );
    assert.equal(await Deno.readTextFile(join(clash, "metrics.jsonl")), "mine\n");

    // A run directory given as a link to a directory not made yet: made where the link points,
    // as every other output given so (mkdir of the link itself failed: it exists).
    const dangling = join(dir, "run-link");
    await Deno.symlink(join(dir, "run-target"), dangling);
    const linked = await train(dangling);
    assert.equal(linked.code, 0, linked.stderr);
    assert.ok((await Deno.lstat(dangling)).isSymlink, "the link is still a link");
    assert.ok((await Deno.stat(join(dir, "run-target", "metrics.jsonl"))).isFile);
  }));

Deno.test("a link to an output directory is followed and stays a link; links are named as links", () =>
  withTempDir(async (dir) => {
    const real = join(dir, "real");
    assert.equal((await textualize(real)).code, 0);
    const link = join(dir, "link");
    await Deno.symlink(real, link);
    const again = await textualize(link);
    assert.equal(again.code, 0, again.stderr);
    assert.ok((await Deno.lstat(link)).isSymlink, "the link is still a link");
    assert.ok((await Deno.stat(join(real, "manifest.json"))).isFile);

    // A link to the user's directory: refused, named as a link, not as "a file".
    const mine = join(dir, "mine");
    await Deno.mkdir(mine);
    await Deno.writeTextFile(join(mine, "n.txt"), "k\n");
    const toMine = join(dir, "to-mine");
    await Deno.symlink(mine, toMine);
    exit1(
      await textualize(toMine),
      /to-mine \(a link to .*mine\): holds files recsysllm did not write \(n\.txt\)/,
    );
    // With --force the output lands where the link points; the link is not replaced.
    assert.equal((await textualize(toMine, "--force")).code, 0);
    assert.ok((await Deno.lstat(toMine)).isSymlink);
    assert.ok((await Deno.stat(join(mine, "manifest.json"))).isFile);

    // A link to a chart eval wrote: followed, so the chart is rewritten where the link points.
    const chart = join(dir, "charts", "eval.svg");
    await Deno.mkdir(join(dir, "charts"));
    const evalChart = (path: string) =>
      runCli(["eval", "--data", real, "--baseline", "pop", "--chart", path, "--quiet"]);
    assert.equal((await evalChart(chart)).code, 0);
    const toChart = join(dir, "latest.svg");
    await Deno.symlink(chart, toChart);
    await Deno.writeTextFile(
      chart,
      (await Deno.readTextFile(chart)).replace("</svg>", "<!-- old --></svg>"),
    );
    const viaLink = await evalChart(toChart);
    assert.equal(viaLink.code, 0, viaLink.stderr);
    assert.ok((await Deno.lstat(toChart)).isSymlink, "the link is still a link");
    assert.doesNotMatch(await Deno.readTextFile(chart), /<!-- old -->/);

    // A link to a file of the user's, as a file output: refused and named as a link.
    const notes = join(dir, "notes.svg");
    await Deno.writeTextFile(notes, "mine");
    const toNotes = join(dir, "chart.svg");
    await Deno.symlink(notes, toNotes);
    exit1(
      await runCli(["eval", "--data", real, "--baseline", "pop", "--chart", toNotes, "--quiet"]),
      /chart\.svg \(a link to .*notes\.svg\): is not a file recsysllm eval wrote/,
    );
    assert.equal(await Deno.readTextFile(notes), "mine");

    // A file output inside a directory reached through a link (a scratch dir that is a link).
    const scratch = join(dir, "scratch");
    await Deno.symlink(join(dir, "charts"), scratch);
    const inLinked = await evalChart(join(scratch, "new.svg"));
    assert.equal(inLinked.code, 0, inLinked.stderr);
    assert.ok((await Deno.stat(join(dir, "charts", "new.svg"))).isFile);
  }));

Deno.test("a live lock's message says to wait, never to remove the lock", () =>
  withTempDir(async (dir) => {
    const out = join(dir, "out");
    const held = await OutputLock.acquire(out, "pretrain");
    try {
      await assert.rejects(() => OutputLock.acquire(out, "infer"), (error: Error) => {
        assert.ok(error instanceof LockedError);
        assert.match(
          error.message,
          /in use by recsysllm pretrain \(pid \d+, started .*\); wait for it to finish$/,
        );
        assert.doesNotMatch(error.message, /remove/);
        return true;
      });
    } finally {
      held.release();
    }
  }));

Deno.test("a training run's directory is never replaced by another output, even with --force", () =>
  withTempDir(async (dir) => {
    const data = await demoDataset();
    const model = join(dir, "model");
    await writeSmallModel(model, await smallConfig({ hiddenSize: 16 }));
    const pretrain = (out: string, ...extra: string[]) =>
      runCli([
        "pretrain",
        ...["--data", data, "--model", model, "--out", out, "--lora", "--steps", "1"],
        ...["--val-batches", "0", "--max-length", "96", "--threads", "1", "--quiet", ...extra],
      ]);
    const run = join(dir, "run");
    const first = await pretrain(run);
    assert.equal(first.code, 0, first.stderr);
    const before = async () => {
      const files: Record<string, string> = {};
      for await (const entry of Deno.readDir(run)) {
        files[entry.name] = String((await Deno.stat(join(run, entry.name))).mtime?.getTime());
      }
      return files;
    };
    const files = await before();
    assert.ok("checkpoint.safetensors" in files);
    const never =
      /run: holds a training run \(checkpoint\.safetensors\): recsysllm never replaces it; choose another --(merge|out)$/m;
    // --merge naming another run (a slip of the keyboard) after a whole training run.
    const merge = await pretrain(join(dir, "other"), "--merge", run);
    exit1(merge, never);
    assert.doesNotMatch(merge.stderr, /--force/);
    const init = await runCli([
      "init",
      ...["--data", data, "--preset", "tiny", "--hidden-size", "16", "--layers", "1"],
      ...["--heads", "2", "--tokenizer", join(ROOT, "fixtures/tokenizer/tokenizer.json")],
      ...["--out", run, "--force", "--quiet"],
    ]);
    exit1(init, never);
    exit1(await textualize(run, "--force"), never);
    assert.deepEqual(await before(), files);
  }));
