/**
 * `forward`: a low-level command for checking and debugging a model: runs one batch (JSON)
 * through the forward graph and writes the logits and the loss as safetensors. Flags and files
 * only; the work is `lib/model/`.
 *
 * @module
 */

import type { Command } from "../lib/cli/command.ts";
import { Progress } from "../lib/io/progress.ts";
import { defineFlags, type FlagValues, formatFlags, parseFlags } from "../lib/cli/flags.ts";
import type { Batch } from "../lib/collate/types.ts";
import { InputError, inputError, UsageError } from "../lib/errors.ts";
import { type JsonBatch, parseBatchJson } from "../lib/model/batch_json.ts";
import { type ForwardResult, runForward } from "../lib/model/forward.ts";
import { SafetensorsFile, writeSafetensors } from "../lib/model/safetensors.ts";
import { modelIdentity } from "../lib/model/identity.ts";
import { claimOutputFile } from "../lib/io/safe_output.ts";
import { temporaryRenamed } from "../lib/io/atomic.ts";
import { toIoError } from "../lib/io/io_error.ts";
import type { Weights } from "../lib/model/weights.ts";
import { loadAnyModel, maxModelLength } from "../lib/model/load_any.ts";
import { join } from "node:path";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { type Dataset, openDataset } from "../lib/data/dataset.ts";
import { withItemTokens } from "../lib/collate/item_tokens.ts";
import { DEFAULT_DEVICE, DEVICES } from "../lib/runtime/session.ts";
import { loadAdapter, withMethodTensors } from "../lib/model/adapter.ts";
import { adapterGradients } from "../lib/train/adapter_grads.ts";
import { loraHook, loraShapes } from "../lib/model/lora.ts";

const FLAGS = defineFlags({
  model: {
    type: "string",
    placeholder: "DIR",
    required: true,
    help: "model directory (config.json, model.safetensors)",
  },
  batch: { type: "string", placeholder: "FILE", required: true, help: "the batch, as JSON" },
  out: {
    type: "string",
    placeholder: "FILE",
    required: true,
    help: "where to write the safetensors",
  },
  adapter: {
    type: "string",
    placeholder: "DIR",
    help: "apply a LoRA adapter (PEFT layout: adapter_config.json, adapter_model.safetensors) " +
      "on top of the model",
  },
  data: {
    type: "string",
    placeholder: "DIR",
    help: "the dataset the model or adapter was trained on (textualize's directory): its item " +
      "tokens (--item-tokens) are rows of the vocabulary too",
  },
  grads: {
    type: "boolean",
    help: "with --adapter: also write the loss gradient of every adapter tensor, named as the " +
      'tensor with the prefix "grad." (needs labels, loss_mask)',
  },
  device: {
    type: "choice",
    choices: DEVICES,
    default: DEFAULT_DEVICE,
    help: `${DEVICES.join(" | ")} (auto: CUDA, then WebGPU, then CPU)`,
  },
  force: { type: "boolean", help: "replace --out even when forward did not write it" },
  quiet: { type: "boolean", help: "no progress on stderr" },
});

const usage = `Usage: recsysllm forward --model DIR --batch FILE.json --out FILE.safetensors [flags]

Runs one batch through the model's forward graph and writes "logits" [B, L, V] (float32) and,
when the batch has labels, "loss" [1] (masked mean cross-entropy) to a safetensors file. Prints
a JSON summary (device, shapes, loss) on stdout.

Batch JSON: {"input_ids": [B][L], "position_ids": [B][2][L] (inter, intra), "sep": [B],
             "labels": [B][L] (-100: no loss), "loss_mask": [B][L],   (optional)
             "rope_position_ids": [B][L]}   (decoder families; optional: derived from the
             positions as docs/method.md section 11 says when absent)

For the decoder families (llama, mistral, qwen2, qwen3, GLM-4) the attention rule is the
adapter's (recorded by pretrain), else a merged model's, else causal; an adapter's intra table and
special-token rows are applied with it.

${formatFlags(FLAGS)}

Example:
  forward --model runs/tiny --batch batch.json --out out.safetensors --device cpu`;

