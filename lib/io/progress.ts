/**
 * Progress on stderr for long work: on a terminal one line redrawn in place (at most ten times a
 * second); otherwise (a pipe, a CI log) a plain line every few seconds, so logs stay readable.
 * Results never go here: they go to stdout or files.
 *
 * A phase that reports nothing new still shows it is alive: once a reporter has a message, it
 * writes its latest one again (with the time) whenever nothing was written for the plain interval
 * (5 s), until `done` or {@linkcode Progress.stopAll} (which the command line calls at the end of
 * every command). Work that blocks the event loop (a synchronous loop) cannot tick: such phases
 * report as they go.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Options of {@linkcode Progress}. */
export interface ProgressOptions {
  /** Seconds between plain lines when stderr is not a terminal. Default 5. */
  plainEverySeconds?: number;
  /** Write nothing at all (for tests and `--quiet`). Default false. */
  quiet?: boolean;
  /** Force terminal (true) or plain (false) mode instead of detecting it. */
  terminal?: boolean;
}

/**
 * A progress reporter for one task.
 *
 * @example
 * ```ts
 * const n = 1000;
 * const progress = new Progress("textualize");
 * for (let i = 0; i < n; i++) progress.update(`${i + 1}/${n} users`);
 * progress.done(`${n} users`);
 * ```
 */
export class Progress {
  static readonly #live = new Set<Progress>();
  /** The reporter whose redrawn line is on the terminal, not ended by a line break. */
  static #onScreen: Progress | undefined;
  readonly #label: string;
  readonly #terminal: boolean;
  readonly #quiet: boolean;
  readonly #plainEveryMs: number;
  readonly #start = performance.now();
  #last = -Infinity;
  #drawn = false;
  /** The latest message given to `update`, written or not. */
  #message: string | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Stops every reporter's heartbeat (the end of a command, whatever way it ended). */
  static stopAll(): void {
    for (const progress of Progress.#live) progress.#stop();
  }

  /**
   * Prints `line` on stderr on a line of its own (an error, a warning), first clearing a
   * progress line redrawn on the terminal, which it would otherwise be glued onto.
   *
   * @example
   * ```ts
   * Progress.say("warning: 12 entities cut to 200 characters");
   * ```
   */
  static say(line: string): void {
    const shown = Progress.#onScreen;
    if (shown !== undefined && shown.#drawn) Deno.stderr.writeSync(encoder.encode("\r\x1b[2K"));
    if (shown !== undefined) shown.#drawn = false;
    Progress.#onScreen = undefined;
    console.error(line);
  }

  /** A reporter labelled `label` (the label starts every line it prints). */
  constructor(label: string, options: ProgressOptions = {}) {
    this.#label = label;
    this.#quiet = options.quiet ?? false;
    this.#terminal = options.terminal ?? Deno.stderr.isTerminal();
    this.#plainEveryMs = (options.plainEverySeconds ?? 5) * 1000;
  }

  /** Seconds since the reporter was created. */
  get elapsedSeconds(): number {
    return (performance.now() - this.#start) / 1000;
  }

  /** Reports the current state; cheap to call often (it throttles itself). */
  update(message: string): void {
    if (this.#quiet) return;
    this.#message = message;
    this.#beat();
    const now = performance.now();
    if (now - this.#last < (this.#terminal ? 100 : this.#plainEveryMs)) return;
    this.#last = now;
    this.#write(message);
  }

  /** Reports the final state once, unthrottled, and ends the redrawn line. */
  done(message: string): void {
    this.#stop();
    if (this.#quiet) return;
    this.#write(message);
    if (this.#terminal) Deno.stderr.writeSync(encoder.encode("\n"));
    this.#drawn = false;
  }

  /** Prints a line of its own (a warning, a note) without breaking the redrawn line. */
  log(message: string): void {
    if (this.#quiet) return;
    const clear = this.#terminal && this.#drawn ? "\r\x1b[2K" : "";
    Deno.stderr.writeSync(encoder.encode(`${clear}${this.#label}: ${message}\n`));
    this.#drawn = false;
  }

  /** Starts the heartbeat: the latest message again once nothing was written for a while. */
  #beat(): void {
    if (this.#timer !== undefined) return;
    Progress.#live.add(this);
    const every = this.#terminal ? 1000 : this.#plainEveryMs;
    const timer = setInterval(() => {
      const now = performance.now();
      if (this.#message === undefined || now - this.#last < every) return;
      this.#last = now;
      this.#write(this.#message);
    }, Math.min(1000, every));
    Deno.unrefTimer(timer); // never what keeps the process alive
    this.#timer = timer;
  }

  #stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    Progress.#live.delete(this);
  }

  #write(message: string): void {
    const line = `${this.#label}: ${message} [${formatSeconds(this.elapsedSeconds)}]`;
    if (this.#terminal) {
      Deno.stderr.writeSync(encoder.encode(`\r\x1b[2K${line}`));
      this.#drawn = true;
      Progress.#onScreen = this;
    } else {
      Deno.stderr.writeSync(encoder.encode(`${line}\n`));
    }
  }
}

/** `73.4` -> `1m13s`; `5.2` -> `5.2s`. */
export function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const m = Math.floor(seconds / 60);
  const s = Math.floor(seconds % 60);
  return m < 60
    ? `${m}m${String(s).padStart(2, "0")}s`
    : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}
