/**
 * Training recipes: named sets of pretrain settings measured to work well together, as data.
 * `pretrain --recipe NAME` starts from a recipe's settings; any flag given explicitly wins.
 *
 * `sequential`: the recipe for sequential recommendation (docs/experiments.md, "Amazon Beauty").
 * Its levers, each measured on Beauty's validation split (the table of levers in
 * docs/experiments.md):
 * - the profile documents get the sequence-level objective (every item after a random first few
 *   masked, each its own span: next-item supervision for every item of a document in one
 *   example, where a task prompt supervises one), and are read several times an epoch, masked
 *   anew each time;
 * - the sequential prompts are kept, at a share of an epoch, so that the model reads the task's
 *   own templates with the answer's `[MASK]`, as infer asks them.
 *
 * For the test split, the recipe trains on a dataset textualized with `--train-through valid`
 * (the refit: the validation items join the profile documents). Measured one step back, that
 * lifted HR@10 by about a quarter. Measured at 1,000 steps and not kept: titles cut to 10 words,
 * and `sequenceMaxKeep` 1.
 *
 * Two settings outside pretrain go with it (docs/experiments.md, "A session on Amazon Beauty"):
 * the narrower model of `init --hidden-size 128` (more steps a minute, and better at equal
 * minutes) and `infer --trie-softmax` (items scored by their probability among the items).
 *
 * @module
 */

import type { Objective } from "../collate/collator.ts";

/** The settings a recipe sets (each is a pretrain option of the same name). */
export interface Recipe {
  /** One line on what the recipe is for, for `--help`. */
  summary: string;
  objective?: Objective | "mix";
  sequenceMaxKeep?: number;
  trieSoftmax?: boolean;
  taskWeights?: Readonly<Record<string, number>>;
}

/** The recipes by name. */
export const RECIPES: Readonly<Record<string, Recipe>> = Object.freeze({
  sequential: {
    summary: "sequential recommendation: dense next-item documents beside the task prompts",
    objective: "sequence",
    taskWeights: { profile: 3, sequential: 0.3 },
  },
});
