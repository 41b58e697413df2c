/**
 * The quality benchmark: the chosen recipe on Amazon Beauty end to end, as a user runs it
 * (`main.ts` subcommands in child processes): textualize, init, pretrain, infer on the test
 * split (ranking over all items with the trie, the seen templates, history items excluded as the
 * baselines exclude them), eval with most-popular, item-kNN and SASRec (trained in the same run,
 * by eval, on the same training interactions) beside it. Prints HR@5, NDCG@5, HR@10, NDCG@10,
 * valid, the baselines' figures and the seconds of every stage.
 *
 * Two stages (QUALITY_RERANK=sasrec): SASRec proposes each record's candidates and the language
 * model reranks them by the fusion of lib/generate/rerank.ts; the fusion's weight and candidate
 * count are tuned on the validation users (eval --tune-rerank), with SASRec's
 * validation ranking, and then applied to the test split, where the model's own ranking over all
 * items is scored beside (`lm_alone`). SASRec's training counts in `train_plus_infer_minutes`.
 * On a refit with tuning users (the default), SASRec learns what the model learns (every other
 * user's validation item) and early-stops on the tuning users, so the fusion is tuned on the
 * very first stage it is applied to, and that model is trained once (eval --sasrec-model).
 *
 * A benchmark, never a test: at the recipe's full length it trains for over an hour on 2 cores.
 * Settings (environment):
 * - QUALITY_RERANK: `sasrec` (the two stages) or `none` (the model alone over all items);
 * - QUALITY_ITEM_ROWS: `random` (default) or `sasrec`: the item tokens' rows start from the
 *   validation SASRec's item table (init --item-rows), trained before the model;
 * - QUALITY_STEPS: optimizer steps (default 16800: about 95 minutes of training, 110 in all, on 2
 *   cores);
 * - QUALITY_TUNE_USERS: without a refit, a seeded sample of validation users to tune the fusion on
 *   (default: all); a refit tunes on its `--tune-users`;
 * - QUALITY_SASREC: extra eval flags for SASRec (space-separated), e.g. `--sasrec-epochs=2` for a
 *   quick look at the wiring;
 * - QUALITY_RECIPE: the pretrain recipe (default `sequential`; `none` for plain defaults);
 * - QUALITY_SAMPLE_USERS: infer and eval on a seeded sample of about N test users (default:
 *   every user) for a quick look;
 * - QUALITY_TEXTUALIZE: textualize flags (space-separated; default
 *   `--item-tokens=title --train-through=valid --tune-users=4000`): item tokens before the titles,
 *   and the refit (the model for the test split also learns each user's validation item; the item
 *   baselines then learn it too) with 4,000 tuning users who keep their validation item out of
 *   training, on whom the fusion and the curve are measured. A refit with the two stages needs
 *   `--tune-users=N`; `--item-tokens=title` alone is the run without the refit;
 * - QUALITY_PRETRAIN: extra pretrain flags (space-separated);
 * - QUALITY_INIT: init flags (space-separated; default `--hidden-size=128`);
 * - QUALITY_INFER: infer flags (space-separated; default `--trie-softmax`), for the test figures
 *   and the curve alike;
 * - QUALITY_DIR: the work directory (default $TMPDIR/recsysllm-bench-quality; replaced when a
 *   benchmark made it, else it must be new or empty);
 * - QUALITY_CURVE_USERS: the validation sample of the curve (default 1000; 0: no curve). Each
 *   model pretrain saves (every eighth of the run) is copied to `snaps/`; after the test figures,
 *   each is scored on that sample of validation users (about a minute each), and `curve.json`
 *   and `curve.svg` (HR@10 against training minutes, with the baselines) are written;
 * - QUALITY_CURVE_FROM=DIR: only that curve, from the snapshots of an earlier run's DIR;
 * - QUALITY_DATA: a folder in Beauty's layout (`sequential_data.txt`, one user a line with their
 *   items in order; `items.csv`, `item_id,asin,title`) to run the same recipe on (default
 *   `../shared/data/amazon-beauty`); a held-out dataset is checked blind this way;
 * - QUALITY_SEED: the seed of textualize, init, pretrain and SASRec (default 1); the tuning users
 *   are drawn with the sample seed whatever it is, so seeds compare on the same users.
 *
 * Needs `../shared/data/amazon-beauty` beside the checkout, or QUALITY_DATA.
 *
 * @module
 */

