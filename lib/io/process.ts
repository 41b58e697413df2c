/**
 * Child processes as a command that runs others sees them: a command line printed so that it can
 * be pasted into a shell ({@linkcode shellWord}), and a child stopped, synchronously, from a
 * signal hook ({@linkcode stopChild}), so that it does not outlive its parent.
 *
 * @module
 */

/**
 * `word` as a POSIX shell reads it back: as it is when it holds only characters no shell
 * interprets, else in single quotes (a single quote inside as `'\''`).
 *
 * @example
 * ```ts
 * shellWord("--out"); // "--out"
 * shellWord("/tmp/my demo"); // "'/tmp/my demo'"
 * shellWord("it's"); // "'it'\\''s'"
 * ```
 */
export function shellWord(word: string): string {
  if (word !== "" && /^[\w@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Whether process `pid` has ended: gone, or a zombie its parent has not reaped (Linux). */
function ended(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // "pid (comm) S ...": the state follows the last ")" (a command name may hold one).
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return true;
  }
}

/** Sleeps `ms` milliseconds, blocking the thread (for a signal hook, which cannot await). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Sends `pid` SIGTERM and waits, blocking, until it has ended (its own handlers remove its
 * temporaries and locks), at most `graceMs`; then SIGKILL. Never throws. Off Linux, without
 * `/proc`, it signals and does not wait.
 *
 * @example
 * ```ts
 * const child = new Deno.Command("sleep", { args: ["60"] }).spawn();
 * stopChild(child.pid); // ended when this returns
 * ```
 */
export function stopChild(pid: number, graceMs = 10_000): void {
  try {
    Deno.kill(pid, "SIGTERM");
  } catch {
    return; // already gone
  }
  if (Deno.build.os !== "linux") return;
  for (let waited = 0; waited < graceMs; waited += 50) {
    if (ended(pid)) return;
    sleepSync(50);
  }
  try {
    Deno.kill(pid, "SIGKILL");
  } catch { /* gone */ }
}
