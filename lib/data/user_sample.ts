/**
 * A seeded sample of a dataset's users, for fast validation (`infer --sample-users N`, the same
 * flag on `eval`): a user is in the sample when a keyed hash of its id, read as a number in
 * [0, 1), falls below N / users. Membership depends only on the user id, N, the dataset's user
 * count and the seed: infer and eval (and any other tool) agree without a list passed between
 * them, and a record stream is filtered as it is read. The sample holds N users in expectation
 * (binomially spread: 2,000 of Beauty's 22,363 give 2,000 +- 43).
 *
 * The hash: the first 8 bytes of SHA-256 of `"sample:" + seed + ":" + user` (UTF-8), big-endian,
 * divided by 2^64. In Python:
 * `int.from_bytes(hashlib.sha256(f"sample:{seed}:{user}".encode()).digest()[:8], "big") / 2**64`.
 *
 * @example
 * ```ts
 * const sample = new UserSample({ size: 2000, users: 22363, seed: 1 });
 * sample.has("42"); // the same answer every time, in every tool
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";

/** Options of {@linkcode UserSample}. */
export interface UserSampleOptions {
  /** Users wanted (in expectation); at least the user count keeps every user. */
  size: number;
  /** The dataset's user count (its manifest's `users`). */
  users: number;
  /** Which sample (default {@linkcode DEFAULT_SAMPLE_SEED}). */
  seed?: number;
}

/** The sample drawn when no seed is given (infer and eval default to it alike). */
export const DEFAULT_SAMPLE_SEED = 1;

/** The position of `user` in the sample order of `seed`: a number in [0, 1). */
export function sampleKey(user: string, seed: number): number {
  const digest = createHash("sha256").update(`sample:${seed}:${user}`, "utf8").digest();
  return (digest.readUInt32BE(0) * 2 ** 32 + digest.readUInt32BE(4)) / 2 ** 64;
}

/** Tells whether a user is in the sample (records of one user come together: remembered). */
export class UserSample {
  readonly size: number;
  readonly seed: number;
  readonly #share: number;
  #user: string | undefined;
  #in = false;

  constructor(options: UserSampleOptions) {
    if (!(Number.isInteger(options.size) && options.size >= 1)) {
      throw new RangeError(`sample size must be a whole number >= 1, got ${options.size}`);
    }
    this.size = options.size;
    this.seed = options.seed ?? DEFAULT_SAMPLE_SEED;
    this.#share = options.users > 0 ? options.size / options.users : 1;
  }

  /** Whether `user` is in the sample. */
  has(user: string): boolean {
    if (user !== this.#user) {
      this.#user = user;
      this.#in = this.#share >= 1 || sampleKey(user, this.seed) < this.#share;
    }
    return this.#in;
  }
}
