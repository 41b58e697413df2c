/**
 * What training needs to know about the model, in one place so the trainer stays written once,
 * for every family alike: the LoRA targets (each family's names and default from the targets
 * table, lib/model/lora.ts), the run's setup (attention rule and special-token rows), the method
 * tensors a fresh run starts from (a rotary family's intra-position table at zero, the special
 * rows at the mean of the embedding), and the settings a resumed run must match.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import { attentionOf, INTRA_TABLE } from "../model/families/config.ts";
import type { AttentionMode } from "../model/families/decoder.ts";
import type { AnyModel } from "../model/load_any.ts";
import type { MethodSettings } from "../model/adapter.ts";
import { LORA_TARGET_TABLES, type LoraConfig, resolveLoraTargets } from "../model/lora.ts";
import { methodShapes } from "../model/families/decoder.ts";
import type { ItemTokenDigest } from "../collate/item_tokens.ts";

/**
 * Stage 1 (before any file is read): every LoRA target is a module name of some family (or an
 * alias of one); {@linkcode resolveLora} then checks them against the model's own family.
 */
export function checkLoraTargets(targets: readonly string[]): void {
  const tables = Object.values(LORA_TARGET_TABLES);
  for (const t of targets) {
    const known = tables.some((table) => (table.aliases[t] ?? t) in table.targets);
    if (!known) {
      const lists = Object.entries(LORA_TARGET_TABLES).map(([names, table]) =>
        `${names === "thudm_glm" ? "GLM" : "decoders"}: ${Object.keys(table.targets).join(", ")}${
          Object.keys(table.aliases).length ? ", or qkv" : ""
        }`
      );
      throw new OptionError(
        "loraTargets",
        (name) => `${name}: unknown LoRA target "${t}" (${lists.join("; ")})`,
      );
    }
  }
}

/**
 * `lora` with its targets in the family's PEFT names: an empty list is the family's default;
 * unknown names or modules the family lacks are UsageErrors.
 */
export function resolveLora(model: AnyModel, lora: LoraConfig | null): LoraConfig | null {
  if (!lora) return null;
  try {
    return { ...lora, targets: resolveLoraTargets(model.config, lora.targets) };
  } catch (error) {
    throw new OptionError("loraTargets", (name) => `${name}: ${(error as Error).message}`);
  }
}

/** The run's setup of the model: its attention rule and special-token rows. */
export function decoderSetup(
  model: AnyModel,
  attention: AttentionMode | undefined,
): { attention: AttentionMode; addedRows: number } {
  return { attention: attentionOf(model.config, attention), addedRows: model.addedRows };
}

/**
 * The method settings saved with every adapter (`recsysllm_adapter.json`): the attention rule the
 * run trained with, the method's tensors (a rotary family's intra-position table, special-token
 * rows; none for a GLM without added rows, whose position tables are its own weights), the
 * digest of the dataset's item tokens (`itemTokens`) when the run had them, the longest
 * sequence it trained on (`maxLength`), which inference keeps to, and the tokenizer's prefix its
 * examples started with (`prefixIds`), where it has one.
 */
export function methodSettings(
  model: AnyModel,
  attention: AttentionMode | undefined,
  itemTokens?: ItemTokenDigest,
  maxLength?: number,
  prefixIds?: ArrayLike<number>,
): MethodSettings {
  return {
    attention: attentionOf(model.config, attention),
    intraRows: model.config.intraRows,
    addedRows: model.addedRows,
    ...(itemTokens ? { itemTokens } : {}),
    ...(maxLength ? { maxLength } : {}),
    ...(prefixIds?.length ? { prefixIds: Array.from(prefixIds) } : {}),
  };
}

/**
 * The method tensors a fresh run starts from: the intra-position table (the model's, or zeros)
 * and the special rows (mean-initialised at load).
 */
export function initialMethodTensors(model: AnyModel): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of methodShapes(model.config, model.addedRows)) {
    const known = model.weights.get(name);
    out.set(
      name,
      known ?? (name === INTRA_TABLE ? new Float32Array(shape[0] * shape[1]) : undefined)!,
    );
  }
  return out;
}

/** The model's part of the settings a resumed run must match. */
export function modelSettings(model: AnyModel, attention: AttentionMode | undefined) {
  const c = model.config;
  return {
    family: c.family,
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    addedRows: model.addedRows,
    attention: attentionOf(c, attention),
  };
}
