/**
 * Helper of bench/parallel.ts, run under `mpirun -np N`: times `MPI_Allreduce` (float32 sum,
 * through lib/parallel) of a buffer of `n` floats, the size of a LoRA step's gradients, `runs`
 * times after 3 warmups; rank 0 prints one JSON line (best and median milliseconds).
 *
 *     mpirun -np 2 deno run -A bench/parallel_allreduce.ts 1200000 30
 *
 * @module
 */

import { openWorld } from "../lib/parallel/mod.ts";

if (import.meta.main) {
  const n = Number(Deno.args[0] ?? 1_000_000);
  const runs = Number(Deno.args[1] ?? 30);
  const world = openWorld();
  if (!world) throw new Error("run me under mpirun -np 2 (or more)");
  const buffer = new Float32Array(n).fill(world.rank + 1);
  const times: number[] = [];
  for (let i = 0; i < runs + 3; i++) {
    const t0 = performance.now();
    await world.allreduceSum(buffer);
    if (i >= 3) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  if (world.rank === 0) {
    console.log(JSON.stringify({
      ranks: world.size,
      floats: n,
      best_ms: Number(times[0].toFixed(3)),
      median_ms: Number(times[Math.floor(times.length / 2)].toFixed(3)),
    }));
  }
  await world.close();
}
