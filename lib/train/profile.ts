/**
 * Summaries of onnxruntime profiles (the JSON a session made with `profile` writes): time per
 * operator type and per part of a training step (forward, backward, optimizer), averaged over the
 * runs in the profile. For finding where a step's time goes; not used by training itself.
 *
 * @module
 */

interface ProfileEvent {
  cat?: string;
  name?: string;
  dur?: number;
  args?: { op_name?: string };
}

/** Time of one group in a profile summary. */
export interface ProfileGroup {
  name: string;
  /** Milliseconds per run. */
  ms: number;
  /** Share of all node time. */
  share: number;
}

/** Per-run times by operator type and by step part (`forward`, `backward`, `optimizer`). */
export interface ProfileSummary {
  runs: number;
  /** Milliseconds per run, all nodes. */
  totalMs: number;
  byOp: ProfileGroup[];
  byPart: ProfileGroup[];
  /** The most expensive single nodes. */
  topNodes: ProfileGroup[];
}

function part(node: string): string {
  if (node.startsWith("grad/")) return "backward";
  if (node.startsWith("adamw/")) return "optimizer";
  return "forward";
}

function groups(map: Map<string, number>, runs: number, total: number, limit = 1e9) {
  return [...map].sort((a, b) => b[1] - a[1]).slice(0, limit).map(([name, us]) => ({
    name,
    ms: us / runs / 1000,
    share: us / total,
  }));
}

/** Summarizes the events of an onnxruntime profile (the parsed JSON array). */
export function profileSummary(events: readonly ProfileEvent[]): ProfileSummary {
  const byOp = new Map<string, number>();
  const byPart = new Map<string, number>();
  const byNode = new Map<string, number>();
  let runs = 0;
  let total = 0;
  for (const e of events) {
    if (e.cat === "Session" && e.name === "model_run") runs++;
    if (e.cat !== "Node" || !e.name?.endsWith("_kernel_time")) continue;
    const node = e.name.slice(0, -"_kernel_time".length);
    const us = e.dur ?? 0;
    const op = e.args?.op_name ?? "?";
    total += us;
    byOp.set(op, (byOp.get(op) ?? 0) + us);
    byPart.set(part(node), (byPart.get(part(node)) ?? 0) + us);
    byNode.set(node, (byNode.get(node) ?? 0) + us);
  }
  runs = Math.max(1, runs);
  return {
    runs,
    totalMs: total / runs / 1000,
    byOp: groups(byOp, runs, total),
    byPart: groups(byPart, runs, total),
    topNodes: groups(byNode, runs, total, 12),
  };
}

/** A few lines of text: where the time goes, per run (for a benchmark's stderr). */
export function summarizeProfile(events: readonly ProfileEvent[]): string {
  const s = profileSummary(events);
  const line = (g: ProfileGroup) =>
    `  ${g.name.padEnd(40)} ${g.ms.toFixed(1).padStart(8)} ms ${
      (100 * g.share).toFixed(1).padStart(5)
    }%`;
  return [
    `${s.runs} runs, ${s.totalMs.toFixed(1)} ms of node time per run`,
    "by part:",
    ...s.byPart.map(line),
    "by operator:",
    ...s.byOp.slice(0, 15).map(line),
    "slowest nodes:",
    ...s.topNodes.map(line),
  ].join("\n");
}
