/**
 * Running the command line in-process for tests (not a test file itself): `main(args)` from
 * main.ts with what it prints through console.log / console.error captured.
 *
 * @module
 */

import { main } from "../../main.ts";

/** The result of one in-process CLI run. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

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
