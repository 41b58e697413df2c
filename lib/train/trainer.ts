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
import type { EntityTrie } from "../collate/trie.ts";
import { buildPool } from "../collate/pool.ts";
import { type Dataset, openDataset, trainsThroughValid } from "../data/dataset.ts";
import { InputError, OptionError, UsageError } from "../errors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { type AttentionMode, DECODER_SESSION_OPTIONS } from "../model/families/decoder.ts";
import { type AnyModel, loadAnyModel, maxModelLength } from "../model/load_any.ts";
import { writeMergedDecoder } from "../model/families/merge.ts";
import { Rng } from "../random.ts";
import type { Device } from "../runtime/session.ts";
import { TextTokenizer } from "../tokenizer/tokenizer.ts";
import { ADAPTER_FILES, mergeAdapter, saveAdapter } from "../model/adapter.ts";
import { claimOutputDir, claimRunDir, type OutputClaim } from "../io/safe_output.ts";
import { isTemporaryName } from "../io/atomic.ts";
import { checkIdentity, type ModelIdentity, modelIdentity } from "../model/identity.ts";
import { SafetensorsFile } from "../model/safetensors.ts";
import {
  CHECKPOINT_FORMAT,
  readCheckpoint,
  settingsDiffer,
  writeCheckpoint,
} from "./checkpoint.ts";
import { BatchStream, lossTokens, recordsSha256, tokenizeSplit } from "./data.ts";
import { TrainEngine } from "./engine.ts";
import { initLora, type LoraConfig } from "../model/lora.ts";
import {
  decoderSetup,
  initialMethodTensors,
  methodSettings,
  modelSettings,
  resolveLora,
} from "./family_setup.ts";
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
  /**
   * The adapter to train (empty `targets`: the family's default); null trains every weight
   * (GLM only).
   */
  lora: LoraConfig | null;
  /** Decoder families: the attention rule, recorded with the adapter (default causal). */
  attention?: AttentionMode;
  /** Masking objective of documents. */
  objective?: Objective | "mix";
  /** The sequence objective's cap on the items kept in part A (lib/collate/spans.ts). */
  sequenceMaxKeep?: number;
  /**
   * Train item targets under the trie's softmax (lib/collate/trie_loss.ts): the loss that
   * `infer --trie-softmax` ranks by. Default false.
   */
  trieSoftmax?: boolean;
  /**
   * Training records per epoch by task, as a multiple of the task's records (lib/train/data.ts
   * `taskWeights`; default 1 for every task).
   */
  taskWeights?: Readonly<Record<string, number>>;
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
  /** Write into `out` (and replace `merge`) even when they hold files pretrain did not write. */
  force?: boolean;
  device?: Device;
  threads?: number;
  /** Called after every step (progress lines). */
  onStep?: (line: MetricsLine, totalSteps: number) => void;
  /** Called for notes worth a line on stderr (resuming, skipped validation). */
  onNote?: (message: string) => void;
  /** Called as each phase before and between steps starts (loading, tokenizing, validating). */
  onPhase?: (message: string) => void;
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

function positive(option: string, value: number, min = 1): number {
  if (!(Number.isInteger(value) && value >= min)) {
    throw new OptionError(option, (name) => `${name} must be an integer >= ${min}, got ${value}`);
  }
  return value;
}

/** The run's step, batch and validation sizes, checked (stage 1 of {@linkcode train}). */
export interface RunSizes {
  batchSize: number;
  gradAccum: number;
  seed: number;
  saveEvery: number;
  valBatches: number;
  /** Validate every N steps; 0: only at the end. */
  valEvery: number;
  adamw: typeof DEFAULT_ADAMW;
}

/** Stage 1: the sizes and optimizer settings of `options`, with their defaults, checked. */
export function runSizes(options: TrainOptions): RunSizes {
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
  return { batchSize, gradAccum, seed, saveEvery, valBatches, valEvery, adamw };
}

/** The base model a run trains. */
export interface BaseModel {
  /** The loaded model of any family. */
  model: AnyModel;
  config: AnyModel["config"];
  weights: Map<string, Float32Array>;
  /** The adapter to train with the family's default targets filled in; null: every weight. */
  lora: LoraConfig | null;
  /** Decoder families: how their training graph is built (attention rule, added rows). */
  decoder: ReturnType<typeof decoderSetup>;
  tokenizer: TextTokenizer;
  tokenizerFile: string;
  /** Longest example in tokens. */
  maxLength: number;
  /** The identity of the base model, recorded in checkpoints and adapters and checked on resume. */
  identity: ModelIdentity;
}

