/**
 * Data-parallel training without MPI: the world read from the launchers' variables, the batch
 * split, the collectives and failure agreement of lib/parallel on ranks inside one process, the
 * slicing of a batch, and `train` on two in-process ranks against one process (the same adapter;
 * rank 1 writes nothing; a failure stops both ranks, and the run resumes on one process). The
 * same under a real `mpirun` is tests/parallel_mpi_test.ts.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  broadcastJson,
  type Collective,
  cudaDeviceOf,
  isAgreed,
  localGroup,
  openWorld,
  RankFailed,
  RankUsageFailed,
  runAsRank,
  shareOf,
  sonamesFor,
  together,
  worldFromEnv,
} from "../lib/parallel/mod.ts";
import {
  afterReport,
  InputError,
  OptionError,
  ReportedElsewhere,
  UsageError,
} from "../lib/errors.ts";
import { sliceBatch } from "../lib/train/data.ts";
import type { Batch } from "../lib/collate/types.ts";
import { train, type TrainOptions } from "../lib/train/trainer.ts";
import { SafetensorsFile } from "../lib/model/safetensors.ts";
import { readMetrics } from "../lib/train/outputs.ts";
import { demoDataset, smallConfig, writeSmallModel } from "./helpers/train.ts";
import { withTempDir } from "./helpers/temp.ts";
import { runCli, runCliProcess } from "./helpers/cli.ts";

const envOf = (vars: Record<string, string>) => (name: string) => vars[name];

Deno.test("the world comes from Open MPI's, Hydra's, MVAPICH's and Slurm's variables; alone, none", () => {
  assert.deepEqual(
    worldFromEnv(envOf({
      OMPI_COMM_WORLD_SIZE: "4",
      OMPI_COMM_WORLD_RANK: "3",
      OMPI_COMM_WORLD_LOCAL_RANK: "1",
    })),
    { size: 4, rank: 3, localRank: 1, launcher: "Open MPI" },
  );
  assert.deepEqual(
    worldFromEnv(envOf({ PMI_SIZE: "2", PMI_RANK: "1", MPI_LOCALRANKID: "0" })),
    { size: 2, rank: 1, localRank: 0, launcher: "PMI" },
  );
  const mvapich = {
    MV2_COMM_WORLD_SIZE: "3",
    MV2_COMM_WORLD_RANK: "2",
    MV2_COMM_WORLD_LOCAL_RANK: "0",
  };
  assert.deepEqual(
    worldFromEnv(envOf(mvapich)),
    { size: 3, rank: 2, localRank: 0, launcher: "MVAPICH" },
  );
  assert.equal(sonamesFor(worldFromEnv(envOf(mvapich))!.launcher)[0], "libmpi.so.12"); // MPICH ABI
  assert.deepEqual(
    worldFromEnv(envOf({ PMIX_RANK: "5", SLURM_NTASKS: "8", SLURM_LOCALID: "1" })),
    { size: 8, rank: 5, localRank: 1, launcher: "PMIx" },
  );
  // A Slurm job step without an MPI plugin, a world of one, no launcher: a single process.
  assert.equal(worldFromEnv(envOf({ SLURM_PROCID: "0", SLURM_NTASKS: "1" })), undefined);
  assert.equal(worldFromEnv(envOf({ PMI_SIZE: "1", PMI_RANK: "0" })), undefined);
  assert.equal(worldFromEnv(envOf({})), undefined);
  // ... and then nothing is loaded.
  assert.equal(openWorld(envOf({ RECSYSLLM_MPI_LIB: "/no/such/libmpi.so" })), undefined);
  // A batch script (no step) or one task of a step: alone too.
  assert.equal(openWorld(envOf({ SLURM_NTASKS: "4", SLURM_PROCID: "0" })), undefined);
  assert.equal(openWorld(envOf({ SLURM_STEP_NUM_TASKS: "1", SLURM_PROCID: "0" })), undefined);
});

Deno.test("srun's tasks without an MPI plugin are refused: they would train alone into one --out", () => {
  assert.throws(
    () => openWorld(envOf({ SLURM_STEP_NUM_TASKS: "4", SLURM_PROCID: "2", SLURM_NTASKS: "4" })),
    (e: Error) =>
      e instanceof InputError && /srun started 4 tasks without an MPI plugin/.test(e.message),
  );
});

Deno.test("a Slurm step is as many ranks as its own tasks, not the allocation's (srun --preserve-env)", () => {
  // srun -E keeps SLURM_NTASKS at the allocation's 8; the step runs 2 tasks (SLURM_STEP_NUM_TASKS).
  const slurm = { SLURM_NTASKS: "8", SLURM_STEP_NUM_TASKS: "2", SLURM_LOCALID: "1" };
  assert.deepEqual(
    worldFromEnv(envOf({ ...slurm, PMIX_RANK: "1" })),
    { size: 2, rank: 1, localRank: 1, launcher: "PMIx" },
  );
  assert.equal(worldFromEnv(envOf({ ...slurm, PMI_RANK: "1" }))?.size, 2);
  // A step of one task in that allocation: alone (not "8 ranks" that MPI then does not see).
  assert.equal(
    worldFromEnv(envOf({ ...slurm, SLURM_STEP_NUM_TASKS: "1", PMIX_RANK: "0" })),
    undefined,
  );
});

Deno.test("pretrain --help under a launcher of several ranks exits 2, so that the launcher ends ranks waiting in MPI_Init", async () => {
  // In a process of its own: this process's environment is shared with the tests beside it.
  const env = { OMPI_COMM_WORLD_SIZE: "2", OMPI_COMM_WORLD_RANK: "1" };
  const help = await runCliProcess(["pretrain", "--help"], { env });
  assert.equal(help.code, 2, help.stderr);
  assert.match(help.stdout, /^Usage: recsysllm pretrain\b/);
  assert.match(help.stderr, /^pretrain: note: --help under an MPI launcher \(rank 1 of 2\)/);
  // Alone: status 0.
  assert.equal((await runCli(["pretrain", "--help"])).code, 0);
});

Deno.test("Hydra's launches try MPICH's library first, the others Open MPI's", () => {
  assert.deepEqual(sonamesFor("PMI").slice(0, 3), [
    "libmpi.so.12",
    "libmpich.so.12",
    "libmpi.so.40",
  ]);
  assert.equal(sonamesFor("Open MPI")[0], "libmpi.so.40");
  assert.equal(sonamesFor("PMIx")[0], "libmpi.so.40");
});

Deno.test("a launch whose MPI library cannot load is a one-line error naming what was tried", () => {
  const env = envOf({
    OMPI_COMM_WORLD_SIZE: "2",
    OMPI_COMM_WORLD_RANK: "0",
    RECSYSLLM_MPI_LIB: "/no/such/libmpi.so",
  });
  assert.throws(
    () => openWorld(env),
    (e: Error) =>
      e instanceof InputError && /rank 0 of an MPI launch/.test(e.message) &&
      e.message.includes("/no/such/libmpi.so") && !e.message.includes("\n"),
  );
});

Deno.test("each rank's GPU is its local rank, modulo the devices CUDA_VISIBLE_DEVICES lists", () => {
  assert.equal(cudaDeviceOf(0, undefined), 0);
  assert.equal(cudaDeviceOf(3, undefined), 3);
  assert.equal(cudaDeviceOf(3, "2,3"), 1);
  assert.equal(cudaDeviceOf(1, "7"), 0);
  assert.equal(cudaDeviceOf(2, ""), 2);
});

Deno.test("the shares of a global batch are contiguous, disjoint and cover it", () => {
  for (let size = 1; size <= 5; size++) {
    for (let batch = size; batch <= 13; batch++) {
      let next = 0;
      const counts: number[] = [];
      for (let rank = 0; rank < size; rank++) {
        const [start, end] = shareOf(batch, rank, size);
        assert.equal(
          start,
          next,
          `batch ${batch} on ${size}: rank ${rank} starts where ${rank - 1} ends`,
        );
        counts.push(end - start);
        next = end;
      }
      assert.equal(next, batch);
      assert.ok(Math.max(...counts) - Math.min(...counts) <= 1);
      assert.ok(Math.min(...counts) >= 1);
    }
  }
});

Deno.test("in-process ranks sum, broadcast and agree on a failure, naming its rank", async () => {
  const ranks = localGroup(3);
  const data = ranks.map((r) => Float32Array.of(r.rank, 0.1));
  await Promise.all(ranks.map((r, i) => r.allreduceSum(data[i])));
  for (const d of data) assert.deepEqual([...d], [3, Math.fround(Math.fround(0.1 + 0.1) + 0.1)]);
  const told = await Promise.all(
    ranks.map((r) => broadcastJson(r, r.rank === 2 ? { from: 2, list: [1, 2] } : undefined, 2)),
  );
  for (const t of told) assert.deepEqual(t, { from: 2, list: [1, 2] });

  // Ranks 1 and 2 fail: every rank throws rank 1's error, an InputError stays one.
  const failing = (r: Collective) =>
    together(r, () => {
      if (r.rank === 1) throw new InputError("data/train.jsonl line 3: bad JSON");
      if (r.rank === 2) throw new InputError("another problem");
      return r.rank;
    });
  const results = await Promise.allSettled(ranks.map(failing));
  for (const result of results) {
    assert.equal(result.status, "rejected");
    const error = (result as PromiseRejectedResult).reason;
    assert.ok(error instanceof RankFailed && isAgreed(error));
    assert.equal(error.message, "rank 1: data/train.jsonl line 3: bad JSON");
  }
  // An option stays an OptionError (the command words it with its flag), usage stays usage.
  const option = await Promise.allSettled(ranks.map((r) =>
    together(r, () => {
      if (r.rank === 2) throw new OptionError("batchSize", (n) => `${n} must be >= 3`);
    })
  ));
  const error = (option[0] as PromiseRejectedResult).reason as OptionError;
  assert.ok(error instanceof OptionError);
  assert.equal(error.describe("--batch-size"), "rank 2: --batch-size must be >= 3");
  const usage = await Promise.allSettled(ranks.map((r) =>
    together(r, () => {
      if (r.rank === 0) throw new UsageError("give --steps or --epochs");
    })
  ));
  assert.ok((usage[1] as PromiseRejectedResult).reason instanceof RankUsageFailed);
  // No failure: each rank's own result.
  assert.deepEqual(await Promise.all(ranks.map((r) => together(r, () => r.rank * 10))), [
    0,
    10,
    20,
  ]);
});

Deno.test("a file fault inside together is bad input on every rank, as one process words it", async () => {
  const ranks = localGroup(2);
  const results = await Promise.allSettled(ranks.map((r) =>
    together(r, () => {
      if (r.rank === 0) throw new Deno.errors.IsADirectory("Is a directory (os error 21)");
    })
  ));
  for (const result of results) {
    const error = (result as PromiseRejectedResult).reason;
    assert.ok(error instanceof RankFailed, String(error)); // an InputError: status 1, not 70
    assert.match(error.message, /^rank 0: .*is a directory/i);
  }
});

Deno.test("a rank's own failure ends the job once reported; an agreed one closes the world after rank 0 printed it", async () => {
  const world = (rank: number) => {
    const said: string[] = [];
    const w: Collective = {
      ...localGroup(1)[0],
      rank,
      size: 2,
      close: () => (said.push("close"), Promise.resolve()),
      abort: (status) => (said.push(`abort ${status}`), Promise.resolve()),
    };
    return { w, said };
  };
  // Alone: no MPI_Finalize (the others wait in a collective); MPI_Abort with the exit status
  // once the command line has printed the error.
  const alone = world(1);
  const own = await runAsRank(
    alone.w,
    () => Promise.reject(new RangeError("Array buffer allocation failed")),
  ).catch((error) => error);
  assert.ok(own instanceof RangeError);
  assert.deepEqual(alone.said, []);
  await afterReport(own, 70);
  assert.deepEqual(alone.said, ["abort 70"]);

  const agreed = world(1);
  const failure = await Promise.allSettled(
    localGroup(2).map((r) =>
      together(r, () => {
        if (r.rank === 0) throw new InputError("bad");
      })
    ),
  );
  const reason = (failure[1] as PromiseRejectedResult).reason;
  const elsewhere = await runAsRank(agreed.w, () => Promise.reject(reason)).catch((e) => e);
  assert.ok(elsewhere instanceof ReportedElsewhere);
  assert.deepEqual(agreed.said, []);
  await afterReport(elsewhere, 1);
  assert.deepEqual(agreed.said, ["close"]);

  const fine = world(0);
  assert.equal(await runAsRank(fine.w, () => Promise.resolve(7)), 7);
  assert.deepEqual(fine.said, ["close"]);
});

Deno.test("ranks that agreed on a failure leave only after rank 0 has reported it", async () => {
  const ranks = localGroup(3);
  const errors = await Promise.all(ranks.map((r) =>
    runAsRank(r, (w) =>
      together(w, () => {
        if (r.rank === 2) throw new InputError("bad row");
      })).catch((error) => error)
  ));
  assert.ok(isAgreed(errors[0]));
  assert.match(errors[0].message, /^rank 2: bad row/);
  assert.ok(errors[1] instanceof ReportedElsewhere && errors[2] instanceof ReportedElsewhere);
  const left: number[] = [];
  const leaving = [1, 2].map((r) => afterReport(errors[r], 1).then(() => left.push(r)));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(left, [], "a rank left before rank 0 reported the failure");
  await afterReport(errors[0], 1);
  await Promise.all(leaving);
  assert.deepEqual(left.sort(), [1, 2]);
});

Deno.test("a rank that fails alone ends the others waiting in a collective", async () => {
  const [zero, one] = localGroup(2);
  const waiting = runAsRank(zero, (w) => w!.allreduceSum(new Float32Array(4))).catch((e) => e);
  const own = await runAsRank(one, () => Promise.reject(new InputError("disk full")))
    .catch((e) => e);
  await afterReport(own, 1);
  const ended = await waiting;
  assert.match(String(ended), /rank 1 aborted the run \(status 1\)/);
});

Deno.test("a slice of a batch keeps its rows, length and the trie bias rows of its loss tokens", () => {
  // 3 examples of length 4; loss positions: example 0 at 2, 3; example 1 at 1; example 2 at 3.
  const lossMask = Float32Array.of(0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 1);
  const labels = Int32Array.of(-100, -100, 5, 6, -100, 7, -100, -100, -100, -100, -100, 8);
  const vocab = 2;
  const batch: Batch = {
    batchSize: 3,
    length: 4,
    inputIds: Int32Array.from({ length: 12 }, (_, i) => i),
    positionIds: Int32Array.from({ length: 24 }, (_, i) => 100 + i),
    sep: Int32Array.of(2, 1, 3),
    labels,
    lossMask,
    // One row per loss position (mask on, label real): 4 rows, row r = [r, r].
    lossLogitBias: { rows: 4, vocab, data: Float32Array.of(0, 0, 1, 1, 2, 2, 3, 3) },
  };
  const part = sliceBatch(batch, 1, 3);
  assert.equal(part.batchSize, 2);
  assert.equal(part.length, 4);
  assert.deepEqual([...part.inputIds], [4, 5, 6, 7, 8, 9, 10, 11]);
  assert.deepEqual([...part.positionIds], Array.from({ length: 16 }, (_, i) => 108 + i));
  assert.deepEqual([...part.sep], [1, 3]);
  // Example 1's position 2 has the mask but no label: not a loss row.
  assert.deepEqual(part.lossLogitBias, { rows: 2, vocab, data: Float32Array.of(2, 2, 3, 3) });
  assert.deepEqual(sliceBatch(batch, 0, 1).lossLogitBias!.data, Float32Array.of(0, 0, 1, 1));
  assert.throws(() => sliceBatch(batch, 2, 2), RangeError);
});

async function tensors(file: string): Promise<Map<string, Float32Array>> {
  const f = await SafetensorsFile.open(file);
  return new Map(await Promise.all(f.names().map(async (n) => [n, await f.float32(n)] as const)));
}

async function maxDifference(a: string, b: string): Promise<number> {
  const x = await tensors(a);
  const y = await tensors(b);
  assert.deepEqual([...y.keys()].sort(), [...x.keys()].sort());
  let most = 0;
  for (const [name, u] of x) {
    const v = y.get(name)!;
    for (let i = 0; i < u.length; i++) most = Math.max(most, Math.abs(u[i] - v[i]));
  }
  return most;
}

Deno.test("train on two in-process ranks: one process's adapter; a failure stops both; resumed on one", async () => {
  await withTempDir(async (dir) => {
    const data = await demoDataset();
    await writeSmallModel(join(dir, "base"), await smallConfig());
    const options = (out: string): TrainOptions => ({
      data,
      model: join(dir, "base"),
      out,
      lora: { rank: 4, alpha: 8, dropout: 0.1, targets: ["query_key_value", "dense_h_to_4h"] },
      steps: 4,
      batchSize: 5,
      gradAccum: 2,
      lr: 1e-2,
      saveEvery: 2,
      valBatches: 2,
      maxLength: 96,
      seed: 5,
      threads: 1,
    });
    const one = join(dir, "one");
    await train(options(one));

    const [a, b] = localGroup(2);
    const two = join(dir, "two");
    await Promise.all([
      train({ ...options(two), world: a }),
      train({ ...options(join(dir, "rank1")), world: b }),
    ]);
    await assert.rejects(Deno.stat(join(dir, "rank1")), Deno.errors.NotFound);
    const file = "adapter_model.safetensors";
    assert.ok(await maxDifference(join(one, file), join(two, file)) < 1e-5);
    const x = await readMetrics(join(one, "metrics.jsonl"));
    const y = await readMetrics(join(two, "metrics.jsonl"));
    assert.equal(y.length, 4);
    for (let i = 0; i < 4; i++) {
      assert.ok(Math.abs(x[i].loss - y[i].loss) < 1e-5);
      assert.equal(y[i].val_loss === undefined, i % 2 === 0);
      if (i % 2 === 1) {
        assert.ok(Math.abs(x[i].val_loss! - y[i].val_loss!) < 1e-5, "validation split and summed");
      }
    }

    // Rank 0 fails after its step 3 (here: the progress callback): both ranks stop with its error,
    // the step-2 checkpoint stays, and one process resumes it to the same adapter.
    const [c, d] = localGroup(2);
    const cut = join(dir, "cut");
    const stopped = await Promise.allSettled([
      train({
        ...options(cut),
        world: c,
        onStep: (line) => {
          if (line.step === 3) throw new InputError("disk full");
        },
      }),
      train({ ...options(cut), world: d }),
    ]);
    for (const s of stopped) {
      assert.equal(s.status, "rejected");
      assert.equal((s as PromiseRejectedResult).reason.message, "rank 0: disk full");
    }
    await train({ ...options(cut), resume: true });
    assert.ok(await maxDifference(join(one, file), join(cut, file)) < 1e-5);
  });
});

Deno.test("ranks refuse an option rank 0 alone acts on given to another rank only, and a tokenizer whose special ids differ", async () => {
  await withTempDir(async (dir) => {
    const data = await demoDataset();
    const base = join(dir, "base");
    await writeSmallModel(base, await smallConfig());
    const options = (out: string, model = base): TrainOptions => ({
      data,
      model,
      out,
      lora: { rank: 2, alpha: 4, dropout: 0, targets: ["query_key_value"] },
      steps: 1,
      batchSize: 2,
      lr: 1e-3,
      valBatches: 0,
      maxLength: 96,
      seed: 5,
      threads: 1,
    });
    const both = async (second: TrainOptions, pattern: RegExp) => {
      const [a, b] = localGroup(2);
      const results = await Promise.allSettled([
        train({ ...options(join(dir, "run")), world: a }),
        train({ ...second, world: b }),
      ]);
      for (const r of results) {
        assert.equal(r.status, "rejected");
        assert.match((r as PromiseRejectedResult).reason.message, pattern);
      }
    };
    // --merge given to rank 1 only: rank 0, which merges, would not.
    await both(
      { ...options(join(dir, "run")), merge: join(dir, "merged") },
      /flags differ from rank 0's \(merge: null -> ".*merged"\)/,
    );
    // A copy of the model whose tokenizer swaps [S] and [E]: the records hash alike, the
    // collator would insert other ids.
    const swapped = join(dir, "swapped");
    await Deno.mkdir(swapped);
    for (const f of ["config.json", "model.safetensors"]) {
      await Deno.copyFile(join(base, f), join(swapped, f));
    }
    const tokenizer = JSON.parse(await Deno.readTextFile(join(base, "tokenizer.json")));
    const ids = Object.fromEntries(
      tokenizer.added_tokens.map((t: { content: string; id: number }) => [t.content, t.id]),
    );
    for (const t of tokenizer.added_tokens as { content: string; id: number }[]) {
      if (t.content === "[S]") t.id = ids["[E]"];
      else if (t.content === "[E]") t.id = ids["[S]"];
    }
    await Deno.writeTextFile(join(swapped, "tokenizer.json"), JSON.stringify(tokenizer));
    await both(options(join(dir, "run"), swapped), /differ from rank 0's \(specialIds: /);
  });
});
