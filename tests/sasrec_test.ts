/**
 * SASRec (lib/sasrec, lib/baselines/sasrec.ts): its gradients against finite differences in
 * float64, the batches it reads, that it learns a deterministic next item on a small synthetic
 * dataset through `eval --baseline sasrec`, and that no validation or test target reaches its
 * training data.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { openDataset, readRecords, tuneUsersOf } from "../lib/data/dataset.ts";
import { UserSample } from "../lib/data/user_sample.ts";
import { DEFAULT_RECORD_OPTIONS } from "../lib/data/records.ts";
import { textualize } from "../lib/data/textualize.ts";
import { createSasrecBaseline, type SasrecBaseline } from "../lib/baselines/sasrec.ts";
import { loadBaselines } from "../lib/baselines/load.ts";
import { readSavedSasrec } from "../lib/baselines/sasrec_saved.ts";
import type { Progress } from "../lib/io/progress.ts";
import { TrainingHistories } from "../lib/baselines/histories.ts";
import { EntityIndex } from "../lib/eval/entities.ts";
import type { TensorData } from "../lib/onnx/graph.ts";
import { Rng } from "../lib/random.ts";
import { rankingBatch, trainingBatch, trainingWindow } from "../lib/sasrec/batch.ts";
import {
  buildSasrecLossGraph,
  dropoutSites,
  initSasrec,
  type SasrecConfig,
  sasrecShapes,
} from "../lib/sasrec/model.ts";
import { SasrecRanker } from "../lib/sasrec/rank.ts";
import { buildSasrecGradientGraph, epochBatches, lossScale } from "../lib/sasrec/train.ts";
import { Session } from "../lib/runtime/session.ts";
import { checkGradients } from "./helpers/grad_check.ts";
import { type CliRun, runCli } from "./helpers/cli.ts";
import { gridDataset } from "./helpers/textualize.ts";
import { withTempDir } from "./helpers/temp.ts";

Deno.test("training and ranking batches: left padding, right-aligned positions, loss rows", () => {
  assert.equal(trainingWindow(Int32Array.of(5), 4), undefined);
  assert.deepEqual(Array.from(trainingWindow(Int32Array.of(1, 2, 3, 4, 5, 6, 7), 4)!), [
    3,
    4,
    5,
    6,
    7,
  ]);
  const batch = trainingBatch([Int32Array.of(3, 1, 2), Int32Array.of(4, 5, 6, 7)], 10);
  assert.equal(batch.length, 3);
  assert.deepEqual(Array.from(batch.items), [0, 3, 1, 4, 5, 6]);
  assert.deepEqual(Array.from(batch.positions), [0, 8, 9, 7, 8, 9]);
  assert.deepEqual(Array.from(batch.rows), [1, 2, 3, 4, 5]);
  assert.deepEqual(Array.from(batch.targets), [0, 1, 4, 5, 6]); // items 1 2 5 6 7, 0-based
  const rank = rankingBatch([[1, 2, 3, 4], [9]], 3);
  assert.deepEqual(Array.from(rank.items), [2, 3, 4, 0, 0, 9]);
  assert.deepEqual(Array.from(rank.positions), [0, 1, 2, 0, 0, 2]);
  // An epoch's batches cover every window once.
  const windows = Array.from({ length: 50 }, (_, i) => new Int32Array(2 + (i % 7)));
  const rng = new Rng(3);
  const batches = epochBatches(windows, 8, rng);
  assert.deepEqual(batches.flat().sort((a, b) => a - b), windows.map((_, i) => i));
  // Users of one length are shuffled too: the next epoch cuts other batches, not the same ones.
  const users = (b: number[][]) => new Set(b.map((ids) => ids.toSorted((x, y) => x - y).join()));
  const first = users(batches);
  const next = [...users(epochBatches(windows, 8, rng))].filter((ids) => first.has(ids));
  assert.ok(next.length < first.size / 2, `${next.length} of ${first.size} batches repeat`);
});

/** A batch's inputs and `weights` in float64: the feeds of the loss and gradient graphs. */
function float64Feeds(
  batch: ReturnType<typeof trainingBatch>,
  config: SasrecConfig,
  weights: ReadonlyMap<string, Float32Array>,
): Record<string, TensorData> {
  const shape = [batch.batchSize, batch.length];
  const feeds: Record<string, TensorData> = {
    items: { dtype: "int32", shape, data: batch.items },
    positions: { dtype: "int32", shape, data: batch.positions },
    rows: { dtype: "int32", shape: [batch.rows.length], data: batch.rows },
    targets: { dtype: "int32", shape: [batch.targets.length], data: batch.targets },
  };
  for (const [name, shape] of sasrecShapes(config)) {
    feeds[name] = { dtype: "float64", shape, data: Float64Array.from(weights.get(name)!) };
  }
  return feeds;
}