/** Stage 2: loads the base model and its tokenizer and checks that they fit each other. */
export async function loadBase(options: TrainOptions): Promise<BaseModel> {
  const tokenizerFile = join(options.model, "tokenizer.json");
  const tokenizer = await TextTokenizer.load(tokenizerFile);
  const model = await loadAnyModel(options.model, { tokenizerIds: tokenizer.vocabSize });
  if (model.kind === "decoder" && !options.lora) {
    throw new OptionError(
      "lora",
      () =>
        `training every weight is not supported yet for ${model.config.family} models (LoRA runs are)`,
    );
  }
  const modelMax = maxModelLength(model);
  // Decoders take long contexts; records are short, so 1024 bounds memory unless asked.
  const maxLength = options.maxLength ??
    (model.kind === "glm" ? modelMax : Math.min(modelMax, 1024));
  if (maxLength > modelMax || maxLength < 8) {
    throw new OptionError(
      "maxLength",
      (name) => `${name} must be in 8..${modelMax} (the model's maximum), got ${maxLength}`,
    );
  }
  return {
    model,
    config: model.config,
    weights: model.weights,
    lora: resolveLora(model, options.lora),
    decoder: decoderSetup(model, options.attention),
    tokenizer,
    tokenizerFile,
    maxLength,
    identity: modelIdentity(model.config, model.weights),
  };
}

/** The run's data: seeded batch streams over the tokenized training and validation records. */
export interface RunData {
  collator: { objective: Objective | "mix"; maxLength: number; sequenceMaxKeep?: number };
  trainRecords: number;
  /** {@linkcode recordsSha256} of the training records: the data's identity for `--resume`. */
  trainSha256: string;
  stream: BatchStream;
  /** Undefined when validation is off or the dataset has no validation records. */
  valStream?: BatchStream;
}

/** Stage 3: tokenizes the training (and validation) records and builds their batch streams. */
export async function loadRunData(
  options: TrainOptions,
  sizes: RunSizes,
  base: BaseModel,
  note: (message: string) => void,
): Promise<RunData> {
  const { batchSize, seed, valBatches } = sizes;
  const { tokenizer } = base;
  const dataset = await openDataset(options.data);
  const collator = {
    objective: options.objective ?? DEFAULT_TRAIN.objective,
    maxLength: base.maxLength,
    sequenceMaxKeep: options.sequenceMaxKeep,
  };
  const trainRecords = await tokenizeSplit(dataset, "train", tokenizer);
  if (trainRecords.length === 0) {
    throw new InputError(`${join(options.data, "train.jsonl")}: no training records`);
  }
  const taskWeights = options.taskWeights;
  for (const task of Object.keys(taskWeights ?? {})) {
    if (!trainRecords.some((r) => r.task === task)) {
      throw new OptionError(
        "taskWeights",
        (name) => `${name}: no training record has the task "${task}"`,
      );
    }
  }
  const trieLoss = options.trieSoftmax ? itemTrieLoss(dataset, base) : undefined;
  const stream = new BatchStream(trainRecords, tokenizer.special, {
    batchSize,
    seed,
    collator,
    taskWeights,
    trieLoss,
  });
  const validRecords = valBatches > 0 ? await tokenizeSplit(dataset, "valid", tokenizer) : [];
  const valStream = validRecords.length > 0
    ? new BatchStream(validRecords, tokenizer.special, {
      batchSize,
      seed,
      collator,
      stream: "valid",
      trieLoss,
    })
    : undefined;
  if (!valStream && valBatches > 0) note("no validation records: val_loss is not reported");
  if (valStream && trainsThroughValid(dataset)) {
    note(
      "the dataset trains through the validation items (--train-through valid): val_loss is not held out",
    );
  }
  return {
    collator,
    trainRecords: trainRecords.length,
    trainSha256: recordsSha256(trainRecords),
    stream,
    valStream,
  };
}

/**
 * The trie of the dataset's items, built exactly as infer builds it (`buildPool`, with its checks:
 * entities the tokenizer cannot represent or tell apart are InputErrors naming entities.json), and
 * the model's logit width, for the trie softmax's loss.
 */
