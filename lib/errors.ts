/**
 * Error kinds the command line must tell apart.
 *
 * `UsageError` is a mistake on the command line (unknown flag, missing option): exit 2.
 * `InputError` is bad input data or files (malformed row, missing file, wrong encoding): exit 1.
 * Anything else is a bug in the toolkit and is reported with its stack.
 *
 * Messages are one line and say where: `items.csv line 41: column "title" is empty`.
 *
 * @module
 */

/** A mistake on the command line; the CLI prints it and exits with status 2. */
export class UsageError extends Error {
  /** The error's name, as stacks show it. */
  override name = "UsageError";
}

/**
 * How a message that names library options reads once a command names them by its flags:
 * `describe(name, nameOf)` is the message with `name` for {@linkcode OptionWording.option} and
 * `nameOf(other)` for any other option it mentions. Libraries never spell command-line flags; a
 * command re-words the message (see `withFlagNames` in lib/cli/flags.ts).
 */
export interface OptionWording {
  /** The option as the library names it (`maxLength`). */
  readonly option: string;
  /**
   * The one-line message, given the name to call the option by and how to name any other
   * (default: by its own name).
   */
  readonly describe: (name: string, nameOf?: (option: string) => string) => string;
}

/** A message around option names: `name` for the option, `nameOf(other)` for any other. */
export type Describe = (name: string, nameOf: (option: string) => string) => string;

/** Names an option as the library does: its own name. */
const plainName = (option: string) => option;

/** How {@linkcode optionName} names options; see {@linkcode nameOptionsBy}. */
let optionNamer: (option: string) => string = plainName;

/**
 * A library option as messages mention it (notes, warnings, hints in errors: "declare it with
 * `optionName("ratingScale")` MIN-MAX"): by its own name (`ratingScale`) unless the program says
 * otherwise. The command line names options by their flags (`--rating-scale`): libraries never
 * spell flags. A message about an option's own value is an {@linkcode OptionError} instead.
 *
 * @example
 * ```ts
 * optionName("ratingScale"); // "ratingScale" (the command line: "--rating-scale")
 * ```
 */
export function optionName(option: string): string {
  return optionNamer(option);
}

/** Sets how {@linkcode optionName} names options for this process (main.ts: by their flags). */
export function nameOptionsBy(namer: (option: string) => string): void {
  optionNamer = namer;
}

/**
 * A library option whose value cannot work (out of range, or in conflict with another option).
 * The message words the problem around the option's name, and a command re-words it with its
 * flag name.
 *
 * @example
 * ```ts
 * const error = new OptionError("maxLength", (name) => `${name} must be at most 512, got 600`);
 * error.message; // "maxLength must be at most 512, got 600"
 * error.describe("--max-length", (o) => o); // "--max-length must be at most 512, got 600"
 * ```
 */
export class OptionError extends UsageError implements OptionWording {
  override name = "OptionError";
  readonly describe: (name: string, nameOf?: (option: string) => string) => string;

  /**
   * @param option the option as the library names it (`maxLength`)
   * @param describe the one-line message, given the name to call the option (and others) by
   */
  constructor(readonly option: string, describe: Describe) {
    super(describe(option, plainName));
    this.describe = (name, nameOf = plainName) => describe(name, nameOf);
  }
}

/** Where {@linkcode worded} keeps an error's wording. */
const WORDING = Symbol("option wording");

/**
 * `error` (of any kind: an `InputError` keeps its exit status) with a message that names the
 * library option `option`: it reads `describe(option, ...)` until a command re-words it with its
 * flags ({@linkcode wordingOf} gives the wording back).
 *
 * @example
 * ```ts
 * const error = worded(new InputError(""), "out", (name) => `runs/x: not ours; choose another ${name}`);
 * error.message; // "runs/x: not ours; choose another out"
 * ```
 */
export function worded<E extends Error>(error: E, option: string, describe: Describe): E {
  error.message = describe(option, plainName);
  const wording: OptionWording = {
    option,
    describe: (name, nameOf = plainName) => describe(name, nameOf),
  };
  return Object.assign(error, { [WORDING]: wording });
}

