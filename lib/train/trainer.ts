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
 * Data-parallel (`world`, lib/parallel): every rank loads the model and the data, takes its share
 * of each global micro-batch (`batchSize` stays the global batch: the examples one process sees),
 * computes its gradients in its own session, and the ranks sum them (`allreduceSum`, one buffer
 * of every trainable tensor and the loss) before every rank applies the same AdamW step. The
 * gradient of a step is thus, for each trainable element, the sum over the ranks (in rank order
 * for two ranks; MPI's order for more, the same on every rank) of each rank's sum over its
 * micro-batch parts in order, each part weighted by its share of the global step's loss tokens;
 * one process sums the same terms grouped as whole micro-batches, so the two agree to float
 * rounding, not bitwise. Rank 0 alone reads the checkpoint (and sends the state to the others)
 * and writes every file; validation splits each batch the same way and sums. Settings, model and
 * data are compared at the start, the trainable tensors at every save; a failure of any rank
 * ends every rank with the same error naming the rank.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { checkRecordsFit, DEFAULT_COLLATOR, type Objective } from "../collate/collator.ts";
import { checkEntityLengths } from "../collate/entity_fit.ts";
import { itemTokenSummary } from "../collate/tokenize.ts";
import type { EntityTrie } from "../collate/trie.ts";
import { buildPool } from "../collate/pool.ts";
import { type ItemTokenDigest, itemTokenDigest, withItemTokens } from "../collate/item_tokens.ts";
import { type Dataset, openDataset, trainsThroughValid } from "../data/dataset.ts";
import { InputError, OptionError, optionName, UsageError } from "../errors.ts";
import { temporaryRenamed, writeFileAtomic } from "../io/atomic.ts";
import type { AttentionMode } from "../model/families/decoder.ts";
import { type AnyModel, loadAnyModel, maxModelLength } from "../model/load_any.ts";
import { writeMergedDecoder, writeModelFiles } from "../model/families/merge.ts";
import { weightSessionOptions } from "../model/family.ts";
import { Rng } from "../random.ts";
import type { Device } from "../runtime/session.ts";
import { TextTokenizer } from "../tokenizer/tokenizer.ts";
import {
  type Adapter,
  ADAPTER_FILES,
  loadAdapter,
  mergeAdapter,
  saveAdapter,
} from "../model/adapter.ts";
import { claimOutputDir, claimRunDir, type OutputClaim, within } from "../io/safe_output.ts";
import { isTemporaryName } from "../io/atomic.ts";
import { checkIdentity, type ModelIdentity, modelIdentity } from "../model/identity.ts";
import { SafetensorsFile } from "../model/safetensors.ts";
import {
  CHECKPOINT_FORMAT,
  readCheckpoint,
  settingsDiffer,
  writeCheckpoint,
} from "./checkpoint.ts";
import {
  BatchStream,
  epochRecords,
  lossTokens,
  recordsSha256,
  sliceBatch,
  tokenizeSplit,
} from "./data.ts";
import { TrainEngine } from "./engine.ts";
import { initLora, inTableOrder, type LoraConfig, loraTargetTable } from "../model/lora.ts";
import {
  checkLoraTargets,
  decoderSetup,
  initialMethodTensors,
  methodSettings,
  modelSettings,
  resolveLora,
} from "./family_setup.ts";
import { lossChart, type MetricsLine, metricsText, readMetrics, RUN_FILES } from "./outputs.ts";
import { biasCorrections, learningRate, type ScheduleKind } from "./schedule.ts";
import { DEFAULT_ADAMW, trainableParams } from "./train_graph.ts";
import { pathExists } from "../io/fs.ts";
import {
  broadcastFloats,
  broadcastJson,
  type Collective,
  hashFloats,
  shareOf,
  together,
} from "../parallel/collective.ts";
import type { BatchShare, StepGradients } from "./engine.ts";
import type { Batch } from "../collate/types.ts";

/** Defaults of the optional {@linkcode TrainOptions} (AdamW's are `DEFAULT_ADAMW`). */
export const DEFAULT_TRAIN: Readonly<{
  objective: Objective | "mix";
  epochs: number;
  batchSize: number;
  gradAccum: number;
  lr: Readonly<{ lora: number; full: number }>;
  warmupShare: number;
  schedule: ScheduleKind;
  seed: number;
  saveEvery: number;
  valBatches: number;
}> = Object.freeze({
  objective: DEFAULT_COLLATOR.objective,
  epochs: 1,
  batchSize: 8,
  gradAccum: 1,
  /** Peak learning rate: LoRA, and full training. */
  lr: Object.freeze({ lora: 2e-4, full: 1e-4 }),
  warmupShare: 0.05,
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
  /**
   * A LoRA adapter to start from (this toolkit's or one PEFT wrote): its rank, alpha and targets
   * replace `lora`'s (its dropout stays), its tensors the seeded initialisation.
   */
  adapter?: string;
  /** The attention rule, recorded with the adapter (default: the model's own, else causal). */
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
  /**
   * The model's own dropout (lib/train/train_graph.ts `TrainSetup.dropout`): the probability of
   * zeroing an embedding or a layer's attention or MLP output value, in training steps only.
   * Default 0.
   */
  dropout?: number;
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
  /** Where to run (default `auto`). */
  device?: Device;
  /** The CUDA device's index with `device` cuda (default 0). */
  deviceId?: number;
  /** Intra-op threads (default: every core). */
  threads?: number;
  /**
   * The ranks of a data-parallel run (lib/parallel `openWorld`); undefined or one rank: this
   * process alone. See the module's documentation.
   */
  world?: Collective;
  /** Called after every step (progress lines); rank 0 only. */
  onStep?: (line: MetricsLine, totalSteps: number) => void;
  /** Called for notes worth a line on stderr (resuming, skipped validation); rank 0 only. */
  onNote?: (message: string) => void;
  /** Called as each phase before and between steps starts (loading, tokenizing, validating). */
  onPhase?: (message: string) => void;
}

/** What a finished run reports. */
export interface TrainSummary {
  /** Optimizer steps of the run (its schedule's total). */
  steps: number;
  /** Loss of the first step of this invocation and of the last step. */
  firstLoss: number;
  /** Loss of the last step. */
  lastLoss: number;
  /** The run's last validation loss (this invocation's or the log's), when validated. */
  valLoss?: number;
  /** Validation loss before the first step (fresh runs that validate). */
  initialValLoss?: number;
  /** Tokens in the batches trained on (examples times padded length). */
  tokens: number;
  /** The device the run ran on. */
  device: string;
  /** Whether the run continued from a checkpoint. */
  resumed: boolean;
}

/** A run stopped because the loss or the gradients stopped being finite. */
export class TrainingDiverged extends InputError {
  /** The error's name, as stacks show it. */
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
export function runSizes(options: TrainOptions, ranks = 1): RunSizes {
  if (options.merge && !options.lora) {
    throw new OptionError(
      "merge",
      (name) => `${name} needs a LoRA run (a full run's directory is the model)`,
    );
  }
  if (options.merge) {
    // Inside the run it would be written into the run's own files, and refused on --resume.
    if (within(resolve(options.merge), resolve(options.out))) {
      throw new OptionError(
        "merge",
        (name, nameOf) => `${name} ${options.merge} lies inside ${nameOf("out")} ${options.out}`,
      );
    }
  }
  if (options.lora) checkLoraTargets(options.lora.targets);
  const objective = options.objective ?? DEFAULT_TRAIN.objective;
  if (options.sequenceMaxKeep !== undefined && objective !== "sequence") {
    // Only the sequence objective keeps entities in part A (the training mix has none).
    throw new OptionError(
      "sequenceMaxKeep",
      (name, nameOf) =>
        `${name} shapes the sequence objective; ${nameOf("objective")} is ${objective}`,
    );
  }
  const dropout = options.dropout ?? 0;
  if (!(dropout >= 0 && dropout < 1)) {
    throw new OptionError("dropout", (name) => `${name} must be in [0, 1), got ${dropout}`);
  }
  const batchSize = positive("batchSize", options.batchSize ?? DEFAULT_TRAIN.batchSize);
  if (batchSize < ranks) {
    throw new OptionError(
      "batchSize",
      (name) =>
        `${name} is the global batch: at least one example per rank (${ranks}), got ${batchSize}`,
    );
  }
  const gradAccum = positive("gradAccum", options.gradAccum ?? DEFAULT_TRAIN.gradAccum);
  const seed = options.seed ?? DEFAULT_TRAIN.seed;
  const saveEvery = positive("saveEvery", options.saveEvery ?? DEFAULT_TRAIN.saveEvery);
  const valBatches = positive("valBatches", options.valBatches ?? DEFAULT_TRAIN.valBatches, 0);
  const valEvery = options.valEvery ?? saveEvery;
  if (options.valEvery !== undefined && valBatches === 0) {
    throw new OptionError(
      "valEvery",
      (name, nameOf) => `${name} paces validation, which ${nameOf("valBatches")} 0 turns off`,
    );
  }
  // The schedule's checks that need no data, here, before the model loads and the records are
  // tokenized (minutes on large data); runSchedule repeats them with the run's length.
  checkRate(options, peakRate(options));
  if (options.steps !== undefined && options.warmup !== undefined) {
    checkWarmup(options.warmup, options.steps);
  }
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
  /** How the training graph is built: the run's attention rule and special-token rows. */
  decoder: ReturnType<typeof decoderSetup>;
  tokenizer: TextTokenizer;
  tokenizerFile: string;
  /** Longest example in tokens. */
  maxLength: number;
  /** The identity of the base model, recorded in checkpoints and adapters and checked on resume. */
  identity: ModelIdentity;
  /** The tensors of `options.adapter`, the new run's start instead of a seeded adapter. */
  start?: Map<string, Float32Array>;
  /** The dataset's item tokens, recorded in what the run writes; undefined when it has none. */
  itemTokens?: ItemTokenDigest;
}

/** Stage 2: loads the base model and its tokenizer and checks that they fit each other. */
export async function loadBase(options: TrainOptions): Promise<BaseModel> {
  const tokenizerFile = join(options.model, "tokenizer.json");
  const plain = await TextTokenizer.load(tokenizerFile);
  const dataset = await openDataset(options.data);
  // With the dataset's item tokens, if it has them: a decoder family's added rows count them.
  const tokenizer = withItemTokens(plain, dataset);
  // Refused when its item rows were made for another dataset's items (they would be trained as
  // this one's).
  const model = await loadAnyModel(options.model, {
    tokenizerIds: tokenizer.vocabSize,
    tokenizerDefinedIds: tokenizer.definedIds,
    data: dataset,
  });
  const modelMax = maxModelLength(model);
  // Models take long contexts; records are short, so 1024 bounds memory unless asked.
  const maxLength = options.maxLength ?? Math.min(modelMax, 1024);
  if (maxLength > modelMax || maxLength < 8) {
    throw new OptionError(
      "maxLength",
      (name) =>
        `${name} must be in 8..${modelMax} (the model's maximum${
          modelMax < model.config.maxPositionEmbeddings
            ? `: its sliding_window, where sliding and full attention agree`
            : ""
        }), got ${maxLength}`,
    );
  }
  let lora = resolveLora(model, options.lora);
  let start: Adapter | undefined;
  if (options.adapter !== undefined) {
    if (!lora) {
      throw new OptionError(
        "adapter",
        (name, nameOf) => `${name} continues a LoRA adapter: drop ${nameOf("full")}`,
      );
    }
    start = await loadAdapter(options.adapter, model.config, {
      model: { weights: model.weights, addedRows: model.addedRows },
      data: dataset,
    });
    lora = { ...start.lora, dropout: lora.dropout };
  }
  return {
    model,
    config: model.config,
    weights: model.weights,
    lora,
    start: start?.weights,
    decoder: decoderSetup(model, options.attention ?? start?.method?.attention),
    tokenizer,
    tokenizerFile,
    maxLength,
    identity: modelIdentity(model.config, model.weights),
    itemTokens: itemTokenDigest(dataset),
  };
}

/** The run's data: seeded batch streams over the tokenized training and validation records. */
export interface RunData {
  collator: {
    objective: Objective | "mix";
    maxLength: number;
    sequenceMaxKeep?: number;
    itemRoom?: number;
  };
  trainRecords: number;
  /** {@linkcode recordsSha256} of the training records: the data's identity for `--resume`. */
  trainSha256: string;
  /** `itemsSha256` of the dataset's items: the trie and the room for an item answer. */
  itemsSha256: string;
  stream: BatchStream;
  /** Undefined when validation is off or the dataset has no validation records. */
  valStream?: BatchStream;
  /** {@linkcode recordsSha256} of the validation records (the ranks of a run compare it). */
  validSha256: string;
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
  // The items' tokens, once: the room for an item answer and the digest --resume checks.
  const items = itemTokenSummary(tokenizer, dataset.entities);
  const collator = {
    objective: options.objective ?? DEFAULT_TRAIN.objective,
    maxLength: base.maxLength,
    sequenceMaxKeep: options.sequenceMaxKeep,
    // A too-long item prompt is cut as infer cuts it, whichever item it is scored with.
    itemRoom: items.longest,
  };
  // Before the first step, not when a batch comes up: an entity the model cannot hold (named,
  // with the option that cuts it), then any record that cannot fit.
  const lengthFrom = options.maxLength === undefined
    ? "the model's maximum length"
    : optionName("maxLength");
  checkEntityLengths(tokenizer, dataset.entities, {
    maxLength: base.maxLength,
    lengthFrom,
    file: join(options.data, "entities.json"),
  });
  const trainRecords = await tokenizeSplit(dataset, "train", tokenizer);
  if (trainRecords.length === 0) {
    throw new InputError(`${join(options.data, "train.jsonl")}: no training records`);
  }
  checkRecordsFit(trainRecords, base.maxLength, {
    what: "training records",
    lengthFrom,
    itemRoom: collator.itemRoom,
  });
  const taskWeights = options.taskWeights;
  for (const [task, weight] of Object.entries(taskWeights ?? {})) {
    const count = trainRecords.filter((r) => r.task === task).length;
    if (count === 0) {
      throw new OptionError(
        "taskWeights",
        (name) => `${name}: no training record has the task "${task}"`,
      );
    }
    // A weight meant to keep a task must keep some of its records.
    if (weight > 0 && Math.floor(weight) === 0 && Math.round(weight * count) === 0) {
      throw new OptionError(
        "taskWeights",
        (name) =>
          `${name}: ${task}=${weight} draws none of its ${count} records an epoch ` +
          `(at least ${(0.5 / count).toPrecision(2)}, or 0 to leave the task out)`,
      );
    }
  }
  // How many records an epoch draws depends on the counts only, not on the generator.
  const drawn = epochRecords(trainRecords.map((r) => r.task), taskWeights, new Rng(0)).length;
  if (drawn === 0) {
    throw new OptionError(
      "taskWeights",
      (name) => `${name} leave no training record: give some task a weight above 0`,
    );
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
  checkRecordsFit(validRecords, base.maxLength, {
    what: "validation records",
    lengthFrom,
    itemRoom: collator.itemRoom,
  });
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
      `the dataset trains through the validation items (${optionName("trainThrough")} valid): ` +
        "val_loss is not held out",
    );
  }
  return {
    collator,
    trainRecords: trainRecords.length,
    trainSha256: recordsSha256(trainRecords),
    itemsSha256: items.sha256,
    stream,
    valStream,
    validSha256: recordsSha256(validRecords),
  };
}

/**
 * A task weighted that the manifest counts no training record of is refused before the model
 * loads and the records are tokenized; loadRunData checks the records themselves after.
 */
async function checkWeightedTasks(options: TrainOptions): Promise<void> {
  if (options.taskWeights === undefined) return;
  const counts = (await openDataset(options.data)).manifest.counts?.train;
  if (counts === undefined) return;
  for (const task of Object.keys(options.taskWeights)) {
    if (Object.values(counts[task] ?? {}).some((n) => n > 0)) continue;
    throw new OptionError(
      "taskWeights",
      (name) => `${name}: no training record has the task "${task}"`,
    );
  }
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
  const schedule = scheduleFor(options, totalSteps);
  checkRate(options, schedule.lr);
  checkWarmup(schedule.warmup, totalSteps);
  return schedule;
}

/** The peak learning rate: the option, else the method's default. */
function peakRate(options: TrainOptions): number {
  return options.lr ?? (options.lora ? DEFAULT_TRAIN.lr.lora : DEFAULT_TRAIN.lr.full);
}

/** The schedule of a run of `totalSteps` under `options` (their rate, warmup and kind). */
function scheduleFor(options: TrainOptions, totalSteps: number): RunSchedule {
  return {
    lr: peakRate(options),
    warmup: options.warmup ??
      Math.floor((options.warmupShare ?? DEFAULT_TRAIN.warmupShare) * totalSteps),
    totalSteps,
    kind: options.schedule ?? DEFAULT_TRAIN.schedule,
  };
}

/** Refuses a learning rate that is not positive, or one whose product with the decay is >= 1. */
function checkRate(options: TrainOptions, lr: number): void {
  if (!(lr > 0)) {
    throw new OptionError("lr", (name) => `${name} must be positive, got ${lr}`);
  }
  // Decoupled decay scales every matrix by (1 - lr x decay) a step: at 1 or more it flips their
  // sign and grows them until they overflow.
  const decay = options.weightDecay ?? DEFAULT_ADAMW.weightDecay;
  if (lr * decay >= 1) {
    throw new OptionError(
      "weightDecay",
      (name, nameOf) =>
        `${name} ${decay} with ${nameOf("lr")} ${lr} scales the weights by ` +
        `${1 - lr * decay} a step (their product must be below 1)`,
    );
  }
}

/** Refuses a warmup longer than the run. */
function checkWarmup(warmup: number, totalSteps: number): void {
  if (warmup > totalSteps) {
    throw new OptionError(
      "warmup",
      (name) =>
        `${name} ${warmup} is longer than the run's ${totalSteps} steps: the rate would ` +
        `never reach its peak`,
    );
  }
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
  runtime: {
    threads: number;
    ranks?: number;
    /** What val_loss is measured on: a resumed run with another notes that its curve breaks. */
    validation?: { sha256: string; batches: number; every: number; initialLoss?: number };
  };
  checkpointPath: string;
  metricsPath: string;
  shapes: Map<string, readonly number[]>;
  note: (message: string) => void;
  /** The ranks of a data-parallel run (more than one), else undefined. */
  world?: Collective;
  /** Whether this process writes the run's files: rank 0, or the only process. */
  root: boolean;
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
  /** val_loss before the first step, kept in the checkpoint for a resumed run's summary. */
  initialValLoss?: number;
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
    ...optionSettings(options, sizes),
    lora: base.lora,
    maxLength: base.maxLength,
    schedule,
    trainRecords: data.trainRecords,
    trainSha256: data.trainSha256,
    itemsSha256: data.itemsSha256,
    // The ids the collator inserts ([MASK], [S], [E], ...): never in the records' hash.
    specialIds: { ...base.tokenizer.special },
    // What every example starts with (Llama's <s>); recorded only where the tokenizer puts some,
    // so runs of tokenizers without one (and before 2026-12-07) compare as they did.
    ...(base.tokenizer.prefix.length > 0 ? { prefixIds: [...base.tokenizer.prefix] } : {}),
    model: modelSettings(base.model, base.decoder.attention),
  };
}

/**
 * The resume settings the options alone decide (the collator's objective and cap are the
 * options'): shared by the settings a checkpoint records and the check made before loading.
 */
function optionSettings(options: TrainOptions, sizes: RunSizes): Record<string, unknown> {
  return {
    seed: sizes.seed,
    objective: options.objective ?? DEFAULT_TRAIN.objective,
    ...(options.sequenceMaxKeep === undefined ? {} : { sequenceMaxKeep: options.sequenceMaxKeep }),
    taskWeights: options.taskWeights ?? {},
    ...(options.trieSoftmax ? { trieSoftmax: true } : {}),
    ...(options.dropout ? { dropout: options.dropout } : {}),
    batchSize: sizes.batchSize,
    gradAccum: sizes.gradAccum,
    adamw: sizes.adamw,
  };
}

/** The refusal of a new run in `out`, which holds a training run (resume continues it). */
function holdsARun(out: string): OptionError {
  return new OptionError(
    "resume",
    (name) =>
      `${out} already holds a training run (${RUN_FILES.checkpoint}): pass ${name} ` +
      `to continue it, or choose another run directory`,
  );
}

/**
 * Stage 5: the run's starting state: read from the checkpoint when resuming (settings checked,
 * metrics cut back to the checkpoint's step), else fresh (a new adapter, or the base weights).
 */
async function startOrResume(run: Run): Promise<RunState> {
  const { options, base, checkpointPath, metricsPath, note } = run;
  const hasCheckpoint = await pathExists(checkpointPath);
  if (hasCheckpoint && !options.resume) throw holdsARun(options.out);
  if (hasCheckpoint) {
    const saved = await readCheckpoint(checkpointPath, run.shapes, (state) => {
      if (state.base) checkIdentity(checkpointPath, state.base, base.identity, options.model);
      else {
        note(
          `${checkpointPath} was written by an older version: no base-model identity to check ` +
            `(make sure ${optionName("model")} is the model it was trained on)`,
        );
      }
      checkSameSettings(run, state.settings);
    });
    if (!saved.verified) note(`${checkpointPath} records no checksum: its data is not checked`);
    const { step, micro, tokens } = saved;
    const was = saved.settings.runtime as { threads?: number; ranks?: number } | undefined;
    if (was && was.threads !== run.runtime.threads) {
      note(
        `resuming with ${run.runtime.threads} threads where the run used ${was.threads}: the ` +
          `weights will not be bitwise those of an uninterrupted run`,
      );
    }
    const ranks = run.runtime.ranks ?? 1;
    if (was && (was.ranks ?? 1) !== ranks) {
      note(
        `resuming on ${ranks} rank(s) where the run used ${was.ranks ?? 1}: the same batches, ` +
          `the weights equal to float rounding, not bitwise`,
      );
    }
    const validation = (was as { validation?: Record<string, unknown> } | undefined)?.validation;
    const now = run.runtime.validation!;
    if (
      validation &&
      (validation.sha256 !== now.sha256 || validation.batches !== now.batches ||
        validation.every !== now.every)
    ) {
      note(
        `the validation records, ${optionName("valBatches")} or ${optionName("valEvery")} ` +
          `differ from the run's: val_loss after step ${step} is not measured as before it ` +
          `(the weights are unaffected)`,
      );
    }
    const metrics = await readMetrics(metricsPath, step);
    await writeFileAtomic(metricsPath, metricsText(metrics));
    note(`resuming at step ${step} of ${run.schedule.totalSteps}`);
    // The loss before training, where it was measured on the same validation batches.
    const initial = validation?.initialLoss;
    const sameValidation = validation?.sha256 === now.sha256 &&
      validation?.batches === now.batches;
    return {
      step,
      micro,
      tokens,
      rng: Rng.fromState(saved.rng),
      params: saved.params,
      moments: { m: saved.m, v: saved.v },
      metrics,
      resumed: true,
      ...(sameValidation && typeof initial === "number" ? { initialValLoss: initial } : {}),
    };
  }
  if (options.resume) note("no checkpoint to resume from: starting a new run");
  await writeFileAtomic(metricsPath, "");
  return freshState(run);
}

/**
 * Throws when the checkpoint's `settings` are not the run's (the data's hash, the model, the
 * method, the schedule...): the run cannot continue it. Runtime settings (threads, ranks) may
 * differ; they only cost bitwise equality.
 */
function checkSameSettings(run: Run, settings: Record<string, unknown>): void {
  const { runtime: _saved, ...comparable } = settings;
  // Before the records' hash, which holds the prefix too: a run trained before examples started
  // with the tokenizer's prefix would otherwise be told its dataset changed.
  const prefix = (ids: unknown) => JSON.stringify(Array.isArray(ids) ? ids : []);
  if (prefix(comparable.prefixIds) !== prefix(run.settings.prefixIds)) {
    const tokenizer = run.base.tokenizer;
    const names = [...tokenizer.prefix].map((id) => tokenizer.tokenString(id)).join("");
    throw new InputError(
      `cannot resume ${run.options.out}: ` +
        (comparable.prefixIds === undefined
          ? `it was trained before examples started with the tokenizer's ${names} (2026-12-07)`
          : `its examples started with token ids ${prefix(comparable.prefixIds)}, the ` +
            `tokenizer's start with ${prefix(run.settings.prefixIds)}`) +
        `; to train on from its weights, start a new run with ${goOnWith(run.options)}`,
    );
  }
  if (comparable.trainSha256 === undefined) {
    // Checkpoints of older versions record the record count only.
    run.note(`${run.checkpointPath} records no hash of its training data: the data is not checked`);
    comparable.trainSha256 = run.settings.trainSha256;
  } else if (comparable.trainSha256 !== run.settings.trainSha256) {
    throw new InputError(
      `cannot resume ${run.options.out}: the training records of ${run.options.data} are not those ` +
        `it was trained on (sha256 ${String(comparable.trainSha256).slice(0, 12)}... -> ` +
        `${String(run.settings.trainSha256).slice(0, 12)}...); restore that dataset, or train ` +
        `into a new ${optionName("out")}`,
    );
  }
  if (comparable.itemsSha256 === undefined) {
    // Checkpoints before 2026-12-07 do not record their items (entities.json's items, tokenized).
    comparable.itemsSha256 = run.settings.itemsSha256;
  }
  if (comparable.specialIds === undefined) {
    // Checkpoints before 2026-12-07 do not record the special tokens' ids.
    comparable.specialIds = run.settings.specialIds;
  }
  if (comparable.objective !== "sequence" && comparable.objective !== undefined) {
    // Recorded by runs before 2026-12-07, where it did nothing (no sequence spans): not a setting.
    delete comparable.sequenceMaxKeep;
  }
  const lora = comparable.lora as { targets?: unknown } | null | undefined;
  if (lora && Array.isArray(lora.targets)) {
    // Runs before 2026-12-07 kept the targets in the order given; they are a set.
    comparable.lora = {
      ...lora,
      targets: inTableOrder(loraTargetTable(run.base.config), lora.targets as string[]),
    };
  }
  const model = comparable.model as Record<string, unknown> | undefined;
  if (model && !("family" in model)) {
    // A GLM checkpoint from before every family shared one configuration records its shape
    // only; the base model's identity (checked above) stands for the rest.
    comparable.model = { ...(run.settings.model as Record<string, unknown>), ...model };
  }
  const differ = settingsDiffer(comparable, run.settings);
  if (differ) throw cannotResume(run.options, differ, comparable.schedule, run.schedule.totalSteps);
}

/** The options of a new run that trains on from the weights of the run in `options.out`. */
function goOnWith(options: TrainOptions): string {
  return options.lora
    ? `${optionName("adapter")} ${options.out}`
    // Full training goes on as full training (a trained model would default to LoRA).
    : `${optionName("full")} ${optionName("model")} ${options.out}`;
}

/** The refusal of a resume whose settings differ from the checkpoint's (`differ`). */
function cannotResume(
  options: TrainOptions,
  differ: string,
  savedSchedule: unknown,
  totalSteps: number,
): UsageError {
  const saved = savedSchedule as { totalSteps?: unknown } | undefined;
  // A longer schedule is another run (its rates differ from step 1): say how to go on.
  const longer = typeof saved?.totalSteps === "number" && saved.totalSteps < totalSteps
    ? `; to train on from its weights, start a new run with ${goOnWith(options)}`
    : "";
  return new UsageError(
    `cannot resume ${options.out} with different settings (${differ})${longer}`,
  );
}

/**
 * The resume's settings that the options alone decide (sizes, seed, optimizer, objective; the
 * schedule when steps are given), compared with the checkpoint's before the model loads and the
 * records are tokenized (minutes on large data). What needs the model or the data (LoRA, length,
 * records) is compared after, by checkSameSettings; a checkpoint it cannot read is left to it.
 */
async function checkResumeOptions(options: TrainOptions, sizes: RunSizes): Promise<void> {
  const path = join(options.out, RUN_FILES.checkpoint);
  let saved: Record<string, unknown>;
  try {
    const file = await SafetensorsFile.open(path);
    if (file.metadata.format !== CHECKPOINT_FORMAT) return;
    saved = JSON.parse(file.metadata.state ?? "").settings;
  } catch {
    return;
  }
  if (saved === null || typeof saved !== "object") return;
  const mine = optionSettings(options, sizes);
  const known: Record<string, unknown> = {};
  for (const key of ["seed", "objective", "taskWeights", "batchSize", "gradAccum", "adamw"]) {
    known[key] = mine[key];
  }
  if (options.steps !== undefined) known.schedule = scheduleFor(options, options.steps);
  const was: Record<string, unknown> = {};
  const now: Record<string, unknown> = {};
  if ("lora" in saved) {
    // The method first: LoRA against full training also changes the default rate, which would
    // otherwise be named as the difference. Two LoRA runs' details (rank, targets) need the
    // model and are compared after, by checkSameSettings.
    was.lora = saved.lora;
    now.lora = !options.lora ? null : saved.lora === null ? options.lora : saved.lora;
  }
  for (const [key, value] of Object.entries(known)) {
    // A setting older checkpoints do not record is not compared (as checkSameSettings).
    if (!(key in saved)) continue;
    was[key] = saved[key];
    now[key] = value;
  }
  // Recorded when set, on both sides.
  for (const key of ["trieSoftmax", "dropout"]) {
    was[key] = saved[key];
    now[key] = mine[key];
  }
  if (mine.objective === "sequence" && saved.objective === "sequence") {
    was.sequenceMaxKeep = saved.sequenceMaxKeep;
    now.sequenceMaxKeep = mine.sequenceMaxKeep;
  }
  const differ = settingsDiffer(was, now);
  if (differ) throw cannotResume(options, differ, saved.schedule, options.steps ?? 0);
}

/** The state of a new run: a new adapter (seeded), or the base weights; zero moments. */
function freshState(run: Run): RunState {
  const { base, sizes } = run;
  const method = initialMethodTensors(base.model);
  const params = base.start ? new Map(base.start) : base.lora
    ? new Map([
      ...initLora(base.config, base.lora, Rng.derive(sizes.seed, "train", "lora-init")),
      ...method,
    ])
    // Every weight, and the method's tensors where the checkpoint has none (the intra table).
    : new Map(
      [...run.shapes.keys()].map((name) => [name, base.weights.get(name) ?? method.get(name)!]),
    );
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

/**
 * Stage 5 of a data-parallel run: rank 0 starts or resumes (reading the run directory, as one
 * process does) and sends the state to the other ranks: step, data position, tokens and the
 * dropout generator's state, and, when resuming, the tensors and moments (the other ranks need
 * no access to the run directory). A new run's tensors are made on every rank from the seed.
 */
async function startRanks(run: Run, world: Collective): Promise<RunState> {
  const mine = await together(world, () => (run.root ? startOrResume(run) : undefined));
  const head = await broadcastJson(
    world,
    mine && {
      step: mine.step,
      micro: mine.micro,
      tokens: mine.tokens,
      rng: mine.rng.state(),
      resumed: mine.resumed,
    },
    0,
  );
  let state: RunState;
  if (mine) state = mine;
  else if (!head.resumed) state = freshState(run);
  else {
    const zeros = () =>
      new Map([...run.shapes].map(([name, shape]) => [name, new Float32Array(size(shape))]));
    state = {
      step: head.step,
      micro: head.micro,
      tokens: head.tokens,
      rng: Rng.fromState(head.rng),
      params: zeros(),
      moments: { m: zeros(), v: zeros() },
      metrics: [],
      resumed: true,
    };
  }
  if (head.resumed) {
    for (const map of [state.params, state.moments!.m, state.moments!.v]) {
      await broadcastFloats(world, [...run.shapes.keys()].map((name) => map.get(name)!), 0);
    }
  }
  await checkSameTensors(world, state.params.values(), "at the start");
  return state;
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Checks that every rank holds rank 0's trainable tensors (a hash of their bytes), so a rank
 * that drifted is an error instead of a silently different model.
 */
async function checkSameTensors(
  world: Collective,
  tensors: Iterable<Float32Array>,
  when: string,
): Promise<void> {
  const mine = hashFloats(tensors);
  const first = await broadcastJson(world, world.rank === 0 ? mine : undefined, 0);
  await together(world, () => {
    if (mine !== first) {
      throw new InputError(
        `the trainable tensors differ from rank 0's ${when} (hash ${mine} against ${first})`,
      );
    }
  });
}

/**
 * Checks at the start of a data-parallel run that every rank trains the same thing: rank 0's
 * settings, base model identity, records' hashes and schedule of validation and saves against
 * this rank's. A mismatch (another --model, --data or flag on one rank) ends every rank with the
 * first setting that differs.
 */
async function checkSameRun(run: Run, world: Collective): Promise<void> {
  const mine = {
    ...run.settings,
    base: run.base.identity,
    validSha256: run.data.validSha256,
    valBatches: run.sizes.valBatches,
    valEvery: run.sizes.valEvery,
    saveEvery: run.sizes.saveEvery,
    ranks: world.size,
    // Options rank 0 alone acts on: given to another rank only, they would be lost.
    resume: run.options.resume === true,
    force: run.options.force === true,
    merge: run.options.merge ?? null,
  };
  const first = await broadcastJson(world, world.rank === 0 ? mine : undefined, 0);
  await together(world, () => {
    const differ = settingsDiffer(first, JSON.parse(JSON.stringify(mine)));
    if (differ) {
      throw new UsageError(
        `model, data or flags differ from rank 0's (${differ}): every rank must run the same ` +
          `command on the same files`,
      );
    }
  });
}

/** The mean loss per loss token over the first validation batches; undefined without any. */
async function validationLoss(run: Run, engine: TrainEngine): Promise<number | undefined> {
  const { valStream } = run.data;
  if (!valStream) return undefined;
  const n = Math.min(run.sizes.valBatches, valStream.perEpoch);
  const { world } = run;
  const [sum, count] = await together(world, async () => {
    let sum = 0;
    let count = 0;
    for (let i = 0; i < n; i++) {
      run.options.onPhase?.(`validating: batch ${i + 1}/${n}`);
      const whole = valStream.batch(i);
      // A data-parallel run: this rank's rows of the batch; the ranks' sums are added below.
      const batch = world ? part(whole, world).batch : whole;
      if (!batch) continue;
      const k = lossTokens(batch);
      if (k === 0) continue;
      sum += (await engine.evaluate(batch)) * k;
      count += k;
    }
    return [sum, count];
  });
  if (!world) return count > 0 ? sum / count : undefined;
  const sums = Float64Array.of(sum, count);
  await world.allreduceSum(sums);
  return sums[1] > 0 ? sums[0] / sums[1] : undefined;
}

/**
 * This rank's rows of a global batch (undefined when it has none: a short last batch) and where
 * they sit in it.
 */
function part(batch: Batch, world: Collective): { batch?: Batch; share: BatchShare } {
  const [start, end] = shareOf(batch.batchSize, world.rank, world.size);
  return {
    batch: end > start ? sliceBatch(batch, start, end) : undefined,
    share: { globalBatchSize: batch.batchSize, length: batch.length, start },
  };
}

/**
 * The ranks' summed gradients: every rank's gradients and loss in one buffer (tensors in the
 * engine's order, then the loss), summed over the ranks in place.
 */
async function sumOverRanks(
  world: Collective,
  local: StepGradients,
  names: readonly string[],
): Promise<StepGradients> {
  let total = 1;
  for (const name of names) total += local.grads.get(name)!.length;
  const buffer = new Float32Array(total);
  let at = 0;
  for (const name of names) {
    const g = local.grads.get(name)!;
    buffer.set(g, at);
    at += g.length;
  }
  buffer[at] = local.loss;
  await world.allreduceSum(buffer);
  const grads = new Map<string, Float32Array>();
  at = 0;
  for (const name of names) {
    const n = local.grads.get(name)!.length;
    grads.set(name, buffer.subarray(at, at + n));
    at += n;
  }
  return { loss: buffer[at], grads };
}

/** Writes the run's outputs (adapter or model, loss chart) and then its checkpoint. */
async function saveRun(run: Run, engine: TrainEngine, state: RunState): Promise<void> {
  const { options, base } = run;
  const snap = engine.snapshot();
  if (base.lora) {
    await saveAdapter(options.out, {
      lora: base.lora,
      weights: snap.params,
      baseModel: options.model, // as the user named it (a hub id, a relative path)
      method: methodSettings(
        base.model,
        base.decoder.attention,
        base.itemTokens,
        base.maxLength,
        base.tokenizer.prefix,
      ),
      base: base.identity,
    }, base.config);
    // The base model's tokenizer goes with the adapter, so `infer --adapter` can check that
    // the model it is applied to tokenizes the same way.
    await writeFileAtomic(
      join(options.out, "tokenizer.json"),
      await Deno.readFile(base.tokenizerFile),
    );
  } else {
    await writeModelFiles(options.out, base.config, new Map([...base.weights, ...snap.params]), {
      addedRows: base.model.addedRows,
      attention: base.decoder.attention,
      tokenizerFile: base.tokenizerFile,
      itemTokens: base.itemTokens,
      trainedLength: base.maxLength,
      trainedPrefix: base.tokenizer.prefix,
    });
  }
  await writeFileAtomic(join(options.out, RUN_FILES.chart), lossChart(state.metrics));
  await writeCheckpoint(run.checkpointPath, {
    step: state.step,
    micro: state.micro,
    tokens: state.tokens,
    rng: state.rng.state(),
    settings: {
      ...run.settings,
      runtime: state.initialValLoss === undefined ? run.runtime : {
        ...run.runtime,
        validation: { ...run.runtime.validation!, initialLoss: state.initialValLoss },
      },
    },
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
  const bc = biasCorrections(t, adamw.beta1, adamw.beta2);
  const { world } = run;
  let result;
  if (!world) result = await engine.step(batches, scales, lr, bc, state.rng);
  else {
    // This rank's rows of each micro-batch, weighted by their share of the global step's loss
    // tokens: the ranks' weighted sums add up to the one process's gradient.
    const parts = batches.map((b) => part(b, world));
    const partScales = parts.map((p) => (p.batch && total > 0 ? lossTokens(p.batch) / total : 0));
    const local = await together(
      world,
      () =>
        engine.gradients(
          parts.map((p) => p.batch),
          partScales,
          state.rng,
          parts.map((p) => p.share),
        ),
    );
    const summed = await sumOverRanks(world, local, engine.params.map((p) => p.name));
    result = await together(world, () => engine.apply(summed.grads, summed.loss, lr, bc));
  }
  const finite = result;
  // On every rank alike (the summed gradients are the same), reported once as rank 0's.
  await together(world, async () => {
    if (!Number.isFinite(finite.loss) || !Number.isFinite(finite.gradNorm)) {
      const what = !Number.isFinite(finite.loss)
        ? `loss is ${finite.loss}`
        : `gradient norm is ${finite.gradNorm}`;
      throw await diverged(run, t, what);
    }
  });
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

/** The error that stops a run at `step` whose `what` is no longer finite. */
async function diverged(run: Run, step: number, what: string): Promise<TrainingDiverged> {
  const kept = await pathExists(run.checkpointPath)
    ? `the last good checkpoint is kept in ${run.checkpointPath}`
    : "no checkpoint was written yet";
  return new TrainingDiverged(
    `step ${step}: the ${what}; training stopped (${kept}; try a lower learning rate)`,
  );
}

/** Whether every value of `tensors` is finite. */
function allFinite(tensors: Iterable<Float32Array>): boolean {
  for (const t of tensors) {
    for (let i = 0; i < t.length; i++) if (!Number.isFinite(t[i])) return false;
  }
  return true;
}

/** Stage 6: the training loop: validate first (fresh runs), then step, log, validate and save. */
async function trainLoop(run: Run, engine: TrainEngine, state: RunState, summary: TrainSummary) {
  const { options, note } = run;
  const { totalSteps } = run.schedule;
  const { valEvery, saveEvery } = run.sizes;
  engine.load(state.params, state.moments?.m, state.moments?.v);
  if (state.step === 0 && run.data.valStream) {
    state.initialValLoss = await validationLoss(run, engine);
    if (state.initialValLoss !== undefined) {
      note(`val_loss before training ${state.initialValLoss.toFixed(4)}`);
    }
  }
  summary.initialValLoss = state.initialValLoss;
  while (state.step < totalSteps) {
    const line = await optimizerStep(run, engine, state);
    const { step } = state;
    const validateNow = step === totalSteps || (valEvery > 0 && step % valEvery === 0);
    if (validateNow) {
      const val = await validationLoss(run, engine);
      if (val !== undefined) {
        // The ranks' losses are summed: all of them meet the same value.
        await together(run.world, async () => {
          if (!Number.isFinite(val)) throw await diverged(run, step, `validation loss is ${val}`);
        });
        line.val_loss = val;
        summary.valLoss = val;
      }
    }
    state.metrics.push(line);
    if (Number.isNaN(summary.firstLoss)) summary.firstLoss = line.loss;
    summary.lastLoss = line.loss;
    const saveNow = step === totalSteps || step % saveEvery === 0;
    if (saveNow && run.world) {
      await checkSameTensors(run.world, engine.snapshot().params.values(), `after step ${step}`);
    }
    // Rank 0 alone writes; a failure there (a full disk) ends every rank.
    await together(run.world, async () => {
      if (!run.root) return;
      // Never saved: weights the update took past float's range (the loss, computed before the
      // update, was still finite). The ranks hold the same tensors (checked above).
      if (saveNow && !allFinite(engine.snapshot().params.values())) {
        throw await diverged(run, step, "update made weights that are not finite");
      }
      await Deno.writeTextFile(run.metricsPath, JSON.stringify(line) + "\n", { append: true });
      options.onStep?.(line, totalSteps);
      if (saveNow) await saveRun(run, engine, state);
    });
  }
  if (state.metrics.length > 0) {
    // The run's first and last losses, as the log has them: a resumed run reports the first
    // step's loss as the run it continues does, not the first this invocation took.
    summary.firstLoss = state.metrics[0].loss;
    summary.lastLoss = state.metrics[state.metrics.length - 1].loss;
  }
  // The run's last validation, though an earlier invocation measured it (a resumed run whose
  // steps since did not validate).
  for (let i = state.metrics.length - 1; summary.valLoss === undefined && i >= 0; i--) {
    summary.valLoss = state.metrics[i].val_loss;
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
  // A data-parallel run: rank 0 alone claims and writes the run (and merge) directory.
  const world = options.world && options.world.size > 1 ? options.world : undefined;
  const root = !world || world.rank === 0;
  const sizes = await together(world, () => runSizes(options, world?.size));
  const inputs = [options.data, options.model];
  const runDir = await together(world, () =>
    root
      ? claimRunDir(options.out, RUN_DIR_FILES, {
        command: "pretrain",
        force: options.force,
        inputs,
        recognize: isOlderRunDir,
      })
      : undefined);
  let merge: OutputClaim | undefined;
  try {
    // Refused at once, before the model loads and the data is tokenized (minutes on large data).
    await together(world, async () => {
      if (!root || options.resume) return;
      if (await pathExists(join(options.out, RUN_FILES.checkpoint))) throw holdsARun(options.out);
    });
    await together(world, async () => {
      if (root && options.resume) await checkResumeOptions(options, sizes);
      await checkWeightedTasks(options);
    });
    merge = await together(world, () =>
      root && options.merge
        ? claimOutputDir(options.merge, {
          command: "pretrain",
          option: "merge",
          force: options.force,
          inputs: [...inputs, options.out],
        })
        : undefined);
    return await trainClaimed(options, sizes, merge, world);
  } finally {
    await merge?.close();
    if (runDir) {
      const checkpoint = await pathExists(join(options.out, RUN_FILES.checkpoint)).catch(() =>
        true
      );
      await runDir.release(!checkpoint);
    }
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
  world: Collective | undefined,
): Promise<TrainSummary> {
  const root = !world || world.rank === 0;
  const note = (root ? options.onNote : undefined) ?? (() => {});
  const phase = (root ? options.onPhase : undefined) ?? (() => {});
  const { base, data, schedule } = await together(world, async () => {
    phase(`loading the base model ${options.model}`);
    const base = await loadBase(options);
    phase(`tokenizing the training records of ${options.data}`);
    const data = await loadRunData(options, sizes, base, note);
    const schedule = runSchedule(options, data.stream.perEpoch, sizes.gradAccum);
    const micro = schedule.totalSteps * sizes.gradAccum;
    if (options.steps === undefined && micro % data.stream.perEpoch !== 0) {
      // Whole optimizer steps: the last one reaches into the next epoch.
      note(
        `${schedule.totalSteps} steps of ${sizes.gradAccum} micro-batches are ` +
          `${(micro / data.stream.perEpoch).toFixed(2)} epochs (an epoch is ` +
          `${data.stream.perEpoch} micro-batches)`,
      );
    }
    return { base, data, schedule };
  });
  const run: Run = {
    options,
    sizes,
    base,
    data,
    schedule,
    settings: resumeSettings(options, sizes, base, data, schedule),
    runtime: {
      threads: options.threads ?? navigator.hardwareConcurrency ?? 1,
      ...(world ? { ranks: world.size } : {}),
      validation: {
        sha256: data.validSha256,
        batches: sizes.valBatches,
        every: sizes.valEvery,
      },
    },
    checkpointPath: join(options.out, RUN_FILES.checkpoint),
    metricsPath: join(options.out, RUN_FILES.metrics),
    shapes: new Map(
      trainableParams({ config: base.config, lora: base.lora, decoder: base.decoder }).map((p) =>
        [p.name, p.shape] as const
      ),
    ),
    note,
    world,
    root,
  };
  if (world) await checkSameRun(run, world);
  const state = world ? await startRanks(run, world) : await startOrResume(run);

  phase(`building the training graph (${base.lora ? "LoRA" : "every weight"}) and its session`);
  let made: TrainEngine | undefined;
  const engine = await together(world, async () =>
    made = await TrainEngine.create(
      {
        // Rotary tables for the run's length, not the model's maximum.
        config: { ...base.config, positionLimit: base.maxLength },
        weights: base.weights,
        lora: base.lora,
        decoder: base.decoder,
        trieLoss: options.trieSoftmax,
        dropout: options.dropout,
      },
      {
        gradAccum: sizes.gradAccum,
        adamw: sizes.adamw,
        device: options.device,
        threads: options.threads,
        validation: data.valStream !== undefined,
        session: weightSessionOptions(base.weights),
        // Gradients and the AdamW step apart, for the ranks to sum the gradients between them.
        split: world !== undefined,
        deviceId: options.deviceId,
      },
    )).catch(async (error) => {
      await made?.release();
      throw error;
    });
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
    await together(world, () => merge && writeMerged(base, engine, merge));
    summary.tokens = state.tokens;
    return summary;
  } finally {
    await engine.release();
  }
}

/** Writes the base model with the trained adapter merged in into `merge`'s directory. */
async function writeMerged(
  base: BaseModel,
  engine: TrainEngine,
  merge: OutputClaim,
): Promise<void> {
  const method = methodSettings(
    base.model,
    base.decoder.attention,
    base.itemTokens,
    base.maxLength,
    base.tokenizer.prefix,
  );
  const merged = mergeAdapter(base.weights, base.config, {
    lora: base.lora!,
    weights: engine.snapshot().params,
    method,
  });
  await writeMergedDecoder(merge.tmp, base.config, merged, {
    addedRows: base.model.addedRows,
    attention: base.decoder.attention,
    tokenizerFile: base.tokenizerFile,
    itemTokens: base.itemTokens,
    trainedLength: base.maxLength,
    trainedPrefix: base.tokenizer.prefix,
  }).catch((error) => Promise.reject(temporaryRenamed(error, merge.tmp, merge.path)));
  await merge.commit();
}
