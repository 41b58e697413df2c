/**
 * `demo`: the whole pipeline on the built-in dataset, as separate runs of the real commands
 * (textualize, init, pretrain, infer, eval), each printed before it runs so it can be repeated by
 * hand. Ends with the Markdown table of the model against the baselines. The stages themselves
 * are `lib/demo/plan.ts`.
 *
 * @module
 */

import { basename, dirname, join, resolve } from "node:path";
import type { Command } from "../lib/cli/command.ts";
import { defineFlags, formatFlags, parseFlags } from "../lib/cli/flags.ts";
import { RECIPES } from "../lib/train/recipes.ts";
import { DEVICES } from "../lib/runtime/devices.ts";
import {
  DEFAULT_DEMO,
  demoFileNames,
  demoPaths,
  type DemoStage,
  demoStages,
  demoUnmarkedDirs,
  demoVerdict,
} from "../lib/demo/plan.ts";
import { InputError } from "../lib/errors.ts";
import { ITEM_TOKEN_MODES } from "../lib/data/record_options.ts";
import { INIT_FAMILIES } from "../lib/model/families/init.ts";
import { formatSeconds } from "../lib/io/progress.ts";
import { OutputLock } from "../lib/io/lock.ts";
import { onSignal } from "../lib/io/cleanup.ts";
import { prepareDemoOut } from "../lib/demo/out_dir.ts";
import { shellWord, stopChild } from "../lib/io/process.ts";
import { fileURLToPath } from "node:url";

const FLAGS = defineFlags({
  out: {
    type: "string",
    placeholder: "DIR",
    default: DEFAULT_DEMO.out,
    help: "where everything goes: made if missing; a directory an earlier demo made is emptied " +
      "on each run, anything else refused",
  },
  steps: { type: "int", min: 1, default: DEFAULT_DEMO.steps, help: "pretraining steps" },
  seed: { type: "int", min: 0, default: DEFAULT_DEMO.seed, help: "seed of every stage" },
  device: {
    type: "choice",
    choices: DEVICES,
    default: DEFAULT_DEMO.device,
    help: `${DEVICES.join(" | ")} for pretrain and infer`,
  },
  limit: {
    type: "int",
    min: 1,
    defaultText: "all; for a quick look",
    help: "answer only the first N test records",
  },
  recipe: {
    type: "choice",
    choices: [...Object.keys(RECIPES), "none"],
    default: DEFAULT_DEMO.recipe,
    help: "a pretrain recipe (pretrain --help); sequential adds the demo's settings for it " +
      "(whole sequences in the profile documents, read 20 times an epoch; hidden 128); none: " +
      "every task at its share, hidden 256",
  },
  "item-tokens": {
    type: "choice",
    choices: ITEM_TOKEN_MODES,
    default: DEFAULT_DEMO.itemTokens,
    help: "textualize --item-tokens: title (each item a token of its own, then its title), " +
      "only (the token alone) or none",
  },
  rerank: {
    type: "choice",
    choices: ["sasrec", "none"],
    default: DEFAULT_DEMO.rerank,
    help: "none: the model ranks every item alone; sasrec: SASRec proposes 50 candidates and " +
      "the model reranks them (the fusion tuned on the validation split)",
  },
  family: {
    type: "choice",
    choices: INIT_FAMILIES,
    placeholder: "NAME",
    help: `${INIT_FAMILIES.join(" | ")}: a seeded random small checkpoint of that decoder ` +
      "family (docs/method.md section 11; glm is GLM-4) adapted with LoRA, instead of GLM " +
      "trained from scratch (random weights know nothing: this shows the pipeline)",
  },
  quiet: { type: "boolean", help: "no progress on stderr (neither the demo's nor its stages')" },
});

