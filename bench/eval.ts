/**
 * Benchmark: `eval` on Amazon Beauty (../shared/data/amazon-beauty), textualized with the default
 * options into a temporary directory (not timed); then the most-popular and item-kNN baselines
 * are scored on the test split (sequential and direct, ~89k records), once per protocol.
 * Reports seconds and records per second of each evaluate() run, which includes reading the
 * valid and test splits for the training histories and streaming the test split once.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openDataset } from "../lib/data/dataset.ts";
import { DEFAULT_RECORD_OPTIONS } from "../lib/data/records.ts";
import { textualize } from "../lib/data/textualize.ts";
import { evaluate } from "../lib/eval/run.ts";
import { loadBaselines } from "../lib/baselines/load.ts";

const DATA = fileURLToPath(new URL("../../shared/data/amazon-beauty/", import.meta.url));

/** Runs the benchmark once and returns its figures. */
export async function run(): Promise<Record<string, unknown>> {
  const tmp = await Deno.makeTempDir({ prefix: "bench-eval-" });
  try {
    const out = join(tmp, "beauty");
    await textualize({
      read: {
        format: "p5",
        input: join(DATA, "sequential_data.txt"),
        items: join(DATA, "items.csv"),
      },
      records: { ...DEFAULT_RECORD_OPTIONS, tasks: ["sequential", "direct"] },
      out,
    });
    const data = await openDataset(out);
    const figures: Record<string, unknown> = {};
    for (const protocol of ["full", "sampled"] as const) {
      const start = performance.now();
      const file = join(out, "test.jsonl");
      const baselines = await loadBaselines(data, ["pop", "itemknn"], { protocol, top: 20, file });
      const report = await evaluate(data, {
        split: "test",
        protocol,
        ks: [1, 5, 10],
        methods: [
          { name: "pop", predictor: baselines.get("pop")! },
          { name: "itemknn", predictor: baselines.get("itemknn")! },
        ],
      });
      const seconds = (performance.now() - start) / 1000;
      const knn = report.methods.itemknn;
      const records = (knn.sequential?.metrics.count ?? 0) + (knn.direct?.metrics.count ?? 0);
      figures[`${protocol}_seconds`] = Number(seconds.toFixed(2));
      figures[`${protocol}_records_per_s`] = Math.round(records / seconds);
      figures[`${protocol}_itemknn_seq_hr10`] = Number(
        (knn.sequential?.metrics["HR@10"] ?? 0).toFixed(4),
      );
      figures.records = records;
    }
    return figures;
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}
