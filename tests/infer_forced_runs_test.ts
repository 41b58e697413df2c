// Forced runs in the item search (lib/generate/items.ts `forcedRuns`): where the trie leaves every
// live beam one child for several tokens, those tokens go to the model in one step of T tokens
// per row. Checked here: the decoder's T-token step gives the log-probabilities of T one-token
// steps (GLM and a rotary family, twinned pasts included); the search with forced runs returns
// exactly what one step per token returns over a model whose log-probabilities are a function of
// the tokens (items and scores, with exclusions and the trie's softmax), in fewer steps; and on
// the tiny GLM every prompt's top-k is the same.
import assert from "node:assert/strict";
import type { EntityEntry } from "../lib/data/types.ts";
import {
  buildPool,
  CachedDecoder,
  exclusionOf,
  type ItemSearchOptions,
  type PromptInput,
  rowPrompts,
  type ScoreInput,
  searchItems,
  type StepInput,
  type StepModel,
} from "../lib/generate/mod.ts";
import { glmFamily, type ModelFamily, modelFamily } from "../lib/model/family.ts";
import { noisyDecoderWeights, TINY as TINY_DECODERS } from "./helpers/decoder.ts";
import {
  FunctionModel,
  sequentialPrompt,
  testItems,
  TINY,
  tinyWeights,
  tokenizer,
} from "./helpers/infer.ts";

const { sop, eop } = tokenizer.special;
const ITEMS = testItems();
const ENTITIES: EntityEntry[] = ITEMS.map((entity, i) => ({ entity, kind: "item", id: `i${i}` }));
const pool = buildPool(tokenizer, ENTITIES, { vocabSize: TINY.vocabSize });
// Long titles that branch early and then run on alone: the trie forces most of their tokens.
const LONG_ITEMS = [
  "Aurora Borealis Midnight Shimmer Body Lotion with Warm Vanilla Bean",
  "Aurora Borealis Dawn Glow Brightening Face Serum",
  "Basalt Mountain Charcoal Detox Cleansing Bar, Unscented",
  "Basalt Mountain Volcanic Ash Exfoliating Foot Scrub",
  "Cinder Lane Smoked Cedarwood Beard Balm for Sensitive Skin",
  "Cinder Lane Amber Musk Eau de Toilette Travel Spray",
  "Driftwood Cove Sea Salt Texturizing Hair Mist",
  "Driftwood Cove Coconut Lime Whipped Body Butter",
  "Evergreen Hollow Peppermint Eucalyptus Shower Steamers, Pack of Twelve",
  "Foxglove Meadow Rosehip Overnight Recovery Oil",
];
const longPool = buildPool(
  tokenizer,
  LONG_ITEMS.map((entity, i) => ({ entity, kind: "item", id: `l${i}` })),
  { vocabSize: TINY.vocabSize },
);
const PROMPTS = [
  sequentialPrompt("7", [ITEMS[0], ITEMS[4], ITEMS[9]]),
  sequentialPrompt("12", [ITEMS[2]], ". Next: "),
  sequentialPrompt("3", [ITEMS[5], ITEMS[6], ITEMS[7], ITEMS[8], ITEMS[1]]),
  sequentialPrompt("40", [ITEMS[10], ITEMS[3]]),
];

/**
 * FunctionModel's log-probabilities (a function of the prompt and the tokens fed) behind a step
 * that takes T tokens per row: a run gives exactly what one step per token gives.
 */
class RunFunctionModel implements StepModel {
  readonly vocabSize: number;
  readonly #f: FunctionModel;
  #prompts: PromptInput[] = [];
  #history: number[][] = [];
  /** Steps taken, and tokens fed per row over them. */
  steps = 0;
  tokens = 0;

  constructor(vocabSize: number, seed: number) {
    this.vocabSize = vocabSize;
    this.#f = new FunctionModel(vocabSize, seed);
  }

  prefill(prompts: readonly PromptInput[]): Promise<void> {
    this.#prompts = [...prompts];
    this.#history = [];
    return Promise.resolve();
  }

  keepPrompts(keep: readonly number[]): void {
    this.#prompts = keep.map((k) => this.#prompts[k]);
  }

  resetPast(): void {
    this.#history = [];
  }

