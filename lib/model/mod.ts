/**
 * Models of every family behind one seam: {@linkcode loadAnyModel} opens a model directory (THUDM's
 * GLM, Llama, Mistral, Qwen2, Qwen3, GLM-4) as one {@linkcode AnyModel} with a normalised
 * configuration; {@linkcode modelFamily} gives its decoding graphs; forward passes, LoRA and
 * adapters work on any of them alike. Which family a model is, is data (its configuration's
 * {@linkcode BlockStyle}), never a branch downstream.
 *
 * @example
 * ```ts
 * import { TextTokenizer } from "../tokenizer/mod.ts";
 * import { loadAnyModel, modelFamily } from "./mod.ts";
 *
 * const tokenizer = await TextTokenizer.load("runs/tiny-model/tokenizer.json");
 * // Its ids, and those its file defines (a checkpoint's padding rows past them are dropped).
 * const model = await loadAnyModel("runs/tiny-model", {
 *   tokenizerIds: tokenizer.vocabSize,
 *   tokenizerDefinedIds: tokenizer.definedIds,
 * });
 * const family = modelFamily(model, { addedRows: model.addedRows });
 * family.stepGraph("last"); // the cached step, whatever the family
 * ```
 *
 * @module
 */

export {
  type AnyModel,
  architectureOf,
  loadAnyModel,
  type LoadAnyOptions,
  maxModelLength,
  modelVocabSize,
} from "./load_any.ts";
export {
  glmFamily,
  type ModelFamily,
  modelFamily,
  type ModelFamilyOptions,
  weightSessionOptions,
} from "./family.ts";
export type {
  AttentionMode,
  DecoderLinearKind,
  GlmLinearKind,
  LinearContext,
  LinearHook,
  LinearKind,
  StepOutputs,
} from "./families/decoder.ts";
export {
  type Biases,
  type BlockStyle,
  DECODER_BLOCK,
  type DecoderConfig,
  type DecoderFamily,
  decoderWeightShapes,
  type FamilyName,
  GLM_BLOCK,
  type RopeScaling,
  TOKEN_ID_KEYS,
  type TokenIdKey,
  type TokenIds,
} from "./families/config.ts";
export {
  type AnyConfig,
  type GlmConfig,
  glmDecoderConfig,
  modelConfig,
  type Preset,
  presetConfig,
  type PresetName,
  PRESETS,
  type PresetShape,
} from "./config.ts";
export {
  DEFAULT_LORA,
  initLora,
  LORA_TARGET_TABLES,
  type LoraConfig,
  loraHook,
  type LoraHookContext,
  type LoraHookOptions,
  type LoraModule,
  loraModules,
  type LoraTargetTable,
  resolveLoraTargets,
} from "./lora.ts";
export {
  type Adapter,
  loadAdapter,
  type LoadAdapterOptions,
  mergeAdapter,
  type MethodSettings,
  saveAdapter,
} from "./adapter.ts";
export type { ModelIdentity } from "./identity.ts";
export type { Architecture } from "./families/registry.ts";
export { type ForwardResult, runForward } from "./forward.ts";
export type { JsonBatch } from "./batch_json.ts";
export type { QuantBits, QuantizeOptions } from "./quantize.ts";
export type { LoadedModel, Weights } from "./weights.ts";
// Types the models' signatures use, so that a user of this module can name them.
export { Rng } from "../random.ts";
export type { Batch } from "../collate/types.ts";
export {
  type Device,
  DEVICES,
  type OptimizationLevel,
  type SessionOptions,
  type WeightSessionOptions,
} from "../runtime/session.ts";
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