Deno.test("the SASRec loss graph's gradients match finite differences (float64, dropout)", async () => {
  const config: SasrecConfig = { numItems: 7, hidden: 8, blocks: 2, heads: 2, maxLength: 6 };
  const rng = new Rng(11);
  const weights = initSasrec(config, rng);
  // LayerNorm weights and biases off their init, so their gradients are generic.
  for (const [name, data] of weights) {
    if (name.includes("norm") || name.endsWith("bias")) {
      for (let i = 0; i < data.length; i++) data[i] += 0.3 * rng.normal();
    }
  }
  const { graph, loss, params } = buildSasrecLossGraph({ config, dtype: "float64", dropout: true });
  // Three sequences of different lengths (padding matters), one repeating an item.
  const batch = trainingBatch(
    [Int32Array.of(1, 2, 3), Int32Array.of(4, 5, 6, 7, 1), Int32Array.of(2, 2)],
    config.maxLength,
  );
  const n = batch.batchSize * batch.length;
  const feeds = float64Feeds(batch, config, weights);
  for (const site of dropoutSites(config)) {
    const mask = Float64Array.from(
      { length: n * config.hidden },
      () => rng.float() < 0.3 ? 0 : 1.4,
    );
    feeds[site] = { dtype: "float64", shape: [n, config.hidden], data: mask };
  }
  const result = await checkGradients(graph, loss, params, feeds, { maxElements: 6 });
  const worst = Object.entries(result.perTensor).sort((a, b) => b[1] - a[1])[0];
  console.log(
    `  SASRec: worst relative error ${result.worst.toExponential(2)} over ${result.checked} ` +
      `elements of ${params.length} tensors (worst: ${worst[0]})`,
  );
  assert.equal(params.length, sasrecShapes(config).size);
  assert.ok(result.largest > 1e-3);
  assert.ok(result.worst < 1e-5, JSON.stringify(result.perTensor));
});

