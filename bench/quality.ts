/**
 * The quality benchmark: the chosen recipe on Amazon Beauty end to end, as a user runs it
 * (`main.ts` subcommands in child processes): textualize, init, pretrain, infer on the test
 * split (ranking over all items with the trie, the seen templates, history items excluded as the
 * baselines exclude them), eval with most-popular and item-kNN beside it. Prints HR@5, NDCG@5,
 * HR@10, NDCG@10, valid, the baselines' figures and the seconds of every stage.
 *
 * A benchmark, never a test: at the recipe's full length it trains for over an hour on 2 cores.
 * Settings (environment):
 * - QUALITY_STEPS: optimizer steps (default 8000);
 * - QUALITY_RECIPE: the pretrain recipe (default `sequential`; `none` for plain defaults);
 * - QUALITY_SAMPLE_USERS: infer and eval on a seeded sample of about N test users (default:
 *   every user) for a quick look;
 * - QUALITY_PRETRAIN: extra pretrain flags (space-separated);
 * - QUALITY_DIR: the work directory (default $TMPDIR/recsysllm-bench-quality; replaced).
 *
 * Needs `../shared/data/amazon-beauty` beside the checkout.
 *
 * @module
 */

import { join } from "node:path";
import { InputError } from "../lib/errors.ts";

const BEAUTY = new URL("../../shared/data/amazon-beauty/", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

const env = (name: string) => Deno.env.get(name);

async function stage(name: string, args: string[], seconds: Record<string, number>) {
  console.error(`bench quality: ${name}`);
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  seconds[name] = Math.round((performance.now() - t0) / 100) / 10;
  if (!out.success) throw new Error(`${name} failed (exit ${out.code})`);
  return new TextDecoder().decode(out.stdout);
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;

/** Runs the recipe end to end; returns its figures. */
export async function run(): Promise<Record<string, unknown>> {
  try {
    await Deno.stat(join(BEAUTY, "sequential_data.txt"));
  } catch {
    throw new InputError(`${BEAUTY}: the Amazon Beauty data is not there`);
  }
  const dir = env("QUALITY_DIR") ?? join(env("TMPDIR") ?? "/tmp", "recsysllm-bench-quality");
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  const steps = Number(env("QUALITY_STEPS") ?? 8000);
  const recipe = env("QUALITY_RECIPE") ?? "sequential";
  const sample = env("QUALITY_SAMPLE_USERS");
  const sampleFlags = sample ? ["--sample-users", sample] : [];
  const extra = (env("QUALITY_PRETRAIN") ?? "").split(" ").filter(Boolean);
  const data = join(dir, "data"), model = join(dir, "model"), runDir = join(dir, "run");
  const predictions = join(dir, "test.jsonl");
  const seconds: Record<string, number> = {};

  await stage("textualize", [
    "textualize",
    "--format=p5",
    `--input=${join(BEAUTY, "sequential_data.txt")}`,
    `--items=${join(BEAUTY, "items.csv")}`,
    "--tasks=profile,sequential",
    "--max-history=10",
    `--out=${data}`,
    "--seed=1",
  ], seconds);
  await stage(
    "init",
    ["init", `--data=${data}`, "--preset=tiny", `--out=${model}`, "--seed=1"],
    seconds,
  );
  const pretrain = [
    "pretrain",
    `--data=${data}`,
    `--model=${model}`,
    `--out=${runDir}`,
    "--full",
    `--steps=${steps}`,
    "--batch-size=16",
    "--lr=1e-3",
    `--save-every=${Math.max(500, Math.ceil(steps / 8))}`,
    "--val-batches=8",
    "--seed=1",
    "--quiet",
    ...(recipe === "none" ? [] : [`--recipe=${recipe}`]),
    ...extra,
  ];
  await stage("pretrain", pretrain, seconds);
  await stage("infer", [
    "infer",
    `--model=${runDir}`,
    `--data=${data}`,
    "--task=sequential",
    "--template=seq-1,seq-2,seq-3",
    "--beams=20",
    "--top-k=10",
    "--exclude-seen",
    `--out=${predictions}`,
    "--quiet",
    ...sampleFlags,
  ], seconds);
  const report = JSON.parse(
    await stage("eval", [
      "eval",
      `--data=${data}`,
      `--predictions=${predictions}`,
      "--name=recsysllm",
      "--baseline=pop,itemknn",
      "--tasks=sequential",
      "--k=5,10",
      "--quiet",
      ...sampleFlags,
    ], seconds),
  );
  // The seen templates only (infer answers those; the held-out one is a separate question).
  const figures = (name: string) => {
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
  };
  return {
    recipe,
    steps,
    sample_users: sample ? Number(sample) : "all",
    ...figures("recsysllm"),
    baselines: { pop: figures("pop"), itemknn: figures("itemknn") },
    seconds,
    train_plus_infer_minutes: Math.round((seconds.pretrain + seconds.infer) / 6) / 10,
    pretrain_flags: pretrain.slice(1).join(" "),
  };
}
