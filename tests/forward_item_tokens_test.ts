// forward with an adapter trained on a dataset of item tokens: `--data` gives the vocabulary its
// item rows (as infer's does); without it the adapter's rows are refused as not the model's.
import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli, runCliProcess } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp.ts";
import { demoSequentialDataset } from "./helpers/textualize.ts";
import { fileURLToPath } from "node:url";

const TOKENIZER = fileURLToPath(new URL("../fixtures/tokenizer/tokenizer.json", import.meta.url));

Deno.test("forward --adapter --data: an adapter with item rows runs; without --data it is refused", async () => {
  await withTempDir(async (dir) => {
    const data = join(dir, "data");
    await demoSequentialDataset(data, "title");
    const ok = async (args: string[]) => {
      const r = await runCli([...args, "--quiet"]);
      assert.equal(r.code, 0, `${args[0]}: ${r.stderr}`);
      return r.stdout;
    };
    const model = join(dir, "model"), run = join(dir, "run");
    await ok(["init", "--family", "llama", "--preset", "tiny", "--tokenizer", TOKENIZER]
      .concat(["--data", data, "--out", model]));
    await ok(["pretrain", "--data", data, "--model", model, "--out", run, "--lora", "--steps", "1"]
      .concat([
        "--batch-size",
        "2",
        "--max-length",
        "128",
        "--val-batches",
        "0",
        "--threads",
        "1",
      ]));
    // One collated training example of the dataset (its item tokens among the ids) as the batch.
    const collated = await runCliProcess(["collate", "--data", data, "--limit", "1"]
      .concat(["--tokenizer", join(model, "tokenizer.json"), "--max-length", "128"]));
    assert.equal(collated.code, 0, collated.stderr);
    const example = JSON.parse(collated.stdout.split("\n")[0]);
    const batch = join(dir, "batch.json");
    await Deno.writeTextFile(
      batch,
      JSON.stringify({
        input_ids: [example.input_ids],
        position_ids: [example.position_ids],
        sep: [example.sep],
        labels: [example.labels],
        loss_mask: [example.loss_mask],
      }),
    );
    const forward = ["forward", "--model", model, "--adapter", run, "--batch", batch];
    const summary = JSON.parse(
      await ok([
        ...forward,
        "--data",
        data,
        "--out",
        join(dir, "a.safetensors"),
        "--device",
        "cpu",
      ]),
    );
    assert.ok(Number.isFinite(summary.loss), JSON.stringify(summary));
    const without = await runCli([...forward, "--out", join(dir, "b.safetensors"), "--quiet"]);
    assert.equal(without.code, 1);
    assert.match(
      without.stderr,
      /outside 0\.\.\d+ \(a dataset's item tokens: give it with --data DIR\)/,
    );
    // A tokenizer.json that is there but broken is named, not taken for no tokenizer.
    await Deno.writeTextFile(join(model, "tokenizer.json"), '{"model": ');
    const broken = await runCli([...forward, "--data", data, "--out", join(dir, "c.safetensors")]);
    assert.equal(broken.code, 1, broken.stderr);
    assert.match(broken.stderr, /tokenizer\.json/);
  });
});

Deno.test("forward refuses a batch longer than a sliding window it would attend past", async () => {
  await withTempDir(async (dir) => {
    const model = join(dir, "qwen2");
    const init = await runCli(
      ["init", "--family", "qwen2", "--preset", "tiny", "--tokenizer", TOKENIZER]
        .concat(["--out", model, "--quiet"]),
    );
    assert.equal(init.code, 0, init.stderr);
    const config = JSON.parse(await Deno.readTextFile(join(model, "config.json")));
    await Deno.writeTextFile(
      join(model, "config.json"),
      JSON.stringify({
        ...config,
        use_sliding_window: true,
        sliding_window: 16,
        max_window_layers: 0,
      }),
    );
    const batch = (L: number) => ({
      input_ids: [Array.from({ length: L }, (_, t) => 5 + t)],
      position_ids: [[Array.from({ length: L }, (_, t) => t), new Array(L).fill(0)]],
      sep: [L],
    });
    const run = async (L: number) => {
      const file = join(dir, `b${L}.json`);
      await Deno.writeTextFile(file, JSON.stringify(batch(L)));
      return await runCli(
        ["forward", "--model", model, "--batch", file, "--out", join(dir, `o${L}.safetensors`)]
          .concat(["--device", "cpu", "--quiet"]),
      );
    };
    assert.equal((await run(16)).code, 0);
    const long = await run(17);
    assert.equal(long.code, 1, long.stderr);
    assert.match(long.stderr, /b17\.json: .*16/);
  });
});