function itemTrieLoss(dataset: Dataset, base: BaseModel): { trie: EntityTrie; vocab: number } {
  const vocab = base.config.vocabSize + (base.decoder?.addedRows ?? 0);
  const pool = buildPool(base.tokenizer, dataset.entities, {
    vocabSize: vocab,
    file: join(dataset.dir, "entities.json"),
  });
  if (pool.items.items.length === 0) {
    throw new InputError(`${join(dataset.dir, "entities.json")}: no items for the trie softmax`);
  }
  return { trie: pool.items.trie, vocab };
}

/** The learning-rate schedule of a run, with its length. */
export interface RunSchedule {
  lr: number;
  warmup: number;
  totalSteps: number;
  kind: ScheduleKind;
}

/** Stage 4: the run's length (steps, or epochs over `perEpoch` batches) and schedule. */
export function runSchedule(options: TrainOptions, perEpoch: number, gradAccum: number) {
  const totalSteps = options.steps ??
    Math.ceil(((options.epochs ?? DEFAULT_TRAIN.epochs) * perEpoch) / gradAccum);
  positive("steps", totalSteps);
  const schedule: RunSchedule = {
    lr: options.lr ?? (options.lora ? DEFAULT_TRAIN.lr.lora : DEFAULT_TRAIN.lr.full),
    warmup: options.warmup ??
      Math.floor((options.warmupShare ?? DEFAULT_TRAIN.warmupShare) * totalSteps),
    totalSteps,
    kind: options.schedule ?? DEFAULT_TRAIN.schedule,
  };
  if (!(schedule.lr > 0)) {
    throw new OptionError("lr", (name) => `${name} must be positive, got ${schedule.lr}`);
  }
  return schedule;
}

/** Everything the stages after planning share. */
interface Run {
  options: TrainOptions;
  sizes: RunSizes;
  base: BaseModel;
  data: RunData;
  schedule: RunSchedule;
  /** What must not change between a run and its resumption. */
  settings: Record<string, unknown>;
  /** Recorded in the checkpoint, not required to match: only bitwise equality depends on them. */
  runtime: { threads: number };
  checkpointPath: string;
  metricsPath: string;
  shapes: Map<string, readonly number[]>;
  note: (message: string) => void;
}

/** Where a run stands: what a checkpoint stores, plus the metrics logged so far. */
interface RunState {
  step: number;
  micro: number;
  tokens: number;
  rng: Rng;
  params: Map<string, Float32Array>;
  moments?: { m: Map<string, Float32Array>; v: Map<string, Float32Array> };
  metrics: MetricsLine[];
  resumed: boolean;
}

/** The settings a resumed run must share with the run it continues. */
function resumeSettings(
  options: TrainOptions,
  sizes: RunSizes,
  base: BaseModel,
  data: RunData,
  schedule: RunSchedule,
): Record<string, unknown> {
  return {
    seed: sizes.seed,
    lora: base.lora,
    objective: data.collator.objective,
    ...(data.collator.sequenceMaxKeep === undefined
      ? {}
      : { sequenceMaxKeep: data.collator.sequenceMaxKeep }),
    taskWeights: options.taskWeights ?? {},
    ...(options.trieSoftmax ? { trieSoftmax: true } : {}),
    maxLength: base.maxLength,
    batchSize: sizes.batchSize,
    gradAccum: sizes.gradAccum,
    schedule,
    adamw: sizes.adamw,
    trainRecords: data.trainRecords,
    trainSha256: data.trainSha256,
    model: modelSettings(base.model, options.attention),
  };
}

/**
 * Stage 5: the run's starting state: read from the checkpoint when resuming (settings checked,
 * metrics cut back to the checkpoint's step), else fresh (a new adapter, or the base weights).
 */
