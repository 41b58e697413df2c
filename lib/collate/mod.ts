/**
 * The collator's public surface: tokenizing records into units, the masking objectives, parts A
 * and B with 2D positions, truncation, batching, the entity trie and the dynamic position rule
 * (docs/method.md sections 4 to 7). Re-exports only.
 *
 * @module
 */

export type { Batch } from "./types.ts";
// Types the collator's signatures use, so that a user of this module can name them.
export { Rng } from "../random.ts";
export type { LeadingSpace, SpecialIds, TextTokenizer } from "../tokenizer/tokenizer.ts";
export {
  type AnswerSegment,
  type EntitySegment,
  type Segment,
  type Split,
  SPLITS,
  type Task,
  TASKS,
  type TextRecord,
  type TextSegment,
} from "../data/types.ts";
export {
  encodeEntity,
  itemTokenSummary,
  prefixLength,
  type SentencePiece,
  splitSentences,
  type TokenizedRecord,
  tokenizeRecord,
} from "./tokenize.ts";
export { type SpanOptions, SpanSampler } from "./spans.ts";
export {
  assembleExample,
  type CollatedExample,
  type ExampleObjective,
  type ExamplePlan,
} from "./example.ts";
export {
  Collator,
  type CollatorOptions,
  DEFAULT_MIX,
  encodePromptPartA,
  exampleRng,
  minimumPromptLength,
  type Objective,
  type ObjectiveMix,
  OBJECTIVES,
  promptKeepsHead,
  type PromptPartA,
} from "./collator.ts";
export { type BatchOptions, bucketByLength, makeBatch } from "./batch.ts";
export { EntityTrie, TRIE_ROOT } from "./trie.ts";
export {
  checkItemTokens,
  firstTokenOfItems,
  type ItemTokenDigest,
  itemTokenDigest,
  itemTokenName,
  type ItemTokenSource,
  loadTokenizerFor,
  withItemTokens,
} from "./item_tokens.ts";
export { TRIE_LOSS_MASKED, type TrieLossBias, trieLossBias } from "./trie_loss.ts";
export {
  dynamicIntraPositions,
  type IntraState,
  nextIntraState,
  SPAN_START,
} from "./dynamic_positions.ts";
