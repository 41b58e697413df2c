/**
 * The demo's output directory made ready for a run: emptied when an earlier demo made it and
 * holds nothing else, refused otherwise. What "nothing else" means: at the top, only the names the
 * demo writes (its stages' outputs, their lock files, temporaries); inside each stage's output
 * directory, only what that stage's ownership marker lists (or, for a directory of files claimed
 * one by one, the names its stage writes). A stage still running (a demo killed
 * while its stage went on) holds its lock, and the directory is refused with its PID; a lock left
 * by a killed stage is stale and taken over. The directory itself is never removed (a link to it
 * stays a link): its entries are, each renamed to a temporary first, so an interruption leaves
 * only temporaries, which the next run removes.
 *
 * @module
 */

import { basename, join } from "node:path";
import { InputError, optionName } from "../errors.ts";
import { isTemporaryName, tempName } from "../io/atomic.ts";
import { isMissingOrEmptyDir, pathExists } from "../io/fs.ts";
import { lockPath, OutputLock } from "../io/lock.ts";
import { OUTPUT_MARKER, readMarker } from "../io/safe_output.ts";

/** The file that marks a directory as the demo's. */
export const DEMO_MARKER = ".recsysllm-demo";

async function names(dir: string): Promise<{ name: string; isDirectory: boolean }[]> {
  const out: { name: string; isDirectory: boolean }[] = [];
  for await (const entry of Deno.readDir(dir)) {
    out.push({ name: entry.name, isDirectory: entry.isDirectory });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Entries of stage output `dir` its marker does not list, or without a marker those not in
 * `unmarked` (a directory of files claimed one by one: eval --save-baselines); temporaries and
 * the lock files of listed entries aside.
 */
async function added(dir: string, unmarked: ReadonlySet<string> = new Set()): Promise<string[]> {
  const marker = await readMarker(dir);
  const listed = new Set([...(marker?.files ?? unmarked), OUTPUT_MARKER]);
  const lockNames = new Set([...listed].map((name) => lockName(dir, name)));
  return (await names(dir)).map((e) => e.name).filter((name) =>
    !listed.has(name) && !isTemporaryName(name) && !lockNames.has(name)
  );
}

/** The name of the lock file of output `name` inside `dir` (lib/io/lock.ts names it). */
const lockName = (dir: string, name: string) => basename(lockPath(join(dir, name)));

function refuse(path: string, foreign: string[]): never {
  const shown = foreign.slice(0, 3).join(", ") + (foreign.length > 3 ? ", ..." : "");
  throw new InputError(
    `${path}: holds files the demo did not write (${shown}); choose another ${optionName("out")}`,
  );
}

/**
 * Makes `out` an empty directory marked as the demo's: made when missing, emptied when an earlier
 * demo made it and it holds only what the demo writes (`known`: the names at its top; `unmarked`:
 * the names inside each stage directory that has no ownership marker), refused
 * (an InputError, nothing touched) otherwise, and while a stage of an earlier demo still runs in it.
 *
 * @example
 * ```ts
 * await prepareDemoOut(".runs/demo", new Set(["data", "model", "run", "eval.json"]));
 * ```
 */
export async function prepareDemoOut(
  out: string,
  known: ReadonlySet<string>,
  unmarked: Readonly<Record<string, ReadonlySet<string>>> = {},
): Promise<void> {
  if (!(await pathExists(join(out, DEMO_MARKER)))) {
    if (!(await isMissingOrEmptyDir(out))) {
      throw new InputError(
        `${out}: exists and was not made by the demo; choose another ${optionName("out")}`,
      );
    }
    await Deno.mkdir(out, { recursive: true });
    await Deno.writeTextFile(
      join(out, DEMO_MARKER),
      "made by recsysllm demo; emptied by its next run\n",
    );
    return;
  }
  const lockOf = new Map([...known].map((name) => [lockName(out, name), name]));
  const entries = (await names(out)).filter((e) => e.name !== DEMO_MARKER);
  const foreign = entries.map((e) => e.name).filter((name) =>
    !known.has(name) && !lockOf.has(name) && !isTemporaryName(name)
  );
  if (foreign.length > 0) refuse(out, foreign);
  for (const entry of entries) {
    if (!entry.isDirectory || !known.has(entry.name)) continue;
    const extra = await added(join(out, entry.name), unmarked[entry.name]);
    if (extra.length > 0) refuse(join(out, entry.name), extra);
  }
  // A lock a live stage holds refuses the run (naming its PID); a stale one is taken over.
  for (const entry of entries) {
    const output = lockOf.get(entry.name);
    if (output === undefined) continue;
    const lock = await OutputLock.acquire(join(out, output), "demo");
    lock.release();
  }
  for (const entry of entries) {
    const path = join(out, entry.name);
    if (!(await pathExists(path))) continue; // a lock released above
    const aside = isTemporaryName(entry.name) ? path : tempName(path);
    if (aside !== path) await Deno.rename(path, aside);
    await Deno.remove(aside, { recursive: true });
  }
}
