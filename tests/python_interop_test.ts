/**
 * Adapters and models as Python reads them, and the other way: adapter_config.json holds only
 * PEFT's LoraConfig keys (the toolkit's settings go in recsysllm_adapter.json beside it),
 * base_model_name_or_path is the model as the user named it, the GLM config.json is not
 * transformers' GLM-4; and an adapter PEFT wrote (LoRA tensors only: no settings, no intra table,
 * no base identity) runs in infer, forward and forward --grads, and trains further.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { adapterConfigJson } from "../lib/model/adapter.ts";
import { configJson, presetConfig } from "../lib/model/config.ts";
import { architectureOf } from "../lib/model/load_any.ts";
import { SafetensorsFile, writeSafetensors } from "../lib/model/safetensors.ts";
import { runCli } from "./helpers/cli.ts";
import { demoDataset, TOKENIZER } from "./helpers/train.ts";
import { withTempDir } from "./helpers/temp.ts";

/**
 * The fields of PEFT's `LoraConfig` (with those of its base `PeftConfig`), as PEFT's documentation
 * of `LoraConfig` lists them (PEFT 0.17). A key outside them makes PEFT >= 0.14 warn and older
 * PEFT raise TypeError.
 */
const PEFT_LORA_CONFIG_FIELDS = new Set([
  // PeftConfig
  "peft_type",
  "auto_mapping",
  "base_model_name_or_path",
  "revision",
  "task_type",
  "inference_mode",
  // LoraConfig
  "r",
  "target_modules",
  "exclude_modules",
  "lora_alpha",
  "lora_dropout",
  "fan_in_fan_out",
  "bias",
  "use_rslora",
  "modules_to_save",
  "init_lora_weights",
  "layers_to_transform",
  "layers_pattern",
  "rank_pattern",
  "alpha_pattern",
  "megatron_config",
  "megatron_core",
  "trainable_token_indices",
  "loftq_config",
  "eva_config",
  "corda_config",
  "use_dora",
  "use_qalora",
  "qalora_group_size",
  "layer_replication",
  "runtime_config",
  "lora_bias",
  "target_parameters",
]);

const LORA = { rank: 4, alpha: 8, dropout: 0, targets: ["q_proj", "v_proj"] };

Deno.test("adapter_config.json holds PEFT's LoraConfig keys only; GLM's config.json is not GLM-4's", async () => {
  const method = { attention: "prefix" as const, intraRows: 64, addedRows: 2 };
  for (const json of [adapterConfigJson(LORA, "m"), adapterConfigJson(LORA, "m", method)]) {
    const unknown = Object.keys(json).filter((k) => !PEFT_LORA_CONFIG_FIELDS.has(k));
    assert.deepEqual(unknown, []);
  }
  const glm = configJson(presetConfig("tiny", 100));
  assert.notEqual(glm.model_type, "glm"); // transformers' "glm" is GLM-4
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(glm));
    assert.deepEqual(await architectureOf(dir), { kind: "glm-thudm" });
  });
});

