/**
 * Serializes a {@linkcode Graph} to ONNX ModelProto bytes with a small protobuf writer of our own
 * (varints, fixed32, length-delimited fields; no protobuf dependency). Tensor contents go in
 * `raw_data` (little-endian), or, for models whose weights would pass protobuf's 2 GB limit, into
 * external data: the tensor names a side file (`location`, `offset`, `length`) and onnxruntime
 * reads it from disk next to the model file, or from memory through the session option
 * `externalData: [{ path, data }]` (lib/runtime passes it).
 *
 * Field numbers follow onnx/onnx.proto (IR version 8 for opsets up to 18, later ones as needed).
 *
 * @module
 */

import type { Graph } from "./graph.ts";
import { type Attribute, DTYPE_INFO, type TensorData, type Value } from "./types.ts";

/** ONNX IR version written (8 is the one that goes with opsets 17 and 18). */
export const IR_VERSION = 8;

/** Protobuf's hard limit on one message; past it the weights must go external. */
const PROTO_LIMIT = 2 ** 31 - 1;

class Writer {
  #chunks: Uint8Array[] = [];
  #buf = new Uint8Array(1024);
  #pos = 0;
  #length = 0;

  get length(): number {
    return this.#length + this.#pos;
  }

  #room(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    this.#flush();
    if (n > this.#buf.length) this.#buf = new Uint8Array(Math.max(n, this.#buf.length * 2));
  }

  #flush(): void {
    if (this.#pos === 0) return;
    this.#chunks.push(this.#buf.slice(0, this.#pos));
    this.#length += this.#pos;
    this.#pos = 0;
  }

  byte(b: number): void {
    this.#room(1);
    this.#buf[this.#pos++] = b;
  }

