/**
 * LoRA adapters in the PEFT layout: save/load round trip, clear errors, merging (the merged model's
 * forward equals the base model's forward with the adapter applied), and `forward --adapter
 * --grads` gradients against finite differences of `forward`'s own loss.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { InputError } from "../lib/errors.ts";
import { SafetensorsFile, writeSafetensors } from "../lib/model/safetensors.ts";
import { loadModel } from "../lib/model/weights.ts";
import { Rng } from "../lib/random.ts";
import {
  type Adapter,
  adapterConfigJson,
  loadAdapter,
  mergeAdapter,
  saveAdapter,
} from "../lib/model/adapter.ts";
import { type AnyConfig, initLora, type LoraConfig, loraShapes } from "../lib/model/lora.ts";
import { methodShapes } from "../lib/model/families/decoder.ts";
import { modelIdentity } from "../lib/model/identity.ts";
import { FAMILY_TABLE, noisyDecoderWeights, TINY } from "./helpers/decoder.ts";
import { writeModelDir } from "../lib/train/outputs.ts";
import { randomBatch } from "./helpers/model.ts";
import { smallConfig, TOKENIZER, writeSmallModel } from "./helpers/train.ts";
import { withTempDir } from "./helpers/temp.ts";

const LORA: LoraConfig = {
  rank: 4,
  alpha: 8,
  dropout: 0.05,
  targets: ["query_key_value", "dense_4h_to_h"],
};

/** An adapter with random A and B (B non-zero, so the adapter changes the model). */
function randomAdapter(config: Awaited<ReturnType<typeof smallConfig>>, seed: number): Adapter {
  const rng = new Rng(seed);
  const weights = new Map<string, Float32Array>();
  for (const [name, shape] of loraShapes(config, LORA)) {
    weights.set(name, Float32Array.from({ length: shape[0] * shape[1] }, () => 0.2 * rng.normal()));
  }
  return { lora: LORA, weights, baseModel: "base" };
}

async function cli(args: string[]): Promise<{ status: number; out: string }> {
  const { code, stdout } = await runCli(args);
  return { status: code, out: stdout };
}

async function batchFile(dir: string, vocab: number): Promise<string> {
  const config = { ...(await smallConfig()), vocabSize: vocab };
  const b = randomBatch(config, [6, 9], 14, 4, [0, 3]);
  const rows = <T>(a: ArrayLike<T>, n: number) =>
    Array.from({ length: a.length / n }, (_, i) => Array.from(a).slice(i * n, (i + 1) * n));
  const path = join(dir, "batch.json");
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      input_ids: rows(b.inputIds, 14),
      position_ids: rows(b.positionIds, 28).map((r) => [r.slice(0, 14), r.slice(14)]),
      sep: Array.from(b.sep),
      labels: rows(b.labels, 14),
      loss_mask: rows(b.lossMask, 14),
    }),
  );
  return path;
}

Deno.test("an adapter saved in the PEFT layout loads back exactly", async () => {
  await withTempDir(async (dir) => {
    const config = await smallConfig();
    const adapter = randomAdapter(config, 1);
    await saveAdapter(join(dir, "a"), adapter, config);
    const json = JSON.parse(await Deno.readTextFile(join(dir, "a", "adapter_config.json")));
    assert.equal(json.peft_type, "LORA");
    assert.equal(json.r, 4);
    assert.equal(json.lora_alpha, 8);
    assert.equal(json.lora_dropout, 0.05);
    assert.deepEqual(json.target_modules, ["query_key_value", "dense_4h_to_h"]);
    assert.equal(json.bias, "none");
    assert.equal(json.base_model_name_or_path, "base");
    const file = await SafetensorsFile.open(join(dir, "a", "adapter_model.safetensors"));
    assert.deepEqual(
      file.entry(
        "base_model.model.glm.transformer.layers.1.attention.query_key_value.lora_A.weight",
      )
        .shape,
      [4, 32],
    );
    assert.deepEqual(
      file.entry("base_model.model.glm.transformer.layers.0.mlp.dense_4h_to_h.lora_B.weight").shape,
      [32, 4],
    );
    const loaded = await loadAdapter(join(dir, "a"), config);
    assert.deepEqual(loaded.lora, LORA);
    assert.deepEqual(loaded.weights, adapter.weights);
  });
});