import { join } from "node:path";
import { BEAUTY, beautyTextualizeArgs } from "./beauty.ts";
import type { RerankTuning } from "../lib/eval/fusion.ts";
import { lineChart } from "../lib/chart/svg.ts";
import {
  itemTokenMode,
  openDataset,
  trainsThroughValid,
  tuneUsersOf,
} from "../lib/data/dataset.ts";
import { InputError } from "../lib/errors.ts";
import { SASREC_MODEL_FILE } from "../lib/baselines/run.ts";
import { benchWorkDir, intSetting } from "./settings.ts";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

const env = (name: string) => Deno.env.get(name);

async function stage(
  name: string,
  args: string[],
  seconds: Record<string, number>,
  whileRunning?: (done: () => boolean) => Promise<void>,
) {
  console.error(`bench quality: ${name}`);
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let finished = false;
  const watching = whileRunning?.(() => finished);
  const out = await child.output();
  finished = true;
  await watching;
  seconds[name] = Math.round((performance.now() - t0) / 100) / 10;
  if (!out.success) throw new InputError(`${name} failed (exit ${out.code})`);
  return new TextDecoder().decode(out.stdout);
}

const words = (name: string, fallback = "") => (env(name) ?? fallback).split(" ").filter(Boolean);
const inferFlags = () => words("QUALITY_INFER", DEFAULT_INFER);

/**
 * The recipe's settings, each replaced by its variable: item tokens and the refit with 4,000
 * tuning users, hidden 128, the trie's softmax, 16,800 steps (docs/results.md, "16,800 steps").
 */
const DEFAULT_TEXTUALIZE = "--item-tokens=title --train-through=valid --tune-users=4000";
const DEFAULT_INIT = "--hidden-size=128";
const DEFAULT_INFER = "--trie-softmax";

const round = (x: number) => Math.round(x * 1e4) / 1e4;

/**
 * While pretrain runs: copies each model it saves (every --save-every steps) to
 * `snaps/step-N`, and records the step and the seconds since training started in
 * `snaps/index.txt`, for the curve of HR@10 against training minutes.
 */
async function snapshots(
  runDir: string,
  snaps: string,
  saveEvery: number,
  steps: number,
  done: () => boolean,
): Promise<void> {
  await Deno.mkdir(snaps, { recursive: true });
  const t0 = performance.now();
  let last = 0;
  const take = async () => {
    let mtime = 0;
    try {
      mtime = (await Deno.stat(join(runDir, "model.safetensors"))).mtime?.getTime() ?? 0;
    } catch {
      return;
    }
    if (mtime === last) return;
    last = mtime;
    const lines = (await Deno.readTextFile(join(runDir, "metrics.jsonl"))).trim().split("\n");
    // The metrics may already be a few steps past the save: the save was at a multiple.
    const logged = JSON.parse(lines[lines.length - 1]).step;
    const step = logged >= steps ? steps : Math.floor(logged / saveEvery) * saveEvery;
    const to = join(snaps, `step-${step}`);
    await Deno.mkdir(to, { recursive: true });
    for (const file of ["config.json", "tokenizer.json", "model.safetensors"]) {
      await Deno.copyFile(join(runDir, file), join(to, file));
    }
    const at = Math.round((performance.now() - t0) / 1000);
    await Deno.writeTextFile(join(snaps, "index.txt"), `${step} ${at}\n`, { append: true });
  };
  while (!done()) {
    await new Promise((r) => setTimeout(r, 5000));
    await take().catch(() => {}); // a file mid-write: the next poll takes it
  }
}

/**
 * 20 beams for the search over titles; none where item tokens rank every item in one step (infer
 * refuses a --beams that would do nothing).
 */
async function beamFlags(data: string): Promise<string[]> {
  return itemTokenMode(await openDataset(data)) === "none" ? ["--beams=20"] : [];
}

/**
 * Answers a split's sequential records with the model (the seen templates, the trie over every
 * item, 20 beams, history excluded) and scores them beside most-popular and item-kNN: eval's
 * JSON report. `sampleUsers`: a seeded sample of about that many users.
 */
