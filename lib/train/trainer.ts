/**
 * The `pretrain` run: LoRA (or full) training of a GLM on a dataset's training records (profile
 * documents and task prompts, masked by the collator), validation on the validation split, and
 * everything written into the run directory:
 *
 * - `adapter_model.safetensors` + `adapter_config.json` (PEFT layout), or with full training a
 *   complete model directory (`config.json`, `tokenizer.json`, `model.safetensors`);
 * - `checkpoint.safetensors`: trainable tensors, AdamW moments, step, data position, random
 *   state and settings, written atomically every `saveEvery` steps and at the end;
 * - `metrics.jsonl` (one line per logged step) and `loss.svg`.
 *
 * Resuming (`resume: true`) continues from the checkpoint: the data position, the schedule (a
 * function of the step), the batches (functions of seed and position) and the dropout generator's
 * state are all restored, so a run killed at any moment and resumed ends with the same weights as
 * an uninterrupted one (bitwise, as onnxruntime's CPU kernels are deterministic for a fixed thread
 * count). A non-finite loss or gradient norm stops the run with a one-line error and leaves the
 * last good checkpoint as it is.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { DEFAULT_COLLATOR, type Objective } from "../collate/collator.ts";
import { openDataset } from "../data/dataset.ts";
import { InputError, OptionError, UsageError } from "../errors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import type { GlmConfig } from "../model/config.ts";
import { loadModel } from "../model/weights.ts";
import { Rng } from "../random.ts";
import type { Device } from "../runtime/session.ts";
import { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { mergeAdapter, saveAdapter } from "../model/adapter.ts";
import { readCheckpoint, settingsDiffer, writeCheckpoint } from "./checkpoint.ts";
import { BatchStream, lossTokens, tokenizeSplit } from "./data.ts";
import { TrainEngine } from "./engine.ts";
import { initLora, type LoraConfig } from "../model/lora.ts";
import {
  lossChart,
  type MetricsLine,
  metricsText,
  readMetrics,
  RUN_FILES,
  writeModelDir,
} from "./outputs.ts";
import { biasCorrections, learningRate, type ScheduleKind } from "./schedule.ts";
import { DEFAULT_ADAMW, trainableParams } from "./train_graph.ts";
import { pathExists } from "../io/fs.ts";

/** Defaults of the optional {@linkcode TrainOptions} (AdamW's are `DEFAULT_ADAMW`). */
export const DEFAULT_TRAIN = Object.freeze({
  objective: DEFAULT_COLLATOR.objective,
  epochs: 1,
  batchSize: 8,
  gradAccum: 1,
  /** Peak learning rate: LoRA, and full training. */
  lr: Object.freeze({ lora: 2e-4, full: 1e-4 }),
  warmupShare: 0,
  schedule: "cosine" as ScheduleKind,
  seed: 0,
  saveEvery: 100,
  valBatches: 8,
});

/** Options of {@linkcode train}; defaults in {@linkcode DEFAULT_TRAIN} and `DEFAULT_ADAMW`. */
export interface TrainOptions {
  /** Dataset directory (from `textualize`). */
  data: string;
  /** Base model directory (`config.json`, `model.safetensors`, `tokenizer.json`). */
  model: string;
  /** Run directory. */
  out: string;
  /** The adapter to train; null trains every weight. */
  lora: LoraConfig | null;
  /** Masking objective of documents. */
  objective?: Objective | "mix";
  /** Optimizer steps (default: `epochs` worth). */
  steps?: number;
  /** Epochs over the training records when `steps` is not given. */
  epochs?: number;
  /** Examples per micro-batch. */
  batchSize?: number;
  /** Micro-batches per optimizer step. */
  gradAccum?: number;
  /** Peak learning rate (default by kind of run: `DEFAULT_TRAIN.lr`). */
  lr?: number;
  /** Warmup steps (default: `warmupShare` of the steps). */
  warmup?: number;
  /** Warmup as a share of the steps, when `warmup` is not given. */
  warmupShare?: number;
  /** Decay after warmup, to 10% of the peak. */
  schedule?: ScheduleKind;
  /** Decoupled weight decay on matrices. */
  weightDecay?: number;
  /** Global gradient-norm clip (0 disables). */
  clip?: number;
  /** Random seed. */
  seed?: number;
  /** Longest example in tokens (default the model's maximum sequence length). */
  maxLength?: number;
  /** Write the checkpoint and outputs every N steps and at the end. */
  saveEvery?: number;
  /** Validate every N steps (default: with every save) and at the end; 0: only at the end. */
  valEvery?: number;
  /** Validation batches (0: no validation). */
  valBatches?: number;
  /** Continue from the run directory's checkpoint. */
  resume?: boolean;
  /** Also write the base model with the adapter merged in, as a model directory, here. */
  merge?: string;
  device?: Device;
  threads?: number;
  /** Called after every step (progress lines). */
  onStep?: (line: MetricsLine, totalSteps: number) => void;
  /** Called for notes worth a line on stderr (resuming, skipped validation). */
  onNote?: (message: string) => void;
}

