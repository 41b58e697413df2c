/**
 * Fault injection at named points of the writers, for tests that stop a process at an exact step
 * of an output's replacement instead of by timing luck. With the environment variable
 * `RECSYSLLM_FAULT=POINT:SIGNAL` (for example `swap-aside:SIGKILL`), the process sends itself
 * SIGNAL when it reaches POINT; otherwise {@linkcode faultPoint} does nothing. The points are
 * listed in {@linkcode FAULT_POINTS}.
 *
 * @module
 */

/** Where a replacement can be stopped, in the order a run passes them. */
export const FAULT_POINTS = [
  /** The new output is complete in its temporary; nothing has moved yet. */
  "swap-start",
  /** The old output has been moved aside; the new one is not in place yet. */
  "swap-aside",
  /** The new output is in place; the old one is aside, not yet removed. */
  "swap-in-place",
  /** The old output is being removed (after the swap). */
  "swap-removing-old",
] as const;

/** A named point of {@linkcode FAULT_POINTS}. */
export type FaultPoint = typeof FAULT_POINTS[number];

let wanted: { point: string; signal: Deno.Signal } | null | undefined;

function readWanted(): { point: string; signal: Deno.Signal } | null {
  let value: string | undefined;
  try {
    value = Deno.env.get("RECSYSLLM_FAULT");
  } catch {
    return null; // no permission to read the environment: no faults
  }
  const match = value?.match(/^([a-z-]+):(SIG[A-Z]+)$/);
  return match ? { point: match[1], signal: match[2] as Deno.Signal } : null;
}

/**
 * Sends this process the signal that `RECSYSLLM_FAULT` names when it names `point`. A SIGKILL
 * stops the process here; a caught signal (SIGTERM, SIGINT) is handled at the next turn of the
 * event loop, as a real one arriving here would be.
 *
 * @example
 * ```ts
 * faultPoint("swap-aside"); // nothing happens unless RECSYSLLM_FAULT=swap-aside:SIG...
 * ```
 */
export function faultPoint(point: FaultPoint): void {
  if (wanted === undefined) wanted = readWanted();
  if (wanted?.point === point) Deno.kill(Deno.pid, wanted.signal);
}
