// Shared by the inference tests: a tiny random GLM (the fixture tokenizer, weights far from the
// std-0.02 init so that scores differ clearly), a model directory on disk, a plain-function
// StepModel, and brute-force scoring of answers through the FULL forward graph (no cache).
import assert from "node:assert/strict";
import { join } from "node:path";
import { encodeEntity, encodePromptPartA, tokenizeRecord } from "../../lib/collate/mod.ts";
import type { TextRecord } from "../../lib/data/types.ts";
import { configJson, type GlmConfig, weightShapes } from "../../lib/model/config.ts";
import { buildForwardGraph } from "../../lib/model/glm.ts";
import { saveWeights, type Weights } from "../../lib/model/weights.ts";
import {
  type PromptInput,
  rowPrompts,
  type ScoreInput,
  type StepInput,
  type StepModel,
} from "../../lib/generate/mod.ts";
import { Rng } from "../../lib/random.ts";
import { Session } from "../../lib/runtime/session.ts";
import { TextTokenizer } from "../../lib/tokenizer/tokenizer.ts";
import { fileURLToPath } from "node:url";

/** The fixture tokenizer's path. */
export const TOKENIZER = fileURLToPath(
  new URL("../../fixtures/tokenizer/tokenizer.json", import.meta.url),
);

/** The fixture tokenizer. */
export const tokenizer = await TextTokenizer.load(TOKENIZER);

/** A tiny GLM over the fixture tokenizer. */
export const TINY: GlmConfig = {
  vocabSize: tokenizer.vocabSize,
  hiddenSize: 32,
  numLayers: 2,
  numHeads: 2,
  maxSequenceLength: 256,
  layernormEpsilon: 1e-5,
};

/** Random weights: std `std` for matrices, LayerNorm weights around 1, small non-zero biases. */
export function tinyWeights(config: GlmConfig, seed: number, std = 0.15): Weights {
  const rng = new Rng(seed);
  const weights: Weights = new Map();
  for (const [name, shape] of weightShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const ln = name.endsWith("layernorm.weight");
    const s = name.endsWith(".bias") || ln ? 0.05 : std;
    for (let i = 0; i < n; i++) data[i] = (ln ? 1 : 0) + s * rng.normal();
    weights.set(name, data);
  }
  return weights;
}

/** Writes a model directory (config, weights, the fixture tokenizer) into `dir`. */
export async function writeModelDir(
  dir: string,
  config: GlmConfig = TINY,
  weights: Weights = tinyWeights(config, 1),
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(configJson(config)));
  await Deno.copyFile(TOKENIZER, join(dir, "tokenizer.json"));
  await saveWeights(join(dir, "model.safetensors"), config, weights);
}

/** A pool of items with shared prefixes (one title extends another) for search tests. */
export function testItems(): string[] {
  const base = [
    "Glowberry Rose Hand Cream, 2.5 oz",
    "Glowberry Rose Hand Cream, 2.5 oz, Travel Pack",
    "Northwind Bamboo Hair Brush",
    "Lumen Vitamin C Serum 30ml",
    "Dr. Fern's Tea Tree Face Wash",
    "Saltmarsh Sea Clay Mask",
    "Velvet Hour Matte Lipstick - Plum!",
    "Cedar & Sage Beard Oil",
    "Morning Dew Facial Mist",
    "Pixie Pop Nail Polish, Coral",
    "Pixie Pop Nail Polish, Plum",
    "Quiet Harbor Lavender Bath Salts",
  ];
  const brands = ["Glowberry", "Pixie Pop", "Lumen", "Saltmarsh"];
  const things = ["Hand Cream", "Nail Polish", "Face Wash", "Bath Salts", "Hair Brush"];
  for (const b of brands) for (const t of things) base.push(`${b} ${t}`);
  return [...new Set(base)];
}

/**
 * A StepModel whose log-probabilities are a fixed pseudo-random function of the prompt and the
 * tokens fed so far (so any search over it can be checked against brute force).
 */
export class FunctionModel implements StepModel {
  readonly vocabSize: number;
  prompts: PromptInput[] = [];
  #history: number[][] = [];
  #seed: number;
  steps = 0;

  constructor(vocabSize: number, seed = 3) {
    this.vocabSize = vocabSize;
    this.#seed = seed;
  }

