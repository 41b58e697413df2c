/**
 * Flags declared once. A command declares each flag in one table (name, type, default, help);
 * {@linkcode parseFlags} reads the command line against it into typed values, and
 * {@linkcode formatFlags} writes the flag section of the command's `--help` from it. Every
 * mistake is a one-line {@linkcode UsageError} that names the flag.
 *
 * A default that belongs to a library (AdamW's weight decay, the number of beams) is the
 * library's constant, referenced from the table, never a number written again here.
 *
 * @example
 * ```ts
 * import { defineFlags, formatFlags, parseFlags } from "./flags.ts";
 *
 * const FLAGS = defineFlags({
 *   data: { type: "string", placeholder: "DIR", required: true, help: "dataset directory" },
 *   k: { type: "intList", min: 1, default: [1, 5, 10], help: "cut-offs for HR@k and NDCG@k" },
 *   format: { type: "choice", choices: ["json", "md"], default: "json", help: "output format" },
 *   limit: { type: "int", min: 1, defaultText: "all", help: "score only the first N records" },
 *   quiet: { type: "boolean", help: "no progress on stderr" },
 * });
 * const { values } = parseFlags("eval", ["--data", "d", "--k", "1,20"], FLAGS);
 * values.k; // [1, 20]            (number[])
 * values.format; // "json"        ("json" | "md")
 * values.limit; // undefined      (number | undefined: no default)
 * formatFlags(FLAGS);
 * // Flags:
 * //   --data DIR     dataset directory
 * //   --k LIST       cut-offs for HR@k and NDCG@k (default 1,5,10)
 * //   --format NAME  output format (default json)
 * //   --limit N      score only the first N records (default: all)
 * //   --quiet        no progress on stderr
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { dropWording, leavingAs, OptionError, UsageError, wordingOf } from "../errors.ts";

/** What every flag but a switch has. */
interface ValueFlag {
  /** One sentence for `--help`; `\n` starts a new line. The default is appended to it. */
  help: string;
  /** The word after the flag in `--help`: `DIR`, `FILE` (default by type: `N`, `X`, `LIST`...). */
  placeholder?: string;
  /** Starts a section of `--help` with this heading (`Data`), up to the next flag that has one. */
  section?: string;
  /** Absence (or an empty value) is an error: `pretrain: --out is required`. */
  required?: boolean;
  /** Says in `--help` what absence means when it is no value (`the model's maximum`). */
  defaultText?: string;
  /** Old spellings still read, each use with a one-line notice (`task` for `tasks`). */
  aliases?: readonly string[];
}

/** A string: `--out runs/x`. With `multiple`, every occurrence, in order (`[]` when absent). */
export interface StringFlag extends ValueFlag {
  type: "string";
  default?: string;
  multiple?: boolean;
}

/** An integer within [min, max]: `--steps 500`. */
export interface IntFlag extends ValueFlag {
  type: "int";
  default?: number;
  min?: number;
  max?: number;
}

/** A finite number within [min, max] (or above `above`): `--lr 1e-3`. */
export interface NumberFlag extends ValueFlag {
  type: "number";
  default?: number;
  min?: number;
  /** An exclusive lower bound: the value must be greater. */
  above?: number;
  max?: number;
}

/** A switch: `--quiet` (false when absent). */
export interface BooleanFlag {
  type: "boolean";
  help: string;
  section?: string;
  /** Old spellings still read, each use with a one-line notice. */
  aliases?: readonly string[];
}

/**
 * A comma-separated list: `--tasks rating,review`. With `choices`, each item must be one of them;
 * with `multiple`, the flag may be repeated and the lists are joined.
 */
export interface ListFlag extends ValueFlag {
  type: "list";
  default?: readonly string[];
  choices?: readonly string[];
  /** What the items are, for the error: `--task must list tasks of ...` (default `values`). */
  items?: string;
  multiple?: boolean;
}

/** A comma-separated list of integers within [min, max]: `--k 1,5,10`. */
export interface IntListFlag extends ValueFlag {
  type: "intList";
  default?: readonly number[];
  min?: number;
  max?: number;
}