async function inferAndScore(
  label: string,
  options: {
    model: string;
    data: string;
    split: string;
    out: string;
    sampleUsers?: number;
    /** The sample's seed (default: infer's and eval's). */
    sampleSeed?: number;
    /** The baselines eval trains and scores beside the model (default pop and item-kNN). */
    baselines?: string;
  },
  ks: string,
  seconds: Record<string, number>,
) {
  const { model, data, split, out } = options;
  const sample = options.sampleUsers
    ? [
      `--sample-users=${options.sampleUsers}`,
      ...(options.sampleSeed === undefined ? [] : [`--sample-seed=${options.sampleSeed}`]),
    ]
    : [];
  await stage(`${label}infer`, [
    "infer",
    `--model=${model}`,
    `--data=${data}`,
    `--split=${split}`,
    "--tasks=sequential",
    "--template=seq-1,seq-2,seq-3",
    ...await beamFlags(data),
    "--top-k=10",
    "--exclude-seen",
    `--out=${out}`,
    "--quiet",
    "--force",
    ...sample,
    ...inferFlags(),
  ], seconds);
  return JSON.parse(
    await stage(`${label}eval`, [
      "eval",
      `--data=${data}`,
      `--split=${split}`,
      `--predictions=${out}`,
      "--name=recsysllm",
      `--baseline=${options.baselines ?? "pop,itemknn"}`,
      "--tasks=sequential",
      `--k=${ks}`,
      "--quiet",
      ...sample,
    ], seconds),
  );
}

/** One curve point: HR@10 / NDCG@10 on a validation sample for the model in `model`. */
async function validationPoint(
  model: string,
  data: string,
  users: number,
  seconds: Record<string, number>,
  seed?: number,
): Promise<{ hr10: number; ndcg10: number; baselines: Record<string, number> }> {
  const report = await inferAndScore(
    "curve ",
    {
      model,
      data,
      split: "valid",
      out: join(model, "valid.jsonl"),
      sampleUsers: users,
      sampleSeed: seed,
    },
    "10",
    seconds,
  );
  const seen = (name: string) =>
    report.methods[name].sequential.seen ?? report.methods[name].sequential;
  return {
    hr10: round(seen("recsysllm")["HR@10"]),
    ndcg10: round(seen("recsysllm")["NDCG@10"]),
    baselines: { pop: round(seen("pop")["HR@10"]), itemknn: round(seen("itemknn")["HR@10"]) },
  };
}

/**
 * The curve of validation HR@10 against training minutes from the snapshots in `snaps`, with
 * most-popular and item-kNN on the same users as flat lines; writes `curve.json` and
 * `curve.svg` into `dir`.
 */
async function validationCurve(dir: string, data: string, users: number, seed?: number) {
  const snaps = join(dir, "snaps");
  const index = (await Deno.readTextFile(join(snaps, "index.txt"))).trim().split("\n")
    .map((l) => l.split(" ").map(Number));
  const points: { step: number; minutes: number; hr10: number; ndcg10: number }[] = [];
  let baselines: Record<string, number> = {};
  for (const [step, at] of index) {
    const point = await validationPoint(join(snaps, `step-${step}`), data, users, {}, seed);
    baselines = point.baselines;
    points.push({ step, minutes: Math.round(at / 6) / 10, hr10: point.hr10, ndcg10: point.ndcg10 });
    console.error(`bench quality: step ${step} (${at} s): validation HR@10 ${point.hr10}`);
  }
  const end = Math.max(...points.map((p) => p.minutes));
  const flat = (value: number) => [[0, value], [end, value]] as [number, number][];
  const svg = lineChart({
    title: `Beauty validation, ${users} sampled users: HR@10 against training minutes`,
    xLabel: "training minutes (2 CPU cores)",
    yLabel: "HR@10 (validation)",
    series: [
      { name: "recsysllm (this run)", points: points.map((p) => [p.minutes, p.hr10]) },
      { name: "item-kNN", points: flat(baselines.itemknn) },
      { name: "most popular", points: flat(baselines.pop) },
    ],
  });
  await Deno.writeTextFile(join(dir, "curve.svg"), svg);
  const curve = { users, points, baselines };
  await Deno.writeTextFile(join(dir, "curve.json"), JSON.stringify(curve, null, 1));
  return curve;
}

