/**
 * A pretrained decoder whose `vocab_size` pads past its tokenizer (Qwen, GLM-4): the padding rows
 * are dropped at load, so the method's special tokens (appended after the tokenizer's own ids)
 * get trainable, mean-initialised rows of their own instead of never-trained padding rows.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadDecoder } from "../lib/model/families/checkpoint.ts";
import { decoderWeightShapes } from "../lib/model/families/config.ts";
import { initDecoder } from "../lib/model/families/init.ts";
import { writeModelFiles } from "../lib/model/families/merge.ts";
import { loadAnyModel } from "../lib/model/load_any.ts";
import { writeSafetensors } from "../lib/model/safetensors.ts";
import { Rng } from "../lib/random.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

const TOKENIZER = fileURLToPath(new URL("../fixtures/tokenizer/tokenizer.json", import.meta.url));
const PADDING = 40;

Deno.test("a checkpoint's padding rows past its tokenizer give way to rows for the special tokens", () =>
  withTempDir(async (dir) => {
    const plain = join(dir, "plain"), padded = join(dir, "padded");
    // The fixture's tokenizer without the method's tokens (its highest ids), as a real LLM's is.
    const json = JSON.parse(await Deno.readTextFile(TOKENIZER));
    const specials = new Set(json.added_tokens.map((t: { content: string }) => t.content));
    json.added_tokens = [];
    for (const name of specials) delete json.model.vocab[name as string];
    const bare = join(dir, "tokenizer.json");
    await Deno.writeTextFile(bare, JSON.stringify(json));
    await initDecoder({ family: "qwen3", preset: "tiny", out: plain, tokenizer: bare });
    const { config, weights } = await loadDecoder(plain);
    const tokenizer = await TextTokenizer.load(join(plain, "tokenizer.json"));
    assert.equal(config.vocabSize, tokenizer.definedIds);
    // The same checkpoint with vocab_size padded by 40 random rows, as Qwen ships them.
    const h = config.hiddenSize;
    const rng = new Rng(5);
    await Deno.mkdir(padded);
    const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
    const shapes = decoderWeightShapes(config);
    for (const [name, data] of weights) {
      if (name !== "model.embed_tokens.weight" && name !== "lm_head.weight") {
        tensors[name] = { shape: [...shapes.get(name)!], data };
        continue;
      }
      const shape = [config.vocabSize + PADDING, h];
      const grown = new Float32Array(shape[0] * h);
      grown.set(data);
      for (let i = data.length; i < grown.length; i++) grown[i] = rng.normal();
      tensors[name] = { shape, data: grown };
    }
    await writeSafetensors(join(padded, "model.safetensors"), tensors);
    const configJson = JSON.parse(await Deno.readTextFile(join(plain, "config.json")));
    await Deno.writeTextFile(
      join(padded, "config.json"),
      JSON.stringify({
        ...configJson,
        vocab_size: config.vocabSize + PADDING,
        torch_dtype: "float32",
      }),
    );
    await Deno.copyFile(join(plain, "tokenizer.json"), join(padded, "tokenizer.json"));

    const load = (model: string) =>
      loadAnyModel(model, {
        tokenizerIds: tokenizer.vocabSize,
        tokenizerDefinedIds: tokenizer.definedIds,
      });
    const missing = tokenizer.vocabSize - tokenizer.definedIds;
    assert.ok(missing > 0, "the fixture tokenizer lacks some special tokens");
    const a = await load(plain), b = await load(padded);
    // Both: the tokenizer's rows, then one added (trainable) row per missing special token, at
    // the ids the tokenizer gives them.
    for (const m of [a, b]) {
      assert.equal(m.config.vocabSize, tokenizer.definedIds);
      assert.equal(m.addedRows, missing);
      assert.ok(tokenizer.special.mask >= tokenizer.definedIds);
    }
    assert.deepEqual(
      b.weights.get("model.embed_tokens.weight"),
      weights.get("model.embed_tokens.weight"),
    );
    // Before: the specials sat on padding rows and nothing was added.
    const old = await loadAnyModel(padded, { tokenizerIds: tokenizer.vocabSize });
    assert.equal(old.addedRows, 0);

    // A model this toolkit wrote keeps every row: its rows past the tokenizer are trained ones.
    const merged = join(dir, "merged");
    await Deno.mkdir(merged);
    await writeModelFiles(merged, b.config, b.weights, {
      addedRows: b.addedRows,
      attention: "causal",
      tokenizerFile: join(plain, "tokenizer.json"),
    });
    const again = await load(merged);
    assert.equal(again.config.vocabSize, tokenizer.definedIds + missing);
    assert.equal(again.addedRows, 0);
  }));
