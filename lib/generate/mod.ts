/**
 * Inference (docs/method.md section 7): decoding inside the answer's span with a cached part A and
 * the dynamic position rule; trie-constrained beam search over the items, candidate and rating
 * scoring, text generation; the predictor that answers task records, and model loading with a
 * merged adapter. Re-exports only.
 *
 * @module
 */

export type { PromptInput, ScoreInput, StepInput, StepModel } from "./step_model.ts";
export { rowPrompts } from "./step_model.ts";
// Types the generation's signatures use, so that a user of this module can name them.
export { EntityTrie, TRIE_ROOT } from "../collate/trie.ts";
export type { LeadingSpace, SpecialIds, TextTokenizer } from "../tokenizer/tokenizer.ts";
export {
  type Device,
  DEVICES,
  type OptimizationLevel,
  type ResolvedDevice,
  type SessionOptions,
  type WeightSessionOptions,
} from "../runtime/session.ts";
export type { ModelFamily } from "../model/family.ts";
export type { StepOutputs } from "../model/glm.ts";
export type { GlmConfig } from "../model/config.ts";
export type {
  Biases,
  BlockStyle,
  DecoderConfig,
  DecoderFamily,
  FamilyName,
  RopeScaling,
} from "../model/families/config.ts";
export type { Weights } from "../model/weights.ts";
export type { QuantBits, QuantizeOptions } from "../model/quantize.ts";
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
export type { AnyModel } from "../model/load_any.ts";
export type { PredictionLine, RankedEntity } from "../eval/predictions.ts";
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
export { CachedDecoder, type DecoderOptions } from "./decoder.ts";
export {
  buildPool,
  type Exclusion,
  exclusionOf,
  type ItemPool,
  type Pool,
} from "../collate/pool.ts";
export { type ItemSearchOptions, type RankedItems, searchItems } from "./items.ts";
export {
  type AnswerTokens,
  entityAnswer,
  rankByScore,
  ratingFromScores,
  type RatingPrediction,
  scoreAnswers,
  type ScoreOptions,
  textAnswer,
} from "./score.ts";
export { type GeneratedText, generateText, type TextOptions } from "./text.ts";
export {
  INFER_PROTOCOLS,
  INFER_TASKS,
  type InferLine,
  type InferProtocol,
  type InferTask,
  type PredictOptions,
  Predictor,
  type PredictorParts,
  type RerankOptions,
} from "./infer.ts";
export {
  DEFAULT_RERANK_WEIGHT,
  firstStageOf,
  type FirstStageRanking,
  fuseScores,
  readFirstStage,
  type ReadFirstStageOptions,
  readRerankTuning,
} from "./rerank.ts";
export {
  type InferenceDecoder,
  type LoadedForInference,
  loadForInference,
  type LoadOptions,
} from "./load.ts";
export {
  AUTO_WORKERS_BYTES,
  AUTO_WORKERS_MAX,
  autoWorkers,
  type AutoWorkersInput,
  openDecoders,
  type OpenDecodersOptions,
} from "./open_decoders.ts";
export {
  type DecoderSpec,
  openWorkerDecoders,
  WorkerDecoder,
  type WorkerDecodersOptions,
} from "./worker_decoder.ts";
// The whole inference run `infer` makes: a dataset's split answered into a predictions file.
export { type InferRunOptions, type InferRunSummary, runInference } from "./run.ts";
