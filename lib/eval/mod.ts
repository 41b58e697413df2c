/**
 * Evaluation (docs/method.md section 10): the predictions format, the ranking protocols, per-task
 * scoring, one run over a dataset split, and its JSON, Markdown and SVG forms.
 *
 * @module
 */

export * from "./entities.ts";
// Types the evaluation's signatures use, so that a user of this module can name them.
export type { Dataset } from "../data/dataset.ts";
export type { Progress, ProgressOptions } from "../io/progress.ts";
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
export * from "./predictions.ts";
export * from "./protocol.ts";
export * from "./score.ts";
export * from "./run.ts";
export * from "./report.ts";
export * from "./fusion.ts";
