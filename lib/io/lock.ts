/**
 * Exclusive locks on outputs, so two runs never write the same output at once: a lock file next
 * to the output (`.NAME.lock`, beside the directory or file it guards, so it survives the
 * output's atomic replacement) holding the owner's PID, command and start time, and held with an
 * exclusive `flock` on it. The kernel drops a dead process's `flock`, so a lock left by a killed
 * run (kill -9, power loss) is stale by construction: the next run takes it over and says so. A
 * live holder makes the second run fail with a one-line {@linkcode LockedError} naming the PID.
 *
 * @module
 */

import { basename, dirname, join, resolve } from "node:path";
import { InputError } from "../errors.ts";
import { onSignal } from "./cleanup.ts";
import { toIoError } from "./io_error.ts";
import { siblingStem } from "./names.ts";

/** Another live run holds the output. The CLI exits 1. */
export class LockedError extends InputError {
  /** The error's name, as stacks show it. */
  override name = "LockedError";
}

/** What a lock file says about its holder. */
export interface LockOwner {
  /** The holder's process id. */
  pid: number;
  /** The command the holder runs (`pretrain`, ...). */
  command: string;
  /** When the holder took the lock (ISO 8601). */
  started: string;
  /** The machine the holder runs on. */
  hostname: string;
}

/** The lock file that guards `output`. */
export function lockPath(output: string): string {
  const full = resolve(output);
  return join(dirname(full), `.${siblingStem(basename(full) || "root", ".lock".length)}.lock`);
}

function readOwner(path: string): LockOwner | undefined {
  try {
    const owner = JSON.parse(Deno.readTextFileSync(path));
    return typeof owner?.pid === "number" ? owner : undefined;
  } catch {
    return undefined;
  }
}

/** Whether process `pid` is alive on this machine (Linux `/proc`; elsewhere assumed alive). */
function alive(pid: number): boolean {
  if (pid === Deno.pid) return true;
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      try {
        Deno.statSync("/proc/self");
        return false; // /proc works, and the process is not in it
      } catch {
        return true;
      }
    }
    return true;
  }
}

/** Whether `path` still names the file whose information is `held` (not removed or replaced). */
function sameFile(path: string, held: Deno.FileInfo): boolean {
  try {
    const onDisk = Deno.statSync(path);
    return onDisk.ino === null || (onDisk.ino === held.ino && onDisk.dev === held.dev);
  } catch {
    return false;
  }
}

/**
 * A held lock on one output. Release it with {@linkcode OutputLock.release} (also done on
 * SIGINT/SIGTERM); a process that dies without releasing leaves a stale lock the next run takes.
 *
 * @example
 * ```ts
 * const lock = await OutputLock.acquire("runs/lora1", "pretrain");
 * try {
 *   // ... write runs/lora1 ...
 * } finally {
 *   lock.release();
 * }
 * ```
 */
export class OutputLock {
  /** The lock file. */
  readonly path: string;
  /** The previous holder, when this lock took over a stale one (its process had died). */
  readonly tookOverFrom?: LockOwner;
  #file?: Deno.FsFile;
  #forget: () => void;

  private constructor(path: string, file: Deno.FsFile, tookOverFrom?: LockOwner) {
    this.path = path;
    this.#file = file;
    this.tookOverFrom = tookOverFrom;
    this.#forget = onSignal(() => this.release());
  }

  /**
   * Locks `output` for `command`, or throws {@linkcode LockedError} when a live run holds it.
   * The output's parent directory must exist (an IoError otherwise).
   */
  static async acquire(output: string, command: string): Promise<OutputLock> {
    const path = lockPath(output);
    for (let attempt = 0; attempt < 5; attempt++) {
      let file: Deno.FsFile;
      try {
        file = await Deno.open(path, { read: true, write: true, create: true });
      } catch (error) {
        throw toIoError(error, path, "cannot write the lock file");
      }
      let locked: boolean;
      try {
        locked = await file.tryLock(true);
      } catch {
        // No flock on this file system (some network mounts): fall back on the PID alone.
        const owner = readOwner(path);
        locked = owner === undefined || !alive(owner.pid);
      }
      if (!locked) {
        const held = file.statSync();
        file.close();
        // The holder writes its details just after locking: give it a moment to.
        let owner = readOwner(path);
        for (let i = 0; i < 20 && owner === undefined; i++) {
          await new Promise((resolve) => setTimeout(resolve, 5));
          owner = readOwner(path);
        }
        if (owner === undefined && !sameFile(path, held)) continue; // the holder just finished
        const host = owner && owner.hostname !== Deno.hostname() ? ` on ${owner.hostname}` : "";
        const who = owner
          ? `recsysllm ${owner.command} (pid ${owner.pid}${host}, started ${owner.started})`
          : "another recsysllm run";
        // The lock is held by a live process (the kernel drops a dead one's), so the only advice
        // is to wait: removing the lock file would let two runs write one output.
        throw new LockedError(`${output}: in use by ${who}; wait for it to finish`);
      }
      // The holder may have removed the file between our open and our lock: then the lock is on
      // a deleted file, and the name belongs to whoever creates it next. Start again.
      if (!sameFile(path, file.statSync())) {
        file.close();
        continue;
      }
      const previous = readOwner(path);
      const owner: LockOwner = {
        pid: Deno.pid,
        command,
        started: new Date().toISOString(),
        hostname: Deno.hostname(),
      };
      try {
        await file.truncate(0);
        await file.write(new TextEncoder().encode(JSON.stringify(owner) + "\n"));
      } catch (error) {
        // We hold it: the file goes (a disk full would leave an empty lock beside the output).
        try {
          Deno.removeSync(path);
        } catch { /* gone */ }
        file.close();
        throw toIoError(error, path, "cannot write the lock file");
      }
      const stale = previous && previous.pid !== Deno.pid ? previous : undefined;
      return new OutputLock(path, file, stale);
    }
    throw new LockedError(`${output}: its lock ${path} keeps changing; is another run starting?`);
  }

  /** Removes the lock file and drops the lock; safe to call twice. */
  release(): void {
    const file = this.#file;
    if (!file) return;
    this.#file = undefined;
    this.#forget();
    try {
      Deno.removeSync(this.path);
    } catch { /* gone already */ }
    try {
      file.close();
    } catch { /* closed */ }
  }
}
