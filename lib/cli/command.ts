/**
 * The shape every subcommand module in `commands/` exports: its name, a one-line summary for the
 * top-level help, its full usage text, and `run`, which parses its own flags.
 *
 * @module
 */

/** A subcommand of the `recsysllm` command line. */
export interface Command {
  /** The word that selects it: `textualize`. */
  name: string;
  /** One line for `recsysllm --help`. */
  summary: string;
  /** The full `--help` text: usage line, flags with defaults, an example. */
  usage: string;
  /** Runs the command with the arguments after its name. Throws UsageError or InputError. */
  run(args: string[]): Promise<void>;
}
