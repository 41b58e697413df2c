/**
 * The shapes an `eval` run is shown in: the JSON object printed on stdout, a Markdown table, and
 * an SVG bar chart comparing methods. Pure: a report in, text out.
 *
 * JSON, the same shape for one method or several (methods in the order given):
 *
 *     {"protocol": "full", "split": "test",
 *      "methods": {"pred": {
 *        "sequential": {"HR@1": 0.01, "HR@5": 0.04, "NDCG@5": 0.02, "HR@10": 0.06,
 *                       "NDCG@10": 0.03, "valid": 1, "count": 22363, "missing": 0,
 *                       "templates": {"seq-1": {...same metrics, count}, ...},
 *                       "seen": {...}, "heldOut": {...}},
 *        "rating": {"RMSE": ..., "MAE": ..., "valid": ..., "count": ..., "missing": ..., ...},
 *        "explanation": {"BLEU-4": ..., "ROUGE-1": ..., "ROUGE-2": ..., "ROUGE-L": ..., ...},
 *        "review": {"BLEU-4": ..., "BLEU-2": ..., "ROUGE-1": ..., ...}},
 *        "pop": {...}}}
 *
 * Each method's tasks as above. A task appears when the method scored or missed records of it; `seen` and
 * `heldOut` appear when the task had records of that kind. HR, NDCG and `valid` are fractions,
 * BLEU and ROUGE x100; a metric that cannot be computed (no records) is null.
 *
 * @module
 */

import { groupedBarChart } from "../chart/svg.ts";
import type { EvalReport } from "./run.ts";
import { EVAL_TASKS, type Metrics, type TaskResult } from "./score.ts";

function taskJson(result: TaskResult): Record<string, unknown> {
  const out: Record<string, unknown> = { ...result.metrics, missing: result.missing };
  out.templates = result.templates;
  if (result.seen) out.seen = result.seen;
  if (result.heldOut) out.heldOut = result.heldOut;
  return out;
}

/** Returns the report as the JSON value `eval` prints (see the module doc for the shape). */
export function reportJson(report: EvalReport): Record<string, unknown> {
  const names = Object.keys(report.methods);
  const methodJson = (name: string) => {
    const out: Record<string, unknown> = {};
    for (const task of EVAL_TASKS) {
      const result = report.methods[name][task];
      if (result) out[task] = taskJson(result);
    }
    return out;
  };
  return {
    protocol: report.protocol,
    split: report.split,
    methods: Object.fromEntries(names.map((name) => [name, methodJson(name)])),
  };
}

function cell(value: number | null | undefined, metric: string): string {
  if (value === null || value === undefined) return "-";
  if (metric === "count") return String(value);
  return value.toFixed(4);
}

function columnsOf(rows: readonly Metrics[]): string[] {
  const columns: string[] = [];
  for (const row of rows) {
    for (const key of Object.keys(row)) if (!columns.includes(key)) columns.push(key);
  }
  // count last, whatever order the rows had
  return [...columns.filter((c) => c !== "count"), ...(columns.includes("count") ? ["count"] : [])];
}

/**
 * Returns the report as Markdown: one table per task, a row per method, with extra rows for the
 * seen and held-out templates where the task has held-out records, and a missing column when
 * some method had missing predictions.
 */
export function reportMarkdown(report: EvalReport): string {
  const out: string[] = [`Protocol: ${report.protocol}, split: ${report.split}.`, ""];
  for (const task of EVAL_TASKS) {
    const rows: { label: string; metrics: Metrics; missing?: number }[] = [];
    // A method with no prediction at all for the task (a rating baseline's file scored beside
    // item tasks) gets a line under the table instead of a row of dashes.
    const none: string[] = [];
    for (const [name, result] of Object.entries(report.methods)) {
      const r = result[task];
      if (!r) continue;
      if (r.metrics.count === 0 && (r.missing ?? 0) > 0) {
        none.push(name);
        continue;
      }
      rows.push({ label: name, metrics: r.metrics, missing: r.missing });
      if (r.heldOut) {
        if (r.seen) rows.push({ label: `${name} (seen templates)`, metrics: r.seen });
        rows.push({ label: `${name} (held-out templates)`, metrics: r.heldOut });
      }
    }
    if (rows.length === 0) continue;
    const columns = columnsOf(rows.map((r) => r.metrics));
    const withMissing = rows.some((r) => (r.missing ?? 0) > 0);
    const header = ["method", ...columns, ...(withMissing ? ["missing"] : [])];
    out.push(`### ${task}`, "");
    out.push(`| ${header.join(" | ")} |`);
    out.push(`|${header.map((_, i) => i === 0 ? "---" : "---:").join("|")}|`);
    for (const row of rows) {
      const cells = columns.map((c) => cell(row.metrics[c], c));
      if (withMissing) cells.push(row.missing === undefined ? "" : String(row.missing));
      out.push(`| ${row.label.replaceAll("|", "\\|")} | ${cells.join(" | ")} |`);
    }
    out.push("");
    if (none.length > 0) out.push(`No ${task} predictions from: ${none.join(", ")}.`, "");
  }
  return out.join("\n");
}

/**
 * Returns an SVG bar chart of the report: a panel per task, a group per metric (not `valid` or
 * `count`), a bar per method that scored the task (a method keeps its colour across panels).
 */
export function reportChart(report: EvalReport, title?: string): string {
  const names = Object.keys(report.methods);
  const panels = [];
  for (const task of EVAL_TASKS) {
    const results = names.map((name) => report.methods[name][task]);
    if (results.every((r) => r === undefined)) continue;
    const categories = columnsOf(results.flatMap((r) => r ? [r.metrics] : []))
      .filter((c) => c !== "count" && c !== "valid");
    panels.push({
      title: task,
      categories,
      series: names.flatMap((name, i) =>
        results[i] ? [{ name, values: categories.map((c) => results[i]?.metrics[c] ?? null) }] : []
      ),
      yLabel: task === "rating"
        ? "error"
        : task === "explanation" || task === "review"
        ? "x100"
        : "",
    });
  }
  return groupedBarChart({
    title: title ?? `protocol ${report.protocol}, ${report.split} split`,
    panels,
  });
}
