/**
 * The learning-rate schedule: linear warmup from 0 to the peak over the first `warmup` steps, then
 * cosine (default) or linear decay to `minRatio` x peak at the last step, or constant. Step t is
 * 1-based (the t-th optimizer update), so the first update already has a non-zero rate
 * (peak / warmup); step `warmup` has the peak (step 1 without warmup), and the last step
 * `minRatio` x peak (a one-step run without warmup, or a run that is all warmup, `--warmup` equal
 * to the steps: the peak, never decayed; allowed, as a user may want it). A pure function of the
 * step, so a resumed run recomputes exactly the rates of an uninterrupted one; the rate is fed to
 * the training graph as an input (no rebuild per step).
 *
 * Also AdamW's bias corrections 1 - beta^t, computed here in float64 and fed as inputs.
 *
 * @module
 */

/** Decay shapes after warmup. */
export const SCHEDULES = ["cosine", "linear", "constant"] as const;
/** One decay shape. */
export type ScheduleKind = typeof SCHEDULES[number];

/** A learning-rate schedule. */
export interface Schedule {
  /** Peak learning rate. */
  lr: number;
  /** Warmup steps (0: start at the peak). */
  warmup: number;
  /** Total optimizer steps of the run. */
  totalSteps: number;
  /** Decay after warmup (default cosine). */
  kind?: ScheduleKind;
  /** Final rate as a fraction of the peak (default 0.1, as GLM and Megatron decay to min_lr). */
  minRatio?: number;
}

/**
 * The learning rate of optimizer step `t` (1-based).
 *
 * @example
 * ```ts
 * learningRate(1, { lr: 1e-3, warmup: 10, totalSteps: 100 }); // 1e-4
 * learningRate(100, { lr: 1e-3, warmup: 10, totalSteps: 100 }); // 1e-4 (10% of the peak)
 * learningRate(1, { lr: 1e-3, warmup: 0, totalSteps: 100 }); // 1e-3 (no warmup: the peak first)
 * ```
 */
export function learningRate(t: number, s: Schedule): number {
  const kind = s.kind ?? "cosine";
  const minRatio = s.minRatio ?? 0.1;
  if (s.warmup > 0 && t <= s.warmup) return (s.lr * t) / s.warmup;
  if (kind === "constant") return s.lr;
  // The decay starts at the peak's step: `warmup`, or step 1 without warmup (not a step 0 that
  // no update has, which left a run without warmup never at its peak).
  const peakAt = Math.max(1, s.warmup);
  const span = s.totalSteps - peakAt;
  const progress = span <= 0 ? 0 : Math.min(1, Math.max(0, (t - peakAt) / span));
  const factor = kind === "cosine" ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return s.lr * (minRatio + (1 - minRatio) * factor);
}

/** AdamW's bias corrections of step `t` (1-based): [1 - beta1^t, 1 - beta2^t]. */
export function biasCorrections(t: number, beta1: number, beta2: number): [number, number] {
  return [1 - Math.pow(beta1, t), 1 - Math.pow(beta2, t)];
}
