/**
 * MPI through Deno's FFI: the handful of calls a data-parallel run needs (`MPI_Init`,
 * `MPI_Comm_rank`, `MPI_Comm_size`, `MPI_Allreduce`, `MPI_Bcast`, `MPI_Finalize`, `MPI_Abort`),
 * no compiled addon. Two binary interfaces exist and both are handled:
 *
 * - Open MPI: a handle (`MPI_COMM_WORLD`, `MPI_FLOAT`, `MPI_SUM`) is the address of an exported
 *   global (`ompi_mpi_comm_world`, `ompi_mpi_float`, `ompi_mpi_op_sum`); `MPI_IN_PLACE` is 1.
 * - MPICH and the MPIs that share its ABI (Intel MPI, MVAPICH, Cray MPICH): handles are `int`
 *   constants of `mpi.h` (`MPI_COMM_WORLD` 0x44000000, `MPI_FLOAT` 0x4c00040a, `MPI_SUM`
 *   0x58000003, ...); `MPI_IN_PLACE` is -1.
 *
 * Which one a library is follows from its exported symbols (Open MPI's globals or not). The
 * library is `RECSYSLLM_MPI_LIB` when set, else the first of the usual sonames the loader finds
 * (`libmpi.so.40` for Open MPI, `libmpi.so.12` and `libmpich.so.12` for MPICH, then `libmpi.so`),
 * MPICH's first when Hydra's PMI variables started the process (its ranks would each be a world
 * of one in Open MPI's library).
 *
 * @module
 */

import { InputError } from "../errors.ts";
import type { Collective } from "./collective.ts";
import type { WorldEnv } from "./world.ts";

/** MPI could not be loaded or started: bad environment, exit status 1. */
export class MpiError extends InputError {
  /** The error's name, as stacks show it. */
  override name = "MpiError";
}

/** The sonames tried, in order, when `RECSYSLLM_MPI_LIB` is not set (see {@linkcode sonamesFor}). */
export const MPI_SONAMES = [
  "libmpi.so.40",
  "libmpi.so.12",
  "libmpich.so.12",
  "libmpi.so",
  "libmpich.so",
] as const;

/**
 * The sonames to try for a launch by `launcher`: Open MPI's first, except under Hydra's PMI
 * (MPICH, Intel MPI) and MVAPICH's launcher, whose libraries have MPICH's ABI.
 *
 * @example
 * ```ts
 * sonamesFor("PMI")[0]; // "libmpi.so.12"
 * sonamesFor("Open MPI")[0]; // "libmpi.so.40"
 * ```
 */
export function sonamesFor(launcher: WorldEnv["launcher"]): string[] {
  return launcher === "PMI" || launcher === "MVAPICH"
    ? ["libmpi.so.12", "libmpich.so.12", "libmpi.so.40", "libmpi.so", "libmpich.so"]
    : [...MPI_SONAMES];
}

/** MPICH's ABI: the handles are these `int` constants of its `mpi.h`. */
const MPICH = {
  comm: 0x44000000,
  float: 0x4c00040a,
  double: 0x4c00080b,
  byte: 0x4c00010d,
  sum: 0x58000003,
} as const;

/** Open MPI: the handles are the addresses of these exported globals. */
const OMPI = {
  comm: "ompi_mpi_comm_world",
  float: "ompi_mpi_float",
  double: "ompi_mpi_double",
  byte: "ompi_mpi_byte",
  sum: "ompi_mpi_op_sum",
} as const;

type Flavor = "Open MPI" | "MPICH";
type Handle = Deno.PointerValue | number;

function functions(handle: "pointer" | "i32") {
  return {
    MPI_Init: { parameters: ["pointer", "pointer"], result: "i32" },
    MPI_Initialized: { parameters: ["buffer"], result: "i32" },
    MPI_Comm_rank: { parameters: [handle, "buffer"], result: "i32" },
    MPI_Comm_size: { parameters: [handle, "buffer"], result: "i32" },
    MPI_Allreduce: {
      parameters: ["pointer", "buffer", "i32", handle, handle, handle],
      result: "i32",
    },
    MPI_Bcast: { parameters: ["buffer", "i32", handle, "i32", handle], result: "i32" },
    MPI_Finalize: { parameters: [], result: "i32" },
    MPI_Abort: { parameters: [handle, "i32"], result: "i32" },
  } as const;
}

// deno-lint-ignore no-explicit-any
type Symbols = Record<string, (...args: any[]) => any>;

/** Largest element count of one call (MPI counts are C ints). */
const CHUNK = 1 << 27;

/** One rank of an MPI world (`MPI_COMM_WORLD`). */
class MpiWorld implements Collective {
  readonly rank: number;
  readonly size: number;
  readonly localRank: number;
  readonly name: Flavor;
  readonly #lib: Deno.DynamicLibrary<Deno.ForeignLibraryInterface>;
  readonly #fn: Symbols;
  readonly #h: { comm: Handle; float: Handle; double: Handle; byte: Handle; sum: Handle };
  readonly #inPlace: Deno.PointerValue;
  #closed = false;