Deno.test("loading an adapter that does not fit says what and where in one line", async () => {
  await withTempDir(async (dir) => {
    const config = await smallConfig();
    const check = async (path: string, pattern: RegExp, cfg: AnyConfig = config) => {
      await assert.rejects(() => loadAdapter(path, cfg), (e) => {
        assert.ok(e instanceof InputError, String(e));
        assert.ok(!e.message.includes("\n"));
        assert.match(e.message, pattern);
        return true;
      });
    };
    await check(join(dir, "none"), /none: adapter directory not found/);
    await Deno.mkdir(join(dir, "empty"));
    await check(join(dir, "empty"), /adapter_config\.json: file not found/);
    await saveAdapter(join(dir, "a"), randomAdapter(config, 2), config);
    // An adapter of a wider model.
    await check(
      join(dir, "a"),
      /adapter_model\.safetensors: tensor ".*lora_A\.weight" has shape \[4, 32\], expected \[4, 64\]/,
      { ...config, hiddenSize: 64 },
    );
    // An adapter of a deeper model.
    await check(join(dir, "a"), /does not belong to this model's adapter \(1 layers/, {
      ...config,
      numLayers: 1,
    });
    const json = JSON.parse(await Deno.readTextFile(join(dir, "a", "adapter_config.json")));
    const variant = async (name: string, change: Record<string, unknown>) => {
      await Deno.mkdir(join(dir, name));
      await Deno.copyFile(
        join(dir, "a", "adapter_model.safetensors"),
        join(dir, name, "adapter_model.safetensors"),
      );
      await Deno.writeTextFile(
        join(dir, name, "adapter_config.json"),
        JSON.stringify({ ...json, ...change }),
      );
      return join(dir, name);
    };
    await check(await variant("ia3", { peft_type: "IA3" }), /only "LORA" adapters/);
    for (const init of ["pissa", "pissa_niter_4", "olora", "corda", "loftq"]) {
      await check(
        await variant(init, { init_lora_weights: init }),
        new RegExp(`"init_lora_weights" is "${init}": such an adapter applies to a base that`),
      );
    }
    await check(
      await variant("t5", { target_modules: ["q", "v"] }),
      /no target module of \["q","v"\] is a GLM linear module/,
    );
    await check(await variant("r8", { r: 8 }), /has shape \[4, 32\], expected \[8, 32\]/);
    await check(
      await variant("length", { recsysllm: { attention: "prefix", max_length: 0 } }),
      /adapter_config\.json: "recsysllm\.max_length" must be a positive integer/,
    );
    await check(
      await variant("fewer", { target_modules: ["query_key_value"] }),
      /dense_4h_to_h.lora_A.weight" does not belong/,
    );
    // A PEFT adapter whose list names a module the family lacks (a Llama list on GLM-4, whose MLP
    // is one gate_up_proj): PEFT adapted the modules that match, and so does loading it (it was
    // refused, once with an internal error).
    const glm4 = FAMILY_TABLE.glm;
    const qOnly: LoraConfig = { ...LORA, targets: ["q_proj"] };
    const rng = new Rng(5);
    const glmWeights = new Map<string, Float32Array>();
    for (const [name, shape] of loraShapes(glm4, qOnly)) {
      glmWeights.set(name, Float32Array.from({ length: shape[0] * shape[1] }, () => rng.normal()));
    }
    await saveAdapter(
      join(dir, "glm4"),
      { lora: qOnly, weights: glmWeights, baseModel: "b" },
      glm4,
    );
    const glmJson = JSON.parse(await Deno.readTextFile(join(dir, "glm4", "adapter_config.json")));
    await Deno.writeTextFile(
      join(dir, "glm4", "adapter_config.json"),
      JSON.stringify({ ...glmJson, target_modules: ["q_proj", "gate_proj", "up_proj"] }),
    );
    const loaded = await loadAdapter(join(dir, "glm4"), glm4);
    assert.deepEqual(loaded.lora.targets, ["q_proj"]);
    const loraNames = [...loaded.weights.keys()].filter((n) => n.includes(".lora_"));
    assert.deepEqual(loraNames.sort(), [...glmWeights.keys()].sort());
    await Deno.remove(join(dir, "fewer", "adapter_model.safetensors"));
    await check(join(dir, "fewer"), /adapter_model\.safetensors: file not found/);
  });
});

