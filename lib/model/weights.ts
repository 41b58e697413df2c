/**
 * A GLM model's weights in memory: float32 arrays by their Hugging Face names (docs/method.md
 * section 8), loaded from `model.safetensors` with every name and shape checked against the config,
 * or drawn at random for a new model (normal with std 0.02, LayerNorm weights 1, biases 0).
 *
 * @module
 */

import { join } from "node:path";
import { inputError } from "../errors.ts";
import type { Rng } from "../random.ts";
import { type GlmConfig, readConfig, weightShapes } from "./config.ts";
import { checkFinite } from "./identity.ts";
import { SafetensorsFile, writeSafetensors } from "./safetensors.ts";

/** Weights by name, float32, row-major in the checkpoint's layout ([out, in] for linears). */
export type Weights = Map<string, Float32Array>;

/**
 * Reads every weight `config` needs from the safetensors file at `path`, checking shapes, the
 * checksum of the data when the file records one, and that every value is finite (each an
 * InputError naming the file).
 */
export async function loadWeights(path: string, config: GlmConfig): Promise<Weights> {
  const file = await SafetensorsFile.open(path);
  const shapes = weightShapes(config);
  const { tensors } = await file.float32All(shapes);
  const weights: Weights = new Map([...shapes.keys()].map((name) => [name, tensors.get(name)!]));
  checkFinite(path, weights);
  return weights;
}

/** A model directory's config and weights (`config.json`, `model.safetensors`). */
export interface LoadedModel {
  /** The model directory it was loaded from. */
  dir: string;
  /** The GLM configuration from `config.json`. */
  config: GlmConfig;
  /** Every weight by checkpoint name, float32. */
  weights: Weights;
}

/** Loads `dir/config.json` and `dir/model.safetensors`. */
export async function loadModel(dir: string): Promise<LoadedModel> {
  try {
    if (!(await Deno.stat(dir)).isDirectory) throw inputError(dir, undefined, "not a directory");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw inputError(dir, undefined, "model directory not found");
    }
    throw error;
  }
  const config = await readConfig(join(dir, "config.json"));
  const weights = await loadWeights(join(dir, "model.safetensors"), config);
  return { dir, config, weights };
}

/**
 * Fresh weights for `config`: every matrix and embedding normal with std 0.02 from `rng`,
 * LayerNorm weights 1, every bias 0. Drawn in checkpoint order, so a seed gives one model.
 */
export function randomWeights(config: GlmConfig, rng: Rng, std = 0.02): Weights {
  const weights: Weights = new Map();
  for (const [name, shape] of weightShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith("layernorm.weight")) data.fill(1);
    else if (!name.endsWith(".bias")) { for (let i = 0; i < n; i++) data[i] = std * rng.normal(); }
    weights.set(name, data);
  }
  return weights;
}

/** Writes `weights` to `path` as safetensors (atomically), with their shapes from `config`. */
export async function saveWeights(path: string, config: GlmConfig, weights: Weights) {
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, shape] of weightShapes(config)) {
    const data = weights.get(name);
    if (!data) throw new Error(`saveWeights: weight ${name} is missing`);
    tensors[name] = { shape, data };
  }
  await writeSafetensors(path, tensors, { format: "pt" });
}
