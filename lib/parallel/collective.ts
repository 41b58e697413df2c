/**
 * The collectives a data-parallel run needs, behind one narrow interface ({@linkcode Collective}:
 * sum over the ranks, broadcast from one rank), and what is built on them: variable-length and
 * JSON broadcasts, the disjoint share of a global batch each rank takes, and
 * {@linkcode together}, which turns a failure of any rank into the same one-line error on every
 * rank (instead of the others waiting forever in the next collective).
 *
 * Two implementations: MPI through FFI (`mpi.ts`, what `mpirun`, `srun` and an MPIJob start) and
 * ranks inside one process (`local.ts`, for tests).
 *
 * @module
 */

import { InputError, OptionError, UsageError, worded, wordingOf } from "../errors.ts";
import { toIoError } from "../io/io_error.ts";

/** The ranks of a data-parallel run, as one rank sees them. */
export interface Collective {
  /** This rank, 0-based. */
  readonly rank: number;
  /** Ranks in the run. */
  readonly size: number;
  /** This rank's index among the ranks of its machine (which GPU it takes). */
  readonly localRank: number;
  /** What connects the ranks, for messages (`Open MPI`, `MPICH`, `in-process`). */
  readonly name: string;
  /**
   * Replaces `data` on every rank by its sum over the ranks (elementwise; every rank ends with
   * the same values). Every rank must call it with the same length at the same point.
   */
  allreduceSum(data: Float32Array | Float64Array): Promise<void>;
  /** Copies rank `root`'s `data` into every rank's `data` (the same length on every rank). */
  broadcast(data: Uint8Array, root: number): Promise<void>;
  /** Ends this rank's part in the collectives (MPI_Finalize). */
  close(): Promise<void>;
  /**
   * Ends every rank of the run, with exit status `status` (MPI_Abort): for a failure of this
   * rank alone, which the others would wait for in their next collective.
   */
  abort(status: number): Promise<void>;
}

/**
 * The rows `[start, end)` of a global batch of `batchSize` examples that `rank` of `size` takes:
 * contiguous, disjoint, covering the batch, sizes differing by at most one.
 *
 * @example
 * ```ts
 * shareOf(8, 0, 3); // [0, 2]
 * shareOf(8, 1, 3); // [2, 5]
 * shareOf(8, 2, 3); // [5, 8]
 * ```
 */
export function shareOf(batchSize: number, rank: number, size: number): [number, number] {
  return [Math.floor((rank * batchSize) / size), Math.floor(((rank + 1) * batchSize) / size)];
}

/** Rank `root`'s bytes on every rank, whatever their length (`data` is read on `root` only). */
export async function broadcastBytes(
  world: Collective,
  data: Uint8Array | undefined,
  root: number,
): Promise<Uint8Array> {
  const length = new Float64Array([world.rank === root ? data!.length : 0]);
  await world.broadcast(new Uint8Array(length.buffer), root);
  const out = world.rank === root ? data!.slice() : new Uint8Array(length[0]);
  await world.broadcast(out, root);
  return out;
}

/** Rank `root`'s JSON value on every rank (`value` is read on `root` only). */
export async function broadcastJson<T>(
  world: Collective,
  value: T | undefined,
  root: number,
): Promise<T> {
  const bytes = world.rank === root ? new TextEncoder().encode(JSON.stringify(value)) : undefined;
  return JSON.parse(new TextDecoder().decode(await broadcastBytes(world, bytes, root)));
}

/** Copies rank `root`'s arrays into every rank's arrays of the same lengths, in place. */
export async function broadcastFloats(
  world: Collective,
  arrays: readonly Float32Array[],
  root: number,
): Promise<void> {
  for (const array of arrays) {
    await world.broadcast(new Uint8Array(array.buffer, array.byteOffset, array.byteLength), root);
  }
}

/** What a failing rank tells the others: enough to raise the same kind of error there. */
interface Failure {
  kind: "option" | "usage" | "input" | "internal";
  /**
   * The message; with `option` (a message that names library options), NUL where the option's
   * name goes and SOH NAME STX where another option's.
   */
  message: string;
  option?: string;
}

function describe(raised: unknown): Failure {
  // A file-system fault (a full disk, a directory where a file belongs) is bad input, as main
  // words it for one process, not a bug.
  const error = toIoError(raised);
  if (error instanceof OptionError) {
    return { kind: "option", message: error.describe("\u0000", marked), option: error.option };
  }
  const wording = wordingOf(error);
  const named = wording
    ? { message: wording.describe("\u0000", marked), option: wording.option }
    : { message: (error as Error)?.message };
  if (error instanceof UsageError) return { kind: "usage", ...named };
  if (error instanceof InputError) return { kind: "input", ...named };
  const e = error as Error;
  return { kind: "internal", message: e?.stack ?? String(error) };
}

