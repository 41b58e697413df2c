/**
 * The `recsysllm` command line: dispatches to the subcommands in `commands/`, and turns errors
 * into one-line messages with the right exit status (2: usage, 1: bad input, 70: internal bug).
 * A file-system fault (disk full, read-only, permission denied, ...) is bad input, not a bug:
 * any `Deno.errors.*` or errno error that reaches here unwrapped is translated by
 * lib/io/io_error.ts (exit 1), so none escapes as an internal error.
 *
 *     deno run -A main.ts textualize --format p5 --input seq.txt --items items.csv --out data/
 *
 * @module
 */

import denoConfig from "./deno.json" with { type: "json" };
import type { Command } from "./lib/cli/command.ts";
import { flagOf, withFlagsIn } from "./lib/cli/flags.ts";
import {
  afterReport,
  InputError,
  nameOptionsBy,
  oneLine,
  ReportedElsewhere,
  UsageError,
} from "./lib/errors.ts";
import { toIoError } from "./lib/io/io_error.ts";
import { Progress } from "./lib/io/progress.ts";
import { stdoutFault } from "./lib/io/stdout.ts";
import { worldFromEnv } from "./lib/parallel/world.ts";
import { fileURLToPath } from "node:url";

/** Subcommands in pipeline order, loaded only when run (so `eval` never loads onnxruntime). */
const COMMANDS: Record<string, { summary: string; load: () => Promise<{ command: Command }> }> = {
  textualize: {
    summary: "raw interactions (P5, Amazon reviews, CSV, RecBole) -> text records + entities",
    load: () => import("./commands/textualize.ts"),
  },
  collate: {
    summary: "text records -> token ids, 2D positions, sep, labels, loss mask (JSONL, to inspect)",
    load: () => import("./commands/collate.ts"),
  },
  init: {
    summary: "new model directory from a preset: tokenizer trained on the data, random weights",
    load: () => import("./commands/init.ts"),
  },
  forward: {
    summary: "run one batch (JSON) through the model: logits and loss as safetensors",
    load: () => import("./commands/forward.ts"),
  },
  pretrain: {
    summary: "LoRA or full training (own autodiff in onnxruntime): adapter, checkpoint, metrics",
    load: () => import("./commands/pretrain.ts"),
  },
  infer: {
    summary: "predictions for a split: beam search over items, candidate ranking, ratings, text",
    load: () => import("./commands/infer.ts"),
  },
  eval: {
    summary: "score predictions and baselines: HR/NDCG, RMSE/MAE, BLEU/ROUGE (JSON, Markdown, SVG)",
    load: () => import("./commands/eval.ts"),
  },
  merge: {
    summary: "join the parts of a sharded run (infer, baselines, textualize) byte for byte",
    load: () => import("./commands/merge.ts"),
  },
  demo: {
    summary: "the whole pipeline on the built-in dataset, in a few minutes on 2 CPU cores",
    load: () => import("./commands/demo.ts"),
  },
};

function topLevelHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) =>
    `  ${name.padEnd(width)}  ${c.summary}`
  );
  return [
    `recsysllm ${denoConfig.version}: an LLM as a pre-trained recommender (RecSysLLM), on onnxruntime`,
    "",
    "Usage: recsysllm <command> [flags]     recsysllm <command> --help",
    "",
    "Commands:",
    ...lines,
    "",
    "Flags: --help, --version",
    "",
    "For --device cuda: deno task setup-cuda in a checkout, recsysllm setup-cuda in the release.",
  ].join("\n");
}