/** One of `choices`: `--device cpu`. */
export interface ChoiceFlag extends ValueFlag {
  type: "choice";
  choices: readonly string[];
  default?: string;
}

/** One flag's declaration. */
export type FlagDecl =
  | StringFlag
  | IntFlag
  | NumberFlag
  | BooleanFlag
  | ListFlag
  | IntListFlag
  | ChoiceFlag;

/** A command's flags by name (without the dashes), in the order `--help` lists them. */
export type FlagTable = Record<string, FlagDecl>;

/** The value type a declaration reads to. */
export type FlagValue<D> = D extends { type: "boolean" } ? boolean
  : D extends { type: "string"; multiple: true } ? string[]
  : D extends { type: "string" } ? string
  : D extends { type: "int" | "number" } ? number
  : D extends { type: "list"; choices: readonly (infer C)[] } ? C[]
  : D extends { type: "list" } ? string[]
  : D extends { type: "intList" } ? number[]
  : D extends { type: "choice"; choices: readonly (infer C)[] } ? C
  : never;

/** Whether a declaration always has a value (switch, default, required, repeatable). */
type Always<D> = D extends
  { type: "boolean" } | { default: unknown } | { required: true } | { multiple: true } ? true
  : false;

/** The parsed flags of a table: typed, `undefined` where absent without a default. */
export type FlagValues<T extends FlagTable> = {
  readonly [K in keyof T]: Always<T[K]> extends true ? FlagValue<T[K]>
    : FlagValue<T[K]> | undefined;
};

/** What {@linkcode parseFlags} returns. */
export interface ParsedFlags<T extends FlagTable> {
  /** Every flag of the table, typed; defaults filled in. */
  values: FlagValues<T>;
  /** The flags given on the command line (to tell a default from the same value given). */
  given: ReadonlySet<keyof T & string>;
  /** The arguments that are not flags, in order (only with `positionals: true`; else none). */
  positionals: string[];
}

/** Options of {@linkcode parseFlags}. */
export interface ParseOptions {
  /** The command takes arguments besides its flags (`merge --out F PART...`). */
  positionals?: boolean;
  /** Where a notice goes (an old flag spelling used); default: a line on stderr. */
  onNotice?: (message: string) => void;
}

/**
 * Declares a command's flags; returns the table as written, with its literal types kept so
 * {@linkcode parseFlags} can type the values (`choices: DEVICES` reads to `Device`).
 */
export function defineFlags<const T extends FlagTable>(table: T): T {
  return table;
}

/**
 * An integer flag of at least `min` whose default is a library's constant: the common shape of a
 * count, one line in a table.
 *
 * @example
 * ```ts
 * const FLAGS = defineFlags({ "batch-size": intFlag(1, 8, "examples per micro-batch") });
 * ```
 */
export function intFlag(min: number, value: number, help: string) {
  return { type: "int", min, default: value, help } as const;
}

/** A number flag of at least `min` whose default is a library's constant (see {@linkcode intFlag}). */
export function numberFlag(min: number, value: number, help: string) {
  return { type: "number", min, default: value, help } as const;
}

/**
 * A dropout probability P in [0, 0.99] whose default is a library's constant (see
 * {@linkcode intFlag}).
 */
export function dropoutFlag(value: number, help: string) {
  return { type: "number", placeholder: "P", min: 0, max: 0.99, default: value, help } as const;
}

/**
 * Parses `args` against `table`. Unknown flags, missing values, stray positional arguments,
 * missing required flags and malformed values are one-line {@linkcode UsageError}s; `--help` is
 * always accepted (the caller handles it).
 *
 * @example
 * ```ts
 * const table = defineFlags({ steps: { type: "int", min: 1, default: 100, help: "steps" } });
 * parseFlags("pretrain", ["--steps", "5"], table).values.steps; // 5
 * parseFlags("pretrain", ["--steps", "0"], table); // throws "--steps must be at least 1, got 0"
 * ```
 */
