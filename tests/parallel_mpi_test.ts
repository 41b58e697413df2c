/**
 * Data-parallel `pretrain` under a real `mpirun` (Open MPI; `.ci/run` installs it): two ranks train
 * the same model as one process with the same flags (LoRA with dropout, the trie softmax, gradient
 * accumulation and an uneven split; full training), rank 0 alone writes, a run stopped on one
 * process resumes on two, a failing rank ends every rank with one line naming it, a killed rank
 * ends the job (mpirun names it) with the last checkpoint intact, and ranks with different flags
 * are refused at the start. Skipped, with the reason printed, where `mpirun` is not installed.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { SafetensorsFile } from "../lib/model/safetensors.ts";
import { readMetrics } from "../lib/train/outputs.ts";
import { cliCommand } from "./helpers/cli.ts";
import { type ProcessRun, runProcess, startProcess } from "./helpers/process.ts";
import { demoDataset, smallConfig, writeSmallModel } from "./helpers/train.ts";
import { withTempDir } from "./helpers/temp.ts";

async function has(launcher: string): Promise<boolean> {
  try {
    return (await runProcess([launcher, "--version"])).code === 0;
  } catch {
    return false;
  }
}

const MPI = await has("mpirun");
/** MPICH's launcher, where Debian's mpich is installed beside Open MPI (optional). */
const MPICH = await has("mpirun.mpich");
if (!MPI) {
  console.error(
    "parallel_mpi_test: skipped: mpirun is not installed (apt-get install openmpi-bin; .ci/run " +
      "installs it when apt-get is available)",
  );
}

const PRETRAIN = cliCommand(["pretrain"]);
/** Open MPI in a container: run as root, more ranks than cores, no ptrace-based copies. */
const MPI_ENV = {
  OMPI_MCA_btl_vader_single_copy_mechanism: "none",
  OMPI_MCA_rmaps_base_oversubscribe: "1",
  NO_COLOR: "1",
};

/** A launch that hangs (a container whose network MPI cannot set up) fails instead. */
const LIMIT_MS = 300_000;

function run(command: string[]): Promise<ProcessRun> {
  return runProcess(command, { env: MPI_ENV, timeoutMs: LIMIT_MS });
}

/** `mpirun` with one application context per entry (MPMD: `-np 1 A : -np 1 B`). */
function mpirun(...ranks: string[][]): Promise<ProcessRun> {
  const contexts = ranks.flatMap((args, i) => [...(i > 0 ? [":"] : []), "-np", "1", ...args]);
  return run(["mpirun", "--allow-run-as-root", "--oversubscribe", ...contexts]);
}

async function tensors(file: string): Promise<Map<string, Float32Array>> {
  const f = await SafetensorsFile.open(file);
  const out = new Map<string, Float32Array>();
  for (const name of f.names()) out.set(name, await f.float32(name));
  return out;
}

/**
 * Every tensor of `b` equals `a`'s to `tol` (absolute: a far smaller move than the steps' own,
 * lr x steps, while Adam's update on a gradient near zero may differ in its last bits).
 */
async function assertClose(a: string, b: string, tol: number): Promise<void> {
  const x = await tensors(a);
  const y = await tensors(b);
  assert.deepEqual([...y.keys()].sort(), [...x.keys()].sort());
  for (const [name, u] of x) {
    const v = y.get(name)!;
    for (let i = 0; i < u.length; i++) {
      assert.ok(Math.abs(u[i] - v[i]) <= tol, `${name}[${i}]: ${u[i]} vs ${v[i]} (${b})`);
    }
  }
}

async function assertSameLosses(a: string, b: string): Promise<void> {
  const x = await readMetrics(join(a, "metrics.jsonl"));
  const y = await readMetrics(join(b, "metrics.jsonl"));
  assert.deepEqual(y.map((l) => l.step), x.map((l) => l.step));
  for (let i = 0; i < x.length; i++) {
    assert.ok(Math.abs(x[i].loss - y[i].loss) < 1e-5, `step ${x[i].step}: loss`);
    assert.equal(y[i].tokens, x[i].tokens, "the same padded tokens: the same global batches");
    assert.equal(y[i].val_loss === undefined, x[i].val_loss === undefined);
    if (x[i].val_loss !== undefined) assert.ok(Math.abs(x[i].val_loss! - y[i].val_loss!) < 1e-5);
  }
}

