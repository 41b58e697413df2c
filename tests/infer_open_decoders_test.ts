// How many decoders inference opens (lib/generate/open_decoders.ts): `auto` gives a small model on
// the CPU a decoder per core in workers, keeps one for a large model or given threads, and the
// decoders of every choice answer alike.
import assert from "node:assert/strict";
import {
  AUTO_WORKERS_BYTES,
  AUTO_WORKERS_MAX,
  autoWorkers,
  coreShares,
  openDecoders,
  parseWorkers,
} from "../lib/generate/open_decoders.ts";
import { CachedDecoder } from "../lib/generate/decoder.ts";
import { WorkerDecoder } from "../lib/generate/worker_decoder.ts";
import { glmDecoderConfig } from "../lib/model/config.ts";
import { TINY, tinyWeights } from "./helpers/infer.ts";
import { InputError } from "../lib/errors.ts";

Deno.test("auto: a decoder per core for a small model, one for a large one or given threads", () => {
  assert.equal(autoWorkers({ weightBytes: 21e6, cores: 2 }), 2);
  assert.equal(autoWorkers({ weightBytes: AUTO_WORKERS_BYTES, cores: 3 }), 3);
  assert.equal(autoWorkers({ weightBytes: AUTO_WORKERS_BYTES + 1, cores: 4 }), 1);
  assert.equal(autoWorkers({ weightBytes: 21e6, cores: 64 }), AUTO_WORKERS_MAX);
  assert.equal(autoWorkers({ weightBytes: 21e6, cores: 1 }), 1);
  assert.equal(autoWorkers({ weightBytes: 21e6, cores: 8, threads: 2 }), 1);
  assert.equal(parseWorkers("auto"), "auto");
  assert.equal(parseWorkers("3"), 3);
  for (const bad of ["0", "-1", "2.5", "many", "257", " 2", "1e1", "0x2", ""]) {
    assert.throws(() => parseWorkers(bad), /workers must be auto or an integer from 1 to 256/);
  }
});

Deno.test("the cores are shared among the decoders, none left idle", () => {
  assert.deepEqual(coreShares(2, 2), [1, 1]);
  assert.deepEqual(coreShares(6, 4), [2, 2, 1, 1]);
  assert.deepEqual(coreShares(3, 2), [2, 1]);
  assert.deepEqual(coreShares(2, 3), [1, 1, 1]);
  assert.deepEqual(coreShares(16, 4), [4, 4, 4, 4]);
});

const spec = { config: glmDecoderConfig(TINY), weights: tinyWeights(TINY, 3) };

Deno.test("openDecoders: auto opens workers on the CPU, one decoder here with threads or 1", async () => {
  const W = WorkerDecoder;
  const cases = [
    { options: { cores: 2, workers: "auto" }, device: "auto", want: [W, W] },
    { options: { cores: 3, workers: "auto" }, device: "cpu", want: [W, W, W] },
    { options: { cores: 2, workers: "auto", threads: 1 }, device: "cpu", want: [CachedDecoder] },
    { options: { cores: 2 }, device: "cpu", want: [CachedDecoder] }, // the library's default: 1
    { options: { cores: 1, workers: 2 }, device: "cpu", want: [W, W] },
  ] as const;
  for (const { options, device, want } of cases) {
    const decoders = await openDecoders({ ...spec, device }, options);
    try {
      assert.deepEqual(decoders.map((d) => d.constructor), want, JSON.stringify(options));
      for (const d of decoders) assert.equal(d.device, "cpu");
    } finally {
      for (const d of decoders) await d.release();
    }
  }
});

Deno.test("a worker's bad input stays bad input (exit 1), its bug a bug (with the worker's stack)", async () => {
  // An unknown device fails in the worker's session as a DeviceError, an InputError.
  await assert.rejects(
    () => WorkerDecoder.create({ ...spec, device: "tpu" as "cpu" }),
    (e: unknown) => e instanceof InputError && /unknown device "tpu"/.test((e as Error).message),
  );
  const decoder = await WorkerDecoder.create({ ...spec, device: "cpu", threads: 1 });
  try {
    await assert.rejects(
      () => decoder.prefill([]),
      (e: unknown) =>
        !(e instanceof InputError) && e instanceof Error && e.name === "RangeError" &&
        /in a decoder worker/.test(e.stack ?? ""),
    );
  } finally {
    await decoder.release();
  }
});