export function parseFlags<T extends FlagTable>(
  command: string,
  args: string[],
  table: T,
  parseOptions: ParseOptions = {},
): ParsedFlags<T> {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {};
  for (const [name, decl] of Object.entries(table)) {
    const option = {
      type: decl.type === "boolean" ? "boolean" as const : "string" as const,
      multiple: "multiple" in decl && decl.multiple === true,
    };
    options[name] = option;
    for (const alias of decl.aliases ?? []) options[alias] = option;
  }
  // The declaration of a flag by any of its names (an old spelling too).
  const declOf = (flag: string) => {
    const name = flag.replace(/^-+/, "");
    for (const [main, decl] of Object.entries(table)) {
      if (main === name || decl.aliases?.includes(name)) return { main, decl };
    }
    return undefined;
  };
  const needsValue = (flag: string, extra = "") => {
    const decl = declOf(flag)?.decl;
    const placeholder = decl ? placeholderOf(decl) : "VALUE";
    return new UsageError(
      `${command}: ${flag} needs a value (${flag} ${placeholder}${extra}; see ${command} --help)`,
    );
  };
  let raw: Record<string, string | boolean | (string | boolean)[] | undefined>;
  let positionals: string[];
  try {
    const parsed = parseArgs({
      args: negativeValuesJoined(args, options),
      options: { ...options, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: true,
    });
    positionals = parsed.positionals;
    const values = parsed.values;
    if (positionals.length > 0 && !parseOptions.positionals) {
      throw new UsageError(
        `${command}: unexpected argument "${positionals[0]}" (see ${command} --help)`,
      );
    }
    raw = values;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const unknown = /^Unknown option '(-{1,2}[^']+)'/.exec((error as Error).message);
    if (unknown) {
      const guess = closestFlag(unknown[1].replace(/^-+/, ""), table);
      throw new UsageError(
        `${command}: unknown flag ${unknown[1]}` +
          (guess === undefined ? "" : `; did you mean --${guess}?`) + ` (see ${command} --help)`,
      );
    }
    const missing = /^Option '(-{1,2}[^ ']+)(?: <value>)?' argument missing/.exec(
      (error as Error).message,
    );
    if (missing) throw needsValue(missing[1]);
    // A value starting with a dash (`--out --quiet`): most likely a value left out.
    const ambiguous = /^Option '(-{1,2}[^ ']+)' argument is ambiguous/.exec(
      (error as Error).message,
    );
    if (ambiguous) {
      throw needsValue(ambiguous[1], `, or ${ambiguous[1]}=-VALUE for a value starting with -`);
    }
    const message = (error as Error).message.split("\n")[0].replace(/\. To specify .*$/, "");
    throw new UsageError(`${command}: ${message} (see ${command} --help)`);
  }
  for (const [name, decl] of Object.entries(table)) {
    for (const alias of decl.aliases ?? []) {
      const old = raw[alias];
      if (old === undefined) continue;
      (parseOptions.onNotice ?? ((m: string) => console.error(m)))(
        `${command}: --${alias} is now --${name} (the old name still works)`,
      );
      const now = raw[name];
      if (now === undefined) raw[name] = old;
      else if (Array.isArray(now) && Array.isArray(old)) raw[name] = [...now, ...old];
      else throw new UsageError(`${command}: give --${name} once (--${alias} is its old name)`);
    }
  }
  const values: Record<string, unknown> = {};
  const given = new Set<string>();
  for (const [name, decl] of Object.entries(table)) {
    const value = raw[name];
    const absent = value === undefined || (Array.isArray(value) && value.length === 0);
    if (!absent) given.add(name);
    if (decl.type === "boolean") {
      values[name] = value === true;
    } else if (absent || (decl.required && value === "")) {
      if (decl.required) throw new UsageError(`${command}: --${name} is required`);
      const fallback = decl.default;
      values[name] = Array.isArray(fallback)
        ? [...fallback]
        : fallback ?? ("multiple" in decl && decl.multiple ? [] : undefined);
    } else {
      // `--out ""` (an unset variable) is no path: the current directory it would mean is not
      // what was asked.
      if (value === "" || (Array.isArray(value) && value.includes(""))) {
        throw needsValue(`--${name}`);
      }
      values[name] = readValue(name, decl, value as string | string[]);
    }
  }
  return {
    values: values as FlagValues<T>,
    given: given as Set<keyof T & string>,
    positionals,
  };
}

