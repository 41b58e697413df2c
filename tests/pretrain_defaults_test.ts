/**
 * pretrain's default by the base model: every weight for a model that init wrote (random
 * weights, any family), a LoRA adapter for a pretrained checkpoint, and a one-line note on any LoRA run over
 * random weights.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { SafetensorsFile } from "../lib/model/safetensors.ts";
import { demoDataset, smallConfig, TOKENIZER, writeSmallModel } from "./helpers/train.ts";
import { withTempDir } from "./helpers/temp.ts";

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

// --max-length 96: the demo's records all fit from 83 tokens, and pretrain checks them first.
function pretrain(data: string, model: string, out: string, ...extra: string[]) {
  return runCli([
    "pretrain",
    ...["--data", data, "--model", model, "--out", out, "--steps", "1", "--batch-size", "2"],
    ...["--val-batches", "0", "--max-length", "96", "--device", "cpu", "--quiet", ...extra],
  ]);
}

Deno.test("pretrain: init's random GLM trains every weight by default; LoRA on it is noted", () =>
  withTempDir(async (path) => {
    const data = await demoDataset();
    const random = join(path, "random");
    const init = await runCli([
      "init",
      ...["--data", data, "--preset", "tiny", "--tokenizer", TOKENIZER, "--out", random],
      ...["--hidden-size", "32", "--layers", "2", "--heads", "2"],
    ]);
    assert.equal(init.code, 0, init.stderr);

    const full = await pretrain(data, random, join(path, "full"));
    assert.equal(full.code, 0, full.stderr);
    assert.ok(await exists(join(path, "full", "model.safetensors")), "a full run's model");
    assert.ok(!(await exists(join(path, "full", "adapter_config.json"))));
    assert.doesNotMatch(full.stderr, /random weights/);

    const lora = await pretrain(data, random, join(path, "lora"), "--lora");
    assert.equal(lora.code, 0, lora.stderr);
    assert.ok(await exists(join(path, "lora", "adapter_config.json")));
    const notes = lora.stderr.split("\n").filter((l) => /random weights/.test(l));
    assert.equal(notes.length, 1, lora.stderr);
    assert.match(notes[0], /init's random weights; LoRA trains only the adapter/);

    // A --lora-* flag asks for LoRA too (and gets the note, with the way to full training).
    const ranked = await pretrain(data, random, join(path, "ranked"), "--lora-rank", "4");
    assert.equal(ranked.code, 0, ranked.stderr);
    assert.match(ranked.stderr, /random weights.*--full trains every weight/);

    const both = await pretrain(data, random, join(path, "both"), "--lora", "--full");
    assert.equal(both.code, 2);
    assert.match(both.stderr, /give --full or --lora, not both/);
  }));

Deno.test("pretrain: init's random qwen3 trains every weight too; the run is a model infer reads", () =>
  withTempDir(async (path) => {
    const data = await demoDataset();
    const random = join(path, "random");
    const init = await runCli([
      "init",
      ...["--family", "qwen3", "--preset", "tiny", "--tokenizer", TOKENIZER, "--out", random],
      ...["--hidden-size", "32", "--layers", "1", "--heads", "2"],
    ]);
    assert.equal(init.code, 0, init.stderr);
    const full = await pretrain(data, random, join(path, "full"));
    assert.equal(full.code, 0, full.stderr);
    assert.ok(!(await exists(join(path, "full", "adapter_config.json"))));
    const config = JSON.parse(await Deno.readTextFile(join(path, "full", "config.json")));
    assert.equal(config.model_type, "qwen3");
    // The trained intra-position table beside every weight.
    const file = await SafetensorsFile.open(join(path, "full", "model.safetensors"));
    assert.ok(file.names().includes("model.intra_position_embeddings.weight"));
    assert.ok(file.names().includes("model.layers.0.mlp.down_proj.weight"));
    const infer = await runCli([
      "infer",
      ...["--model", join(path, "full"), "--data", data, "--out", join(path, "pred.jsonl")],
      ...["--tasks", "sequential", "--limit", "2", "--top-k", "3", "--device", "cpu", "--quiet"],
    ]);
    assert.equal(infer.code, 0, infer.stderr);
    const lines = (await Deno.readTextFile(join(path, "pred.jsonl"))).trim().split("\n");
    assert.equal(lines.length, 2);
  }));

Deno.test("pretrain: a checkpoint init did not write trains a LoRA adapter by default, silently", () =>
  withTempDir(async (path) => {
    const data = await demoDataset();
    const base = join(path, "base");
    await writeSmallModel(base, await smallConfig());
    const run = await pretrain(data, base, join(path, "run"));
    assert.equal(run.code, 0, run.stderr);
    assert.ok(await exists(join(path, "run", "adapter_config.json")));
    assert.ok(!(await exists(join(path, "run", "model.safetensors"))));
    assert.doesNotMatch(run.stderr, /random weights/);
  }));
