/**
 * Reader for RecBole atomic files: `NAME.inter` (interactions), and beside it, when present,
 * `NAME.user` and `NAME.item`. Tab-separated, no quoting, typed headers (`user_id:token`,
 * `rating:float`, `timestamp:float`, `title:token_seq`). `token_seq` attributes hold several
 * space-separated values; `float` columns become features or attributes only when named.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { inputError } from "../../errors.ts";
import type { InteractionLog } from "../log.ts";
import { readTables, type TableDialect, type TabularOptions } from "./csv.ts";

/** The RecBole dialect of the tabular reader. */
export const RECBOLE_DIALECT: TableDialect = {
  format: "recbole",
  quoting: false,
  typed: true,
  defaults: {
    time: ["timestamp"],
    rating: ["rating"],
    review: ["review", "review_text"],
    summary: ["summary"],
    title: ["title", "movie_title", "item_name", "name"],
  },
};

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/**
 * The `.inter` file that `input` names: the file itself, or the only `.inter` file in the
 * directory `input`.
 */
async function interFile(input: string): Promise<string> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(input);
  } catch {
    throw inputError(input, undefined, "file not found");
  }
  if (!info.isDirectory) return input;
  const found: string[] = [];
  for await (const entry of Deno.readDir(input)) {
    if (entry.isFile && entry.name.endsWith(".inter")) found.push(entry.name);
  }
  found.sort();
  if (found.length !== 1) {
    throw inputError(
      input,
      undefined,
      found.length === 0
        ? "no .inter file in this directory"
        : `several .inter files (${found.join(", ")}); name one as the input`,
    );
  }
  return join(input, found[0]);
}

/**
 * Reads RecBole atomic files into an {@linkcode InteractionLog}. `options.input` is the
 * `.inter` file or its directory; `.user` and `.item` files of the same name are found beside
 * it unless `options.users` / `options.items` name others.
 */
export async function readRecBole(options: TabularOptions): Promise<InteractionLog> {
  const input = await interFile(options.input);
  const stem = join(dirname(input), basename(input).replace(/\.inter$/, ""));
  const users = options.users ?? (await exists(`${stem}.user`) ? `${stem}.user` : undefined);
  const items = options.items ?? (await exists(`${stem}.item`) ? `${stem}.item` : undefined);
  return await readTables({ ...options, input, users, items, delimiter: "\t" }, RECBOLE_DIALECT);
}
