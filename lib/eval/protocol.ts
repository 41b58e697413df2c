/**
 * The two ranking protocols of docs/method.md section 10, as one function from a method's
 * prediction list to the list that is scored. One `eval` run scores one protocol.
 *
 * - `full`: rank over all items. The list is scored as the method gave it.
 * - `sampled`: rank the record's `candidates` (1 positive + N sampled negatives, written into
 *   valid/test records by textualize so every method ranks the same ones). The list is
 *   restricted to the candidates, keeping its order; so a method that ranks every item, or
 *   only the candidates, gets the same sampled rank. A candidate the method did not list ranks
 *   after every listed one: if that is the target, it is a miss.
 *
 * Either way a repeated entry counts only at its first occurrence (see metrics/ranking.ts).
 *
 * @module
 */

/** The ranking protocols. */
export const PROTOCOLS = ["full", "sampled"] as const;
/** One ranking protocol. */
export type Protocol = typeof PROTOCOLS[number];

/**
 * Returns the list the protocol scores: `ranked` without repeats and, under `sampled`, without
 * entries outside `candidates`.
 *
 * @example
 * ```ts
 * protocolRanking([5, 9, 5, 2, 7], "full"); // [5, 9, 2, 7]
 * protocolRanking([5, 9, 5, 2, 7], "sampled", [7, 2, 3]); // [2, 7]
 * ```
 */
export function protocolRanking(
  ranked: ArrayLike<number>,
  protocol: Protocol,
  candidates?: ArrayLike<number>,
): number[] {
  if (protocol === "sampled" && candidates === undefined) {
    throw new TypeError("the sampled protocol needs the record's candidates");
  }
  const allowed = protocol === "sampled" ? new Set(Array.from(candidates!)) : undefined;
  const seen = new Set<number>();
  const out: number[] = [];
  for (let i = 0; i < ranked.length; i++) {
    const id = ranked[i];
    if (seen.has(id)) continue;
    seen.add(id);
    if (allowed === undefined || allowed.has(id)) out.push(id);
  }
  return out;
}