  /** Log-softmax of the next token after `tokens` fed to `prompt`. */
  logProbs(prompt: PromptInput, tokens: readonly number[]): Float64Array {
    const rng = Rng.derive(this.#seed, Array.from(prompt.ids).join(","), tokens.join(","));
    const logits = Float64Array.from({ length: this.vocabSize }, () => 3 * rng.normal());
    let max = -Infinity;
    for (const x of logits) max = Math.max(max, x);
    let sum = 0;
    for (const x of logits) sum += Math.exp(x - max);
    const lse = max + Math.log(sum);
    return logits.map((x) => x - lse);
  }

  prefill(prompts: readonly PromptInput[]): Promise<void> {
    this.prompts = [...prompts];
    this.#history = [];
    return Promise.resolve();
  }

  keepPrompts(keep: readonly number[]): void {
    this.prompts = keep.map((k) => this.prompts[k]);
  }

  resetPast(): void {
    this.#history = [];
  }

  step(input: StepInput): Promise<Float32Array> {
    this.steps++;
    const n = input.ids.length;
    const out = new Float32Array(n * this.vocabSize);
    const history: number[][] = [];
    const promptOf = rowPrompts(input, this.prompts.length);
    assert.equal(promptOf.length, n);
    for (let r = 0; r < n; r++) {
      const before = this.#history.length === 0 ? [] : this.#history[input.beamIndex[r]];
      history.push([...before, input.ids[r]]);
      const prompt = this.prompts[promptOf[r]];
      out.set(this.logProbs(prompt, history[r]), r * this.vocabSize);
    }
    this.#history = history;
    return Promise.resolve(out);
  }

  scoreTargets(input: ScoreInput): Promise<Float32Array> {
    const T = input.length;
    const n = input.ids.length / T;
    const out = new Float32Array(n * T);
    for (let r = 0; r < n; r++) {
      const prompt = this.prompts[Math.floor(r / input.perPrompt)];
      const fed: number[] = [];
      for (let t = 0; t < T; t++) {
        fed.push(input.ids[r * T + t]);
        out[r * T + t] = this.logProbs(prompt, fed)[input.targets[r * T + t]];
      }
    }
    return Promise.resolve(out);
  }
}

/**
 * Brute force through the full forward graph (one sequence per answer, no cache): the
 * log-probability of each answer's tokens then `[E]` after part A and `[S]`, in float64 sums.
 * Answers are token lists with their intra-positions (after `[S]`).
 */
export async function fullForwardScores(
  session: Session,
  vocab: number,
  prompt: PromptInput,
  answers: readonly { ids: ArrayLike<number>; intra: ArrayLike<number> }[],
  specials: { sop: number; eop: number },
  /** The tokens the softmax of answer b's i-th target runs over (default: the vocabulary). */
  softmaxOver?: (b: number, i: number) => readonly number[],
): Promise<number[]> {
  const La = prompt.ids.length;
  let L = 0;
  for (const a of answers) L = Math.max(L, La + 1 + a.ids.length);
  const B = answers.length;
  const ids = new Int32Array(B * L);
  const pos = new Int32Array(B * 2 * L);
  for (let b = 0; b < B; b++) {
    const a = answers[b];
    ids.set(prompt.ids, b * L);
    pos.set(prompt.inter, b * 2 * L);
    pos.set(prompt.intra, b * 2 * L + L);
    ids[b * L + La] = specials.sop;
    pos[b * 2 * L + La] = prompt.maskIndex;
    pos[b * 2 * L + L + La] = 1;
    for (let i = 0; i < a.ids.length; i++) {
      ids[b * L + La + 1 + i] = a.ids[i];
      pos[b * 2 * L + La + 1 + i] = prompt.maskIndex;
      pos[b * 2 * L + L + La + 1 + i] = a.intra[i];
    }
  }
  const out = await session.run({
    input_ids: { dtype: "int32", shape: [B, L], data: ids },
    position_ids: { dtype: "int32", shape: [B, 2, L], data: pos },
    sep: { dtype: "int32", shape: [B], data: new Int32Array(B).fill(La) },
  });
  const logits = out.logits.data as Float32Array;
  return answers.map((a, b) => {
    let total = 0;
    for (let i = 0; i <= a.ids.length; i++) {
      const at = (b * L + La + i) * vocab;
      const over = softmaxOver?.(b, i) ?? Array.from({ length: vocab }, (_, v) => v);
      let max = -Infinity;
      for (const v of over) max = Math.max(max, logits[at + v]);
      let sum = 0;
      for (const v of over) sum += Math.exp(logits[at + v] - max);
      const target = i < a.ids.length ? a.ids[i] : specials.eop;
      total += logits[at + target] - max - Math.log(sum);
    }
    return total;
  });
}

/** A forward-graph session (logits) for `weights`. */
export async function forwardSession(config: GlmConfig, weights: Weights): Promise<Session> {
  const { graph } = buildForwardGraph({ config, weights, outputs: "logits" });
  return await Session.create(graph, { device: "cpu", threads: 1 });
}

/** An item's answer tokens with the collator's intra-positions (2 .. n + 1). */
export function itemAnswer(entity: string) {
  const ids = encodeEntity(tokenizer, entity);
  return { ids, intra: Int32Array.from(ids, (_, i) => i + 2) };
}

/** Part A of a sequential prompt: user `user` bought `history` (item entities), then `text`. */
export function sequentialPrompt(
  user: string,
  history: string[],
  text = ". What will they buy next? ",
): PromptInput {
  const record: TextRecord = {
    id: `u${user}/seq`,
    task: "sequential",
    template: "seq-1",
    split: "test",
    user,
    segments: [
      { text: `User ${user} bought ` },
      ...history.flatMap((entity, i) => [
        ...(i > 0 ? [{ text: ", " }] : []),
        { entity, kind: "item" },
      ]),
      { text },
      { answer: true },
    ],
  };
  return encodePromptPartA(tokenizeRecord(tokenizer, record), tokenizer.special);
}

/** A prompt of `length` random tokens below `vocab` (from 5: past the special ids), its mask last. */
export function randomPrompt(rng: Rng, length: number, vocab: number): PromptInput {
  return {
    ids: Int32Array.from({ length }, () => 5 + rng.int(vocab - 5)),
    inter: Int32Array.from({ length }, (_, i) => i),
    intra: new Int32Array(length),
    maskIndex: length - 1,
  };
}
