/**
 * A tokenizer that puts a token before every text (Llama 2's `<s>`), through the whole pipeline on
 * a tiny random llama: the run records it among the settings a resume must match, and training
 * and inference run with it (tests/collate_properties_test.ts checks the examples and prompts).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { SafetensorsFile } from "../lib/model/safetensors.ts";
import { cliOk, runCli } from "./helpers/cli.ts";
import { REAL_TOKENIZERS } from "./helpers/real_tokenizers.ts";
import { withTempDir } from "./helpers/temp.ts";
import { demoDataset, itemEntities } from "./helpers/train.ts";

Deno.test("llama + Llama 2's tokenizer (<s> first): init, pretrain (LoRA), infer (every item valid)", async () => {
  const data = await demoDataset();
  await withTempDir(async (root) => {
    const model = join(root, "model");
    const run = join(root, "run");
    const pred = join(root, "pred.jsonl");
    await cliOk([
      ...["init", "--family", "llama", "--preset", "tiny"],
      ...["--tokenizer", REAL_TOKENIZERS.llama2, "--out", model],
    ]);
    const pretrain = [
      ...["pretrain", "--quiet", "--device", "cpu", "--threads", "1", "--data", data],
      ...["--model", model, "--out", run, "--batch-size", "2", "--lr", "5e-3"],
      ...["--val-batches", "1", "--max-length", "160", "--lora"],
    ];
    const merged = join(root, "merged");
    const summary = JSON.parse(await cliOk([...pretrain, "--steps", "2", "--merge", merged]));
    assert.ok(Number.isFinite(summary.loss) && summary.steps === 2, JSON.stringify(summary));
    // The run, the adapter and the merged model record the prefix their examples started with.
    const checkpoint = await SafetensorsFile.open(join(run, "checkpoint.safetensors"));
    assert.deepEqual(JSON.parse(checkpoint.metadata.state).settings.prefixIds, [1]); // <s>
    const settingsFile = join(run, "recsysllm_adapter.json");
    const settings = JSON.parse(await Deno.readTextFile(settingsFile));
    assert.deepEqual(settings.prefix_ids, [1]);
    const config = JSON.parse(await Deno.readTextFile(join(merged, "config.json")));
    assert.deepEqual(config.recsysllm.prefix_ids, [1]);

    await cliOk([
      ...["infer", "--quiet", "--device", "cpu", "--threads", "1", "--model", model],
      ...["--adapter", run, "--data", data, "--tasks", "sequential", "--limit", "3"],
      ...["--beams", "4", "--top-k", "3", "--out", pred],
    ]);
    const lines = (await Deno.readTextFile(pred)).trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(lines.length, 3);
    const items = await itemEntities(data);
    for (const line of lines) {
      assert.equal(line.predictions.length, 3);
      for (const p of line.predictions) {
        assert.ok(items.has(p.entity), `not an item: ${p.entity}`);
      }
    }
    // A shard's part records it in its run's identity.
    const infer = [
      ...["infer", "--device", "cpu", "--threads", "1", "--model", model, "--adapter", run],
      ...["--data", data, "--tasks", "sequential", "--limit", "1", "--beams", "2", "--top-k", "2"],
    ];
    await cliOk([...infer, "--quiet", "--shard", "0/1", "--out", pred]);
    const sidecar = JSON.parse(
      await Deno.readTextFile(join(root, "pred-00000-of-00001.jsonl.shard.json")),
    );
    assert.deepEqual(sidecar.run.text_prefix, [1]);
    // An adapter trained before examples started with <s> is told so at inference.
    delete settings.prefix_ids;
    await Deno.writeTextFile(settingsFile, JSON.stringify(settings));
    const older = await runCli([...infer, "--out", join(root, "older.jsonl")]);
    assert.equal(older.code, 0, older.stderr);
    assert.match(
      older.stderr,
      /trained before prompts started with the tokenizer's <s> \(2026-12-07\)/,
    );
    // The pretrained model alone learned from texts that started with it: nothing to say.
    const alone = infer.filter((arg) => arg !== "--adapter" && arg !== run);
    const plain = await runCli([...alone, "--out", join(root, "plain.jsonl")]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.doesNotMatch(plain.stderr, /trained before prompts started/);
  });
});
