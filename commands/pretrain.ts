/**
 * `pretrain`: LoRA (or full) training of a GLM on a textualized dataset, with validation,
 * checkpoints, metrics and a loss curve in the run directory. Flag parsing and progress only; the
 * work is `lib/train/trainer.ts`.
 *
 * @module
 */

import type { Command } from "../lib/cli/command.ts";
import {
  defineFlags,
  dropoutFlag,
  flagOf,
  formatDefault,
  formatFlags,
  intFlag,
  numberFlag,
  optionsOf,
  type ParsedFlags,
  parseFlags,
  withFlagNames,
} from "../lib/cli/flags.ts";
import { chooseMethod, parseTaskWeights } from "../lib/train/method.ts";
import { doneLine, stepLine, summaryJson } from "../lib/train/report.ts";
import { OBJECTIVES } from "../lib/collate/collator.ts";
import { RECIPES } from "../lib/train/recipes.ts";
import { UsageError } from "../lib/errors.ts";
import { Progress } from "../lib/io/progress.ts";
import { DEFAULT_DEVICE, DEVICES } from "../lib/runtime/session.ts";
import { DEFAULT_LORA } from "../lib/model/lora.ts";
import { SCHEDULES } from "../lib/train/schedule.ts";
import { DEFAULT_ADAMW } from "../lib/train/train_graph.ts";
import { DEFAULT_TRAIN, train } from "../lib/train/trainer.ts";
import { isInitModel } from "../lib/model/init.ts";
import { asRank, type Collective, cudaDeviceOf, together } from "../lib/parallel/mod.ts";

