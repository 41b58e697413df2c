import assert from "node:assert/strict";
import { dynamicIntraPositions, encodeEntity } from "../lib/collate/mod.ts";
import type { EntityEntry } from "../lib/data/types.ts";
import {
  buildPool,
  CachedDecoder,
  generateText,
  type PromptInput,
  type StepInput,
} from "../lib/generate/mod.ts";
import {
  forwardSession,
  FunctionModel,
  testItems,
  TINY,
  tinyWeights,
  tokenizer,
} from "./helpers/infer.ts";
import { wholeText } from "../lib/generate/infer.ts";
import { BYTE_TO_CHAR, TextTokenizer, trainByteLevelBpe } from "../lib/tokenizer/mod.ts";
import { REAL_TOKENIZERS } from "./helpers/real_tokenizers.ts";

const { sop, eop, mask } = tokenizer.special;
const ENTITIES: EntityEntry[] = [
  ...testItems().map((entity, i) => ({ entity, kind: "item", id: `i${i}` })),
  { entity: "Skin Care", kind: "category", id: "Skin Care" },
];
const pool = buildPool(tokenizer, ENTITIES, { vocabSize: TINY.vocabSize });
const V = TINY.vocabSize;

const allowed = new Uint8Array(V);
for (let v = 0; v < V; v++) allowed[v] = tokenizer.isSpecial(v) ? 0 : 1;
allowed[eop] = 1;

function promptOf(text: string, maskAt = -1): PromptInput {
  const ids = [...tokenizer.encode(text)];
  const at = maskAt < 0 ? ids.length : maskAt;
  ids.splice(at, 0, mask);
  return {
    ids: Int32Array.from(ids),
    inter: Int32Array.from(ids, (_, i) => i),
    intra: new Int32Array(ids.length),
    maskIndex: at,
  };
}

const PROMPTS = [
  promptOf(" Explain why user 4 likes the cream:"),
  promptOf(" Review summary:"),
  promptOf(" What would user 9 say?", 2),
];

/** Prefers `script[t]` at the t-th token after `[S]`, then `[E]`; records what it was fed. */
class ScriptedModel extends FunctionModel {
  fed: StepInput[] = [];
  constructor(readonly script: number[], readonly favour = mask) {
    super(V, 5);
  }
  override logProbs(p: PromptInput, tokens: readonly number[]): Float64Array {
    const out = super.logProbs(p, tokens);
    const t = tokens.length - 1; // tokens after [S]
    out[t < this.script.length ? this.script[t] : eop] = -1e-4;
    out[this.favour] = -1e-5; // a special token the model may not write, liked best of all
    return out;
  }
  override step(input: StepInput): Promise<Float32Array> {
    this.fed.push({ ...input, ids: input.ids.slice(), intra: input.intra.slice() });
    return super.step(input);
  }
}

Deno.test("greedy text stops at [E], never writes special tokens, and positions follow the dynamic rule", async () => {
  // Text, then an entity's tokens (intra grows), then text again (back to 2).
  const script = [
    ...tokenizer.encode(" I like"),
    ...encodeEntity(tokenizer, "Skin Care"),
    ...tokenizer.encode(" a lot."),
  ];
  const model = new ScriptedModel(script);
  const [out] = await generateText(model, [PROMPTS[0]], { sop, eop, trie: pool.entities, allowed });
  assert.deepEqual(Array.from(out.tokens), script);
  assert.equal(out.finished, true);
  // Fed: [S] (intra 1) then every generated token except the last before [E].
  const fed = model.fed.map((s) => s.ids[0]);
  assert.deepEqual(fed, [sop, ...script]);
  const intra = model.fed.map((s) => s.intra[0]);
  assert.deepEqual(intra, [1, ...dynamicIntraPositions(pool.entities, script)]);
  assert.ok(intra.some((x) => x > 2), "the entity's tokens count up");
  for (const s of model.fed) assert.equal(s.inter[0], PROMPTS[0].maskIndex);
});

Deno.test("text generation is cut at the length limit", async () => {
  const script = [...tokenizer.encode(" one two three four five six seven eight nine")];
  const model = new ScriptedModel(script);
  const [out] = await generateText(model, [PROMPTS[1]], {
    sop,
    eop,
    trie: pool.entities,
    allowed,
    maxTokens: 4,
  });
  assert.deepEqual(Array.from(out.tokens), script.slice(0, 4));
  assert.equal(out.finished, false);
  assert.equal(model.fed.length, 4, "no step beyond the limit");
});

