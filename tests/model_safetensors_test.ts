import assert from "node:assert/strict";
import { InputError } from "../lib/errors.ts";
import { presetConfig, weightShapes } from "../lib/model/config.ts";
import {
  CHECKSUM_KEY,
  encodeSafetensors,
  SafetensorsFile,
  writeSafetensors,
} from "../lib/model/safetensors.ts";
import { loadWeights, randomWeights, saveWeights } from "../lib/model/weights.ts";
import { Rng } from "../lib/random.ts";
import { withTempDir } from "./helpers/temp.ts";

/** A safetensors file written byte by byte from a header object and a data section. */
async function rawFile(dir: string, header: unknown, data: Uint8Array, headerText?: string) {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const bytes = new Uint8Array(8 + json.length + data.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
  bytes.set(json, 8);
  bytes.set(data, 8 + json.length);
  const path = `${dir}/t.safetensors`;
  await Deno.writeFile(path, bytes);
  return path;
}

function u16(values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  values.forEach((v, i) => new DataView(out.buffer).setUint16(i * 2, v, true));
  return out;
}

Deno.test("safetensors: F32, F64, I32 and I64 tensors round-trip with metadata", () =>
  withTempDir(async (dir) => {
    const path = `${dir}/a.safetensors`;
    const w = Float32Array.from({ length: 6 }, (_, i) => i * 0.5 - 1);
    await writeSafetensors(path, {
      "layer.weight": { shape: [2, 3], data: w },
      "état": { shape: [2], data: new Float64Array([Math.PI, -0]) },
      step: { shape: [1], data: new Int32Array([7]) },
      big: { shape: [1], data: new BigInt64Array([2n ** 40n]) },
    }, { format: "pt" });
    const file = await SafetensorsFile.open(path);
    assert.deepEqual(file.names(), ["layer.weight", "état", "step", "big"]);
    assert.equal(file.metadata.format, "pt");
    assert.match(file.metadata[CHECKSUM_KEY], /^[0-9a-f]{64}$/);
    assert.equal(await file.verify(), true);
    assert.deepEqual(file.entry("layer.weight").shape, [2, 3]);
    assert.deepEqual(await file.float32("layer.weight", [2, 3]), w);
    assert.deepEqual((await file.tensor("état")).data, new Float64Array([Math.PI, -0]));
    assert.deepEqual((await file.tensor("step")).data, new Int32Array([7]));
    assert.deepEqual((await file.tensor("big")).data, new BigInt64Array([2n ** 40n]));
    // The data starts at an 8-byte boundary, as memory-mapping readers like.
    const bytes = await Deno.readFile(path);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    assert.equal((8 + n) % 8, 0);
  }));

Deno.test("safetensors: F16 and BF16 are read as float32", () =>
  withTempDir(async (dir) => {
    const f16 = [0x3c00, 0xc000, 0x3555, 0x0001, 0x7c00, 0x8000];
    const bf16 = [0x3f80, 0xc040, 0x4049];
    const path = await rawFile(dir, {
      h: { dtype: "F16", shape: [6], data_offsets: [0, 12] },
      b: { dtype: "BF16", shape: [3], data_offsets: [12, 18] },
    }, new Uint8Array([...u16(f16), ...u16(bf16)]));
    const file = await SafetensorsFile.open(path);
    assert.deepEqual(
      Array.from(await file.float32("h")),
      [1, -2, 0.333251953125, 2 ** -24, Infinity, -0],
    );
    assert.deepEqual(Array.from(await file.float32("b")), [1, -3, 3.140625]);
  }));

Deno.test("safetensors: a missing tensor, a wrong shape and an unusable dtype are InputErrors", () =>
  withTempDir(async (dir) => {
    const path = await rawFile(dir, {
      ids: { dtype: "I64", shape: [2], data_offsets: [0, 16] },
      w: { dtype: "F32", shape: [2, 2], data_offsets: [16, 32] },
    }, new Uint8Array(32));
    const file = await SafetensorsFile.open(path);
    await assert.rejects(
      () => file.float32("nope"),
      (e) => e instanceof InputError && e.message === `${path}: tensor "nope" is missing`,
    );
    await assert.rejects(
      () => file.float32("w", [4]),
      (e) =>
        e instanceof InputError && /tensor "w" has shape \[2, 2\], expected \[4\]/.test(e.message),
    );
    await assert.rejects(
      () => file.float32("ids"),
      (e) =>
        e instanceof InputError &&
        /tensor "ids" has dtype I64; the model takes F32, F16, BF16/.test(e.message),
    );
  }));

Deno.test("safetensors: bad headers are InputErrors naming the file", () =>
  withTempDir(async (dir) => {
    const cases: [unknown, Uint8Array, RegExp, string?][] = [
      [null, new Uint8Array(0), /not valid JSON|bad safetensors header/, "{not json"],
      [[1, 2], new Uint8Array(0), /not a JSON object/],
      [
        { w: { dtype: "F32", shape: [3], data_offsets: [0, 8] } },
        new Uint8Array(8),
        /has 8 bytes for shape \[3\]/,
      ],
      [
        { w: { dtype: "Q4", shape: [1], data_offsets: [0, 1] } },
        new Uint8Array(1),
        /unknown dtype "Q4"/,
      ],
      [
        { w: { dtype: "F32", shape: [4], data_offsets: [0, 16] } },
        new Uint8Array(8),
        /past the end of the file/,
      ],
      [
        { w: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } },
        new Uint8Array(4),
        /no valid shape/,
      ],
      [
        {
          a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
          b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
        },
        new Uint8Array(12),
        /"a" and "b" overlap/,
      ],
      [{ __metadata__: [1] }, new Uint8Array(0), /__metadata__ is not an object/],
      // A checksum of another type was dropped, and the data read unchecked without a word.
      [
        { __metadata__: { recsysllm_tensors_sha256: 12 } },
        new Uint8Array(0),
        /__metadata__\.recsysllm_tensors_sha256 is not a string/,
      ],
    ];
    for (const [header, data, pattern, text] of cases) {
      const path = await rawFile(dir, header, data, text);
      await assert.rejects(() => SafetensorsFile.open(path), (e) => {
        assert.ok(e instanceof InputError, String(e));
        assert.ok(e.message.startsWith(`${path}: `), e.message);
        assert.match(e.message, pattern);
        return true;
      });
    }
    const short = `${dir}/short.safetensors`;
    await Deno.writeFile(short, new Uint8Array([1, 2, 3]));
    await assert.rejects(() => SafetensorsFile.open(short), /file too short/);
    const huge = `${dir}/huge.safetensors`;
    await Deno.writeFile(huge, new Uint8Array([255, 255, 255, 255, 0, 0, 0, 0, 123]));
    await assert.rejects(() => SafetensorsFile.open(huge), /header length \d+ is impossible/);
    await assert.rejects(() => SafetensorsFile.open(`${dir}/absent.safetensors`), /file not found/);
    // A directory given for the file (init --item-rows DIR) is named, not a bare EISDIR.
    await assert.rejects(
      () => SafetensorsFile.open(dir),
      new RegExp(`${dir}: is a directory, not a safetensors file$`),
    );
  }));

