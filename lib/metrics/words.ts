/**
 * The word split every text metric uses: whitespace-separated words exactly as they are (no
 * lowercasing, no stemming, punctuation kept on its word), as docs/method.md section 10 asks.
 *
 * @module
 */

/**
 * Returns the words of `text`: the maximal runs of non-whitespace characters, in order.
 *
 * @example
 * ```ts
 * words("  Great  lipstick,\tlasts long "); // ["Great", "lipstick,", "lasts", "long"]
 * ```
 */
export function words(text: string): string[] {
  return text.split(/\s+/).filter((word) => word !== "");
}
