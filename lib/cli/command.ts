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
  /**
   * Whether it runs as one rank of an MPI launch (lib/parallel: it calls `MPI_Init` there), so
   * that leaving before MPI starts, as `--help` does, must end the launch (see main.ts).
   */
  ranks?: boolean;
  /** Runs the command with the arguments after its name. Throws UsageError or InputError. */
  run(args: string[]): Promise<void>;
}
