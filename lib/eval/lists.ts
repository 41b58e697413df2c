/**
 * What the shape of a method's ranked lists says about comparing it with the others, as one-line
 * warnings of `eval`: lists shorter than the largest k (the targets below them count as misses,
 * while the baselines rank that deep), lists that all lie within their records' candidates scored
 * under the full protocol (a sampled run's output), and lists that mostly rank items outside the
 * candidates scored under the sampled one (a full ranking's). It scores nothing: that is score.ts.
 *
 * @module
 */

import { optionName } from "../errors.ts";
import type { Protocol } from "./protocol.ts";

/** Options of {@linkcode ListChecks}. */
export interface ListCheckOptions {
  /** The protocol the run scores under. */
  protocol: Protocol;
  /** The largest cut-off k. */
  maxK: number;
  /** The items of the pool (what a ranking over all items can list at most). */
  items: number;
}

/** One method's counts. */
class MethodLists {
  /** The longest list it gave. */
  longest = 0;
  /** The most any of its records could list up to the largest k. */
  room = 0;
  /** Lists of records with fewer candidates than items: how many, and how many lay within. */
  withCandidates = 0;
  within = 0;
}

/**
 * Collects, per method, the lengths of its item lists and whether they lie within the records'
 * candidates; {@linkcode ListChecks.warnings} says what makes a comparison unequal.
 *
 * @example
 * ```ts
 * const checks = new ListChecks(["model"], { protocol: "full", maxK: 50, items: 1000 });
 * checks.add(0, new Int32Array([3, 7, 9]), undefined, 0);
 * checks.warnings(); // ["model: its lists hold at most 3 item(s), fewer than k = 50: ..."]
 * ```
 */
export class ListChecks {
  readonly #names: readonly string[];
  readonly #options: ListCheckOptions;
  readonly #methods: MethodLists[];

  /** Checks the methods `names`, in order. */
  constructor(names: readonly string[], options: ListCheckOptions) {
    this.#names = names;
    this.#options = options;
    this.#methods = names.map(() => new MethodLists());
  }

  /**
   * Counts method `m`'s list `ranked` (pool ids) for an item record with the candidate ids
   * `candidates` (undefined when it has none) and `seen` distinct items in its history (which a
   * ranking over all items may leave out).
   */
  add(m: number, ranked: Int32Array, candidates: Int32Array | undefined, seen: number): void {
    const method = this.#methods[m];
    const { protocol, maxK, items } = this.#options;
    method.longest = Math.max(method.longest, ranked.length);
    const limit = protocol === "sampled" && candidates ? candidates.length : items - seen;
    method.room = Math.max(method.room, Math.min(maxK, limit));
    // A candidate list of every item, or of every item the user has not seen (a small pool),
    // says nothing about which protocol a list was made for.
    if (!candidates || candidates.length >= items - seen || ranked.length === 0) return;
    method.withCandidates++;
    if (ranked.every((id) => candidates.includes(id))) method.within++;
  }

  /** The warnings, one line each, by method in order. */
  warnings(): string[] {
    const { protocol, maxK } = this.#options;
    const flag = optionName("protocol");
    return this.#names.flatMap((name, m) => {
      const method = this.#methods[m];
      const out: string[] = [];
      if (method.longest > 0 && method.longest < method.room) {
        // Under full, longest < room <= maxK; under sampled a record may have fewer candidates.
        const what = protocol === "sampled"
          ? `fewer than ${
            method.room < maxK ? `the ${method.room} candidates of a record` : `k = ${maxK}`
          }: an unlisted target counts as a miss, where the baselines rank every candidate`
          : `fewer than k = ${maxK}: a target below them counts as a miss at HR@${maxK} and ` +
            `NDCG@${maxK}, where the baselines list at least ${maxK} (infer ` +
            `${optionName("topK")} ${maxK} lists as many)`;
        out.push(`${name}: its lists hold at most ${method.longest} item(s), ${what}`);
      }
      const total = method.withCandidates;
      if (protocol === "full" && total > 0 && method.within === total) {
        out.push(
          `${name}: every list lies within its record's candidates (infer ${flag} sampled ` +
            `output?), but ${flag} full scores them as rankings over all items: score it ` +
            `with ${flag} sampled`,
        );
      } else if (protocol === "sampled" && total - method.within > total / 2) {
        out.push(
          `${name}: ${total - method.within} of ${total} lists rank items outside their ` +
            `record's candidates (a ranking over all items?), and ${flag} sampled scores only ` +
            `the candidates listed: score it with ${flag} full, or infer with ${flag} sampled`,
        );
      }
      return out;
    });
  }
}
