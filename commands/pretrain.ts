/**
 * `pretrain`: LoRA (or full) training of a GLM on a textualized dataset, with validation,
 * checkpoints, metrics and a loss curve in the run directory. Flag parsing and progress only; the
 * work is `lib/train/trainer.ts`.
 *
 * @module
 */

import type { Command } from "../lib/cli/command.ts";
import {
  choice,
  type Flags,
  float,
  int,
  list,
  optional,
  parseFlags,
  required,
} from "../lib/cli/flags.ts";
import { OBJECTIVES } from "../lib/collate/collator.ts";
import { UsageError } from "../lib/errors.ts";
import { Progress } from "../lib/io/progress.ts";
import { DEVICES } from "../lib/runtime/session.ts";
import { DEFAULT_LORA, type LoraConfig, targetName } from "../lib/train/lora.ts";
import { SCHEDULES } from "../lib/train/schedule.ts";
import { train } from "../lib/train/trainer.ts";

const usage = `Usage: recsysllm pretrain --data DIR --model DIR --out DIR [flags]

Trains a GLM on a dataset's training records (profile documents, masked by the collator, and task
prompts) and validates on its validation split. Writes into the run directory (--out):
  adapter_model.safetensors + adapter_config.json   the LoRA adapter (Hugging Face PEFT layout),
                           with the base model's tokenizer.json beside it
  config.json, tokenizer.json, model.safetensors    with --full: a complete model directory
  checkpoint.safetensors   tensors, AdamW moments, step, data position, random state (atomic)
  metrics.jsonl            one line per step: step, loss, lr, tokens_per_s, grad_norm, val_loss
  loss.svg                 the loss curve
Killed at any moment and started again with --resume, it ends with the same weights.

What to train:
  --data DIR             dataset directory written by textualize
  --model DIR            base model directory (config.json, model.safetensors, tokenizer.json)
  --out DIR              run directory
  --lora-rank N          LoRA rank r (default ${DEFAULT_LORA.rank})
  --lora-alpha X         LoRA alpha; the update is (alpha / r) B A (default ${DEFAULT_LORA.alpha})
  --lora-dropout P       dropout on the adapter's input (default 0; masks are drawn from --seed)
  --lora-targets LIST    of qkv (query_key_value), dense, dense_h_to_4h, dense_4h_to_h
                         (default qkv)
  --full                 train every weight instead (no adapter); --out becomes a model directory
  --merge DIR            after LoRA training, also write the merged model (W + (alpha/r) B A) there
Data:
  --objective NAME       ${OBJECTIVES.join(" | ")} | mix (default mix) for profile documents
  --max-length N         longest example in tokens (default: the model's max_sequence_length)
  --batch-size N         examples per micro-batch (default 8)
  --grad-accum N         micro-batches per optimizer step (default 1)
  --epochs N             passes over the training records (default 1)
  --steps N              optimizer steps (overrides --epochs)
Optimizer (AdamW, betas 0.9/0.999, eps 1e-8):
  --lr X                 peak learning rate (default 2e-4 with LoRA, 1e-4 with --full)
  --warmup N             linear warmup steps (default: 5% of the steps)
  --schedule NAME        ${
  SCHEDULES.join(" | ")
} decay after warmup, to 10% of the peak (default cosine)
  --weight-decay X       decoupled weight decay on matrices (default 0.01)
  --clip X               clip the global gradient norm (default 1; 0: off)
Run:
  --seed N               random seed: adapter init, batches, masking, dropout (default 0)
  --save-every N         checkpoint and outputs every N steps (default 100) and at the end
  --val-every N          validate every N steps (default: --save-every) and at the end
  --val-batches N        validation batches (default 8; 0: no validation)
  --resume               continue the run in --out from its checkpoint
  --device NAME          ${DEVICES.join(" | ")} (default auto: CUDA, then WebGPU, then CPU)
  --threads N            intra-op threads (default: all cores); keep it fixed to resume bitwise
  --quiet                no progress on stderr

Example:
  pretrain --data runs/beauty --model models/tiny --out runs/lora1 --steps 500 --lr 1e-3`;