function rangeText(min?: number, max?: number, above?: number): string | undefined {
  const low = above !== undefined ? `greater than ${above}` : min !== undefined ? min : undefined;
  if (max === undefined) {
    return low === undefined ? undefined : typeof low === "number" ? `at least ${low}` : low;
  }
  if (low === undefined) return `at most ${max}`;
  return typeof low === "number" ? `in ${low}..${max}` : `${low} and at most ${max}`;
}

function inRange(
  name: string,
  n: number,
  decl: { min?: number; max?: number; above?: number },
): number {
  const { min, max, above } = decl;
  if (
    (min !== undefined && n < min) || (max !== undefined && n > max) ||
    (above !== undefined && !(n > above))
  ) {
    throw new UsageError(`--${name} must be ${rangeText(min, max, above)}, got ${n}`);
  }
  return n;
}

function items(name: string, text: string): string[] {
  const out = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (out.length === 0) throw new UsageError(`--${name} must list at least one value`);
  return out;
}

function readValue(name: string, decl: FlagDecl, value: string | string[]): unknown {
  switch (decl.type) {
    case "string":
      return value;
    case "int": {
      const n = Number(value);
      if (typeof value !== "string" || value.trim() === "" || !Number.isInteger(n)) {
        throw new UsageError(`--${name} must be an integer, got "${value}"`);
      }
      return inRange(name, n, decl);
    }
    case "number": {
      const n = Number(value);
      if (typeof value !== "string" || value.trim() === "" || !Number.isFinite(n)) {
        throw new UsageError(`--${name} must be a number, got "${value}"`);
      }
      return inRange(name, n, decl);
    }
    case "list": {
      const list = (Array.isArray(value) ? value : [value]).flatMap((v) => items(name, v));
      for (const item of decl.choices === undefined ? [] : list) {
        if (!decl.choices!.includes(item)) {
          throw new UsageError(
            `--${name} must list ${decl.items ?? "values"} of ${decl.choices!.join(", ")}, ` +
              `got "${item}"`,
          );
        }
      }
      return list;
    }
    case "intList":
      return items(name, value as string).map((s) => {
        const n = Number(s);
        const { min, max } = decl;
        if (
          !Number.isInteger(n) || (min !== undefined && n < min) || (max !== undefined && n > max)
        ) {
          const kind = min === 1 && max === undefined
            ? "positive integers"
            : `integers${rangeText(min, max) ? ` ${rangeText(min, max)}` : ""}`;
          throw new UsageError(`--${name} must list ${kind}, got "${s}"`);
        }
        return n;
      });
    case "choice":
      if (!decl.choices.includes(value as string)) {
        throw new UsageError(
          `--${name} must be one of ${decl.choices.join(", ")}, got "${value}"`,
        );
      }
      return value;
    case "boolean":
      return true;
  }
}

const PLACEHOLDERS: Record<FlagDecl["type"], string> = {
  string: "VALUE",
  int: "N",
  number: "X",
  boolean: "",
  list: "LIST",
  intList: "LIST",
  choice: "NAME",
};

/** What `--help` and the messages write after a flag for its value (`DIR`, `N`, `LIST`). */
function placeholderOf(decl: FlagDecl): string {
  return ("placeholder" in decl ? decl.placeholder : undefined) ?? PLACEHOLDERS[decl.type];
}

