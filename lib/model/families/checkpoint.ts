/**
 * Decoder checkpoints in the Hugging Face layout: `config.json` plus `model.safetensors` or the
 * shards listed by `model.safetensors.index.json`, tensors in F32, F16 or BF16. Loading reads one
 * tensor at a time and converts it to float32, so peak memory stays near one float32 copy of the
 * model; every expected name and shape is checked, and each problem (a missing shard or tensor,
 * a wrong shape, a bad index) is a one-line InputError naming the file and key. Writing streams
 * tensor by tensor in F32, F16 or BF16 (round to nearest even), optionally in shards with an
 * index, as `save_pretrained` does. Pickles are never read.
 *
 * @module
 */

import { join } from "node:path";
import { inputError } from "../../errors.ts";
import { readJsonFile } from "../../io/fs.ts";
import { checkFinite } from "../identity.ts";
import { SafetensorsFile } from "../safetensors.ts";
import type { Weights } from "../weights.ts";
import { type DecoderConfig, decoderWeightShapes, INTRA_TABLE } from "./config.ts";
import { parseDecoderConfig } from "./registry.ts";

/** The checkpoint's files inside a model directory. */
export const CHECKPOINT_FILES = {
  config: "config.json",
  single: "model.safetensors",
  index: "model.safetensors.index.json",
} as const;

// A checkpoint's files may be links (a Hugging Face hub snapshot): `stat` follows them, so a
// link whose target is missing counts as missing.
async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Reads and normalises `dir/config.json` of a decoder family. */
export async function readDecoderConfig(dir: string): Promise<DecoderConfig> {
  const path = join(dir, CHECKPOINT_FILES.config);
  return parseDecoderConfig(await readJsonFile(path), path);
}

/** Which file of the checkpoint holds each tensor (and whether the checkpoint lists it). */
async function tensorFiles(
  dir: string,
): Promise<((name: string) => string) & { lists?: (name: string) => boolean }> {
  const single = join(dir, CHECKPOINT_FILES.single);
  if (await exists(single)) return () => single;
  const indexPath = join(dir, CHECKPOINT_FILES.index);
  if (!(await exists(indexPath))) {
    throw inputError(
      dir,
      undefined,
      `neither ${CHECKPOINT_FILES.single} nor ${CHECKPOINT_FILES.index} is there ` +
        "(only safetensors checkpoints are read)",
    );
  }
  const index = await readJsonFile(indexPath) as Record<string, unknown>;
  const map = index?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw inputError(indexPath, undefined, `"weight_map" must be an object`);
  }
  const files = new Map<string, string>();
  for (const [name, file] of Object.entries(map as Record<string, unknown>)) {
    if (typeof file !== "string" || file.includes("/") || file.includes("\\")) {
      throw inputError(indexPath, undefined, `"weight_map.${name}" must be a file name`);
    }
    files.set(name, file);
  }
  const fileOf = (name: string) => {
    const file = files.get(name);
    if (!file) throw inputError(indexPath, undefined, `tensor "${name}" is not in "weight_map"`);
    return join(dir, file);
  };
  return Object.assign(fileOf, { lists: (name: string) => files.has(name) });
}

/** Options of {@linkcode loadDecoderWeights}. */
export interface LoadWeightsOptions {
  /** Called after each tensor with its name and the count so far. */
  progress?: (name: string, done: number, total: number) => void;
}

/**
 * Reads every weight `config` needs from the checkpoint in `dir` (single file or shards), one
 * tensor at a time, as float32. Tensors the model does not use (an `lm_head.weight` beside tied
 * embeddings, rotary buffers) are not read. A NaN or infinite value is an InputError naming the
 * file and tensor, as for GLM's weights and adapters (such a model cannot give a finite loss or
 * score).
 */
export async function loadDecoderWeights(
  dir: string,
  config: DecoderConfig,
  options: LoadWeightsOptions = {},
): Promise<Weights> {
  const fileOf = await tensorFiles(dir);
  const opened = new Map<string, SafetensorsFile>();
  const weights: Weights = new Map();
  const shapes = decoderWeightShapes(config);
  let done = 0;
  for (const [name, shape] of shapes) {
    const path = fileOf(name);
    let file = opened.get(path);
    if (!file) {
      if (!(await exists(path))) {
        throw inputError(path, undefined, `file not found (it should hold tensor "${name}")`);
      }
      file = await SafetensorsFile.open(path);
      opened.set(path, file);
    }
    const data = await file.float32(name, shape);
    checkFinite(path, [[name, data]]);
    weights.set(name, data);
    options.progress?.(name, ++done, shapes.size);
  }
  // A merged model (`pretrain --merge`) carries its trained intra-position table.
  const listed = fileOf.lists ? fileOf.lists(INTRA_TABLE) : true;
  if (listed) {
    const path = fileOf(INTRA_TABLE);
    const file = opened.get(path) ?? await SafetensorsFile.open(path);
    if (file.has(INTRA_TABLE)) {
      const intra = await file.float32(INTRA_TABLE, [config.intraRows, config.hiddenSize]);
      checkFinite(path, [[INTRA_TABLE, intra]]);
      weights.set(INTRA_TABLE, intra);
    }
  }
  return weights;
}

