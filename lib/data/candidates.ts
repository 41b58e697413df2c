/**
 * Candidate lists for the sampled ranking protocol: the target plus N negatives drawn uniformly
 * from the pool items the user never interacted with (in any split), in a seeded shuffled order.
 * Marks are kept in typed arrays stamped per call, so a draw costs O(N), not O(items).
 *
 * @module
 */

import type { Rng } from "../random.ts";

/**
 * Draws candidate lists over a fixed set of pool items.
 *
 * @example
 * ```ts
 * import { Rng } from "../random.ts";
 * import type { InteractionLog } from "./log.ts";
 *
 * declare const log: InteractionLog, poolItems: Int32Array, userItems: number[];
 * declare const seed: number, user: string, target: number;
 * const sampler = new CandidateSampler(poolItems, log.items.length);
 * const list = sampler.draw(Rng.derive(seed, "candidates", user, "test"), userItems, target, 99);
 * ```
 */
export class CandidateSampler {
  readonly #pool: Int32Array;
  readonly #owned: Int32Array;
  readonly #chosen: Int32Array;
  #stamp = 0;

  /** `pool`: the item indices that may be drawn; `nItems`: the number of item indices. */
  constructor(pool: Int32Array, nItems: number) {
    this.#pool = pool;
    this.#owned = new Int32Array(nItems);
    this.#chosen = new Int32Array(nItems);
  }

  /**
   * The target and up to `negatives` items (item indices) that are in the pool and not in
   * `userItems`, shuffled. Fewer negatives come back only when fewer exist.
   */
  draw(rng: Rng, userItems: ArrayLike<number>, target: number, negatives: number): number[] {
    const stamp = ++this.#stamp;
    let owned = 0;
    for (let i = 0; i < userItems.length; i++) {
      const item = userItems[i];
      if (this.#owned[item] !== stamp) {
        this.#owned[item] = stamp;
        owned++;
      }
    }
    const pool = this.#pool;
    const available = pool.length - owned;
    const out = [target];
    if (negatives >= available / 2) {
      // Dense case: list the free items and sample among them.
      const free: number[] = [];
      for (let i = 0; i < pool.length; i++) if (this.#owned[pool[i]] !== stamp) free.push(pool[i]);
      for (const j of rng.sample(free.length, Math.min(negatives, free.length))) out.push(free[j]);
    } else {
      // Sparse case: rejection sampling; expected draws stay below 2 per negative.
      while (out.length <= negatives) {
        const item = pool[rng.int(pool.length)];
        if (this.#owned[item] === stamp || this.#chosen[item] === stamp) continue;
        this.#chosen[item] = stamp;
        out.push(item);
      }
    }
    return rng.shuffle(out);
  }
}