/** The wording of an error whose message names a library option, if it has one. */
export function wordingOf(error: unknown): OptionWording | undefined {
  if (error instanceof OptionError) return error;
  if (!(error instanceof Error)) return undefined;
  return (error as { [WORDING]?: OptionWording })[WORDING];
}

/** Drops the wording of `error` (a command has put its flags into the message). */
export function dropWording(error: Error): void {
  delete (error as { [WORDING]?: OptionWording })[WORDING];
}

/**
 * An error another process reports: a rank of a data-parallel run other than rank 0 ends with
 * the failure every rank agreed on (lib/parallel), and only rank 0 prints it. The CLI prints
 * nothing and exits with the status `error` would have.
 */
export class ReportedElsewhere extends Error {
  override name = "ReportedElsewhere";
  constructor(readonly error: unknown) {
    super("reported by another rank");
  }
}

const LEAVE = Symbol("leave");

/**
 * Marks `error` with what this process must do once the error has been reported and before it
 * exits with `status`: a rank of a data-parallel run waits for rank 0 to print the failure they
 * agreed on, or ends the job (lib/parallel). Returns `error`.
 *
 * @example
 * ```ts
 * const error = leavingWith(new InputError("bad"), async (status) => console.error(status));
 * await afterReport(error, 1); // prints 1
 * ```
 */
export function leavingWith<E extends Error>(
  error: E,
  leave: (status: number) => Promise<void>,
): E {
  return Object.assign(error, { [LEAVE]: leave });
}

/** `error` marked as `original` is (see {@linkcode leavingWith}): for an error that replaces it. */
export function leavingAs<E extends Error>(error: E, original: unknown): E {
  const leave = (original as { [LEAVE]?: (status: number) => Promise<void> } | undefined)?.[LEAVE];
  return leave ? leavingWith(error, leave) : error;
}

/** Runs what {@linkcode leavingWith} attached to `error` (nothing for any other error). */
export async function afterReport(error: unknown, status: number): Promise<void> {
  const leave = (error as { [LEAVE]?: (status: number) => Promise<void> } | undefined)?.[LEAVE];
  if (typeof error === "object" && leave) await leave(status);
}

/** Bad input data or files; the CLI prints it and exits with status 1. */
export class InputError extends Error {
  /** The error's name, as stacks show it. */
  override name = "InputError";
}

/**
 * Builds an {@linkcode InputError} that names the file and, when known, the line.
 *
 * @example
 * ```ts
 * throw inputError("items.csv", 41, 'column "title" is empty');
 * // InputError: items.csv line 41: column "title" is empty
 * ```
 */
export function inputError(file: string, line: number | undefined, problem: string): InputError {
  return new InputError(
    line === undefined ? `${file}: ${problem}` : `${file} line ${line}: ${problem}`,
  );
}

/** Longest message the CLI prints (a quoted 50 MB header line must not flood the terminal). */
export const MAX_MESSAGE = 500;

/**
 * `text` quoted for a message, cut to `max` characters (with the full length said) and with
 * line breaks escaped, so a message stays one readable line whatever the data holds.
 *
 * @example
 * ```ts
 * quote("a".repeat(1000), 10); // '"aaaaaaaaaa…" (1000 characters)'
 * ```
 */
export function quote(text: string, max = 80): string {
  const escaped = JSON.stringify(text.length > max ? text.slice(0, max) : text).slice(1, -1);
  return text.length > max ? `"${escaped}…" (${text.length} characters)` : `"${escaped}"`;
}

/** `text` cut to `max` characters (with an ellipsis), line breaks escaped; unquoted. */
export function cut(text: string, max = 80): string {
  const line = text.replace(/\r?\n/g, " ");
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/** `message` as one line of at most {@linkcode MAX_MESSAGE} characters. */
export function oneLine(message: string): string {
  const line = message.replace(/\r?\n/g, " ");
  return line.length > MAX_MESSAGE
    ? `${line.slice(0, MAX_MESSAGE)}… (message cut; ${line.length} characters)`
    : line;
}
