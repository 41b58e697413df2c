/**
 * The Python side of the parity benchmarks (tokenizer_parity, transformers_parity,
 * ranking_parity): which interpreter, whether it has the packages, and its output, each failure a
 * one-line InputError naming the benchmark.
 *
 * @module
 */

import { InputError } from "../lib/errors.ts";

/** The packages of the benchmarks that run transformers and PEFT. */
export const TRANSFORMERS_STACK = ["torch", "transformers", "peft", "safetensors"] as const;

/** Runs `command args`; its stdout, or an InputError with the last line it wrote on stderr. */
export async function commandOutput(
  bench: string,
  command: string,
  args: string[],
): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    throw new InputError(`bench ${bench}: cannot run ${command} (${(error as Error).message})`);
  }
  if (!out.success) {
    const why = new TextDecoder().decode(out.stderr).trim().split("\n").at(-1);
    throw new InputError(
      `bench ${bench}: ${command} ${args.slice(0, 4).join(" ")} failed (${why})`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/** The last line of `command args`'s stdout, as JSON. */
export async function lastJsonLine(
  bench: string,
  command: string,
  args: string[],
): Promise<Record<string, unknown>> {
  const lines = (await commandOutput(bench, command, args)).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

/**
 * The interpreter the benchmark runs (`python3`, or the environment variable `variable`), checked
 * to import `modules` before any work: an InputError saying what to install otherwise.
 */
export async function pythonWith(
  bench: string,
  variable: string,
  modules: readonly string[],
): Promise<string> {
  const python = Deno.env.get(variable) ?? "python3";
  await commandOutput(bench, python, ["-c", `import ${modules.join(", ")}`]).catch((error) => {
    throw new InputError(
      `${error.message}; it needs python3 with ${modules.join(", ")} (pip install ` +
        `${modules.join(" ")}), or ${variable} naming an interpreter that has them`,
    );
  });
  return python;
}
