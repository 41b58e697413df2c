/**
 * Inference (docs/method.md section 7): decoding inside the answer's span with a cached part A and
 * the dynamic position rule; trie-constrained beam search over the items, candidate and rating
 * scoring, text generation; the predictor that answers task records, and model loading with a
 * merged adapter. Re-exports only.
 *
 * @module
 */

export type { PromptInput, ScoreInput, StepInput, StepModel } from "./step_model.ts";
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
} from "./infer.ts";
export { type LoadedForInference, loadForInference, type LoadOptions } from "./load.ts";