/** Runs the command line `args`; returns the process exit status. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  // Libraries mention their options by name; on the command line each is its flag.
  nameOptionsBy((option) => `--${flagOf(option)}`);
  // The commands print their results and summaries with console.log: a stdout that cannot take
  // them (`> /dev/full`) is a fault naming stdout, not a bare "no space left on device".
  const log = console.log;
  console.log = (...values: unknown[]) => {
    try {
      log(...values);
    } catch (error) {
      throw stdoutFault(error);
    }
  };
  try {
    if (name === undefined || name === "--help" || name === "-h" || name === "help") {
      console.log(topLevelHelp());
      return name === undefined ? 2 : 0;
    }
    if (name === "--version" || name === "-V") {
      console.log(`recsysllm ${denoConfig.version}`);
      return 0;
    }
    const entry = COMMANDS[name];
    if (!entry) {
      throw new UsageError(
        `unknown command "${name}" (commands: ${Object.keys(COMMANDS).join(", ")})`,
      );
    }
    const { command } = await entry.load().catch(notInstalled);
    if (rest.includes("--help") || rest.includes("-h")) {
      console.log(command.usage);
      return helpStatus(command);
    }
    await command.run(rest);
    return 0;
  } catch (caught) {
    return await reportFailure(caught);
  } finally {
    console.log = log;
    Progress.stopAll();
  }
}

/**
 * The exit status of `--help`: 0, except for a command that runs as MPI ranks (pretrain) started
 * by a launcher of several. That process leaves before `MPI_Init`, where the ranks of an MPMD
 * launch that run the command itself (`mpirun -np 1 A --help : -np 1 A ...`) wait for it forever;
 * a non-zero status makes the launcher end them (Open MPI's mpirun, Hydra, srun with
 * --kill-on-bad-exit). Said on stderr, since every rank of a plain launch asks the same.
 */
function helpStatus(command: Command): number {
  const world = command.ranks ? worldFromEnv((name) => Deno.env.get(name)) : undefined;
  if (!world) return 0;
  const of = world.size === undefined ? "" : ` of ${world.size}`;
  Progress.say(
    `${command.name}: note: --help under an MPI launcher (rank ${world.rank}${of}): exit status 2, so ` +
      `that the launcher ends any rank waiting for this one in MPI_Init (nothing was run)`,
  );
  return 2;
}

/**
 * A command's modules failing to load because the npm packages are not in node_modules (a fresh
 * clone run with `deno run` before `deno install`) is a one-line error saying so, not a bug.
 */
function notInstalled(error: unknown): never {
  const message = String((error as Error)?.message ?? error);
  if (
    /Could not find a matching package for 'npm:[^']+' in the node_modules directory/.test(message)
  ) {
    const root = fileURLToPath(new URL(".", import.meta.url)).replace(/\/$/, "");
    const pkg = message.match(/'npm:([^']+)'/)?.[1];
    throw new InputError(
      `the toolkit's npm packages are not installed (${pkg} is missing from node_modules): ` +
        `run deno install in ${root} (the deno task commands run it themselves)`,
    );
  }
  throw error;
}

/**
 * Prints the error that ended a run (see {@linkcode errorReport}) and returns the exit status; a
 * rank of a data-parallel run then leaves as its error says (lib/parallel: once rank 0 has
 * printed a failure the ranks agreed on; ending the job for a failure of its own).
 */
export async function reportFailure(caught: unknown): Promise<number> {
  const { status, message } = errorReport(caught);
  Progress.stopAll();
  if (message) Progress.say(message);
  await afterReport(caught, status);
  return status;
}

/**
 * What the command line prints for an error that ended a run, and its exit status: 2 for a
 * UsageError, 1 for an InputError and for any file-system fault (a `Deno.errors.*` or errno
 * error, translated by lib/io/io_error.ts, whatever code let it through), 70 for anything else
 * (a bug), with its stack. A failure another rank reports (`ReportedElsewhere`) prints nothing.
 */
export function errorReport(caught: unknown): { status: number; message: string } {
  if (caught instanceof ReportedElsewhere) {
    return { status: errorReport(caught.error).status, message: "" };
  }
  // An option no command re-worded is named by the flag convention (`maxLength` -> --max-length).
  const error = toIoError(withFlagsIn(caught));
  if (error instanceof UsageError) {
    return { status: 2, message: `error: ${oneLine(error.message)}` };
  }
  if (error instanceof InputError) {
    return { status: 1, message: `error: ${oneLine(error.message)}` };
  }
  return {
    status: 70,
    message: `internal error (a bug in recsysllm, please report it): ${
      (error as Error)?.stack ?? error
    }`,
  };
}

if (import.meta.main) Deno.exit(await main(Deno.args));
