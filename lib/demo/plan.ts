/**
 * The end-to-end demo as data: the command lines of each stage (textualize the built-in dataset,
 * init a tiny model, pretrain it from scratch, infer every task, eval against the baselines), so
 * the demo runs exactly the commands a user would type, and a test can check them without
 * running them.
 *
 * Not for running anything: `commands/demo.ts` spawns the stages.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { basename, join } from "node:path";
import { DEFAULT_DEVICE, type Device } from "../runtime/devices.ts";
import { BASELINES } from "../baselines/baseline.ts";
import { ITEM_TABLE_FILE, SASREC_MODEL_FILE } from "../baselines/run.ts";

/** The built-in dataset's directory (`fixtures/demo`). */
export const DEMO_DATA = fileURLToPath(new URL("../../fixtures/demo/", import.meta.url));

/** Defaults of {@linkcode DemoOptions}. */
export const DEFAULT_DEMO = Object.freeze({
  out: ".runs/demo",
  /** About five minutes of pretraining on 2 CPU cores at hidden 128. */
  steps: 2400,
  seed: 1,
  device: DEFAULT_DEVICE,
  /** The pretrain recipe, with {@linkcode DEMO_RECIPE_SETTINGS}; `none` for neither. */
  recipe: "sequential",
  /** Item tokens (`textualize --item-tokens`): none, title or only. */
  itemTokens: "title",
  /**
   * Item tasks: every item ranked by the model alone (`none`), or SASRec's candidates reranked by
   * it (`sasrec`: Beauty's recipe, 4.8% above SASRec there; on the demo's data the fusion's
   * tuning keeps SASRec's own order, so the demo shows the model alone: docs/results.md).
   */
  rerank: "none",
});

/**
 * What the demo adds to the `sequential` recipe for its data, measured at its length on its test
 * split (docs/results.md, "The demo's recipe"): whole purchase sequences in the profile documents,
 * read 20 times an epoch beside the sequential prompts, and the GLM at hidden 128, which trains
 * about 2.7 times the steps a minute of hidden 256 and ranks better in the same minutes.
 */
export const DEMO_RECIPE_SETTINGS = Object.freeze({
  profileSample: "30",
  taskWeights: "profile=20,sequential=1",
  hiddenSize: "128",
});

/** Candidates of each record SASRec proposes for the model to rerank. */
const DEMO_CANDIDATES = "50";

/** Options of {@linkcode demoStages}; defaults in {@linkcode DEFAULT_DEMO}. */
export interface DemoOptions {
  /** Directory for everything the demo writes. */
  out: string;
  /** Optimizer steps of pretraining. */
  steps?: number;
  /** Seed of every stage. */
  seed?: number;
  /** Device of pretrain and infer. */
  device?: Device;
  /** Answer only the first N test records of each task (default: all). */
  limit?: number;
  /**
   * A pretrain recipe (`lib/train/recipes.ts`), `sequential` by default and then with
   * {@linkcode DEMO_RECIPE_SETTINGS}; `none`: no recipe, every task at its share, hidden 256.
   */
  recipe?: string;
  /**
   * `textualize --item-tokens`: `title` gives each item entity a token of its own before its
   * title, `only` the token alone, `none` titles only (docs/method.md section 13).
   */
  itemTokens?: string;
  /**
   * A decoder family (`llama`, `qwen2`, `qwen3`, `glm`: docs/method.md section 11) instead of GLM:
   * a seeded random small checkpoint of it, adapted with LoRA (the method as it is meant for a
   * pretrained model) and inferred with the adapter.
   */
  family?: string;
  /**
   * `sasrec`: the item tasks in two stages (docs/method.md section 13): SASRec proposes
   * candidates, the model reranks them by the fusion tuned on the validation split; `none`
   * (default): the model ranks every item alone (beam search, or exact with item tokens).
   */
  rerank?: string;
  /** No progress from the stages (`--quiet` on each). */
  quiet?: boolean;
}

/** One stage: its name, its command line (after the program), and where its stdout goes. */
export interface DemoStage {
  name: string;
  args: string[];
  /** File (inside `out`) that receives the stage's stdout, or undefined for the terminal. */
  stdout?: string;
}

/** The paths the demo writes, inside `out`. */
export function demoPaths(out: string) {
  return {
    data: join(out, "data"),
    model: join(out, "model"),
    run: join(out, "run"),
    predictions: join(out, "recsysllm.jsonl"),
    evalJson: join(out, "eval.json"),
    chart: join(out, "eval.svg"),
    baselines: join(out, "baselines"),
    firstValid: join(out, "first-valid"),
    validReranked: join(out, "valid-reranked.jsonl"),
    tuning: join(out, "rerank-tuning.json"),
  };
}

/**
 * Every name a demo writes at the top of its output directory, whichever its variant (with or
 * without the two stages): what an earlier demo may have left there.
 */