/** What a finished run reports. */
export interface TrainSummary {
  steps: number;
  /** Loss of the first step of this invocation and of the last step. */
  firstLoss: number;
  lastLoss: number;
  /** The last validation loss, when validated. */
  valLoss?: number;
  /** Validation loss before the first step (fresh runs that validate). */
  initialValLoss?: number;
  tokens: number;
  device: string;
  /** Whether the run continued from a checkpoint. */
  resumed: boolean;
}

/** A run stopped because the loss or the gradients stopped being finite. */
export class TrainingDiverged extends InputError {
  override name = "TrainingDiverged";
}

/** Removes temporaries a killed run left behind (`.name.tmp-*`, see lib/io/atomic.ts). */
async function removeStrayTemporaries(dir: string): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.startsWith(".") && entry.name.includes(".tmp-")) {
      await Deno.remove(join(dir, entry.name), { recursive: true }).catch(() => {});
    }
  }
}

function positive(option: string, value: number, min = 1): number {
  if (!(Number.isInteger(value) && value >= min)) {
    throw new OptionError(option, (name) => `${name} must be an integer >= ${min}, got ${value}`);
  }
  return value;
}

/**
 * Runs (or resumes) a training run as `options` say; returns a summary. Throws OptionError for
 * settings that cannot work, InputError for bad inputs, TrainingDiverged for a non-finite loss.
 */
