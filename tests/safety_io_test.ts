/**
 * Ordinary I/O faults are one-line errors naming the path and the cause, exit 1 (never exit 70
 * with a stack): disk full (a small tmpfs, where the tests run as root and may mount one), a
 * read-only file system, permission denied (an immutable directory for root, else a read-only
 * mode), a directory where a file is expected, a missing output directory. Cases that need
 * root are skipped with a message elsewhere.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { IoError, toIoError } from "../lib/io/io_error.ts";
import { errorReport } from "../main.ts";
import { cliCommand, runCli } from "./helpers/cli.ts";
import { runProcess } from "./helpers/process.ts";
import { withTempDir } from "./helpers/temp.ts";
import { demoDataset, smallConfig, writeSmallModel } from "./helpers/train.ts";

const DEMO = ["--format=csv", "--quiet"].concat(
  ["interactions", "users", "items"].map((f) =>
    `--${f === "interactions" ? "input" : f}=fixtures/demo/${f}.csv`
  ),
);

const isRoot = Deno.uid() === 0;

/** Mounts a tmpfs of `size` (with `ro`, read-only) on a new directory; undefined when it cannot. */
async function tmpfs(dir: string, size: string, ro = false): Promise<string | undefined> {
  if (!isRoot || Deno.build.os !== "linux") return undefined;
  const at = join(dir, `mnt-${size}${ro ? "-ro" : ""}`);
  await Deno.mkdir(at);
  const { code } = await runProcess(
    ["mount", "-t", "tmpfs", "-o", `${ro ? "ro," : ""}size=${size}`, "tmpfs", at],
  );
  return code === 0 ? at : undefined;
}

async function unmount(at: string): Promise<void> {
  const { code } = await runProcess(["umount", at]);
  if (code !== 0) await runProcess(["umount", "-l", at]);
}

async function names(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const e of Deno.readDir(dir)) found.push(e.name);
  return found.sort();
}

function oneLineExit1(run: { code: number; stderr: string }, pattern: RegExp): void {
  assert.equal(run.code, 1, run.stderr);
  assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
  assert.match(run.stderr, pattern);
}

Deno.test("file-system errors become one-line IoErrors naming the path and the cause", async () => {
  const full = (() => {
    try {
      Deno.writeFileSync("/dev/full", new Uint8Array(16));
    } catch (error) {
      return toIoError(error);
    }
  })();
  if (Deno.build.os === "linux") {
    assert.ok(full instanceof IoError);
    assert.equal(full.message, "/dev/full: no space left on device (ENOSPC)");
  }
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "f"), "");
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => Deno.readTextFile(dir), /: is a directory \(a file was expected\) \(EISDIR\)$/],
      [() => Deno.writeTextFile(join(dir, "f", "x"), ""), /f\/x: not a directory .*\(ENOTDIR\)$/],
    ];
    for (const [body, pattern] of cases) {
      const error = await body().then(() => undefined, (e) => toIoError(e));
      assert.ok(error instanceof IoError, String(error));
      assert.match(error.message, pattern);
    }
    const missing = await Deno.writeTextFile(join(dir, "no", "x"), "").then(
      () => undefined,
      (e) => toIoError(e, join(dir, "no", "x"), "cannot write"),
    );
    assert.match((missing as Error).message, /no\/x: cannot write: its directory does not exist/);
  });
  // Errors Deno raises for faults this machine cannot stage, as Deno words them.
  const erofs = Object.assign(new Error("Read-only file system (os error 30): open '/ro/x'"), {
    code: "EROFS",
  });
  assert.equal((toIoError(erofs) as Error).message, "/ro/x: read-only file system (EROFS)");
  const denied = new Deno.errors.PermissionDenied("Permission denied (os error 13): mkdir '/p'");
  assert.equal((toIoError(denied) as Error).message, "/p: permission denied (EACCES)");
  // Not file-system faults: left alone, so real bugs still exit 70.
  const bug = new TypeError("x is undefined");
  assert.equal(toIoError(bug), bug);
});

