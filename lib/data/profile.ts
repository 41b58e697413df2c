/**
 * What a profile document says about a user's behaviour: long-, medium- and short-term windows
 * over their training interactions (by time when timestamps exist, relative to the last training
 * interaction; by position otherwise), seeded samples inside a window, and the attribute values
 * (brands, categories) they choose most. Pure functions over arrays; wording is `templates.ts`.
 *
 * @module
 */

import type { Rng } from "../random.ts";

/** Window sizes of the preference periods. */
export interface WindowOptions {
  /** With timestamps: the short-term window is the last `shortDays` days. Default 7. */
  shortDays: number;
  /** With timestamps: the medium-term window reaches back `mediumDays` days. Default 90. */
  mediumDays: number;
  /** Without timestamps: the short-term window is the last `shortItems` interactions. Default 3. */
  shortItems: number;
  /** Without timestamps: the medium-term window is the last `mediumItems` (short ones excluded). */
  mediumItems: number;
}

/** The defaults of {@linkcode WindowOptions}. */
export const DEFAULT_WINDOWS: WindowOptions = {
  shortDays: 7,
  mediumDays: 90,
  shortItems: 3,
  mediumItems: 10,
};

/**
 * Cuts `n` interactions (oldest first) into long/medium/short windows: long is
 * `[0, longEnd)`, medium `[longEnd, mediumEnd)`, short `[mediumEnd, n)`. `times` (Unix seconds,
 * ascending) selects time windows relative to the last interaction; without it, positions.
 *
 * @example
 * ```ts
 * preferenceWindows(12, undefined, DEFAULT_WINDOWS); // { longEnd: 2, mediumEnd: 9 }
 * ```
 */
export function preferenceWindows(
  n: number,
  times: ArrayLike<number> | undefined,
  options: WindowOptions,
): { longEnd: number; mediumEnd: number } {
  if (!times) {
    const mediumEnd = Math.max(0, n - options.shortItems);
    const longEnd = Math.max(0, Math.min(mediumEnd, n - options.mediumItems));
    return { longEnd, mediumEnd };
  }
  if (n === 0) return { longEnd: 0, mediumEnd: 0 };
  const last = times[n - 1];
  const shortFrom = last - options.shortDays * 86400;
  const mediumFrom = last - options.mediumDays * 86400;
  let mediumEnd = n;
  while (mediumEnd > 0 && times[mediumEnd - 1] > shortFrom) mediumEnd--;
  let longEnd = mediumEnd;
  while (longEnd > 0 && times[longEnd - 1] > mediumFrom) longEnd--;
  return { longEnd, mediumEnd };
}

/** Up to `k` distinct positions of `[start, end)`, drawn with `rng`, in ascending order. */
export function samplePositions(rng: Rng, start: number, end: number, k: number): number[] {
  const n = end - start;
  if (n <= 0 || k <= 0) return [];
  if (k >= n) return Array.from({ length: n }, (_, i) => start + i);
  return rng.sample(n, k).map((i) => start + i).sort((a, b) => a - b);
}

/**
 * The `k` most frequent values in `values` (most frequent first, ties by value), ignoring
 * values that occur only once when `minCount` is 2 (the default).
 *
 * @example
 * ```ts
 * topValues(["Hair", "Skin", "Hair", "Skin", "Hair", "Bath"], 2); // ["Hair", "Skin"]
 * ```
 */
export function topValues(values: readonly string[], k: number, minCount = 2): string[] {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].filter(([, c]) => c >= minCount)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, k).map(([v]) => v);
}
