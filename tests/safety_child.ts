/**
 * Child process for the safety tests (not a test file): holds a lock, builds an output and
 * waits, or rewrites an output in a loop, so the test can signal or kill it at any moment.
 *
 *     deno run -A tests/safety_child.ts MODE PATH
 *
 * Modes: `lock` (hold the output's lock), `build-dir` / `build-file` (claim the output, write
 * part of it, wait), `file-loop` / `dir-loop` (replace the output with version 1, 2, ... forever).
 * Prints "ready" on stdout once it is under way.
 *
 * @module
 */

import { join } from "node:path";
import { replaceWith, tempName, writeFileAtomic } from "../lib/io/atomic.ts";
import { OutputLock } from "../lib/io/lock.ts";
import { claimOutputFile, writeOutputDir } from "../lib/io/safe_output.ts";

const [mode, path] = Deno.args;
const ready = () => Deno.stdout.writeSync(new TextEncoder().encode("ready\n"));
const forever = () => new Promise<never>(() => setInterval(() => {}, 1000));

/** Version `k` of the file output: 2 MiB of the byte k % 251, so a mix of versions shows. */
export function fileVersion(k: number): Uint8Array {
  return new Uint8Array(2 << 20).fill(k % 251);
}

if (import.meta.main) {
  if (mode === "lock") {
    await OutputLock.acquire(path, "test");
    ready();
    await forever();
  } else if (mode === "build-dir") {
    await writeOutputDir(path, { command: "test" }, async (dir) => {
      await Deno.writeTextFile(join(dir, "part.txt"), "half written");
      ready();
      await forever();
    });
  } else if (mode === "build-file") {
    const out = await claimOutputFile(path, { command: "test" });
    await Deno.writeTextFile(out.tmp, "half written");
    ready();
    await forever();
  } else if (mode === "file-loop") {
    ready();
    for (let k = 1;; k++) await writeFileAtomic(path, fileVersion(k));
  } else if (mode === "dir-loop") {
    ready();
    for (let k = 1;; k++) {
      const tmp = tempName(path);
      await Deno.mkdir(tmp);
      for (let f = 0; f < 8; f++) {
        await Deno.writeTextFile(join(tmp, `f${f}.txt`), `${k}\n`.repeat(20_000));
      }
      await replaceWith(tmp, path);
    }
  }
}