Deno.test("any file-system error reaching the command line exits 1 in one line; only other errors are bugs (70)", () => {
  const node = Object.assign(new Error("ENOSPC: no space left on device, write"), {
    code: "ENOSPC",
    syscall: "write",
    path: "/data/out.jsonl",
  });
  const raw: [unknown, string][] = [
    [node, "error: /data/out.jsonl: no space left on device (ENOSPC)"],
    [
      new Deno.errors.NotFound("No such file or directory (os error 2): open '/x/y'"),
      "error: /x/y: no such file or directory (ENOENT)",
    ],
    [
      new Deno.errors.IsADirectory("Is a directory (os error 21): read '/d'"),
      "error: /d: is a directory (a file was expected) (EISDIR)",
    ],
    [
      new Deno.errors.NotCapable('Requires write access to "/o", run again with --allow-write'),
      'error: Requires write access to "/o", run again with --allow-write',
    ],
  ];
  for (const [error, message] of raw) {
    assert.deepEqual(errorReport(error), { status: 1, message });
  }
  const bug = errorReport(new TypeError("cannot read properties of undefined"));
  assert.equal(bug.status, 70);
  assert.match(bug.message, /^internal error \(a bug in recsysllm/);
  const long = errorReport(new IoError(`x: ${"y".repeat(5000)}\nsecond line`));
  assert.equal(long.status, 1);
  assert.ok(long.message.length < 600 && !long.message.includes("\n"), long.message);
});

Deno.test("a directory given where a file is expected, and a missing or wrong output directory, exit 1 in one line", () =>
  withTempDir(async (dir) => {
    oneLineExit1(
      await runCli(["textualize", "--format=csv", `--input=${dir}`, `--out=${join(dir, "o")}`]),
      /is a directory; a file was expected/,
    );
    const data = await demoDataset();
    oneLineExit1(
      await runCli(["eval", "--data", data, "--predictions", dir, "--quiet"]),
      /is a directory; a file was expected/,
    );
    const model = join(dir, "model");
    await writeSmallModel(model, await smallConfig());
    const batch = join(dir, "batch.json");
    await Deno.writeTextFile(
      batch,
      JSON.stringify({ input_ids: [[1, 2]], position_ids: [[[0, 1], [0, 0]]], sep: [1] }),
    );
    const forward = (out: string) =>
      runCli(["forward", "--model", model, "--batch", batch, "--out", out, "--device", "cpu"]);
    oneLineExit1(
      await forward(join(dir, "missing", "o.safetensors")),
      /o\.safetensors: cannot write: its directory does not exist/,
    );
    const outDir = join(dir, "outdir");
    await Deno.mkdir(outDir);
    oneLineExit1(
      await forward(outDir),
      /outdir: is a directory; a file output never replaces a directory: choose another --out$/m,
    );
    oneLineExit1(
      await runCli(["forward", "--model", model, "--batch", dir, "--out", join(dir, "o")]),
      /: cannot read: is a directory/,
    );
    // A file as the dataset's directory; a model's config.json that cannot be read (not "bad
    // JSON"); a directory as init's tokenizer: each says what is wrong, not the OS's raw text.
    oneLineExit1(
      await runCli(["eval", "--data", batch, "--baseline", "pop", "--quiet"]),
      /batch\.json: is a file, not a dataset directory$/m,
    );
    const unreadable = join(dir, "unreadable");
    await Deno.mkdir(join(unreadable, "config.json"), { recursive: true });
    oneLineExit1(
      await runCli(["infer", "--model", unreadable, "--data", data, "--out", join(dir, "p.jsonl")]),
      /config\.json: cannot read: is a directory/,
    );
    oneLineExit1(
      await runCli([
        ...["init", "--data", data, "--preset", "tiny", "--tokenizer", dir],
        ...["--out", join(dir, "m2"), "--quiet"],
      ]),
      /: cannot read: is a directory \(a file was expected\) \(EISDIR\)$/m,
    );
  }));

Deno.test("disk full: textualize, pretrain, infer and eval exit 1 with one line and leave nothing behind", async (t) => {
  await withTempDir(async (dir) => {
    const disk = await tmpfs(dir, "32k");
    if (!disk) {
      console.log("skipped: needs root and mount -t tmpfs to stage a full disk");
      return;
    }
    try {
      await t.step("textualize", async () => {
        oneLineExit1(
          await runCli(["textualize", ...DEMO, `--out=${join(disk, "data")}`]),
          /data.*: no space left on device \(ENOSPC\)/,
        );
        assert.deepEqual(await names(disk), []);
      });
      const data = await demoDataset();
      const model = join(dir, "model");
      await writeSmallModel(model, await smallConfig());
      await t.step("pretrain", async () => {
        oneLineExit1(
          await runCli([
            "pretrain",
            ...["--data", data, "--model", model, "--out", join(disk, "run")],
            ...["--steps", "1", "--batch-size", "2", "--val-batches", "0", "--device", "cpu"],
            "--quiet",
          ]),
          /run.*: no space left on device \(ENOSPC\)/,
        );
        // The run failed before its first checkpoint: the directory it made is gone too.
        assert.deepEqual(await names(disk), []);
      });
      await t.step("pretrain, the disk full at its marker or its lock", async () => {
        // One page left: the lock file takes it, the run directory's marker finds none. Then
        // none: the lock cannot be written, in directories the run made. Nothing stays, so the
        // next run is not refused as a directory the tool did not write.
        for (const [free, out] of [[4, "run"], [0, "a/b/run"]] as const) {
          await Deno.writeFile(join(disk, "filler"), new Uint8Array((32 - free) << 10));
          oneLineExit1(
            await runCli([
              "pretrain",
              ...["--data", data, "--model", model, "--out", join(disk, out)],
              ...["--steps", "1", "--batch-size", "2", "--val-batches", "0", "--device", "cpu"],
              "--quiet",
            ]),
            /no space left on device \(ENOSPC\)/,
          );
          assert.deepEqual(await names(disk), ["filler"], `${free} KiB free`);
          await Deno.remove(join(disk, "filler"));
        }
      });
      await t.step("merge and forward name their output, not a temporary", async () => {
        const parts = [];
        for (const i of [0, 1]) {
          const run = await runCli([
            "textualize",
            ...DEMO,
            `--out=${join(dir, "parts", "data")}`,
            `--shard=${i}/2`,
          ]);
          assert.equal(run.code, 0, run.stderr);
          parts.push(join(dir, "parts", `data-0000${i}-of-00002`));
        }
        oneLineExit1(
          await runCli(["merge", "--quiet", "--out", join(disk, "merged"), ...parts]),
          /merged\/\S+: cannot write: no space left on device \(ENOSPC\)/,
        );
        assert.deepEqual(await names(disk), []);
        const batch = join(dir, "batch.json");
        // Logits of 12 tokens (about 50 KB) cannot fit the 32 KB disk.
        const L = 12;
        const ids = Array.from({ length: L }, (_, i) => 5 + i);
        const positions = [ids.map((_, i) => i), ids.map(() => 0)];
        await Deno.writeTextFile(
          batch,
          JSON.stringify({ input_ids: [ids], position_ids: [positions], sep: [L] }),
        );
        const forward = await runCli([
          ...["forward", "--model", model, "--batch", batch, "--device", "cpu", "--quiet"],
          ...["--out", join(disk, "logits.safetensors")],
        ]);
        oneLineExit1(forward, /logits\.safetensors: cannot write: no space left on device/);
        assert.doesNotMatch(forward.stderr, /\.tmp-/);
        assert.deepEqual(await names(disk), []);
      });
      await t.step("infer", async () => {
        await Deno.writeFile(join(disk, "filler"), new Uint8Array(24 << 10));
        oneLineExit1(
          await runCli([
            "infer",
            ...["--model", model, "--data", data, "--out", join(disk, "pred.jsonl")],
            ...["--tasks", "rating", "--limit", "200", "--device", "cpu", "--quiet"],
          ]),
          /pred\.jsonl: cannot write: no space left on device \(ENOSPC\)/,
        );
        assert.deepEqual(await names(disk), ["filler"]);
      });
      await t.step("eval: a fault at the last output leaves none of the run's files", async () => {
        // SASRec's predictions fit; its item table (19 pages or more) does not: eval writes every
        // output out before renaming any into place, so the predictions are not left behind.
        const evalArgs = (out: string) => [
          ...["eval", "--data", data, "--baseline", "sasrec", "--tasks", "sequential"],
          ...["--sample-users", "40", "--sasrec-epochs", "1", "--save-baselines", out, "--quiet"],
        ];
        const first = await runCli(evalArgs(join(dir, "base")));
        assert.equal(first.code, 0, first.stderr);
        const pages = (name: string) =>
          Math.ceil(Deno.statSync(join(dir, "base", name)).size / 4096);
        assert.ok(pages("sasrec-items.safetensors") > 12);
        const small = await tmpfs(dir, `${(pages("sasrec.jsonl") + 8) * 4}k`);
        assert.ok(small);
        try {
          oneLineExit1(
            await runCli(evalArgs(join(small, "base"))),
            /base\/sasrec-items\.safetensors: cannot write.*no space left on device/,
          );
          assert.deepEqual(await names(small), []);
        } finally {
          await unmount(small);
        }
      });
    } finally {
      await unmount(disk);
    }
  });
});

Deno.test("a read-only file system and a directory without write permission exit 1 with one line", () =>
  withTempDir(async (dir) => {
    const ro = await tmpfs(dir, "64k", true);
    if (ro) {
      try {
        oneLineExit1(
          await runCli(["textualize", ...DEMO, `--out=${join(ro, "data")}`]),
          /read-only file system \(EROFS\)/,
        );
      } finally {
        await unmount(ro);
      }
    } else {
      console.log("read-only file system: skipped (needs root and mount -t tmpfs)");
    }
    // Root ignores permission bits: an immutable directory (chattr +i) refuses it all the same.
    const locked = join(dir, "locked");
    await Deno.mkdir(locked);
    let undo: () => Promise<unknown>;
    if (isRoot) {
      const set = await runProcess(["chattr", "+i", locked]).catch(() => ({ code: -1 }));
      if (set.code !== 0) {
        console.log("permission denied: skipped (root, and chattr +i is not available here)");
        return;
      }
      undo = () => runProcess(["chattr", "-i", locked]);
    } else {
      await Deno.chmod(locked, 0o555);
      undo = () => Deno.chmod(locked, 0o755);
    }
    try {
      oneLineExit1(
        await runCli(["textualize", ...DEMO, `--out=${join(locked, "data")}`]),
        /locked.*: (permission denied \(EACCES\)|operation not permitted \(EPERM\))/,
      );
    } finally {
      await undo();
    }
  }));

Deno.test({
  name: "a stdout that cannot take the output (> /dev/full) is one line naming stdout",
  ignore: Deno.build.os !== "linux",
  fn: () =>
    withTempDir(async (dir) => {
      const quoted = (words: string[]) => words.map((w) => `'${w}'`).join(" ");
      for (
        const args of [
          ["textualize", ...DEMO, `--out=${join(dir, "data")}`],
          [
            "collate",
            "--quiet",
            "--data",
            join(dir, "data"),
            "--tokenizer",
            "fixtures/tokenizer/tokenizer.json",
          ],
        ]
      ) {
        const run = await runProcess(["sh", "-c", `${quoted(cliCommand(args))} > /dev/full`]);
        oneLineExit1(run, /^error: stdout: cannot write: no space left on device \(ENOSPC\)$/m);
      }
    }),
});