export async function train(options: TrainOptions): Promise<TrainSummary> {
  const note = options.onNote ?? (() => {});
  if (options.merge && !options.lora) {
    throw new OptionError(
      "merge",
      (name) => `${name} needs a LoRA run (a full run's directory is the model)`,
    );
  }
  const batchSize = positive("batchSize", options.batchSize ?? DEFAULT_TRAIN.batchSize);
  const gradAccum = positive("gradAccum", options.gradAccum ?? DEFAULT_TRAIN.gradAccum);
  const seed = options.seed ?? DEFAULT_TRAIN.seed;
  const saveEvery = positive("saveEvery", options.saveEvery ?? DEFAULT_TRAIN.saveEvery);
  const valBatches = positive("valBatches", options.valBatches ?? DEFAULT_TRAIN.valBatches, 0);
  const valEvery = options.valEvery ?? saveEvery;
  const adamw = {
    ...DEFAULT_ADAMW,
    weightDecay: options.weightDecay ?? DEFAULT_ADAMW.weightDecay,
    clip: options.clip ?? DEFAULT_ADAMW.clip,
  };

  const base = await loadModel(options.model);
  const config: GlmConfig = base.config;
  const tokenizerFile = join(options.model, "tokenizer.json");
  const tokenizer = await TextTokenizer.load(tokenizerFile);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new InputError(
      `${tokenizerFile}: the tokenizer has ${tokenizer.vocabSize} ids (special tokens included), ` +
        `more than the model's vocab_size ${config.vocabSize}`,
    );
  }
  const maxLength = options.maxLength ?? config.maxSequenceLength;
  if (maxLength > config.maxSequenceLength || maxLength < 8) {
    throw new OptionError(
      "maxLength",
      (name) =>
        `${name} must be in 8..${config.maxSequenceLength} (the model's maximum), got ${maxLength}`,
    );
  }

  const dataset = await openDataset(options.data);
  const collator = { objective: options.objective ?? DEFAULT_TRAIN.objective, maxLength };
  const trainRecords = await tokenizeSplit(dataset, "train", tokenizer);
  if (trainRecords.length === 0) {
    throw new InputError(`${join(options.data, "train.jsonl")}: no training records`);
  }
  const stream = new BatchStream(trainRecords, tokenizer.special, { batchSize, seed, collator });
  const validRecords = valBatches > 0 ? await tokenizeSplit(dataset, "valid", tokenizer) : [];
  const valStream = validRecords.length > 0
    ? new BatchStream(validRecords, tokenizer.special, {
      batchSize,
      seed,
      collator,
      stream: "valid",
    })
    : undefined;
  if (!valStream && valBatches > 0) note("no validation records: val_loss is not reported");

  const totalSteps = options.steps ??
    Math.ceil(((options.epochs ?? DEFAULT_TRAIN.epochs) * stream.perEpoch) / gradAccum);
  positive("steps", totalSteps);
  const schedule = {
    lr: options.lr ?? (options.lora ? DEFAULT_TRAIN.lr.lora : DEFAULT_TRAIN.lr.full),
    warmup: options.warmup ??
      Math.floor((options.warmupShare ?? DEFAULT_TRAIN.warmupShare) * totalSteps),
    totalSteps,
    kind: options.schedule ?? DEFAULT_TRAIN.schedule,
  };
  if (!(schedule.lr > 0)) {
    throw new OptionError("lr", (name) => `${name} must be positive, got ${schedule.lr}`);
  }

  // What must not change between a run and its resumption.
  const settings: Record<string, unknown> = {
    seed,
    lora: options.lora,
    objective: collator.objective,
    maxLength,
    batchSize,
    gradAccum,
    schedule,
    adamw,
    trainRecords: trainRecords.length,
    model: {
      vocabSize: config.vocabSize,
      hiddenSize: config.hiddenSize,
      numLayers: config.numLayers,
      numHeads: config.numHeads,
    },
  };

  // Recorded in the checkpoint, not required to match: only bitwise equality depends on them.
  const runtime = { threads: options.threads ?? navigator.hardwareConcurrency ?? 1 };
  await Deno.mkdir(options.out, { recursive: true });
  const checkpointPath = join(options.out, RUN_FILES.checkpoint);
  const metricsPath = join(options.out, RUN_FILES.metrics);
  const shapes = new Map(
    trainableParams({ config, lora: options.lora }).map((p) => [p.name, p.shape] as const),
  );

  await removeStrayTemporaries(options.out);

  let step = 0;
  let micro = 0;
  let tokens = 0;
  let rng = Rng.derive(seed, "train", "dropout");
  let params: Map<string, Float32Array>;
  let moments: { m: Map<string, Float32Array>; v: Map<string, Float32Array> } | undefined;
  let metrics: MetricsLine[] = [];
  const hasCheckpoint = await pathExists(checkpointPath);
  if (hasCheckpoint && !options.resume) {
    throw new OptionError(
      "resume",
      (name) =>
        `${options.out} already holds a training run (${RUN_FILES.checkpoint}): pass ${name} ` +
        `to continue it, or choose another run directory`,
    );
  }
  if (hasCheckpoint) {
    const saved = await readCheckpoint(checkpointPath, shapes);
    const { runtime: _saved, ...comparable } = saved.settings;
    const differ = settingsDiffer(comparable, settings);
    if (differ) {
      throw new UsageError(`cannot resume ${options.out} with different settings (${differ})`);
    }
    ({ step, micro, tokens } = saved);
    const was = saved.settings.runtime as { threads?: number } | undefined;
    if (was && was.threads !== runtime.threads) {
      note(
        `resuming with ${runtime.threads} threads where the run used ${was.threads}: the weights ` +
          `will not be bitwise those of an uninterrupted run`,
      );
    }
    rng = Rng.fromState(saved.rng);
    params = saved.params;
    moments = { m: saved.m, v: saved.v };
    metrics = await readMetrics(metricsPath, step);
    await writeFileAtomic(metricsPath, metricsText(metrics));
    note(`resuming at step ${step} of ${totalSteps}`);
  } else {
    if (options.resume) note("no checkpoint to resume from: starting a new run");
    params = options.lora
      ? initLora(config, options.lora, Rng.derive(seed, "train", "lora-init"))
      : new Map([...shapes.keys()].map((name) => [name, base.weights.get(name)!]));
    await writeFileAtomic(metricsPath, "");
  }

  const engine = await TrainEngine.create(
    { config, weights: base.weights, lora: options.lora },
    {
      gradAccum,
      adamw,
      device: options.device,
      threads: options.threads,
      validation: valStream !== undefined,
    },
  );
  const summary: TrainSummary = {
    steps: totalSteps,
    firstLoss: NaN,
    lastLoss: NaN,
    tokens,
    device: engine.device,
    resumed: hasCheckpoint,
  };
  try {
    engine.load(params, moments?.m, moments?.v);

    const validate = async (): Promise<number | undefined> => {
      if (!valStream) return undefined;
      let sum = 0;
      let count = 0;
      const n = Math.min(valBatches, valStream.perEpoch);
      for (let i = 0; i < n; i++) {
        const batch = valStream.batch(i);
        const k = lossTokens(batch);
        if (k === 0) continue;
        sum += (await engine.evaluate(batch)) * k;
        count += k;
      }
      return count > 0 ? sum / count : undefined;
    };

    const save = async () => {
      const snap = engine.snapshot();
      if (options.lora) {
        await saveAdapter(options.out, {
          lora: options.lora,
          weights: snap.params,
          baseModel: resolve(options.model),
        }, config);
        // The base model's tokenizer goes with the adapter, so `infer --adapter` can check that
        // the model it is applied to tokenizes the same way.
        await writeFileAtomic(
          join(options.out, "tokenizer.json"),
          await Deno.readFile(tokenizerFile),
        );
      } else {
        await writeModelDir(
          options.out,
          config,
          new Map([...base.weights, ...snap.params]),
          tokenizerFile,
        );
      }
      await writeFileAtomic(join(options.out, RUN_FILES.chart), lossChart(metrics));
      await writeCheckpoint(checkpointPath, {
        step,
        micro,
        tokens,
        rng: rng.state(),
        settings: { ...settings, runtime },
        ...snap,
      }, shapes);
    };

    if (step === 0 && valStream) {
      summary.initialValLoss = await validate();
      if (summary.initialValLoss !== undefined) {
        note(`val_loss before training ${summary.initialValLoss.toFixed(4)}`);
      }
    }
    while (step < totalSteps) {
      const t0 = performance.now();
      const batches = Array.from({ length: gradAccum }, (_, i) => stream.batch(micro + i));
      const counts = batches.map(lossTokens);
      const total = counts.reduce((a, b) => a + b, 0);
      const scales = counts.map((c) => (total > 0 ? c / total : 0));
      const t = step + 1;
      const lr = learningRate(t, schedule);
      const result = await engine.step(
        batches,
        scales,
        lr,
        biasCorrections(t, adamw.beta1, adamw.beta2),
        rng,
      );
      if (!Number.isFinite(result.loss) || !Number.isFinite(result.gradNorm)) {
        const what = !Number.isFinite(result.loss)
          ? `loss is ${result.loss}`
          : `gradient norm is ${result.gradNorm}`;
        const kept = await pathExists(checkpointPath)
          ? `the last good checkpoint is kept in ${checkpointPath}`
          : "no checkpoint was written yet";
        throw new TrainingDiverged(
          `step ${t}: the ${what}; training stopped (${kept}; try a lower learning rate)`,
        );
      }
      step = t;
      micro += gradAccum;
      const stepTokens = batches.reduce((a, b) => a + b.batchSize * b.length, 0);
      tokens += stepTokens;
      const seconds = (performance.now() - t0) / 1000;
      const line: MetricsLine = {
        step,
        loss: result.loss,
        lr,
        tokens_per_s: Math.round(stepTokens / seconds),
        grad_norm: result.gradNorm,
        epoch: Number((micro / stream.perEpoch).toFixed(4)),
        tokens,
      };
      const validateNow = step === totalSteps || (valEvery > 0 && step % valEvery === 0);
      if (validateNow) {
        const val = await validate();
        if (val !== undefined) {
          line.val_loss = val;
          summary.valLoss = val;
        }
      }
      metrics.push(line);
      await Deno.writeTextFile(metricsPath, JSON.stringify(line) + "\n", { append: true });
      if (Number.isNaN(summary.firstLoss)) summary.firstLoss = result.loss;
      summary.lastLoss = result.loss;
      options.onStep?.(line, totalSteps);
      if (step === totalSteps || step % saveEvery === 0) await save();
    }
    if (summary.firstLoss !== summary.firstLoss && metrics.length > 0) {
      // Resumed at the end: report what the log says.
      summary.firstLoss = metrics[0].loss;
      summary.lastLoss = metrics[metrics.length - 1].loss;
    }
    if (options.merge) {
      const merged = mergeAdapter(base.weights, config, {
        lora: options.lora!,
        weights: engine.snapshot().params,
      });
      await writeModelDir(options.merge, config, merged, tokenizerFile);
    }
    summary.tokens = tokens;
    return summary;
  } finally {
    await engine.release();
  }
}