/** A default as `--help` shows it: `1e-8` rather than `0.00000001`, lists comma-separated. */
export function formatDefault(value: unknown): string {
  if (typeof value === "number") {
    return value !== 0 && Math.abs(value) < 1e-3 ? value.toExponential() : String(value);
  }
  if (Array.isArray(value)) return value.map(formatDefault).join(",");
  if (value === "") return '""';
  return String(value);
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const paragraph of text.split("\n")) {
    let line = "";
    for (const word of paragraph.split(" ")) {
      if (line !== "" && line.length + 1 + word.length > width) {
        lines.push(line);
        line = word;
      } else {
        line = line === "" ? word : `${line} ${word}`;
      }
    }
    lines.push(line);
  }
  return lines;
}

/** Options of {@linkcode formatFlags}. */
export interface FormatFlagsOptions {
  /** Heading of the flags before the first `section` (default `Flags`). */
  heading?: string;
  /** Longest line (default 100, the project's line width). */
  width?: number;
}

/**
 * The flag section of a command's `--help`: one entry per flag, in table order, with its
 * placeholder, its help wrapped to `width` and its default (`(default 8)`, or
 * `(default: TEXT)` from `defaultText`); a heading line where a flag starts a `section`.
 *
 * @example
 * ```ts
 * formatFlags(defineFlags({ seed: { type: "int", default: 0, help: "random seed" } }));
 * // "Flags:\n  --seed N  random seed (default 0)"
 * ```
 */
export function formatFlags(table: FlagTable, options: FormatFlagsOptions = {}): string {
  const width = options.width ?? 100;
  const label = (name: string, decl: FlagDecl) => {
    const placeholder = decl.type === "boolean" ? "" : ` ${placeholderOf(decl)}`;
    return `  --${name}${placeholder}`;
  };
  const entries = Object.entries(table);
  const column = Math.max(0, ...entries.map(([name, decl]) => label(name, decl).length)) + 2;
  const lines: string[] = [];
  let section: string | undefined;
  entries.forEach(([name, decl], i) => {
    // A heading where a section starts (flags of one section may each name it).
    if (decl.section !== undefined && decl.section !== section) lines.push(`${decl.section}:`);
    else if (i === 0 && decl.section === undefined) lines.push(`${options.heading ?? "Flags"}:`);
    section = decl.section ?? section;
    let help = decl.help;
    const shown = decl.type === "boolean"
      ? undefined
      : decl.defaultText !== undefined
      ? `default: ${decl.defaultText}`
      : decl.default !== undefined
      ? `default ${formatDefault(decl.default)}`
      : undefined;
    // "clip the norm (0: off)" + "default 1" -> "clip the norm (0: off; default 1)".
    if (shown !== undefined) {
      help = help.endsWith(")") ? `${help.slice(0, -1)}; ${shown})` : `${help} (${shown})`;
    }
    const wrapped = wrap(help, Math.max(width - column, 30));
    lines.push(label(name, decl).padEnd(column) + wrapped[0]);
    for (const more of wrapped.slice(1)) lines.push(" ".repeat(column) + more);
  });
  return lines.join("\n");
}

/**
 * The edit distance between `a` and `b`: insertions, deletions, substitutions and swaps of two
 * neighbouring letters (`tpo` -> `top`) count one each.
 */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(
        d[i - 1][j] + 1,
        d[i][j - 1] + 1,
        d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The flag of `table` the user most likely meant by `typed` (`--top` -> `top-k`, `--task` ->
 * `tasks`): one that starts with it or it starts with, else the nearest within a third of its
 * length in edits; undefined when none is close.
 */
export function closestFlag(typed: string, table: FlagTable): string | undefined {
  let best: string | undefined;
  let bestScore = Infinity;
  for (const [name, decl] of Object.entries(table)) {
    for (const spelling of [name, ...(decl.aliases ?? [])]) {
      const score = spelling.startsWith(typed) || typed.startsWith(spelling)
        ? Math.abs(spelling.length - typed.length) / 100
        : editDistance(typed, spelling);
      if (score < bestScore) [best, bestScore] = [name, score];
    }
  }
  const allowed = Math.max(1, Math.floor(typed.length / 3));
  return bestScore <= allowed ? best : undefined;
}

/** `max-length` -> `maxLength`, as a type (see {@linkcode optionsOf}). */
export type OptionName<F extends string> = F extends `${infer A}-${infer B}`
  ? `${A}${Capitalize<OptionName<B>>}`
  : F;

/**
 * The values of `flags` keyed by the library option each flag conventionally sets (`max-length`
 * -> `maxLength`, the convention {@linkcode withFlagNames} reads back): a command passes them on
 * and states only the options that are not a flag's value.
 *
 * @example
 * ```ts
 * optionsOf({ "max-length": 512, seed: 1 }); // { maxLength: 512, seed: 1 }
 * ```
 */
export function optionsOf<V extends Record<string, unknown>>(
  flags: V,
): { [K in keyof V & string as OptionName<K>]: V[K] } {
  return Object.fromEntries(
    Object.entries(flags).map(([flag, value]) => [
      flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase()),
      value,
    ]),
  ) as { [K in keyof V & string as OptionName<K>]: V[K] };
}

