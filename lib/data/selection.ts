/**
 * Which records of a split a run answers or scores: by task and template, by a seeded sample of
 * users (`UserSample`), and by the users of one shard. `infer` and `eval` select through it, so
 * the two pick the same records from the same settings. It reads no file: the run reads the
 * split and asks it record by record.
 *
 * @module
 */

import { type Shard, ShardFilter } from "../shard/shard.ts";
import type { Manifest, TextRecord } from "./types.ts";
import { UserSample } from "./user_sample.ts";

/** What to select; every part is optional (absent: every record). */
export interface SelectionOptions {
  /** Only records of these tasks. */
  tasks?: readonly string[];
  /** Only records of these template ids. */
  templates?: readonly string[];
  /** Only the records of a seeded sample of about `size` users. */
  sample?: { size: number; seed: number };
  /** Only the records of the users of this shard. */
  shard?: Shard;
}

/**
 * The records a run selects from a split. `wanted` is the selection before sharding (what every
 * shard counts alike, for a limit shared by the shards), `has` the selection of this shard.
 *
 * @example
 * ```ts
 * const select = new RecordSelection({ users: 100 }, { tasks: ["sequential"] });
 * select.has({ task: "sequential", template: "seq-1", user: "7" }); // true
 * ```
 */
export class RecordSelection {
  readonly #options: SelectionOptions;
  readonly #sample?: UserSample;
  readonly #shard?: ShardFilter;
  readonly #users: number;

  /** @param manifest the dataset's manifest (its user count sizes the sample) */
  constructor(manifest: Pick<Manifest, "users">, options: SelectionOptions) {
    this.#options = options;
    this.#users = manifest.users ?? 0;
    if (options.sample) {
      this.#sample = new UserSample({ ...options.sample, users: this.#users });
    }
    if (options.shard) this.#shard = new ShardFilter(options.shard);
  }

  /** Whether any part selects (else every record is selected). */
  get narrows(): boolean {
    const o = this.#options;
    return o.tasks !== undefined || o.templates !== undefined || !!this.#sample || !!this.#shard;
  }

  /** Whether `record` is selected by task, template and sample (every shard alike). */
  wanted(record: Pick<TextRecord, "task" | "template" | "user">): boolean {
    const { tasks, templates } = this.#options;
    return (tasks === undefined || tasks.includes(record.task)) &&
      (templates === undefined || templates.includes(record.template)) &&
      (!this.#sample || this.#sample.has(record.user));
  }

  /** Whether `record`'s user is in this run's shard (true without a shard). */
  inShard(record: Pick<TextRecord, "user">): boolean {
    return !this.#shard || this.#shard.has(record.user);
  }

  /** Whether `record` is selected: wanted, and in this shard. */
  has = (record: Pick<TextRecord, "task" | "template" | "user">): boolean =>
    this.wanted(record) && this.inShard(record);

  /**
   * About how many records of `counts` (the manifest's records of one split, by task and
   * template) are selected, at most `limit`; undefined when a shard's share cannot be known
   * before reading.
   */
  expected(counts: Record<string, Record<string, number>>, limit = Infinity): number | undefined {
    if (this.#options.shard && this.#options.shard.count > 1) return undefined;
    let total = 0;
    for (const [task, byTemplate] of Object.entries(counts)) {
      for (const [template, count] of Object.entries(byTemplate)) {
        const { tasks, templates } = this.#options;
        if (tasks !== undefined && !tasks.includes(task)) continue;
        if (templates !== undefined && !templates.includes(template)) continue;
        total += count;
      }
    }
    const share = this.#sample ? Math.min(1, this.#sample.size / Math.max(1, this.#users)) : 1;
    // The limit counts selected records, so it applies after the sample.
    return Math.min(limit, Math.round(total * share));
  }
}
