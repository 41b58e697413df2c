// Item tokens are positions in one dataset's item list (lib/collate/item_tokens.ts), so a model's
// item rows name that dataset's items only. These tests make datasets from the demo data that a
// model of another dataset would load on without a guard (the same number of items under other
// ids, fewer items) and check that every place a model meets a dataset refuses them: infer's
// loader (a GLM from init, a GLM after pretrain --full, a decoder's LoRA adapter) and pretrain.
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkItemTokens, itemTokenDigest } from "../lib/collate/item_tokens.ts";
import { type Dataset, openDataset } from "../lib/data/dataset.ts";
import { DEFAULT_RECORD_OPTIONS, type ItemTokenMode } from "../lib/data/record_options.ts";
import { textualize } from "../lib/data/textualize.ts";
import { InputError } from "../lib/errors.ts";
import { loadForInference } from "../lib/generate/load.ts";
import { initDecoder } from "../lib/model/families/init.ts";
import { initModel } from "../lib/model/init.ts";
import { loadAnyModel } from "../lib/model/load_any.ts";
import { train } from "../lib/train/trainer.ts";
import { runCli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

const DEMO = fileURLToPath(new URL("../fixtures/demo/", import.meta.url));
const TOKENIZER = fileURLToPath(new URL("../fixtures/tokenizer/tokenizer.json", import.meta.url));

/** The demo's CSV files, with the item ids renamed and only the items `keep` says. */
async function demoCsv(dir: string, rename: (id: string) => string, keep: (id: string) => boolean) {
  await Deno.mkdir(dir, { recursive: true });
  const lines = async (name: string) => (await Deno.readTextFile(join(DEMO, name))).split("\n");
  const [itemsHead, ...items] = await lines("items.csv");
  const [interHead, ...interactions] = await lines("interactions.csv");
  const kept = (id: string) => keep(id) ? rename(id) : undefined;
  const out = { input: join(dir, "interactions.csv"), items: join(dir, "items.csv") };
  await Deno.writeTextFile(
    out.items,
    [
      itemsHead,
      ...items.filter(Boolean).flatMap((l) => {
        const [id, ...rest] = l.split(",");
        const to = kept(id);
        return to === undefined ? [] : [[to, ...rest].join(",")];
      }),
    ].join("\n") + "\n",
  );
  await Deno.writeTextFile(
    out.input,
    [
      interHead,
      ...interactions.filter(Boolean).flatMap((l) => {
        const [user, id, ...rest] = l.split(",");
        const to = kept(id);
        return to === undefined ? [] : [[user, to, ...rest].join(",")];
      }),
    ].join("\n") + "\n",
  );
  return out;
}

/** The demo data (sequential prompts only: fast) textualized into `dir`. */
async function demoData(
  dir: string,
  itemTokens: ItemTokenMode,
  csv?: { input: string; items: string },
): Promise<Dataset> {
  await textualize({
    read: {
      format: "csv",
      input: csv?.input ?? join(DEMO, "interactions.csv"),
      users: join(DEMO, "users.csv"),
      items: csv?.items ?? join(DEMO, "items.csv"),
    },
    records: { ...DEFAULT_RECORD_OPTIONS, seed: 1, tasks: ["sequential"], itemTokens },
    out: dir,
  });
  return await openDataset(dir);
}

/** The datasets of the tests: the demo's, and three a model of it must not answer. */
async function datasets(root: string) {
  const demo = await demoData(join(root, "demo"), "title");
  // The same items under other ids: as many rows, each naming another item.
  const renamed = await demoData(
    join(root, "renamed"),
    "title",
    await demoCsv(join(root, "renamed-csv"), (id) => `Q${id}`, () => true),
  );
  // The first 200 items: fewer rows than the model has.
  const fewer = await demoData(
    join(root, "fewer"),
    "title",
    await demoCsv(join(root, "fewer-csv"), (id) => id, (id) => Number(id.slice(1)) <= 200),
  );
  const only = await demoData(join(root, "only"), "only");
  const plain = await demoData(join(root, "plain"), "none");
  return { demo, renamed, fewer, only, plain };
}

/** Whether `run` throws an InputError whose one line matches `pattern`. */
async function refused(run: () => Promise<unknown>, pattern: RegExp) {
  await assert.rejects(run, (error) => {
    assert.ok(error instanceof InputError, String(error));
    assert.match(error.message, pattern);
    assert.ok(!error.message.includes("\n"), error.message);
    return true;
  });
}

/** A GLM of one layer (hidden 16) init'd for `data` into `out`. */
async function tinyGlm(data: Dataset, out: string) {
  await initModel({
    data: data.dir,
    preset: "tiny",
    shape: { hiddenSize: 16, numLayers: 1, numHeads: 2 },
    tokenizer: TOKENIZER,
    out,
    seed: 3,
  });
}

/** Opens `model` (with `adapter`) for `data` and releases it at once; with its warnings. */
async function load(model: string, data: Dataset, adapter?: string) {
  const warnings: string[] = [];
  const loaded = await loadForInference({
    model,
    adapter,
    data,
    device: "cpu",
    threads: 1,
    onWarning: (w) => warnings.push(w),
  });
  await loaded.decoder.release();
  return { ...loaded, warnings };
}

Deno.test("the digest: the item ids in entities.json order, the mode beside them; none without item tokens", async () => {
  await withTempDir(async (root) => {
    const { demo, renamed, fewer, only, plain } = await datasets(root);
    const items = demo.entities.filter((e) => e.kind === "item");
    const digest = itemTokenDigest(demo)!;
    assert.equal(digest.count, items.length);
    assert.equal(digest.mode, "title");
    assert.match(digest.sha256, /^[0-9a-f]{64}$/);
    // A function of the ids and their order only: the same list hashes alike, any other not.
    const again = await demoData(join(root, "again"), "title");
    assert.deepEqual(itemTokenDigest(again), digest);
    assert.deepEqual(itemTokenDigest(only), { ...digest, mode: "only" });
    assert.equal(itemTokenDigest(renamed)!.count, digest.count);
    assert.notEqual(itemTokenDigest(renamed)!.sha256, digest.sha256);
    assert.ok(itemTokenDigest(fewer)!.count < digest.count);
    assert.equal(itemTokenDigest(plain), undefined);
    const swapped = {
      ...demo,
      entities: demo.entities.map((e) =>
        e.id === items[0].id ? items[1] : e.id === items[1].id ? items[0] : e
      ),
    };
    assert.notEqual(itemTokenDigest(swapped)!.sha256, digest.sha256);

    // The check: a record of another list is refused, naming the file; none, or a dataset
    // without item tokens, is accepted.
    const source = { file: "m/config.json", fix: "init a model for this dataset" };
    checkItemTokens(digest, demo, source);
    checkItemTokens(undefined, renamed, source);
    checkItemTokens(digest, plain, source);
    assert.throws(
      () => checkItemTokens(digest, renamed, source),
      new RegExp(
        `^InputError: m/config\\.json: its item tokens are another dataset's \\(293 items, ` +
          `sha256 ${digest.sha256.slice(0, 12)}\\.\\.\\.\\); .*renamed/entities\\.json has 293 ` +
          `items .*: init a model for this dataset$`,
      ),
    );
    assert.throws(
      () => checkItemTokens(digest, only, source),
      /m\/config\.json: its item tokens were trained with item_tokens "title"; .*only\/manifest\.json has "only": textualize with itemTokens title, or init a model/,
    );
  });
});

Deno.test("a GLM init'd on one dataset's item tokens is refused on another's (as many, fewer or more items) by infer, pretrain and --resume; the record survives pretrain --full", async () => {
  await withTempDir(async (root) => {
    const { demo, renamed, fewer, only, plain } = await datasets(root);
    const model = join(root, "model");
    await tinyGlm(demo, model);
    const config = JSON.parse(await Deno.readTextFile(join(model, "config.json")));
    assert.deepEqual(config.recsysllm_item_tokens, itemTokenDigest(demo));

    // Its own dataset, and one without item tokens (the rows unused, which it warns of), load.
    const own = await load(model, demo);
    assert.equal(own.vocabSize, config.vocab_size);
    assert.deepEqual(own.warnings, []);
    assert.deepEqual((await load(model, plain)).warnings, [
      `${join(model, "config.json")}: its 293 item tokens are unused: ${plain.dir}/manifest.json ` +
      `has none, so items are ranked by their titles alone (textualize with itemTokens title to ` +
      `use them)`,
    ]);
    // A model made without item rows, on a dataset with item tokens: told why, not only that the
    // tokenizer is too large.
    const titles = join(root, "titles-model");
    await tinyGlm(plain, titles);
    await refused(
      () => load(titles, demo),
      /titles-model\/config\.json: vocab_size \d+ is smaller than the \d+ ids of its tokenizer with the 293 item tokens of .*demo\/manifest\.json: the model has no rows for them; init a model for this dataset$/,
    );
    // Another dataset's: refused naming config.json, before anything is decoded.
    const another =
      /model\/config\.json: its item tokens are another dataset's \(293 items, sha256 [0-9a-f]{12}\.\.\.\); .* has (293|199) items .*: init a model for this dataset$/;
    await refused(() => load(model, renamed), another);
    await refused(() => load(model, fewer), another);
    await refused(() => load(model, only), /item_tokens "title"; .* has "only"/);

    // infer, as a command: exit 1, one line, no predictions written.
    const out = join(root, "pred.jsonl");
    const cli = await runCli([
      "infer",
      ...["--model", model, "--data", fewer.dir, "--out", out, "--device", "cpu", "--quiet"],
    ]);
    assert.equal(cli.code, 1, cli.stderr);
    assert.match(cli.stderr.trim(), another);
    assert.equal(cli.stderr.trim().split("\n").length, 1, cli.stderr);
    await assert.rejects(() => Deno.stat(out), Deno.errors.NotFound);

    // pretrain refuses it too (it would train the rows as other items), before any step.
    const run = { steps: 2, batchSize: 2, maxLength: 512, valBatches: 0, seed: 1, threads: 1 };
    await refused(
      () => train({ data: renamed.dir, model, out: join(root, "wrong"), lora: null, ...run }),
      another,
    );
    await assert.rejects(() => Deno.stat(join(root, "wrong", "model.safetensors")));

    // A model made before the record: accepted as before.
    const old = join(root, "old");
    await Deno.mkdir(old);
    for (const f of ["model.safetensors", "tokenizer.json"]) {
      await Deno.copyFile(join(model, f), join(old, f));
    }
    const { recsysllm_item_tokens: _, ...older } = config;
    await Deno.writeTextFile(join(old, "config.json"), JSON.stringify(older));
    await load(old, fewer);

    // pretrain --full keeps the record in the run's config.json (every writer keeps it), and
    // the trained model is refused on another dataset as init's was.
    const full = join(root, "full");
    await train({ data: demo.dir, model, out: full, lora: null, ...run });
    const trained = JSON.parse(await Deno.readTextFile(join(full, "config.json")));
    assert.deepEqual(trained.recsysllm_item_tokens, itemTokenDigest(demo));
    assert.equal(trained.vocab_size, config.vocab_size);
    const loaded = await loadAnyModel(full, { tokenizerIds: 0 });
    assert.deepEqual(loaded.config.itemTokens, itemTokenDigest(demo));
    await load(full, demo);
    await refused(() => load(full, fewer), /full\/config\.json: its item tokens are another/);
    // --resume with another dataset's items: refused by the base model's record, the run kept.
    const before = await Deno.readFile(join(full, "model.safetensors"));
    await refused(
      () => train({ data: renamed.dir, model, out: full, lora: null, resume: true, ...run }),
      another,
    );
    assert.deepEqual(await Deno.readFile(join(full, "model.safetensors")), before);

    // The model made before the record, trained --full on an item-token dataset, records it.
    const oldFull = join(root, "old-full");
    await train({ data: fewer.dir, model: old, out: oldFull, lora: null, ...run });
    const recorded = JSON.parse(await Deno.readTextFile(join(oldFull, "config.json")));
    assert.deepEqual(recorded.recsysllm_item_tokens, itemTokenDigest(fewer));
    await refused(() => load(oldFull, demo), /another dataset's \(199 items/);

    // More items than the rows: the record says why, before the vocabulary's size does.
    const small = join(root, "small");
    await initModel({
      data: fewer.dir,
      preset: "tiny",
      shape: { hiddenSize: 16, numLayers: 1, numHeads: 2 },
      tokenizer: TOKENIZER,
      out: small,
    });
    await refused(
      () => load(small, demo),
      /small\/config\.json: its item tokens are another dataset's \(199 items, .* has 293 items/,
    );
    const { recsysllm_item_tokens: __, ...unrecorded } = JSON.parse(
      await Deno.readTextFile(join(small, "config.json")),
    );
    await Deno.writeTextFile(join(small, "config.json"), JSON.stringify(unrecorded));
    await refused(() => load(small, demo), /vocab_size \d+ is smaller than the \d+ ids/);
  });
});

Deno.test("a decoder's LoRA adapter records the item tokens it trained beside added_rows and is refused on another dataset's", async () => {
  await withTempDir(async (root) => {
    const { demo, renamed, fewer, plain } = await datasets(root);
    const model = join(root, "qwen3");
    await initDecoder({
      family: "qwen3",
      preset: "tiny",
      tokenizer: TOKENIZER,
      out: model,
      seed: 2,
      shape: { hiddenSize: 16, numLayers: 1, numHeads: 2 },
    });
    const adapter = join(root, "adapter");
    const merged = join(root, "merged");
    await train({
      data: demo.dir,
      model,
      out: adapter,
      merge: merged,
      lora: { rank: 2, alpha: 4, dropout: 0, targets: [] },
      steps: 2,
      batchSize: 2,
      maxLength: 512,
      valBatches: 0,
      seed: 1,
      threads: 1,
    });
    const settings = JSON.parse(
      await Deno.readTextFile(join(adapter, "recsysllm_adapter.json")),
    );
    const digest = itemTokenDigest(demo)!;
    assert.deepEqual(settings.item_tokens, digest);
    // The rows: the method's special tokens the tokenizer lacks, then the items.
    assert.ok(settings.added_rows >= digest.count, JSON.stringify(settings));
    // PEFT's file keeps PEFT's keys only.
    const peft = JSON.parse(await Deno.readTextFile(join(adapter, "adapter_config.json")));
    assert.equal(peft.item_tokens, undefined);

    const withAdapter = await load(model, demo, adapter);
    assert.ok(withAdapter.adapter);
    assert.deepEqual(withAdapter.warnings, []);
    // Without the adapter the item rows are the mean row, added at load: every item scores alike.
    assert.match(
      (await load(model, demo)).warnings.join("\n"),
      /manifest\.json: its 293 item tokens have no trained rows in .*qwen3: every item scores alike; pretrain on this dataset first/,
    );
    // The same number of rows: only the record tells them apart.
    const another =
      /adapter\/recsysllm_adapter\.json: its item tokens are another dataset's \(293 items, .* has (293|199) items .*: train an adapter on this dataset$/;
    await refused(() => load(model, renamed, adapter), another);
    // Fewer rows: the record answers first, not added_rows and not the base identity.
    await refused(() => load(model, fewer, adapter), another);
    // Without item tokens the adapter's rows do not fit the model (added_rows, as before).
    await refused(() => load(model, plain, adapter), /"added_rows" is \d+; .* needs \d+/);
    // pretrain --adapter (continuing it) on another dataset: refused the same way.
    await refused(
      () =>
        train({
          data: renamed.dir,
          model,
          adapter,
          out: join(root, "more"),
          lora: { rank: 2, alpha: 4, dropout: 0, targets: [] },
          steps: 1,
          batchSize: 2,
          maxLength: 512,
          valBatches: 0,
          threads: 1,
        }),
      another,
    );

    // pretrain --merge: the merged model's config.json records them (its rows now hold them).
    const config = JSON.parse(await Deno.readTextFile(join(merged, "config.json")));
    assert.deepEqual(config.recsysllm_item_tokens, digest);
    await load(merged, demo);
    await refused(
      () => load(merged, renamed),
      /merged\/config\.json: its item tokens are another dataset's .*: start from the model it was trained from, or one trained on this dataset$/,
    );
  });
});
