/**
 * What a training run writes besides its checkpoint: `metrics.jsonl` (one JSON object per logged
 * step), `loss.svg` (the loss curve, with validation loss), and, for full training, a complete
 * model directory (`config.json`, `tokenizer.json`, `model.safetensors`) that `forward`, `infer`
 * and `pretrain` take as `--model`. Every file is written atomically.
 *
 * @module
 */

import { lineChart } from "../chart/svg.ts";
import { TRAINING_CHECKPOINT } from "../io/safe_output.ts";
import type { GlmConfig } from "../model/config.ts";
import { writeModelFiles } from "../model/families/merge.ts";
import { glmDecoderConfig } from "../model/config.ts";
import type { Weights } from "../model/weights.ts";

/** One line of `metrics.jsonl`. */
export interface MetricsLine {
  /** Optimizer steps done. */
  step: number;
  /** Mean loss of the step's tokens (over all its micro-batches). */
  loss: number;
  /** Learning rate of the step. */
  lr: number;
  /** Padded tokens per second of the step (forward, backward and update). */
  tokens_per_s: number;
  /** Global gradient norm before clipping. */
  grad_norm: number;
  /** Epochs done, fractional. */
  epoch: number;
  /** Padded tokens seen so far. */
  tokens: number;
  /** Validation loss (token-weighted mean over the validation batches) where validated. */
  val_loss?: number;
}

/** The file names a run directory holds. */
export const RUN_FILES = {
  checkpoint: TRAINING_CHECKPOINT,
  metrics: "metrics.jsonl",
  chart: "loss.svg",
} as const;

/**
 * The metrics lines of `path` up to and including `step` (a resumed run drops what it will
 * redo). Lines cut short by a kill are dropped; a missing file gives no lines.
 */
export async function readMetrics(path: string, upToStep = Infinity): Promise<MetricsLine[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  const lines: MetricsLine[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    let parsed: MetricsLine;
    try {
      parsed = JSON.parse(line);
    } catch {
      continue; // the tail of a write a kill interrupted
    }
    if (typeof parsed.step === "number" && parsed.step <= upToStep) lines.push(parsed);
  }
  return lines;
}

/** The text of `metrics.jsonl` for `lines`. */
export function metricsText(lines: readonly MetricsLine[]): string {
  return lines.map((l) => JSON.stringify(l) + "\n").join("");
}

/** The loss curve of `lines` as an SVG document (training loss and validation loss). */
export function lossChart(lines: readonly MetricsLine[], title = "training loss"): string {
  const series = [{ name: "loss", points: lines.map((l) => [l.step, l.loss] as const) }];
  const val = lines.filter((l) => l.val_loss !== undefined);
  if (val.length > 0) {
    series.push({ name: "val_loss", points: val.map((l) => [l.step, l.val_loss!] as const) });
  }
  return lineChart({ title, xLabel: "step", yLabel: "loss", series });
}

/**
 * Writes a complete GLM model directory into `dir`: `config.json`, `model.safetensors` (the
 * weights of `config`, float32) and `tokenizer.json` (copied from `tokenizerFile`), by the one
 * writer of every family (lib/model/families/merge.ts).
 */
export async function writeModelDir(
  dir: string,
  config: GlmConfig,
  weights: Weights,
  tokenizerFile: string,
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await writeModelFiles(dir, glmDecoderConfig(config), weights, {
    addedRows: 0,
    attention: "prefix",
    tokenizerFile,
  });
}