/** Runs the recipe end to end; returns its figures. */
export async function run(): Promise<Record<string, unknown>> {
  const source = env("QUALITY_DATA") ?? BEAUTY;
  for (const file of ["sequential_data.txt", "items.csv"]) {
    try {
      await Deno.stat(join(source, file));
    } catch {
      throw new InputError(
        env("QUALITY_DATA") === undefined
          ? `${BEAUTY}: the Amazon Beauty data is not there`
          : `QUALITY_DATA is "${source}": it has no ${file} (Beauty's layout: sequential_data.txt, items.csv)`,
      );
    }
  }
  const seed = intSetting("QUALITY_SEED", 1, { min: 0 });
  const curveUsers = intSetting("QUALITY_CURVE_USERS", 1000, { min: 0 });
  const only = env("QUALITY_CURVE_FROM");
  if (only) return { curve: await validationCurve(only, join(only, "data"), curveUsers) };
  const steps = intSetting("QUALITY_STEPS", 16800, { min: 1 });
  intSetting("QUALITY_SAMPLE_USERS", 1, { min: 1 });
  if (env("QUALITY_TUNE_USERS") !== "all") intSetting("QUALITY_TUNE_USERS", 1, { min: 1 });
  const recipe = env("QUALITY_RECIPE") ?? "sequential";
  const rerank = env("QUALITY_RERANK") ?? "sasrec";
  if (rerank !== "sasrec" && rerank !== "none") {
    throw new InputError(`QUALITY_RERANK is "${rerank}": sasrec or none`);
  }
  const dir = env("QUALITY_DIR") ?? join(env("TMPDIR") ?? "/tmp", "recsysllm-bench-quality");
  await benchWorkDir(dir, "QUALITY_DIR", { isDefault: env("QUALITY_DIR") === undefined });
  const sample = env("QUALITY_SAMPLE_USERS");
  const extra = words("QUALITY_PRETRAIN");
  const data = join(dir, "data"), model = join(dir, "model"), runDir = join(dir, "run");
  const predictions = join(dir, "test.jsonl");
  const seconds: Record<string, number> = {};

  await stage(
    "textualize",
    beautyTextualizeArgs(data, words("QUALITY_TEXTUALIZE", DEFAULT_TEXTUALIZE), { source, seed }),
    seconds,
  );
  const dataset = await openDataset(data);
  const refit = trainsThroughValid(dataset);
  // A refit keeps validation for the users it held out (textualize --tune-users): the fusion
  // and the curve are measured on them.
  const tune = tuneUsersOf(dataset);
  if (refit && !tune && rerank === "sasrec") {
    throw new InputError(
      "QUALITY_TEXTUALIZE --train-through=valid trains on the validation split the fusion is " +
        "tuned on: add --tune-users=N to it, or QUALITY_RERANK=none",
    );
  }
  const curveOn = refit
    ? (tune ? { users: Math.min(curveUsers, tune.size), seed: tune.seed } : undefined)
    : { users: curveUsers, seed: undefined };
  const drawCurve = curveOn !== undefined && curveOn.users > 0;
  // Two stages: SASRec first (its validation ranking, and the item table init may start from).
  const first = rerank === "sasrec" ? await validFirstStage(dir, data, seconds, tune) : undefined;
  const itemRows = env("QUALITY_ITEM_ROWS") ?? "random";
  if (itemRows !== "random" && !(itemRows === "sasrec" && first)) {
    throw new InputError(
      `QUALITY_ITEM_ROWS is "${itemRows}": random, or sasrec (with QUALITY_RERANK=sasrec)`,
    );
  }
  await stage(
    "init",
    [
      "init",
      `--data=${data}`,
      "--preset=tiny",
      `--out=${model}`,
      `--seed=${seed}`,
      ...(itemRows === "sasrec"
        ? [`--item-rows=${join(first!.dir, "sasrec-items.safetensors")}`]
        : []),
      ...words("QUALITY_INIT", DEFAULT_INIT),
    ],
    seconds,
  );
  const saveEvery = Math.max(500, Math.ceil(steps / 8));
  const pretrain = [
    "pretrain",
    `--data=${data}`,
    `--model=${model}`,
    `--out=${runDir}`,
    "--full",
    `--steps=${steps}`,
    "--batch-size=16",
    "--lr=1e-3",
    `--save-every=${saveEvery}`,
    "--val-batches=8",
    `--seed=${seed}`,
    "--quiet",
    ...(recipe === "none" ? [] : [`--recipe=${recipe}`]),
    ...extra,
  ];
  await stage(
    "pretrain",
    pretrain,
    seconds,
    !drawCurve
      ? undefined
      : (done) => snapshots(runDir, join(dir, "snaps"), saveEvery, steps, done),
  );
  if (first) {
    const figures = await twoStages({ dir, data, model: runDir, sample, seconds, first });
    const curve = drawCurve
      ? await validationCurve(dir, data, curveOn.users, curveOn.seed)
      : undefined;
    const trained = seconds.pretrain + seconds["valid first stage"] + seconds["test first stage"];
    const inferred = seconds["valid rerank"] + seconds["test rerank"];
    return {
      data: source,
      seed,
      recipe,
      rerank,
      item_rows: itemRows,
      steps,
      train_through: refit ? "valid" : "train",
      sample_users: sample ? Number(sample) : "all",
      ...figures,
      seconds,
      // Everything the recipe trains and runs: the model, SASRec (early-stopped for the
      // validation ranking the fusion is tuned on; the same model or a refit for test), the
      // reranking.
      train_plus_infer_minutes: Math.round((trained + inferred) / 6) / 10,
      textualize_flags: words("QUALITY_TEXTUALIZE", DEFAULT_TEXTUALIZE).join(" "),
      init_flags: words("QUALITY_INIT", DEFAULT_INIT).join(" "),
      infer_flags: inferFlags().join(" "),
      pretrain_flags: pretrain.slice(1).join(" "),
      curve,
    };
  }
  const report = await inferAndScore(
    "",
    {
      model: runDir,
      data,
      split: "test",
      out: predictions,
      sampleUsers: sample ? Number(sample) : undefined,
      // SASRec, trained by eval in this run on the same training interactions (about ten
      // minutes on Beauty), is the baseline the recipe has to beat.
      baselines: "pop,itemknn,sasrec",
    },
    "5,10",
    seconds,
  );
  const figures = (name: string) => seenFigures(report, name);
  const curve = drawCurve
    ? await validationCurve(dir, data, curveOn.users, curveOn.seed)
    : undefined;
  return {
    data: source,
    seed,
    recipe,
    steps,
    train_through: refit ? "valid" : "train",
    sample_users: sample ? Number(sample) : "all",
    ...figures("recsysllm"),
    baselines: { pop: figures("pop"), itemknn: figures("itemknn"), sasrec: figures("sasrec") },
    seconds,
    train_plus_infer_minutes: Math.round((seconds.pretrain + seconds.infer) / 6) / 10,
    textualize_flags: words("QUALITY_TEXTUALIZE", DEFAULT_TEXTUALIZE).join(" "),
    init_flags: words("QUALITY_INIT", DEFAULT_INIT).join(" "),
    infer_flags: inferFlags().join(" "),
    pretrain_flags: pretrain.slice(1).join(" "),
    curve,
  };
}

