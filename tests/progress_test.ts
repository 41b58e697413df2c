/**
 * Progress in every long phase: a reporter writes its latest message again whenever nothing was
 * written for its interval (a phase that reports nothing new still shows it is alive), stops at
 * `done` and at the end of a command; pretrain names each phase before its first step.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { train } from "../lib/train/trainer.ts";
import { runProcess } from "./helpers/process.ts";
import { demoDataset, smallConfig, writeSmallModel } from "./helpers/train.ts";
import { withTempDir } from "./helpers/temp.ts";

const PROGRESS = new URL("../lib/io/progress.ts", import.meta.url).href;

/** Runs `code` (with `Progress` imported) in a child; returns its stderr lines. */
async function stderrOf(code: string): Promise<string[]> {
  const out = await runProcess([
    Deno.execPath(),
    "eval",
    `import { Progress } from "${PROGRESS}";\n${code}`,
  ]);
  assert.ok(out.code === 0, out.stderr);
  return out.stderr.split("\n").filter((l) => l !== "");
}

Deno.test("a reporter repeats its latest message while a phase is silent, and stops at done", async () => {
  const lines = await stderrOf(`
    const p = new Progress("phase", { terminal: false, plainEverySeconds: 0.2 });
    p.update("loading");
    await new Promise((r) => setTimeout(r, 1100));
    p.done("loaded");
    await new Promise((r) => setTimeout(r, 500));
  `);
  const loading = lines.filter((l) => /^phase: loading \[\d+\.\ds\]$/.test(l));
  assert.ok(loading.length >= 4 && loading.length <= 7, lines.join("\n"));
  assert.match(lines.at(-1)!, /^phase: loaded \[1\.\ds\]$/); // nothing after done
  const quiet = await stderrOf(`
    const p = new Progress("phase", { terminal: false, plainEverySeconds: 0.2, quiet: true });
    p.update("loading");
    await new Promise((r) => setTimeout(r, 500));
    Progress.stopAll();
  `);
  assert.deepEqual(quiet, []);
  const stopped = await stderrOf(`
    const p = new Progress("phase", { terminal: false, plainEverySeconds: 0.2 });
    p.update("loading");
    Progress.stopAll(); // what main.ts does when a command ends, however it ends
    await new Promise((r) => setTimeout(r, 600));
  `);
  assert.equal(stopped.length, 1, stopped.join("\n"));
});

Deno.test("a warning or an error printed while a line is redrawn on the terminal starts a line of its own", async () => {
  const lines = await stderrOf(`
    const p = new Progress("textualize", { terminal: true });
    p.update("reading input.csv");
    Progress.say("warning: 3 entities cut");
    await new Promise((r) => setTimeout(r, 150));
    p.update("writing");
    Progress.say("error: input.csv line 2: not valid UTF-8 text");
    Progress.say("note: nothing redrawn before this one");
  `);
  const clear = "\r\x1b[2K";
  assert.equal(lines.length, 3, JSON.stringify(lines));
  assert.ok(lines[0].endsWith(`]${clear}warning: 3 entities cut`), JSON.stringify(lines[0]));
  assert.ok(lines[1].startsWith(`${clear}textualize: writing [`), JSON.stringify(lines[1]));
  assert.ok(lines[1].endsWith(`]${clear}error: input.csv line 2: not valid UTF-8 text`));
  assert.equal(lines[2], "note: nothing redrawn before this one");
});

Deno.test("pretrain names each phase before its first step", () =>
  withTempDir(async (dir) => {
    const data = await demoDataset();
    await writeSmallModel(join(dir, "base"), await smallConfig());
    const phases: string[] = [];
    await train({
      data,
      model: join(dir, "base"),
      out: join(dir, "run"),
      lora: null,
      steps: 1,
      batchSize: 2,
      valBatches: 2,
      maxLength: 96, // the demo's records all fit from 83 tokens (pretrain checks them first)
      device: "cpu",
      onPhase: (message) => phases.push(message),
    });
    assert.deepEqual(phases.map((p) => p.split(" ").slice(0, 2).join(" ")), [
      "loading the",
      "tokenizing the",
      "building the",
      "validating: batch",
      "validating: batch",
      "validating: batch",
      "validating: batch",
    ]);
    assert.match(phases[2], /every weight/);
    assert.equal(phases[3], "validating: batch 1/2");
  }));