Deno.test("greedy decoding with the cache equals greedy decoding through the full forward", async () => {
  const weights = tinyWeights(TINY, 11);
  const full = await forwardSession(TINY, weights);
  const decoder = await CachedDecoder.create({ config: TINY, weights }, {
    device: "cpu",
    threads: 1,
  });
  try {
    const maxTokens = 8;
    const batched = await generateText(decoder, PROMPTS, {
      sop,
      eop,
      trie: pool.entities,
      allowed,
      maxTokens,
    });
    for (let p = 0; p < PROMPTS.length; p++) {
      const prompt = PROMPTS[p];
      // Reference: re-run the whole sequence each step, choose the best allowed token.
      const tokens: number[] = [];
      let finished = false;
      while (tokens.length < maxTokens) {
        const intra = [1, ...dynamicIntraPositions(pool.entities, tokens)];
        const ids = [...prompt.ids, sop, ...tokens];
        const L = ids.length;
        const La = prompt.ids.length;
        const pos = new Int32Array(2 * L);
        pos.set(prompt.inter, 0);
        pos.fill(prompt.maskIndex, La, L);
        pos.set(prompt.intra, L);
        pos.set(intra, L + La);
        const out = await full.run({
          input_ids: { dtype: "int32", shape: [1, L], data: Int32Array.from(ids) },
          position_ids: { dtype: "int32", shape: [1, 2, L], data: pos },
          sep: { dtype: "int32", shape: [1], data: Int32Array.of(La) },
        });
        const logits = (out.logits.data as Float32Array).subarray((L - 1) * V, L * V);
        let best = -1;
        for (let v = 0; v < V; v++) {
          if (allowed[v] && (best < 0 || logits[v] > logits[best])) best = v;
        }
        if (best === eop) {
          finished = true;
          break;
        }
        tokens.push(best);
      }
      assert.deepEqual(Array.from(batched[p].tokens), tokens, `prompt ${p}`);
      assert.equal(batched[p].finished, finished);
      const [alone] = await generateText(decoder, [prompt], {
        sop,
        eop,
        trie: pool.entities,
        allowed,
        maxTokens,
      });
      assert.deepEqual(Array.from(alone.tokens), tokens, `prompt ${p} alone`);
    }
  } finally {
    await decoder.release();
    await full.release();
  }
});

Deno.test("beam text search finds a better-scoring text than greedy and scores it exactly", async () => {
  const [a, b, x, w] = tokenizer.encode(" alpha beta gamma delta").slice(0, 4);
  assert.equal(new Set([a, b, x, w]).size, 4);
  // Greedy takes a (0.6) and rambles; the best text by mean log-probability is b [E].
  class Fork extends FunctionModel {
    override logProbs(_: PromptInput, tokens: readonly number[]): Float64Array {
      const out = new Float64Array(V).fill(-50);
      const last = tokens[tokens.length - 1];
      if (tokens.length === 1) [out[a], out[b]] = [Math.log(0.6), Math.log(0.4)];
      else if (last === b) out[eop] = Math.log(0.95);
      else [out[x], out[w], out[eop]] = [Math.log(0.45), Math.log(0.45), Math.log(0.1)];
      return out;
    }
  }
  const options = { sop, eop, trie: pool.entities, allowed, maxTokens: 6 };
  const [greedy] = await generateText(new Fork(V), [PROMPTS[0]], options);
  assert.equal(greedy.tokens[0], a);
  const [beam] = await generateText(new Fork(V), [PROMPTS[0]], { ...options, beams: 2 });
  assert.deepEqual(Array.from(beam.tokens), [b]);
  assert.equal(beam.finished, true);
  assert.ok(Math.abs(beam.score - (Math.log(0.4) + Math.log(0.95))) < 1e-6);
});

