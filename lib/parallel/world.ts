/**
 * Whether this process is one rank of several, read from the variables the launchers set, before
 * any MPI library is loaded: `mpirun` of Open MPI (`OMPI_COMM_WORLD_SIZE`, `_RANK`, `_LOCAL_RANK`;
 * also what the Kubernetes MPI Operator's MPIJob runs), MPICH's and Intel MPI's Hydra
 * (`PMI_SIZE`, `PMI_RANK`, `MPI_LOCALRANKID`), MVAPICH's `mpirun_rsh` (`MV2_COMM_WORLD_SIZE`,
 * `_RANK`, `_LOCAL_RANK`), Slurm's `srun --mpi=pmix` or `--mpi=pmi2`
 * (`PMIX_RANK` or `PMI_RANK`, with `SLURM_STEP_NUM_TASKS`, `SLURM_LOCALID`). A process none of
 * them started, or started as a world of one, is not distributed: nothing is loaded.
 *
 * @module
 */

/** What the environment says of the ranks. */
export interface WorldEnv {
  /** Ranks, when the launcher says (PMIx alone does not). */
  size?: number;
  /** This process's rank (0-based). */
  rank: number;
  /** This rank's index on its machine; undefined when no variable says. */
  localRank?: number;
  /** The launcher, as its variables tell: `Open MPI`, `MVAPICH`, `PMI`, `PMIx`. */
  launcher: "Open MPI" | "MVAPICH" | "PMI" | "PMIx";
}

function int(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value.trim());
}

/**
 * The tasks of this Slurm job step: `SLURM_STEP_NUM_TASKS`, which srun always sets for the step,
 * else `SLURM_NTASKS` (which `srun --preserve-env` leaves at the allocation's count).
 */
function slurmStepTasks(env: (name: string) => string | undefined): number | undefined {
  return int(env("SLURM_STEP_NUM_TASKS")) ?? int(env("SLURM_NTASKS"));
}

/**
 * The world the launcher describes in `env`, or undefined when this process runs alone (no
 * launcher's variables, or a world of one).
 *
 * @example
 * ```ts
 * const env = { OMPI_COMM_WORLD_SIZE: "2", OMPI_COMM_WORLD_RANK: "1", OMPI_COMM_WORLD_LOCAL_RANK: "1" };
 * worldFromEnv((name) => env[name as keyof typeof env]);
 * // { size: 2, rank: 1, localRank: 1, launcher: "Open MPI" }
 * worldFromEnv(() => undefined); // undefined
 * ```
 */
export function worldFromEnv(env: (name: string) => string | undefined): WorldEnv | undefined {
  const slurmLocal = int(env("SLURM_LOCALID"));
  let world: WorldEnv | undefined;
  const ompiRank = int(env("OMPI_COMM_WORLD_RANK"));
  if (ompiRank !== undefined) {
    world = {
      size: int(env("OMPI_COMM_WORLD_SIZE")),
      rank: ompiRank,
      localRank: int(env("OMPI_COMM_WORLD_LOCAL_RANK")),
      launcher: "Open MPI",
    };
  } else if (int(env("MV2_COMM_WORLD_RANK")) !== undefined) {
    world = {
      size: int(env("MV2_COMM_WORLD_SIZE")),
      rank: int(env("MV2_COMM_WORLD_RANK"))!,
      localRank: int(env("MV2_COMM_WORLD_LOCAL_RANK")) ?? slurmLocal,
      launcher: "MVAPICH",
    };
  } else if (int(env("PMI_RANK")) !== undefined) {
    world = {
      size: int(env("PMI_SIZE")) ?? slurmStepTasks(env),
      rank: int(env("PMI_RANK"))!,
      localRank: int(env("MPI_LOCALRANKID")) ?? int(env("PMI_LOCAL_RANK")) ?? slurmLocal,
      launcher: "PMI",
    };
  } else if (int(env("PMIX_RANK")) !== undefined) {
    world = {
      size: slurmStepTasks(env),
      rank: int(env("PMIX_RANK"))!,
      localRank: slurmLocal,
      launcher: "PMIx",
    };
  }
  if (!world || world.size === 1) return undefined;
  return world;
}

/**
 * The CUDA device a rank takes: its local rank, modulo the devices `CUDA_VISIBLE_DEVICES` lists
 * when it is set (a scheduler that gives each task its own GPU lists one: device 0).
 *
 * @example
 * ```ts
 * cudaDeviceOf(3, undefined); // 3
 * cudaDeviceOf(3, "0,1"); // 1
 * cudaDeviceOf(3, "5"); // 0
 * ```
 */
export function cudaDeviceOf(localRank: number, visible: string | undefined): number {
  const listed = visible?.split(",").filter((d) => d.trim() !== "").length ?? 0;
  return listed > 0 ? localRank % listed : localRank;
}
