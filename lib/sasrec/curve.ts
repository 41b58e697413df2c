/**
 * SASRec's training curve as files: JSONL (one point an epoch) and an SVG line chart of the
 * validation metrics by epoch (the loss is on another scale; it is in the JSONL).
 *
 * @module
 */

import { lineChart } from "../chart/svg.ts";
import type { CurvePoint } from "./train.ts";

/** The curve as JSONL: `{"epoch":1,"loss":8.9,"ndcg10":0.01,"hr10":0.02,"seconds":46.3}`. */
export function curveJsonl(points: readonly CurvePoint[]): string {
  return points.map((p) => JSON.stringify(p) + "\n").join("");
}

/** The curve as an SVG chart: validation NDCG@10 and HR@10 by epoch. */
export function curveChart(points: readonly CurvePoint[]): string {
  const series = (name: string, pick: (p: CurvePoint) => number | undefined) => ({
    name,
    points: points.flatMap((p) => {
      const y = pick(p);
      return y === undefined ? [] : [[p.epoch, y] as const];
    }),
  });
  return lineChart({
    title: "SASRec training: validation metrics",
    xLabel: "epoch",
    yLabel: "validation metric (all items, seen excluded)",
    series: [series("NDCG@10", (p) => p.ndcg10), series("HR@10", (p) => p.hr10)],
  });
}
