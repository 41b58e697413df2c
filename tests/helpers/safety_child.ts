/**
 * Child process for the safety tests (not a test file): holds a lock, builds an output and
 * waits, or rewrites an output in a loop, so the test can signal or kill it at any moment.
 *
 *     deno run -A tests/helpers/safety_child.ts MODE PATH
 *
 * Modes: `lock` (hold the output's lock), `build-dir` / `build-file` (claim the output, write
 * part of it, wait), `file-loop` / `dir-loop` (replace the output with version 1, 2, ... forever),
 * `replace-dir` (replace the output directory once with {@linkcode dirVersion} 2: with
 * `RECSYSLLM_FAULT` set, it stops at the named step of the swap).
 * Prints "ready" on stdout once it is under way.
 *
 * @module
 */

import { join } from "node:path";
import { replaceWith, tempName, writeFileAtomic } from "../../lib/io/atomic.ts";
import { OutputLock } from "../../lib/io/lock.ts";
import { claimOutputFile, writeOutputDir } from "../../lib/io/safe_output.ts";

const [mode, path] = Deno.args;
const ready = () => Deno.stdout.writeSync(new TextEncoder().encode("ready\n"));
const forever = () => new Promise<never>(() => setInterval(() => {}, 1000));

/** Version `k` of the file output: 2 MiB of the byte k % 251, so a mix of versions shows. */
export function fileVersion(k: number): Uint8Array {
  return new Uint8Array(2 << 20).fill(k % 251);
}

/** The files of version `k` of a directory output: four files of 64 KiB that name `k`. */
export function dirVersion(k: number): Map<string, string> {
  return new Map([0, 1, 2, 3].map((f) => [`f${f}.txt`, `${k}\n`.repeat(32_768)]));
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
  } else if (mode === "replace-dir") {
    ready();
    await writeOutputDir(path, { command: "test" }, async (dir) => {
      for (const [name, text] of dirVersion(2)) await Deno.writeTextFile(join(dir, name), text);
    });
    // A signal caught during the swap is handled at the next turn of the event loop: give it
    // one, as a command that goes on after its output would.
    await new Promise((resolve) => setTimeout(resolve, 2000));
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
