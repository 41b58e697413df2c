/**
 * The TypeScript files under a directory, for the tests that read the project's own source (the
 * layers and the thin-commands rules). Not a test file itself.
 *
 * @module
 */

import { join } from "node:path";

/** Every `.ts` file under `dir`, depth first. */
export async function* tsFiles(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* tsFiles(path);
    else if (entry.name.endsWith(".ts")) yield path;
  }
}
