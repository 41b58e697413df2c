/**
 * What a training run tells its user: the progress line of a step, and the summary of the run as
 * the one JSON line `pretrain` prints on stdout. Text only; the run's files are
 * lib/train/outputs.ts.
 *
 * @module
 */

import type { MetricsLine } from "./outputs.ts";
import type { TrainSummary } from "./trainer.ts";

/**
 * The progress line of a step (`step 3/10 loss 2.3456 lr 1.00e-4 812 tokens/s`), and whether it
 * is worth keeping on the screen: the last step and validated steps are.
 *
 * @example
 * ```ts
 * import type { MetricsLine } from "./outputs.ts";
 *
 * stepLine({ step: 3, loss: 2.3456, lr: 1e-4, tokens_per_s: 812 } as MetricsLine, 10).text;
 * // "step 3/10 loss 2.3456 lr 1.00e-4 812 tokens/s"
 * ```
 */
export function stepLine(line: MetricsLine, total: number): { text: string; keep: boolean } {
  const val = line.val_loss === undefined ? "" : ` val_loss ${line.val_loss.toFixed(4)}`;
  return {
    text: `step ${line.step}/${total} loss ${line.loss.toFixed(4)}${val} ` +
      `lr ${line.lr.toExponential(2)} ${line.tokens_per_s} tokens/s`,
    keep: line.step === total || line.val_loss !== undefined,
  };
}

/**
 * The run's last progress line: steps, device (and ranks), last and validation loss.
 *
 * @example
 * ```ts
 * import type { TrainSummary } from "./trainer.ts";
 *
 * declare const summary: TrainSummary;
 * doneLine(summary, 2); // "500 steps on cpu x 2 ranks, loss 1.2345, val_loss 1.3456"
 * ```
 */
export function doneLine(summary: TrainSummary, ranks?: number): string {
  const across = ranks === undefined ? "" : ` x ${ranks} ranks`;
  return `${summary.steps} steps on ${summary.device}${across}, loss ${
    summary.lastLoss.toFixed(4)
  }` + (summary.valLoss === undefined ? "" : `, val_loss ${summary.valLoss.toFixed(4)}`);
}

/**
 * The run's summary as a JSON object (snake_case, absent losses `null`); `ranks` for a
 * data-parallel run.
 *
 * @example
 * ```ts
 * import type { TrainSummary } from "./trainer.ts";
 *
 * declare const summary: TrainSummary;
 * JSON.stringify(summaryJson(summary));
 * ```
 */
export function summaryJson(summary: TrainSummary, ranks?: number): Record<string, unknown> {
  return {
    steps: summary.steps,
    loss: summary.lastLoss,
    first_loss: summary.firstLoss,
    val_loss: summary.valLoss ?? null,
    initial_val_loss: summary.initialValLoss ?? null,
    tokens: summary.tokens,
    device: summary.device,
    ...(ranks === undefined ? {} : { ranks }),
    resumed: summary.resumed,
  };
}
