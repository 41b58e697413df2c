/**
 * The identity of a base model, recorded in every checkpoint and adapter trained on it so that
 * resuming or applying them on another model is refused: the SHA-256 of its normalised config
 * (the loaded config object, keys sorted) and the SHA-256 of its weights (each tensor's name and
 * float32 data, names sorted, so the same weights stored as F16 or F32, or in another tensor
 * order or sharding, hash alike after loading). Any model family: GLM or a decoder.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { inputError } from "../errors.ts";
import type { DecoderConfig } from "./families/config.ts";
import { glmConfigOf } from "./config.ts";

/** A base model's identity: hashes of its config and weights (hex). */
export interface ModelIdentity {
  /** SHA-256 (hex) of the normalised config, keys sorted. */
  config_sha256: string;
  /** SHA-256 (hex) of every tensor's name and float32 data, names sorted. */
  weights_sha256: string;
}

/** `value` as JSON with every object's keys sorted (one text per value). */
function stableJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v) =>
      v && typeof v === "object" && !Array.isArray(v) && !ArrayBuffer.isView(v)
        ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]))
        : v,
  );
}

/** The identity of the model `config` (a loaded config of any family) + `weights`. */
export function modelIdentity(
  config: object,
  weights: ReadonlyMap<string, Float32Array>,
): ModelIdentity {
  // A GLM's identity is that of its own configuration, as recorded before GLM became a row of
  // the families table, so adapters and checkpoints made then still match.
  // The special-token ids (`tokenIds`) name tokens; they do not change the network, and models
  // loaded before they were read keep their identity.
  const { tokenIds: _, ...network } = config as DecoderConfig;
  const own = "family" in config && (config as DecoderConfig).family === "thudm_glm"
    ? glmConfigOf(config as DecoderConfig)
    : network;
  const configHash = createHash("sha256").update(stableJson(own)).digest("hex");
  const hash = createHash("sha256");
  const encoder = new TextEncoder();
  for (const name of [...weights.keys()].sort()) {
    const data = weights.get(name)!;
    hash.update(encoder.encode(name + "\0"));
    hash.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return { config_sha256: configHash, weights_sha256: hash.digest("hex") };
}

/** The metadata strings that record `identity` in a safetensors header. */
export function identityMetadata(identity: ModelIdentity): Record<string, string> {
  return {
    recsysllm_base_config_sha256: identity.config_sha256,
    recsysllm_base_weights_sha256: identity.weights_sha256,
  };
}

/** The identity a safetensors header records, or undefined when it records none. */
export function identityFromMetadata(meta: Record<string, string>): ModelIdentity | undefined {
  const config = meta.recsysllm_base_config_sha256;
  const weights = meta.recsysllm_base_weights_sha256;
  return typeof config === "string" && typeof weights === "string"
    ? { config_sha256: config, weights_sha256: weights }
    : undefined;
}

/**
 * Throws a one-line InputError naming `file` when `recorded` (what `file` was trained on) is not
 * `actual` (the model `modelDir` given now).
 */
export function checkIdentity(
  file: string,
  recorded: ModelIdentity,
  actual: ModelIdentity,
  modelDir: string,
): void {
  const short = (h: string) => h.slice(0, 12);
  if (recorded.config_sha256 !== actual.config_sha256) {
    throw inputError(
      file,
      undefined,
      `was trained on another base model: its config sha256 ${short(recorded.config_sha256)}… ` +
        `is not that of ${modelDir} (${short(actual.config_sha256)}…)`,
    );
  }
  if (recorded.weights_sha256 !== actual.weights_sha256) {
    throw inputError(
      file,
      undefined,
      `was trained on another base model: its weights sha256 ${short(recorded.weights_sha256)}… ` +
        `is not that of ${modelDir} (${short(actual.weights_sha256)}…)`,
    );
  }
}

/**
 * Throws a one-line InputError naming `file` and the tensor when any value of `tensors` is NaN or
 * infinite (a model or adapter that cannot produce a finite loss or score).
 */
export function checkFinite(file: string, tensors: Iterable<[string, Float32Array]>): void {
  for (const [name, data] of tensors) {
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (v - v !== 0) {
        throw inputError(
          file,
          undefined,
          `tensor "${name}" holds ${v} at index ${i}: every weight must be finite`,
        );
      }
    }
  }
}
