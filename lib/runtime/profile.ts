/**
 * Reading onnxruntime's profiles (sessions created with `profile: PREFIX` write
 * `PREFIX_<date>.json` when `Session.endProfiling()` is called): per-operator and per-node
 * kernel times, averaged over the runs, to see where a graph spends its time.
 *
 * @example
 * ```ts
 * import type { Graph, TensorData } from "../onnx/graph.ts";
 * import { Session } from "./session.ts";
 *
 * declare const graph: Graph, feeds: Record<string, TensorData>;
 * const session = await Session.create(graph, { profile: "/tmp/forward" });
 * for (let i = 0; i < 5; i++) await session.run(feeds);
 * session.endProfiling();
 * const summary = await readProfile("/tmp/forward");
 * console.log(summary.byOp.slice(0, 5)); // [{ name: "Gemm", ms: 80.2, share: 0.68 }, ...]
 * ```
 *
 * @module
 */

import { basename, dirname, join } from "node:path";

/** Time spent in one operator type or node, per run. */
export interface ProfileEntry {
  /** The operator type or node name. */
  name: string;
  /** Milliseconds per run. */
  ms: number;
  /** Share of all kernel time. */
  share: number;
}

/** A profile's summary. */
export interface ProfileSummary {
  /** The profile file read. */
  file: string;
  /** Runs recorded. */
  runs: number;
  /** Mean wall time of a run, in milliseconds (as onnxruntime measured it). */
  runMs: number;
  /** Kernel time per operator type, largest first. */
  byOp: ProfileEntry[];
  /** Kernel time per node, largest first. */
  byNode: ProfileEntry[];
  /**
   * Kernel time per execution provider (`CPUExecutionProvider`, `CUDAExecutionProvider`, ...),
   * with the number of distinct nodes each ran: on a GPU, what fell back to the CPU.
   */
  byProvider: (ProfileEntry & { nodes: number })[];
}

interface Event {
  cat?: string;
  name?: string;
  dur?: number;
  args?: { op_name?: string; provider?: string };
}

function entries(map: Map<string, number>, runs: number, total: number): ProfileEntry[] {
  return [...map].sort((a, b) => b[1] - a[1]).map(([name, us]) => ({
    name,
    ms: us / runs / 1000,
    share: total > 0 ? us / total : 0,
  }));
}

/** Summarizes the newest profile written with file prefix `prefix`. */
export async function readProfile(prefix: string): Promise<ProfileSummary> {
  const dir = dirname(prefix);
  const stem = basename(prefix);
  let newest: { name: string; mtime: number } | undefined;
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !e.name.startsWith(stem) || !e.name.endsWith(".json")) continue;
    const mtime = (await Deno.stat(join(dir, e.name))).mtime?.getTime() ?? 0;
    if (!newest || mtime >= newest.mtime) newest = { name: e.name, mtime };
  }
  if (!newest) throw new Error(`no onnxruntime profile found for prefix ${prefix}`);
  const file = join(dir, newest.name);
  const events = JSON.parse(await Deno.readTextFile(file)) as Event[];
  const byOp = new Map<string, number>();
  const byNode = new Map<string, number>();
  const byProvider = new Map<string, number>();
  const providerNodes = new Map<string, Set<string>>();
  let runs = 0;
  let runUs = 0;
  let total = 0;
  for (const e of events) {
    if (e.cat === "Session" && e.name === "model_run") {
      runs++;
      runUs += e.dur ?? 0;
    } else if (e.cat === "Node" && e.name?.endsWith("_kernel_time") && e.args?.op_name) {
      const us = e.dur ?? 0;
      total += us;
      byOp.set(e.args.op_name, (byOp.get(e.args.op_name) ?? 0) + us);
      const node = e.name.slice(0, -"_kernel_time".length);
      byNode.set(node, (byNode.get(node) ?? 0) + us);
      const provider = e.args.provider ?? "unknown";
      byProvider.set(provider, (byProvider.get(provider) ?? 0) + us);
      if (!providerNodes.has(provider)) providerNodes.set(provider, new Set());
      providerNodes.get(provider)!.add(node);
    }
  }
  const n = Math.max(runs, 1);
  return {
    file,
    runs,
    runMs: runUs / n / 1000,
    byOp: entries(byOp, n, total),
    byNode: entries(byNode, n, total),
    byProvider: entries(byProvider, n, total).map((e) => ({
      ...e,
      nodes: providerNodes.get(e.name)!.size,
    })),
  };
}

/**
 * The provider split of a summary as benchmark figures: `{ CPUExecutionProvider: { share: 1,
 * nodes: 120 } }` (share of kernel time, rounded to 3 places; distinct nodes run).
 */
export function providerFigures(
  summary: ProfileSummary,
): Record<string, { share: number; nodes: number }> {
  return Object.fromEntries(
    summary.byProvider.map((p) => [p.name, {
      share: Math.round(p.share * 1000) / 1000,
      nodes: p.nodes,
    }]),
  );
}
