/**
 * The Amazon Beauty copy the benchmarks read (`../shared/data/amazon-beauty` beside the checkout)
 * and the one textualize command line they share: the Beauty session of docs/experiments.md.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The directory of the P5/S3-Rec copy of Amazon Beauty. */
export const BEAUTY = fileURLToPath(new URL("../../shared/data/amazon-beauty/", import.meta.url));

/**
 * `textualize` arguments for Beauty's profile and sequential records into `out` (seed 1,
 * histories of 10), then `extra`.
 *
 * @example
 * ```ts
 * beautyTextualizeArgs("/tmp/beauty/data", ["--train-through=valid"]);
 * ```
 */
export function beautyTextualizeArgs(out: string, extra: readonly string[] = []): string[] {
  return [
    "textualize",
    "--format=p5",
    `--input=${join(BEAUTY, "sequential_data.txt")}`,
    `--items=${join(BEAUTY, "items.csv")}`,
    "--tasks=profile,sequential",
    "--max-history=10",
    `--out=${out}`,
    "--seed=1",
    ...extra,
  ];
}
