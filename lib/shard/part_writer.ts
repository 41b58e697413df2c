/**
 * One JSONL output of a run (predictions of `infer`, a baseline's predictions of `eval`): claimed
 * before the work, written to a temporary, renamed into place when complete, and, for one shard of
 * a sharded run, given the sidecar that `merge` checks and orders the lines by. `infer` and `eval`
 * write their files through it; it is not the merge (lib/shard/merge.ts) nor the claim itself
 * (lib/io/safe_output.ts).
 *
 * @module
 */

import { type ClaimOptions, claimOutputFile, type OutputClaim } from "../io/safe_output.ts";
import { TextFileWriter } from "../io/text_writer.ts";
import { writeStdout } from "../io/stdout.ts";
import {
  PartFileKeys,
  type PartKind,
  partManifest,
  refuseReplacingPart,
  removeReplacedSidecar,
  removeSidecar,
  writeSidecar,
} from "./part.ts";
import { partPath, type Shard } from "./shard.ts";

/** Options of {@linkcode PartWriter.open}. */
export interface PartWriterOptions extends ClaimOptions {
  /** The shard of a sharded run: the file is its part (`pred-00002-of-00007.jsonl`). */
  shard?: Shard;
}

/** What a shard's sidecar records besides the lines' keys. */
export interface PartSidecar {
  kind: PartKind;
  /** What must agree between the shards of the run. */
  run: Record<string, unknown>;
  /** The name the merged file has in the sidecar's file table. */
  name: string;
  /** The records of the split: the keys of the merge. */
  records: number;
  /** Where and how the part was written (informational; the merge ignores it). */
  writtenBy?: Record<string, unknown>;
}

/**
 * A JSONL file written line by line, each line keyed by its record's index in the split; `-` is
 * stdout (no claim, no temporary, no sidecar).
 *
 * @example
 * ```ts
 * const out = await PartWriter.open("runs/pred.jsonl", { command: "infer" });
 * try {
 *   await out.write([{ id: "r1" }], [0]);
 *   await out.commit();
 * } finally {
 *   await out.close();
 * }
 * ```
 */
export class PartWriter {
  /** The file written: the path given, or a shard's part of it. */
  readonly path: string;
  /** The keys of the lines written, for the sidecar of a shard's part. */
  readonly keys: PartFileKeys = new PartFileKeys();
  readonly #shard?: Shard;
  #writer?: TextFileWriter;
  #claim?: OutputClaim;
  /** The sidecar of a shard's part that `--force` replaces with a whole run's file. */
  #replacedSidecar?: string;
  readonly #encoder = new TextEncoder();

  private constructor(path: string, shard: Shard | undefined) {
    this.path = path;
    this.#shard = shard;
  }

  /** Claims `path` (or the shard's part of it) and opens its temporary. */
  static async open(path: string, options: PartWriterOptions): Promise<PartWriter> {
    const { shard, ...claim } = options;
    const out = new PartWriter(shard && path !== "-" ? partPath(path, shard) : path, shard);
    if (path === "-") return out;
    // A whole run's output over a shard's part would take it for its own predictions file.
    if (!shard) {
      out.#replacedSidecar = await refuseReplacingPart(path, {
        force: claim.force,
        doing: "writing over it",
        output: "file",
      });
    }
    out.#claim = await claimOutputFile(out.path, claim);
    try {
      out.#writer = await TextFileWriter.create(out.#claim.tmp, undefined, out.path);
    } catch (error) {
      await out.#claim.close();
      throw error;
    }
    return out;
  }

  /** Writes `lines` as JSON lines; `keys[i]` is the index in the split of the record of line i. */
  async write(lines: readonly unknown[], keys: readonly number[]): Promise<void> {
    const texts = lines.map((l) => JSON.stringify(l) + "\n");
    texts.forEach((t, i) => this.keys.add(keys[i], t));
    const text = texts.join("");
    if (this.#writer) await this.#writer.write(text);
    else await writeStdout(this.#encoder.encode(text));
  }

  /**
   * Writes out and closes the temporary, so that a fault of the disk shows before any output of
   * the run is renamed into place; {@linkcode commit} does it when not done.
   */
  async finish(): Promise<void> {
    await this.#writer?.close();
  }

  /**
   * Closes the file and renames it into place; a shard's part then gets its sidecar (an older
   * sidecar is removed first, so a run killed between the renames leaves a part without one).
   */
  async commit(sidecar?: PartSidecar): Promise<void> {
    if (!this.#writer) return;
    await this.finish();
    if (this.#shard) await removeSidecar(this.path);
    // A part replaced by a whole run's file loses its sidecar too (it describes bytes gone).
    await removeReplacedSidecar(this.#replacedSidecar);
    await this.#claim!.commit();
    if (this.#shard && sidecar) {
      await writeSidecar(
        this.path,
        partManifest(
          sidecar.kind,
          this.#shard,
          sidecar.run,
          { [sidecar.name]: this.keys.file(sidecar.records) },
          sidecar.writtenBy,
        ),
      );
    }
  }

  /** Removes the temporary if not committed and releases the output; safe to call twice. */
  async close(): Promise<void> {
    await this.#writer?.close().catch(() => {});
    await this.#claim?.close();
  }
}
