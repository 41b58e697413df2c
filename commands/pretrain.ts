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
  formatDefault,
  formatFlags,
  type ParsedFlags,
  parseFlags,
  withFlagNames,
} from "../lib/cli/flags.ts";
import { OBJECTIVES } from "../lib/collate/collator.ts";
import { RECIPES } from "../lib/train/recipes.ts";
import { UsageError } from "../lib/errors.ts";
import { Progress } from "../lib/io/progress.ts";
import { DEFAULT_DEVICE, DEVICES } from "../lib/runtime/session.ts";
import {
  DECODER_LORA_TARGETS,
  DEFAULT_LORA,
  LORA_TARGETS,
  type LoraConfig,
  TARGET_ALIASES,
} from "../lib/model/lora.ts";
import { SCHEDULES } from "../lib/train/schedule.ts";
import { DEFAULT_ADAMW } from "../lib/train/train_graph.ts";
import { DEFAULT_TRAIN, train } from "../lib/train/trainer.ts";
import { isInitModel } from "../lib/model/init.ts";
import { architectureOf } from "../lib/model/load_any.ts";
import {
  type Collective,
  cudaDeviceOf,
  isAgreed,
  openWorld,
  together,
} from "../lib/parallel/mod.ts";
import { ReportedElsewhere } from "../lib/errors.ts";

