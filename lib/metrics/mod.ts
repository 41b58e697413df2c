/**
 * The evaluation metrics (docs/method.md section 10), one per module: ranking (HR@k, NDCG@k),
 * rating (RMSE, MAE), BLEU, ROUGE, the valid-output rate, and the word split the text metrics
 * share.
 *
 * @module
 */

export * from "./ranking.ts";
export * from "./rating.ts";
export * from "./bleu.ts";
export * from "./rouge.ts";
export * from "./valid.ts";
export * from "./words.ts";
