/**
 * Benchmark runner: `deno task bench NAME` runs `bench/NAME.ts` and prints one JSON line
 * `{"bench": NAME, ...figures}`; `deno task bench` runs every benchmark in BENCHES in turn.
 * Each benchmark module exports `run(): Promise<Record<string, unknown>>`.
 *
 * @module
 */

/** Benchmarks in pipeline order; each file is `bench/NAME.ts`. */
export const BENCHES = ["textualize", "collate", "forward", "train", "infer", "eval"] as const;

async function runOne(name: string): Promise<void> {
  let module: { run: () => Promise<Record<string, unknown>> };
  try {
    module = await import(`./${name}.ts`);
  } catch (error) {
    if (error instanceof TypeError && String(error.message).includes("Module not found")) {
      console.error(`error: unknown benchmark "${name}" (known: ${BENCHES.join(", ")})`);
      Deno.exit(2);
    }
    throw error;
  }
  const figures = await module.run();
  console.log(JSON.stringify({ bench: name, ...figures }));
}

if (import.meta.main) {
  const names = Deno.args.length > 0 ? Deno.args : [...BENCHES];
  for (const name of names) await runOne(name);
}
