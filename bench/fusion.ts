/**
 * Tunes the fusion weight and candidate count of a two-stage ranking on a validation split
 * (lib/eval/fusion.ts), from one `infer --rerank FILE --rerank-weight 1 --top-k N` output, which
 * holds every candidate with both scores. Run alone:
 *
 *     deno run -A bench/fusion.ts RERANKED.jsonl DATA_DIR [SPLIT]
 *
 * prints one JSON line: the grid's points and the best by NDCG@10. bench/quality.ts calls
 * {@linkcode tuneFusion}.
 *
 * @module
 */

import { join } from "node:path";
import { openDataset, readRecords } from "../lib/data/dataset.ts";
import type { Split } from "../lib/data/types.ts";
import { fusionGrid, type FusionPoint, fusionRecords } from "../lib/eval/fusion.ts";
import { checkPredictionLine, type PredictionLine } from "../lib/eval/predictions.ts";
import { readJsonLines } from "../lib/io/lines.ts";

/** The grid searched: the model's weight in steps of 0.05, and the first stage's best n. */
export const FUSION_GRID = {
  weights: Array.from({ length: 21 }, (_, i) => i / 20),
  tops: [10, 20, 50, 100],
  ks: [5, 10],
};

/** Every point of the grid on `file`'s records, and the best by NDCG@10 (then HR@10). */
export async function tuneFusion(
  file: string,
  dataDir: string,
  split: Split,
): Promise<{ best: FusionPoint; points: FusionPoint[]; records: number }> {
  const data = await openDataset(dataDir);
  const ids = new Map<string, string>();
  for (const e of data.entities) {
    if (e.kind === "item" && e.id !== undefined) ids.set(e.entity, e.id);
  }
  const lines: PredictionLine[] = [];
  for await (const { number, value } of readJsonLines(file)) {
    lines.push(checkPredictionLine(value, file, number));
  }
  const wanted = new Set(lines.map((l) => l.id));
  const targets = new Map<string, string>();
  for await (const r of readRecords(data, split)) {
    if (!wanted.has(r.id)) continue;
    const entity = r.target?.[0] && "entity" in r.target[0] ? r.target[0].entity : undefined;
    if (entity !== undefined) targets.set(r.id, ids.get(entity) ?? entity);
  }
  const points = fusionGrid(fusionRecords(lines, targets), FUSION_GRID);
  const best =
    [...points].sort((a, b) =>
      b.metrics["NDCG@10"] - a.metrics["NDCG@10"] || b.metrics["HR@10"] - a.metrics["HR@10"]
    )[0];
  return { best, points, records: lines.length };
}

if (import.meta.main) {
  const [file, dataDir, split = "valid"] = Deno.args;
  if (!file || !dataDir) {
    console.error("usage: deno run -A bench/fusion.ts RERANKED.jsonl DATA_DIR [SPLIT]");
    Deno.exit(2);
  }
  const round = (x: number) => Math.round(x * 1e4) / 1e4;
  const { best, points, records } = await tuneFusion(file, dataDir, split as Split);
  for (const p of points) {
    console.error(
      `top ${p.top} w ${p.weight.toFixed(2)}: ` +
        Object.entries(p.metrics).map(([k, v]) => `${k} ${round(v)}`).join(" "),
    );
  }
  console.log(JSON.stringify({ file: join(file), records, best }));
}