Deno.test("a short batch's positions weigh as a long one's: scaled gradients sum to the union's", async () => {
  const config: SasrecConfig = { numItems: 9, hidden: 8, blocks: 1, heads: 2, maxLength: 8 };
  const weights = initSasrec(config, new Rng(5));
  const { graph, params, grads } = buildSasrecGradientGraph({ config, dtype: "float64" });
  grads.forEach((grad, i) => graph.output(grad, `grad.${params[i].name}`));
  // Two batches as the length buckets cut them: short windows (1 loss row each) and long ones.
  const short = [Int32Array.of(1, 2), Int32Array.of(3, 4), Int32Array.of(5, 6)];
  const long = [Int32Array.of(2, 3, 4, 5, 6, 7, 8), Int32Array.of(9, 1, 2, 3, 4, 5, 6)];
  const session = await Session.create(graph, { device: "cpu", threads: 1 });
  try {
    const gradientsOf = async (windows: Int32Array[], scale: number) => {
      const out = await session.run({
        ...float64Feeds(trainingBatch(windows, config.maxLength), config, weights),
        loss_scale: { dtype: "float64", shape: [1], data: Float64Array.of(scale) },
      });
      return params.map((p) => out[`grad.${p.name}`].data as Float64Array);
    };
    // One batch of all five windows: the mean over every position; the epoch's two batches
    // together must step as two of it would.
    const union = await gradientsOf([...short, ...long], 2);
    const error = async (scaleShort: number, scaleLong: number) => {
      const [a, b] = [await gradientsOf(short, scaleShort), await gradientsOf(long, scaleLong)];
      let worst = 0;
      let largest = 0;
      union.forEach((u, t) => {
        for (let i = 0; i < u.length; i++) {
          worst = Math.max(worst, Math.abs(a[t][i] + b[t][i] - u[i]));
          largest = Math.max(largest, Math.abs(u[i]));
        }
      });
      return worst / largest;
    };
    const epochRows = 3 + 12;
    const weighed = await error(lossScale(3, epochRows, 2), lossScale(12, epochRows, 2));
    assert.ok(weighed < 1e-10, `scaled batches: relative error ${weighed}`);
    // Each batch's plain mean (scale 1) weighs the short batch's 3 positions as the long
    // one's 12: not the union's gradient.
    const plain = await error(1, 1);
    assert.ok(plain > 1e-2, `plain batch means: relative error ${plain}`);
  } finally {
    await session.release();
  }
});

Deno.test("ranking leaves excluded items out and scores candidates as it ranks", async () => {
  const config: SasrecConfig = { numItems: 9, hidden: 8, blocks: 1, heads: 1, maxLength: 5 };
  const weights = initSasrec(config, new Rng(2));
  const ranker = await SasrecRanker.create(config, { k: 9, threads: 1 });
  try {
    const [a, b] = await ranker.rank(weights, [
      { history: [1, 2, 3], exclude: [1, 2, 3], candidates: [4, 5, 6] },
      { history: [7, 8, 9, 1, 2, 3] },
    ]);
    assert.deepEqual([...a.items].sort(), [4, 5, 6, 7, 8, 9]);
    assert.equal(b.items.length, 9);
    for (const [i, c] of [4, 5, 6].entries()) {
      assert.ok(Math.abs(a.candidateScores[i] - a.scores[a.items.indexOf(c)]) < 1e-5);
    }
    // Only the last maxLength items are read: a history's older items change nothing.
    const [c] = await ranker.rank(weights, [{ history: [8, 9, 1, 2, 3] }]);
    assert.deepEqual(Array.from(c.items), Array.from(b.items));
    // A short history's padding is masked: ranked alone, it scores as beside a longer one.
    const [alone] = await ranker.rank(weights, [{ history: [1, 2, 3], candidates: [4, 5, 6] }]);
    for (let i = 0; i < 3; i++) {
      assert.ok(Math.abs(alone.candidateScores[i] - a.candidateScores[i]) < 1e-5);
    }
  } finally {
    await ranker.release();
  }
});

/**
 * A synthetic dataset in P5's format: items 1..N in a cycle, each user's sequence a run of
 * consecutive items from a random start, so the next item is always the current one + 1.
 */
async function cyclicDataset(
  dir: string,
  users: number,
  items: number,
  refit?: { tuneUsers: { size: number; seed: number } },
): Promise<string> {
  const rng = new Rng(7);
  const lines: string[] = [];
  for (let u = 1; u <= users; u++) {
    const start = rng.int(items);
    const length = 5 + rng.int(4);
    const seq = Array.from({ length }, (_, t) => 1 + ((start + t) % items));
    lines.push(`${u} ${seq.join(" ")}`);
  }
  const input = join(dir, "sequential_data.txt");
  await Deno.writeTextFile(input, lines.join("\n") + "\n");
  const csv = ["item_id,asin,title"];
  for (let i = 1; i <= items; i++) csv.push(`${i},A${i},Product number ${i}`);
  await Deno.writeTextFile(join(dir, "items.csv"), csv.join("\n") + "\n");
  const out = join(dir, "data");
  await textualize({
    read: { format: "p5", input, items: join(dir, "items.csv") },
    records: {
      ...DEFAULT_RECORD_OPTIONS,
      tasks: ["sequential"],
      ...(refit ? { trainThrough: "valid", tuneUsers: refit.tuneUsers } : {}),
    },
    out,
  });
  return out;
}