Deno.test("text the length limit cut ends at its last whole character", () => {
  // Characters of 4 UTF-8 bytes, which the byte-level BPE spells byte by byte.
  const ids = tokenizer.encode(" ok \u{20E15}\u{20E16}");
  const whole = tokenizer.encode(" ok \u{20E15}");
  assert.ok(ids.length >= whole.length + 2, "the last character takes several tokens");
  for (let cut = whole.length; cut < ids.length; cut++) {
    assert.equal(wholeText(tokenizer, ids.slice(0, cut), false), " ok \u{20E15}", `cut ${cut}`);
  }
  assert.equal(wholeText(tokenizer, ids, false), " ok \u{20E15}\u{20E16}");
  // A finished text is decoded as it is.
  assert.ok(wholeText(tokenizer, ids.slice(0, -1), true).endsWith("\uFFFD"));
});

Deno.test("a cut text ends at its last whole character with byte tokens too (Llama 2: a U+FFFD a byte)", async () => {
  const llama2 = await TextTokenizer.load(REAL_TOKENIZERS.llama2);
  const ids = llama2.encode("ok \u{20E15}\u{20E16}");
  const whole = llama2.encode("ok \u{20E15}");
  assert.equal(ids.length, whole.length + 4, "the last character is four byte tokens");
  for (let cut = whole.length + 1; cut < ids.length; cut++) {
    assert.ok(llama2.decode(ids.slice(0, cut)).endsWith("\uFFFD"), `cut ${cut}`);
    assert.equal(wholeText(llama2, ids.slice(0, cut), false), "ok \u{20E15}", `cut ${cut}`);
  }
  assert.equal(wholeText(llama2, ids, false), "ok \u{20E15}\u{20E16}");
  // A U+FFFD the model wrote itself stays: Llama 2's own token, or spelled in bytes.
  const fffd = llama2.encode("ok \uFFFD");
  assert.equal(llama2.tokenString(fffd[fffd.length - 1]), "\uFFFD");
  const [e2, continuation] = byteTokens(llama2, "\u20AC"); // <0xE2>, <0x82>
  assert.equal(llama2.byteOf(e2), 0xe2);
  assert.equal(wholeText(llama2, [...fffd, e2], false), "ok \uFFFD");
  const spelled = [...llama2.encode("ok \u{20E15}").slice(0, -4), ...byteTokens(llama2, "\uFFFD")];
  assert.equal(wholeText(llama2, [...spelled, e2], false), "ok \uFFFD");
  // A byte that starts no character is left as it is.
  assert.equal(wholeText(llama2, [...fffd, continuation], false), "ok \uFFFD\uFFFD");
});

/** The id of the token whose vocabulary string is `name`. */
function idOf(tokenizer: TextTokenizer, name: string): number {
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    if (tokenizer.tokenString(id) === name) return id;
  }
  throw new Error(`no token ${name}`);
}

/** The byte tokens that spell `text` in UTF-8 (`<0xE2>`, ...). */
function byteTokens(tokenizer: TextTokenizer, text: string): number[] {
  return [...new TextEncoder().encode(text)].map((b) =>
    idOf(tokenizer, `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`)
  );
}

Deno.test("a byte-level text cut after a U+FFFD the model wrote keeps it (Qwen3)", async () => {
  const qwen3 = await TextTokenizer.load(REAL_TOKENIZERS.qwen3);
  const ids = [...qwen3.encode("Hello\uFFFD"), idOf(qwen3, BYTE_TO_CHAR[0xe2])];
  assert.equal(qwen3.decode(ids), "Hello\uFFFD\uFFFD");
  assert.equal(wholeText(qwen3, ids, false), "Hello\uFFFD");
  assert.equal(
    qwen3.byteOf(ids[ids.length - 1]),
    undefined,
    "byte-level tokens are not byte tokens",
  );
});

Deno.test("a cut text keeps the whole characters in the token that starts the unfinished one", () => {
  // One token holds "a" and the first byte of "é" (as Qwen3's holds "ー" and two bytes of "ダ").
  const json = trainByteLevelBpe(["a"], { vocabSize: 256 }) as {
    model: { vocab: Record<string, number>; merges: string[] };
  };
  const piece = "a" + BYTE_TO_CHAR[0xc3];
  json.model.vocab[piece] = 256;
  json.model.merges.push(`a ${BYTE_TO_CHAR[0xc3]}`);
  const split = TextTokenizer.fromJson(json);
  const ids = split.encode(" a\u00e9");
  assert.equal(split.tokenString(ids[1]), piece);
  assert.equal(wholeText(split, ids.slice(0, -1), false), " a");
  assert.equal(wholeText(split, ids, false), " a\u00e9");
});
