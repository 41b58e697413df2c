/**
 * Evaluation (docs/method.md section 10): the predictions format, the ranking protocols, per-task
 * scoring, one run over a dataset split, and its JSON, Markdown and SVG forms.
 *
 * @module
 */

export * from "./entities.ts";
export * from "./predictions.ts";
export * from "./protocol.ts";
export * from "./score.ts";
export * from "./run.ts";
export * from "./report.ts";