const FLAGS = defineFlags({
  data: {
    type: "string",
    placeholder: "DIR",
    required: true,
    section: "What to train",
    help: "dataset directory written by textualize",
  },
  model: {
    type: "string",
    placeholder: "DIR",
    required: true,
    help: "base model directory (config.json, model.safetensors, tokenizer.json)",
  },
  out: { type: "string", placeholder: "DIR", required: true, help: "run directory" },
  "lora-rank": { type: "int", min: 1, max: 4096, default: DEFAULT_LORA.rank, help: "LoRA rank r" },
  "lora-alpha": numberFlag(1e-9, DEFAULT_LORA.alpha, "LoRA alpha; the update is (alpha / r) B A"),
  "lora-dropout": dropoutFlag(
    DEFAULT_LORA.dropout,
    "dropout on the adapter's input (masks are drawn from --seed)",
  ),
  "lora-targets": {
    type: "list",
    defaultText: "GLM: qkv; the decoder families: q_proj,k_proj,v_proj",
    help: "GLM: of qkv (query_key_value), dense, dense_h_to_4h, dense_4h_to_h;\n" +
      "llama, mistral, qwen2, qwen3, GLM-4: of q_proj, k_proj, v_proj, o_proj, gate_proj, " +
      "up_proj, down_proj (GLM-4: gate_up_proj)",
  },
  attention: {
    type: "choice",
    choices: ["prefix", "causal"],
    placeholder: "NAME",
    defaultText: "the model's own: prefix for GLM, causal for the decoder families",
    help: "prefix | causal: the attention rule, recorded with the adapter (or the model --full " +
      "writes) and used by infer",
  },
  full: {
    type: "boolean",
    help: "train every weight (no adapter); --out becomes a model directory. " +
      "The default for a model that init wrote (random weights), of any family",
  },
  lora: {
    type: "boolean",
    help: "train a LoRA adapter: the default for a pretrained checkpoint",
  },
  adapter: {
    type: "string",
    placeholder: "DIR",
    help: "continue training this LoRA adapter (this toolkit's or one PEFT wrote): its rank, " +
      "alpha and targets",
  },
  merge: {
    type: "string",
    placeholder: "DIR",
    help: "after LoRA training, also write the merged model (W + (alpha/r) B A) there",
  },
  recipe: {
    type: "choice",
    choices: Object.keys(RECIPES),
    help: "start from a recipe's settings (flags given explicitly win): " +
      Object.entries(RECIPES).map(([name, r]) => `${name}, ${r.summary}`).join("; ") +
      " (docs/experiments.md, Amazon Beauty)",
  },
  objective: {
    type: "choice",
    choices: [...OBJECTIVES, "mix"],
    defaultText: `${DEFAULT_TRAIN.objective}, or the recipe's`,
    section: "Data",
    help: `${[...OBJECTIVES, "mix"].join(" | ")} for profile documents`,
  },
  "sequence-keep": {
    type: "int",
    min: 1,
    defaultText: "no cap, or the recipe's",
    section: "Data",
    help: "with --objective sequence: at most N items stay in part A (k uniform in 1..min(m-1, N))",
  },
  "trie-softmax": {
    type: "boolean",
    section: "Data",
    help:
      "item targets: the softmax over the tokens the item trie allows (what infer --trie-softmax ranks by)",
  },
  "task-weights": {
    type: "list",
    placeholder: "TASK=W,...",
    section: "Data",
    defaultText: "1 for every task, or the recipe's",
    help: "training records per epoch by task, as a multiple of the task's records " +
      "(profile=4: each profile document four times, masked anew; sequential=0.5: half the " +
      "sequential prompts, drawn anew each epoch)",
  },
  "max-length": {
    type: "int",
    min: 8,
    defaultText: "the model's longest sequence, at most 1024",
    help: "longest example in tokens; recorded with the adapter or model, and infer keeps to it",
  },
  "batch-size": intFlag(1, DEFAULT_TRAIN.batchSize, "examples per micro-batch"),
  "grad-accum": intFlag(1, DEFAULT_TRAIN.gradAccum, "micro-batches per optimizer step"),
  epochs: intFlag(1, DEFAULT_TRAIN.epochs, "passes over the training records"),
  steps: { type: "int", min: 1, help: "optimizer steps (overrides --epochs)" },
  lr: {
    type: "number",
    min: 1e-12,
    max: 10,
    section: `Optimizer (AdamW, betas ${DEFAULT_ADAMW.beta1}/${DEFAULT_ADAMW.beta2}, eps ${
      formatDefault(DEFAULT_ADAMW.eps)
    })`,
    defaultText: `${formatDefault(DEFAULT_TRAIN.lr.lora)} with LoRA, ${
      formatDefault(DEFAULT_TRAIN.lr.full)
    } with --full`,
    help: "peak learning rate",
  },
  warmup: {
    type: "int",
    min: 0,
    defaultText: `${DEFAULT_TRAIN.warmupShare * 100}% of the steps`,
    help: "linear warmup steps",
  },
  schedule: {
    type: "choice",
    choices: SCHEDULES,
    default: DEFAULT_TRAIN.schedule,
    help: "after warmup: cosine or linear decay to 10% of the peak, or constant at the peak",
  },
  "weight-decay": numberFlag(0, DEFAULT_ADAMW.weightDecay, "decoupled weight decay on matrices"),
  clip: numberFlag(0, DEFAULT_ADAMW.clip, "clip the global gradient norm (0: off)"),
  dropout: dropoutFlag(0, "the model's own dropout: embeddings, attention and MLP outputs"),
  seed: {
    type: "int",
    min: 0,
    max: 2 ** 53,
    default: DEFAULT_TRAIN.seed,
    section: "Run",
    help: "random seed: adapter init, batches, masking, dropout",
  },
  "save-every": intFlag(
    1,
    DEFAULT_TRAIN.saveEvery,
    "checkpoint and outputs every N steps, and at the end",
  ),
  "val-every": {
    type: "int",
    min: 0,
    defaultText: "--save-every",
    help: "validate every N steps, and at the end",
  },
  "val-batches": intFlag(0, DEFAULT_TRAIN.valBatches, "validation batches (0: no validation)"),
  resume: {
    type: "boolean",
    help: "continue the run in --out from its checkpoint (refused when the checkpoint is " +
      "corrupt or was trained on another --model)",
  },
  force: {
    type: "boolean",
    help: "write into --out (and replace --merge) even when they hold files pretrain did not " +
      "write; a run directory holding a training run is never replaced (--resume continues it)",
  },
  device: {
    type: "choice",
    choices: DEVICES,
    default: DEFAULT_DEVICE,
    help: `${DEVICES.join(" | ")} (auto: CUDA, then WebGPU, then CPU)`,
  },
  threads: {
    type: "int",
    min: 1,
    max: 1024,
    defaultText: "all cores",
    help: "intra-op threads; keep it fixed to resume bitwise",
  },
  quiet: { type: "boolean", help: "no progress on stderr" },
});