/** The `forward` subcommand. */
export const command: Command = {
  name: "forward",
  summary: "run one batch (JSON) through the model: logits and loss as safetensors",
  usage,
  async run(args: string[]): Promise<void> {
    const { values: flags } = parseFlags("forward", args, FLAGS);
    const { model: modelDir, batch: batchPath, out, adapter } = flags;
    if (flags.grads === true && adapter === undefined) {
      throw new UsageError("forward: --grads needs --adapter (the gradients are the adapter's)");
    }
    // Claimed first: a second run on --out, or a file of the user's, is refused before the work.
    const output = await claimOutputFile(out, {
      command: "forward",
      force: flags.force,
      inputs: [modelDir, batchPath, adapter],
      recognize: isForwardOutput,
    });
    const progress = new Progress("forward", { quiet: flags.quiet });
    try {
      progress.update(`running ${batchPath} through ${modelDir}`);
      const json = await readBatchFile(batchPath);
      const done = await forwardModel(flags, json);
      // A fault names --out, not the temporary written first.
      await writeSafetensors(output.tmp, done.tensors, { format: FORWARD_FORMAT })
        .catch((error) => Promise.reject(temporaryRenamed(error, output.tmp, out)));
      await output.commit(); // the summary says the file is there: only once it is
      progress.done(`logits [${done.logits.join(", ")}] on ${done.device} written to ${out}`);
      console.log(JSON.stringify({
        out,
        device: done.device,
        logits: done.logits,
        loss: done.loss ?? null,
      }));
    } finally {
      await output.close();
    }
  },
};

type ForwardFlags = FlagValues<typeof FLAGS>;
type Tensors = Parameters<typeof writeSafetensors>[1];

/** One batch through the model: the tensors to write and the summary's fields. */
interface Forwarded {
  tensors: Tensors;
  device: string;
  /** [B, L, V] of the logits. */
  logits: [number, number, number];
  loss: number | undefined;
}

/** The batch file as JSON; a missing file or bad JSON is a one-line error naming it. */
async function readBatchFile(batchPath: string): Promise<unknown> {
  try {
    return JSON.parse(await Deno.readTextFile(batchPath));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw inputError(batchPath, undefined, "file not found");
    }
    if (!(error instanceof SyntaxError)) throw toIoError(error, batchPath, "cannot read");
    throw inputError(batchPath, undefined, `not valid JSON (${(error as Error).message})`);
  }
}

/**
 * The model (any family) with the tokenizer's special rows, the adapter applied by its hook on the
 * linears (its attention rule, intra table and rows with it), and with --grads the adapter's
 * gradients.
 */