async function startOrResume(run: Run): Promise<RunState> {
  const { options, base, sizes, checkpointPath, metricsPath, note } = run;
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
    const saved = await readCheckpoint(checkpointPath, run.shapes);
    if (saved.base) checkIdentity(checkpointPath, saved.base, base.identity, options.model);
    else {
      note(
        `${checkpointPath} was written by an older version: no base-model identity to check ` +
          `(make sure --model is the model it was trained on)`,
      );
    }
    if (!saved.verified) note(`${checkpointPath} records no checksum: its data is not checked`);
    const { runtime: _saved, ...comparable } = saved.settings;
    if (comparable.trainSha256 === undefined) {
      // Checkpoints of older versions record the record count only.
      note(`${checkpointPath} records no hash of its training data: the data is not checked`);
      comparable.trainSha256 = run.settings.trainSha256;
    } else if (comparable.trainSha256 !== run.settings.trainSha256) {
      throw new InputError(
        `cannot resume ${options.out}: the training records of ${options.data} are not those ` +
          `it was trained on (sha256 ${String(comparable.trainSha256).slice(0, 12)}... -> ` +
          `${String(run.settings.trainSha256).slice(0, 12)}...); restore that dataset, or train ` +
          `into a new --out`,
      );
    }
    const differ = settingsDiffer(comparable, run.settings);
    if (differ) {
      throw new UsageError(`cannot resume ${options.out} with different settings (${differ})`);
    }
    const { step, micro, tokens } = saved;
    const was = saved.settings.runtime as { threads?: number } | undefined;
    if (was && was.threads !== run.runtime.threads) {
      note(
        `resuming with ${run.runtime.threads} threads where the run used ${was.threads}: the ` +
          `weights will not be bitwise those of an uninterrupted run`,
      );
    }
    const metrics = await readMetrics(metricsPath, step);
    await writeFileAtomic(metricsPath, metricsText(metrics));
    note(`resuming at step ${step} of ${run.schedule.totalSteps}`);
    return {
      step,
      micro,
      tokens,
      rng: Rng.fromState(saved.rng),
      params: saved.params,
      moments: { m: saved.m, v: saved.v },
      metrics,
      resumed: true,
    };
  }
  if (options.resume) note("no checkpoint to resume from: starting a new run");
  const params = base.lora
    ? new Map([
      ...initLora(base.config, base.lora, Rng.derive(sizes.seed, "train", "lora-init")),
      ...initialMethodTensors(base.model),
    ])
    : new Map([...run.shapes.keys()].map((name) => [name, base.weights.get(name)!]));
  await writeFileAtomic(metricsPath, "");
  return {
    step: 0,
    micro: 0,
    tokens: 0,
    rng: Rng.derive(sizes.seed, "train", "dropout"),
    params,
    metrics: [],
    resumed: false,
  };
}

/** The mean loss per loss token over the first validation batches; undefined without any. */
async function validationLoss(run: Run, engine: TrainEngine): Promise<number | undefined> {
  const { valStream } = run.data;
  if (!valStream) return undefined;
  let sum = 0;
  let count = 0;
  const n = Math.min(run.sizes.valBatches, valStream.perEpoch);
  for (let i = 0; i < n; i++) {
    run.options.onPhase?.(`validating: batch ${i + 1}/${n}`);
    const batch = valStream.batch(i);
    const k = lossTokens(batch);
    if (k === 0) continue;
    sum += (await engine.evaluate(batch)) * k;
    count += k;
  }
  return count > 0 ? sum / count : undefined;
}

/** Writes the run's outputs (adapter or model, loss chart) and then its checkpoint. */
async function saveRun(run: Run, engine: TrainEngine, state: RunState): Promise<void> {
  const { options, base } = run;
  const snap = engine.snapshot();
  if (base.lora) {
    await saveAdapter(options.out, {
      lora: base.lora,
      weights: snap.params,
      baseModel: resolve(options.model),
      method: methodSettings(base.model, options.attention),
      base: base.identity,
    }, base.config);
    // The base model's tokenizer goes with the adapter, so `infer --adapter` can check that
    // the model it is applied to tokenizes the same way.
    await writeFileAtomic(
      join(options.out, "tokenizer.json"),
      await Deno.readFile(base.tokenizerFile),
    );
  } else if (base.model.kind === "glm") {
    await writeModelDir(
      options.out,
      base.model.config,
      new Map([...base.weights, ...snap.params]),
      base.tokenizerFile,
    );
  }
  await writeFileAtomic(join(options.out, RUN_FILES.chart), lossChart(state.metrics));
  await writeCheckpoint(run.checkpointPath, {
    step: state.step,
    micro: state.micro,
    tokens: state.tokens,
    rng: state.rng.state(),
    settings: { ...run.settings, runtime: run.runtime },
    base: base.identity,
    ...snap,
  }, run.shapes);
}

