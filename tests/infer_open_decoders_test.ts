// How many decoders inference opens (lib/generate/open_decoders.ts): `auto` gives a small model on
// the CPU a decoder per core in workers, keeps one for a large model or given threads, and the
// decoders of every choice answer alike.
import assert from "node:assert/strict";
import {
  AUTO_WORKERS_BYTES,
  AUTO_WORKERS_MAX,
  autoWorkers,
  openDecoders,
} from "../lib/generate/open_decoders.ts";
import { CachedDecoder } from "../lib/generate/decoder.ts";
import { WorkerDecoder } from "../lib/generate/worker_decoder.ts";
import { glmDecoderConfig } from "../lib/model/config.ts";
import { TINY, tinyWeights } from "./helpers/infer.ts";

Deno.test("auto: a decoder per core for a small model, one for a large one or given threads", () => {
  assert.equal(autoWorkers({ weightBytes: 21e6, cores: 2 }), 2);
  assert.equal(autoWorkers({ weightBytes: AUTO_WORKERS_BYTES, cores: 4 }), 4);
  assert.equal(autoWorkers({ weightBytes: AUTO_WORKERS_BYTES + 1, cores: 4 }), 1);
  assert.equal(autoWorkers({ weightBytes: 21e6, cores: 64 }), AUTO_WORKERS_MAX);
  assert.equal(autoWorkers({ weightBytes: 21e6, cores: 1 }), 1);
  assert.equal(autoWorkers({ weightBytes: 21e6, cores: 8, threads: 2 }), 1);
});

const spec = { config: glmDecoderConfig(TINY), weights: tinyWeights(TINY, 3) };

Deno.test("openDecoders: auto opens workers on the CPU, one decoder here with threads or 1", async () => {
  const cases = [
    { options: { cores: 2 }, device: "auto", want: [WorkerDecoder, WorkerDecoder] },
    { options: { cores: 3 }, device: "cpu", want: [WorkerDecoder, WorkerDecoder, WorkerDecoder] },
    { options: { cores: 2, threads: 1 }, device: "cpu", want: [CachedDecoder] },
    { options: { cores: 2, workers: 1 }, device: "cpu", want: [CachedDecoder] },
    { options: { cores: 1, workers: 2 }, device: "cpu", want: [WorkerDecoder, WorkerDecoder] },
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
