/**
 * Baselines that `eval` scores beside a model (docs/method.md section 10): most-popular, item-kNN,
 * random, SASRec and a rating bias model, each producing predictions in the format of `infer`.
 *
 * @module
 */

export * from "./baseline.ts";
// Types the baselines' signatures use, so that a user of this module can name them.
export { EntityIndex } from "../eval/entities.ts";
export { type Protocol, PROTOCOLS } from "../eval/protocol.ts";
export type { EvalTask } from "../eval/score.ts";
export type { PredictionLine, RankedEntity } from "../eval/predictions.ts";
export type { SasrecConfig } from "../sasrec/model.ts";
export type {
  CurvePoint,
  SasrecOptions,
  SasrecTrainOptions,
  TrainedSasrec,
} from "../sasrec/train.ts";
export {
  readSavedSasrec,
  type SavedSasrecInfo,
  trainedOnSha256,
  writeSavedSasrec,
} from "./sasrec_saved.ts";
export type { Dataset } from "../data/dataset.ts";
export type { Progress, ProgressOptions } from "../io/progress.ts";
export type {
  Attribute,
  Attributes,
  Dim,
  DType,
  Graph,
  IntsOrValue,
  Node,
  NodeOptions,
  Shape,
  TensorData,
  TypedArray,
  Value,
} from "../onnx/graph.ts";
export { type Device, DEVICES } from "../runtime/devices.ts";
export {
  type AnswerSegment,
  type CandidateLine,
  type EntityEntry,
  type EntitySegment,
  type Manifest,
  type Segment,
  type Split,
  SPLITS,
  type Task,
  TASKS,
  type TemplateInfo,
  type TextRecord,
  type TextSegment,
} from "../data/types.ts";
export * from "./histories.ts";
export * from "./itemknn.ts";
export * from "./popularity.ts";
export * from "./rating.ts";
export * from "./load.ts";
export * from "./sasrec.ts";
export * from "./mf.ts";
export * from "./retrieval.ts";
// The whole evaluation `eval` makes: predictions and baselines scored, baselines saved.
export { type EvalRunOptions, runEvaluation } from "./run.ts";