/** The seen templates' figures of one method of an eval report (infer answers only those). */
function seenFigures(report: EvalJson, name: string) {
  const all = report.methods[name].sequential;
  const m = { ...all, ...all.seen, count: all.seen?.count ?? all.count };
  return {
    "HR@5": round(m["HR@5"]),
    "NDCG@5": round(m["NDCG@5"]),
    "HR@10": round(m["HR@10"]),
    "NDCG@10": round(m["NDCG@10"]),
    valid: round(m.valid),
    records: m.count,
  };
}

// deno-lint-ignore no-explicit-any
type EvalJson = { methods: Record<string, { sequential: any }> };

/**
 * The first stage on validation, before the model exists: SASRec early-stopped on the
 * validation users, its ranking of `QUALITY_TUNE_USERS` of them (100 candidates each) and its
 * item table saved in `dir/first-valid` (init --item-rows can start from the table).
 */
async function validFirstStage(
  dir: string,
  data: string,
  seconds: Record<string, number>,
  held?: { size: number; seed: number },
) {
  const tune = tuneSample(held);
  const common = [`--data=${data}`, "--tasks=sequential", "--quiet"];
  // Validation: SASRec early-stopped on the validation users, its ranking saved.
  const firstValid = join(dir, "first-valid");
  const report: EvalJson = JSON.parse(
    await stage("valid first stage", [
      "eval",
      ...common,
      "--split=valid",
      "--baseline=sasrec",
      ...words("QUALITY_SASREC"),
      "--k=5,10",
      `--top-k=${FIRST_STAGE_TOP}`,
      ...tune,
      `--save-baselines=${firstValid}`,
      `--sasrec-curve=${join(dir, VALID_CURVE)}`,
    ], seconds),
  );
  return { report, dir: firstValid, held };
}