const FAST = [
  "--sasrec-hidden",
  "16",
  "--sasrec-blocks",
  "1",
  "--sasrec-dropout",
  "0",
  "--sasrec-lr",
  "0.01",
  "--sasrec-batch-size",
  "16",
  "--sasrec-max-length",
  "8",
];

Deno.test("eval --baseline sasrec learns a deterministic next item (HR@1 near 1)", async () => {
  await withTempDir(async (dir) => {
    const data = await cyclicDataset(dir, 80, 24);
    const curve = join(dir, "curve.jsonl");
    const chart = join(dir, "curve.svg");
    const run = await runCli([
      "eval",
      "--data",
      data,
      "--baseline",
      "sasrec,pop",
      "--k",
      "1,10",
      "--quiet",
      ...FAST,
      "--sasrec-epochs",
      "40",
      "--sasrec-patience",
      "6",
      "--sasrec-curve",
      curve,
      "--sasrec-curve",
      chart,
      "--save-baselines",
      join(dir, "saved"),
    ]);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout);
    const hr1 = report.methods.sasrec.sequential["HR@1"];
    const pop = report.methods.pop.sequential["HR@1"];
    console.log(`  synthetic cycle of 24 items: SASRec HR@1 ${hr1.toFixed(3)}, pop ${pop}`);
    assert.ok(hr1 >= 0.95, `HR@1 ${hr1}`);
    assert.ok(pop < 0.2);
    const points = (await Deno.readTextFile(curve)).trim().split("\n").map((l) => JSON.parse(l));
    assert.ok(points.length >= 2 && points.length <= 40);
    assert.ok(points.at(-1).loss < points[0].loss);
    assert.ok(points.every((p: { ndcg10?: number }) => typeof p.ndcg10 === "number"));
    assert.match(await Deno.readTextFile(chart), /<svg[\s\S]*NDCG@10/);
    // Saved predictions: one line per test record, never a seen item, best first.
    const saved = (await Deno.readTextFile(join(dir, "saved", "sasrec.jsonl"))).trim().split("\n")
      .map((l) => JSON.parse(l));
    const ds = await openDataset(data);
    const test = new Map<string, string[]>();
    for await (const r of readRecords(ds, "test")) test.set(r.id, r.history ?? []);
    assert.equal(saved.length, test.size);
    for (const line of saved) {
      const seen = new Set(test.get(line.id));
      assert.equal(line.predictions.length, Math.min(20, 24 - seen.size)); // --top 20
      assert.ok(line.predictions.every((p: { entity: string }) => !seen.has(p.entity)));
    }
  });
});

Deno.test("SASRec is seeded: the same seed gives the same predictions", async () => {
  await withTempDir(async (dir) => {
    const data = await cyclicDataset(dir, 30, 12);
    const once = () =>
      runCli([
        "eval",
        "--data",
        data,
        "--baseline",
        "sasrec",
        "--quiet",
        ...FAST,
        "--sasrec-dropout",
        "0.3",
        "--sasrec-epochs",
        "3",
        "--seed",
        "5",
      ]);
    const [a, b] = [await once(), await once()];
    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.stdout, b.stdout);
  });
});

