// SASRec's item table as a model's starting item rows (lib/model/item_rows.ts): eval
// --save-baselines writes it, init --item-rows places it in the GLM's item-token rows.
import assert from "node:assert/strict";
import { join } from "node:path";
import { placeItemRows, readItemTable } from "../lib/model/item_rows.ts";
import { SafetensorsFile } from "../lib/model/safetensors.ts";
import { runCli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

const DEMO = fileURLToPath(new URL("../fixtures/demo/", import.meta.url));
const TOKENIZER = fileURLToPath(new URL("../fixtures/tokenizer/tokenizer.json", import.meta.url));

Deno.test("placeItemRows: SASRec's columns scaled to the RMS asked, zeros after, other rows kept", () => {
  const width = 4;
  const embedding = Float32Array.from({ length: 6 * width }, (_, i) => i + 1);
  placeItemRows(embedding, width, Float32Array.of(3, 0, 0, 4), 2, 4, 0.02);
  const rows = Array.from(embedding.slice(16));
  const rms = Math.sqrt(rows.reduce((s, v) => s + v * v, 0) / rows.length);
  assert.ok(Math.abs(rms - 0.02) < 1e-8);
  assert.deepEqual(rows.map((v) => v === 0), [false, true, true, true, true, false, true, true]);
  assert.ok(Math.abs(rows[5] / rows[0] - 4 / 3) < 1e-6); // directions and relative norms kept
  assert.deepEqual(Array.from(embedding.slice(0, 16)), Array.from({ length: 16 }, (_, i) => i + 1));
  assert.throws(
    () => placeItemRows(embedding, width, new Float32Array(3 * 2), 2, 4, 0.02),
    RangeError,
  );
});

async function ok(args: string[]): Promise<string> {
  const run = await runCli(args);
  assert.equal(run.code, 0, `${args[0]}: ${run.stderr}`);
  return run.stdout;
}

async function demoData(out: string, extra: string[], input = join(DEMO, "interactions.csv")) {
  await ok([
    "textualize",
    "--format",
    "csv",
    "--input",
    input,
    "--items",
    join(DEMO, "items.csv"),
    "--tasks",
    "profile,sequential",
    "--out",
    out,
    "--seed",
    "1",
    "--quiet",
    ...extra,
  ]);
}

Deno.test("eval --save-baselines writes SASRec's item table; init --item-rows starts the item rows from it", async () => {
  await withTempDir(async (dir) => {
    const data = join(dir, "data"), base = join(dir, "base");
    await demoData(data, ["--item-tokens", "title"]);
    await ok([
      "eval",
      "--data",
      data,
      "--tasks",
      "sequential",
      "--baseline",
      "sasrec",
      "--sasrec-epochs",
      "2",
      "--sasrec-hidden",
      "16",
      "--sasrec-heads",
      "1",
      "--save-baselines",
      base,
      "--quiet",
    ]);
    const tableFile = join(base, "sasrec-items.safetensors");
    const entities = JSON.parse(await Deno.readTextFile(join(data, "entities.json")));
    const ids = entities.filter((e: { kind: string }) => e.kind === "item").map((
      e: { id: string },
    ) => e.id);
    const { rows, hidden } = await readItemTable(tableFile, ids);
    assert.equal(hidden, 16);
    assert.equal(rows.length, ids.length * 16);

    const init = (out: string, extra: string[] = []) =>
      ok([
        "init",
        "--data",
        data,
        "--preset",
        "tiny",
        "--hidden-size",
        "32",
        "--layers",
        "1",
        "--heads",
        "2",
        "--tokenizer",
        TOKENIZER,
        "--out",
        out,
        "--seed",
        "4",
        "--quiet",
        ...extra,
      ]);
    await init(join(dir, "plain"));
    await init(join(dir, "seeded"), ["--item-rows", tableFile]);
    const embedding = async (model: string) => {
      const file = await SafetensorsFile.open(join(model, "model.safetensors"));
      const config = JSON.parse(await Deno.readTextFile(join(model, "config.json")));
      const shape = [config.vocab_size, config.hidden_size];
      const { tensors } = await file.float32All(new Map([["glm.word_embeddings.weight", shape]]));
      return {
        table: tensors.get("glm.word_embeddings.weight")!,
        vocab: config.vocab_size as number,
      };
    };
    const plain = await embedding(join(dir, "plain")),
      seeded = await embedding(join(dir, "seeded"));
    const first = seeded.vocab - ids.length;
    // The tokenizer's own rows are the random ones of the same seed.
    assert.deepEqual(seeded.table.slice(0, first * 32), plain.table.slice(0, first * 32));
    // Each item's row is its SASRec row (times one common scale) in columns 0..15, zeros after.
    let scale = 0;
    for (let i = 0; i < ids.length; i++) {
      for (let c = 0; c < 32; c++) {
        const v = seeded.table[(first + i) * 32 + c];
        if (c >= 16) {
          assert.equal(v, 0);
          continue;
        }
        const s = rows[i * 16 + c];
        if (Math.abs(s) > 1e-3) {
          if (scale === 0) scale = v / s;
          assert.ok(Math.abs(v / s - scale) < 1e-3 * Math.abs(scale), `item ${i} column ${c}`);
        }
      }
    }
    assert.ok(scale > 0);
    const items = Array.from(seeded.table.slice(first * 32));
    const rms = Math.sqrt(items.reduce((s, v) => s + v * v, 0) / items.length);
    assert.ok(Math.abs(rms - 0.02) < 1e-4, `rms ${rms}`);

    // Refused: a dataset without item tokens, and another dataset's items.
    const titles = join(dir, "titles");
    await demoData(titles, []);
    const none = await runCli([
      "init",
      "--data",
      titles,
      "--preset",
      "tiny",
      "--tokenizer",
      TOKENIZER,
      "--out",
      join(dir, "x"),
      "--item-rows",
      tableFile,
    ]);
    assert.equal(none.code, 1);
    assert.match(
      none.stderr,
      /manifest\.json: --item-rows sets the item tokens' rows, and this dataset has none \(textualize --item-tokens title\)/,
    );
    const lines = (await Deno.readTextFile(join(DEMO, "interactions.csv"))).trim().split("\n");
    const fewer = join(dir, "fewer.csv");
    await Deno.writeTextFile(fewer, lines.slice(0, Math.floor(lines.length / 2)).join("\n") + "\n");
    const other = join(dir, "other");
    await demoData(other, ["--item-tokens", "title"], fewer);
    const wrong = await runCli([
      "init",
      "--data",
      other,
      "--preset",
      "tiny",
      "--tokenizer",
      TOKENIZER,
      "--out",
      join(dir, "y"),
      "--item-rows",
      tableFile,
    ]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /sasrec-items\.safetensors: its \d+ items are another dataset's/);
    const family = await runCli([
      "init",
      "--data",
      data,
      "--family",
      "qwen3",
      "--preset",
      "small",
      "--out",
      join(dir, "z"),
      "--item-rows",
      tableFile,
    ]);
    assert.equal(family.code, 2);
    assert.match(family.stderr, /--item-rows is for the project's GLM/);
  });
});
