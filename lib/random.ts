/**
 * The project's seeded random generator: every random choice in the toolkit goes through it, so a
 * seed gives the same data, batches and weights on every machine and JavaScript engine.
 *
 * xoshiro128** (Blackman and Vigna) on four 32-bit words, seeded through splitmix32. Only 32-bit
 * integer arithmetic (`Math.imul`, shifts), never `Math.random`, so results do not depend on the
 * platform. The state is four numbers and can be saved in a checkpoint and restored exactly.
 *
 * Not for cryptography.
 *
 * @module
 */

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** FNV-1a over the UTF-16 code units of a string, for turning labels into seeds. */
function hashString(text: string, h = 0x811c9dc5): number {
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A seeded pseudo-random generator.
 *
 * @example
 * ```ts
 * const rng = new Rng(42);
 * rng.int(10); // an integer in [0, 10)
 * const again = Rng.fromState(rng.state()); // continues exactly where rng is
 * const perUser = Rng.derive(42, "user", 17); // an independent stream for one key
 * ```
 */
export class Rng {
  #s0 = 0;
  #s1 = 0;
  #s2 = 0;
  #s3 = 0;

  /** Seeds the generator from an integer (any 32-bit value; larger numbers are folded). */
  constructor(seed = 0) {
    const folded = (Math.floor(seed) ^ Math.floor(seed / 0x100000000)) | 0;
    const sm = { s: folded };
    this.#s0 = splitmix32(sm);
    this.#s1 = splitmix32(sm);
    this.#s2 = splitmix32(sm);
    this.#s3 = splitmix32(sm);
    if ((this.#s0 | this.#s1 | this.#s2 | this.#s3) === 0) this.#s0 = 1;
  }

  /** A generator for `seed` and a path of keys; the same keys always give the same stream. */
  static derive(seed: number, ...keys: (string | number)[]): Rng {
    let h = hashString(String(seed));
    for (const key of keys) h = hashString("\u0000" + String(key), h);
    return new Rng(h);
  }

  /** Restores a generator from {@linkcode Rng.state}. */
  static fromState(state: readonly number[]): Rng {
    if (state.length !== 4 || state.some((x) => !Number.isInteger(x))) {
      throw new Error(`random state must be four integers, got ${JSON.stringify(state)}`);
    }
    const rng = new Rng(0);
    rng.#s0 = state[0] | 0;
    rng.#s1 = state[1] | 0;
    rng.#s2 = state[2] | 0;
    rng.#s3 = state[3] | 0;
    return rng;
  }

  /** The generator's state: four integers that {@linkcode Rng.fromState} restores exactly. */
  state(): number[] {
    return [this.#s0 >>> 0, this.#s1 >>> 0, this.#s2 >>> 0, this.#s3 >>> 0];
  }

  /** A uniform unsigned 32-bit integer. */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.#s1, 5), 7), 9);
    const t = this.#s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = rotl(this.#s3, 11);
    return result >>> 0;
  }

  /** A uniform float in [0, 1) with 53 random bits. */
  float(): number {
    const a = this.u32() >>> 5;
    const b = this.u32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** A uniform integer in [0, n), without modulo bias. `n` must be in 1..2^32. */
  int(n: number): number {
    if (!(n >= 1 && n <= 0x100000000)) {
      throw new RangeError(`Rng.int: n must be in 1..2^32, got ${n}`);
    }
    const limit = 0x100000000 - (0x100000000 % n);
    let x = this.u32();
    while (x >= limit) x = this.u32();
    return x % n;
  }

  /**
   * A standard normal sample (Box-Muller). One value per call and no cached spare, so
   * {@linkcode Rng.state} captures everything.
   */
  normal(): number {
    let u = this.float();
    while (u === 0) u = this.float();
    const v = this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /**
   * An index drawn from a cumulative distribution: `cdf` is non-decreasing and its last entry
   * is the total weight (it need not be 1).
   */
  categorical(cdf: ArrayLike<number>): number {
    const x = this.float() * cdf[cdf.length - 1];
    let lo = 0;
    let hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Shuffles `items` in place (Fisher-Yates) and returns it. */
  shuffle<T, A extends { length: number; [i: number]: T }>(items: A): A {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = items[i];
      items[i] = items[j];
      items[j] = tmp;
    }
    return items;
  }

  /**
   * `k` distinct integers from [0, n), in the order drawn (Floyd's algorithm for small k): a
   * uniform subset, but not in a uniform order (a late value is rarely drawn first); shuffle the
   * result where the order matters.
   */
  sample(n: number, k: number): number[] {
    if (k > n) throw new RangeError(`Rng.sample: cannot draw ${k} distinct values from ${n}`);
    if (k * 4 > n) return this.shuffle(Array.from({ length: n }, (_, i) => i)).slice(0, k);
    const chosen = new Set<number>();
    const out: number[] = [];
    for (let j = n - k; j < n; j++) {
      const t = this.int(j + 1);
      const pick = chosen.has(t) ? j : t;
      chosen.add(pick);
      out.push(pick);
    }
    return out;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * The cumulative distribution of a Poisson(lambda) length truncated to 1..maxLength, as GLM
 * draws its span lengths (lambda 3, lengths 1..39). Pass it to {@linkcode Rng.categorical} and
 * add 1 to the index drawn.
 */
export function truncatedPoissonCdf(lambda: number, maxLength: number): Float64Array {
  const cdf = new Float64Array(maxLength);
  let pmf = Math.exp(-lambda); // P(0)
  let total = 0;
  for (let k = 1; k <= maxLength; k++) {
    pmf *= lambda / k;
    total += pmf;
    cdf[k - 1] = total;
  }
  return cdf;
}
