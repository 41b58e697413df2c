/**
 * The body of a {@linkcode WorkerDecoder} (worker_decoder.ts): a Web Worker that builds a
 * {@linkcode CachedDecoder} from a {@linkcode DecoderSpec} and answers its calls, one at a time
 * in the order they arrive. onnxruntime-node runs a session on the thread that calls it, so
 * decoders in workers run on as many threads at once, while the search that drives them stays on
 * the main thread.
 *
 * Not for importing: `new Worker(new URL("./decoder_worker.ts", import.meta.url))` runs it.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { modelFamily } from "../model/family.ts";
import { quantizedLinear } from "../model/quantize.ts";
import { CachedDecoder } from "./decoder.ts";
import {
  type DecoderRequest,
  type DecoderSpec,
  errorReply,
  type WorkerReply,
} from "./worker_decoder.ts";

let decoder: CachedDecoder | undefined;

async function open(spec: DecoderSpec): Promise<CachedDecoder> {
  const linear = spec.quantize ? quantizedLinear(spec.weights, spec.quantize) : undefined;
  const family = modelFamily({ config: spec.config, weights: spec.weights }, {
    attention: spec.attention,
    addedRows: spec.addedRows,
    linear,
  });
  return await CachedDecoder.create(family, { device: spec.device, threads: spec.threads });
}

function counters(d: CachedDecoder) {
  return {
    runSeconds: d.runSeconds,
    runs: d.runs,
    prefillRows: d.prefillRows,
    stepRows: d.stepRows,
  };
}

async function answer(request: DecoderRequest): Promise<WorkerReply> {
  if (request.op === "open") {
    decoder = await open(request.spec);
    return { id: request.id, device: decoder.device, vocabSize: decoder.vocabSize };
  }
  const d = decoder!;
  for (const change of request.before ?? []) {
    if (change.op === "keepPrompts") d.keepPrompts(change.keep);
    else d.resetPast();
  }
  switch (request.op) {
    case "prefill":
      await d.prefill(request.prompts);
      return { id: request.id, counters: counters(d) };
    case "step":
      // The decoder may reuse its array at the next step: the reply takes a copy.
      return { id: request.id, data: (await d.step(request.input)).slice(), counters: counters(d) };
    case "scoreTargets":
      return {
        id: request.id,
        data: (await d.scoreTargets(request.input)).slice(),
        counters: counters(d),
      };
    case "release":
      await d.release();
      decoder = undefined;
      return { id: request.id };
  }
}

let queue: Promise<void> = Promise.resolve();

self.onmessage = (event: MessageEvent<DecoderRequest>) => {
  const request = event.data;
  // One call at a time, in order: a decoder is stateful.
  queue = queue.then(async () => {
    let reply: WorkerReply;
    try {
      reply = await answer(request);
    } catch (error) {
      reply = { id: request.id, error: errorReply(error) };
    }
    const transfer = "data" in reply && reply.data ? [reply.data.buffer as ArrayBuffer] : [];
    self.postMessage(reply, { transfer });
  });
};