async function forwardModel(flags: ForwardFlags, json: unknown): Promise<Forwarded> {
  const { model: modelDir, batch: batchPath, device, adapter } = flags;
  const tokenizerPath = join(modelDir, "tokenizer.json");
  const data = flags.data === undefined ? undefined : await openDataset(flags.data);
  const [tokenizerIds, tokenizerDefinedIds] = await TextTokenizer.load(tokenizerPath).then(
    (t): [number, number | undefined] => [
      (data ? withItemTokens(t, data) : t).vocabSize,
      t.definedIds,
    ],
    async (error) => {
      // No tokenizer: no special rows. A tokenizer that is there but broken is an error.
      if (await Deno.stat(tokenizerPath).then(() => true, () => false)) throw error;
      return [0, undefined] as [number, number | undefined];
    },
  );
  const model = await loadAnyModel(modelDir, { tokenizerIds, tokenizerDefinedIds, data });
  const V = model.config.vocabSize + model.addedRows;
  // The model's length: a sliding window caps it (past it, sliding and full attention differ).
  const longest = maxModelLength(model);
  const limits = { vocabSize: V, maxSequenceLength: longest };
  let batch: ReturnType<typeof parseBatchJson>;
  try {
    batch = parseBatchJson(json, batchPath, limits);
  } catch (error) {
    // An id past the vocabulary may be an item token: the rows of a dataset's item tokens.
    if (
      error instanceof InputError && !data &&
      /"input_ids"\[\d+\]\[\d+\] is \d+, outside 0\.\./.test(error.message)
    ) {
      error.message += ` (a dataset's item tokens: give it with --data DIR)`;
    }
    throw error;
  }
  if (batch.length > longest) {
    throw inputError(
      batchPath,
      undefined,
      `${batch.length} tokens, more than the model's ${longest}`,
    );
  }
  const loaded = adapter === undefined
    ? undefined
    : await loadAdapterOnto(adapter, model, modelDir, data);
  const attention = loaded?.method?.attention ?? model.config.attention;
  const weights = loaded ? withMethodTensors(model.weights, model.config, loaded) : model.weights;
  const linear = loaded && loraHook(model.config, loaded.lora, { weights: loaded.weights });
  const result = await runForward({ ...model, weights }, batch, { device, attention, linear });
  const { batchSize: B, length: L } = batch;
  const tensors = resultTensors(result, [B, L, V], batchPath, modelDir);
  if (loaded && flags.grads === true) {
    const { grads } = await adapterGradients(
      { config: model.config, weights: model.weights },
      loaded,
      gradBatch(batch),
      { device, decoder: { attention, addedRows: model.addedRows } },
    );
    const shapes = loraShapes(model.config, loaded.lora);
    for (const [name, data] of grads) {
      const shape = shapes.get(name) ??
        [data.length / model.config.hiddenSize, model.config.hiddenSize];
      tensors[`grad.${name}`] = { shape, data };
    }
  }
  return { tensors, device: result.device, logits: [B, L, V], loss: result.loss };
}

/** The adapter in `dir`, checked against the base model it is applied to (`modelDir`). */
function loadAdapterOnto(
  dir: string,
  model: { config: Parameters<typeof loadAdapter>[1]; weights: Weights; addedRows?: number },
  modelDir: string,
  data: Dataset | undefined,
): ReturnType<typeof loadAdapter> {
  return loadAdapter(dir, model.config, {
    data,
    base: { identity: modelIdentity(model.config, model.weights), dir: modelDir },
    onWarning: (message) => Progress.say(`warning: ${message}`),
    model: { weights: model.weights, addedRows: model.addedRows ?? 0 },
  });
}

/** `logits` [B, L, V] and, when the batch has labels, `loss` [1] (which must be finite). */
function resultTensors(
  result: ForwardResult,
  shape: [number, number, number],
  batchPath: string,
  modelDir: string,
): Tensors {
  const tensors: Tensors = { logits: { shape, data: result.logits } };
  if (result.loss !== undefined) {
    finiteLoss(result.loss, batchPath, modelDir);
    tensors.loss = { shape: [1], data: new Float32Array([result.loss]) };
  }
  return tensors;
}

/** The batch for --grads, which needs its labels and loss mask. */
function gradBatch(batch: JsonBatch): Batch {
  if (!batch.labels || !batch.lossMask) {
    throw new UsageError("forward: --grads needs labels and loss_mask in the batch");
  }
  return batch as Batch;
}

/** The metadata `format` of forward's safetensors output. */
const FORWARD_FORMAT = "recsysllm-forward-1";

/** Whether `path` is a safetensors file forward wrote. */
async function isForwardOutput(path: string): Promise<boolean> {
  try {
    return (await SafetensorsFile.open(path)).metadata.format === FORWARD_FORMAT;
  } catch {
    return false;
  }
}

/** A non-finite loss is an error naming the batch and the model (a NaN weight, a bad batch). */
function finiteLoss(loss: number, batchPath: string, modelDir: string): void {
  if (!Number.isFinite(loss)) {
    throw inputError(
      batchPath,
      undefined,
      `the loss is ${loss} with the model ${modelDir}: a weight or the batch makes it non-finite`,
    );
  }
}
