/**
 * Which shard a user belongs to, and how a shard is named: `--shard i/n` on the command line (or
 * `auto`, from the index a batch scheduler gives the task), the stable hash that assigns users to
 * shards, and the file or directory name of a shard's part.
 *
 * The hash: the first 8 bytes of SHA-256 of the user id's UTF-8 bytes, read as a big-endian
 * unsigned 64-bit integer, modulo n. A user's shard depends only on its id and n: not on the input
 * order, not on the other users, not on which shards run. In Python:
 * `int.from_bytes(hashlib.sha256(user.encode()).digest()[:8], "big") % n`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { OptionError, UsageError } from "../errors.ts";

/** Shard `index` (0-based) of `count`. */
export interface Shard {
  /** 0-based index of this shard. */
  index: number;
  /** The number of shards. */
  count: number;
}

/** The name of the assignment rule, recorded in every part. */
export const SHARD_HASH = "sha256(user)[0:8] big-endian mod n";

/**
 * The shard (0 .. count-1) of `user`.
 *
 * @example
 * ```ts
 * shardOfUser("A2V5R832QCSOMX", 7); // always the same number in 0..6
 * ```
 */
export function shardOfUser(user: string, count: number): number {
  if (count === 1) return 0;
  const digest = createHash("sha256").update(user, "utf8").digest();
  const high = BigInt(digest.readUInt32BE(0));
  const low = BigInt(digest.readUInt32BE(4));
  return Number(((high << 32n) | low) % BigInt(count));
}

/**
 * Tells whether records belong to a shard. Records of one user come together, so the last
 * user's answer is remembered.
 */
export class ShardFilter {
  /** The shard whose records the filter accepts. */
  readonly shard: Shard;
  #user: string | undefined;
  #mine = false;

  /** A filter for `shard`. */
  constructor(shard: Shard) {
    this.shard = shard;
  }

  /** Whether `user`'s records belong to this shard. */
  has(user: string): boolean {
    if (user !== this.#user) {
      this.#user = user;
      this.#mine = shardOfUser(user, this.shard.count) === this.shard.index;
    }
    return this.#mine;
  }
}

/** The environment variables `--shard auto` reads (a function, so tests can pass their own). */
export type Env = (name: string) => string | undefined;

const denoEnv: Env = (name) => Deno.env.get(name);

function wholeNumber(value: string, what: string): number {
  if (!/^\d+$/.test(value.trim())) {
    throw new UsageError(`${what} must be a whole number, got "${value}"`);
  }
  return Number(value);
}

/**
 * Reads a `--shard` value: `i/n` (0 <= i < n), or `auto` / `auto/n` for an array job:
 * - Kubernetes Indexed Job: the index from `JOB_COMPLETION_INDEX`; Kubernetes does not tell a pod
 *   how many completions its Job has, so n must be given: `auto/n`, n = `spec.completions`.
 * - Slurm job array: the index is `SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN` and n is
 *   `SLURM_ARRAY_TASK_COUNT` (an `auto/n` must agree with it). The array must be contiguous
 *   (`--array=0-6`, or `1-7`), not stepped or a list.
 *
 * @example
 * ```ts
 * parseShard("2/7"); // { index: 2, count: 7 }
 * parseShard("auto/7", (v) => ({ JOB_COMPLETION_INDEX: "2" })[v]); // { index: 2, count: 7 }
 * ```
 */
