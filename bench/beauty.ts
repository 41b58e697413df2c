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

/** Options of {@linkcode beautyTextualizeArgs}. */
export interface P5Options {
  /** A folder in Beauty's layout (`sequential_data.txt`, `items.csv`); default {@linkcode BEAUTY}. */
  source?: string;
  /** textualize's seed (default 1). */
  seed?: number;
}

/**
 * `textualize` arguments for Beauty's profile and sequential records into `out` (histories of
 * 10; seed `options.seed`, default 1), then `extra`; `options.source` reads another folder in the
 * same layout.
 *
 * @example
 * ```ts
 * beautyTextualizeArgs("/tmp/beauty/data", ["--train-through=valid"]);
 * ```
 */
export function beautyTextualizeArgs(
  out: string,
  extra: readonly string[] = [],
  options: P5Options = {},
): string[] {
  const { source = BEAUTY, seed = 1 } = options;
  return [
    "textualize",
    "--format=p5",
    `--input=${join(source, "sequential_data.txt")}`,
    `--items=${join(source, "items.csv")}`,
    "--tasks=profile,sequential",
    "--max-history=10",
    `--out=${out}`,
    `--seed=${seed}`,
    ...extra,
  ];
}
