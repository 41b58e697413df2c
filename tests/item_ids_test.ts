/**
 * Predictions name items by the dataset's item id beside the entity text: infer writes it, eval
 * matches it first (so a title cut or changed in a predictions file still scores by its id, and
 * an unknown id is an invalid output), and a file without ids is still read by text.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { TINY, tinyWeights, writeModelDir } from "./helpers/infer.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

const DATA = fileURLToPath(new URL("../fixtures/eval/tiny", import.meta.url));
const ENTITIES: { entity: string; kind: string; id: string }[] = JSON.parse(
  await Deno.readTextFile(join(DATA, "entities.json")),
);
const ID_OF = new Map(ENTITIES.filter((e) => e.kind === "item").map((e) => [e.entity, e.id]));

async function score(file: string) {
  const run = await runCli(["eval", "--quiet", "--data", DATA, "--predictions", file]);
  assert.equal(run.code, 0, run.stderr);
  const methods = JSON.parse(run.stdout).methods;
  return Object.values(methods)[0] as Record<string, Record<string, number>>;
}

Deno.test("infer writes each item's dataset id; eval matches by id, whatever the text says", () =>
  withTempDir(async (dir) => {
    const model = join(dir, "model");
    await writeModelDir(model, TINY, tinyWeights(TINY, 3));
    const out = join(dir, "pred.jsonl");
    const inferred = await runCli([
      "infer",
      ...["--model", model, "--data", DATA, "--out", out, "--tasks", "sequential,direct"],
      ...["--top-k", "5", "--beams", "8", "--quiet", "--device", "cpu"],
    ]);
    assert.equal(inferred.code, 0, inferred.stderr);
    const lines = (await Deno.readTextFile(out)).trim().split("\n").map((l) => JSON.parse(l));
    assert.ok(lines.length > 0);
    for (const line of lines) {
      for (const p of line.predictions) {
        assert.equal(p.item_id, ID_OF.get(p.entity), `${line.id}: ${p.entity}`);
      }
    }
    const before = await score(out);

    // Titles cut or rewritten (as a join on a catalogue would see them): the ids still score.
    const cut = join(dir, "cut.jsonl");
    await Deno.writeTextFile(
      cut,
      lines.map((l) =>
        JSON.stringify({
          ...l,
          predictions: l.predictions.map((p: { entity: string }) => ({
            ...p,
            entity: p.entity.slice(0, 3) + "...",
          })),
        }) + "\n"
      ).join(""),
    );
    assert.deepEqual(await score(cut), before);

    // Without ids the same cut text names no item: every list is invalid.
    const textOnly = join(dir, "text.jsonl");
    await Deno.writeTextFile(
      textOnly,
      (await Deno.readTextFile(cut)).replace(/,"item_id":"[^"]*"/g, ""),
    );
    const invalid = await score(textOnly);
    assert.equal(invalid.sequential.valid, 0);
    assert.equal(invalid.sequential["HR@5"], 0);

    // An id the dataset does not have is an invalid output, not a hit.
    const unknown = join(dir, "unknown.jsonl");
    await Deno.writeTextFile(
      unknown,
      (await Deno.readTextFile(out)).replace(/"item_id":"[^"]*"/g, '"item_id":"NOPE"'),
    );
    assert.equal((await score(unknown)).sequential["HR@5"], 0);
  }));