Deno.test("leave-one-out hygiene: SASRec trains on histories without validation or test targets", async () => {
  await withTempDir(async (dir) => {
    const dataDir = await cyclicDataset(dir, 20, 40);
    const data = await openDataset(dataDir);
    const pool = new EntityIndex(data.entities);
    const histories = new TrainingHistories(pool);
    for await (const r of readRecords(data, "valid")) histories.addValid(r, "valid.jsonl");
    for await (const r of readRecords(data, "test")) histories.addTest(r, "test.jsonl");
    const sasrec = await createSasrecBaseline(
      { pool, histories: histories.byUser },
      { protocol: "full", top: 5, sasrec: { epochs: 1, hidden: 8, blocks: 1, maxLength: 8 } },
      { validation: readRecords(data, "valid"), records: readRecords(data, "test") },
    );
    const source = (await Deno.readTextFile(join(dir, "sequential_data.txt"))).trim().split("\n");
    const full = new Map(source.map((l) => {
      const [user, ...items] = l.split(" ");
      return [user, items.map((i) => `Product number ${i}`)];
    }));
    assert.equal(sasrec.trainedOn.size, 20);
    for (const [user, ids] of sasrec.trainedOn) {
      const items = full.get(user)!;
      // Exactly the sequence before the last two items (validation, test target): with every
      // item of a user distinct here, neither target is anywhere in what SASRec saw.
      assert.deepEqual(Array.from(ids, (id) => pool.name(id)), items.slice(0, -2));
      const names = new Set(Array.from(ids, (id) => pool.name(id)));
      assert.ok(!names.has(items.at(-1)!) && !names.has(items.at(-2)!));
    }
    assert.equal(sasrec.refit, false);
    // Ranking the test split, the refit model trains on each history followed by the user's
    // validation item: everything before the test target, and never the target itself.
    const refit = await createSasrecBaseline(
      { pool, histories: histories.byUser },
      { protocol: "full", top: 5, sasrec: { epochs: 1, hidden: 8, blocks: 1, maxLength: 8 } },
      {
        validation: readRecords(data, "valid"),
        records: readRecords(data, "test"),
        scoresTest: true,
      },
    );
    assert.equal(refit.refit, true);
    for (const [user, ids] of refit.trainedOn) {
      const items = full.get(user)!;
      assert.deepEqual(Array.from(ids, (id) => pool.name(id)), items.slice(0, -1));
    }
    // Under the sampled protocol each record's candidates come back, all of them, best first.
    const sampled = await createSasrecBaseline(
      { pool, histories: histories.byUser },
      { protocol: "sampled", sasrec: { epochs: 1, hidden: 8, blocks: 1, maxLength: 8 } },
      { records: readRecords(data, "test") },
    );
    for await (const record of readRecords(data, "test")) {
      const line = sampled.predict(record)!;
      const got = line.predictions!;
      assert.deepEqual(got.map((p) => p.entity).sort(), [...record.candidates!].sort());
      for (let i = 1; i < got.length; i++) assert.ok(got[i - 1].score! >= got[i].score!);
    }
  });
});

Deno.test("SASRec's bad cases are one-line input errors: no user with two training items, a diverging lr", async () => {
  await withTempDir(async (dir) => {
    // Sequences of 3: one training item a user once validation and test take theirs (the
    // ratings give the dataset its training records).
    const short = await gridDataset(join(dir, "short"), {
      users: 30,
      each: 3,
      items: 20,
      tasks: ["sequential", "rating"],
    });
    const none = await runCli([
      "eval",
      "--data",
      short,
      "--baseline",
      "sasrec",
      "--quiet",
      ...FAST,
    ]);
    assert.equal(none.code, 1, none.stderr);
    assert.match(none.stderr, /^error: SASRec: no user has two training items/m);
    const data = await cyclicDataset(dir, 40, 24);
    const diverged = await runCli([
      "eval",
      "--data",
      data,
      "--baseline",
      "sasrec",
      "--quiet",
      ...FAST,
      "--sasrec-lr",
      "1e30",
      "--sasrec-epochs",
      "1",
    ]);
    assert.equal(diverged.code, 1, diverged.stderr);
    assert.match(
      diverged.stderr,
      /^error: SASRec training diverged at epoch 1 .*: lower --sasrec-lr \(1e\+30\)$/m,
    );
  });
});