Deno.test("a PEFT adapter with whole trained copies of base weights (modules_to_save) says so", async () => {
  // PEFT saves embed_tokens and lm_head whole for modules_to_save, or after a vocabulary resize
  // (how Python users add tokens); they were refused as if of another model's layers.
  await withTempDir(async (dir) => {
    for (const config of [TINY.llama, TINY.qwen2]) { // lm_head untied, then tied
      const lora: LoraConfig = { rank: 2, alpha: 4, dropout: 0, targets: ["q_proj", "v_proj"] };
      const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
      for (const [name, shape] of loraShapes(config, lora)) {
        tensors[name] = { shape, data: new Float32Array(shape[0] * shape[1]).fill(0.01) };
      }
      const rows = config.vocabSize + 3, h = config.hiddenSize;
      for (const name of ["lm_head.weight", "model.embed_tokens.weight"]) { // PEFT's (sorted) order
        tensors[`base_model.model.${name}`] = {
          shape: [rows, h],
          data: new Float32Array(rows * h),
        };
      }
      const path = join(dir, config.family);
      await Deno.mkdir(path);
      await writeSafetensors(join(path, "adapter_model.safetensors"), tensors, { format: "pt" });
      await Deno.writeTextFile(
        join(path, "adapter_config.json"),
        JSON.stringify({
          ...adapterConfigJson(lora),
          task_type: "CAUSAL_LM",
          modules_to_save: ["lm_head", "embed_tokens"],
        }),
      );
      await assert.rejects(() => loadAdapter(path, config), (e) => {
        assert.ok(e instanceof InputError, String(e));
        assert.match(
          e.message,
          /adapter_model\.safetensors: tensor "base_model\.model\.lm_head\.weight" is a whole trained copy of the base model's "lm_head\.weight" \(PEFT's "modules_to_save"/,
        );
        assert.ok(!e.message.includes("\n"));
        return true;
      });
    }
  });
});

Deno.test("merged weights W + (alpha/r) B A give the same forward as base + adapter", async () => {
  await withTempDir(async (dir) => {
    const config = await smallConfig();
    await writeSmallModel(join(dir, "base"), config, 5);
    const adapter = randomAdapter(config, 3);
    await saveAdapter(join(dir, "adapter"), adapter, config);
    const base = await loadModel(join(dir, "base"));
    await writeModelDir(
      join(dir, "merged"),
      config,
      mergeAdapter(base.weights, config, adapter),
      TOKENIZER,
    );
    const batch = await batchFile(dir, config.vocabSize);
    const run = async (extra: string[], out: string) => {
      const r = await cli(["forward", "--batch", batch, "--out", out, "--device", "cpu", ...extra]);
      assert.equal(r.status, 0);
      const file = await SafetensorsFile.open(out);
      return {
        logits: await file.float32("logits"),
        loss: (await file.float32("loss"))[0],
      };
    };
    const withAdapter = await run(
      ["--model", join(dir, "base"), "--adapter", join(dir, "adapter")],
      join(dir, "a.safetensors"),
    );
    const merged = await run(["--model", join(dir, "merged")], join(dir, "m.safetensors"));
    const plain = await run(["--model", join(dir, "base")], join(dir, "b.safetensors"));
    let worst = 0;
    let moved = 0;
    for (let i = 0; i < merged.logits.length; i++) {
      worst = Math.max(worst, Math.abs(merged.logits[i] - withAdapter.logits[i]));
      moved = Math.max(moved, Math.abs(plain.logits[i] - withAdapter.logits[i]));
    }
    assert.ok(moved > 1e-2, `the adapter changes nothing (${moved})`);
    assert.ok(worst < 1e-4, `merged vs adapter logits differ by ${worst}`);
    assert.ok(Math.abs(merged.loss - withAdapter.loss) < 1e-5);
  });
});

