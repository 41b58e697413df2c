/**
 * Training a model on a dataset: {@linkcode train} runs `pretrain` end to end (LoRA or full
 * training, validation, checkpoints and resuming, data-parallel ranks) and writes the run
 * directory; its options and defaults come with it.
 *
 * @module
 */

export {
  DEFAULT_TRAIN,
  train,
  TrainingDiverged,
  type TrainOptions,
  type TrainSummary,
} from "./trainer.ts";
export type { MetricsLine } from "./outputs.ts";
export { type ScheduleKind, SCHEDULES } from "./schedule.ts";
// Types the training's signatures use, so that a user of this module can name them.
export { InputError } from "../errors.ts";
export type { LoraConfig } from "../model/lora.ts";
export type { AttentionMode } from "../model/families/decoder.ts";
export { type Objective, OBJECTIVES } from "../collate/collator.ts";
export { type Device, DEVICES } from "../runtime/devices.ts";
export type { Collective } from "../parallel/collective.ts";