Deno.test("eval --sasrec-refit-epochs N ranks the test split as the early stopping that chose N", async () => {
  await withTempDir(async (dir) => {
    const data = await cyclicDataset(dir, 30, 12);
    const curve = join(dir, "curve.jsonl");
    const common = ["eval", "--data", data, "--baseline", "sasrec", "--quiet", ...FAST];
    const early = await runCli([
      ...common,
      "--sasrec-dropout",
      "0.3",
      "--sasrec-epochs",
      "6",
      "--sasrec-patience",
      "2",
      "--sasrec-curve",
      curve,
      "--save-baselines",
      join(dir, "early"),
    ]);
    assert.equal(early.code, 0, early.stderr);
    const points = (await Deno.readTextFile(curve)).trim().split("\n").map((l) => JSON.parse(l));
    const best = points.reduce((a, p) => (p.ndcg10 > a.ndcg10 ? p : a)).epoch;
    assert.ok(best > 1, `best epoch ${best}`);
    // Early stopping limited to one epoch would refit for one: the given count must rule.
    const given = await runCli([
      ...common,
      "--sasrec-dropout",
      "0.3",
      "--sasrec-epochs",
      "1",
      "--sasrec-refit-epochs",
      String(best),
      "--save-baselines",
      join(dir, "given"),
    ]);
    await assertSameSasrec(dir, ["early", early], ["given", given]);
    // Nothing to skip on the validation split; no curve when early stopping is skipped.
    const valid = await runCli([...common, "--split", "valid", "--sasrec-refit-epochs", "2"]);
    assert.equal(valid.code, 2);
    assert.match(
      valid.stderr,
      /--sasrec-refit-epochs sets the epochs of SASRec's refit.*--split test/,
    );
    const drawn = await runCli([...common, "--sasrec-refit-epochs", "2", "--sasrec-curve", curve]);
    assert.equal(drawn.code, 2);
    assert.match(drawn.stderr, /--sasrec-refit-epochs skips the early stopping.*--sasrec-curve/);
  });
});

Deno.test("eval --sasrec-refit-epochs without a refit to set is refused in one line naming why", async () => {
  await withTempDir(async (dir) => {
    const data = await cyclicDataset(dir, 30, 12);
    const refused = async (args: string[], message: RegExp) => {
      const run = await runCli(["eval", "--data", data, "--quiet", ...args]);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, message);
      assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
    };
    const given = [...FAST, "--sasrec-refit-epochs", "2"];
    // The test split (the default) with the refit turned off: the flag that turns it off named.
    await refused(
      ["--baseline", "sasrec", "--sasrec-no-refit", ...given],
      /--sasrec-refit-epochs sets the epochs of SASRec's refit.*--sasrec-no-refit turns off/,
    );
    await refused(
      ["--baseline", "sasrec", "--split", "valid", ...given],
      /--sasrec-refit-epochs sets the epochs of SASRec's refit.*--split test \(not valid\)/,
    );
    // Without sasrec the flag configures nothing run: said so, not that the split is wrong.
    await refused(
      ["--baseline", "pop", "--split", "valid", "--sasrec-refit-epochs", "2"],
      /--sasrec-refit-epochs configures sasrec, which --baseline does not run/,
    );
    // No validation records: no refit, and no early stopping the count could stand for.
    await Deno.remove(join(data, "valid.jsonl"));
    await refused(
      ["--baseline", "sasrec", ...given],
      /--sasrec-refit-epochs sets the epochs of SASRec's refit .*no validation record.*valid\.jsonl/,
    );
  });
});