function loraFromFlags(flags: Flags): LoraConfig | null {
  const full = flags.full === true;
  const given = ["lora-rank", "lora-alpha", "lora-dropout", "lora-targets"].filter((f) =>
    flags[f] !== undefined
  );
  if (full) {
    if (given.length > 0) throw new UsageError(`--full trains every weight: drop --${given[0]}`);
    return null;
  }
  let targets: string[];
  try {
    targets = list(flags, "lora-targets", ["qkv"]).map(targetName);
  } catch (error) {
    throw new UsageError(`--lora-targets: ${(error as Error).message}`);
  }
  return {
    rank: int(flags, "lora-rank", DEFAULT_LORA.rank, 1, 4096),
    alpha: float(flags, "lora-alpha", DEFAULT_LORA.alpha, 1e-9),
    dropout: float(flags, "lora-dropout", 0, 0, 0.99),
    targets: [...new Set(targets)],
  };
}

/** The `pretrain` subcommand. */
export const command: Command = {
  name: "pretrain",
  summary: "LoRA or full training (autodiff in onnxruntime): adapter/weights, metrics, loss curve",
  usage,
  async run(args: string[]): Promise<void> {
    const flags = parseFlags("pretrain", args, {
      data: { type: "string" },
      model: { type: "string" },
      out: { type: "string" },
      "lora-rank": { type: "string" },
      "lora-alpha": { type: "string" },
      "lora-dropout": { type: "string" },
      "lora-targets": { type: "string" },
      full: { type: "boolean" },
      merge: { type: "string" },
      objective: { type: "string" },
      "max-length": { type: "string" },
      "batch-size": { type: "string" },
      "grad-accum": { type: "string" },
      epochs: { type: "string" },
      steps: { type: "string" },
      lr: { type: "string" },
      warmup: { type: "string" },
      schedule: { type: "string" },
      "weight-decay": { type: "string" },
      clip: { type: "string" },
      seed: { type: "string" },
      "save-every": { type: "string" },
      "val-every": { type: "string" },
      "val-batches": { type: "string" },
      resume: { type: "boolean" },
      device: { type: "string" },
      threads: { type: "string" },
      quiet: { type: "boolean" },
    });
    const lora = loraFromFlags(flags);
    if (flags.steps !== undefined && flags.epochs !== undefined) {
      throw new UsageError("give --steps or --epochs, not both");
    }
    const steps = flags.steps === undefined ? undefined : int(flags, "steps", 1, 1);
    const epochs = int(flags, "epochs", 1, 1);
    const progress = new Progress("pretrain", { quiet: flags.quiet === true });
    const warmupGiven = flags.warmup === undefined ? undefined : int(flags, "warmup", 0, 0);
    const summary = await train({
      data: required(flags, "data", "pretrain"),
      model: required(flags, "model", "pretrain"),
      out: required(flags, "out", "pretrain"),
      lora,
      merge: optional(flags, "merge"),
      objective: choice(flags, "objective", [...OBJECTIVES, "mix"] as const, "mix"),
      maxLength: flags["max-length"] === undefined ? undefined : int(flags, "max-length", 0, 8),
      batchSize: int(flags, "batch-size", 8, 1),
      gradAccum: int(flags, "grad-accum", 1, 1),
      steps,
      epochs,
      lr: float(flags, "lr", lora ? 2e-4 : 1e-4, 1e-12, 10),
      warmup: warmupGiven,
      warmupShare: warmupGiven === undefined ? 0.05 : undefined,
      schedule: choice(flags, "schedule", SCHEDULES, "cosine"),
      weightDecay: float(flags, "weight-decay", 0.01, 0),
      clip: float(flags, "clip", 1, 0),
      seed: int(flags, "seed", 0, 0, 2 ** 53),
      saveEvery: int(flags, "save-every", 100, 1),
      valEvery: flags["val-every"] === undefined ? undefined : int(flags, "val-every", 0, 0),
      valBatches: int(flags, "val-batches", 8, 0),
      resume: flags.resume === true,
      device: choice(flags, "device", DEVICES, "auto"),
      threads: flags.threads === undefined ? undefined : int(flags, "threads", 0, 1, 1024),
      onNote: (message) => progress.log(message),
      onStep: (line, total) => {
        const val = line.val_loss === undefined ? "" : ` val_loss ${line.val_loss.toFixed(4)}`;
        const message = `step ${line.step}/${total} loss ${line.loss.toFixed(4)}${val} ` +
          `lr ${line.lr.toExponential(2)} ${line.tokens_per_s} tokens/s`;
        if (line.step === total || line.val_loss !== undefined) progress.log(message);
        else progress.update(message);
      },
    });
    progress.done(
      `${summary.steps} steps on ${summary.device}, loss ${summary.lastLoss.toFixed(4)}` +
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
      resumed: summary.resumed,
    }));
  },
};
