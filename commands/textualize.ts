/**
 * `textualize`: raw interaction data (P5 sequences, Amazon review JSON, CSV/TSV tables, RecBole
 * atomic files) -> a dataset directory of text records, entity pool and manifest. Flag parsing
 * and printing only; the work is `lib/data/textualize.ts`.
 *
 * @module
 */

import type { Command } from "../lib/cli/command.ts";
import {
  defineFlags,
  type FlagValues,
  formatFlags,
  intFlag,
  parseFlags,
  withFlagNames,
} from "../lib/cli/flags.ts";
import { UsageError } from "../lib/errors.ts";
import { Progress } from "../lib/io/progress.ts";
import { parseShard } from "../lib/shard/shard.ts";
import { FORMATS } from "../lib/data/readers/read.ts";
import { ITEM_TOKEN_MODES, type ItemTokenMode } from "../lib/data/record_options.ts";
import {
  DEFAULT_RECORD_OPTIONS as D,
  TRAIN_THROUGH,
  type TrainThrough,
} from "../lib/data/records.ts";
import { recordCount, textualize } from "../lib/data/textualize.ts";
import { TASKS } from "../lib/data/types.ts";
import { DEFAULT_SAMPLE_SEED } from "../lib/data/user_sample.ts";
import { parseRatingScale, TIME_UNITS, type TimeUnit } from "../lib/data/log.ts";

/** A column-name flag: the name used when absent, and what the column holds. */
const column = (defaultText: string, help: string) =>
  ({ type: "string", placeholder: "NAME", defaultText, help }) as const;

