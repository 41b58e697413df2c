/**
 * Where the training compute goes, per recipe, on Amazon Beauty: of the examples an epoch holds
 * (the first 20,000 training records, collated as pretrain collates them, maximum length 512),
 * the tokens per example, the share of tokens that carry loss (part B), the item targets per
 * example (entities inside part B) and the tokens processed per item target. Compares the
 * default (the mix objective, every record once) with `pretrain --recipe sequential`.
 *
 * Needs `../shared/data/amazon-beauty` beside the checkout; textualizes it and trains the tiny
 * preset's tokenizer into $TMPDIR first (about half a minute).
 *
 * @module
 */

import { join } from "node:path";
import { beautyTextualizeArgs } from "./beauty.ts";
import { benchWorkDir } from "./settings.ts";
import { Collator, exampleRng, type Objective } from "../lib/collate/collator.ts";
import { type TokenizedRecord, tokenizeRecord } from "../lib/collate/tokenize.ts";
import { openDataset, readRecords } from "../lib/data/dataset.ts";
import { epochRecords } from "../lib/train/data.ts";
import { RECIPES } from "../lib/train/recipes.ts";
import { Rng } from "../lib/random.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { InputError } from "../lib/errors.ts";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const RECORDS = 20_000;

async function cli(args: string[]): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "null",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new InputError(`${args[0]} failed (exit ${out.code})`);
}

/** The figures of one recipe over `records`. */
function figures(
  records: TokenizedRecord[],
  tokenizer: TextTokenizer,
  recipe: { objective?: Objective | "mix"; taskWeights?: Readonly<Record<string, number>> },
) {
  const collator = new Collator(tokenizer.special, {
    objective: recipe.objective ?? "mix",
    maxLength: 512,
  });
  const epoch = epochRecords(records.map((r) => r.task), recipe.taskWeights, new Rng(1));
  let tokens = 0, loss = 0, targets = 0;
  epoch.forEach((i, j) => {
    const record = records[i];
    const example = collator.collate(record, exampleRng(1, 0, j));
    tokens += example.length;
    loss += example.length - example.sep;
    const inB = new Set<number>();
    for (let t = example.sep; t < example.length; t++) {
      const u = example.units[t];
      if (u >= 0 && record.unitEntity[u] === 1) inB.add(u);
    }
    targets += inB.size;
  });
  const r = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;
  return {
    examples: epoch.length,
    tokens_per_example: r(tokens / epoch.length, 1),
    loss_share: r(loss / tokens, 3),
    item_targets_per_example: r(targets / epoch.length, 2),
    tokens_per_item_target: r(tokens / targets, 1),
  };
}

/** Textualizes Beauty, trains the tokenizer, and measures both recipes. */
export async function run(): Promise<Record<string, unknown>> {
  const dir = join(Deno.env.get("TMPDIR") ?? "/tmp", "recsysllm-bench-supervision");
  await benchWorkDir(dir, "TMPDIR", { isDefault: true });
  const data = join(dir, "data"), model = join(dir, "model");
  await cli(beautyTextualizeArgs(data));
  await cli(["init", `--data=${data}`, "--preset=tiny", `--out=${model}`, "--seed=1"]);
  const tokenizer = await TextTokenizer.load(join(model, "tokenizer.json"));
  const records: TokenizedRecord[] = [];
  for await (const record of readRecords(await openDataset(data), "train")) {
    records.push(tokenizeRecord(tokenizer, record));
    if (records.length >= RECORDS) break;
  }
  return {
    records: records.length,
    default: figures(records, tokenizer, {}),
    sequential: figures(records, tokenizer, RECIPES.sequential),
  };
}
