// infer --rerank through runInference: the candidate count a tuning chose means the same when
// applied (counted after --exclude-seen, as the tuning's first_rank counts), and a first stage
// lacking a record the run answers is refused before the model loads.
import assert from "node:assert/strict";
import { join } from "node:path";
import type { TextRecord } from "../lib/data/types.ts";
import { InputError, OptionError } from "../lib/errors.ts";
import { fusionRecords } from "../lib/eval/fusion.ts";
import { checkPredictionLine, type PredictionLine } from "../lib/eval/predictions.ts";
import { runInference } from "../lib/generate/mod.ts";
import { writeModelDir } from "./helpers/infer.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

// fixtures/eval/tiny: 8 items; 7 sequential test records, histories of 3 or 4 items.
const DATA = fileURLToPath(new URL("../fixtures/eval/tiny", import.meta.url));
const ITEMS: { entity: string; id: string }[] = JSON.parse(
  await Deno.readTextFile(join(DATA, "entities.json")),
).filter((e: { kind: string }) => e.kind === "item");
const SEQUENTIAL: TextRecord[] = (await Deno.readTextFile(join(DATA, "test.jsonl")))
  .split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l))
  .filter((r: TextRecord) => r.task === "sequential");

/** A first stage proposing every item, the record's history first (as with eval --include-seen). */
async function writeFirstStage(file: string, records: TextRecord[]): Promise<void> {
  const lines = records.map((r) => {
    const history = new Set(r.history ?? []);
    const order = [
      ...ITEMS.filter((i) => history.has(i.entity)),
      ...ITEMS.filter((i) => !history.has(i.entity)),
    ];
    const predictions = order.map((i, k) => ({ entity: i.entity, item_id: i.id, score: 10 - k }));
    return JSON.stringify({ id: r.id, predictions });
  });
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
}

async function readLines(file: string): Promise<PredictionLine[]> {
  return (await Deno.readTextFile(file)).split("\n").filter((l) => l !== "")
    .map((l, i) => checkPredictionLine(JSON.parse(l), file, i + 1));
}

Deno.test("infer --rerank-top N reranks the first stage's best N left after --exclude-seen, the N the tuning scores", async () => {
  await withTempDir(async (dir) => {
    const model = join(dir, "model"), first = join(dir, "first.jsonl");
    await writeModelDir(model);
    await writeFirstStage(first, SEQUENTIAL);
    const run = async (out: string, rerank: { weight: number; top?: number }) => {
      await runInference({
        model,
        data: DATA,
        out,
        split: "test",
        tasks: ["sequential"],
        excludeSeen: true,
        topK: 8,
        device: "cpu",
        threads: 1,
        workers: 1,
        rerank: { file: first, ...rerank },
      });
      return await readLines(out);
    };
    // The tuning's input (every candidate, weight 1) and a tuned point applied (weight 0, top 2).
    const all = await run(join(dir, "all.jsonl"), { weight: 1 });
    const applied = await run(join(dir, "applied.jsonl"), { weight: 0, top: 2 });
    const targets = new Map(SEQUENTIAL.map((r) => {
      const entity = (r.target![0] as { entity: string }).entity;
      return [r.id, ITEMS.find((i) => i.entity === entity)!.id];
    }));
    const tuned = fusionRecords(all, targets);
    assert.equal(applied.length, SEQUENTIAL.length);
    applied.forEach((line, p) => {
      // Weight 0 over the best 2: the tuning's first 2 candidates, not 2 minus the history.
      assert.deepEqual(line.predictions!.map((e) => e.item_id), tuned[p].items.slice(0, 2));
    });
  });
});

Deno.test("infer --rerank: a first stage lacking a record the run answers is refused before the model loads", async () => {
  await withTempDir(async (dir) => {
    const first = join(dir, "first.jsonl"), out = join(dir, "pred.jsonl");
    // u1's two records only.
    await writeFirstStage(first, SEQUENTIAL.filter((r) => r.user === "1"));
    const run = (more: { limit?: number; top?: number }) =>
      runInference({
        model: join(dir, "no-model"), // never opened: the first stage is checked first
        data: DATA,
        out,
        split: "test",
        tasks: ["sequential"],
        limit: more.limit,
        rerank: { file: first, weight: 0.5, top: more.top },
      });
    await assert.rejects(
      () => run({}),
      (e: Error) =>
        e instanceof InputError &&
        e.message === `${first}: no candidates for record "u2/sequential/seq-1/test" ` +
            "(rerank needs every record)",
    );
    await assert.rejects(
      () => run({ top: 0 }),
      (e: Error) => e instanceof OptionError && e.option === "rerankTop",
    );
    await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
    // The two records --limit 2 answers are covered: what fails then is the missing model.
    await assert.rejects(
      () => run({ limit: 2 }),
      (e: Error) => !e.message.includes("no candidates for record"),
    );
  });
});