const FLAGS = defineFlags({
  format: {
    type: "choice",
    choices: FORMATS,
    required: true,
    section: "Input",
    help: FORMATS.join(" | "),
  },
  input: {
    type: "string",
    placeholder: "PATH",
    required: true,
    help: "p5: sequential_data.txt; amazon-reviews: .json or .json.gz;\n" +
      "csv: interactions table; recbole: NAME.inter or its directory",
  },
  items: {
    type: "string",
    placeholder: "PATH",
    help: "items table (p5: item_id,asin,title; csv: id, title, attributes; amazon-reviews: " +
      "Amazon metadata lines (JSON, or 2014 Python dicts) with asin, title, brand, or a CSV)",
  },
  users: {
    type: "string",
    placeholder: "PATH",
    help: "users table (csv; recbole finds NAME.user itself)",
  },
  delimiter: {
    type: "string",
    placeholder: "C",
    defaultText: "tab for .tsv and .tab, else comma",
    help: 'field separator of csv tables and of the p5 and amazon-reviews items table ("tab" ok)',
  },
  "user-col": {
    ...column("user_id", "interactions: user id"),
    section:
      "Columns (csv and recbole; optional ones are used when a column of the default name exists)",
  },
  "item-col": column("item_id", "interactions: item id"),
  "time-col": column("timestamp|time", "interactions: Unix time or ISO date"),
  "timestamp-unit": {
    type: "choice",
    choices: TIME_UNITS,
    default: "auto",
    help: "unit of Unix times: s, ms, or auto (milliseconds when any exceeds 1e11, with a notice)",
  },
  "rating-col": column("rating", "interactions: rating"),
  "rating-scale": {
    type: "string",
    placeholder: "MIN-MAX",
    defaultText: "amazon-reviews: 1-5; else inferred from the training ratings",
    help: "the rating scale: a rating outside it is an error naming its line",
  },
  "review-col": column("review|review_text", "interactions: review text"),
  "summary-col": column("summary", "interactions: review summary"),
  "user-id-col": column("as --user-col", "users table: id column"),
  "user-features": {
    type: "list",
    defaultText: "all others",
    help: "users table: feature columns",
  },
  "item-id-col": column("as --item-col", "items table: id column"),
  "title-col": column("title", "items table: title column"),
  "item-attrs": { type: "list", defaultText: "all others", help: "items table: attribute columns" },
  "label-col": column("asin", "p5 items table: identifier appended to repeated titles"),
  seed: {
    type: "int",
    min: 0,
    max: 2 ** 53,
    default: D.seed,
    section: "Records",
    help: "random seed",
  },
  tasks: {
    type: "list",
    choices: TASKS,
    items: "tasks",
    defaultText: "all",
    help: `of ${TASKS.join(",")}`,
  },
  "max-history": intFlag(1, D.maxHistory, "items shown in sequential prompts"),
  "seq-per-user": intFlag(
    0,
    D.seqPerUser,
    "training sequential records per user, 0 = every position",
  ),
  "direct-per-user": intFlag(0, D.directPerUser, "training direct records per user, 0 = all"),
  "direct-history": intFlag(0, D.directHistory, "items shown in direct prompts"),
  "rating-per-user": intFlag(0, D.ratingPerUser, "training rating records per user, 0 = all"),
  "explanation-per-user": intFlag(
    0,
    D.explanationPerUser,
    "training explanation records per user, 0 = all",
  ),
  "review-per-user": intFlag(0, D.reviewPerUser, "training review records per user, 0 = all"),
  "negatives": intFlag(0, D.negatives, "negatives in valid/test candidate lists"),
  "profiles-per-user": intFlag(0, D.profilesPerUser, "profile documents per user"),
  "profile-sample": intFlag(1, D.profileSample, "items sampled from each preference period"),
  "short-days": intFlag(0, D.windows.shortDays, "short-term period with timestamps"),
  "medium-days": intFlag(0, D.windows.mediumDays, "medium-term period with timestamps"),
  "short-items": intFlag(0, D.windows.shortItems, "short-term period without timestamps"),
  "medium-items": intFlag(0, D.windows.mediumItems, "medium-term period without timestamps"),
  "favourites": intFlag(0, D.favourites, "favourite values per item attribute in profiles"),
  "max-entity-words": intFlag(1, D.maxEntityWords, "entity strings are cut to N words"),
  "max-entity-chars": {
    type: "int",
    min: 0,
    default: D.maxEntityChars,
    help: "... then to N characters (0: no limit), with a warning: a title longer than the " +
      "model's maximum length stops training",
  },
  "explanation-min-words": intFlag(1, D.explanationMinWords, "explanation: a sentence, N+ words"),
  "explanation-max-words": intFlag(1, D.explanationMaxWords, "... cut to N words"),
  "review-words": intFlag(1, D.reviewWords, "words of review text quoted in review prompts"),
  "train-through": {
    type: "choice",
    choices: TRAIN_THROUGH,
    default: D.trainThrough,
    help: "training records cover interactions through: train, or valid (the refit for test)",
  },
  "tune-users": {
    type: "int",
    min: 1,
    placeholder: "N",
    help: "with --train-through valid: about N sampled users keep their validation item out of " +
      "training, to tune on (infer/eval --sample-users N, the default --sample-seed)",
  },
  "item-tokens": {
    type: "choice",
    choices: ITEM_TOKEN_MODES,
    default: "none",
    help: "title: each item entity starts with a token of its own, then its title (infer then " +
      "ranks every item exactly in one step); only: the token alone; none",
  },
  out: {
    type: "string",
    placeholder: "DIR",
    required: true,
    section: "Output",
    help: "dataset directory (replaced atomically; only a dataset textualize wrote is replaced, " +
      "anything else is refused)",
  },
  shard: {
    type: "string",
    placeholder: "i/n",
    help: "only the users in shard i (0-based) of n, into DIR-0000i-of-0000n with a " +
      "shard.json sidecar; `recsysllm merge` joins the parts into DIR. auto: the index " +
      "of an array job (see infer --help)",
  },
  force: { type: "boolean", help: "replace --out even when textualize did not write it" },
  quiet: { type: "boolean", help: "no progress on stderr" },
});

const usage = `Usage: recsysllm textualize --format ${
  FORMATS.join("|")
} --input PATH --out DIR [flags]

Turns interaction data into a dataset directory: train.jsonl, valid.jsonl, test.jsonl (records
of text and entities, leave-one-out per user), candidates.jsonl (each user's 1 + N candidate items
for the sampled protocol, per split), entities.json and manifest.json.

${formatFlags(FLAGS)}

Prints a JSON summary (counts per split and task) on stdout.

Example:
  textualize --format csv --input fixtures/demo/interactions.csv --users fixtures/demo/users.csv \\
    --items fixtures/demo/items.csv --out runs/demo-data --seed 1`;

