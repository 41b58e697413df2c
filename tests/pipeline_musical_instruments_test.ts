/**
 * Every task family on a small slice of the real Musical Instruments review file
 * (../shared/data/amazon-musical-instruments; ignored, with the reason in its name, where that
 * file is missing): textualize with all six families, a few steps of pretrain on a small GLM,
 * infer of each answered family, and eval beside each family's baselines. The full session is
 * `deno task bench text` (docs/results.md); this checks that the pipeline carries real reviews,
 * ratings and summaries through every stage, in seconds.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { readJsonLines } from "../lib/io/lines.ts";
import type { TextRecord } from "../lib/data/types.ts";
import type { PredictionLine } from "../lib/eval/predictions.ts";
import { runCli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

const FILE = fileURLToPath(
  new URL(
    "../../shared/data/amazon-musical-instruments/reviews_Musical_Instruments_5.json.gz",
    import.meta.url,
  ),
);
const missing = await Deno.stat(FILE).then(() => false, () => true);

/** Users of the slice: the first this many reviewers (by id) with 6 or more reviews. */
const USERS = 24;

/** The slice: every review of the chosen users, as plain JSON lines. */
async function writeSlice(out: string): Promise<{ users: number; reviews: number }> {
  const byUser = new Map<string, string[]>();
  for await (const { value } of readJsonLines<Record<string, unknown>>(FILE, FILE)) {
    const user = String(value.reviewerID);
    const list = byUser.get(user) ?? [];
    list.push(JSON.stringify(value));
    byUser.set(user, list);
  }
  const chosen = [...byUser.keys()].sort().filter((u) => byUser.get(u)!.length >= 6)
    .slice(0, USERS);
  const lines = chosen.flatMap((u) => byUser.get(u)!);
  await Deno.writeTextFile(out, lines.join("\n") + "\n");
  return { users: chosen.length, reviews: lines.length };
}

async function cli(args: string[]): Promise<string> {
  const run = await runCli(args);
  assert.equal(run.code, 0, `${args[0]}: ${run.stderr}`);
  return run.stdout;
}

