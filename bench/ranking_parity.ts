/**
 * Whether `infer`'s exact item ranking on a decoder family is what transformers and PEFT compute
 * from the same adapter: the whole path (prompt layout, intra-positions, rotary positions of part
 * B, the added rows of [S] and the item tokens, the causal mask, the softmax over the vocabulary
 * or over the items), recomputed independently in one run.
 *
 * The built-in data with item tokens (`textualize --item-tokens title`), a seeded random tiny qwen3
 * with the real Qwen3 tokenizer (`init --family qwen3`), 30 LoRA steps (so the adapter, the intra
 * table and the added rows are not zero), then `infer --tasks sequential --limit 5 --top-k 20`
 * with and without `--trie-softmax`. The prompts are rebuilt with the toolkit's prompt builder
 * (their ids and positions; the scores are not); bench/ranking_parity.py computes the scores in
 * PyTorch and compares. Prints, per softmax, the largest difference of a top-20 score, how many of
 * the records' top-20 orders are the same, and how far the scores move with [S] one rotary
 * position off (`moved`, what a position slip would show).
 *
 *     deno task bench ranking_parity
 *
 * Needs `python3` with torch, transformers, peft and safetensors; RANKING_PARITY_PYTHON names
 * another interpreter.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { encodePromptPartA } from "../lib/collate/collator.ts";
import { loadTokenizerFor } from "../lib/collate/item_tokens.ts";
import { buildPool } from "../lib/collate/pool.ts";
import { tokenizeRecord } from "../lib/collate/tokenize.ts";
import { openDataset, readRecords } from "../lib/data/dataset.ts";
import { commandOutput, lastJsonLine, pythonWith, TRANSFORMERS_STACK } from "./python.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const SCRIPT = fileURLToPath(new URL("./ranking_parity.py", import.meta.url));
const DEMO = fileURLToPath(new URL("../fixtures/demo/", import.meta.url));
const MAX_LENGTH = 200;
const RECORDS = 5;

const cli = (args: string[]) =>
  commandOutput("ranking_parity", Deno.execPath(), ["run", "-A", MAIN, ...args, "--quiet"]);

/** Each predicted record's part A as infer lays it out, and the items, for the Python side. */
async function writePrompts(dir: string, predictions: string): Promise<void> {
  const dataDir = join(dir, "data");
  const data = await openDataset(dataDir);
  const tokenizer = await loadTokenizerFor(join(dir, "model", "tokenizer.json"), dataDir);
  const pool = buildPool(tokenizer, data.entities, { vocabSize: tokenizer.vocabSize });
  const items = pool.items;
  const longest = Math.max(...items.tokens.map((t) => t.length));
  const ids = new Set(
    (await Deno.readTextFile(predictions)).trim().split("\n").map((l) => JSON.parse(l).id),
  );
  const prompts = [];
  for await (const record of readRecords(data, "test")) {
    if (!ids.has(record.id)) continue;
    // As infer: room for [S] and the longest item (lib/generate/infer.ts, the reserve).
    const a = encodePromptPartA(tokenizeRecord(tokenizer, record), tokenizer.special, {
      maxLength: MAX_LENGTH,
      reserve: 1 + longest,
    });
    prompts.push({
      id: record.id,
      ids: [...a.ids],
      inter: [...a.inter],
      intra: [...a.intra],
      maskIndex: a.maskIndex,
    });
  }
  await Deno.writeTextFile(
    join(dir, "prompts.json"),
    JSON.stringify({
      sop: tokenizer.special.sop,
      vocab: tokenizer.vocabSize,
      itemIds: items.ids,
      firstTokens: items.tokens.map((t) => t[0]),
      prompts,
    }),
  );
}

export async function run(): Promise<Record<string, unknown>> {
  const { REAL_TOKENIZERS } = await import("../tests/helpers/real_tokenizers.ts");
  const python = await pythonWith("ranking_parity", "RANKING_PARITY_PYTHON", TRANSFORMERS_STACK);
  const dir = await Deno.makeTempDir({ prefix: "recsysllm-ranking-parity-" });
  try {
    const [data, model, adapter] = ["data", "model", "run"].map((d) => join(dir, d));
    console.error("bench ranking_parity: textualize, init, pretrain (30 LoRA steps), infer");
    await cli([
      ...["textualize", "--format", "csv", "--input", join(DEMO, "interactions.csv")],
      ...["--items", join(DEMO, "items.csv"), "--users", join(DEMO, "users.csv")],
      ...["--item-tokens", "title", "--out", data, "--seed", "1"],
    ]);
    await cli([
      ...["init", "--family", "qwen3", "--preset", "tiny", "--seed", "1"],
      ...["--tokenizer", REAL_TOKENIZERS.qwen3, "--out", model],
    ]);
    await cli([
      ...["pretrain", "--data", data, "--model", model, "--out", adapter, "--lora"],
      ...["--steps", "30", "--batch-size", "2", "--max-length", String(MAX_LENGTH)],
      ...["--lr", "5e-3", "--val-batches", "1", "--device", "cpu"],
    ]);
    const files = [join(dir, "pred.jsonl"), join(dir, "pred_trie.jsonl")];
    for (const [i, file] of files.entries()) {
      await cli([
        ...["infer", "--model", model, "--adapter", adapter, "--data", data, "--device", "cpu"],
        ...["--tasks", "sequential", "--limit", String(RECORDS), "--top-k", "20", "--out", file],
        ...(i === 1 ? ["--trie-softmax"] : []),
      ]);
    }
    await writePrompts(dir, files[0]);
    console.error("bench ranking_parity: PyTorch, transformers and PEFT");
    return await lastJsonLine("ranking_parity", python, [SCRIPT, dir, ...files]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
