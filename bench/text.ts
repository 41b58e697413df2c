/**
 * The text benchmark: every task family on real reviews, end to end as a user runs it (`main.ts`
 * subcommands in child processes), on the 5-core Amazon Musical Instruments review file
 * (`../shared/data/amazon-musical-instruments`): textualize with every family the data supports
 * (profile, rating, sequential, explanation, review, direct), init, pretrain, infer, eval, with
 * the baselines beside each family:
 *
 * - rating (RMSE, MAE): the mean with damped biases (`mean`) and biased matrix factorisation
 *   trained on the toolkit's engine (`mf`);
 * - explanation and review (BLEU-4, ROUGE-1/2/L): the training text of the most similar
 *   user-item pair (`retrieval`);
 * - sequential (HR@k, NDCG@k over all items, 20 beams, history excluded) and direct (HR@k,
 *   NDCG@k among the record's 1 positive and 99 sampled negatives, the published protocol):
 *   most popular, item-kNN and SASRec.
 *
 * Every figure on the seen and on the held-out templates, and the seconds of every stage; also
 * BLEU-2 for review (`review_bleu2`), the measure the paper reports for that task.
 * A benchmark, never a test. Settings (environment):
 * - TEXT_STEPS: optimizer steps (default 3000);
 * - TEXT_RECIPE: a pretrain recipe (default none);
 * - TEXT_INIT: extra init flags (space-separated; default `--hidden-size=128`);
 * - TEXT_PRETRAIN: extra pretrain flags;
 * - TEXT_INFER: extra flags of the infer run over all items (sequential, rating, explanation,
 *   review; default `--trie-softmax`, which the sampled protocol of direct refuses);
 * - TEXT_SPLIT: the split answered and scored (default test; `valid` to tune; `valid,test` both,
 *   from the one model: the figures then come under `splits`);
 * - TEXT_SAMPLE_USERS: infer and eval on a seeded sample of about N users (default: all);
 * - TEXT_DIR: the work directory (default $TMPDIR/recsysllm-bench-text; replaced when a benchmark
 *   made it, else it must be new or empty);
 * - TEXT_INPUT: another review file in the same format (default the Musical Instruments file).
 *
 * @module
 */

import { join } from "node:path";
import { InputError } from "../lib/errors.ts";
import { benchWorkDir, intSetting } from "./settings.ts";
import { openDataset, readRecords } from "../lib/data/dataset.ts";
import { readJsonLines } from "../lib/io/lines.ts";
import { corpusBleu } from "../lib/metrics/bleu.ts";
import { words as wordsOf } from "../lib/metrics/words.ts";
import { fileURLToPath } from "node:url";

/** The 5-core Musical Instruments review file beside the checkout. */
export const MUSICAL_INSTRUMENTS = fileURLToPath(
  new URL(
    "../../shared/data/amazon-musical-instruments/reviews_Musical_Instruments_5.json.gz",
    import.meta.url,
  ),
);

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

const env = (name: string) => Deno.env.get(name);
const words = (name: string, fallback = "") => (env(name) ?? fallback).split(" ").filter(Boolean);
const inferFlags = () => words("TEXT_INFER", "--trie-softmax");
const round = (x: unknown) => typeof x === "number" ? Math.round(x * 1e4) / 1e4 : x;

async function stage(name: string, args: string[], seconds: Record<string, number>) {
  console.error(`bench text: ${name}`);
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  seconds[name] = Math.round((performance.now() - t0) / 100) / 10;
  if (!out.success) throw new InputError(`${name} failed (exit ${out.code})`);
  return new TextDecoder().decode(out.stdout);
}

/** The metrics each family reports, in the JSON line. */
const METRICS: Record<string, string[]> = {
  rating: ["RMSE", "MAE"],
  explanation: ["BLEU-4", "ROUGE-1", "ROUGE-2", "ROUGE-L"],
  review: ["BLEU-4", "ROUGE-1", "ROUGE-2", "ROUGE-L"],
  sequential: ["HR@1", "HR@5", "NDCG@5", "HR@10", "NDCG@10", "valid"],
  direct: ["HR@1", "HR@5", "NDCG@5", "HR@10", "NDCG@10"],
};

