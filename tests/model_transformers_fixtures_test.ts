/**
 * The decoder families against Hugging Face transformers, without Python: tiny checkpoints that
 * transformers wrote and the logits it computed for them (fixtures/transformers, made by its
 * make.py with torch 2.13.0, transformers 5.18.0 and peft 0.21.0): llama with biases and llama3
 * rope scaling, mistral, qwen2, qwen3 (tied embeddings, q/k norms), GLM-4 (partial rotary) and
 * GLM-4-0414 (`glm4_0414`: model_type glm4, norms after attention and after the MLP), each in the
 * config layout transformers 5 saves (`rope_parameters`, `dtype`). `forward` must give the same
 * logits to float32 rounding. The weights make attention sharp, so a position computed wrongly
 * shows: the same ids at other positions move the logits by far more than the tolerance (checked).
 * And two LoRA adapters PEFT wrote (qwen3, GLM-4: every projection), applied by `forward --adapter`,
 * against PEFT's logits. `deno task bench transformers_parity` is the fuller check.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SafetensorsFile } from "../lib/model/safetensors.ts";
import { cliOk } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/transformers/", import.meta.url));
const NAMES = ["llama", "mistral", "qwen2", "qwen3", "glm4", "glm4_0414"] as const;
const V = 256;
/** Relative to the largest logit: float32 sums in another order (measured: at most 6.0e-6). */
const TOLERANCE = 5e-5;

const expected = await SafetensorsFile.open(join(FIXTURES, "expected.safetensors"));

/**
 * The toolkit's logits [B, L, V] (its own rows past V dropped) for `batch`, written to `out`;
 * with `adapter`, that adapter of fixtures/transformers applied.
 */
async function forward(
  name: string,
  batch: string,
  out: string,
  adapter?: string,
): Promise<Float32Array> {
  await cliOk([
    ...["forward", "--quiet", "--device", "cpu", "--model", join(FIXTURES, name)],
    ...["--batch", batch, "--out", out],
    ...(adapter ? ["--adapter", join(FIXTURES, adapter)] : []),
  ]);
  const file = await SafetensorsFile.open(out);
  const logits = await file.float32("logits");
  const [b, l, width] = file.entry("logits").shape;
  const kept = new Float32Array(b * l * V);
  for (let row = 0; row < b * l; row++) {
    kept.set(logits.subarray(row * width, row * width + V), row * V);
  }
  return kept;
}

function largestDifference(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

for (const name of NAMES) {
  Deno.test(`${name}: forward gives transformers' logits`, async () => {
    await withTempDir(async (dir) => {
      const reference = await expected.float32(name);
      const scale = reference.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      const ours = await forward(
        name,
        join(FIXTURES, "batch.json"),
        join(dir, "logits.safetensors"),
      );
      assert.equal(ours.length, reference.length);
      const difference = largestDifference(ours, reference);
      assert.ok(difference <= TOLERANCE * scale, `${difference} of ${scale}`);
      // The same ids at positions 0, 2, 4, ...: far from the reference, so positions are checked.
      const batch = JSON.parse(await Deno.readTextFile(join(FIXTURES, "batch.json")));
      batch.rope_position_ids = batch.rope_position_ids.map((p: number[]) => p.map((x) => 2 * x));
      const movedPath = join(dir, "moved.json");
      await Deno.writeTextFile(movedPath, JSON.stringify(batch));
      const moved = await forward(name, movedPath, join(dir, "moved.safetensors"));
      assert.ok(largestDifference(moved, reference) > 1000 * TOLERANCE * scale);
    });
  });
}

for (const name of ["qwen3", "glm4"] as const) {
  Deno.test(`${name}: forward --adapter gives PEFT's logits for an adapter PEFT wrote`, async () => {
    await withTempDir(async (dir) => {
      const reference = await expected.float32(`${name}+lora`);
      const base = await expected.float32(name);
      const scale = reference.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      const batch = join(FIXTURES, "batch.json");
      const ours = await forward(name, batch, join(dir, "logits.safetensors"), `${name}-lora`);
      const difference = largestDifference(ours, reference);
      assert.ok(difference <= TOLERANCE * scale, `${difference} of ${scale}`);
      // The adapter moves the logits far beyond the tolerance: it is checked, not ignored.
      assert.ok(largestDifference(base, reference) > 1000 * TOLERANCE * scale);
    });
  });
}
