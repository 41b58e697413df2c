// The library's public face: deno.json `exports` names main.ts and every lib/*/mod.ts, and
// `deno doc --lint` finds nothing to say about them (every exported symbol documented, every type
// a signature names exported too, explicit types), so that `deno publish` can take them.
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runProcess } from "./helpers/process.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** deno.json's `exports` map. */
function exportsMap(): Record<string, string> {
  const config = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json")));
  assert.equal(typeof config.exports, "object", "deno.json exports is a map of entry points");
  return config.exports;
}

Deno.test("deno.json exports main.ts and one entry per lib/*/mod.ts", () => {
  const exports = exportsMap();
  assert.equal(exports["."], "./main.ts");
  const modules = readdirSync(join(ROOT, "lib"), { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(ROOT, "lib", e.name, "mod.ts")))
    .map((e) => e.name)
    .sort();
  assert.ok(modules.length > 0, "lib/ has mod.ts modules");
  const expected: Record<string, string> = { ".": "./main.ts" };
  for (const name of modules) expected[`./${name}`] = `./lib/${name}/mod.ts`;
  assert.deepEqual(exports, expected);
});

Deno.test("deno doc --lint is clean for every exported module", async () => {
  const targets = Object.values(exportsMap());
  const { code, stderr, stdout } = await runProcess(
    [Deno.execPath(), "doc", "--lint", ...targets],
    {
      cwd: ROOT,
    },
  );
  const report = stderr + stdout;
  // The first problems are enough to say which symbols need documentation or an export.
  const problems = report.split("\n").filter((l) => /^error|-->/.test(l)).slice(0, 40).join("\n");
  assert.equal(code, 0, `deno doc --lint ${targets.join(" ")} found problems:\n${problems}`);
});
