/**
 * The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
 * naming each tensor's dtype, shape and byte range, then the raw little-endian data. Reading takes
 * F32, F16 and BF16 (converted to Float32Array) plus F64/I32/I64 as they are; writing takes F32
 * (and F64/I32/I64 for checkpoints). Tensors are read lazily from the file, so opening a large
 * checkpoint reads only its header. No pickles, ever: this is the only weight format.
 *
 * Every problem is an {@linkcode InputError} naming the file: a bad header, a missing tensor, a
 * tensor of the wrong shape, a dtype the model does not take.
 *
 * @module
 */

import { inputError } from "../errors.ts";
import { createHash } from "node:crypto";
import { writeFileAtomic } from "../io/atomic.ts";
import type { TensorData } from "../onnx/graph.ts";

/** The dtypes safetensors files may hold (those this module reads are listed in READABLE). */
export type SafetensorsDType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "BOOL";

const BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

const FLOAT_READABLE = ["F32", "F16", "BF16"] as const;

/** One tensor's entry in the header. */
export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Byte offset of the data from the start of the file. */
  start: number;
  /** Byte length of the data. */
  length: number;
}

/** Header size limit, as the reference implementation has it (guards against garbage files). */
const MAX_HEADER = 100_000_000;

function parseHeader(label: string, headerBytes: Uint8Array, dataLength: number) {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (error) {
    throw inputError(label, undefined, `bad safetensors header: ${(error as Error).message}`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw inputError(label, undefined, "bad safetensors header: not a JSON object");
  }
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  const dataStart = 8 + headerBytes.length;
  const ranges: [number, number, string][] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      // Optional strings; some writers put null there.
      if (raw === null) continue;
      if (typeof raw !== "object" || Array.isArray(raw)) {
        throw inputError(label, undefined, "bad safetensors header: __metadata__ is not an object");
      }
      const checksum = (raw as Record<string, unknown>)[CHECKSUM_KEY];
      if (checksum !== undefined && typeof checksum !== "string") {
        // Dropped with the other non-strings, the data would be read unchecked without a word.
        throw inputError(
          label,
          undefined,
          `bad safetensors header: __metadata__.${CHECKSUM_KEY} is not a string`,
        );
      }
      metadata = Object.fromEntries(
        Object.entries(raw as Record<string, unknown>).filter(([, v]) => typeof v === "string"),
      ) as Record<string, string>;
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const bad = (problem: string) =>
      inputError(label, undefined, `bad safetensors header: tensor "${name}" ${problem}`);
    if (typeof e !== "object" || e === null) throw bad("is not an object");
    if (typeof e.dtype !== "string" || !(e.dtype in BYTES)) {
      throw bad(`has unknown dtype ${JSON.stringify(e.dtype)}`);
    }
    if (
      !Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)
    ) throw bad("has no valid shape");
    const offsets = e.data_offsets;
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((d) => Number.isInteger(d) && d >= 0) || offsets[1] < offsets[0]
    ) throw bad("has no valid data_offsets");
    const numel = (e.shape as number[]).reduce((a, b) => a * b, 1);
    const length = offsets[1] - offsets[0];
    if (length !== numel * BYTES[e.dtype]) {
      throw bad(`has ${length} bytes for shape [${e.shape.join(", ")}] of ${e.dtype}`);
    }
    if (offsets[1] > dataLength) throw bad("lies past the end of the file");
    ranges.push([offsets[0], offsets[1], name]);
    entries.set(name, {
      name,
      dtype: e.dtype as SafetensorsDType,
      shape: e.shape as number[],
      start: dataStart + offsets[0],
      length,
    });
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i][0] < ranges[i - 1][1]) {
      throw inputError(
        label,
        undefined,
        `bad safetensors header: tensors "${ranges[i - 1][2]}" and "${ranges[i][2]}" overlap`,
      );
    }
  }
  return { entries, metadata };
}