/** `maxLength` -> `max-length`: the flag that conventionally sets a library option. */
export function flagOf(option: string): string {
  return option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** `max-length` -> `maxLength`: the library option a flag conventionally sets. */
export function optionOf(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Runs `work`, re-wording an error whose message names a library option ({@linkcode OptionError},
 * or any error given a wording by `worded`) with the flags that set the options (`maxLength` ->
 * `--max-length`, by the kebab-case convention, or as `rename` says), so the user reads the names
 * they typed. An error whose option no flag of `table` sets is left as it is.
 *
 * @example
 * ```ts
 * import { OptionError } from "../errors.ts";
 *
 * const FLAGS = defineFlags({ "max-length": { type: "int", help: "longest example in tokens" } });
 * const train = (_: { maxLength?: number }) =>
 *   Promise.reject(new OptionError("maxLength", (name) => `${name} must be in 8..512, got 600`));
 * await withFlagNames(FLAGS, () => train({ maxLength: 600 }));
 * // throws UsageError "--max-length must be in 8..512, got 600"
 * ```
 */
export async function withFlagNames<R>(
  table: FlagTable,
  work: () => Promise<R>,
  rename: Record<string, string> = {},
): Promise<R> {
  try {
    return await work();
  } catch (error) {
    throw withFlagsIn(error, table, rename);
  }
}

/**
 * `error` with its library option names replaced by the flags that set them (see
 * {@linkcode withFlagNames}); without `table`, by the kebab-case convention alone (what the
 * command line does with an error no command re-worded).
 */
export function withFlagsIn(
  error: unknown,
  table?: FlagTable,
  rename: Record<string, string> = {},
): unknown {
  const wording = wordingOf(error);
  if (!wording) return error;
  const flag = (option: string) => rename[option] ?? flagOf(option);
  const known = (option: string) => table === undefined || flag(option) in table;
  if (!known(wording.option)) return error;
  const message = wording.describe(
    `--${flag(wording.option)}`,
    (other) => known(other) ? `--${flag(other)}` : other,
  );
  // The new error leaves a data-parallel run as the one it replaces (lib/parallel).
  if (error instanceof OptionError) return leavingAs(new UsageError(message), error);
  const reworded = error as Error;
  reworded.message = message;
  dropWording(reworded);
  return reworded;
}

/**
 * `args` with a negative number after a value flag joined to it (`--seed -3` -> `--seed=-3`):
 * parseArgs would take `-3` for a flag and call the value ambiguous, where the user meant a value
 * (which the flag's declaration then accepts or rejects with its range).
 */
function negativeValuesJoined(
  args: string[],
  options: Record<string, { type: "string" | "boolean" }>,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const name = arg.startsWith("--") && !arg.includes("=") ? arg.slice(2) : undefined;
    const next = args[i + 1];
    if (
      name !== undefined && options[name]?.type === "string" && next !== undefined &&
      /^-(\d|\.\d|Infinity)/.test(next)
    ) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}
