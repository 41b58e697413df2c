/**
 * Training checkpoints: ONE safetensors file, written atomically (temporary file, fsync, rename),
 * so a run killed at any moment leaves either the previous checkpoint or the new one, never a mix.
 * It holds the trainable tensors (`param.{name}`), both AdamW moments (`adam_m.{name}`,
 * `adam_v.{name}`), and in the header's `__metadata__` the JSON state: optimizer steps done, the
 * data position (micro-batches consumed), the random generator's state, tokens seen, and the run's
 * settings, which a resumed run must match, and the identity of the base model it was trained on
 * (lib/model/identity.ts). The header also records the SHA-256 of the tensor data and a SHA-256
 * of the state sealed to it ({@linkcode STATE_CHECKSUM_KEY}), both checked on every read, so a
 * corrupt or edited checkpoint (a `step` changed by hand, a state copied from another run) is
 * refused instead of resumed.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { inputError } from "../errors.ts";
import { checkFinite, type ModelIdentity } from "../model/identity.ts";
import {
  CHECKSUM_KEY,
  SafetensorsFile,
  type TensorsToWrite,
  writeSafetensors,
} from "../model/safetensors.ts";

/** The format tag in the checkpoint's metadata. */
export const CHECKPOINT_FORMAT = "recsysllm-train-checkpoint-1";

/**
 * The metadata key of the SHA-256 (hex) of the format tag, the state JSON and the tensor data's
 * checksum: the state cannot change, or move to other tensors, without the check failing.
 */
export const STATE_CHECKSUM_KEY = "recsysllm_state_sha256";

function stateSha256(state: string, tensorsChecksum: string): string {
  return createHash("sha256").update(`${CHECKPOINT_FORMAT}\n${state}\n${tensorsChecksum}`)
    .digest("hex");
}

/** Everything a run needs to continue exactly where it stopped. */
export interface CheckpointState {
  /** Optimizer steps done. */
  step: number;
  /** Micro-batches consumed: the data position (epoch and batch follow from it). */
  micro: number;
  /** Padded tokens processed so far. */
  tokens: number;
  /** State of the run's sequential random generator (LoRA dropout masks). */
  rng: number[];
  /** The settings that must be equal to resume (seed, batch size, targets, schedule, ...). */
  settings: Record<string, unknown>;
  /** Trainable tensors, by name. */
  params: Map<string, Float32Array>;
  /** AdamW first moments, by trainable name. */
  m: Map<string, Float32Array>;
  /** AdamW second moments, by trainable name. */
  v: Map<string, Float32Array>;
  /**
   * The base model the run trains on. Absent in checkpoints of older versions, which also lack
   * the checksum; {@linkcode readCheckpoint} reports both through `verified`.
   */
  base?: ModelIdentity;
  /** Set by {@linkcode readCheckpoint}: whether the file carried a checksum (and it matched). */
  verified?: boolean;
}

/** The shape of each trainable tensor, by name (what the checkpoint's tensors must have). */
export type ParamShapes = ReadonlyMap<string, readonly number[]>;

/** Writes `state` to `path` atomically. */
export async function writeCheckpoint(
  path: string,
  state: CheckpointState,
  shapes: ParamShapes,
): Promise<void> {
  const tensors: TensorsToWrite = {};
  for (const [name, shape] of shapes) {
    for (
      const [prefix, map] of [["param", state.params], ["adam_m", state.m], [
        "adam_v",
        state.v,
      ]] as const
    ) {
      const data = map.get(name);
      if (!data) throw new Error(`writeCheckpoint: ${prefix} of ${name} is missing`);
      tensors[`${prefix}.${name}`] = { shape, data };
    }
  }
  const meta = {
    step: state.step,
    micro: state.micro,
    tokens: state.tokens,
    rng: state.rng,
    settings: state.settings,
    base: state.base,
  };
  const stateJson = JSON.stringify(meta);
  await writeSafetensors(path, tensors, (checksum) => ({
    format: CHECKPOINT_FORMAT,
    state: stateJson,
    [STATE_CHECKSUM_KEY]: stateSha256(stateJson, checksum),
  }));
}

