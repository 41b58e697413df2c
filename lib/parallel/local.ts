/**
 * Ranks inside one process: `localGroup(n)` gives n {@linkcode Collective}s that meet in memory,
 * for tests of a distributed run without MPI (each rank is an async task of the same process).
 * A rank's `abort` fails every collective the others wait in or call later, as MPI_Abort ends
 * their processes.
 * Sums add the ranks' values in rank order, in float32 for float32 data, as one MPI sum of two
 * ranks does.
 *
 * @module
 */

import type { Collective } from "./collective.ts";

interface Meeting {
  arrived: number;
  parts: (Float32Array | Float64Array | Uint8Array | undefined)[];
  resolve: (() => void)[];
  reject: ((error: Error) => void)[];
}

/**
 * `size` ranks that meet in memory. Every rank must call the same collectives in the same order,
 * as with MPI; a rank that stops calling leaves the others waiting.
 *
 * @example
 * ```ts
 * const [a, b] = localGroup(2);
 * const x = Float32Array.of(1, 2), y = Float32Array.of(10, 20);
 * await Promise.all([a.allreduceSum(x), b.allreduceSum(y)]); // both [11, 22]
 * ```
 */
export function localGroup(size: number): Collective[] {
  const meetings = new Map<number, Meeting>();
  const counters = new Array<number>(size).fill(0);
  /** Set once a rank aborts: every collective waiting or to come fails with it. */
  let aborted: Error | undefined;

  function meet(
    rank: number,
    part: Float32Array | Float64Array | Uint8Array,
    finish: (parts: (Float32Array | Float64Array | Uint8Array)[]) => void,
  ): Promise<void> {
    if (aborted) return Promise.reject(aborted);
    const id = counters[rank]++;
    let meeting = meetings.get(id);
    if (!meeting) {
      meeting = { arrived: 0, parts: new Array(size), resolve: [], reject: [] };
      meetings.set(id, meeting);
    }
    meeting.parts[rank] = part;
    meeting.arrived++;
    const m = meeting;
    const done = new Promise<void>((resolve, reject) => {
      m.resolve.push(resolve);
      m.reject.push(reject);
    });
    if (m.arrived === size) {
      meetings.delete(id);
      finish(m.parts as (Float32Array | Float64Array | Uint8Array)[]);
      for (const r of m.resolve) r();
    }
    return done;
  }

  return Array.from({ length: size }, (_, rank): Collective => ({
    rank,
    size,
    localRank: rank,
    name: "in-process",
    allreduceSum(data) {
      return meet(rank, data, (parts) => {
        const sum = data instanceof Float32Array
          ? new Float32Array(data.length)
          : new Float64Array(data.length);
        for (const part of parts) {
          if (part.length !== data.length) throw new Error("allreduceSum: lengths differ");
          for (let i = 0; i < sum.length; i++) sum[i] += part[i];
        }
        for (const part of parts) (part as typeof sum).set(sum);
      });
    },
    broadcast(data, root) {
      return meet(rank, data, (parts) => {
        for (const part of parts) if (part !== parts[root]) part.set(parts[root]);
      });
    },
    close: () => Promise.resolve(),
    abort(status) {
      aborted ??= new Error(`rank ${rank} aborted the run (status ${status})`);
      for (const meeting of meetings.values()) for (const reject of meeting.reject) reject(aborted);
      meetings.clear();
      return Promise.resolve();
    },
  }));
}
