/**
 * The whole pipeline on a tiny random qwen3 with the real Qwen3 tokenizer: init, pretrain
 * (LoRA a few steps, the intra table and special rows trained with it), infer (trie-constrained
 * beam search: every item valid) and eval, each as a real command run.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { SafetensorsFile } from "../lib/model/safetensors.ts";
import { cliOk } from "./helpers/cli.ts";
import { REAL_TOKENIZERS } from "./helpers/real_tokenizers.ts";
import { withTempDir } from "./helpers/temp.ts";
import { demoDataset, itemEntities } from "./helpers/train.ts";

Deno.test("qwen3 + the real Qwen3 tokenizer: init, pretrain (LoRA), infer (every item valid), eval", async () => {
  const data = await demoDataset();
  await withTempDir(async (root) => {
    const model = join(root, "model");
    const run = join(root, "run");
    const pred = join(root, "pred.jsonl");
    await cliOk([
      "init",
      "--family",
      "qwen3",
      "--preset",
      "tiny",
      "--tokenizer",
      REAL_TOKENIZERS.qwen3,
      "--out",
      model,
    ]);
    const summary = JSON.parse(
      await cliOk([
        "pretrain",
        "--quiet",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--data",
        data,
        "--model",
        model,
        "--out",
        run,
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--lr",
        "5e-3",
        "--val-batches",
        "1",
        "--max-length",
        "160",
        "--attention",
        "prefix",
        "--lora",
        "--merge",
        join(root, "merged"),
      ]),
    );
    assert.ok(Number.isFinite(summary.loss) && summary.steps === 3, JSON.stringify(summary));
    const config = JSON.parse(await Deno.readTextFile(join(run, "adapter_config.json")));
    assert.equal(config.task_type, "CAUSAL_LM");
    assert.deepEqual(config.target_modules, ["q_proj", "k_proj", "v_proj"]);
    assert.equal(config.recsysllm, undefined); // PEFT's keys only; the settings beside them
    const settings = JSON.parse(await Deno.readTextFile(join(run, "recsysllm_adapter.json")));
    assert.deepEqual(settings, {
      format: "recsysllm-adapter-1",
      attention: "prefix",
      intra_position_rows: 64,
      added_rows: 5,
      max_length: 160, // the run's --max-length, which infer keeps to
    });
    const file = await SafetensorsFile.open(join(run, "adapter_model.safetensors"));
    const intra = await file.float32("base_model.model.model.intra_position_embeddings.weight");
    assert.ok(intra.some((x) => x !== 0), "the intra table was trained");
    assert.ok(file.has("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"));
    assert.ok(file.has("base_model.model.model.embed_tokens.added.weight"));

    // forward --grads: the adapter's gradients, the method's tensors included.
    const batchFile = join(root, "batch.json");
    await Deno.writeTextFile(
      batchFile,
      JSON.stringify({
        input_ids: [[9707, 11, 1879, 151669, 151672, 1879, 0]],
        position_ids: [[[0, 1, 2, 3, 3, 3, 3], [0, 0, 0, 0, 1, 2, 3]]],
        sep: [4],
        labels: [[-100, -100, -100, -100, 1879, 0, 151673]],
        loss_mask: [[0, 0, 0, 0, 1, 1, 1]],
      }),
    );
    const gradsFile = join(root, "grads.safetensors");
    await cliOk([
      "forward",
      "--model",
      model,
      "--adapter",
      run,
      "--batch",
      batchFile,
      "--out",
      gradsFile,
      "--device",
      "cpu",
      "--grads",
    ]);
    const grads = await SafetensorsFile.open(gradsFile);
    for (
      const name of [
        "grad.base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
        "grad.model.intra_position_embeddings.weight",
        "grad.model.embed_tokens.added.weight",
      ]
    ) {
      const g = await grads.float32(name);
      assert.ok(g.every(Number.isFinite) && g.some((x) => x !== 0), name);
    }

    await cliOk([
      "infer",
      "--quiet",
      "--device",
      "cpu",
      "--threads",
      "1",
      "--model",
      model,
      "--adapter",
      run,
      "--data",
      data,
      "--tasks",
      "sequential",
      "--limit",
      "3",
      "--beams",
      "6",
      "--top-k",
      "4",
      "--out",
      pred,
    ]);
    const lines = (await Deno.readTextFile(pred)).trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(lines.length, 3);
    const items = await itemEntities(data);
    for (const line of lines) {
      assert.equal(line.predictions.length, 4);
      for (const p of line.predictions) {
        assert.ok(items.has(p.entity), `not an item: ${p.entity}`);
      }
    }
    // The merged model (special rows joined on, intra table, attention rule in config.json)
    // predicts what the base model with the adapter predicts.
    const merged = JSON.parse(await Deno.readTextFile(join(root, "merged", "config.json")));
    assert.equal(merged.vocab_size, 151674);
    assert.deepEqual(merged.recsysllm, { attention: "prefix", max_length: 160 });
    // Its weights are float32, and config.json says so (init's were BF16).
    assert.equal(merged.torch_dtype, "float32");
    const mergedPred = join(root, "merged.jsonl");
    await cliOk([
      "infer",
      "--quiet",
      "--device",
      "cpu",
      "--threads",
      "1",
      "--model",
      join(root, "merged"),
      "--data",
      data,
      "--tasks",
      "sequential",
      "--limit",
      "3",
      "--beams",
      "6",
      "--top-k",
      "4",
      "--out",
      mergedPred,
    ]);
    const again = (await Deno.readTextFile(mergedPred)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    for (const [i, line] of again.entries()) {
      for (const [k, p] of line.predictions.entries()) {
        assert.equal(p.entity, lines[i].predictions[k].entity);
        assert.ok(Math.abs(p.score - lines[i].predictions[k].score) < 1e-3);
      }
    }
    const report = JSON.parse(
      await cliOk([
        "eval",
        "--quiet",
        "--data",
        data,
        "--predictions",
        pred,
        "--tasks",
        "sequential",
      ]),
    );
    const scores = Object.values(report.methods)[0] as Record<string, Record<string, number>>;
    assert.equal(scores.sequential.valid, 1, JSON.stringify(scores).slice(0, 300));
    assert.equal(scores.sequential.count, 3);
    assert.ok(scores.sequential["HR@10"] >= 0);
  });
});
