/**
 * What the benchmarks read from the environment, checked before any work: whole-number settings
 * (`QUALITY_STEPS=abc` fails at once, not at the pretrain stage after ten minutes of SASRec), and
 * the work directory a benchmark writes its runs into, which it replaces only when a benchmark made
 * it (`QUALITY_DIR=.` must not delete a checkout).
 *
 * @module
 */

import { join } from "node:path";
import { InputError } from "../lib/errors.ts";

/**
 * The whole number environment variable `name` holds, `fallback` when unset; anything else than a
 * whole number in `min`..`max` is an InputError naming the variable.
 *
 * @example
 * ```ts
 * const steps = intSetting("QUALITY_STEPS", 16800, { min: 1 });
 * ```
 */
export function intSetting(
  name: string,
  fallback: number,
  range: { min?: number; max?: number } = {},
): number {
  const text = Deno.env.get(name);
  if (text === undefined || text.trim() === "") return fallback;
  const value = Number(text);
  const { min = -Infinity, max = Infinity } = range;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const bounds = max === Infinity ? `at least ${min}` : `in ${min}..${max}`;
    throw new InputError(`${name} is "${text}": a whole number ${bounds}`);
  }
  return value;
}

/** The file that marks a directory a benchmark made (and may replace). */
const MARK = ".recsysllm-bench";

/**
 * Makes `dir` an empty work directory for a benchmark's runs: made when absent, emptied when a
 * benchmark made it (its mark is there) or it is empty; anything else (a directory of the user's,
 * a file) is an InputError naming `variable`, the setting that chose it, and nothing is touched.
 * The benchmark's own default (`isDefault`: `$TMPDIR/recsysllm-bench-NAME`) is refused alike when
 * it has no mark (a version before the mark left one so): the message says to remove it, since a
 * path, or a link there, proves nothing about whose files it holds.
 *
 * @example
 * ```ts
 * await benchWorkDir("/tmp/recsysllm-bench-quality", "QUALITY_DIR", { isDefault: true });
 * ```
 */
export async function benchWorkDir(
  dir: string,
  variable: string,
  options: { isDefault?: boolean } = {},
): Promise<void> {
  let entries: string[];
  try {
    entries = [];
    for await (const entry of Deno.readDir(dir)) entries.push(entry.name);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw new InputError(`${dir}: not a directory a benchmark can work in (${variable})`);
    }
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(join(dir, MARK), "made by a recsysllm benchmark\n");
    return;
  }
  if (entries.length > 0 && !entries.includes(MARK)) {
    const older = options.isDefault
      ? ` (the default of an earlier version, without its mark: remove it if it is that)`
      : "";
    throw new InputError(
      `${dir}: holds files a benchmark did not make (${entries.slice(0, 3).join(", ")}` +
        `${entries.length > 3 ? ", ..." : ""})${older}; choose another ${variable} or an empty ` +
        "directory",
    );
  }
  for (const name of entries) await Deno.remove(join(dir, name), { recursive: true });
  await Deno.writeTextFile(join(dir, MARK), "made by a recsysllm benchmark\n");
}