function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function toFloat32(entry: SafetensorsEntry, bytes: Uint8Array): Float32Array {
  const n = entry.length / BYTES[entry.dtype];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  if (entry.dtype === "F32") {
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
  } else if (entry.dtype === "BF16") {
    const u32 = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u32[i] = view.getUint16(i * 2, true) << 16;
  } else {
    for (let i = 0; i < n; i++) out[i] = f16ToF32(view.getUint16(i * 2, true));
  }
  return out;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** An opened safetensors file; tensors are read from disk when asked for. */
export class SafetensorsFile {
  /** The file's path (named in errors). */
  readonly path: string;
  /** The `__metadata__` strings of the header. */
  readonly metadata: Record<string, string>;
  #entries: Map<string, SafetensorsEntry>;
  #dataStart: number;
  #size: number;

  private constructor(
    path: string,
    entries: Map<string, SafetensorsEntry>,
    meta: Record<string, string>,
    dataStart: number,
    size: number,
  ) {
    this.path = path;
    this.#entries = entries;
    this.metadata = meta;
    this.#dataStart = dataStart;
    this.#size = size;
  }

  /** Whether the header records a checksum of the tensor data ({@linkcode CHECKSUM_KEY}). */
  get hasChecksum(): boolean {
    return typeof this.metadata[CHECKSUM_KEY] === "string";
  }

  /**
   * Checks the tensor data against the checksum in the header (SHA-256 of every byte after the
   * header): a mismatch is an InputError saying the file is corrupt. Returns false, checking
   * nothing, when the file records no checksum (written by another tool or an older version).
   */
  async verify(): Promise<boolean> {
    const expected = this.metadata[CHECKSUM_KEY];
    if (typeof expected !== "string") return false;
    const hash = createHash("sha256");
    const file = await Deno.open(this.path, { read: true });
    try {
      const chunk = 1 << 24;
      for (let at = this.#dataStart; at < this.#size; at += chunk) {
        hash.update(await readAt(file, at, Math.min(chunk, this.#size - at)));
      }
    } finally {
      file.close();
    }
    const actual = hash.digest("hex");
    if (actual !== expected) {
      throw inputError(
        this.path,
        undefined,
        `the tensor data does not match the checksum in its header (sha256 ${
          actual.slice(0, 12)
        }… ` +
          `where ${expected.slice(0, 12)}… was written): the file is corrupt`,
      );
    }
    return true;
  }

  /** Opens `path` and reads its header. */
  static async open(path: string): Promise<SafetensorsFile> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw inputError(path, undefined, "file not found");
      }
      throw inputError(path, undefined, `cannot open: ${(error as Error).message}`);
    }
    try {
      const info = await file.stat();
      if (!info.isFile) {
        throw inputError(path, undefined, "is a directory, not a safetensors file");
      }
      const size = info.size;
      if (size < 8) throw inputError(path, undefined, "bad safetensors header: file too short");
      const head = await readAt(file, 0, 8);
      const n = Number(new DataView(head.buffer).getBigUint64(0, true));
      if (n > MAX_HEADER || 8 + n > size) {
        throw inputError(
          path,
          undefined,
          `bad safetensors header: header length ${n} is impossible`,
        );
      }
      const { entries, metadata } = parseHeader(path, await readAt(file, 8, n), size - 8 - n);
      return new SafetensorsFile(path, entries, metadata, 8 + n, size);
    } finally {
      file.close();
    }
  }

  /**
   * Every tensor of `shapes` as float32 (shapes and dtypes checked as {@linkcode float32} does),
   * read in one pass over the file in data order, with the checksum (when the header records
   * one) computed on the same bytes: a model loads and is verified with a single read. A
   * mismatch is an InputError saying the file is corrupt. `verified` says whether a checksum was
   * there to check.
   */
  async float32All(
    shapes: ReadonlyMap<string, readonly number[]>,
  ): Promise<{ tensors: Map<string, Float32Array>; verified: boolean }> {
    for (const [name, shape] of shapes) {
      const e = this.#check(name, shape);
      if (!(FLOAT_READABLE as readonly string[]).includes(e.dtype)) {
        throw inputError(
          this.path,
          undefined,
          `tensor "${name}" has dtype ${e.dtype}; the model takes ${FLOAT_READABLE.join(", ")}`,
        );
      }
    }
    const expected = this.metadata[CHECKSUM_KEY];
    const hash = typeof expected === "string" ? createHash("sha256") : undefined;
    const ordered = [...this.#entries.values()].sort((a, b) => a.start - b.start);
    const tensors = new Map<string, Float32Array>();
    const file = await Deno.open(this.path, { read: true });
    let contiguous = true;
    try {
      let at = this.#dataStart;
      for (const e of ordered) {
        if (e.start !== at) contiguous = false;
        if (!shapes.has(e.name) && !hash) continue;
        const bytes = await readAt(file, e.start, e.length);
        hash?.update(bytes);
        if (shapes.has(e.name)) tensors.set(e.name, toFloat32(e, bytes));
        at = e.start + e.length;
      }
      if (at !== this.#size) contiguous = false;
    } finally {
      file.close();
    }
    if (!hash) return { tensors, verified: false };
    // Tensors that leave gaps or overlap: hash the data section as it lies instead.
    if (!contiguous) return { tensors, verified: await this.verify() };
    const actual = hash.digest("hex");
    if (actual !== expected) throw this.#corrupt(actual, expected);
    return { tensors, verified: true };
  }

  #corrupt(actual: string, expected: string): Error {
    return inputError(
      this.path,
      undefined,
      `the tensor data does not match the checksum in its header (sha256 ${actual.slice(0, 12)}… ` +
        `where ${expected.slice(0, 12)}… was written): the file is corrupt`,
    );
  }

  /** The names of the tensors, in header order. */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  /** Whether the file holds `name`. */
  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** The header entry of `name`; an InputError when it is missing. */
  entry(name: string): SafetensorsEntry {
    const e = this.#entries.get(name);
    if (!e) throw inputError(this.path, undefined, `tensor "${name}" is missing`);
    return e;
  }

  /**
   * Tensor `name` as float32 (F32, F16 and BF16 are converted). With `shape`, a tensor of another
   * shape is an InputError.
   */
  async float32(name: string, shape?: readonly number[]): Promise<Float32Array> {
    const e = this.#check(name, shape);
    if (!(FLOAT_READABLE as readonly string[]).includes(e.dtype)) {
      throw inputError(
        this.path,
        undefined,
        `tensor "${name}" has dtype ${e.dtype}; the model takes ${FLOAT_READABLE.join(", ")}`,
      );
    }
    return toFloat32(e, await this.#bytes(e));
  }

  /** Tensor `name` in its own dtype (F32, F64, I32, I64), for checkpoints. */
  async tensor(name: string, shape?: readonly number[]): Promise<TensorData> {
    const e = this.#check(name, shape);
    const bytes = await this.#bytes(e);
    const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    switch (e.dtype) {
      case "F32":
        return { dtype: "float32", shape: e.shape, data: new Float32Array(buffer) };
      case "F64":
        return { dtype: "float64", shape: e.shape, data: new Float64Array(buffer) };
      case "I32":
        return { dtype: "int32", shape: e.shape, data: new Int32Array(buffer) };
      case "I64":
        return { dtype: "int64", shape: e.shape, data: new BigInt64Array(buffer) };
      case "F16":
      case "BF16":
        return { dtype: "float32", shape: e.shape, data: toFloat32(e, bytes) };
      default:
        throw inputError(this.path, undefined, `tensor "${name}" has unsupported dtype ${e.dtype}`);
    }
  }

  #check(name: string, shape?: readonly number[]): SafetensorsEntry {
    const e = this.entry(name);
    if (shape && !sameShape(e.shape, shape)) {
      throw inputError(
        this.path,
        undefined,
        `tensor "${name}" has shape [${e.shape.join(", ")}], expected [${shape.join(", ")}]`,
      );
    }
    return e;
  }

  async #bytes(e: SafetensorsEntry): Promise<Uint8Array> {
    const file = await Deno.open(this.path, { read: true });
    try {
      return await readAt(file, e.start, e.length);
    } finally {
      file.close();
    }
  }
}

async function readAt(file: Deno.FsFile, offset: number, length: number): Promise<Uint8Array> {
  await file.seek(offset, Deno.SeekMode.Start);
  const out = new Uint8Array(length);
  let at = 0;
  while (at < length) {
    const n = await file.read(out.subarray(at));
    if (n === null) throw new Error(`unexpected end of file at ${offset + at}`);
    at += n;
  }
  return out;
}

/** Tensors to write: float32 (or float64/int32/int64) data with a shape. */
export type TensorsToWrite = Record<
  string,
  { shape: readonly number[]; data: Float32Array | Float64Array | Int32Array | BigInt64Array }
>;

/**
 * The safetensors bytes of `tensors` (in the order given), as chunks: the header, then each
 * tensor's data (views, not copies, on little-endian machines).
 */
export function encodeSafetensors(
  tensors: TensorsToWrite,
  metadata?: Record<string, string>,
): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) {
      throw new Error(`tensor ${name}: ${t.data.length} values for shape [${t.shape.join(", ")}]`);
    }
    const dtype = t.data instanceof Float32Array
      ? "F32"
      : t.data instanceof Float64Array
      ? "F64"
      : t.data instanceof Int32Array
      ? "I32"
      : "I64";
    header[name] = {
      dtype,
      shape: [...t.shape],
      data_offsets: [offset, offset + t.data.byteLength],
    };
    chunks.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // Spaces pad the header to a multiple of 8, so the data is aligned for readers that map it.
  const headerBytes = new Uint8Array(json.length + ((8 - (json.length % 8)) % 8)).fill(0x20);
  headerBytes.set(json);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  return [prefix, headerBytes, ...chunks];
}

