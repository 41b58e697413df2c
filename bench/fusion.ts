/**
 * Tunes the fusion weight and candidate count of a two-stage ranking on a validation split, from
 * one `infer --rerank FILE --rerank-weight 1 --top-k N` output (every candidate with both
 * scores): what `eval --tune-rerank` does (lib/eval/fusion.ts), with every point of the grid on
 * stderr. Run alone:
 *
 *     deno run -A bench/fusion.ts RERANKED.jsonl DATA_DIR [SPLIT]
 *
 * @module
 */

import type { Split } from "../lib/data/types.ts";
import { tuneRerank } from "../lib/eval/fusion.ts";

if (import.meta.main) {
  const [file, dataDir, split = "valid"] = Deno.args;
  if (!file || !dataDir) {
    console.error("usage: deno run -A bench/fusion.ts RERANKED.jsonl DATA_DIR [SPLIT]");
    Deno.exit(2);
  }
  const round = (x: number) => Math.round(x * 1e4) / 1e4;
  const tuning = await tuneRerank(file, dataDir, split as Split);
  for (const p of tuning.points) {
    console.error(
      `top ${p.top} w ${p.weight.toFixed(2)}: ` +
        Object.entries(p.metrics).map(([k, v]) => `${k} ${round(v)}`).join(" "),
    );
  }
  console.log(JSON.stringify({ file, records: tuning.records, best: tuning.best }));
}