/**
 * Reads the checkpoint at `path`, checking every trainable tensor of `shapes` is there with its
 * shape. Problems are InputErrors naming the file. `checkState`, when given, sees the state
 * (settings, step, base model; no tensors yet) before the tensors are read: a run resumed with
 * other settings (another LoRA rank, full training) is told so, not that a tensor has another
 * shape.
 */
export async function readCheckpoint(
  path: string,
  shapes: ParamShapes,
  checkState?: (state: CheckpointState) => void,
): Promise<CheckpointState> {
  const file = await SafetensorsFile.open(path);
  if (file.metadata.format !== CHECKPOINT_FORMAT || !file.metadata.state) {
    throw inputError(path, undefined, `not a training checkpoint of this toolkit`);
  }
  const sealed = file.metadata[STATE_CHECKSUM_KEY];
  const tensorsChecksum = file.metadata[CHECKSUM_KEY];
  if (
    sealed !== undefined &&
    (typeof tensorsChecksum !== "string" ||
      sealed !== stateSha256(file.metadata.state, tensorsChecksum))
  ) {
    throw inputError(
      path,
      undefined,
      `the checkpoint's training state does not match its checksum (edited or corrupt): ` +
        `resume from an intact checkpoint, or start the run again in a new directory`,
    );
  }
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(file.metadata.state);
  } catch {
    throw inputError(path, undefined, `the checkpoint's state is not valid JSON`);
  }
  const { step, micro, tokens, rng, settings, base } = meta as Record<string, never>;
  if (
    !Number.isInteger(step) || !Number.isInteger(micro) || typeof tokens !== "number" ||
    !Array.isArray(rng) || typeof settings !== "object"
  ) {
    throw inputError(path, undefined, `the checkpoint's state is incomplete`);
  }
  const state: CheckpointState = {
    step,
    micro,
    tokens,
    rng,
    settings,
    params: new Map(),
    m: new Map(),
    v: new Map(),
    base: base ?? undefined,
  };
  checkState?.(state);
  const wanted = new Map<string, readonly number[]>();
  for (const [name, shape] of shapes) {
    for (const prefix of ["param", "adam_m", "adam_v"]) wanted.set(`${prefix}.${name}`, shape);
  }
  const { tensors, verified } = await file.float32All(wanted);
  // Checkpoints of older versions have no sealed state: they count as unverified.
  state.verified = verified && sealed !== undefined;
  for (const name of shapes.keys()) {
    state.params.set(name, tensors.get(`param.${name}`)!);
    state.m.set(name, tensors.get(`adam_m.${name}`)!);
    state.v.set(name, tensors.get(`adam_v.${name}`)!);
  }
  checkFinite(path, [...state.params, ...state.m, ...state.v]);
  return state;
}

/** `value` as JSON with every object's keys sorted: settings given in another order agree. */
function canonicalJson(value: unknown): string | undefined {
  return JSON.stringify(
    value,
    (_key, v) =>
      v !== null && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
  );
}

/**
 * The first setting in which `saved` and `current` differ, as `name: saved -> current`, or
 * undefined when they agree (compared as JSON, the keys of objects in any order:
 * `{"profile":2,"sequential":1}` is `{"sequential":1,"profile":2}`).
 */
export function settingsDiffer(
  saved: Record<string, unknown>,
  current: Record<string, unknown>,
): string | undefined {
  const keys = new Set([...Object.keys(saved), ...Object.keys(current)]);
  for (const key of keys) {
    const a = canonicalJson(saved[key]);
    const b = canonicalJson(current[key]);
    if (a !== b) return `${key}: ${a ?? "(unset)"} -> ${b ?? "(unset)"}`;
  }
  return undefined;
}