Deno.test("forward --adapter --grads writes every adapter gradient, matching finite differences", async () => {
  await withTempDir(async (dir) => {
    const config = await smallConfig();
    await writeSmallModel(join(dir, "base"), config, 6);
    const adapter = randomAdapter(config, 4);
    await saveAdapter(join(dir, "adapter"), adapter, config);
    const batch = await batchFile(dir, config.vocabSize);
    const forward = async (adapterDir: string, out: string, grads: boolean) => {
      const args = ["forward", "--model", join(dir, "base"), "--adapter", adapterDir];
      const r = await cli([...args, "--batch", batch, "--out", out, "--device", "cpu"].concat(
        grads ? ["--grads"] : [],
      ));
      assert.equal(r.status, 0);
      return await SafetensorsFile.open(out);
    };
    const file = await forward(join(dir, "adapter"), join(dir, "g.safetensors"), true);
    const names = [...adapter.weights.keys()];
    assert.deepEqual(
      file.names().filter((n) => n.startsWith("grad.")).sort(),
      names.map((n) => `grad.${n}`).sort(),
    );
    // Finite differences of forward's own loss (float32, step 1e-2) at the largest entries.
    const loss = (f: SafetensorsFile) => f.float32("loss").then((l) => l[0]);
    let worst = 0;
    for (const name of [names[0], names[1], names[names.length - 1]]) {
      const g = await file.float32(`grad.${name}`, loraShapes(config, LORA).get(name));
      let i = 0;
      for (let k = 1; k < g.length; k++) if (Math.abs(g[k]) > Math.abs(g[i])) i = k;
      const at = async (delta: number, tag: string) => {
        const weights = new Map(adapter.weights);
        const data = weights.get(name)!.slice();
        data[i] += delta;
        weights.set(name, data);
        await saveAdapter(join(dir, tag), { ...adapter, weights }, config);
        return await loss(await forward(join(dir, tag), join(dir, `${tag}.safetensors`), false));
      };
      const h = 1e-2;
      const numeric = ((await at(h, "up")) - (await at(-h, "down"))) / (2 * h);
      const err = Math.abs(numeric - g[i]) / Math.max(Math.abs(numeric), Math.abs(g[i]));
      worst = Math.max(worst, err);
      assert.ok(Math.abs(g[i]) > 1e-4, `${name}: gradient ${g[i]} too small to check`);
    }
    console.log(
      `  forward --grads vs finite differences: worst relative error ${worst.toExponential(2)}`,
    );
    assert.ok(worst < 2e-2, `worst relative error ${worst}`);
  });
});

Deno.test("forward --grads without an adapter is a usage error", async () => {
  const r = await cli(["forward", "--model", "x", "--batch", "y", "--out", "z", "--grads"]);
  assert.equal(r.status, 2);
});

Deno.test("an adapter with other special rows than the model needs says so before the identity check", () =>
  withTempDir(async (dir) => {
    const config = FAMILY_TABLE.qwen3;
    const lora: LoraConfig = { rank: 2, alpha: 4, dropout: 0, targets: ["q_proj"] };
    const rows = 2;
    const weights = noisyDecoderWeights(config, 1, { intra: true, addedRows: rows });
    const tensors = new Map([...initLora(config, lora, new Rng(1))]);
    for (const [name] of methodShapes(config, rows)) tensors.set(name, weights.get(name)!);
    const base = modelIdentity(config, weights);
    const method = { attention: "causal" as const, intraRows: config.intraRows, addedRows: rows };
    await saveAdapter(dir, { lora, weights: tensors, method, base }, config);
    // The same model with one row more (a dataset with one more item token): its identity
    // differs too, but the message names the rows.
    const other = noisyDecoderWeights(config, 1, { intra: true, addedRows: rows + 1 });
    await assert.rejects(
      () =>
        loadAdapter(dir, config, {
          base: { identity: modelIdentity(config, other), dir: "model" },
          model: { weights: other, addedRows: rows + 1 },
        }),
      (error: Error) =>
        error instanceof InputError && /"added_rows" is 2; .* needs 3/.test(error.message),
    );
    // With the rows it was trained with, it loads.
    const loaded = await loadAdapter(dir, config, {
      base: { identity: base, dir: "model" },
      model: { weights, addedRows: rows },
    });
    assert.equal(loaded.method?.addedRows, rows);
  }));