/**
 * One optimizer step over the next `gradAccum` micro-batches, each weighted by its share of the
 * loss tokens; advances `state` and returns the step's metrics line (without validation). A
 * non-finite loss or gradient norm throws TrainingDiverged and leaves `state` as it was.
 */
async function optimizerStep(run: Run, engine: TrainEngine, state: RunState) {
  const { gradAccum, adamw } = run.sizes;
  const { stream } = run.data;
  const t0 = performance.now();
  const batches = Array.from({ length: gradAccum }, (_, i) => stream.batch(state.micro + i));
  const counts = batches.map(lossTokens);
  const total = counts.reduce((a, b) => a + b, 0);
  const scales = counts.map((c) => (total > 0 ? c / total : 0));
  const t = state.step + 1;
  const lr = learningRate(t, run.schedule);
  const result = await engine.step(
    batches,
    scales,
    lr,
    biasCorrections(t, adamw.beta1, adamw.beta2),
    state.rng,
  );
  if (!Number.isFinite(result.loss) || !Number.isFinite(result.gradNorm)) {
    const what = !Number.isFinite(result.loss)
      ? `loss is ${result.loss}`
      : `gradient norm is ${result.gradNorm}`;
    const kept = await pathExists(run.checkpointPath)
      ? `the last good checkpoint is kept in ${run.checkpointPath}`
      : "no checkpoint was written yet";
    throw new TrainingDiverged(
      `step ${t}: the ${what}; training stopped (${kept}; try a lower learning rate)`,
    );
  }
  state.step = t;
  state.micro += gradAccum;
  const stepTokens = batches.reduce((a, b) => a + b.batchSize * b.length, 0);
  state.tokens += stepTokens;
  const seconds = (performance.now() - t0) / 1000;
  const line: MetricsLine = {
    step: state.step,
    loss: result.loss,
    lr,
    tokens_per_s: Math.round(stepTokens / seconds),
    grad_norm: result.gradNorm,
    epoch: Number((state.micro / stream.perEpoch).toFixed(4)),
    tokens: state.tokens,
  };
  return line;
}

/** Stage 6: the training loop: validate first (fresh runs), then step, log, validate and save. */
async function trainLoop(run: Run, engine: TrainEngine, state: RunState, summary: TrainSummary) {
  const { options, note } = run;
  const { totalSteps } = run.schedule;
  const { valEvery, saveEvery } = run.sizes;
  engine.load(state.params, state.moments?.m, state.moments?.v);
  if (state.step === 0 && run.data.valStream) {
    summary.initialValLoss = await validationLoss(run, engine);
    if (summary.initialValLoss !== undefined) {
      note(`val_loss before training ${summary.initialValLoss.toFixed(4)}`);
    }
  }
  while (state.step < totalSteps) {
    const line = await optimizerStep(run, engine, state);
    const { step } = state;
    const validateNow = step === totalSteps || (valEvery > 0 && step % valEvery === 0);
    if (validateNow) {
      const val = await validationLoss(run, engine);
      if (val !== undefined) {
        line.val_loss = val;
        summary.valLoss = val;
      }
    }
    state.metrics.push(line);
    await Deno.writeTextFile(run.metricsPath, JSON.stringify(line) + "\n", { append: true });
    if (Number.isNaN(summary.firstLoss)) summary.firstLoss = line.loss;
    summary.lastLoss = line.loss;
    options.onStep?.(line, totalSteps);
    if (step === totalSteps || step % saveEvery === 0) await saveRun(run, engine, state);
  }
  if (summary.firstLoss !== summary.firstLoss && state.metrics.length > 0) {
    // Resumed at the end: report what the log says.
    summary.firstLoss = state.metrics[0].loss;
    summary.lastLoss = state.metrics[state.metrics.length - 1].loss;
  }
}

/**
 * Runs (or resumes) a training run as `options` say; returns a summary. Throws OptionError for
 * settings that cannot work, InputError for bad inputs, TrainingDiverged for a non-finite loss.
 *
 * The stages, in order: {@linkcode runSizes}, {@linkcode loadBase}, {@linkcode loadRunData},
 * {@linkcode runSchedule}, then starting or resuming the state, the training loop (steps,
 * validation, saves) and, with `merge`, writing the merged model.
 */