  /** An unsigned varint of a number below 2^53, or a bigint (two's complement for negatives). */
  varint(v: number | bigint): void {
    if (typeof v === "number" && v >= 0 && v <= Number.MAX_SAFE_INTEGER) {
      this.#room(10);
      while (v >= 0x80) {
        this.#buf[this.#pos++] = (v % 0x80) | 0x80;
        v = Math.floor(v / 0x80);
      }
      this.#buf[this.#pos++] = v;
      return;
    }
    let u = BigInt.asUintN(64, BigInt(v));
    this.#room(10);
    while (u >= 0x80n) {
      this.#buf[this.#pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.#buf[this.#pos++] = Number(u);
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  bytes(data: Uint8Array): void {
    if (data.length > 4096) {
      // Large payloads (weights) are kept as they are rather than copied through the buffer.
      this.#flush();
      this.#chunks.push(data);
      this.#length += data.length;
      return;
    }
    this.#room(data.length);
    this.#buf.set(data, this.#pos);
    this.#pos += data.length;
  }

  fixed32Float(v: number): void {
    this.#room(4);
    new DataView(this.#buf.buffer).setFloat32(this.#pos, v, true);
    this.#pos += 4;
  }

  finish(): Uint8Array[] {
    this.#flush();
    return this.#chunks;
  }
}

// Field writers. Wire types: 0 varint, 2 length-delimited, 5 fixed32.

function intField(w: Writer, field: number, v: number | bigint): void {
  w.tag(field, 0);
  w.varint(v);
}

function stringField(w: Writer, field: number, s: string): void {
  bytesField(w, field, new TextEncoder().encode(s));
}

function bytesField(w: Writer, field: number, data: Uint8Array): void {
  w.tag(field, 2);
  w.varint(data.length);
  w.bytes(data);
}

function messageField(w: Writer, field: number, build: (w: Writer) => void): void {
  const inner = new Writer();
  build(inner);
  const chunks = inner.finish();
  w.tag(field, 2);
  w.varint(inner.length);
  for (const c of chunks) w.bytes(c);
}

function floatField(w: Writer, field: number, v: number): void {
  w.tag(field, 5);
  w.fixed32Float(v);
}

/** The little-endian bytes of tensor data (a view, not a copy, on little-endian machines). */
export function tensorBytes(t: TensorData): Uint8Array {
  const d = t.data;
  const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  if (d.BYTES_PER_ELEMENT === 1 || LITTLE_ENDIAN) return bytes;
  const out = new Uint8Array(bytes.length);
  const k = d.BYTES_PER_ELEMENT;
  for (let i = 0; i < bytes.length; i += k) {
    for (let j = 0; j < k; j++) out[i + j] = bytes[i + k - 1 - j];
  }
  return out;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Where one tensor's data went when stored externally. */
interface ExternalRef {
  location: string;
  offset: number;
  length: number;
}

function writeTensor(w: Writer, name: string, t: TensorData, external?: ExternalRef): void {
  for (const d of t.shape) intField(w, 1, d);
  intField(w, 2, DTYPE_INFO[t.dtype].onnx);
  stringField(w, 8, name);
  if (external) {
    const entries: [string, string][] = [
      ["location", external.location],
      ["offset", String(external.offset)],
      ["length", String(external.length)],
    ];
    for (const [key, value] of entries) {
      messageField(w, 13, (e) => {
        stringField(e, 1, key);
        stringField(e, 2, value);
      });
    }
    intField(w, 14, 1); // data_location: EXTERNAL
  } else {
    bytesField(w, 9, tensorBytes(t));
  }
}

function writeAttribute(w: Writer, name: string, a: Attribute): void {
  stringField(w, 1, name);
  switch (a.type) {
    case "float":
      floatField(w, 2, a.value);
      intField(w, 20, 1);
      break;
    case "int":
      intField(w, 3, a.value);
      intField(w, 20, 2);
      break;
    case "string":
      stringField(w, 4, a.value);
      intField(w, 20, 3);
      break;
    case "tensor":
      messageField(w, 5, (t) => writeTensor(t, "", a.value));
      intField(w, 20, 4);
      break;
    case "floats":
      for (const v of a.value) floatField(w, 7, v);
      intField(w, 20, 6);
      break;
    case "ints":
      for (const v of a.value) intField(w, 8, v);
      intField(w, 20, 7);
      break;
    case "strings":
      for (const v of a.value) stringField(w, 9, v);
      intField(w, 20, 8);
      break;
  }
}

function writeValueInfo(w: Writer, v: Value, shape = v.shape): void {
  stringField(w, 1, v.name);
  messageField(w, 2, (type) => {
    messageField(type, 1, (tensor) => {
      intField(tensor, 1, DTYPE_INFO[v.dtype].onnx);
      messageField(tensor, 2, (s) => {
        for (const d of shape) {
          messageField(s, 1, (dim) => {
            if (typeof d === "number") intField(dim, 1, d);
            else stringField(dim, 2, d);
          });
        }
      });
    });
  });
}

/** Options of {@linkcode encodeModel}. */
export interface EncodeOptions {
  /**
   * Store initializers externally when their total size passes this many bytes (default: just
   * under protobuf's 2 GB limit). 0 stores every initializer of `externalMinBytes` or more
   * externally, which tests use.
   */
  externalThreshold?: number;
  /** Only initializers at least this large go external (default 1024 bytes). */
  externalMinBytes?: number;
  /**
   * The side file's name, relative to the model file (default `model.onnx.data`); further files,
   * when one passes `externalFileBytes`, add `.1`, `.2`, ...
   */
  externalFile?: string;
  /**
   * Start a new side file past this many bytes (default 1 GiB), so that no single buffer
   * handed to onnxruntime grows past what JavaScript engines allocate comfortably.
   */
  externalFileBytes?: number;
  /**
   * Declare initializers of at least this many bytes as graph inputs instead, and leave their
   * data out of the model: the runner feeds them on every run ({@linkcode EncodedModel.fed}).
   * onnxruntime then reads the caller's arrays in place and keeps no copy of its own.
   */
  feedMinBytes?: number;
  /** Producer name recorded in the model. */
  producer?: string;
  /** The default domain's opset (default: the graph's); the IR version follows it. */
  opset?: number;
}

/** One side file of external data: its name (relative to the model) and contents. */
export interface ExternalFile {
  /** The file name, relative to the model file. */
  path: string;
  /** The contents as chunks (each tensor's bytes at a 64-byte aligned offset). */
  chunks: Uint8Array[];
  /** The total size of the chunks in bytes. */
  byteLength: number;
}

/** An encoded model: the ModelProto bytes and, when weights went external, the side files. */
export interface EncodedModel {
  /** The ModelProto, as chunks (concatenate or write them in order). */
  chunks: Uint8Array[];
  /** Total length of `chunks`. */
  byteLength: number;
  /** External data files, when used (the model refers to them by `path`). */
  external?: ExternalFile[];
  /** Initializers declared as inputs (with `feedMinBytes`): feed them on every run. */
  fed?: Map<string, TensorData>;
}

/**
 * Encodes `graph` as an ONNX model. Weights are referenced, not copied, until the chunks are
 * joined; {@linkcode encodeModel} joins them for the common case.
 */
export function encodeModelChunks(graph: Graph, options: EncodeOptions = {}): EncodedModel {
  const threshold = options.externalThreshold ?? PROTO_LIMIT - 64 * 2 ** 20;
  const minBytes = options.externalMinBytes ?? 1024;
  const base = options.externalFile ?? "model.onnx.data";
  const fileBytes = options.externalFileBytes ?? 2 ** 30;
  const fed = new Map<string, TensorData>();
  const initializers = new Map<string, TensorData>();
  for (const [name, t] of graph.initializers) {
    const isFed = options.feedMinBytes !== undefined && t.data.byteLength >= options.feedMinBytes;
    (isFed ? fed : initializers).set(name, t);
  }
  let total = 0;
  for (const t of initializers.values()) total += t.data.byteLength;
  const refs = new Map<string, ExternalRef>();
  const files: ExternalFile[] = [];
  if (total > threshold) {
    let file: ExternalFile | undefined;
    for (const [name, t] of initializers) {
      const n = t.data.byteLength;
      if (n < minBytes) continue;
      if (!file || (file.byteLength > 0 && file.byteLength + n > fileBytes)) {
        file = { path: files.length ? `${base}.${files.length}` : base, chunks: [], byteLength: 0 };
        files.push(file);
      }
      const pad = (64 - (file.byteLength % 64)) % 64;
      if (pad) file.chunks.push(new Uint8Array(pad));
      file.byteLength += pad;
      refs.set(name, { location: file.path, offset: file.byteLength, length: n });
      file.chunks.push(tensorBytes(t));
      file.byteLength += n;
    }
  }

  const w = new Writer();
  const opset = options.opset ?? graph.opset;
  intField(w, 1, opset <= 18 ? IR_VERSION : opset <= 20 ? 9 : opset <= 22 ? 10 : 11);
  stringField(w, 2, options.producer ?? "recsysllm");
  stringField(w, 3, "0.1");
  messageField(w, 7, (g) => {
    for (const node of graph.nodes) {
      messageField(g, 1, (n) => {
        let last = node.inputs.length;
        while (last > 0 && node.inputs[last - 1] === "") last--; // trailing absent optionals
        for (let i = 0; i < last; i++) stringField(n, 1, node.inputs[i]);
        for (const o of node.outputs) stringField(n, 2, o);
        stringField(n, 3, node.name);
        stringField(n, 4, node.op);
        for (const [name, a] of Object.entries(node.attrs)) {
          messageField(n, 5, (m) => writeAttribute(m, name, a));
        }
        if (node.domain) stringField(n, 7, node.domain);
      });
    }
    stringField(g, 2, graph.name);
    for (const [name, t] of initializers) {
      messageField(g, 5, (m) => writeTensor(m, name, t, refs.get(name)));
    }
    for (const v of graph.inputs) messageField(g, 11, (m) => writeValueInfo(m, v));
    for (const name of fed.keys()) messageField(g, 11, (m) => writeValueInfo(m, graph.value(name)));
    for (const v of graph.outputs) messageField(g, 12, (m) => writeValueInfo(m, v));
  });
  messageField(w, 8, (o) => {
    stringField(o, 1, "");
    intField(o, 2, opset);
  });
  // Operators of other domains (onnxruntime's com.microsoft contrib operators) import version 1.
  for (const domain of new Set(graph.nodes.map((n) => n.domain).filter((d) => d))) {
    messageField(w, 8, (o) => {
      stringField(o, 1, domain);
      intField(o, 2, 1);
    });
  }
  const chunks = w.finish();
  if (w.length > PROTO_LIMIT) {
    throw new Error(
      `model ${graph.name} is ${w.length} bytes, over protobuf's 2 GB limit; lower externalThreshold`,
    );
  }
  return {
    chunks,
    byteLength: w.length,
    external: files.length ? files : undefined,
    fed: fed.size ? fed : undefined,
  };
}

/** Joins chunks into one buffer. */
export function joinChunks(chunks: readonly Uint8Array[], byteLength?: number): Uint8Array {
  const n = byteLength ?? chunks.reduce((a, c) => a + c.length, 0);
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * The ModelProto bytes of `graph`, with every initializer inline. Throws when the weights are
 * too large for that (use {@linkcode encodeModelChunks}, which moves them to external data).
 *
 * @example
 * ```ts
 * import { Session } from "../runtime/session.ts";
 * import type { Graph } from "./graph.ts";
 *
 * declare const graph: Graph;
 * const session = await Session.create(encodeModel(graph)); // lib/runtime
 * ```
 */
export function encodeModel(graph: Graph, options: EncodeOptions = {}): Uint8Array {
  const model = encodeModelChunks(graph, options);
  if (model.external || model.fed) {
    throw new Error(`model ${graph.name} needs external data or feeds; use encodeModelChunks`);
  }
  return joinChunks(model.chunks, model.byteLength);
}
