/**
 * `textualize`: raw interaction data (P5 sequences, Amazon review JSON, CSV/TSV tables, RecBole
 * atomic files) -> a dataset directory of text records, entity pool and manifest. Flag parsing
 * and printing only; the work is `lib/data/textualize.ts`.
 *
 * @module
 */

import type { Command } from "../lib/cli/command.ts";
import { choice, type Flags, int, list, optional, parseFlags, required } from "../lib/cli/flags.ts";
import { UsageError } from "../lib/errors.ts";
import { Progress } from "../lib/io/progress.ts";
import { FORMATS } from "../lib/data/readers/read.ts";
import { DEFAULT_RECORD_OPTIONS as D } from "../lib/data/records.ts";
import { textualize } from "../lib/data/textualize.ts";
import { type Task, TASKS } from "../lib/data/types.ts";

const usage =
  `Usage: recsysllm textualize --format p5|amazon-reviews|csv|recbole --input PATH --out DIR [flags]

Turns interaction data into a dataset directory: train.jsonl, valid.jsonl, test.jsonl (records
of text and entities, leave-one-out per user), candidates.jsonl (each user's 1 + N candidate items
for the sampled protocol, per split), entities.json and manifest.json.

Input:
  --format NAME            p5 | amazon-reviews | csv | recbole
  --input PATH             p5: sequential_data.txt; amazon-reviews: .json or .json.gz;
                           csv: interactions table; recbole: NAME.inter or its directory
  --items PATH             items table (p5: item_id,asin,title; csv: id, title, attributes)
  --users PATH             users table (csv; recbole finds NAME.user itself)
  --delimiter C            csv field separator (default: tab for .tsv, else comma; "tab" ok)
Columns (csv and recbole; optional ones are used when a column of the default name exists):
  --user-col NAME          interactions: user id (default user_id)
  --item-col NAME          interactions: item id (default item_id)
  --time-col NAME          interactions: Unix seconds or ISO date (default timestamp|time)
  --rating-col NAME        interactions: rating (default rating)
  --review-col NAME        interactions: review text (default review|review_text)
  --summary-col NAME       interactions: review summary (default summary)
  --user-id-col NAME       users table: id column (default: as --user-col)
  --user-features LIST     users table: feature columns (default: all others)
  --item-id-col NAME       items table: id column (default: as --item-col)
  --title-col NAME         items table: title column (default title)
  --item-attrs LIST        items table: attribute columns (default: all others)
  --label-col NAME         p5 items table: identifier appended to repeated titles (default asin)
Records:
  --seed N                 random seed (default 0)
  --tasks LIST             of ${TASKS.join(",")} (default all)
  --max-history N          items shown in sequential prompts (default ${D.maxHistory})
  --seq-per-user N         training sequential records per user, 0 = every position (default 0)
  --direct-per-user N      training direct records per user (default ${D.directPerUser})
  --direct-history N       items shown in direct prompts (default ${D.directHistory})
  --rating-per-user N      training rating records per user, 0 = all (default 0)
  --explanation-per-user N training explanation records per user, 0 = all (default 0)
  --review-per-user N      training review records per user, 0 = all (default 0)
  --negatives N            negatives in valid/test candidate lists (default ${D.negatives})
  --profiles-per-user N    profile documents per user (default ${D.profilesPerUser})
  --profile-sample N       items sampled from each preference period (default ${D.profileSample})
  --short-days N           short-term period with timestamps (default ${D.windows.shortDays})
  --medium-days N          medium-term period with timestamps (default ${D.windows.mediumDays})
  --short-items N          short-term period without timestamps (default ${D.windows.shortItems})
  --medium-items N         medium-term period without timestamps (default ${D.windows.mediumItems})
  --favourites N           favourite values per item attribute in profiles (default ${D.favourites})
  --max-entity-words N     entity strings are cut to N words (default ${D.maxEntityWords})
  --explanation-min-words N  explanation = first review sentence with N+ words (default ${D.explanationMinWords})
  --explanation-max-words N  ... cut to N words (default ${D.explanationMaxWords})
  --review-words N         words of review text quoted in review prompts (default ${D.reviewWords})
Output:
  --out DIR                dataset directory (replaced atomically)
  --quiet                  no progress on stderr

Prints a JSON summary (counts per split and task) on stdout.

Example:
  textualize --format csv --input fixtures/demo/interactions.csv --users fixtures/demo/users.csv \\
    --items fixtures/demo/items.csv --out runs/demo-data --seed 1`;