  constructor(path: string, flavor: Flavor, env: WorldEnv) {
    const handle = flavor === "Open MPI" ? "pointer" : "i32";
    const statics = flavor === "Open MPI"
      ? Object.fromEntries(Object.values(OMPI).map((s) => [s, { type: "pointer" } as const]))
      : {};
    this.#lib = Deno.dlopen(path, { ...functions(handle), ...statics });
    this.#fn = this.#lib.symbols as unknown as Symbols;
    const s = this.#lib.symbols as unknown as Record<string, Deno.PointerValue>;
    this.#h = flavor === "Open MPI"
      ? {
        comm: s[OMPI.comm],
        float: s[OMPI.float],
        double: s[OMPI.double],
        byte: s[OMPI.byte],
        sum: s[OMPI.sum],
      }
      : { ...MPICH };
    this.#inPlace = Deno.UnsafePointer.create(flavor === "Open MPI" ? 1n : 0xffffffffffffffffn);
    this.name = flavor;
    const initialized = new Int32Array(1);
    this.#check("MPI_Initialized", this.#fn.MPI_Initialized(initialized));
    if (!initialized[0]) this.#check("MPI_Init", this.#fn.MPI_Init(null, null));
    const out = new Int32Array(1);
    this.#check("MPI_Comm_rank", this.#fn.MPI_Comm_rank(this.#h.comm, out));
    this.rank = out[0];
    this.#check("MPI_Comm_size", this.#fn.MPI_Comm_size(this.#h.comm, out));
    this.size = out[0];
    if (env.size !== undefined && env.size !== this.size) {
      throw new MpiError(
        `the launcher started ${env.size} ranks (${env.launcher}) but ${path} sees a world of ` +
          `${this.size}: launch with the MPI this library belongs to (srun: --mpi=pmix)`,
      );
    }
    this.localRank = env.localRank ?? 0;
  }

  #check(call: string, code: number): void {
    if (code !== 0) throw new MpiError(`rank ${this.rank ?? "?"}: ${call} failed (error ${code})`);
  }

  allreduceSum(data: Float32Array | Float64Array): Promise<void> {
    const type = data instanceof Float32Array ? this.#h.float : this.#h.double;
    for (let at = 0; at < data.length; at += CHUNK) {
      const part = data.subarray(at, Math.min(data.length, at + CHUNK));
      this.#check(
        "MPI_Allreduce",
        this.#fn.MPI_Allreduce(this.#inPlace, part, part.length, type, this.#h.sum, this.#h.comm),
      );
    }
    return Promise.resolve();
  }

  broadcast(data: Uint8Array, root: number): Promise<void> {
    for (let at = 0; at < data.length; at += CHUNK) {
      const part = data.subarray(at, Math.min(data.length, at + CHUNK));
      this.#check(
        "MPI_Bcast",
        this.#fn.MPI_Bcast(part, part.length, this.#h.byte, root, this.#h.comm),
      );
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#fn.MPI_Finalize();
    }
    return Promise.resolve();
  }

  abort(status: number): Promise<void> {
    // MPI_Abort does not return where the launcher ends the job; where it does, exit anyway.
    if (!this.#closed) this.#fn.MPI_Abort(this.#h.comm, status);
    return Promise.resolve();
  }
}

/** Which ABI the MPI library at `path` has; throws when it does not load or is not MPI. */
function flavorOf(path: string): Flavor {
  const lib = Deno.dlopen(path, {
    MPI_Init: { parameters: ["pointer", "pointer"], result: "i32" },
  });
  lib.close();
  try {
    Deno.dlopen(path, { [OMPI.comm]: { type: "pointer" } }).close();
    return "Open MPI";
  } catch {
    return "MPICH";
  }
}

function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split("\n")[0];
}

/**
 * Starts MPI for the world `env` describes: loads the library (`library`, else
 * {@linkcode sonamesFor} the launcher, in order), calls `MPI_Init` and checks that MPI sees the world the
 * launcher announced. Throws {@linkcode MpiError} saying what was tried.
 *
 * @example
 * ```ts
 * import { worldFromEnv } from "./world.ts";
 * const env = worldFromEnv((name) => Deno.env.get(name));
 * const world = env ? openMpi(env, Deno.env.get("RECSYSLLM_MPI_LIB")) : undefined;
 * ```
 */
export function openMpi(env: WorldEnv, library?: string): Collective {
  const candidates = library ? [library] : sonamesFor(env.launcher);
  const problems: string[] = [];
  for (const path of candidates) {
    let flavor: Flavor;
    try {
      flavor = flavorOf(path);
    } catch (error) {
      problems.push(`${path}: ${firstLine(error)}`);
      continue;
    }
    return new MpiWorld(path, flavor, env);
  }
  throw new MpiError(
    `this process is rank ${env.rank} of an MPI launch (${env.launcher}) but no MPI library ` +
      `loads (${problems.join("; ")}): install the MPI that launched it, or set ` +
      `RECSYSLLM_MPI_LIB to its libmpi`,
  );
}
