/**
 * A tokenizer that puts a token before every text (Llama 2's `<s>`), through the whole pipeline on
 * a tiny random llama: the run records it among the settings a resume must match, and training
 * and inference run with it (tests/collate_properties_test.ts checks the examples and prompts).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { CHECKSUM_KEY, SafetensorsFile } from "../lib/model/safetensors.ts";
import { CHECKPOINT_FORMAT, STATE_CHECKSUM_KEY } from "../lib/train/checkpoint.ts";
import { cliOk, runCli } from "./helpers/cli.ts";
import { REAL_TOKENIZERS } from "./helpers/real_tokenizers.ts";
import { withTempDir } from "./helpers/temp.ts";
import { demoDataset, itemEntities } from "./helpers/train.ts";

/**
 * Rewrites the `settings` of a run's checkpoint in place, sealed again as lib/train/checkpoint.ts
 * seals it (its tensors stay as they are).
 */
async function editCheckpointSettings(
  path: string,
  edit: (settings: Record<string, unknown>) => void,
): Promise<void> {
  const bytes = await Deno.readFile(path);
  const length = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
  const state = JSON.parse(header.__metadata__.state);
  edit(state.settings);
  const meta = header.__metadata__;
  meta.state = JSON.stringify(state);
  meta[STATE_CHECKSUM_KEY] = createHash("sha256")
    .update(`${CHECKPOINT_FORMAT}\n${meta.state}\n${meta[CHECKSUM_KEY]}`).digest("hex");
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + bytes.length - 8 - length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(bytes.subarray(8 + length), 8 + json.length);
  await Deno.writeFile(path, out);
}

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
    // A run from before examples started with <s> (no prefixIds; its records hashed without it)
    // is refused for that reason, not as a changed dataset.
    const olderRun = join(root, "older-run");
    await Deno.mkdir(olderRun);
    for (const entry of Deno.readDirSync(run)) {
      if (entry.isFile) await Deno.copyFile(join(run, entry.name), join(olderRun, entry.name));
    }
    await editCheckpointSettings(join(olderRun, "checkpoint.safetensors"), (settings) => {
      delete settings.prefixIds;
      settings.trainSha256 = "0".repeat(64);
    });
    const resumed = await runCli([...pretrain, "--steps", "2", "--out", olderRun, "--resume"]);
    assert.equal(resumed.code, 1, resumed.stderr);
    assert.match(
      resumed.stderr,
      /trained before examples started with the tokenizer's <s> \(2026-12-07\); to train on from its weights, start a new run with --adapter /,
    );
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