export function parseShard(value: string, env: Env = denoEnv): Shard {
  // Messages name the option; a command words it as its flag (`--shard`).
  const wrong = (describe: (name: string) => string) => new OptionError("shard", describe);
  const match = /^\s*(auto|\d+)\s*(?:\/\s*(\d+)\s*)?$/.exec(value);
  if (!match || (match[1] !== "auto" && match[2] === undefined)) {
    throw wrong((name) => `${name} must be i/n (e.g. 0/4), auto or auto/n, got "${value}"`);
  }
  let index: number;
  let count = match[2] === undefined ? undefined : Number(match[2]);
  if (match[1] === "auto") {
    const k8s = env("JOB_COMPLETION_INDEX");
    const slurm = env("SLURM_ARRAY_TASK_ID");
    if (k8s !== undefined && slurm !== undefined) {
      throw wrong((name) =>
        `${name} auto: both JOB_COMPLETION_INDEX and SLURM_ARRAY_TASK_ID are set; give ${name} i/n`
      );
    }
    if (k8s !== undefined) {
      index = wholeNumber(k8s, "JOB_COMPLETION_INDEX");
      if (count === undefined) {
        throw wrong((name) =>
          `${name} auto: JOB_COMPLETION_INDEX gives the index but not the number of shards; ` +
          `use ${name} auto/N with N = the Job's completions`
        );
      }
      const shards = count;
      if (shards >= 1 && index >= shards) {
        // Said with the variable: the user wrote auto/N, not the i/n the index would make.
        throw wrong((name) =>
          `${name} auto/${shards}: JOB_COMPLETION_INDEX is ${index}, not in 0..${shards - 1} ` +
          `(N must be the Job's completions)`
        );
      }
    } else if (slurm !== undefined) {
      const min = env("SLURM_ARRAY_TASK_MIN");
      index = wholeNumber(slurm, "SLURM_ARRAY_TASK_ID") -
        (min === undefined ? 0 : wholeNumber(min, "SLURM_ARRAY_TASK_MIN"));
      const total = env("SLURM_ARRAY_TASK_COUNT");
      if (total !== undefined) {
        const n = wholeNumber(total, "SLURM_ARRAY_TASK_COUNT");
        if (count !== undefined && count !== n) {
          throw wrong((name) => `${name} auto/${count}: SLURM_ARRAY_TASK_COUNT is ${n}`);
        }
        count = n;
      }
      if (count === undefined) {
        throw wrong((name) =>
          `${name} auto: SLURM_ARRAY_TASK_COUNT is not set; use ${name} auto/N`
        );
      }
      const tasks = count;
      if (tasks < 1) throw wrong((name) => `${name}: the number of shards must be at least 1`);
      // A stepped (0-14:2) or listed (1,2,5) array numbers its tasks with gaps: every task refuses,
      // not only those past the count (the others would run shards of a set that cannot merge).
      const step = env("SLURM_ARRAY_TASK_STEP");
      const max = env("SLURM_ARRAY_TASK_MAX");
      const span = max === undefined || min === undefined
        ? tasks
        : wholeNumber(max, "SLURM_ARRAY_TASK_MAX") - wholeNumber(min, "SLURM_ARRAY_TASK_MIN") + 1;
      if (
        (step !== undefined && wholeNumber(step, "SLURM_ARRAY_TASK_STEP") !== 1) || span !== tasks
      ) {
        throw wrong((name) =>
          `${name} auto: the Slurm array has gaps (SLURM_ARRAY_TASK_STEP ${step ?? "unset"}, ` +
          `${span} ids for ${tasks} tasks); use a contiguous array, e.g. 0-${tasks - 1}`
        );
      }
      const last = count - 1;
      if (index < 0 || index > last) {
        throw wrong((name) =>
          `${name} auto: array task ${slurm} is not in 0..${last} after subtracting ` +
          `SLURM_ARRAY_TASK_MIN (the array must be contiguous, e.g. 0-${last})`
        );
      }
    } else {
      throw wrong((name) =>
        `${name} auto: neither JOB_COMPLETION_INDEX (Kubernetes Indexed Job) nor ` +
        `SLURM_ARRAY_TASK_ID (Slurm array) is set; on another scheduler give ${name} i/n (0-based)`
      );
    }
  } else {
    index = Number(match[1]);
  }
  const shards = count!;
  if (shards < 1) throw wrong((name) => `${name}: the number of shards must be at least 1`);
  if (index >= shards) {
    throw wrong((name) => `${name} ${index}/${shards}: the index must be in 0..${shards - 1}`);
  }
  return { index, count: shards };
}

/** `00002-of-00007`: the tag of a part's name (5 digits at least, so names sort in order). */
export function shardTag(shard: Shard): string {
  const width = Math.max(5, String(shard.count - 1).length);
  const pad = (n: number) => String(n).padStart(width, "0");
  return `${pad(shard.index)}-of-${pad(shard.count)}`;
}

/**
 * Where a shard writes what an unsharded run writes to `path`: the tag goes before the
 * extension (`pred.jsonl` -> `pred-00002-of-00007.jsonl`; a directory `data` -> `data-00002-of-00007`).
 */
export function partPath(path: string, shard: Shard): string {
  path = path.replace(/(.)\/+$/, "$1");
  const slash = path.lastIndexOf("/");
  const name = path.slice(slash + 1);
  const dot = name.indexOf(".", 1);
  const [stem, ext] = dot < 0 ? [name, ""] : [name.slice(0, dot), name.slice(dot)];
  return `${path.slice(0, slash + 1)}${stem}-${shardTag(shard)}${ext}`;
}
