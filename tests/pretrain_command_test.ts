/**
 * The `pretrain` command end to end in subprocesses: a run killed with SIGKILL (twice: between
 * checkpoints and again later) and resumed with --resume ends with exactly the bytes of an
 * uninterrupted run (adapter, merged model and checkpoint), LoRA dropout included; and usage
 * mistakes are one-line errors with exit status 2.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel } from "../lib/model/weights.ts";
import { readMetrics } from "../lib/train/outputs.ts";
import { type CliRun, startCli } from "./helpers/cli.ts";
import type { TestProcess } from "./helpers/process.ts";
import { demoDataset, smallConfig, writeSmallModel } from "./helpers/train.ts";
import { withTempDir } from "./helpers/temp.ts";

function pretrain(args: string[]): TestProcess {
  return startCli(["pretrain", ...args]);
}

function finish(child: TestProcess): Promise<CliRun> {
  return child.result();
}

/** Starts a run and kills it with SIGKILL once its metrics file has at least `lines` lines. */
async function killAfter(args: string[], metrics: string, lines: number): Promise<number> {
  const child = pretrain(args);
  for (;;) {
    const done = (await readMetrics(metrics)).length;
    if (done >= lines) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  child.kill("SIGKILL");
  const status = await child.status;
  assert.equal(status.signal, "SIGKILL", "the run ended before it could be killed");
  return (await readMetrics(metrics)).length;
}

Deno.test("pretrain killed with SIGKILL and resumed ends with the same bytes as an uninterrupted run", async () => {
  await withTempDir(async (dir) => {
    const data = await demoDataset();
    await writeSmallModel(join(dir, "base"), await smallConfig());
    const common = (out: string) => [
      "--data",
      data,
      "--model",
      join(dir, "base"),
      "--out",
      out,
      "--steps",
      "24",
      "--save-every",
      "5",
      "--val-batches",
      "2",
      "--lora-dropout",
      "0.1",
      "--dropout",
      "0.1",
      "--lora-targets",
      "qkv,dense_h_to_4h",
      "--lr",
      "1e-2",
      "--max-length",
      "96",
      "--seed",
      "7",
      "--threads",
      "2",
      "--quiet",
    ];
    const straight = join(dir, "straight");
    const once = await finish(pretrain([...common(straight), "--merge", join(dir, "merged1")]));
    assert.equal(once.code, 0, once.stderr);

    const killed = join(dir, "killed");
    const metrics = join(killed, "metrics.jsonl");
    const first = await killAfter(common(killed), metrics, 7);
    const second = await killAfter([...common(killed), "--resume"], metrics, 16);
    assert.ok(first < 24 && second < 24, `killed after ${first} and ${second} steps`);
    const last = await finish(
      pretrain([...common(killed), "--resume", "--merge", join(dir, "merged2")]),
    );
    assert.equal(last.code, 0, last.stderr);
    // The summary reports the run's losses, not those of the last invocation's steps.
    const summary = (r: CliRun) => {
      const { steps, loss, first_loss, val_loss, initial_val_loss, tokens } = JSON.parse(r.stdout);
      return { steps, loss, first_loss, val_loss, initial_val_loss, tokens };
    };
    assert.deepEqual(summary(last), summary(once));

    for (const file of ["adapter_model.safetensors", "checkpoint.safetensors"]) {
      assert.deepEqual(
        await Deno.readFile(join(killed, file)),
        await Deno.readFile(join(straight, file)),
        `${file} differs`,
      );
    }
    assert.deepEqual(
      await Deno.readFile(join(dir, "merged2", "model.safetensors")),
      await Deno.readFile(join(dir, "merged1", "model.safetensors")),
    );
    await loadModel(join(dir, "merged2"));
    // The adapter carries the base model's tokenizer, for infer's check.
    assert.deepEqual(
      await Deno.readFile(join(killed, "tokenizer.json")),
      await Deno.readFile(join(dir, "base", "tokenizer.json")),
    );
    const stray = [...Deno.readDirSync(killed)].filter((e) => e.name.includes(".tmp-"));
    assert.deepEqual(stray, [], "temporaries of the killed runs are left");
    // The log has every step once, in order, with the same losses.
    const a = await readMetrics(join(straight, "metrics.jsonl"));
    const b = await readMetrics(metrics);
    assert.deepEqual(b.map((l) => l.step), Array.from({ length: 24 }, (_, i) => i + 1));
    assert.deepEqual(b.map((l) => [l.loss, l.val_loss]), a.map((l) => [l.loss, l.val_loss]));
  });
});

Deno.test("pretrain usage mistakes are one-line errors with status 2", async () => {
  const cases: [string[], RegExp][] = [
    [["--data", "d", "--model", "m"], /--out is required/],
    [
      ["--data", "d", "--model", "m", "--out", "o", "--full", "--lora-rank", "4"],
      /--full.*--lora-rank/,
    ],
    [["--data", "d", "--model", "m", "--out", "o", "--lora-targets", "mlp"], /unknown LoRA target/],
    [
      ["--data", "d", "--model", "m", "--out", "o", "--steps", "3", "--epochs", "2"],
      /--steps or --epochs/,
    ],
    [["--data", "d", "--model", "m", "--out", "o", "--objective", "words"], /--objective must be/],
    // The library names its option (merge); the command says the flag.
    [
      ["--data", "d", "--model", "m", "--out", "o", "--full", "--merge", "x"],
      /^error: --merge needs a LoRA run/,
    ],
    [
      ["--data", "d", "--model", "m", "--out", "o", "--task-weights", "profile=2,profile=3"],
      /^error: --task-weights: the task "profile" is given twice$/m,
    ],
  ];
  for (const [args, pattern] of cases) {
    const r = await finish(pretrain(args));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
  // A positive weight that rounds to no record of its task an epoch (it left the task silently).
  await withTempDir(async (dir) => {
    const data = await demoDataset();
    await writeSmallModel(join(dir, "m"), await smallConfig());
    const r = await finish(pretrain([
      ...["--data", data, "--model", join(dir, "m"), "--out", join(dir, "o")],
      ...["--task-weights", "sequential=0.00001", "--quiet"],
    ]));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--task-weights: sequential=0\.00001 draws none of its \d+ records/);
    // The library's sequenceMaxKeep is said as the flag that sets it (not --sequence-max-keep).
    const keep = await finish(pretrain([
      ...["--data", data, "--model", join(dir, "m"), "--out", join(dir, "k")],
      ...["--sequence-keep", "3", "--quiet"],
    ]));
    assert.equal(keep.code, 2, keep.stderr);
    assert.match(keep.stderr, /^error: --sequence-keep shapes the sequence objective/m);
  });
});
