/**
 * Benchmark: SASRec (full cross-entropy) on Amazon Beauty (../shared/data/amazon-beauty),
 * textualized with the sequential task only into a temporary directory (not timed), trained by
 * `eval --baseline sasrec`'s code path with its default settings (early stopping on the
 * validation split's NDCG@10, then the refit on the histories followed by their validation item)
 * and scored on the test split, ranking all 12,101 items with the user's history excluded;
 * item-kNN is scored in the same run for reference. Target (issue 13):
 * HR@10 >= 0.09 and NDCG@10 >= 0.05 within 30 minutes on 2 cores.
 *
 * `SASREC_EPOCHS` (environment) caps the epochs for a quicker look.
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
import { Progress } from "../lib/io/progress.ts";
import { type CurvePoint, DEFAULT_SASREC } from "../lib/sasrec/train.ts";
import { intSetting } from "./settings.ts";

const DATA = fileURLToPath(new URL("../../shared/data/amazon-beauty/", import.meta.url));

const round = (x: number | null | undefined, digits = 4) => Number((x ?? NaN).toFixed(digits));

/** Runs the benchmark once and returns its figures. */
export async function run(): Promise<Record<string, unknown>> {
  const tmp = await Deno.makeTempDir({ prefix: "bench-sasrec-" });
  try {
    const out = join(tmp, "beauty");
    await textualize({
      read: {
        format: "p5",
        input: join(DATA, "sequential_data.txt"),
        items: join(DATA, "items.csv"),
      },
      records: { ...DEFAULT_RECORD_OPTIONS, tasks: ["sequential"] },
      out,
    });
    const data = await openDataset(out);
    const curve: CurvePoint[] = [];
    const epochs = intSetting("SASREC_EPOCHS", DEFAULT_SASREC.epochs, { min: 1 });
    const start = performance.now();
    const progress = new Progress("bench sasrec");
    const baselines = await loadBaselines(data, ["sasrec", "itemknn"], {
      protocol: "full",
      top: 20,
      seed: 1,
      file: join(out, "test.jsonl"),
      sasrec: { epochs, onEpoch: (p: CurvePoint) => curve.push(p) },
    }, progress);
    const report = await evaluate(data, {
      split: "test",
      protocol: "full",
      ks: [5, 10],
      tasks: ["sequential"],
      methods: [
        { name: "sasrec", predictor: baselines.get("sasrec")! },
        { name: "itemknn", predictor: baselines.get("itemknn")! },
      ],
      progress,
    });
    const seconds = (performance.now() - start) / 1000;
    const sasrec = report.methods.sasrec.sequential!;
    const knn = report.methods.itemknn.sequential!;
    const best = curve.reduce((a, b) => ((b.ndcg10 ?? -1) > (a.ndcg10 ?? -1) ? b : a));
    const trainSeconds = curve.at(-1)!.seconds;
    return {
      "HR@10": round(sasrec.metrics["HR@10"]),
      "NDCG@10": round(sasrec.metrics["NDCG@10"]),
      "HR@5": round(sasrec.metrics["HR@5"]),
      "NDCG@5": round(sasrec.metrics["NDCG@5"]),
      // `seconds`: everything (textualize, early stopping, the refit, item-kNN, ranking); the
      // early_stopping_* figures: the epochs that chose the length, before the refit.
      seconds: round(seconds, 1),
      early_stopping_seconds: round(trainSeconds, 1),
      early_stopping_epochs: curve.length,
      best_epoch: best.epoch,
      seconds_per_epoch: round(trainSeconds / curve.length, 1),
      after_early_stopping_seconds: round(seconds - trainSeconds, 1),
      valid_ndcg10: round(best.ndcg10),
      records: sasrec.metrics.count,
      itemknn_hr10: round(knn.metrics["HR@10"]),
      itemknn_ndcg10: round(knn.metrics["NDCG@10"]),
    };
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}
