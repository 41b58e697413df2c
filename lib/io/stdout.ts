/**
 * Writing to standard output with faults that say so: a full disk behind `> file`, or a device
 * that refuses (`> /dev/full`), is an IoError naming `stdout`, not a bare "no space left". A reader
 * that closed the pipe (`| head`) stays `Deno.errors.BrokenPipe`, which the commands end quietly on.
 *
 * @module
 */

import { toIoError } from "./io_error.ts";

/** `error` as the fault of a write to stdout: an IoError naming it, or a closed pipe as it is. */
export function stdoutFault(error: unknown): unknown {
  if (error instanceof Deno.errors.BrokenPipe) return error;
  return toIoError(error, "stdout", "cannot write");
}

/**
 * Writes all of `bytes` to stdout (a write may take only part of them).
 *
 * @example
 * ```ts
 * await writeStdout(new TextEncoder().encode("{}\n"));
 * ```
 */
export async function writeStdout(bytes: Uint8Array): Promise<void> {
  try {
    let written = 0;
    while (written < bytes.length) written += await Deno.stdout.write(bytes.subarray(written));
  } catch (error) {
    throw stdoutFault(error);
  }
}
