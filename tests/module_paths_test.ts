// A module's own file path comes from fileURLToPath, never from a URL's `pathname`: that keeps
// the URL's escapes, so in a checkout (or a release unpacked under a HOME) whose path has a space
// `deno task demo` and `deno task test` looked for `/tmp/with%20space/...` and found nothing.

import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { ROOT } from "./helpers/process.ts";
import { tsFiles } from "./helpers/source_files.ts";

/** The folders (and files) whose TypeScript is checked. */
const SOURCES = ["main.ts", "commands", "lib", "tools", "tests", "fixtures", "bench"];

/** A module URL turned into a path by its `pathname` (possibly over lines). */
const PATHNAME = /new URL\((?:[^()]|\([^()]*\))*\)\s*\.pathname/;

Deno.test("no source turns a module URL into a path with .pathname (a space is %20 there)", async () => {
  const found: string[] = [];
  for (const source of SOURCES) {
    const path = join(ROOT, source);
    const files = source.endsWith(".ts") ? [path] : await Array.fromAsync(tsFiles(path));
    for (const file of files) {
      const text = await Deno.readTextFile(file);
      const at = text.search(PATHNAME);
      if (at < 0) continue;
      const line = text.slice(0, at).split("\n").length;
      found.push(`${relative(ROOT, file)}:${line} (use fileURLToPath from node:url)`);
    }
  }
  assert.deepEqual(found, []);
});
