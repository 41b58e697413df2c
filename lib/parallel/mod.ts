/**
 * Data-parallel runs: the world from the launcher's environment (`world.ts`), MPI through FFI
 * (`mpi.ts`), ranks in one process for tests (`local.ts`), and the collectives and failure
 * agreement built on them (`collective.ts`).
 *
 * @module
 */

import { leavingWith, ReportedElsewhere } from "../errors.ts";
import { type Collective, isAgreed } from "./collective.ts";
import { MpiError, openMpi } from "./mpi.ts";
import { worldFromEnv } from "./world.ts";

export * from "./collective.ts";
export { InputError, UsageError } from "../errors.ts";
export { localGroup } from "./local.ts";
export { MPI_SONAMES, MpiError, openMpi, sonamesFor } from "./mpi.ts";
export { cudaDeviceOf, type WorldEnv, worldFromEnv } from "./world.ts";

/**
 * The world this process belongs to: undefined when no MPI launcher started it (or started it
 * alone), so nothing is loaded; else MPI started from the library `RECSYSLLM_MPI_LIB` names or
 * the loader finds. Throws {@linkcode MpiError} when MPI does not load, and when `srun` started
 * several tasks without an MPI plugin (they would be independent runs into one directory).
 *
 * @example
 * ```ts
 * const world = openWorld();
 * if (world) console.error(`rank ${world.rank} of ${world.size}`);
 * await world?.close();
 * ```
 */
export function openWorld(
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): Collective | undefined {
  const described = worldFromEnv(env);
  if (!described) {
    // srun started several tasks of one step without an MPI plugin: each would train alone,
    // all of them into the same run directory.
    const tasks = Number(env("SLURM_STEP_NUM_TASKS") ?? 1);
    if (tasks > 1) {
      throw new MpiError(
        `srun started ${tasks} tasks without an MPI plugin (no PMIX_RANK or PMI_RANK): each ` +
          `would train alone; launch with srun --mpi=pmix (or one task)`,
      );
    }
    return undefined;
  }
  return openMpi(described, env("RECSYSLLM_MPI_LIB"));
}

/**
 * Runs `work` as this process's rank of the launcher's world (undefined when there is none, or a
 * world of one), then closes the world. Every rank ends with the failure the ranks agreed on; a
 * rank other than 0 throws it as {@linkcode ReportedElsewhere}, so that rank 0 alone prints it.
 *
 * @example
 * ```ts
 * await asRank(async (world) => console.error(world ? `rank ${world.rank}` : "alone"));
 * ```
 */
export function asRank<T>(work: (world: Collective | undefined) => Promise<T>): Promise<T> {
  // Under an MPI launcher: this process is one rank (nothing is loaded otherwise).
  return runAsRank(openWorld(), work);
}

/**
 * {@linkcode asRank} in `world`. The world closes when `work` succeeds. When it fails, the error
 * says how the rank leaves once the command line has reported it (`afterReport` in
 * lib/errors.ts runs it; a library caller runs it too, or the world stays open):
 *
 * - a failure the ranks agreed on (raised by `together`): every rank meets rank 0 once more and
 *   closes the world, so no rank exits (and makes the launcher stop the job) before rank 0 has
 *   printed the failure;
 * - a failure of this rank alone: the others wait for it in their next collective, where
 *   MPI_Finalize would hang the job with no message; the rank ends the whole job instead
 *   (`MPI_Abort` with the exit status), which stops the others under any launcher.
 */
export async function runAsRank<T>(
  world: Collective | undefined,
  work: (world: Collective | undefined) => Promise<T>,
): Promise<T> {
  const ranks = world && world.size > 1 ? world : undefined;
  let result: T;
  try {
    result = await work(ranks);
  } catch (error) {
    if (!ranks) {
      await world?.close();
      throw error;
    }
    if (isAgreed(error)) {
      const leave = async () => {
        await ranks.broadcast(new Uint8Array(1), 0);
        await ranks.close();
      };
      throw leavingWith(ranks.rank === 0 ? error as Error : new ReportedElsewhere(error), leave);
    }
    const own = error instanceof Error ? error : new Error(String(error));
    throw leavingWith(own, (status) => ranks.abort(status));
  }
  await world?.close();
  return result;
}