/** Warmup, when --warmup is not given: this share of the steps. */
const WARMUP_SHARE = 0.05;

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
  "lora-alpha": {
    type: "number",
    min: 1e-9,
    default: DEFAULT_LORA.alpha,
    help: "LoRA alpha; the update is (alpha / r) B A",
  },
  "lora-dropout": {
    type: "number",
    placeholder: "P",
    min: 0,
    max: 0.99,
    default: DEFAULT_LORA.dropout,
    help: "dropout on the adapter's input (masks are drawn from --seed)",
  },
  "lora-targets": {
    type: "list",
    defaultText: "GLM: qkv; the decoder families: q_proj,k_proj,v_proj",
    help: "GLM: of qkv (query_key_value), dense, dense_h_to_4h, dense_4h_to_h;\n" +
      "llama, mistral, qwen2, qwen3, GLM-4: of q_proj, k_proj, v_proj, o_proj, gate_proj,\n" +
      "up_proj, down_proj (GLM-4: gate_up_proj)",
  },
  attention: {
    type: "choice",
    choices: ["prefix", "causal"],
    placeholder: "NAME",
    defaultText: "causal for the decoder families; GLM is always prefix",
    help: "the attention rule, recorded with the adapter and used by infer",
  },
  full: {
    type: "boolean",
    help: "train every weight (no adapter); --out becomes a model directory (GLM only). " +
      "The default for a GLM that init wrote (random weights)",
  },
  lora: {
    type: "boolean",
    help: "train a LoRA adapter: the default for a pretrained model (and for init's decoders)",
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
    help: "sequence objective: at most N items stay in part A (k uniform in 1..min(m-1, N))",
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
    defaultText: "the model's max_sequence_length",
    help: "longest example in tokens",
  },
  "batch-size": {
    type: "int",
    min: 1,
    default: DEFAULT_TRAIN.batchSize,
    help: "examples per micro-batch",
  },
  "grad-accum": {
    type: "int",
    min: 1,
    default: DEFAULT_TRAIN.gradAccum,
    help: "micro-batches per optimizer step",
  },
  epochs: {
    type: "int",
    min: 1,
    default: DEFAULT_TRAIN.epochs,
    help: "passes over the training records",
  },
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
    defaultText: `${WARMUP_SHARE * 100}% of the steps`,
    help: "linear warmup steps",
  },
  schedule: {
    type: "choice",
    choices: SCHEDULES,
    default: DEFAULT_TRAIN.schedule,
    help: `${SCHEDULES.join(" | ")} decay after warmup, to 10% of the peak`,
  },
  "weight-decay": {
    type: "number",
    min: 0,
    default: DEFAULT_ADAMW.weightDecay,
    help: "decoupled weight decay on matrices",
  },
  clip: {
    type: "number",
    min: 0,
    default: DEFAULT_ADAMW.clip,
    help: "clip the global gradient norm (0: off)",
  },
  seed: {
    type: "int",
    min: 0,
    max: 2 ** 53,
    default: DEFAULT_TRAIN.seed,
    section: "Run",
    help: "random seed: adapter init, batches, masking, dropout",
  },
  "save-every": {
    type: "int",
    min: 1,
    default: DEFAULT_TRAIN.saveEvery,
    help: "checkpoint and outputs every N steps, and at the end",
  },
  "val-every": {
    type: "int",
    min: 0,
    defaultText: "--save-every",
    help: "validate every N steps, and at the end",
  },
  "val-batches": {
    type: "int",
    min: 0,
    default: DEFAULT_TRAIN.valBatches,
    help: "validation batches (0: no validation)",
  },
  resume: {
    type: "boolean",
    help: "continue the run in --out from its checkpoint (refused when the checkpoint is " +
      "corrupt or was trained on another --model)",
  },
  force: {
    type: "boolean",
    help: "write into --out (and replace --merge) even when they hold files pretrain did not " +
      "write",
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

/** `--task-weights profile=4,sequential=0.5` as a record; a malformed entry is a UsageError. */
export function parseTaskWeights(
  list: readonly string[] | undefined,
): Record<string, number> | undefined {
  if (!list) return undefined;
  const out: Record<string, number> = {};
  for (const entry of list) {
    const match = /^([a-z_]+)=([0-9]*\.?[0-9]+)$/.exec(entry.trim());
    if (!match) {
      throw new UsageError(`--task-weights: "${entry}" is not TASK=WEIGHT (e.g. profile=4)`);
    }
    out[match[1]] = Number(match[2]);
  }
  return out;
}

const usage = `Usage: recsysllm pretrain --data DIR --model DIR --out DIR [flags]

Trains a GLM or a decoder-family LLM (llama, mistral, qwen2, qwen3, GLM-4) on a dataset's
training records (profile documents, masked by the collator, and task prompts) and validates on
its validation split. Writes into the run directory (--out):
  adapter_model.safetensors + adapter_config.json   the LoRA adapter (Hugging Face PEFT layout),
                           with the base model's tokenizer.json beside it
  config.json, tokenizer.json, model.safetensors    with --full: a complete model directory
  checkpoint.safetensors   tensors, AdamW moments, step, data position, random state (atomic)
  metrics.jsonl            one line per step: step, loss, lr, tokens_per_s, grad_norm, val_loss
  loss.svg                 the loss curve
Killed at any moment and started again with --resume, it ends with the same weights.

Under mpirun, srun or a Kubernetes MPIJob every rank runs this same command: each takes its share
of every global batch (--batch-size stays the global batch), the ranks sum their gradients
(MPI_Allreduce) before each AdamW step, and rank 0 alone writes --out (docs/distributed.md).

${formatFlags(FLAGS)}

On a model init wrote (random weights) a GLM trains every weight by default (--full); on a
pretrained checkpoint the default is a LoRA adapter (--lora).

Examples:
  pretrain --data runs/beauty --model runs/tiny-model --out runs/full1 --steps 500 --lr 1e-3
  pretrain --data runs/beauty --model models/chatglm-6b --out runs/lora1 --steps 500`;

type Parsed = ParsedFlags<typeof FLAGS>;

const LORA_FLAGS = ["lora-rank", "lora-alpha", "lora-dropout", "lora-targets"] as const;

/**
 * Full training or LoRA: `--full`, `--lora` (or a `--lora-*` flag) as given; otherwise every
 * weight for a GLM that init wrote (LoRA on random weights barely learns) and LoRA for a
 * pretrained checkpoint (or a decoder family, which trains only with LoRA).
 */
async function trainsFull({ values, given }: Parsed): Promise<boolean> {
  if (values.full && values.lora) throw new UsageError("give --full or --lora, not both");
  if (values.full && values.adapter !== undefined) {
    throw new UsageError("--adapter continues a LoRA adapter: drop --full");
  }
  if (values.full) return true;
  if (values.adapter !== undefined) {
    const fixed = (["lora-rank", "lora-alpha", "lora-targets"] as const).find((f) => given.has(f));
    if (fixed) throw new UsageError(`--adapter sets the rank, alpha and targets: drop --${fixed}`);
    return false;
  }
  if (values.lora || LORA_FLAGS.some((f) => given.has(f))) return false;
  if (!(await isInitModel(values.model))) return false;
  return (await architectureOf(values.model)).kind === "glm-thudm";
}

function loraOf({ values, given }: Parsed, full: boolean): LoraConfig | null {
  if (full) {
    const lora = LORA_FLAGS.find((f) => given.has(f));
    if (lora) throw new UsageError(`--full trains every weight: drop --${lora}`);
    return null;
  }
  // Names of either family's table here; against the model's own family in the trainer.
  // None given: the family's default.
  const targets = (values["lora-targets"] ?? []).map((t) => TARGET_ALIASES[t] ?? t);
  for (const t of targets) {
    if (!(t in LORA_TARGETS) && !(t in DECODER_LORA_TARGETS)) {
      throw new UsageError(
        `--lora-targets: unknown LoRA target "${t}" (GLM: ${
          Object.keys(LORA_TARGETS).join(", ")
        }, or qkv; decoders: ${Object.keys(DECODER_LORA_TARGETS).join(", ")})`,
      );
    }
  }
  return {
    rank: values["lora-rank"],
    alpha: values["lora-alpha"],
    dropout: values["lora-dropout"],
    targets: [...new Set(targets)],
  };
}

/** The `pretrain` subcommand. */
export const command: Command = {
  name: "pretrain",
  summary: "LoRA or full training (autodiff in onnxruntime): adapter/weights, metrics, loss curve",
  usage,
  async run(args: string[]): Promise<void> {
    // Under an MPI launcher: this process is one rank (nothing is loaded otherwise).
    const world = openWorld();
    try {
      await runRank(args, world && world.size > 1 ? world : undefined);
    } catch (error) {
      // Every rank ends with the failure they agreed on; rank 0 alone prints it.
      if (world && world.rank !== 0 && isAgreed(error)) throw new ReportedElsewhere(error);
      throw error;
    } finally {
      await world?.close();
    }
  },
};

async function runRank(args: string[], world: Collective | undefined): Promise<void> {
  const root = !world || world.rank === 0;
  const { parsed, flags, lora, chosen } = await together(world, async () => {
    const parsed = parseFlags("pretrain", args, FLAGS);
    const flags = parsed.values;
    const lora = loraOf(parsed, await trainsFull(parsed));
    if (parsed.given.has("steps") && parsed.given.has("epochs")) {
      throw new UsageError("give --steps or --epochs, not both");
    }
    const chosen = flags.recipe === undefined ? undefined : RECIPES[flags.recipe];
    return { parsed, flags, lora, chosen };
  });
  const progress = new Progress("pretrain", { quiet: flags.quiet || !root });
  if (root && lora && await isInitModel(flags.model)) {
    console.error(
      `pretrain: note: ${flags.model} holds init's random weights; LoRA trains only the ` +
        `adapter on them${
          parsed.given.has("lora") || flags.adapter !== undefined
            ? ""
            : " (--full trains every weight)"
        }`,
    );
  }
  const summary = await withFlagNames(FLAGS, () =>
    train({
      data: flags.data,
      model: flags.model,
      out: flags.out,
      lora,
      adapter: flags.adapter,
      attention: flags.attention,
      merge: flags.merge,
      objective: flags.objective ?? chosen?.objective,
      sequenceMaxKeep: flags["sequence-keep"] ?? chosen?.sequenceMaxKeep,
      trieSoftmax: flags["trie-softmax"] || (chosen?.trieSoftmax ?? false),
      taskWeights: parseTaskWeights(flags["task-weights"]) ?? chosen?.taskWeights,
      maxLength: flags["max-length"],
      batchSize: flags["batch-size"],
      gradAccum: flags["grad-accum"],
      steps: flags.steps,
      epochs: flags.epochs,
      lr: flags.lr,
      warmup: flags.warmup,
      warmupShare: flags.warmup === undefined ? WARMUP_SHARE : undefined,
      schedule: flags.schedule,
      weightDecay: flags["weight-decay"],
      clip: flags.clip,
      seed: flags.seed,
      saveEvery: flags["save-every"],
      valEvery: flags["val-every"],
      valBatches: flags["val-batches"],
      resume: flags.resume,
      force: flags.force,
      device: flags.device,
      // Each rank of a machine on its own GPU (with --device cuda or auto).
      deviceId: world
        ? cudaDeviceOf(world.localRank, Deno.env.get("CUDA_VISIBLE_DEVICES"))
        : undefined,
      threads: flags.threads,
      world,
      onNote: (message) => progress.log(message),
      onPhase: (message) => progress.update(message),
      onStep: (line, total) => {
        const val = line.val_loss === undefined ? "" : ` val_loss ${line.val_loss.toFixed(4)}`;
        const message = `step ${line.step}/${total} loss ${line.loss.toFixed(4)}${val} ` +
          `lr ${line.lr.toExponential(2)} ${line.tokens_per_s} tokens/s`;
        if (line.step === total || line.val_loss !== undefined) progress.log(message);
        else progress.update(message);
      },
    }));
  if (!root) return;
  const ranks = world ? ` x ${world.size} ranks` : "";
  progress.done(
    `${summary.steps} steps on ${summary.device}${ranks}, loss ${summary.lastLoss.toFixed(4)}` +
      (summary.valLoss === undefined ? "" : `, val_loss ${summary.valLoss.toFixed(4)}`),
  );
  console.log(JSON.stringify({
    steps: summary.steps,
    loss: summary.lastLoss,
    first_loss: summary.firstLoss,
    val_loss: summary.valLoss ?? null,
    initial_val_loss: summary.initialValLoss ?? null,
    tokens: summary.tokens,
    device: summary.device,
    ...(world ? { ranks: world.size } : {}),
    resumed: summary.resumed,
  }));
}