Deno.test("eval --sasrec-model ranks with a saved SASRec as the eval that trained it did", async () => {
  await withTempDir(async (dir) => {
    const data = await cyclicDataset(dir, 30, 12);
    const common = ["eval", "--data", data, "--baseline", "sasrec", "--quiet"];
    const train = [...FAST, "--sasrec-dropout", "0.3", "--sasrec-epochs", "4"];
    const trained = await runCli([...common, ...train, "--save-baselines", join(dir, "a")]);
    assert.equal(trained.code, 0, trained.stderr);
    const model = join(dir, "a", "sasrec.safetensors");
    const loaded = await runCli([
      ...common,
      "--sasrec-model",
      model,
      "--save-baselines",
      join(dir, "b"),
    ]);
    await assertSameSasrec(dir, ["a", trained], ["b", loaded]);
    // Saved again from the loaded one: the same model, byte for byte.
    const again = await Deno.readFile(join(dir, "b", "sasrec.safetensors"));
    assert.deepEqual(again, await Deno.readFile(model));

    // A file that is not the model this eval would train is an input error (exit 1); flags
    // that would train one, a usage error (2).
    const refused = async (args: string[], message: RegExp, code = 1) => {
      const run = await runCli([...common, "--sasrec-model", model, ...args]);
      assert.equal(run.code, code, run.stderr);
      assert.match(run.stderr, message);
      assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
    };
    // The test split's model is the refit: the validation split's ranking learned less.
    await refused(
      ["--split", "valid"],
      /sasrec\.safetensors: its SASRec learned other sequences \(30 users' training histories followed by their validation item\) than this eval's would \(30 users' training histories\)/,
    );
    await refused(
      ["--sasrec-epochs", "2"],
      /--sasrec-epochs sets how SASRec trains, but --sasrec-model ranks with a saved one/,
      2,
    );
    // The validation split's model for the test split, which would refit: the way out named,
    // and taken.
    const valid = await runCli([
      ...common,
      ...train,
      "--split",
      "valid",
      "--save-baselines",
      join(dir, "v"),
    ]);
    assert.equal(valid.code, 0, valid.stderr);
    const early = join(dir, "v", "sasrec.safetensors");
    const refits = await runCli([...common, "--sasrec-model", early]);
    assert.equal(refits.code, 1, refits.stderr);
    assert.match(refits.stderr, /or give --sasrec-no-refit to rank with the early-stopped model$/m);
    const kept = await runCli([...common, "--sasrec-model", early, "--sasrec-no-refit"]);
    assert.equal(kept.code, 0, kept.stderr);
    await Deno.mkdir(join(dir, "other"));
    const other = await cyclicDataset(join(dir, "other"), 30, 13);
    const elsewhere = await runCli([
      "eval",
      "--data",
      other,
      "--baseline",
      "sasrec",
      "--quiet",
      "--sasrec-model",
      model,
    ]);
    assert.equal(elsewhere.code, 1, elsewhere.stderr);
    assert.match(
      elsewhere.stderr,
      /its SASRec numbers another list of items \(12, sha256 [0-9a-f]{12}\.\.\.\) than this dataset's 13/,
    );
    await refused(
      ["--sasrec-model", join(dir, "a", "sasrec-items.safetensors")],
      /not a saved SASRec/,
    );
    // Never replaced by the run that reads it.
    const same = await runCli([
      ...common,
      "--sasrec-model",
      model,
      "--save-baselines",
      join(dir, "a"),
    ]);
    assert.notEqual(same.code, 0);
    assert.match(
      same.stderr,
      /sasrec\.safetensors is the input .*sasrec\.safetensors: writing there would destroy it/,
    );
    assert.deepEqual(await Deno.readFile(model), again);
  });
});

Deno.test("a refit with tuning users: SASRec learns what the model learns and one model ranks both splits", async () => {
  await withTempDir(async (dir) => {
    const data = await cyclicDataset(dir, 40, 12, { tuneUsers: { size: 10, seed: 1 } });
    const ds = await openDataset(data);
    const tune = tuneUsersOf(ds)!;
    const plain = ["eval", "--data", data, "--baseline", "sasrec", "--quiet"];
    const common = [...plain, ...FAST];
    const curve = join(dir, "curve.jsonl");
    const valid = await runCli([
      ...common,
      "--split",
      "valid",
      "--sample-users",
      String(tune.size),
      "--sample-seed",
      String(tune.seed),
      "--sasrec-epochs",
      "5",
      "--sasrec-curve",
      curve,
      "--save-baselines",
      join(dir, "valid"),
    ]);
    assert.equal(valid.code, 0, valid.stderr);
    // The test split trains the same model (no refit): its saved copy is the validation one's.
    const test = await runCli([
      ...common,
      "--sasrec-epochs",
      "5",
      "--save-baselines",
      join(dir, "test"),
    ]);
    assert.equal(test.code, 0, test.stderr);
    const model = (name: string) => Deno.readFile(join(dir, name, "sasrec.safetensors"));
    assert.deepEqual(await model("test"), await model("valid"));
    const loaded = await runCli([
      ...plain,
      "--sasrec-model",
      join(dir, "valid", "sasrec.safetensors"),
      "--save-baselines",
      join(dir, "loaded"),
    ]);
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.equal(loaded.stdout, test.stdout);
    // What it learned (eval's own choice, lib/baselines/load.ts): every user's validation item
    // but the tuning users'; early stopping on theirs alone.
    const logs: string[] = [];
    const progress = { log: (m: string) => logs.push(m), update: () => {} } as unknown as Progress;
    const sasrec = (await loadBaselines(ds, ["sasrec"], {
      protocol: "full",
      top: 10,
      sasrec: { hidden: 16, blocks: 1, maxLength: 8, epochs: 1 },
    }, progress)).get("sasrec") as SasrecBaseline;
    assert.equal(sasrec.refit, false);
    const pool = new EntityIndex(ds.entities);
    const sample = new UserSample({ ...tune, users: ds.manifest.users! });
    const tuningUsers = new Set<string>();
    for await (const r of readRecords(ds, "test")) {
      const learned = [...sasrec.trainedOn.get(r.user)!].map((id) => pool.name(id));
      // The test input ends with the validation item: learned unless the user is a tuning one.
      const history = r.history!;
      const expected = sample.has(r.user) ? history.slice(0, -1) : history;
      assert.deepEqual(learned, expected.slice(-learned.length), `user ${r.user}`);
      assert.equal(learned.length, expected.length, `user ${r.user}`);
      if (sample.has(r.user)) tuningUsers.add(r.user);
    }
    const tuning = tuningUsers.size;
    assert.ok(tuning > 0 && tuning < 40, `${tuning} tuning users`);
    assert.ok(
      logs.some((l) => l.includes(`early stopping on ${tuning} validation users`)),
      logs.join("\n"),
    );
    // The saved model records the same sequences (and that it learned the validation items).
    const { info } = await readSavedSasrec(join(dir, "valid", "sasrec.safetensors"));
    assert.equal(info.trained_on_sha256, sasrec.saved.trained_on_sha256);
    assert.equal(info.learned_validation, true);
    assert.equal(info.refit, false);
    // --sasrec-refit-epochs has no refit to set there; --sasrec-curve nothing to draw with a model.
    const refit = await runCli([...common, "--sasrec-refit-epochs", "2"]);
    assert.equal(refit.code, 2, refit.stderr);
    assert.match(
      refit.stderr,
      /refit dataset with tuning users SASRec learns the validation items/,
    );
    const drawn = await runCli([
      ...plain,
      "--sasrec-model",
      join(dir, "valid", "sasrec.safetensors"),
      "--sasrec-curve",
      curve,
    ]);
    assert.equal(drawn.code, 2, drawn.stderr);
    assert.match(
      drawn.stderr,
      /--sasrec-curve draws SASRec's training, which --sasrec-model skips/,
    );
  });
});

/** Asserts that two evals (each saved to `dir/NAME`) saved the same SASRec ranking and report. */
async function assertSameSasrec(
  dir: string,
  [a, runA]: [string, CliRun],
  [b, runB]: [string, CliRun],
): Promise<void> {
  assert.equal(runA.code, 0, runA.stderr);
  assert.equal(runB.code, 0, runB.stderr);
  const read = (name: string) => Deno.readTextFile(join(dir, name, "sasrec.jsonl"));
  assert.equal(await read(b), await read(a));
  assert.equal(runB.stdout, runA.stdout);
}
