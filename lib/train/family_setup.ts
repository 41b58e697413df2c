/**
 * What training needs to know about a model's family, in one place so the trainer stays written
 * once: the LoRA targets (each family's names and default: `query_key_value` for GLM,
 * `q_proj,k_proj,v_proj` for the decoders), the decoder setup (attention rule and special-token
 * rows), the method tensors a fresh decoder run starts from (the intra-position table at zero,
 * the special rows at the mean of the embedding), and the settings a resumed run must match.
 *
 * @module
 */

import { OptionError } from "../errors.ts";
import { INTRA_TABLE } from "../model/families/config.ts";
import type { AttentionMode } from "../model/families/decoder.ts";
import type { AnyModel } from "../model/load_any.ts";
import type { MethodSettings } from "../model/adapter.ts";
import {
  DECODER_LORA_TARGETS,
  DEFAULT_DECODER_TARGETS,
  DEFAULT_LORA,
  LORA_TARGETS,
  type LoraConfig,
  loraModules,
  TARGET_ALIASES,
  targetName,
} from "../model/lora.ts";
import { methodShapes } from "../model/families/decoder.ts";
import type { TrainSetup } from "./train_graph.ts";

/**
 * Stage 1 (before any file is read): every LoRA target is a module name of some family (or an
 * alias of one); {@linkcode resolveLora} then checks them against the model's own family.
 */
export function checkLoraTargets(targets: readonly string[]): void {
  for (const t of targets) {
    const canonical = TARGET_ALIASES[t] ?? t;
    if (!(canonical in LORA_TARGETS) && !(canonical in DECODER_LORA_TARGETS)) {
      throw new OptionError(
        "loraTargets",
        (name) =>
          `${name}: unknown LoRA target "${canonical}" (GLM: ${
            Object.keys(LORA_TARGETS).join(", ")
          }, or qkv; decoders: ${Object.keys(DECODER_LORA_TARGETS).join(", ")})`,
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
  let targets: string[];
  try {
    if (model.kind === "glm") {
      targets = lora.targets.length ? lora.targets.map(targetName) : [...DEFAULT_LORA.targets];
    } else {
      targets = lora.targets.length ? lora.targets : [...DEFAULT_DECODER_TARGETS];
      for (const t of targets) {
        if (!(t in DECODER_LORA_TARGETS)) {
          throw new RangeError(
            `unknown LoRA target "${t}" for ${model.config.family} (targets: ${
              Object.keys(DECODER_LORA_TARGETS).join(", ")
            })`,
          );
        }
      }
    }
    const resolved = { ...lora, targets: [...new Set(targets)] };
    loraModules(model.config, resolved); // checks that the family has every module
    return resolved;
  } catch (error) {
    throw new OptionError("loraTargets", (name) => `${name}: ${(error as Error).message}`);
  }
}

/** The decoder part of a training setup (undefined for GLM). */
export function decoderSetup(
  model: AnyModel,
  attention: AttentionMode | undefined,
): TrainSetup["decoder"] {
  if (model.kind === "glm") {
    if (attention === "causal") {
      throw new OptionError(
        "attention",
        (name) => `${name} causal is for the decoder families; GLM uses prefix`,
      );
    }
    return undefined;
  }
  return { attention: attention ?? "causal", addedRows: model.addedRows };
}

/** The method settings saved with a decoder adapter (undefined for GLM). */
export function methodSettings(
  model: AnyModel,
  attention: AttentionMode | undefined,
): MethodSettings | undefined {
  if (model.kind === "glm") return undefined;
  return {
    attention: attention ?? "causal",
    intraRows: model.config.intraRows,
    addedRows: model.addedRows,
  };
}

/**
 * The method tensors a fresh decoder run starts from: the intra-position table (the model's, or
 * zeros) and the special rows (mean-initialised at load).
 */
export function initialMethodTensors(model: AnyModel): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  if (model.kind === "glm") return out;
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
  if (model.kind === "glm") {
    const g = model.config;
    return {
      vocabSize: g.vocabSize,
      hiddenSize: g.hiddenSize,
      numLayers: g.numLayers,
      numHeads: g.numHeads,
    };
  }
  return {
    family: model.config.family,
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: model.config.numKvHeads,
    headDim: model.config.headDim,
    addedRows: model.addedRows,
    attention: attention ?? "causal",
  };
}
