/**
 * Test helper (not a test file) for the training tests: the built-in demo dataset textualized
 * once per test process into a temporary directory, and small model directories (fixture
 * tokenizer, a small GLM configuration, seeded random weights).
 *
 * @module
 */

import { join } from "node:path";
import { main } from "../../main.ts";
import { configJson, type GlmConfig } from "../../lib/model/config.ts";
import { randomWeights, saveWeights } from "../../lib/model/weights.ts";
import { Rng } from "../../lib/random.ts";
import { TextTokenizer } from "../../lib/tokenizer/tokenizer.ts";
import { processTempDir } from "./temp.ts";

/** The fixture tokenizer the small models use. */
export const TOKENIZER = "fixtures/tokenizer/tokenizer.json";

let demo: Promise<string> | undefined;

async function quiet<T>(run: () => Promise<T>): Promise<T> {
  const log = console.log;
  console.log = () => {};
  try {
    return await run();
  } finally {
    console.log = log;
  }
}

/** The demo dataset (fixtures/demo) textualized into a temporary directory, once per process. */
export function demoDataset(): Promise<string> {
  demo ??= (async () => {
    // Removed when the test process ends (every test file of the process shares it).
    const out = join(await processTempDir(), "data");
    const status = await quiet(() =>
      main([
        "textualize",
        "--format",
        "csv",
        "--input",
        "fixtures/demo/interactions.csv",
        "--users",
        "fixtures/demo/users.csv",
        "--items",
        "fixtures/demo/items.csv",
        "--out",
        out,
      ])
    );
    if (status !== 0) throw new Error(`textualize of the demo dataset failed (${status})`);
    return out;
  })();
  return demo;
}

/** The item entities of the dataset directory `data` (its `entities.json`). */
export async function itemEntities(data: string): Promise<Set<string>> {
  const pool = JSON.parse(await Deno.readTextFile(join(data, "entities.json"))) as {
    entity: string;
    kind: string;
  }[];
  return new Set(pool.filter((e) => e.kind === "item").map((e) => e.entity));
}

/** A small model configuration for the fixture tokenizer. */
export async function smallConfig(overrides: Partial<GlmConfig> = {}): Promise<GlmConfig> {
  const tokenizer = await TextTokenizer.load(TOKENIZER);
  return {
    vocabSize: tokenizer.vocabSize,
    hiddenSize: 32,
    numLayers: 2,
    numHeads: 2,
    maxSequenceLength: 128,
    layernormEpsilon: 1e-5,
    ...overrides,
  };
}

/** Writes a model directory for `config` with seeded std-0.02 weights into `dir`. */
export async function writeSmallModel(dir: string, config: GlmConfig, seed = 1): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(configJson(config)));
  await Deno.copyFile(TOKENIZER, join(dir, "tokenizer.json"));
  await saveWeights(join(dir, "model.safetensors"), config, randomWeights(config, new Rng(seed)));
}
