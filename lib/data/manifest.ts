/**
 * `manifest.json` of a textualized dataset: source files with sizes and SHA-256 hashes, seed and
 * options, task statuses, templates, record counts by split/task/template, skipped rows and
 * users with reasons, the rating scale, and the sizes of the dataset.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename } from "node:path";
import { inputError } from "../errors.ts";
import { checkSplitCounts, type SplitChecks } from "./checks.ts";
import type { SourceFile } from "./log.ts";
import type { DatasetPlan } from "./records.ts";
import { templateInfos } from "./templates.ts";
import type { Manifest } from "./types.ts";
import { SPLITS, TASKS } from "./types.ts";

/** Record counts: split -> task -> template -> count. */
export type Counts = Record<string, Record<string, Record<string, number>>>;

/** Adds one record to `counts`. */
export function countRecord(counts: Counts, split: string, task: string, template: string): void {
  const byTask = counts[split] ??= {};
  const byTemplate = byTask[task] ??= {};
  byTemplate[template] = (byTemplate[template] ?? 0) + 1;
}

/** `counts` with keys in a fixed order: splits, tasks in pipeline order, templates by id. */
export function sortedCounts(counts: Counts): Counts {
  const out: Counts = {};
  for (const split of SPLITS) {
    if (!counts[split]) continue;
    out[split] = {};
    for (const task of TASKS) {
      const byTemplate = counts[split][task];
      if (!byTemplate) continue;
      out[split][task] = Object.fromEntries(
        Object.keys(byTemplate).sort().map((t) => [t, byTemplate[t]]),
      );
    }
  }
  return out;
}

/**
 * The size and SHA-256 of a source file, read as a stream. The path is kept as its file name
 * only, so the manifest does not depend on where the data lives.
 */
export async function describeSource(
  source: SourceFile,
): Promise<{ path: string; role: string; bytes: number; sha256: string }> {
  const hash = createHash("sha256");
  let bytes = 0;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(source.path, { read: true });
  } catch (error) {
    throw inputError(source.path, undefined, `cannot read: ${(error as Error).message}`);
  }
  for await (const chunk of file.readable) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { path: basename(source.path), role: source.role, bytes, sha256: hash.digest("hex") };
}

/** What the run adds to the plan for its manifest. */
export interface ManifestParts {
  sources: Manifest["sources"];
  /** Every option that shaped the output, as plain JSON values. */
  options: Record<string, unknown>;
  counts: Counts;
  skipped: { reason: string; count: number }[];
}

/** Assembles the manifest of a planned and written dataset. */
export function buildManifest(plan: DatasetPlan, parts: ManifestParts): Manifest {
  const skipped = parts.skipped.filter((s) => s.count > 0)
    .sort((a, b) => (a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0));
  return {
    version: 1,
    format: plan.log.format,
    sources: parts.sources,
    seed: plan.options.seed,
    options: parts.options,
    tasks: plan.tasks,
    templates: templateInfos(plan.active),
    counts: sortedCounts(parts.counts),
    skipped,
    rating_scale: plan.ratingScale,
    rating_values: plan.ratingValues,
    users: plan.seqs.users.length,
    items: plan.poolItems.length,
    interactions: plan.interactions,
  };
}

/**
 * What the manifests of the shards of one textualize run share: everything but the record
 * counts and the per-user skip counts (`perUser`: their reasons).
 */
export function sharedManifest(
  manifest: Manifest,
  perUser: readonly string[],
): Record<string, unknown> {
  const { counts: _, skipped, ...rest } = manifest;
  return { ...rest, skipped: skipped.filter((s) => !perUser.includes(s.reason)) };
}

/**
 * The manifest of the whole dataset from the manifests of its shards (in any order): the
 * record counts and the per-user skip counts (`perUser`: their reasons) added up, the rest as in
 * every shard. Key order is the shards' own, so the JSON text is what an unsharded run writes.
 */
export function mergeShardManifests(
  parts: readonly Manifest[],
  perUser: readonly string[],
): Manifest {
  const counts: Counts = {};
  const sums = new Map<string, number>();
  for (const part of parts) {
    for (const [split, byTask] of Object.entries(part.counts ?? {})) {
      for (const [task, byTemplate] of Object.entries(byTask)) {
        for (const [template, n] of Object.entries(byTemplate)) {
          const t = (counts[split] ??= {})[task] ??= {};
          t[template] = (t[template] ?? 0) + n;
        }
      }
    }
    for (const s of part.skipped) {
      if (perUser.includes(s.reason)) sums.set(s.reason, (sums.get(s.reason) ?? 0) + s.count);
    }
  }
  const skipped = [
    ...parts[0].skipped.filter((s) => !perUser.includes(s.reason)),
    ...[...sums].map(([reason, count]) => ({ reason, count })),
  ].filter((s) => s.count > 0)
    .sort((a, b) => (a.reason < b.reason ? -1 : a.reason > b.reason ? 1 : 0));
  return { ...parts[0], counts: sortedCounts(counts), skipped };
}

/**
 * {@linkcode mergeShardManifests} on the text of the shards' manifest.json files, giving the text
 * an unsharded run writes (for `recsysllm merge`); `run.per_user_skips` names the skip reasons
 * counted per user.
 */
export function mergeShardManifestTexts(
  texts: string[],
  run: Record<string, unknown>,
  warn: (message: string) => void = () => {},
): string {
  const perUser = (run.per_user_skips ?? []) as string[];
  const merged = mergeShardManifests(texts.map((t) => JSON.parse(t) as Manifest), perUser);
  // The whole dataset's counts, checked as an unsharded run checks them (parts written before
  // the checks were recorded have none).
  const checks = run.split_checks as SplitChecks | undefined;
  if (checks) { for (const warning of checkSplitCounts(checks, merged.counts)) warn(warning); }
  return JSON.stringify(merged, null, 2) + "\n";
}
