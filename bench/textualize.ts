/**
 * Benchmark: textualize Amazon Beauty (P5 format, ../shared/data/amazon-beauty) with the default
 * options into a temporary directory; reports records per second over the whole run (reading,
 * planning, writing ~1.6 GB of JSONL, hashing the sources).
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_RECORD_OPTIONS } from "../lib/data/records.ts";
import { textualize } from "../lib/data/textualize.ts";

const DATA = fileURLToPath(new URL("../../shared/data/amazon-beauty/", import.meta.url));

/** Runs the benchmark once and returns its figures. */
export async function run(): Promise<Record<string, unknown>> {
  const tmp = await Deno.makeTempDir({ prefix: "bench-textualize-" });
  try {
    const out = join(tmp, "beauty");
    const start = performance.now();
    const summary = await textualize({
      read: {
        format: "p5",
        input: join(DATA, "sequential_data.txt"),
        items: join(DATA, "items.csv"),
      },
      records: DEFAULT_RECORD_OPTIONS,
      out,
    });
    const seconds = (performance.now() - start) / 1000;
    const records = Object.values(summary.records)
      .flatMap((byTask) => Object.values(byTask))
      .reduce((a, b) => a + b, 0);
    let bytes = 0;
    for (const entry of Deno.readDirSync(out)) bytes += Deno.statSync(join(out, entry.name)).size;
    return {
      records_per_s: Math.round(records / seconds),
      records,
      seconds: Number(seconds.toFixed(2)),
      users: summary.users,
      output_mb: Math.round(bytes / 1e6),
    };
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}