Deno.test({
  name: "pretrain on 2 MPI ranks: LoRA as one process, resumed at another N, faults",
  ignore: !MPI,
}, async (t) => {
  await withTempDir(async (dir) => {
    const data = await demoDataset();
    await writeSmallModel(join(dir, "base"), await smallConfig());
    const lora = (out: string) => [
      ...PRETRAIN,
      ...["--data", data, "--model", join(dir, "base"), "--out", out],
      ...["--lora", "--lora-dropout", "0.1", "--lora-targets", "qkv,dense_h_to_4h"],
      ...["--trie-softmax", "--batch-size", "5", "--grad-accum", "2", "--steps", "10"],
      ...["--save-every", "2", "--val-batches", "3", "--lr", "1e-2", "--max-length", "96"],
      ...["--seed", "7", "--threads", "1", "--quiet"],
    ];
    const one = join(dir, "one");
    const single = await run(lora(one));
    assert.equal(single.code, 0, single.stderr);

    await t.step("LoRA: the same adapter and losses; rank 1 writes nothing", async () => {
      // Rank 1 is told another --out: it must not even create it (rank 0 writes, rank 1 reads
      // nothing of the run directory).
      const two = join(dir, "two");
      const ranks = await mpirun(lora(two), lora(join(dir, "rank1-out")));
      assert.equal(ranks.code, 0, ranks.stderr);
      const lines = ranks.stdout.trim().split("\n");
      assert.equal(lines.length, 1, `one summary line (rank 0's): ${ranks.stdout}`);
      assert.equal(JSON.parse(lines[0]).ranks, 2);
      await assert.rejects(Deno.stat(join(dir, "rank1-out")), Deno.errors.NotFound);
      await assertClose(
        join(one, "adapter_model.safetensors"),
        join(two, "adapter_model.safetensors"),
        1e-5,
      );
      await assertSameLosses(one, two);
    });

    await t.step(
      "stopped on one process, resumed on two: the uninterrupted run's adapter",
      async () => {
        const cut = join(dir, "cut");
        const child = startProcess(lora(cut));
        while ((await readMetrics(join(cut, "metrics.jsonl"))).length < 3) {
          await new Promise((r) => setTimeout(r, 5));
        }
        child.kill("SIGKILL");
        assert.equal((await child.status).signal, "SIGKILL", "the run ended before it was killed");
        const resumed = await mpirun([...lora(cut), "--resume"], [...lora(cut), "--resume"]);
        assert.equal(resumed.code, 0, resumed.stderr);
        assert.equal(JSON.parse(resumed.stdout).resumed, true);
        await assertClose(
          join(one, "adapter_model.safetensors"),
          join(cut, "adapter_model.safetensors"),
          1e-5,
        );
        await assertSameLosses(one, cut);
      },
    );

    await t.step("a failing rank ends every rank with one line naming it", async () => {
      const out = join(dir, "failed");
      const missing = lora(out).map((a) => (a === data ? join(dir, "no-such-data") : a));
      const failed = await mpirun(lora(out), missing);
      assert.equal(failed.code, 1, failed.stderr);
      const ours = failed.stderr.split("\n").filter((l) => l.startsWith("error:"));
      assert.equal(ours.length, 1, failed.stderr);
      assert.match(ours[0], /^error: rank 1: .*no-such-data.*manifest\.json/);
      // Rank 0 claimed the run directory and gives it back: nothing half-written is left.
      await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
    });

    await t.step(
      "a rank killed mid-run ends the job, named by mpirun; the run resumes",
      async () => {
        const out = join(dir, "killed");
        const metrics = join(out, "metrics.jsonl");
        const quoted = lora(out).map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
        // Rank 1 runs under a shell that kills it with SIGKILL once rank 0 has logged 3 steps.
        const killer = `${quoted} & p=$!; ` +
          `until [ "$(cat '${metrics}' 2>/dev/null | wc -l)" -ge 3 ]; do sleep 0.05; done; ` +
          `kill -9 $p; wait $p; exit 137`;
        const killed = await mpirun(lora(out), ["sh", "-c", killer]);
        assert.notEqual(killed.code, 0);
        // Open MPI names the rank ([[job,1],1]) and its exit status (137: SIGKILL).
        assert.match(killed.stderr, /\[\[\d+,1\],1\]/, killed.stderr);
        assert.match(killed.stderr, /137/);
        const resumed = await run([...lora(out), "--resume"]);
        assert.equal(resumed.code, 0, resumed.stderr);
        assert.equal(JSON.parse(resumed.stdout).resumed, true);
        await assertClose(
          join(one, "adapter_model.safetensors"),
          join(out, "adapter_model.safetensors"),
          1e-5,
        );
        const stray = [...Deno.readDirSync(out)].filter((e) => e.name.includes(".tmp-"));
        assert.deepEqual(stray, [], "temporaries left");
      },
    );

    await t.step("ranks with different flags are refused at the start", async () => {
      const out = join(dir, "mismatch");
      const other = lora(out).map((a) => (a === "1e-2" ? "2e-2" : a));
      const refused = await mpirun(lora(out), other);
      assert.equal(refused.code, 2, refused.stderr);
      const ours = refused.stderr.split("\n").filter((l) => l.startsWith("error:"));
      assert.equal(ours.length, 1, refused.stderr);
      assert.match(ours[0], /^error: rank 1: model, data or flags differ from rank 0's \(schedule/);
      await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
    });
  });
});

Deno.test({
  name: "pretrain --full on 2 MPI ranks ends with the weights of one process",
  ignore: !MPI,
}, async () => {
  await withTempDir(async (dir) => {
    const data = await demoDataset();
    await writeSmallModel(join(dir, "base"), await smallConfig());
    const full = (out: string) => [
      ...PRETRAIN,
      ...["--data", data, "--model", join(dir, "base"), "--out", out, "--full"],
      ...["--batch-size", "4", "--steps", "4", "--save-every", "4", "--val-batches", "1"],
      ...["--lr", "1e-3", "--max-length", "96", "--seed", "3", "--threads", "1", "--quiet"],
    ];
    const single = await run(full(join(dir, "one")));
    assert.equal(single.code, 0, single.stderr);
    const ranks = await mpirun(full(join(dir, "two")), full(join(dir, "two")));
    assert.equal(ranks.code, 0, ranks.stderr);
    await assertClose(
      join(dir, "one", "model.safetensors"),
      join(dir, "two", "model.safetensors"),
      // 1% of one step's lr: the ranks' gradient sum rounds otherwise, and Adam's m/sqrt(v)
      // magnifies that where a gradient is near zero (13 of 69,024 weights moved 1e-7 to 1.3e-6
      // on the demo data of 2026-12-07); a wrong reduction moves weights by lr itself.
      1e-5,
    );
    await assertSameLosses(join(dir, "one"), join(dir, "two"));
  });
});

Deno.test({
  name: "an option error every rank meets is printed once, by rank 0, with its flag",
  ignore: !MPI,
}, async () => {
  await withTempDir(async (dir) => {
    const data = await demoDataset();
    await writeSmallModel(join(dir, "base"), await smallConfig());
    const args = [
      ...PRETRAIN,
      ...["--data", data, "--model", join(dir, "base"), "--out", join(dir, "run"), "--full"],
      ...["--batch-size", "2", "--steps", "2", "--threads", "1", "--quiet"],
    ];
    const ranks = await mpirun(args, args, args);
    assert.notEqual(ranks.code, 0);
    const said = ranks.stderr.match(/--batch-size is the global batch/g) ?? [];
    assert.equal(said.length, 1, ranks.stderr);
  });
});

Deno.test({
  name: "a rank that fails alone, outside any agreement, prints its error and ends the job",
  ignore: !MPI,
}, async () => {
  await withTempDir(async (dir) => {
    // Rank 1 fails on its own while rank 0 waits for it in a collective: with MPI_Finalize the
    // job would hang where the launcher does not stop it (srun without --kill-on-bad-exit).
    const script = join(dir, "alone.ts");
    const url = (path: string) => new URL(path, import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { asRank } from "${url("../lib/parallel/mod.ts")}";
import { InputError } from "${url("../lib/errors.ts")}";
import { reportFailure } from "${url("../main.ts")}";
try {
  await asRank(async (world) => {
    if (world!.rank === 1) throw new InputError("out.jsonl: no space left on device");
    await world!.allreduceSum(new Float32Array(4));
  });
} catch (error) {
  Deno.exit(await reportFailure(error));
}
`,
    );
    const deno = [Deno.execPath(), "run", "-A", "--no-check", script];
    const ended = await mpirun(deno, deno);
    assert.equal(ended.code, 1, ended.stderr);
    const ours = ended.stderr.split("\n").filter((l) => l.startsWith("error:"));
    assert.deepEqual(ours, ["error: out.jsonl: no space left on device"], ended.stderr);
    // Ended by MPI_Abort: Open MPI's banner says so, or (when the abort outruns it) its help
    // system says it lost the banner; never the note on a rank that exited without MPI_Finalize.
    assert.match(ended.stderr, /MPI_ABORT was invoked on rank 1|ORTE_ERROR_LOG: .*show_help/);
    assert.doesNotMatch(ended.stderr, /exiting improperly/);
  });
});

Deno.test({
  name: "pretrain on 3 MPICH ranks (its ABI: integer handles) ends with one process's adapter",
  ignore: !MPICH,
}, async () => {
  await withTempDir(async (dir) => {
    const data = await demoDataset();
    await writeSmallModel(join(dir, "base"), await smallConfig());
    const lora = (out: string) => [
      ...PRETRAIN,
      ...["--data", data, "--model", join(dir, "base"), "--out", out, "--lora"],
      ...["--lora-dropout", "0.1", "--batch-size", "7", "--steps", "4", "--save-every", "4"],
      ...["--val-batches", "2", "--lr", "1e-2", "--max-length", "96", "--threads", "1", "--quiet"],
    ];
    const single = await run(lora(join(dir, "one")));
    assert.equal(single.code, 0, single.stderr);
    const ranks = await run(["mpirun.mpich", "-np", "3", ...lora(join(dir, "three"))]);
    assert.equal(ranks.code, 0, ranks.stderr);
    assert.equal(JSON.parse(ranks.stdout).ranks, 3);
    await assertClose(
      join(dir, "one", "adapter_model.safetensors"),
      join(dir, "three", "adapter_model.safetensors"),
      1e-5,
    );
    await assertSameLosses(join(dir, "one"), join(dir, "three"));
  });
});
