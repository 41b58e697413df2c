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

import type { CachedDecoder } from "./decoder.ts";
import { openCachedDecoder } from "./open_decoders.ts";
import { type DecoderRequest, errorReply, type WorkerReply } from "./worker_decoder.ts";

let decoder: CachedDecoder | undefined;

/**
 * `data` as an array the reply may take (transfer) with it: the decoder's own when it alone holds
 * its buffer (onnxruntime's output of the run, or a fresh copy), else a copy, since the decoder may
 * reuse an array at its next call.
 */
function owned(data: Float32Array): Float32Array {
  return data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
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
    decoder = await openCachedDecoder(request.spec);
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
      return { id: request.id, data: owned(await d.step(request.input)), counters: counters(d) };
    case "scoreTargets":
      return {
        id: request.id,
        data: owned(await d.scoreTargets(request.input)),
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
    const data = reply.data;
    try {
      self.postMessage(reply, { transfer: data ? [data.buffer as ArrayBuffer] : [] });
    } catch {
      // A buffer that cannot be handed over (memory onnxruntime keeps): sent as a copy instead.
      self.postMessage({ ...reply, data: data?.slice() });
    }
  });
};