Deno.test({
  name: "Musical Instruments slice: every family through textualize, pretrain, infer and eval" +
    (missing ? ` (ignored: ${FILE} is missing)` : ""),
  ignore: missing,
  async fn() {
    await withTempDir(async (dir) => {
      const input = join(dir, "reviews.json");
      const slice = await writeSlice(input);
      assert.equal(slice.users, USERS);
      const data = join(dir, "data"), model = join(dir, "model"), run = join(dir, "run");
      const summary = JSON.parse(
        await cli([
          "textualize",
          "--format=amazon-reviews",
          `--input=${input}`,
          `--out=${data}`,
          "--seed=1",
          "--quiet",
        ]),
      );
      assert.equal(summary.users, USERS);
      assert.equal(summary.interactions, slice.reviews);
      assert.deepEqual(summary.skipped_tasks, {});
      // Every family has training records, and every answered one valid and test records.
      for (const task of ["profile", "rating", "sequential", "explanation", "review", "direct"]) {
        assert.ok(summary.records.train[task] > 0, `train ${task}`);
        if (task !== "profile") assert.ok(summary.records.test[task] >= USERS, `test ${task}`);
      }
      await cli([
        "init",
        `--data=${data}`,
        "--preset=tiny",
        "--hidden-size=32",
        "--layers=1",
        "--heads=2",
        `--out=${model}`,
        "--seed=1",
        "--quiet",
      ]);
      const trained = JSON.parse(
        await cli([
          "pretrain",
          `--data=${data}`,
          `--model=${model}`,
          `--out=${run}`,
          "--full",
          "--steps=3",
          "--batch-size=4",
          "--lr=1e-3",
          "--val-batches=1",
          "--threads=1",
          "--seed=1",
          "--quiet",
        ]),
      );
      assert.equal(trained.steps, 3);
      assert.ok(Number.isFinite(trained.val_loss));
      const full = join(dir, "full.jsonl"), direct = join(dir, "direct.jsonl");
      const saved = join(dir, "baselines");
      const common = [`--model=${run}`, `--data=${data}`, "--threads=1", "--quiet"];
      await cli([
        "infer",
        ...common,
        "--tasks=sequential,rating,explanation,review",
        "--beams=4",
        "--top-k=4",
        "--max-new-tokens=6",
        "--exclude-seen",
        `--out=${full}`,
      ]);
      await cli([
        "infer",
        ...common,
        "--tasks=direct",
        "--protocol=sampled",
        `--out=${direct}`,
      ]);
      const evaluate = async (predictions: string, extra: string[]) =>
        JSON.parse(
          await cli([
            "eval",
            `--data=${data}`,
            `--predictions=${predictions}`,
            "--name=recsysllm",
            "--k=1,5",
            "--strict",
            "--quiet",
            ...extra,
          ]),
        ).methods;
      const scores = {
        ...await evaluate(full, [
          "--baseline=mean,mf,retrieval,pop,itemknn",
          `--save-baselines=${saved}`,
          "--tasks=sequential,rating,explanation,review",
        ]),
      };
      const sampled = await evaluate(direct, [
        "--baseline=pop,itemknn",
        "--tasks=direct",
        "--protocol=sampled",
      ]);
      const figures: [string, string, string[]][] = [
        ["rating", "recsysllm", ["RMSE", "MAE"]],
        ["rating", "mean", ["RMSE", "MAE"]],
        ["rating", "mf", ["RMSE", "MAE"]],
        ["explanation", "recsysllm", ["BLEU-4", "ROUGE-1", "ROUGE-2", "ROUGE-L"]],
        ["explanation", "retrieval", ["BLEU-4", "ROUGE-1", "ROUGE-2", "ROUGE-L"]],
        ["review", "recsysllm", ["BLEU-4", "ROUGE-L"]],
        ["review", "retrieval", ["BLEU-4", "ROUGE-L"]],
        ["sequential", "recsysllm", ["HR@5", "NDCG@5"]],
        ["sequential", "itemknn", ["HR@5", "NDCG@5"]],
      ];
      for (const [task, method, metrics] of figures) {
        const result = scores[method]?.[task];
        assert.ok(result, `${task} ${method} scored`);
        // The seen and the held-out templates are scored apart, each on every user.
        for (const part of ["seen", "heldOut"]) {
          assert.ok(result[part].count >= USERS - 1, `${task} ${method} ${part}`);
          for (const m of metrics) {
            assert.ok(Number.isFinite(result[part][m]), `${task} ${method} ${part} ${m}`);
          }
        }
      }
      // Ratings are on the data's 1..5 scale: any prediction is at most 4 away.
      assert.ok(scores.recsysllm.rating.RMSE <= 4 && scores.mf.rating.RMSE <= 4);
      // The retrieval baseline answers every text record with a training text of its task.
      const trainTexts = new Map<string, Set<string>>();
      for await (const { value } of readJsonLines<TextRecord>(join(data, "train.jsonl"), "train")) {
        const text = value.target?.map((t) => "text" in t ? t.text : "").join("");
        if (text) {
          (trainTexts.get(value.task) ?? trainTexts.set(value.task, new Set()).get(value.task)!)
            .add(text);
        }
      }
      let answered = 0;
      for await (
        const { value } of readJsonLines<PredictionLine>(
          join(saved, "retrieval.jsonl"),
          "retrieval",
        )
      ) {
        assert.ok(trainTexts.get(value.task!)!.has(value.text!), `${value.id}: ${value.text}`);
        answered++;
      }
      assert.equal(answered, scores.retrieval.explanation.count + scores.retrieval.review.count);
      for (const method of ["recsysllm", "pop", "itemknn"]) {
        const result = sampled[method].direct;
        assert.ok(result.seen.count >= USERS - 1 && result.heldOut.count >= USERS - 1);
        assert.ok(result["HR@5"] >= 0 && result["HR@5"] <= 1);
      }
    });
  },
});