  step(input: StepInput): Promise<Float32Array> {
    const T = input.length ?? 1;
    const n = input.ids.length / T;
    const promptOf = rowPrompts(input, this.#prompts.length);
    assert.equal(n, promptOf.length);
    this.steps++;
    this.tokens += T;
    const V = this.vocabSize;
    const out = new Float32Array(n * T * V);
    const history: number[][] = [];
    for (let r = 0; r < n; r++) {
      const fed = this.#history.length === 0 ? [] : [...this.#history[input.beamIndex[r]]];
      const prompt = this.#prompts[promptOf[r]];
      for (let t = 0; t < T; t++) {
        fed.push(input.ids[r * T + t]);
        out.set(this.#f.logProbs(prompt, fed), (r * T + t) * V);
      }
      history.push(fed);
    }
    this.#history = history;
    return Promise.resolve(out);
  }

  scoreTargets(_input: ScoreInput): Promise<Float32Array> {
    throw new Error("not used");
  }
}

Deno.test("forced runs search exactly as one step per token, in fewer steps", async () => {
  const pools = [
    {
      name: "short titles",
      items: pool.items,
      exclusions: [
        exclusionOf(pool.items, [ITEMS[0], ITEMS[9]]),
        null,
        // "..., 2.5 oz" ends where its one child starts the excluded "..., Travel Pack".
        exclusionOf(pool.items, [ITEMS[1]]),
        null,
      ],
    },
    {
      name: "long titles",
      items: longPool.items,
      exclusions: [exclusionOf(longPool.items, [LONG_ITEMS[2]]), null, null, null],
    },
  ];
  // [beams, trieSoftmax, exclusions]; one beam: greedy, one item each.
  const cases: [number, boolean, boolean][] = [
    [1, false, false],
    [2, false, true],
    [4, true, false],
    [12, false, true],
    [12, true, true],
  ];
  let saved = 0;
  for (const { name, items, exclusions } of pools) {
    for (const [beams, trieSoftmax, excluded] of cases) {
      const topK = Math.min(beams, 2);
      const options: ItemSearchOptions = {
        pool: items,
        sop,
        eop,
        beams,
        topK,
        trieSoftmax,
        exclusions: excluded ? exclusions : undefined,
      };
      const stepped = new RunFunctionModel(TINY.vocabSize, 11);
      const want = await searchItems(stepped, PROMPTS, options);
      const runs = new RunFunctionModel(TINY.vocabSize, 11);
      const got = await searchItems(runs, PROMPTS, { ...options, forcedRuns: true });
      const label = `${name}, beams ${beams}, trieSoftmax ${trieSoftmax}, exclusions ${excluded}`;
      assert.deepEqual(got, want, label);
      assert.ok(want.every((r) => r.items.length === topK), label);
      // A forced run groups the tokens one step each would feed (and may feed a few that a search
      // ending within the run would not have), in no more steps.
      assert.equal(stepped.steps, stepped.tokens, label);
      assert.ok(runs.tokens >= stepped.tokens && runs.steps <= stepped.steps, label);
      saved += stepped.steps - runs.steps;
    }
  }
  assert.ok(saved >= 10, `forced runs saved ${saved} steps`);
});

/** Prefills `prompts`, feeds `schedule` (rows of tokens per step) and returns each step's output. */
async function feed(
  decoder: CachedDecoder,
  prompts: PromptInput[],
  schedule: { perPrompt: number; ids: number[][]; beam: number[] }[],
): Promise<Float32Array[]> {
  await decoder.prefill(prompts);
  const out: Float32Array[] = [];
  let fed = 0;
  for (const s of schedule) {
    const T = s.ids[0].length;
    const rows = s.ids.length;
    const logp = await decoder.step({
      perPrompt: s.perPrompt,
      length: T,
      ids: Int32Array.from(s.ids.flat()),
      inter: Int32Array.from(
        { length: rows * T },
        (_, i) => prompts[Math.floor(Math.floor(i / T) / s.perPrompt)].maskIndex,
      ),
      intra: Int32Array.from({ length: rows * T }, (_, i) => ((fed + (i % T)) % 4) + 1),
      beamIndex: Int32Array.from(s.beam),
    });
    out.push(logp.slice());
    fed += T;
  }
  return out;
}

function worst(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i] - b[i]));
  return w;
}