Deno.test("model weights save and load by their Hugging Face names, shapes checked", () =>
  withTempDir(async (dir) => {
    const config = {
      ...presetConfig("tiny", 50),
      hiddenSize: 8,
      numHeads: 2,
      numLayers: 1,
      maxSequenceLength: 6,
    };
    const weights = randomWeights(config, new Rng(3));
    assert.equal(weights.get("glm.transformer.layers.0.input_layernorm.weight")![0], 1);
    assert.equal(weights.get("glm.transformer.layers.0.attention.dense.bias")![0], 0);
    assert.deepEqual(weightShapes(config).get("glm.transformer.position_embeddings.weight"), [
      7,
      8,
    ]);
    const path = `${dir}/model.safetensors`;
    await saveWeights(path, config, weights);
    const loaded = await loadWeights(path, config);
    for (const [name, data] of weights) assert.deepEqual(loaded.get(name), data, name);
    // A config asking for another shape names the tensor and both shapes.
    await assert.rejects(
      () => loadWeights(path, { ...config, vocabSize: 51 }),
      /tensor "glm.word_embeddings.weight" has shape \[50, 8\], expected \[51, 8\]/,
    );
    await assert.rejects(
      () => loadWeights(path, { ...config, numLayers: 2 }),
      /tensor "glm.transformer.layers.1.input_layernorm.weight" is missing/,
    );
  }));

Deno.test("safetensors: the checksum of the tensor data catches one flipped byte; files without one load unchecked", () =>
  withTempDir(async (dir) => {
    const path = `${dir}/c.safetensors`;
    const shapes = new Map([["a", [3]], ["b", [2, 2]]]);
    await writeSafetensors(path, {
      a: { shape: [3], data: new Float32Array([1, 2, 3]) },
      b: { shape: [2, 2], data: new Float32Array([4, 5, 6, 7]) },
    });
    const { tensors, verified } = await (await SafetensorsFile.open(path)).float32All(shapes);
    assert.equal(verified, true);
    assert.deepEqual(tensors.get("b"), new Float32Array([4, 5, 6, 7]));
    const bytes = await Deno.readFile(path);
    bytes[bytes.length - 3] ^= 0x01;
    await Deno.writeFile(path, bytes);
    const file = await SafetensorsFile.open(path);
    await assert.rejects(() => file.float32All(shapes), /does not match the checksum .*corrupt/);
    await assert.rejects(() => file.verify(), /corrupt/);
    // A file another tool wrote (no checksum in its metadata) loads, unchecked.
    const [prefix, header, ...data] = encodeSafetensors({
      a: { shape: [3], data: new Float32Array([1, 2, 3]) },
    }, { format: "pt" });
    await Deno.writeFile(
      path,
      new Uint8Array([...prefix, ...header, ...data.flatMap((d) => [...d])]),
    );
    const plain = await SafetensorsFile.open(path);
    assert.equal(await plain.verify(), false);
    assert.equal((await plain.float32All(new Map([["a", [3]]]))).verified, false);
  }));

Deno.test("safetensors: a null __metadata__ is no metadata (some writers put it there)", () =>
  withTempDir(async (dir) => {
    const data = new Uint8Array(new Float32Array([1, 2]).buffer);
    const path = await rawFile(dir, {
      __metadata__: null,
      w: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    }, data);
    const file = await SafetensorsFile.open(path);
    assert.deepEqual(file.metadata, {});
    assert.equal(file.hasChecksum, false);
    assert.deepEqual(Array.from(await file.float32("w")), [1, 2]);
  }));
