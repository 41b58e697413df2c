/**
 * Starting another process in tests: the one way tests do it (not a test file itself;
 * tests/test_helpers_test.ts checks that no test file spawns a process itself). The CLI as a
 * process is {@linkcode startCli} / {@linkcode runCliProcess} of ./cli.ts, built on this; other
 * programs (tar, mpirun, a tool script, `deno eval`) come here directly. Both give a
 * {@linkcode ProcessRun}, the shape of an in-process CLI run too.
 *
 * @example
 * ```ts ignore
 * const tar = await runProcess(["tar", "cf", file, "-C", root, "package"]);
 * assert.equal(tar.code, 0, tar.stderr);
 * const child = startProcess([Deno.execPath(), "run", "-A", script]);
 * await child.waitFor("ready");
 * child.kill("SIGINT");
 * assert.equal((await child.status).code, 130);
 * ```
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** The repository root (with a trailing slash). */
export const ROOT: string = fileURLToPath(new URL("../..", import.meta.url));

/** What a run gave: its exit status and everything it wrote. */
export interface ProcessRun {
  /** The exit status (128 + the signal's number for a process a signal ended). */
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of a process started by {@linkcode startProcess} and its kin. */
export interface ProcessOptions {
  /** The process's current directory (default: the repository root). */
  cwd?: string;
  /** Variables added to this process's environment (`NO_COLOR=1` always is). */
  env?: Record<string, string>;
  /** Pass only `env` (and `NO_COLOR`), nothing of this process's environment. */
  clearEnv?: boolean;
  /** Killed when it runs longer than this (a hang fails the test instead of stalling it). */
  timeoutMs?: number;
  /**
   * Close stdout after the first chunk that brings it to this many bytes, as `| head -c N` does
   * (the process's later writes meet a closed pipe).
   */
  stdoutBytes?: number;
}

/**
 * A process a test started: its stdout and stderr are read as they come (so a chatty process
 * never blocks on a full pipe) and given whole by {@linkcode TestProcess.result}.
 */
export class TestProcess {
  readonly #child: Deno.ChildProcess;
  readonly #text = { stdout: "", stderr: "" };
  readonly #read: Promise<void>;
  #ended = false;

  constructor(command: string[], options: ProcessOptions = {}) {
    this.#child = new Deno.Command(command[0], {
      args: command.slice(1),
      cwd: options.cwd ?? ROOT,
      env: { NO_COLOR: "1", ...options.env },
      clearEnv: options.clearEnv,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: options.timeoutMs === undefined ? undefined : AbortSignal.timeout(options.timeoutMs),
    }).spawn();
    this.#read = Promise.all([
      this.#collect(this.#child.stdout, "stdout", options.stdoutBytes),
      this.#collect(this.#child.stderr, "stderr"),
    ]).then(() => {});
    this.#child.status.finally(() => this.#ended = true);
  }

  async #collect(
    stream: ReadableStream<Uint8Array>,
    into: "stdout" | "stderr",
    limit = Infinity,
  ): Promise<void> {
    const decoder = new TextDecoder();
    let bytes = 0;
    for await (const chunk of stream) {
      this.#text[into] += decoder.decode(chunk, { stream: true });
      bytes += chunk.length;
      if (bytes >= limit) break; // leaving the loop cancels the stream: the pipe closes
    }
    this.#text[into] += decoder.decode();
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /**
   * How the process ended (its code, or the signal that ended it), once it has and everything it
   * wrote is read.
   */
  get status(): Promise<Deno.CommandStatus> {
    return this.#read.then(() => this.#child.status);
  }

  /** Sends `signal` (default SIGTERM) to the process. */
  kill(signal?: Deno.Signal): void {
    this.#child.kill(signal);
  }

  /** Waits until the process has written `text` to `stream`; throws if it ends before. */
  async waitFor(text: string, stream: "stdout" | "stderr" = "stdout"): Promise<void> {
    while (!this.#text[stream].includes(text)) {
      if (this.#ended) {
        await this.#read;
        if (this.#text[stream].includes(text)) return;
        throw new Error(
          `the process ended without writing "${text}" to ${stream}:\n` +
            this.#text.stderr,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Waits for the end: the exit code and everything it wrote. */
  async result(): Promise<ProcessRun> {
    const { code } = await this.status;
    return { code, ...this.#text };
  }
}

/** Starts `command` (a program and its arguments) as a new process. */
export function startProcess(command: string[], options?: ProcessOptions): TestProcess {
  return new TestProcess(command, options);
}

/**
 * Runs `command` (a program and its arguments) as a new process to its end; rejects (with
 * `Deno.errors.NotFound`) when there is no such program.
 */
export async function runProcess(command: string[], options?: ProcessOptions): Promise<ProcessRun> {
  return await startProcess(command, options).result();
}