/**
 * A failure of one rank of a distributed run, as every rank raises it: the message names the
 * rank (`rank 1: data/train.jsonl: no such file`). Bad input: exit status 1.
 */
export class RankFailed extends InputError {
  /** The error's name, as stacks show it. */
  override name = "RankFailed";
  /**
   * The error, with the rank it names.
   *
   * @param rank the lowest rank that failed
   * @param message the one-line message, starting `rank N: `
   */
  constructor(readonly rank: number, message: string) {
    super(message);
  }
}

/** A usage mistake of one rank (exit status 2), named as {@linkcode RankFailed} names it. */
export class RankUsageFailed extends UsageError {
  /** The error's name, as stacks show it. */
  override name = "RankUsageFailed";
  /**
   * The error, with the rank it names.
   *
   * @param rank the lowest rank that failed
   * @param message the one-line message, starting `rank N: `
   */
  constructor(readonly rank: number, message: string) {
    super(message);
  }
}

/** A bug that ended one rank (exit status 70), with that rank's stack in the message. */
export class RankCrashed extends Error {
  /** The error's name, as stacks show it. */
  override name = "RankCrashed";
  /**
   * The error, with the rank it names.
   *
   * @param rank the rank that crashed
   * @param message the one-line message, starting `rank N: `
   */
  constructor(readonly rank: number, message: string) {
    super(message);
  }
}

/** The errors {@linkcode together} raised (see {@linkcode isAgreed}). */
const agreed = new WeakSet<Error>();

function raise(rank: number, failure: Failure): Error {
  const error = make(rank, failure);
  agreed.add(error);
  return error;
}

/** Another option's name in a message sent to the other ranks. */
const marked = (option: string) => `\u0001${option}\u0002`;

/** The message of `failure` with the option named `name` and the others as `nameOf` says. */
function reword(failure: Failure, prefix: string) {
  return (name: string, nameOf: (option: string) => string) => {
    let text = failure.message.replaceAll("\u0000", name);
    for (let at = text.indexOf("\u0001"); at >= 0; at = text.indexOf("\u0001")) {
      const end = text.indexOf("\u0002", at);
      text = text.slice(0, at) + nameOf(text.slice(at + 1, end)) + text.slice(end + 1);
    }
    return prefix + text;
  };
}

function make(rank: number, failure: Failure): Error {
  const prefix = `rank ${rank}: `;
  const option = failure.option;
  switch (failure.kind) {
    case "option": {
      const error = new OptionError(option!, reword(failure, prefix));
      return Object.assign(error, { rank });
    }
    case "usage": {
      const error = new RankUsageFailed(rank, prefix + failure.message);
      return option === undefined ? error : worded(error, option, reword(failure, prefix));
    }
    case "input": {
      const error = new RankFailed(rank, prefix + failure.message);
      return option === undefined ? error : worded(error, option, reword(failure, prefix));
    }
    default:
      return new RankCrashed(rank, prefix + failure.message);
  }
}

/**
 * Runs `work` on every rank, then agrees on the outcome: when it threw on any rank, every rank
 * throws the error of the lowest rank that failed, its message prefixed with `rank N: ` (an
 * `OptionError` stays one, so the command still words it with its flag; usage mistakes stay
 * usage mistakes). `work` must not itself call collectives unless every rank surely reaches them.
 * Without a world (or with one rank) it is `work()`.
 *
 * @example
 * ```ts
 * declare const world: Collective;
 * const value = await together(world, async () => 42);
 * ```
 */
export async function together<T>(
  world: Collective | undefined,
  work: () => Promise<T> | T,
): Promise<T> {
  if (!world || world.size === 1) return await work();
  let result: T | undefined;
  let failure: unknown;
  let failed = false;
  try {
    result = await work();
  } catch (error) {
    failure = error;
    failed = true;
  }
  const flags = new Float64Array(world.size);
  if (failed) flags[world.rank] = 1;
  await world.allreduceSum(flags);
  const first = flags.findIndex((f) => f !== 0);
  if (first < 0) return result as T;
  const told = await broadcastJson<Failure>(
    world,
    world.rank === first ? describe(failure) : undefined,
    first,
  );
  throw raise(first, told);
}

/**
 * A 32-bit FNV-1a hash of `arrays`' bytes, as 8 hex digits: a cheap check that the ranks hold the
 * same tensors (not a cryptographic digest).
 */
export function hashFloats(arrays: Iterable<Float32Array | Int32Array>): string {
  let h = 0x811c9dc5;
  for (const array of arrays) {
    const words = new Uint32Array(array.buffer, array.byteOffset, array.length);
    for (let i = 0; i < words.length; i++) {
      h = Math.imul(h ^ words[i], 0x01000193) >>> 0;
    }
    h = Math.imul(h ^ array.length, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

/** Whether `error` is a failure every rank agreed on ({@linkcode together} raised it). */
export function isAgreed(error: unknown): boolean {
  return error instanceof Error && agreed.has(error);
}