export function demoFileNames(): Set<string> {
  const names = new Set(Object.values(demoPaths(".")).map((p) => basename(p)));
  for (const rerank of ["none", "sasrec"]) {
    for (const stage of demoStages({ out: ".", rerank })) if (stage.stdout) names.add(stage.stdout);
  }
  return names;
}

/**
 * What the demo's directories without an ownership marker may hold, by name: `eval
 * --save-baselines DIR` claims each file of DIR on its own (the baselines' predictions, SASRec's
 * item table and model).
 */
export function demoUnmarkedDirs(): Record<string, Set<string>> {
  const saved = new Set([
    ...BASELINES.map((b) => `${b}.jsonl`),
    ITEM_TABLE_FILE,
    SASREC_MODEL_FILE,
  ]);
  const paths = demoPaths(".");
  return { [basename(paths.baselines)]: saved, [basename(paths.firstValid)]: saved };
}

/** `name --flag value ...` from flags in order; `true` is a flag without a value. */
function commandLine(name: string, flags: Record<string, string | true>): string[] {
  const args = [name];
  for (const [flag, value] of Object.entries(flags)) {
    args.push(`--${flag}`);
    if (value !== true) args.push(value);
  }
  return args;
}

/**
 * The demo's stages in order.
 *
 * @example
 * ```ts
 * for (const stage of demoStages({ out: ".runs/demo" })) console.log(stage.args.join(" "));
 * ```
 */
export function demoStages(options: DemoOptions): DemoStage[] {
  const paths = demoPaths(options.out);
  const seed = String(options.seed ?? DEFAULT_DEMO.seed);
  const device = options.device ?? DEFAULT_DEMO.device;
  const limit = options.limit === undefined ? [] : ["--limit", String(options.limit)];
  const quiet: Record<string, true> = options.quiet ? { quiet: true } : {};
  const itemTokens = options.itemTokens ?? DEFAULT_DEMO.itemTokens;
  const recipe = options.recipe ?? DEFAULT_DEMO.recipe;
  const tuned = recipe === "sequential" ? DEMO_RECIPE_SETTINGS : undefined;
  const rerank = (options.rerank ?? DEFAULT_DEMO.rerank) === "sasrec";
  // The baselines are fitted once (SASRec trains for a while), by the first eval, which saves
  // their predictions (SASRec's 50 best of each record: the model's candidates when it reranks);
  // the reports score those files beside the model's.
  const baselines = ["pop", "itemknn", "sasrec", "mean"];
  const scored = (format: Record<string, string | true>) => [
    ...commandLine("eval", { data: paths.data, predictions: paths.predictions, name: "recsysllm" }),
    ...baselines.flatMap((b) => [
      "--predictions",
      join(paths.baselines, `${b}.jsonl`),
      "--name",
      b,
    ]),
    ...commandLine("", { ...format, quiet: true }).slice(1),
  ];
  const model: Record<string, string> = options.family
    ? { model: paths.model, adapter: paths.run }
    : { model: paths.run };
  const itemTasks = "sequential,direct";
  return [
    {
      name: "textualize",
      stdout: "textualize.json",
      args: commandLine("textualize", {
        format: "csv",
        input: join(DEMO_DATA, "interactions.csv"),
        users: join(DEMO_DATA, "users.csv"),
        items: join(DEMO_DATA, "items.csv"),
        out: paths.data,
        seed,
        ...(itemTokens === "none" ? {} : { "item-tokens": itemTokens }),
        ...(tuned ? { "profile-sample": tuned.profileSample } : {}),
        ...quiet,
      }),
    },
    {
      name: "init",
      stdout: "init.json",
      args: commandLine("init", {
        data: paths.data,
        ...(options.family
          ? { family: options.family, preset: "small" }
          : { preset: "tiny", ...(tuned ? { "hidden-size": tuned.hiddenSize } : {}) }),
        out: paths.model,
        seed,
        ...quiet,
      }),
    },
    {
      name: "pretrain",
      stdout: "pretrain.json",
      // GLM: a tiny model from scratch, every weight trains (--full), with a learning rate for
      // that. A decoder family: LoRA (q, k, v) with the intra table and the special rows.
      args: commandLine("pretrain", {
        data: paths.data,
        model: paths.model,
        out: paths.run,
        ...(options.family ? { "lora-rank": "16" } : { full: true as const }),
        ...(recipe === "none" ? {} : { recipe }),
        ...(tuned ? { "task-weights": tuned.taskWeights } : {}),
        steps: String(options.steps ?? DEFAULT_DEMO.steps),
        "batch-size": "16",
        lr: options.family ? "2e-3" : "1e-3",
        "save-every": "100",
        "val-batches": "4",
        seed,
        device,
        ...quiet,
      }),
    },
    // Two stages: the fusion of SASRec's scores and the model's, tuned on validation records.
    ...(rerank
      ? [
        {
          name: "first stage (validation)",
          stdout: "first-valid.json",
          args: commandLine("eval", {
            data: paths.data,
            split: "valid",
            tasks: itemTasks,
            baseline: "sasrec",
            "top-k": DEMO_CANDIDATES,
            "save-baselines": paths.firstValid,
            quiet: true,
          }),
        },
        {
          name: "rerank (validation)",
          stdout: "infer-valid.json",
          args: [
            ...commandLine("infer", {
              ...model,
              data: paths.data,
              split: "valid",
              tasks: itemTasks,
              rerank: join(paths.firstValid, "sasrec.jsonl"),
              "rerank-weight": "1",
              "top-k": DEMO_CANDIDATES,
              "exclude-seen": true,
              out: paths.validReranked,
              device,
              ...quiet,
            }),
            ...limit,
          ],
        },
        {
          name: "tune",
          stdout: "rerank-tuning.json",
          args: commandLine("eval", {
            data: paths.data,
            split: "valid",
            "tune-rerank": paths.validReranked,
          }),
        },
      ]
      : []),
    {
      name: "baselines",
      stdout: "baselines.json",
      args: commandLine("eval", {
        data: paths.data,
        baseline: baselines.join(","),
        "top-k": DEMO_CANDIDATES,
        "save-baselines": paths.baselines,
        quiet: true,
      }),
    },
    {
      name: "infer",
      stdout: "infer.json",
      args: [
        ...commandLine("infer", {
          ...model,
          data: paths.data,
          // The baselines leave each user's history out (eval's default): so does the model.
          "exclude-seen": true,
          out: paths.predictions,
          ...(rerank
            ? { rerank: join(paths.baselines, "sasrec.jsonl"), "rerank-tuned": paths.tuning }
            : {} as Record<string, string>),
          device,
          ...quiet,
        }),
        ...limit,
      ],
    },
    { name: "eval", stdout: "eval.json", args: scored({ format: "json" }) },
    { name: "report", args: scored({ format: "md", chart: paths.chart }) },
  ];
}

