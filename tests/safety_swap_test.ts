/**
 * A directory replacement stopped at every step of its swap, by SIGTERM, SIGINT and SIGKILL
 * delivered at that exact step (lib/io/fault.ts), never costs the output: right after the stop
 * the old or the new version is whole at its path or, after a kill -9 between the two renames,
 * aside; the next run on the output puts back or finishes what was left, and nothing stays behind.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { removeStaleTemporaries } from "../lib/io/atomic.ts";
import { FAULT_POINTS } from "../lib/io/fault.ts";
import { OUTPUT_MARKER, writeOutputDir } from "../lib/io/safe_output.ts";
import { startProcess } from "./helpers/process.ts";
import { dirVersion } from "./helpers/safety_child.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

const CHILD = fileURLToPath(new URL("./helpers/safety_child.ts", import.meta.url));
const EXIT = { SIGTERM: 143, SIGINT: 130, SIGKILL: 137 } as const;

async function names(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const e of Deno.readDir(dir)) found.push(e.name);
  return found.sort();
}

async function writeVersion(path: string, k: number): Promise<void> {
  await writeOutputDir(path, { command: "test" }, async (dir) => {
    for (const [name, text] of dirVersion(k)) await Deno.writeTextFile(join(dir, name), text);
  });
}

/** Which version the directory `path` holds whole (1 or 2), or an assertion error. */
async function wholeVersion(path: string, at: string): Promise<number> {
  const files = (await names(path)).filter((n) => n !== OUTPUT_MARKER);
  assert.deepEqual(files, [...dirVersion(1).keys()], `${at}: files ${files}`);
  const first = await Deno.readTextFile(join(path, files[0]));
  const k = Number(first.slice(0, first.indexOf("\n")));
  for (const [name, text] of dirVersion(k)) {
    assert.equal(await Deno.readTextFile(join(path, name)), text, `${at}: ${name} mixed`);
  }
  return k;
}

for (const signal of ["SIGTERM", "SIGINT", "SIGKILL"] as const) {
  Deno.test(`a directory swap stopped by ${signal} at each of its steps leaves the old or the new output whole`, () =>
    withTempDir(async (dir) => {
      for (const point of FAULT_POINTS) {
        const out = join(dir, point);
        const at = `${signal} at ${point}`;
        await writeVersion(out, 1);
        const child = startProcess([Deno.execPath(), "run", "-A", CHILD, "replace-dir", out], {
          env: { RECSYSLLM_FAULT: `${point}:${signal}` },
        });
        assert.equal((await child.status).code, EXIT[signal], at);
        const left = (await names(dir)).filter((n) => n.startsWith(`.${point}`));
        if (signal === "SIGKILL") {
          // Frozen at the step: a kill -9 between the renames leaves the old output aside.
          if (point === "swap-aside") {
            assert.ok(!(await names(dir)).includes(point), `${at}: nothing at the path`);
            assert.ok(left.some((n) => n.endsWith("-old")), `${at}: the old output is aside`);
          } else {
            assert.equal(await wholeVersion(out, at), point === "swap-start" ? 1 : 2, at);
          }
          // The next run puts back (or finishes) what was left, and removes the rest.
          await removeStaleTemporaries(out);
          const k = await wholeVersion(out, `${at}, then the next run`);
          assert.equal(k, point === "swap-start" || point === "swap-aside" ? 1 : 2, at);
        } else {
          // A caught signal is handled before the swap or after it, never between the renames:
          // here the swap had begun, so the new output is in place and nothing else remains.
          assert.equal(await wholeVersion(out, at), 2, at);
          assert.deepEqual(left, [], `${at}: left ${left}`);
        }
        await writeVersion(out, 3);
        assert.deepEqual(
          (await names(dir)).filter((n) => n.startsWith(`.${point}`)),
          [],
          `${at}: the next write leaves nothing beside the output`,
        );
      }
    }));
}