const usage = `Usage: recsysllm demo [flags]

Runs the whole pipeline on the built-in dataset (fixtures/demo: 600 users, 294 items of which
293 sold, ratings, reviews): textualize, init a tiny model (hidden 128, 4 layers), pretrain it from scratch,
infer every task on the test split, and eval it against the baselines (most popular, item-kNN,
SASRec and a mean-rating baseline). Takes about 6 minutes on 2 CPU cores. Prints each command before it
runs it and ends with the results table (Markdown, on stdout); eval.json, eval.svg, the
baselines' predictions (baselines/, fitted once and scored again for the table) and the training
curve (run/loss.svg) are left in --out.

${formatFlags(FLAGS)}

Example:
  deno task demo                                (in a checkout; recsysllm demo in the release)
  recsysllm demo --steps 200 --limit 200`;

/** How to start this program again: `deno run -A main.ts` or the compiled binary itself. */
function selfCommand(): string[] {
  const exe = Deno.execPath();
  const name = basename(exe).toLowerCase();
  if (name === "deno" || name === "deno.exe") {
    return [exe, "run", "-A", fileURLToPath(new URL("../main.ts", import.meta.url))];
  }
  return [exe];
}

async function runStage(
  self: string[],
  stage: DemoStage,
  out: string,
  quiet: boolean,
): Promise<void> {
  if (!quiet) console.error(`\n$ recsysllm ${stage.args.map(shellWord).join(" ")}`);
  const child = new Deno.Command(self[0], {
    args: [...self.slice(1), ...stage.args],
    stdout: stage.stdout ? "piped" : "inherit",
    stderr: "inherit",
  }).spawn();
  // A demo interrupted (kill, Ctrl-C) ends its stage too: left running, it would go on writing
  // into --out after the demo has gone.
  const forget = onSignal(() => stopChild(child.pid));
  const output = await child.output().finally(forget);
  if (stage.stdout) await Deno.writeFile(join(out, stage.stdout), output.stdout);
  if (!output.success) {
    throw new InputError(
      `demo: stage ${stage.name} failed (exit ${output.code}); see the messages above`,
    );
  }
}

/** The `demo` subcommand. */
export const command: Command = {
  name: "demo",
  summary: "the whole pipeline on the built-in dataset, in a few minutes on 2 CPU cores",
  usage,
  async run(args: string[]): Promise<void> {
    const { values: flags } = parseFlags("demo", args, FLAGS);
    const out = flags.out;
    const stages = demoStages({
      out,
      steps: flags.steps,
      seed: flags.seed,
      device: flags.device,
      limit: flags.limit,
      family: flags.family,
      recipe: flags.recipe,
      itemTokens: flags["item-tokens"],
      rerank: flags.rerank,
      quiet: flags.quiet,
    });
    // Locked for the whole demo: a second demo on the same --out is refused.
    await Deno.mkdir(dirname(resolve(out)), { recursive: true });
    const lock = await OutputLock.acquire(out, "demo");
    try {
      await runDemo(out, stages, flags.quiet);
    } finally {
      lock.release();
    }
  },
};

async function runDemo(out: string, stages: DemoStage[], quiet: boolean): Promise<void> {
  const known = new Set([...demoFileNames(), ...stages.flatMap((s) => s.stdout ?? [])]);
  await prepareDemoOut(out, known, demoUnmarkedDirs());
  const self = selfCommand();
  const start = performance.now();
  for (const stage of stages) await runStage(self, stage, out, quiet);
  const paths = demoPaths(out);
  const verdict = demoVerdict(JSON.parse(await Deno.readTextFile(paths.evalJson)));
  if (verdict) console.log(`\n${verdict}`);
  const seconds = (performance.now() - start) / 1000;
  if (!quiet) {
    console.error(
      `\ndemo: done in ${formatSeconds(seconds)}; results in ` +
        `${paths.evalJson}, chart ${paths.chart}, training curve ${join(paths.run, "loss.svg")}`,
    );
  }
  // Last, on a line of its own: the summary every command that writes files prints.
  console.log(JSON.stringify({
    out,
    eval: paths.evalJson,
    chart: paths.chart,
    curve: join(paths.run, "loss.svg"),
    verdict: verdict ?? null,
    seconds: Math.round(seconds * 10) / 10,
  }));
}