type Scores = Record<string, Record<string, unknown>>;

/**
 * `{family: {method: {seen: {...}, held_out: {...}, count}}}` from eval's report (one method is
 * reported flat, several under `methods`).
 */
function families(report: Record<string, unknown>, name: string): Record<string, Scores> {
  const methods = (report.methods ?? { [name]: report }) as Record<string, Scores>;
  const out: Record<string, Scores> = {};
  for (const [method, byTask] of Object.entries(methods)) {
    for (const [task, result] of Object.entries(byTask)) {
      const keys = METRICS[task];
      if (!keys || typeof result !== "object" || result === null) continue;
      const pick = (m?: Record<string, unknown>) =>
        m ? Object.fromEntries(keys.map((k) => [k, round(m[k])])) : undefined;
      const r = result as Record<string, Record<string, unknown> | undefined> & { count?: number };
      (out[task] ??= {})[method] = {
        seen: pick(r.seen),
        held_out: pick(r.heldOut),
        count: r.count,
      };
    }
  }
  return out;
}

/**
 * Corpus BLEU-2 (x100) of the review predictions in `files` (by method), on the seen and the
 * held-out templates: the paper reports review summarization in BLEU-2, eval in BLEU-4.
 */
async function reviewBleu2(
  data: string,
  split: string,
  files: Record<string, string>,
): Promise<Record<string, { seen: number; held_out: number }>> {
  const dataset = await openDataset(data);
  const heldOut = new Set(dataset.manifest.templates.filter((t) => t.heldOut).map((t) => t.id));
  const references = new Map<string, { words: string[]; heldOut: boolean }>();
  for await (const r of readRecords(dataset, split as "test" | "valid")) {
    if (r.task !== "review") continue;
    const text = (r.target ?? []).map((t) => "text" in t ? t.text : "").join("");
    references.set(r.id, { words: wordsOf(text), heldOut: heldOut.has(r.template) });
  }
  const out: Record<string, { seen: number; held_out: number }> = {};
  for (const [method, file] of Object.entries(files)) {
    const pairs = { seen: [[], []], held_out: [[], []] } as Record<string, string[][][]>;
    for await (const { value } of readJsonLines<{ id: string; text?: string }>(file, file)) {
      const ref = references.get(value.id);
      if (!ref) continue;
      const part = pairs[ref.heldOut ? "held_out" : "seen"];
      part[0].push(wordsOf(value.text ?? ""));
      part[1].push(ref.words);
    }
    const bleu2 = (p: string[][][]) => round(100 * corpusBleu(p[0], p[1], 2).bleu) as number;
    out[method] = { seen: bleu2(pairs.seen), held_out: bleu2(pairs.held_out) };
  }
  return out;
}

/**
 * Answers one split with the model (sequential over all items; rating, explanation and review;
 * direct among each record's 100 candidates) and scores it beside the baselines.
 */
async function answerAndScore(
  out: string,
  options: {
    model: string;
    data: string;
    split: string;
    label: string;
    sampleFlags: string[];
    seconds: Record<string, number>;
  },
) {
  const { model, data, split, label, sampleFlags, seconds } = options;
  await Deno.mkdir(out, { recursive: true });
  const common = [
    `--model=${model}`,
    `--data=${data}`,
    `--split=${split}`,
    "--quiet",
    "--force",
    ...sampleFlags,
  ];
  // Sequential over all items; rating, explanation and review alike (they ignore the item flags).
  const full = join(out, "recsysllm-full.jsonl");
  await stage(`${label}infer`, [
    "infer",
    ...common,
    "--tasks=sequential,rating,explanation,review",
    "--beams=20",
    "--top-k=10",
    "--exclude-seen",
    ...inferFlags(),
    `--out=${full}`,
  ], seconds);
  // Direct: the record's 100 candidates (1 positive, 99 sampled negatives).
  const sampled = join(out, "recsysllm-direct.jsonl");
  await stage(`${label}infer direct`, [
    "infer",
    ...common,
    "--tasks=direct",
    "--protocol=sampled",
    `--out=${sampled}`,
  ], seconds);
  const evalFlags = [`--data=${data}`, `--split=${split}`, "--k=1,5,10", "--quiet", ...sampleFlags];
  const fullReport = JSON.parse(
    await stage(`${label}eval`, [
      "eval",
      ...evalFlags,
      `--predictions=${full}`,
      "--name=recsysllm",
      "--baseline=mean,mf,retrieval,pop,itemknn,sasrec",
      `--save-baselines=${join(out, "baselines")}`,
      "--tasks=sequential,rating,explanation,review",
    ], seconds),
  );
  const directReport = JSON.parse(
    await stage(`${label}eval direct`, [
      "eval",
      ...evalFlags,
      `--predictions=${sampled}`,
      "--name=recsysllm",
      "--baseline=pop,itemknn,sasrec",
      "--tasks=direct",
      "--protocol=sampled",
    ], seconds),
  );
  return {
    families: { ...families(fullReport, "recsysllm"), ...families(directReport, "recsysllm") },
    review_bleu2: await reviewBleu2(data, split, {
      recsysllm: full,
      retrieval: join(out, "baselines", "retrieval.jsonl"),
    }),
  };
}