/** SASRec's early-stopping curve in the validation first stage (JSONL, one point an epoch). */
const VALID_CURVE = "first-valid-sasrec-curve.jsonl";

/**
 * The epoch the validation first stage's early stopping chose (the first best NDCG@10, as
 * lib/sasrec/train.ts keeps it). The test first stage trains the same early-stopped model (same
 * training histories, validation records, settings and seed), so it is given this count for its
 * refit instead of finding it again (`--sasrec-refit-epochs`: the same ranking, minutes sooner).
 */
async function validBestEpoch(dir: string): Promise<number> {
  const points = (await Deno.readTextFile(join(dir, VALID_CURVE))).split("\n").filter(Boolean)
    .map((line) => JSON.parse(line) as { epoch: number; ndcg10?: number });
  let best = { epoch: 0, ndcg10: -1 };
  for (const p of points) {
    if (p.ndcg10 !== undefined && p.ndcg10 > best.ndcg10) {
      best = { epoch: p.epoch, ndcg10: p.ndcg10 };
    }
  }
  if (best.epoch === 0) throw new Error(`bench quality: ${VALID_CURVE} has no validation point`);
  return best.epoch;
}

/**
 * Whether the test first stage is given the validation stage's best epoch for its refit: not
 * when `QUALITY_SASREC` (flags of both stages) turns the refit off, or asks for SASRec's curve,
 * which draws the early stopping that the count would skip (eval refuses the two together, and
 * would do so only after the pretrain).
 */
export function passesBestEpoch(sasrecFlags: readonly string[]): boolean {
  const has = (flag: string) => sasrecFlags.some((w) => w === flag || w.startsWith(`${flag}=`));
  return !has("--sasrec-no-refit") && !has("--sasrec-curve");
}

/**
 * The validation users the fusion is tuned on: every one by default (on a sample of 1,000 users
 * the best weight was luck: +21% there, -3% on 5,814 others; docs/results.md), or a seeded
 * sample of QUALITY_TUNE_USERS.
 */
function tuneSample(held?: { size: number; seed: number }): string[] {
  if (held) return [`--sample-users=${held.size}`, `--sample-seed=${held.seed}`];
  const users = env("QUALITY_TUNE_USERS");
  return users === undefined || users === "all" ? [] : [`--sample-users=${users}`];
}

/** Candidates of each record the first stage ranks and the fusion may keep (eval --tune-rerank). */
const FIRST_STAGE_TOP = 100;

/**
 * The two stages (see the module docs): SASRec's validation ranking and the model's scores of
 * its candidates tune the fusion on the validation users of {@linkcode tuneSample}; SASRec
 * (the same model on a refit with tuning users, else refit for test) proposes the test candidates,
 * which the model reranks with the tuned fusion;
 * the model alone over every item is scored beside. Returns the figures.
 */
