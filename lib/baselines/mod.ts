/**
 * Baselines that `eval` scores beside a model (docs/method.md section 10): most-popular, item-kNN,
 * random, SASRec and a rating bias model, each producing predictions in the format of `infer`.
 *
 * @module
 */

export * from "./baseline.ts";
export * from "./histories.ts";
export * from "./itemknn.ts";
export * from "./popularity.ts";
export * from "./rating.ts";
export * from "./load.ts";
export * from "./sasrec.ts";
export * from "./mf.ts";
export * from "./retrieval.ts";