/** Runs the session end to end; returns its figures. */
export async function run(): Promise<Record<string, unknown>> {
  const input = env("TEXT_INPUT") ?? MUSICAL_INSTRUMENTS;
  try {
    await Deno.stat(input);
  } catch {
    throw new InputError(`${input}: the review file is not there`);
  }
  const steps = intSetting("TEXT_STEPS", 3000, { min: 1 });
  intSetting("TEXT_SAMPLE_USERS", 1, { min: 1 });
  const dir = env("TEXT_DIR") ?? join(env("TMPDIR") ?? "/tmp", "recsysllm-bench-text");
  await benchWorkDir(dir, "TEXT_DIR", { isDefault: env("TEXT_DIR") === undefined });
  const recipe = env("TEXT_RECIPE") ?? "none";
  const splits = (env("TEXT_SPLIT") ?? "test").split(",").filter(Boolean);
  const sample = env("TEXT_SAMPLE_USERS");
  const sampleFlags = sample ? [`--sample-users=${sample}`] : [];
  const data = join(dir, "data"), model = join(dir, "model"), runDir = join(dir, "run");
  const seconds: Record<string, number> = {};

  const summary = JSON.parse(
    await stage("textualize", [
      "textualize",
      "--format=amazon-reviews",
      `--input=${input}`,
      `--out=${data}`,
      "--seed=1",
      "--quiet",
    ], seconds),
  );
  await stage("init", [
    "init",
    `--data=${data}`,
    "--preset=tiny",
    `--out=${model}`,
    "--seed=1",
    ...words("TEXT_INIT", "--hidden-size=128"),
  ], seconds);
  const pretrainFlags = [
    `--data=${data}`,
    `--model=${model}`,
    `--out=${runDir}`,
    "--full",
    `--steps=${steps}`,
    "--batch-size=16",
    "--lr=1e-3",
    `--save-every=${steps}`,
    "--val-batches=8",
    "--seed=1",
    "--quiet",
    ...(recipe === "none" ? [] : [`--recipe=${recipe}`]),
    ...words("TEXT_PRETRAIN"),
  ];
  const trained = JSON.parse(await stage("pretrain", ["pretrain", ...pretrainFlags], seconds));
  const scored: Record<string, unknown> = {};
  for (const split of splits) {
    const label = splits.length > 1 ? `${split} ` : "";
    scored[split] = await answerAndScore(join(dir, split), {
      model: runDir,
      data,
      split,
      label,
      sampleFlags,
      seconds,
    });
  }
  return {
    dataset: "amazon-musical-instruments (5-core reviews)",
    users: summary.users,
    items: summary.items,
    interactions: summary.interactions,
    split: splits.join(","),
    sample_users: sample ? Number(sample) : "all",
    steps,
    recipe,
    init_flags: words("TEXT_INIT", "--hidden-size=128").join(" "),
    val_loss: round(trained.val_loss),
    ...(splits.length === 1 ? scored[splits[0]] as Record<string, unknown> : { splits: scored }),
    seconds,
    pretrain_flags: pretrainFlags.join(" "),
    infer_flags: inferFlags().join(" "),
  };
}