/**
 * The metadata key of the SHA-256 (hex) of a file's tensor data: every byte after the header, in
 * file order. Readers that do not know it (PEFT, safetensors) ignore it.
 */
export const CHECKSUM_KEY = "recsysllm_tensors_sha256";

/** SHA-256 (hex) of the tensor data `tensors` will have in a safetensors file. */
export function tensorsSha256(tensors: TensorsToWrite): string {
  const hash = createHash("sha256");
  for (const t of Object.values(tensors)) {
    hash.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return hash.digest("hex");
}

/**
 * Writes `tensors` to `path` as safetensors, atomically, with the checksum of the tensor data in
 * the metadata ({@linkcode CHECKSUM_KEY}; {@linkcode SafetensorsFile.verify} checks it).
 * `metadata` may be a function of that checksum, for metadata that seals itself to the tensors
 * (a checkpoint's training state).
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorsToWrite,
  metadata: Record<string, string> | ((checksum: string) => Record<string, string>) = {},
): Promise<void> {
  const checksum = tensorsSha256(tensors);
  const extra = typeof metadata === "function" ? metadata(checksum) : metadata;
  const chunks = encodeSafetensors(tensors, { ...extra, [CHECKSUM_KEY]: checksum });
  const total = chunks.reduce((a, c) => a + c.length, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  await writeFileAtomic(path, bytes);
}
