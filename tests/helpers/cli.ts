/**
 * Running the command line in tests: the one way tests do it (not a test file itself;
 * tests/test_helpers_test.ts checks that no test imports `main` or spawns a process itself).
 *
 * - {@linkcode runCli}: `main(args)` in this process, with what it prints through console.log /
 *   console.error captured. The default: fast, and what most tests need.
 * - {@linkcode runCliProcess} / {@linkcode startCli}: `deno run main.ts` as a new process
 *   (./process.ts), for what only a real process has: signals, the exit status of a process, the
 *   environment, the current directory, stdout as a stream. {@linkcode cliCommand} is its command
 *   line, for a launcher such as mpirun.
 *
 * Each gives a {@linkcode CliRun}.
 *
 * @example
 * ```ts ignore
 * const run = await runCli(["textualize", "--help"]);
 * assert.equal(run.code, 0, run.stderr);
 * const child = startCli(["pretrain", ...args]);
 * child.kill("SIGINT");
 * assert.equal((await child.result()).code, 130);
 * ```
 *
 * @module
 */

import assert from "node:assert/strict";
import { main } from "../../main.ts";
import {
  type ProcessOptions,
  type ProcessRun,
  ROOT,
  runProcess,
  startProcess,
  type TestProcess,
} from "./process.ts";

/** The command line's entry point. */
export const MAIN: string = `${ROOT}main.ts`;

/** The result of one CLI run, in this process or another: its exit status and what it wrote. */
export type CliRun = ProcessRun;

/** Runs `main(args)` in this process, capturing what it prints with console.log/console.error. */
export async function runCli(args: string[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...values: unknown[]) => out.push(values.map(String).join(" "));
  console.error = (...values: unknown[]) => err.push(values.map(String).join(" "));
  try {
    const code = await main(args);
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/**
 * Runs `main(args)` in this process, asserts it exits 0 (naming the command and its stderr), and
 * returns its stdout.
 */
export async function cliOk(args: string[]): Promise<string> {
  const run = await runCli(args);
  assert.equal(run.code, 0, `${args[0]}: ${run.stderr}`);
  return run.stdout;
}

/**
 * The command line that runs the CLI with `args` in a new process, from any current directory
 * (the repository's deno.json named; Deno's own messages quiet).
 */
export function cliCommand(args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", "--quiet", `--config=${ROOT}deno.json`, MAIN, ...args];
}

/** Starts the CLI with `args` as a new process (to signal it, or to read it as it runs). */
export function startCli(args: string[], options?: ProcessOptions): TestProcess {
  return startProcess(cliCommand(args), options);
}

/** Runs the CLI with `args` as a new process to its end. */
export function runCliProcess(args: string[], options?: ProcessOptions): Promise<CliRun> {
  return runProcess(cliCommand(args), options);
}