Deno.test("a decoder run writes PEFT's keys, its settings beside them, the model as named; a PEFT adapter runs and trains on", () =>
  withTempDir(async (dir) => {
    const data = await demoDataset();
    const model = join(dir, "model");
    const init = await runCli([
      "init",
      ...["--family", "qwen3", "--preset", "tiny", "--tokenizer", TOKENIZER, "--out", model],
      "--quiet",
    ]);
    assert.equal(init.code, 0, init.stderr);
    const named = relative(Deno.cwd(), model); // a relative path, as a user types it
    const train = (out: string, ...extra: string[]) =>
      runCli([
        "pretrain",
        ...["--data", data, "--model", named, "--out", out, "--steps", "1", "--batch-size", "2"],
        ...["--val-batches", "0", "--max-length", "128", "--device", "cpu", "--quiet", ...extra],
      ]);
    const run = join(dir, "run");
    const trained = await train(run, "--attention", "prefix", "--lora");
    assert.equal(trained.code, 0, trained.stderr);
    const config = JSON.parse(await Deno.readTextFile(join(run, "adapter_config.json")));
    assert.deepEqual(Object.keys(config).filter((k) => !PEFT_LORA_CONFIG_FIELDS.has(k)), []);
    assert.equal(config.base_model_name_or_path, named);
    const settings = JSON.parse(await Deno.readTextFile(join(run, "recsysllm_adapter.json")));
    assert.equal(settings.attention, "prefix");

    // What PEFT writes: LoRA tensors only, no metadata beyond format, PEFT's keys, no settings.
    const peft = join(dir, "peft");
    await Deno.mkdir(peft);
    const file = await SafetensorsFile.open(join(run, "adapter_model.safetensors"));
    const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const name of file.names().filter((n) => n.includes(".lora_"))) {
      tensors[name] = { shape: file.entry(name).shape, data: await file.float32(name) };
    }
    assert.ok(file.names().some((n) => !n.includes(".lora_")), "the run has its intra table");
    await writeSafetensors(join(peft, "adapter_model.safetensors"), tensors, { format: "pt" });
    await Deno.writeTextFile(
      join(peft, "adapter_config.json"),
      JSON.stringify({ ...config, base_model_name_or_path: "Qwen/Qwen3-0.6B" }),
    );

    const pred = join(dir, "pred.jsonl");
    const infer = await runCli([
      "infer",
      ...["--model", model, "--adapter", peft, "--data", data, "--out", pred],
      ...["--tasks", "sequential", "--limit", "2", "--device", "cpu", "--quiet"],
    ]);
    assert.equal(infer.code, 0, infer.stderr);
    assert.equal((await Deno.readTextFile(pred)).trim().split("\n").length, 2);

    // A batch by hand: 16 tokens, part B (with loss) from position 8.
    const L = 16, sep = 8;
    const ids = Array.from({ length: L }, (_, i) => 10 + i * 7);
    const batch = join(dir, "batch.json");
    await Deno.writeTextFile(
      batch,
      JSON.stringify({
        input_ids: [ids],
        position_ids: [[
          ids.map((_, i) => Math.min(i, sep)),
          ids.map((_, i) => Math.max(0, i - sep)),
        ]],
        sep: [sep],
        labels: [ids.map((id, i) => (i >= sep ? id : -100))],
        loss_mask: [ids.map((_, i) => (i >= sep ? 1 : 0))],
      }),
    );
    for (const grads of [false, true]) {
      const out = join(dir, `forward-${grads}.safetensors`);
      const forward = await runCli([
        "forward",
        ...["--model", model, "--adapter", peft, "--batch", batch, "--out", out, "--quiet"],
        ...["--device", "cpu", ...(grads ? ["--grads"] : [])],
      ]);
      assert.equal(forward.code, 0, forward.stderr);
      assert.ok(Number.isFinite(JSON.parse(forward.stdout).loss));
      if (grads) {
        const written = await SafetensorsFile.open(out);
        const loraGrads = written.names().filter((n) =>
          n.startsWith("grad.") && n.includes("lora_")
        );
        assert.equal(loraGrads.length, Object.keys(tensors).length);
        for (const name of loraGrads) {
          assert.ok((await written.float32(name)).every(Number.isFinite), name);
        }
      }
    }

    const further = join(dir, "further");
    const again = await train(further, "--adapter", peft);
    assert.equal(again.code, 0, again.stderr);
    const next = await SafetensorsFile.open(join(further, "adapter_model.safetensors"));
    const a = Object.keys(tensors).find((n) => n.includes("lora_A"))!;
    assert.equal(next.entry(a).shape.join(), tensors[a].shape.join());
    assert.notDeepEqual(await next.float32(a), tensors[a].data); // trained on from PEFT's values
  }));