const families: [string, () => ModelFamily][] = [
  ["glm", () => glmFamily({ config: TINY, weights: tinyWeights(TINY, 5) })],
  ["qwen3 (rotary)", () => {
    const config = { ...TINY_DECODERS.qwen3, vocabSize: TINY.vocabSize };
    return modelFamily({ config, weights: noisyDecoderWeights(config, 6, { intra: true }) });
  }],
];
for (const [name, family] of families) {
  Deno.test(`${name}: a step of T tokens per row gives the log-probabilities of T one-token steps`, async () => {
    const decoder = await CachedDecoder.create(family(), { device: "cpu", threads: 1 });
    const V = decoder.vocabSize;
    try {
      const prompts = PROMPTS.slice(0, 2);
      // One row per prompt (a twinned past), then two rows each from reordered beams.
      const a = [[sop], [sop]];
      const b = [[40, 41, 42], [50, 51, 52]];
      const c = [[60, 61], [62, 63], [64, 65], [66, 67]];
      const d = [[70], [71], [72], [73]];
      const runs = await feed(decoder, prompts, [
        { perPrompt: 1, ids: a, beam: [0, 0] },
        { perPrompt: 1, ids: b, beam: [0, 1] },
        { perPrompt: 2, ids: c, beam: [0, 0, 1, 1] },
        { perPrompt: 2, ids: d, beam: [1, 0, 3, 2] },
      ]);
      const col = (rows: number[][], t: number) => rows.map((r) => [r[t]]);
      const steps = await feed(decoder, prompts, [
        { perPrompt: 1, ids: a, beam: [0, 0] },
        { perPrompt: 1, ids: col(b, 0), beam: [0, 1] },
        { perPrompt: 1, ids: col(b, 1), beam: [0, 1] },
        { perPrompt: 1, ids: col(b, 2), beam: [0, 1] },
        { perPrompt: 2, ids: col(c, 0), beam: [0, 0, 1, 1] },
        { perPrompt: 2, ids: col(c, 1), beam: [0, 1, 2, 3] },
        { perPrompt: 2, ids: d, beam: [1, 0, 3, 2] },
      ]);
      // Run rows are [N, T, V]: token t of row r at (r * T + t) * V.
      const at = (out: Float32Array, T: number, r: number, t: number) =>
        out.subarray((r * T + t) * V, (r * T + t + 1) * V);
      const checks: [Float32Array, Float32Array, string][] = [
        [runs[0], steps[0], "[S]"],
        [runs[3], steps[6], "after the runs"],
      ];
      for (let r = 0; r < 2; r++) {
        for (let t = 0; t < 3; t++) {
          checks.push([at(runs[1], 3, r, t), at(steps[1 + t], 1, r, 0), `b ${r} ${t}`]);
        }
      }
      for (let r = 0; r < 4; r++) {
        for (let t = 0; t < 2; t++) {
          checks.push([at(runs[2], 2, r, t), at(steps[4 + t], 1, r, 0), `c ${r} ${t}`]);
        }
      }
      for (const [got, want, label] of checks) {
        assert.equal(got.length, want.length, label);
        const err = worst(got, want);
        assert.ok(err < 1e-5, `${label}: differs by ${err}`);
      }
    } finally {
      await decoder.release();
    }
  });
}

Deno.test("on the tiny GLM, forced runs give every prompt the top-k of one step per token", async () => {
  const decoder = await CachedDecoder.create({ config: TINY, weights: tinyWeights(TINY, 7) }, {
    device: "cpu",
    threads: 1,
  });
  try {
    for (const beams of [1, 3, 10]) {
      const options: ItemSearchOptions = {
        pool: pool.items,
        sop,
        eop,
        beams,
        topK: Math.min(beams, 3),
      };
      let before = decoder.runs;
      const want = await searchItems(decoder, PROMPTS, options);
      const stepRuns = decoder.runs - before;
      before = decoder.runs;
      const got = await searchItems(decoder, PROMPTS, { ...options, forcedRuns: true });
      const forcedRuns = decoder.runs - before;
      assert.ok(forcedRuns < stepRuns, `beams ${beams}: ${forcedRuns} runs, ${stepRuns} stepping`);
      got.forEach((g, p) => {
        assert.deepEqual(Array.from(g.items), Array.from(want[p].items), `beams ${beams} ${p}`);
        const err = worst(g.scores, want[p].scores);
        assert.ok(err < 1e-5, `beams ${beams} prompt ${p}: scores differ by ${err}`);
      });
    }
  } finally {
    await decoder.release();
  }
});
