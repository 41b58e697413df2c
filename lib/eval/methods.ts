/**
 * The methods of an evaluation as a user names them: predictions files (files of one name make
 * one method: the parts of a sharded `infer` run, or files given the same name) and baselines.
 * It reads no predictions, only the sidecars of parts; scoring is lib/eval/run.ts.
 *
 * @module
 */

import { basename } from "node:path";
import { OptionError } from "../errors.ts";
import { checkPartSet, type ReadPart, readPart } from "../shard/part.ts";

/** A method as named: predictions files, or a baseline to train (its name). */
export type NamedMethod<B extends string = string> =
  | { name: string; predictions: string | readonly string[] }
  | { name: string; baseline: B };

/** A shard part's tag at the end of a file's stem (`-00002-of-00007`). */
const SHARD_TAG = /-\d+-of-\d+$/;

/** A file's name without its directory and its `.jsonl`, `.json` or `.gz` endings. */
const stemOf = (path: string) =>
  basename(path).replace(/(\.gz)?$/, "").replace(/\.(jsonl|json)$/, "");

/** The default name of a predictions file: its stem, without a shard tag (`-00002-of-00007`). */
export function methodStem(path: string): string {
  return stemOf(path).replace(SHARD_TAG, "");
}

/**
 * The methods named by predictions files (`names[i]` names `predictions[i]`, else its stem) and
 * baselines, in that order; an OptionError when names clash or nothing is named. Files of one
 * name are one method: named alike, or the parts of one sharded run (checked to belong together).
 *
 * @example
 * ```ts
 * const methods = await namedMethods({ predictions: ["runs/a.jsonl"], names: [], baselines: ["pop"] });
 * methods; // [{ name: "a", predictions: "runs/a.jsonl" }, { name: "pop", baseline: "pop" }]
 * ```
 */
export async function namedMethods<B extends string>(options: {
  predictions: readonly string[];
  names: readonly string[];
  baselines: readonly B[];
}): Promise<NamedMethod<B>[]> {
  const { predictions: files, names, baselines } = options;
  if (names.length > files.length) {
    throw new OptionError(
      "names",
      (name, nameOf) => `eval: more ${name} flags than ${nameOf("predictions")} files`,
    );
  }
  const groups = new Map<string, { files: string[]; named: boolean }>();
  files.forEach((path, i) => {
    const name = names[i] ?? methodStem(path);
    const group = groups.get(name);
    if (group) {
      group.files.push(path);
      group.named &&= names[i] !== undefined;
    } else groups.set(name, { files: [path], named: names[i] !== undefined });
  });
  for (const [name, group] of groups) {
    if (group.files.length === 1) continue;
    const parts: ReadPart[] = [];
    for (const file of group.files) {
      let part: ReadPart | undefined;
      try {
        part = await readPart(file);
      } catch (error) {
        // A file named as a shard part must be one whose sidecar says it is whole.
        if (SHARD_TAG.test(stemOf(file))) throw error;
      }
      if (part) parts.push(part);
      else if (!group.named) {
        throw new OptionError(
          "names",
          (option) =>
            `eval: two methods are named "${name}" (name files with ${option}; files given the ` +
            `same ${option} are joined into one method)`,
        );
      }
    }
    if (parts.length > 1) checkPartSet(parts, false);
  }
  const methods: NamedMethod<B>[] = [
    ...[...groups].map(([name, g]) => ({
      name,
      predictions: g.files.length === 1 ? g.files[0] : g.files,
    })),
    ...baselines.map((b) => ({ name: b, baseline: b })),
  ];
  if (methods.length === 0) {
    throw new OptionError(
      "predictions",
      (name, nameOf) => `eval: give ${name} FILE or ${nameOf("baselines")} NAME`,
    );
  }
  const seen = new Set<string>();
  for (const m of methods) {
    if (seen.has(m.name)) {
      throw new OptionError(
        "names",
        (option) => `eval: two methods are named "${m.name}" (name files with ${option})`,
      );
    }
    seen.add(m.name);
  }
  return methods;
}