const usage = `Usage: recsysllm pretrain --data DIR --model DIR --out DIR [flags]

Trains a GLM or a decoder-family LLM (llama, mistral, qwen2, qwen3, GLM-4) on a dataset's
training records (profile documents, masked by the collator, and task prompts) and validates on
its validation split. Writes into the run directory (--out):
  adapter_model.safetensors + adapter_config.json   the LoRA adapter (Hugging Face PEFT layout),
                           with the base model's tokenizer.json beside it
  config.json, tokenizer.json, model.safetensors    with --full: a complete model directory
  checkpoint.safetensors   tensors, AdamW moments, step, data position, random state (atomic)
  metrics.jsonl            one line per step: step, epoch, loss, lr, tokens, tokens_per_s, grad_norm (val_loss on validation steps)
  loss.svg                 the loss curve
Killed at any moment and started again with --resume, it ends with the same weights.

Under mpirun, srun or a Kubernetes MPIJob every rank runs this same command: each takes its share
of every global batch (--batch-size stays the global batch), the ranks sum their gradients
(MPI_Allreduce) before each AdamW step, and rank 0 alone writes --out (docs/distributed.md).

${formatFlags(FLAGS)}

On a model init wrote (random weights) every weight trains by default (--full), whatever its
family; on a pretrained checkpoint the default is a LoRA adapter (--lora). Examples:
  pretrain --data runs/beauty --model runs/tiny-model --out runs/full1 --steps 500 --lr 1e-3
  pretrain --data runs/beauty --model models/Qwen2.5-0.5B --out runs/lora1 --steps 500`;

/** Full training (null) or the LoRA adapter to train, as the flags (or the model) choose. */
function loraOf({ values, given }: ParsedFlags<typeof FLAGS>) {
  const givenFlags: ReadonlySet<string> = given;
  return withFlagNames(
    FLAGS,
    () => chooseMethod({ ...optionsOf(values), given: (option) => givenFlags.has(flagOf(option)) }),
  );
}

/** The `pretrain` subcommand. */
export const command: Command = {
  name: "pretrain",
  summary: "LoRA or full training (autodiff in onnxruntime): adapter/weights, metrics, loss curve",
  usage,
  ranks: true,
  // Option errors worded by their flags outside the rank (an agreed error keeps its mark).
  run: (args) =>
    withFlagNames(FLAGS, () => asRank((world) => runRank(args, world)), {
      sequenceMaxKeep: "sequence-keep",
    }),
};

async function runRank(args: string[], world: Collective | undefined): Promise<void> {
  const root = !world || world.rank === 0;
  const { parsed, flags, lora, chosen } = await together(world, async () => {
    const parsed = parseFlags("pretrain", args, FLAGS);
    const flags = parsed.values;
    const lora = await loraOf(parsed);
    if (parsed.given.has("steps") && parsed.given.has("epochs")) {
      throw new UsageError("give --steps or --epochs, not both");
    }
    const chosen = flags.recipe === undefined ? undefined : RECIPES[flags.recipe];
    return { parsed, flags, lora, chosen };
  });
  const progress = new Progress("pretrain", { quiet: flags.quiet || !root });
  if (root && lora && await isInitModel(flags.model)) {
    const named = parsed.given.has("lora") || flags.adapter !== undefined;
    console.error(
      `pretrain: note: ${flags.model} holds init's random weights; LoRA trains only the ` +
        `adapter on them${named ? "" : " (--full trains every weight)"}`,
    );
  }
  const summary = await train({
    // data, model, out, maxLength, batchSize, ...: each flag's value sets its option
    ...optionsOf(flags),
    lora,
    objective: flags.objective ?? chosen?.objective,
    sequenceMaxKeep: flags["sequence-keep"] ?? chosen?.sequenceMaxKeep,
    trieSoftmax: flags["trie-softmax"] || (chosen?.trieSoftmax ?? false),
    taskWeights: parseTaskWeights(flags["task-weights"]) ?? chosen?.taskWeights,
    // Each rank of a machine on its own GPU (with --device cuda or auto).
    deviceId: world && cudaDeviceOf(world.localRank, Deno.env.get("CUDA_VISIBLE_DEVICES")),
    world,
    onNote: (message) => progress.log(message),
    onPhase: (message) => progress.update(message),
    onStep: (line, total) => {
      const { text, keep } = stepLine(line, total);
      if (keep) progress.log(text);
      else progress.update(text);
    },
  });
  if (!root) return;
  progress.done(doneLine(summary, world?.size));
  console.log(JSON.stringify(summaryJson(summary, world?.size)));
}