export async function train(options: TrainOptions): Promise<TrainSummary> {
  const sizes = runSizes(options);
  const inputs = [options.data, options.model];
  const runDir = await claimRunDir(options.out, RUN_DIR_FILES, {
    command: "pretrain",
    force: options.force,
    inputs,
    recognize: isOlderRunDir,
  });
  let merge: OutputClaim | undefined;
  try {
    if (options.merge) {
      merge = await claimOutputDir(options.merge, {
        command: "pretrain",
        flag: "--merge",
        force: options.force,
        inputs: [...inputs, options.out],
      });
    }
    return await trainClaimed(options, sizes, merge);
  } finally {
    await merge?.close();
    const checkpoint = await pathExists(join(options.out, RUN_FILES.checkpoint)).catch(() => true);
    await runDir.release(!checkpoint);
  }
}

/** Every entry a run directory may hold (its ownership marker lists them). */
const RUN_DIR_FILES = [
  ...Object.values(RUN_FILES),
  ...Object.values(ADAPTER_FILES),
  "tokenizer.json",
  "config.json",
  "model.safetensors",
];

/**
 * Whether `dir` (without an ownership marker) is a run directory an earlier version of pretrain
 * wrote: nothing but run files and temporaries, and a checkpoint of this toolkit's format.
 */
async function isOlderRunDir(dir: string): Promise<boolean> {
  for await (const entry of Deno.readDir(dir)) {
    if (!RUN_DIR_FILES.includes(entry.name) && !isTemporaryName(entry.name)) return false;
  }
  try {
    const file = await SafetensorsFile.open(join(dir, RUN_FILES.checkpoint));
    return file.metadata.format === CHECKPOINT_FORMAT;
  } catch {
    return false;
  }
}

/** {@linkcode train} once its run directory (and merge directory) are claimed. */
async function trainClaimed(
  options: TrainOptions,
  sizes: RunSizes,
  merge: OutputClaim | undefined,
): Promise<TrainSummary> {
  const note = options.onNote ?? (() => {});
  const phase = options.onPhase ?? (() => {});
  phase(`loading the base model ${options.model}`);
  const base = await loadBase(options);
  phase(`tokenizing the training records of ${options.data}`);
  const data = await loadRunData(options, sizes, base, note);
  const schedule = runSchedule(options, data.stream.perEpoch, sizes.gradAccum);
  const run: Run = {
    options,
    sizes,
    base,
    data,
    schedule,
    settings: resumeSettings(options, sizes, base, data, schedule),
    runtime: { threads: options.threads ?? navigator.hardwareConcurrency ?? 1 },
    checkpointPath: join(options.out, RUN_FILES.checkpoint),
    metricsPath: join(options.out, RUN_FILES.metrics),
    shapes: new Map(
      trainableParams({ config: base.config, lora: base.lora, decoder: base.decoder }).map((p) =>
        [p.name, p.shape] as const
      ),
    ),
    note,
  };
  const state = await startOrResume(run);

  phase(`building the training graph (${base.lora ? "LoRA" : "every weight"}) and its session`);
  const engine = await TrainEngine.create(
    {
      config: base.config,
      weights: base.weights,
      lora: base.lora,
      decoder: base.decoder,
      trieLoss: options.trieSoftmax,
    },
    {
      gradAccum: sizes.gradAccum,
      adamw: sizes.adamw,
      device: options.device,
      threads: options.threads,
      validation: data.valStream !== undefined,
      session: base.model.kind === "decoder" ? DECODER_SESSION_OPTIONS : undefined,
    },
  );
  const summary: TrainSummary = {
    steps: schedule.totalSteps,
    firstLoss: NaN,
    lastLoss: NaN,
    tokens: state.tokens,
    device: engine.device,
    resumed: state.resumed,
  };
  try {
    await trainLoop(run, engine, state, summary);
    if (merge) {
      const method = methodSettings(base.model, options.attention);
      const merged = mergeAdapter(base.weights, base.config, {
        lora: base.lora!,
        weights: engine.snapshot().params,
        method,
      });
      if (base.model.kind === "glm") {
        await writeModelDir(merge.tmp, base.model.config, merged, base.tokenizerFile);
      } else {
        await writeMergedDecoder(merge.tmp, base.model.config, merged, {
          addedRows: base.model.addedRows,
          attention: method!.attention,
          tokenizerFile: base.tokenizerFile,
        });
      }
      await merge.commit();
    }
    summary.tokens = state.tokens;
    return summary;
  } finally {
    await engine.release();
  }
}