/** A decoder model directory's config and weights. */
export interface LoadedDecoder {
  dir: string;
  config: DecoderConfig;
  weights: Weights;
}

/** Loads `dir/config.json` and its safetensors checkpoint. */
export async function loadDecoder(
  dir: string,
  options: LoadWeightsOptions = {},
): Promise<LoadedDecoder> {
  const config = await readDecoderConfig(dir);
  return { dir, config, weights: await loadDecoderWeights(dir, config, options) };
}

// ---- writing -------------------------------------------------------------------------------------

/** The float formats a checkpoint may be written in. */
export type FloatFormat = "F32" | "F16" | "BF16";

const F32_BUF = new Float32Array(1);
const U32_BUF = new Uint32Array(F32_BUF.buffer);

/** float32 -> bfloat16 bits, rounding to nearest even (NaN stays NaN). */
export function toBf16Bits(x: number): number {
  F32_BUF[0] = x;
  const bits = U32_BUF[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return (bits >>> 16) | 0x40;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 -> IEEE half bits, rounding to nearest even. */
export function toF16Bits(x: number): number {
  F32_BUF[0] = x;
  const bits = U32_BUF[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let out = mant >>> shift;
    if (rest > half || (rest === half && (out & 1))) out++;
    return sign | out;
  }
  let out = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (out & 1))) out++;
  return sign | out;
}

function encodeFloats(data: Float32Array, format: FloatFormat): Uint8Array {
  if (format === "F32") return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint16Array(data.length);
  const convert = format === "BF16" ? toBf16Bits : toF16Bits;
  for (let i = 0; i < data.length; i++) out[i] = convert(data[i]);
  return new Uint8Array(out.buffer);
}

/** One tensor to write; `data` is called when the tensor is written (so it can be drawn lazily). */
export interface TensorSource {
  name: string;
  shape: number[];
  data: () => Float32Array;
}

async function writeShard(path: string, tensors: TensorSource[], format: FloatFormat) {
  const bytesPer = format === "F32" ? 4 : 2;
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1) * bytesPer;
    header[t.name] = { dtype: format, shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerBytes = new Uint8Array(json.length + ((8 - (json.length % 8)) % 8)).fill(0x20);
  headerBytes.set(json);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    const write = async (bytes: Uint8Array) => {
      let at = 0;
      while (at < bytes.length) at += await file.write(bytes.subarray(at));
    };
    await write(prefix);
    await write(headerBytes);
    for (const t of tensors) {
      const data = t.data();
      const n = t.shape.reduce((a, b) => a * b, 1);
      if (data.length !== n) {
        throw new Error(`tensor ${t.name}: ${data.length} values for shape [${t.shape}]`);
      }
      await write(encodeFloats(data, format));
    }
  } finally {
    file.close();
  }
}

/** Options of {@linkcode writeCheckpoint}. */
export interface WriteCheckpointOptions {
  /** Default BF16, as published checkpoints are. */
  format?: FloatFormat;
  /** Split into shards of at most this many bytes each (with an index); default: one file. */
  shardBytes?: number;
}

/**
 * Writes `tensors` into `dir` (which must exist) as `model.safetensors`, or as
 * `model-0000k-of-0000n.safetensors` shards with `model.safetensors.index.json`. Each tensor's
 * data is produced and encoded only when it is written.
 */
export async function writeCheckpoint(
  dir: string,
  tensors: TensorSource[],
  options: WriteCheckpointOptions = {},
): Promise<string[]> {
  const format = options.format ?? "BF16";
  const bytesPer = format === "F32" ? 4 : 2;
  if (!options.shardBytes) {
    await writeShard(join(dir, CHECKPOINT_FILES.single), tensors, format);
    return [CHECKPOINT_FILES.single];
  }
  const shards: TensorSource[][] = [[]];
  let size = 0;
  let total = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1) * bytesPer;
    if (size > 0 && size + n > options.shardBytes) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(t);
    size += n;
    total += n;
  }
  const pad = (k: number) => String(k).padStart(5, "0");
  const names = shards.map((_, k) => `model-${pad(k + 1)}-of-${pad(shards.length)}.safetensors`);
  const weightMap: Record<string, string> = {};
  for (let k = 0; k < shards.length; k++) {
    await writeShard(join(dir, names[k]), shards[k], format);
    for (const t of shards[k]) weightMap[t.name] = names[k];
  }
  const index = { metadata: { total_size: total }, weight_map: weightMap };
  await Deno.writeTextFile(
    join(dir, CHECKPOINT_FILES.index),
    JSON.stringify(index, null, 2) + "\n",
  );
  return [...names, CHECKPOINT_FILES.index];
}
