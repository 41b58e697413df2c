// Decoders in workers (lib/generate/worker_decoder.ts): a decoder in a worker gives the bits of
// one on the main thread, errors come back from the worker, and `infer --workers N` writes the
// same bytes as one decoder, every task family included.
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, runCliProcess } from "./helpers/cli.ts";
import { runProcess } from "./helpers/process.ts";
import { cudaRuntimePackage } from "../lib/runtime/providers.ts";
import { CachedDecoder, type StepModel } from "../lib/generate/mod.ts";
import { openWorkerDecoders, WorkerDecoder } from "../lib/generate/worker_decoder.ts";
import { glmDecoderConfig } from "../lib/model/config.ts";
import { modelFamily } from "../lib/model/family.ts";
import { Rng } from "../lib/random.ts";
import { noisyDecoderWeights, TINY as TINY_DECODERS } from "./helpers/decoder.ts";
import { randomPrompt, TINY, tinyWeights, writeModelDir } from "./helpers/infer.ts";
import { processTempDir, withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

/** Prefill, three steps (beams reordered, one prompt dropped), then scoring: every output. */
async function session(model: StepModel): Promise<number[][]> {
  const rng = new Rng(4);
  const V = Math.min(model.vocabSize, 300);
  await model.prefill([randomPrompt(rng, 20, V), randomPrompt(rng, 70, V)]);
  const out: number[][] = [];
  for (let s = 0; s < 3; s++) {
    if (s === 2) model.keepPrompts([1]);
    const prompts = s === 2 ? 1 : 2;
    const n = prompts * 2;
    const logp = await model.step({
      perPrompt: 2,
      ids: Int32Array.from({ length: n }, (_, r) => 5 + ((7 * r + s) % 23)),
      inter: Int32Array.from({ length: n }, () => 19),
      intra: new Int32Array(n).fill(s + 1),
      beamIndex: Int32Array.from({ length: n }, (_, r) => (r % 2 === 0 ? r + 1 : r)),
    });
    out.push(Array.from(logp));
  }
  model.resetPast();
  const scored = await model.scoreTargets({
    perPrompt: 1,
    length: 3,
    ids: Int32Array.of(1, 7, 9),
    inter: Int32Array.of(69, 69, 69),
    intra: Int32Array.of(1, 2, 3),
    targets: Int32Array.of(7, 9, 2),
  });
  out.push(Array.from(scored));
  return out;
}

const specs = {
  glm: { config: glmDecoderConfig(TINY), weights: tinyWeights(TINY, 3) },
  qwen3: (() => {
    const config = { ...TINY_DECODERS.qwen3, vocabSize: 300, maxPositionEmbeddings: 256 };
    return { config, weights: noisyDecoderWeights(config, 4, { intra: true }) };
  })(),
};
for (const [name, spec] of Object.entries(specs)) {
  Deno.test(`${name}: a decoder in a worker gives every bit a decoder on this thread gives`, async () => {
    const here = await CachedDecoder.create(modelFamily(spec), { device: "cpu", threads: 1 });
    const [there] = await openWorkerDecoders({ ...spec, device: "cpu" }, {
      workers: 1,
      threads: 1,
    });
    try {
      assert.equal(there.vocabSize, here.vocabSize);
      assert.equal(there.device, "cpu");
      // deepEqual on numbers compares with Object.is: every bit.
      assert.deepEqual(await session(there), await session(here));
      assert.equal(there.runs, here.runs);
      assert.equal(there.prefillRows, here.prefillRows);
      assert.equal(there.stepRows, here.stepRows);
    } finally {
      await here.release();
      await there.release();
    }
  });
}

Deno.test("a worker's error is thrown by the call that met it, and the worker goes on", async () => {
  const decoder = await WorkerDecoder.create({ ...specs.glm, device: "cpu", threads: 1 });
  try {
    await assert.rejects(() => decoder.prefill([]), /prefill needs at least one prompt/);
    await decoder.prefill([randomPrompt(new Rng(1), 10, 200)]);
    assert.equal(decoder.prefillRows, 10);
  } finally {
    await decoder.release();
  }
  await decoder.release(); // a second release does nothing (and does not wait for a reply)
  await assert.rejects(
    () => decoder.prefill([randomPrompt(new Rng(1), 10, 200)]),
    /the decoder was released/,
  );
});

Deno.test("a worker that cannot be sent its model is ended, not left running", async () => {
  // A function cannot be cloned into a worker: postMessage throws. A worker left running would
  // keep the process alive. The workers started are counted through a stand-in Worker class.
  const started: { ended: boolean }[] = [];
  const Original = globalThis.Worker;
  globalThis.Worker = class extends Original {
    #entry = { ended: false };
    constructor(...args: ConstructorParameters<typeof Worker>) {
      super(...args);
      started.push(this.#entry);
    }
    override terminate() {
      this.#entry.ended = true;
      super.terminate();
    }
  };
  try {
    const unsendable = { ...specs.glm, device: "cpu", threads: 1, extra: () => 0 } as const;
    await assert.rejects(() => WorkerDecoder.create(unsendable), { name: "DataCloneError" });
  } finally {
    globalThis.Worker = Original;
  }
  assert.equal(started.length, 1);
  assert.ok(started[0].ended, "the worker was not terminated");
});

Deno.test("a call that cannot be sent keeps the state changes before it for the next call", async () => {
  const rng = new Rng(6);
  const prompts = [randomPrompt(rng, 12, 200), randomPrompt(rng, 30, 200)];
  const step = {
    perPrompt: 1,
    ids: Int32Array.of(9),
    inter: Int32Array.of(29),
    intra: Int32Array.of(1),
    beamIndex: Int32Array.of(0),
  };
  const here = await CachedDecoder.create(modelFamily(specs.glm), { device: "cpu", threads: 1 });
  const there = await WorkerDecoder.create({ ...specs.glm, device: "cpu", threads: 1 });
  try {
    await here.prefill(prompts);
    here.keepPrompts([1]);
    const want = Array.from(await here.step(step));
    await there.prefill(prompts);
    there.keepPrompts([1]);
    const unsendable = { ...step, extra: () => 0 };
    await assert.rejects(() => there.step(unsendable), { name: "DataCloneError" });
    assert.deepEqual(Array.from(await there.step(step)), want);
  } finally {
    await here.release();
    await there.release();
  }
});

// fixtures/eval/tiny: 19 test records of every task family (items, ratings, text).
const DATA = fileURLToPath(new URL("../fixtures/eval/tiny", import.meta.url));
const MODEL = await processTempDir();
await writeModelDir(MODEL, TINY, tinyWeights(TINY, 3));

Deno.test("infer --workers 3 writes the bytes one decoder writes, every task family", async () => {
  await withTempDir(async (dir) => {
    const run = async (workers: string) => {
      const out = join(dir, `w${workers}.jsonl`);
      const r = await runCli([
        ...["infer", "--quiet", "--device", "cpu", "--model", MODEL, "--data", DATA, "--out", out],
        ...["--batch-size", "2", "--threads", "1", "--beams", "10", "--max-new-tokens", "5"],
        ...["--workers", workers],
      ]);
      assert.equal(r.code, 0, r.stderr);
      return await Deno.readTextFile(out);
    };
    const one = await run("1");
    assert.equal(one.split("\n").filter((l) => l !== "").length, 19);
    assert.equal(await run("3"), one);
  });
});

// The CUDA runtime of `deno task setup-cuda` (or RECSYSLLM_CUDA_RUNTIME), where it is installed.
const CUDA_RUNTIME = cudaRuntimePackage();

Deno.test({
  name:
    "infer --device auto in workers beside the CUDA runtime, without a GPU: every worker on the CPU",
  ignore: CUDA_RUNTIME === undefined,
}, async () => {
  // The first worker's `auto` loads the CUDA runtime's onnxruntime (1.29.0) and falls back to
  // the CPU; the others loaded the default package (1.30.0) beside it and failed to load.
  await withTempDir(async (dir) => {
    const run = async (workers: string) => {
      const out = join(dir, `${workers}.jsonl`);
      const r = await runCliProcess([
        ...["infer", "--quiet", "--device", "auto", "--model", MODEL, "--data", DATA],
        ...["--out", out, "--tasks", "sequential", "--workers", workers],
      ], { env: { RECSYSLLM_CUDA_RUNTIME: CUDA_RUNTIME! } });
      assert.equal(r.code, 0, r.stderr);
      return await Deno.readTextFile(out);
    };
    // Where a GPU is found, `auto` runs one decoder on it whatever --workers says.
    if (await hasGpu()) return;
    // `auto` (a decoder a core, the first trying the devices): the same bits as one decoder of
    // that runtime (1.29.0's CPU, not 1.30.0's).
    assert.equal(await run("auto"), await run("1"));
  });
});

async function hasGpu(): Promise<boolean> {
  try {
    return (await runProcess(["nvidia-smi"])).code === 0;
  } catch {
    return false; // not installed
  }
}
