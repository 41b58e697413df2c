/**
 * Flag parsing for the subcommands: `node:util` parseArgs in strict mode, with every mistake turned
 * into a one-line {@linkcode UsageError}, and typed readers for numbers, lists and choices.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { UsageError } from "../errors.ts";

/** How one flag is read: a string value, or a boolean switch. */
export interface FlagSpec {
  type: "string" | "boolean";
  /** A one-letter alias (`-o`). */
  short?: string;
  /** May be given several times; the values are collected in order. */
  multiple?: boolean;
}

/** The parsed flags: strings, booleans or string lists, by flag name. */
export type Flags = Record<string, string | boolean | string[] | undefined>;

/**
 * Parses `args` against `spec`. Unknown flags, missing values and stray positional arguments are
 * {@linkcode UsageError}s that name the command. `--help` is always accepted.
 *
 * @example
 * ```ts
 * const flags = parseFlags("eval", ["--k", "1,5"], { k: { type: "string" } });
 * intList(flags, "k", [1, 5, 10]); // [1, 5]
 * ```
 */
export function parseFlags(command: string, args: string[], spec: Record<string, FlagSpec>): Flags {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { help: { type: "boolean", short: "h" }, ...spec },
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length > 0) {
      throw new UsageError(
        `${command}: unexpected argument "${positionals[0]}" (see ${command} --help)`,
      );
    }
    return values as Flags;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const message = (error as Error).message.split("\n")[0].replace(/\. To specify .*$/, "");
    throw new UsageError(`${command}: ${message} (see ${command} --help)`);
  }
}

/** A required string flag. */
export function required(flags: Flags, name: string, command: string): string {
  const value = flags[name];
  if (typeof value !== "string" || value === "") {
    throw new UsageError(`${command}: --${name} is required`);
  }
  return value;
}

/** An optional string flag, or `fallback`. */
export function optional(flags: Flags, name: string): string | undefined;
export function optional(flags: Flags, name: string, fallback: string): string;
export function optional(flags: Flags, name: string, fallback?: string): string | undefined {
  const value = flags[name];
  return typeof value === "string" ? value : fallback;
}

/** An integer flag within [min, max], or `fallback` when absent. */
export function int(
  flags: Flags,
  name: string,
  fallback: number,
  min = -Infinity,
  max = Infinity,
): number {
  const value = flags[name];
  if (value === undefined) return fallback;
  const n = Number(value);
  if (typeof value !== "string" || value.trim() === "" || !Number.isInteger(n)) {
    throw new UsageError(`--${name} must be an integer, got "${value}"`);
  }
  if (n < min || n > max) throw new UsageError(`--${name} must be in ${min}..${max}, got ${n}`);
  return n;
}

/** A number flag within [min, max], or `fallback` when absent. */
export function float(
  flags: Flags,
  name: string,
  fallback: number,
  min = -Infinity,
  max = Infinity,
): number {
  const value = flags[name];
  if (value === undefined) return fallback;
  const n = Number(value);
  if (typeof value !== "string" || value.trim() === "" || !Number.isFinite(n)) {
    throw new UsageError(`--${name} must be a number, got "${value}"`);
  }
  if (n < min || n > max) throw new UsageError(`--${name} must be in ${min}..${max}, got ${n}`);
  return n;
}

/** A comma-separated list flag, or `fallback` when absent. */
export function list(flags: Flags, name: string, fallback: string[]): string[] {
  const value = flags[name];
  if (value === undefined) return fallback;
  const items = String(value).split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (items.length === 0) throw new UsageError(`--${name} must list at least one value`);
  return items;
}

/** A comma-separated list of positive integers, or `fallback` when absent. */
export function intList(flags: Flags, name: string, fallback: number[]): number[] {
  if (flags[name] === undefined) return fallback;
  return list(flags, name, []).map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) {
      throw new UsageError(`--${name} must list positive integers, got "${s}"`);
    }
    return n;
  });
}

/** A flag whose value must be one of `choices`, or `fallback` when absent. */
export function choice<T extends string>(
  flags: Flags,
  name: string,
  choices: readonly T[],
  fallback: T,
): T {
  const value = flags[name];
  if (value === undefined) return fallback;
  if (!choices.includes(value as T)) {
    throw new UsageError(`--${name} must be one of ${choices.join(", ")}, got "${value}"`);
  }
  return value as T;
}
