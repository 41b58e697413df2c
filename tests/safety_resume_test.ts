/**
 * `--resume` checks what it resumes: a checkpoint whose training state was edited (a `step`
 * changed by hand) is refused by the state's own checksum, and a dataset regenerated in place with
 * the same number of records is refused by the hash of its training records.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp.ts";
import { smallConfig, writeSmallModel } from "./helpers/train.ts";
import { GOLDEN_CASES } from "./helpers/textualize.ts";
import { SafetensorsFile } from "../lib/model/safetensors.ts";
import { readCheckpoint, writeCheckpoint } from "../lib/train/checkpoint.ts";

function pretrain(data: string, model: string, out: string, ...extra: string[]) {
  return runCli([
    "pretrain",
    ...["--data", data, "--model", model, "--out", out, "--batch-size", "2", "--lora"],
    ...["--val-batches", "0", "--save-every", "1", "--device", "cpu", "--quiet", ...extra],
  ]);
}

function exit1(run: { code: number; stderr: string }, pattern: RegExp): void {
  assert.equal(run.code, 1, run.stderr);
  assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
  assert.match(run.stderr, pattern);
}

/** A dataset, a small GLM and a LoRA run of `steps` steps on them, in `dir`. */
async function trainedRun(dir: string, steps: number) {
  const data = join(dir, "data");
  const csv = GOLDEN_CASES.find((c) => c.name === "csv")!.args;
  const made = await runCli(["textualize", ...csv, `--out=${data}`, "--quiet"]);
  assert.equal(made.code, 0, made.stderr);
  const model = join(dir, "model");
  await writeSmallModel(model, await smallConfig(), 1);
  const run = join(dir, "run");
  const first = await pretrain(data, model, run, "--steps", String(steps));
  assert.equal(first.code, 0, first.stderr);
  return { data, model, run };
}

Deno.test("--resume refuses an edited training state and training records that changed at the same count", () =>
  withTempDir(async (dir) => {
    const { data, model, run } = await trainedRun(dir, 3);

    // The step in the header's state edited, bytes otherwise the same (the tensors' checksum
    // still matches): resuming would skip steps without a word.
    const checkpoint = join(run, "checkpoint.safetensors");
    const good = await Deno.readFile(checkpoint);
    const text = new TextDecoder("latin1").decode(good);
    const at = text.indexOf('\\"step\\":3,');
    assert.ok(at > 0, "the state's step is in the header");
    const edited = good.slice();
    edited[at + '\\"step\\":'.length] = "1".charCodeAt(0);
    await Deno.writeFile(checkpoint, edited);
    exit1(
      await pretrain(data, model, run, "--steps", "3", "--resume"),
      /checkpoint\.safetensors: the checkpoint's training state does not match its checksum/,
    );
    await Deno.writeFile(checkpoint, good);

    // The training records rewritten in another order: the same count, other data.
    const trainPath = join(data, "train.jsonl");
    const original = await Deno.readTextFile(trainPath);
    const lines = original.trimEnd().split("\n");
    assert.ok(lines.length >= 2);
    await Deno.writeTextFile(trainPath, [...lines].reverse().join("\n") + "\n");
    exit1(
      await pretrain(data, model, run, "--steps", "3", "--resume"),
      /cannot resume .*run: the training records of .*data are not those it was trained on/,
    );

    // Back to the data it was trained on: the run resumes and finishes.
    await Deno.writeTextFile(trainPath, original);
    const resumed = await pretrain(data, model, run, "--steps", "3", "--resume");
    assert.equal(resumed.code, 0, resumed.stderr);
  }));

Deno.test("--resume takes a GLM checkpoint whose settings record the model's shape only (before one configuration)", () =>
  withTempDir(async (dir) => {
    const { data, model, run } = await trainedRun(dir, 2);
    const path = join(run, "checkpoint.safetensors");
    const file = await SafetensorsFile.open(path);
    const params = new Map<string, number[]>();
    for (const name of file.names()) {
      const m = /^param\.(.*)$/.exec(name);
      if (m) params.set(m[1], file.entry(name).shape);
    }
    const state = await readCheckpoint(path, params);
    const { family: _f, numKvHeads: _k, headDim: _h, addedRows: _a, attention: _t, ...shape } =
      state.settings.model as Record<string, unknown>;
    assert.deepEqual(Object.keys(shape).sort(), [
      "hiddenSize",
      "numHeads",
      "numLayers",
      "vocabSize",
    ]);
    await writeCheckpoint(
      path,
      { ...state, settings: { ...state.settings, model: shape } },
      params,
    );
    const resumed = await pretrain(data, model, run, "--steps", "2", "--resume");
    assert.equal(resumed.code, 0, resumed.stderr);
    // Another shape is still another run.
    await writeCheckpoint(path, {
      ...state,
      settings: { ...state.settings, model: { ...shape, numLayers: 9 } },
    }, params);
    const refused = await pretrain(data, model, run, "--steps", "2", "--resume");
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /cannot resume .* with different settings/);
  }));