/** The part of `eval.json` (several methods) the verdict reads. */
export interface DemoReport {
  methods: Record<string, Record<string, Record<string, unknown>>>;
}

/**
 * Sequential records below which the demo gives figures but no verdict: HR@10 on a handful of
 * records (`demo --limit 20` scores 4) says nothing about which method is better.
 */
export const MIN_VERDICT_RECORDS = 100;

/**
 * One line comparing the model with the baselines on next-item prediction (HR@10 of the
 * sequential task), or undefined when the report has no such figures. Below
 * {@linkcode MIN_VERDICT_RECORDS} scored records it gives the figures and says they are too few.
 *
 * @example
 * ```ts
 * demoVerdict(JSON.parse(await Deno.readTextFile(".runs/demo/eval.json")));
 * // "sequential HR@10: recsysllm 0.5267, pop 0.0767, itemknn 0.5267, sasrec 0.7017
 * // (recsysllm beats pop; level with itemknn; below sasrec)"
 * ```
 */
export function demoVerdict(report: DemoReport, model = "recsysllm"): string | undefined {
  const hr = (method: string) => report.methods[method]?.sequential?.["HR@10"];
  const ours = hr(model);
  if (typeof ours !== "number") return undefined;
  const others = Object.keys(report.methods).filter((m) =>
    m !== model && typeof hr(m) === "number"
  );
  const figures = [model, ...others].map((m) => `${m} ${(hr(m) as number).toFixed(4)}`).join(", ");
  const count = report.methods[model]?.sequential?.count;
  if (typeof count === "number" && count < MIN_VERDICT_RECORDS) {
    return `sequential HR@10 on ${count} record(s): ${figures} (too few records for a verdict: ` +
      `at least ${MIN_VERDICT_RECORDS}; run without --limit)`;
  }
  const beaten = others.filter((m) => ours > (hr(m) as number));
  // Level: the same figure, as the two stages give when the tuning keeps the first stage's order.
  const level = others.filter((m) => ours === hr(m));
  const ahead = others.filter((m) => ours < (hr(m) as number));
  const parts = [
    beaten.length > 0 ? `beats ${beaten.join(", ")}` : "",
    level.length > 0 ? `level with ${level.join(", ")}` : "",
    ahead.length > 0 ? `below ${ahead.join(", ")}` : "",
  ].filter(Boolean);
  const versus = others.length === 0
    ? ""
    : beaten.length === 0 && level.length === 0
    ? ` (${model} beats none of them: train longer, e.g. --steps 2000)`
    : ` (${model} ${parts.join("; ")})`;
  return `sequential HR@10: ${figures}${versus}`;
}
