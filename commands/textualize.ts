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
  parseFlags,
  withFlagNames,
} from "../lib/cli/flags.ts";
import { UsageError } from "../lib/errors.ts";
import { Progress } from "../lib/io/progress.ts";
import { parseShard } from "../lib/shard/shard.ts";
import { FORMATS } from "../lib/data/readers/read.ts";
import {
  DEFAULT_RECORD_OPTIONS as D,
  TRAIN_THROUGH,
  type TrainThrough,
} from "../lib/data/records.ts";
import { textualize } from "../lib/data/textualize.ts";
import { TASKS } from "../lib/data/types.ts";
import { parseRatingScale, TIME_UNITS, type TimeUnit } from "../lib/data/log.ts";

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
      "Amazon metadata JSON lines with asin, title, brand, or a CSV with asin, title)",
  },
  users: {
    type: "string",
    placeholder: "PATH",
    help: "users table (csv; recbole finds NAME.user itself)",
  },
  delimiter: {
    type: "string",
    placeholder: "C",
    defaultText: "tab for .tsv, else comma",
    help: 'csv field separator ("tab" ok)',
  },
  "user-col": {
    type: "string",
    placeholder: "NAME",
    section:
      "Columns (csv and recbole; optional ones are used when a column of the default name exists)",
    defaultText: "user_id",
    help: "interactions: user id",
  },
  "item-col": {
    type: "string",
    placeholder: "NAME",
    defaultText: "item_id",
    help: "interactions: item id",
  },
  "time-col": {
    type: "string",
    placeholder: "NAME",
    defaultText: "timestamp|time",
    help: "interactions: Unix time or ISO date",
  },
  "timestamp-unit": {
    type: "choice",
    choices: TIME_UNITS,
    default: "auto",
    help: "unit of Unix times: s, ms, or auto (milliseconds when any exceeds 1e11, with a notice)",
  },
  "rating-col": {
    type: "string",
    placeholder: "NAME",
    defaultText: "rating",
    help: "interactions: rating",
  },
  "rating-scale": {
    type: "string",
    placeholder: "MIN-MAX",
    defaultText: "amazon-reviews: 1-5; else inferred from the training ratings",
    help: "the rating scale: a rating outside it is an error naming its line",
  },
  "review-col": {
    type: "string",
    placeholder: "NAME",
    defaultText: "review|review_text",
    help: "interactions: review text",
  },
  "summary-col": {
    type: "string",
    placeholder: "NAME",
    defaultText: "summary",
    help: "interactions: review summary",
  },
  "user-id-col": {
    type: "string",
    placeholder: "NAME",
    defaultText: "as --user-col",
    help: "users table: id column",
  },
  "user-features": {
    type: "list",
    defaultText: "all others",
    help: "users table: feature columns",
  },
  "item-id-col": {
    type: "string",
    placeholder: "NAME",
    defaultText: "as --item-col",
    help: "items table: id column",
  },
  "title-col": {
    type: "string",
    placeholder: "NAME",
    defaultText: "title",
    help: "items table: title column",
  },
  "item-attrs": { type: "list", defaultText: "all others", help: "items table: attribute columns" },
  "label-col": {
    type: "string",
    placeholder: "NAME",
    defaultText: "asin",
    help: "p5 items table: identifier appended to repeated titles",
  },
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
  "max-history": {
    type: "int",
    min: 1,
    default: D.maxHistory,
    help: "items shown in sequential prompts",
  },
  "seq-per-user": {
    type: "int",
    min: 0,
    default: D.seqPerUser,
    help: "training sequential records per user, 0 = every position",
  },
  "direct-per-user": {
    type: "int",
    min: 0,
    default: D.directPerUser,
    help: "training direct records per user",
  },
  "direct-history": {
    type: "int",
    min: 0,
    default: D.directHistory,
    help: "items shown in direct prompts",
  },
  "rating-per-user": {
    type: "int",
    min: 0,
    default: D.ratingPerUser,
    help: "training rating records per user, 0 = all",
  },
  "explanation-per-user": {
    type: "int",
    min: 0,
    default: D.explanationPerUser,
    help: "training explanation records per user, 0 = all",
  },
  "review-per-user": {
    type: "int",
    min: 0,
    default: D.reviewPerUser,
    help: "training review records per user, 0 = all",
  },
  "negatives": {
    type: "int",
    min: 0,
    default: D.negatives,
    help: "negatives in valid/test candidate lists",
  },
  "profiles-per-user": {
    type: "int",
    min: 0,
    default: D.profilesPerUser,
    help: "profile documents per user",
  },
  "profile-sample": {
    type: "int",
    min: 1,
    default: D.profileSample,
    help: "items sampled from each preference period",
  },
  "short-days": {
    type: "int",
    min: 0,
    default: D.windows.shortDays,
    help: "short-term period with timestamps",
  },
  "medium-days": {
    type: "int",
    min: 0,
    default: D.windows.mediumDays,
    help: "medium-term period with timestamps",
  },
  "short-items": {
    type: "int",
    min: 0,
    default: D.windows.shortItems,
    help: "short-term period without timestamps",
  },
  "medium-items": {
    type: "int",
    min: 0,
    default: D.windows.mediumItems,
    help: "medium-term period without timestamps",
  },
  "favourites": {
    type: "int",
    min: 0,
    default: D.favourites,
    help: "favourite values per item attribute in profiles",
  },
  "max-entity-words": {
    type: "int",
    min: 1,
    default: D.maxEntityWords,
    help: "entity strings are cut to N words",
  },
  "max-entity-chars": {
    type: "int",
    min: 0,
    default: D.maxEntityChars,
    help: "... then to N characters (0: no limit), with a warning: a title longer than the " +
      "model's maximum length stops training",
  },
  "explanation-min-words": {
    type: "int",
    min: 1,
    default: D.explanationMinWords,
    help: "explanation = first review sentence with N+ words",
  },
  "explanation-max-words": {
    type: "int",
    min: 1,
    default: D.explanationMaxWords,
    help: "... cut to N words",
  },
  "review-words": {
    type: "int",
    min: 1,
    default: D.reviewWords,
    help: "words of review text quoted in review prompts",
  },
  "train-through": {
    type: "choice",
    choices: TRAIN_THROUGH,
    default: D.trainThrough,
    help: "training records cover interactions through: train, or valid (the refit for test)",
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
    const out = flags.out;
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
        },
        out,
        shard: flags.shard === undefined ? undefined : parseShard(flags.shard),
        force: flags.force,
        tasksNamed: flags.tasks !== undefined,
        progress,
        onWarning: (message) => console.error(`warning: ${message}`),
      }));
    const total = Object.values(summary.records).reduce(
      (sum, byTask) => sum + Object.values(byTask).reduce((a, b) => a + b, 0),
      0,
    );
    progress.done(
      `${total} records for ${summary.users} users and ${summary.items} items written to ${summary.out}`,
    );
    console.log(JSON.stringify(summary));
  },
};
