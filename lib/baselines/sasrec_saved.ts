/**
 * A trained SASRec as a file (`eval --save-baselines DIR` writes `DIR/sasrec.safetensors`), so a
 * later eval ranks with it instead of training it again (`eval --sasrec-model FILE`): the
 * minutes of training are spent once for every split and predictions file that ranks with the
 * same model.
 *
 * The file holds every weight of the model and, in its metadata, what makes it this model: its
 * size, the SHA-256 of the dataset's item ids (pool order: the model's item numbering) and of the
 * training sequences it learned (each user and their items, in order), and its training settings.
 * A saved model is used only where it learned what the eval's own SASRec would learn (the same
 * items, the same sequences): another dataset, split or refit is refused, so a loaded SASRec never
 * ranks what it was not trained for. Its training settings are the file's (recorded, and shown).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { inputError, optionName } from "../errors.ts";
import { SafetensorsFile, writeSafetensors } from "../model/safetensors.ts";
import { type SasrecConfig, sasrecShapes } from "../sasrec/model.ts";
import type { TrainedSasrec } from "../sasrec/train.ts";

/** The metadata key that marks a saved SASRec (its value: the JSON of SavedSasrecInfo). */
export const SAVED_SASREC_KEY = "recsysllm_sasrec";

/** What a saved SASRec says about itself. */
export interface SavedSasrecInfo {
  /** The model's size. */
  config: SasrecConfig;
  /** SHA-256 (hex) of the JSON array of the item ids in pool order (the model's numbering). */
  item_ids_sha256: string;
  /** SHA-256 (hex) of the training sequences ({@linkcode trainedOnSha256}). */
  trained_on_sha256: string;
  /** Users whose sequences it learned. */
  users: number;
  /** The epoch whose weights these are. */
  best_epoch: number;
  /** Whether it is the refit for the test split (trained on the validation items too). */
  refit: boolean;
  /**
   * Whether its histories already held the validation items (a refit dataset with tuning users:
   * every user's but theirs), so no refit was made.
   */
  learned_validation: boolean;
  /** The training settings and seed it was trained with (for the record). */
  settings: Record<string, unknown>;
}

/**
 * The SHA-256 (hex) of training sequences: each user id and their item numbers, in order.
 *
 * @example
 * ```ts
 * trainedOnSha256(["u1"], [Int32Array.of(3, 1)]) === trainedOnSha256(["u1"], [Int32Array.of(3, 1)]);
 * ```
 */
export function trainedOnSha256(
  users: readonly string[],
  sequences: readonly ArrayLike<number>[],
): string {
  const hash = createHash("sha256");
  users.forEach((user, i) => hash.update(`${JSON.stringify(user)}:${Array.from(sequences[i])}\n`));
  return hash.digest("hex");
}

/**
 * Writes `model` with `info` (less the config, taken from the model) to `path` (the caller's
 * claimed temporary file; lib/io/safe_output.ts).
 *
 * @example
 * ```ts
 * import type { TrainedSasrec } from "../sasrec/train.ts";
 *
 * declare const model: TrainedSasrec;
 * await writeSavedSasrec("runs/base/sasrec.safetensors.tmp", model, {
 *   item_ids_sha256: "...",
 *   trained_on_sha256: "...",
 *   users: 100,
 *   best_epoch: model.bestEpoch,
 *   refit: false,
 *   learned_validation: false,
 *   settings: { epochs: 200, seed: 1 },
 * });
 * ```
 */
export async function writeSavedSasrec(
  path: string,
  model: TrainedSasrec,
  info: Omit<SavedSasrecInfo, "config">,
): Promise<void> {
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [name, shape] of sasrecShapes(model.config)) {
    tensors[name] = { shape, data: model.weights.get(name)! };
  }
  const meta: SavedSasrecInfo = { config: model.config, ...info };
  await writeSafetensors(path, tensors, { [SAVED_SASREC_KEY]: JSON.stringify(meta) });
}

/**
 * Reads a saved SASRec: its info and weights. A file that is not one, or whose tensors do not
 * match its size, is an InputError naming it.
 *
 * @example
 * ```ts
 * const { info, weights } = await readSavedSasrec("runs/base/sasrec.safetensors");
 * info.config.hidden; // 64
 * weights.get("item_embedding")!.length; // (items + 1) * 64
 * ```
 */
export async function readSavedSasrec(
  path: string,
): Promise<{ info: SavedSasrecInfo; weights: Map<string, Float32Array> }> {
  const { file, info, shapes } = await openSaved(path);
  const { tensors } = await file.float32All(shapes);
  return { info, weights: tensors };
}

/**
 * What a saved SASRec says about itself (its header only; the weights are not read): errors as
 * {@linkcode readSavedSasrec}'s.
 *
 * @example
 * ```ts
 * const info = await savedSasrecInfo("runs/base/sasrec.safetensors");
 * info.best_epoch; // 35
 * ```
 */
export async function savedSasrecInfo(path: string): Promise<SavedSasrecInfo> {
  return (await openSaved(path)).info;
}

async function openSaved(path: string) {
  const file = await SafetensorsFile.open(path);
  let info: SavedSasrecInfo;
  try {
    info = JSON.parse(file.metadata[SAVED_SASREC_KEY] ?? "");
  } catch {
    info = undefined as unknown as SavedSasrecInfo;
  }
  if (typeof info?.config !== "object" || info.config === null) {
    throw inputError(
      path,
      undefined,
      `not a saved SASRec (eval's ${optionName("saveBaselines")} DIR writes ` +
        "DIR/sasrec.safetensors when SASRec is among the baselines)",
    );
  }
  let shapes;
  try {
    shapes = sasrecShapes(info.config);
  } catch (error) {
    throw inputError(path, undefined, `its SASRec size is not valid: ${(error as Error).message}`);
  }
  return { file, info, shapes };
}
