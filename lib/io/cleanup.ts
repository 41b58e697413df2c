/**
 * Temporaries removed when the process is interrupted (SIGINT, Ctrl-C; SIGTERM, `kill`): every
 * writer that makes a temporary file or directory registers it here while it exists, and a
 * signal removes whatever is registered, runs the registered release hooks (output locks), and
 * exits with 128 + the signal number (130, 143), as the shell expects.
 *
 * The listeners are installed when something is first registered, so a program that registers
 * nothing keeps the default signal behaviour; once installed they stay, and a signal with nothing
 * registered still ends the process with 128 + the signal number, as the default would. (Removing
 * them would lose a signal that arrived while they were installed but was not yet dispatched: one
 * that came during a swap of renames, say, which no listener may interrupt.) A kill -9 cannot be
 * caught: the next run on the same output removes what such a run left (lib/io/safe_output.ts).
 *
 * @module
 */

const temporaries = new Set<string>();
const hooks = new Set<() => void>();
let installed = false;

const SIGNALS: { signal: Deno.Signal; code: number }[] = Deno.build.os === "windows"
  ? [{ signal: "SIGINT", code: 130 }]
  : [{ signal: "SIGINT", code: 130 }, { signal: "SIGTERM", code: 143 }];

const listeners = new Map<Deno.Signal, () => void>();

/** Removes every registered temporary and runs every hook, synchronously; never throws. */
export function cleanUpNow(): void {
  for (const path of temporaries) {
    try {
      Deno.removeSync(path, { recursive: true });
    } catch { /* already gone, or not ours to report now */ }
  }
  temporaries.clear();
  for (const hook of hooks) {
    try {
      hook();
    } catch { /* best effort while exiting */ }
  }
  hooks.clear();
  update();
}

function update(): void {
  const wanted = temporaries.size + hooks.size > 0;
  if (wanted && !installed) {
    for (const { signal, code } of SIGNALS) {
      const listener = () => {
        cleanUpNow();
        Deno.exit(code);
      };
      listeners.set(signal, listener);
      Deno.addSignalListener(signal, listener);
    }
    installed = true;
  }
}

/**
 * Registers `path` (a file or directory) to be removed on SIGINT/SIGTERM; returns the function
 * that unregisters it (call it once the temporary is renamed into place or removed).
 *
 * @example
 * ```ts
 * const tmp = ".out.txt.tmp-1";
 * const forget = removeOnSignal(tmp);
 * try {
 *   await Deno.writeTextFile(tmp, "data");
 *   await Deno.rename(tmp, "out.txt");
 * } finally {
 *   forget();
 * }
 * ```
 */
export function removeOnSignal(path: string): () => void {
  temporaries.add(path);
  update();
  return () => {
    temporaries.delete(path);
    update();
  };
}

/** Registers `hook` to run (synchronously) on SIGINT/SIGTERM; returns its unregister function. */
export function onSignal(hook: () => void): () => void {
  hooks.add(hook);
  update();
  return () => {
    hooks.delete(hook);
    update();
  };
}

/** How many temporaries and hooks are registered (for tests). */
export function registeredCount(): number {
  return temporaries.size + hooks.size;
}
