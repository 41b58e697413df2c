/**
 * A small corpus whose BLEU and ROUGE were computed with P5's own evaluation scripts
 * (notebooks/evaluate/bleu.py and rouge.py at jeykigung/P5 1fa28ba): the metrics tests compare
 * the toolkit's figures with those reference values.
 */

import { words } from "../../lib/metrics/words.ts";

/** The hypotheses, split into words as P5's scripts split them. */
export const P5_HYPOTHESES: string[][] = [
  "the color lasts all day and it is great",
  "great value",
  "nice brush but the handle broke",
  "a",
].map(words);

/** The references, one per hypothesis. */
export const P5_REFERENCES: string[][] = [
  "the color lasts all day",
  "great value for money and fast shipping",
  "the brush is nice but the handle is weak",
  "the the the",
].map(words);