type Values = FlagValues<typeof FLAGS>;

function delimiter(flags: Values): string | undefined {
  const value = flags.delimiter;
  if (value === undefined) return undefined;
  if (value === "tab" || value === "\\t") return "\t";
  if (value === "") throw new UsageError("--delimiter must not be empty");
  return value;
}

function ratingScale(flags: Values) {
  const text = flags["rating-scale"];
  if (text === undefined) return undefined;
  const scale = parseRatingScale(text);
  if (scale.error) throw new UsageError(`--rating-scale ${scale.error}`);
  return { min: scale.min, max: scale.max, source: "--rating-scale", declared: true };
}

/** The `textualize` subcommand. */
export const command: Command = {
  name: "textualize",
  summary: "raw interactions (P5, Amazon reviews, CSV, RecBole) -> text records + entities",
  usage,
  async run(args: string[]): Promise<void> {
    const { values: flags } = parseFlags("textualize", args, FLAGS);
    const out = flags.out, tuneUsers = flags["tune-users"];
    const progress = new Progress("textualize", { quiet: flags.quiet });
    const summary = await withFlagNames(FLAGS, () =>
      textualize({
        read: {
          format: flags.format,
          input: flags.input,
          items: flags.items,
          users: flags.users,
          delimiter: delimiter(flags),
          userCol: flags["user-col"],
          itemCol: flags["item-col"],
          timeCol: flags["time-col"],
          ratingCol: flags["rating-col"],
          reviewCol: flags["review-col"],
          summaryCol: flags["summary-col"],
          userIdCol: flags["user-id-col"],
          userFeatures: flags["user-features"],
          itemIdCol: flags["item-id-col"],
          titleCol: flags["title-col"],
          itemAttrs: flags["item-attrs"],
          labelCol: flags["label-col"],
          checks: {
            timeUnit: flags["timestamp-unit"] as TimeUnit,
            ratingScale: ratingScale(flags),
          },
        },
        records: {
          seed: flags.seed,
          tasks: TASKS.filter((t) => (flags.tasks ?? TASKS).includes(t)),
          maxHistory: flags["max-history"],
          seqPerUser: flags["seq-per-user"],
          directPerUser: flags["direct-per-user"],
          directHistory: flags["direct-history"],
          ratingPerUser: flags["rating-per-user"],
          explanationPerUser: flags["explanation-per-user"],
          reviewPerUser: flags["review-per-user"],
          negatives: flags.negatives,
          profilesPerUser: flags["profiles-per-user"],
          profileSample: flags["profile-sample"],
          windows: {
            shortDays: flags["short-days"],
            mediumDays: flags["medium-days"],
            shortItems: flags["short-items"],
            mediumItems: flags["medium-items"],
          },
          favourites: flags.favourites,
          maxEntityWords: flags["max-entity-words"],
          maxEntityChars: flags["max-entity-chars"],
          explanationMinWords: flags["explanation-min-words"],
          explanationMaxWords: flags["explanation-max-words"],
          reviewWords: flags["review-words"],
          trainThrough: flags["train-through"] as TrainThrough,
          tuneUsers: tuneUsers ? { size: tuneUsers, seed: DEFAULT_SAMPLE_SEED } : undefined,
          itemTokens: flags["item-tokens"] as ItemTokenMode,
        },
        out,
        shard: flags.shard === undefined ? undefined : parseShard(flags.shard),
        force: flags.force,
        tasksNamed: flags.tasks !== undefined,
        progress,
        onWarning: (message) => Progress.say(`warning: ${message}`),
      }));
    progress.done(
      `${
        recordCount(summary)
      } records for ${summary.users} users and ${summary.items} items written to ${summary.out}`,
    );
    console.log(JSON.stringify(summary));
  },
};