const spec = {
  format: { type: "string" },
  input: { type: "string" },
  items: { type: "string" },
  users: { type: "string" },
  out: { type: "string" },
  delimiter: { type: "string" },
  "user-col": { type: "string" },
  "item-col": { type: "string" },
  "time-col": { type: "string" },
  "rating-col": { type: "string" },
  "review-col": { type: "string" },
  "summary-col": { type: "string" },
  "user-id-col": { type: "string" },
  "user-features": { type: "string" },
  "item-id-col": { type: "string" },
  "title-col": { type: "string" },
  "item-attrs": { type: "string" },
  "label-col": { type: "string" },
  seed: { type: "string" },
  tasks: { type: "string" },
  "max-history": { type: "string" },
  "seq-per-user": { type: "string" },
  "direct-per-user": { type: "string" },
  "direct-history": { type: "string" },
  "rating-per-user": { type: "string" },
  "explanation-per-user": { type: "string" },
  "review-per-user": { type: "string" },
  negatives: { type: "string" },
  "profiles-per-user": { type: "string" },
  "profile-sample": { type: "string" },
  "short-days": { type: "string" },
  "medium-days": { type: "string" },
  "short-items": { type: "string" },
  "medium-items": { type: "string" },
  favourites: { type: "string" },
  "max-entity-words": { type: "string" },
  "explanation-min-words": { type: "string" },
  "explanation-max-words": { type: "string" },
  "review-words": { type: "string" },
  quiet: { type: "boolean" },
} as const;

function delimiter(flags: Flags): string | undefined {
  const value = optional(flags, "delimiter");
  if (value === undefined) return undefined;
  if (value === "tab" || value === "\\t") return "\t";
  if (value === "") throw new UsageError("--delimiter must not be empty");
  return value;
}

function columnList(flags: Flags, name: string): string[] | undefined {
  return flags[name] === undefined ? undefined : list(flags, name, []);
}

function tasks(flags: Flags): Task[] {
  const names = list(flags, "tasks", [...TASKS]);
  for (const name of names) {
    if (!TASKS.includes(name as Task)) {
      throw new UsageError(`--tasks: unknown task "${name}" (tasks: ${TASKS.join(", ")})`);
    }
  }
  return TASKS.filter((t) => names.includes(t));
}

/** The `textualize` subcommand. */
export const command: Command = {
  name: "textualize",
  summary: "raw interactions (P5, Amazon reviews, CSV, RecBole) -> text records + entities",
  usage,
  async run(args: string[]): Promise<void> {
    const flags = parseFlags("textualize", args, spec);
    if (flags.format === undefined) throw new UsageError("textualize: --format is required");
    const format = choice(flags, "format", FORMATS, "csv");
    const out = required(flags, "out", "textualize");
    const progress = new Progress("textualize", { quiet: flags.quiet === true });
    const summary = await textualize({
      read: {
        format,
        input: required(flags, "input", "textualize"),
        items: optional(flags, "items"),
        users: optional(flags, "users"),
        delimiter: delimiter(flags),
        userCol: optional(flags, "user-col"),
        itemCol: optional(flags, "item-col"),
        timeCol: optional(flags, "time-col"),
        ratingCol: optional(flags, "rating-col"),
        reviewCol: optional(flags, "review-col"),
        summaryCol: optional(flags, "summary-col"),
        userIdCol: optional(flags, "user-id-col"),
        userFeatures: columnList(flags, "user-features"),
        itemIdCol: optional(flags, "item-id-col"),
        titleCol: optional(flags, "title-col"),
        itemAttrs: columnList(flags, "item-attrs"),
        labelCol: optional(flags, "label-col"),
      },
      records: {
        seed: int(flags, "seed", D.seed, 0, 2 ** 53),
        tasks: tasks(flags),
        maxHistory: int(flags, "max-history", D.maxHistory, 1),
        seqPerUser: int(flags, "seq-per-user", D.seqPerUser, 0),
        directPerUser: int(flags, "direct-per-user", D.directPerUser, 0),
        directHistory: int(flags, "direct-history", D.directHistory, 0),
        ratingPerUser: int(flags, "rating-per-user", D.ratingPerUser, 0),
        explanationPerUser: int(flags, "explanation-per-user", D.explanationPerUser, 0),
        reviewPerUser: int(flags, "review-per-user", D.reviewPerUser, 0),
        negatives: int(flags, "negatives", D.negatives, 0),
        profilesPerUser: int(flags, "profiles-per-user", D.profilesPerUser, 0),
        profileSample: int(flags, "profile-sample", D.profileSample, 1),
        windows: {
          shortDays: int(flags, "short-days", D.windows.shortDays, 0),
          mediumDays: int(flags, "medium-days", D.windows.mediumDays, 0),
          shortItems: int(flags, "short-items", D.windows.shortItems, 0),
          mediumItems: int(flags, "medium-items", D.windows.mediumItems, 0),
        },
        favourites: int(flags, "favourites", D.favourites, 0),
        maxEntityWords: int(flags, "max-entity-words", D.maxEntityWords, 1),
        explanationMinWords: int(flags, "explanation-min-words", D.explanationMinWords, 1),
        explanationMaxWords: int(flags, "explanation-max-words", D.explanationMaxWords, 1),
        reviewWords: int(flags, "review-words", D.reviewWords, 1),
      },
      out,
      progress,
    });
    const total = Object.values(summary.records).reduce(
      (sum, byTask) => sum + Object.values(byTask).reduce((a, b) => a + b, 0),
      0,
    );
    progress.done(
      `${total} records for ${summary.users} users and ${summary.items} items written to ${out}`,
    );
    console.log(JSON.stringify(summary));
  },
};