async function twoStages(run: {
  dir: string;
  data: string;
  model: string;
  sample?: string;
  seconds: Record<string, number>;
  /** SASRec's validation report and its saved ranking (validFirstStage). */
  first: { report: EvalJson; dir: string; held?: { size: number; seed: number } };
}) {
  const { dir, data, model, seconds } = run;
  const tune = tuneSample(run.first.held);
  const firstValid = run.first.dir, validReport = run.first.report;
  const common = [
    `--data=${data}`,
    "--tasks=sequential",
    "--quiet",
  ];
  const inferCommon = [
    "infer",
    `--model=${model}`,
    ...common,
    "--template=seq-1,seq-2,seq-3",
    "--exclude-seen",
    "--force",
    ...inferFlags(),
  ];
  const reranked = join(dir, "valid-reranked.jsonl");
  await stage("valid rerank", [
    ...inferCommon,
    "--split=valid",
    `--rerank=${join(firstValid, "sasrec.jsonl")}`,
    "--rerank-weight=1",
    `--top-k=${FIRST_STAGE_TOP}`,
    ...tune,
    `--out=${reranked}`,
  ], seconds);
  const tuningFile = join(dir, "rerank-tuning.json");
  const tuned: RerankTuning = JSON.parse(
    await stage("tune", [
      "eval",
      `--data=${data}`,
      "--split=valid",
      `--tune-rerank=${reranked}`,
    ], seconds),
  );
  await Deno.writeTextFile(tuningFile, JSON.stringify(tuned, null, 1));
  const { weight, top } = tuned.best;
  console.error(`bench quality: fusion tuned on validation: weight ${weight}, top ${top}`);

  // Test: the baselines with their rankings saved. SASRec: on a refit that held tuning users
  // out, the validation stage's model itself (it learned every other user's validation item, as
  // the model did, and early-stopped on the tuning users), read back; otherwise refit for the
  // epochs the validation stage chose.
  const sample = run.sample ? [`--sample-users=${run.sample}`] : [];
  const firstTest = join(dir, "first-test");
  const sasrec = run.first.held ? [`--sasrec-model=${join(firstValid, SASREC_MODEL_FILE)}`] : [
    ...words("QUALITY_SASREC"),
    ...(passesBestEpoch(words("QUALITY_SASREC"))
      ? [`--sasrec-refit-epochs=${await validBestEpoch(dir)}`]
      : []),
  ];
  const baselines: EvalJson = JSON.parse(
    await stage("test first stage", [
      "eval",
      ...common,
      "--split=test",
      "--baseline=pop,itemknn,sasrec",
      ...sasrec,
      "--k=5,10",
      `--top-k=${FIRST_STAGE_TOP}`,
      `--save-baselines=${firstTest}`,
      ...sample,
    ], seconds),
  );
  const predictions = join(dir, "test.jsonl"), alone = join(dir, "test-lm-alone.jsonl");
  await stage("test rerank", [
    ...inferCommon,
    "--split=test",
    `--rerank=${join(firstTest, "sasrec.jsonl")}`,
    `--rerank-tuned=${tuningFile}`,
    "--top-k=10",
    `--out=${predictions}`,
    ...sample,
  ], seconds);
  await stage("test model alone", [
    ...inferCommon,
    "--split=test",
    ...await beamFlags(data),
    "--top-k=10",
    `--out=${alone}`,
    ...sample,
  ], seconds);
  const report: EvalJson = JSON.parse(
    await stage("test eval", [
      "eval",
      ...common,
      "--split=test",
      "--k=5,10",
      `--predictions=${predictions}`,
      "--name=recsysllm",
      `--predictions=${alone}`,
      "--name=lm_alone",
      ...sample,
    ], seconds),
  );
  const valid = (metrics: Record<string, number>) =>
    Object.fromEntries(Object.entries(metrics).map(([k, v]) => [k, round(v)]));
  const sasrecValid = seenFigures(validReport, "sasrec");
  return {
    ...seenFigures(report, "recsysllm"),
    lm_alone: seenFigures(report, "lm_alone"),
    baselines: {
      pop: seenFigures(baselines, "pop"),
      itemknn: seenFigures(baselines, "itemknn"),
      sasrec: seenFigures(baselines, "sasrec"),
    },
    fusion: {
      weight,
      top,
      tuned_on: `${tuned.records} validation records`,
      valid: valid(tuned.best.metrics),
      valid_sasrec: { "HR@10": sasrecValid["HR@10"], "NDCG@10": sasrecValid["NDCG@10"] },
      valid_lm_on_candidates: valid(
        tuned.points.find((p) => p.top === top && p.weight === 1)!.metrics,
      ),
    },
  };
}
