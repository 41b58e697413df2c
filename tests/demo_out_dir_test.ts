/**
 * The demo's output directory between runs (lib/demo/out_dir.ts) and the processes it starts
 * (lib/io/process.ts): a rerun empties only what the demo wrote, takes over the lock a killed stage
 * left, waits for no one and refuses while a stage still runs; a link stays a link; an emptying cut
 * short leaves only temporaries. A stage is stopped with the demo; its command line is printed so
 * that a shell reads it back.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { DEMO_MARKER, prepareDemoOut } from "../lib/demo/out_dir.ts";
import { tempName } from "../lib/io/atomic.ts";
import { LockedError, OutputLock } from "../lib/io/lock.ts";
import { shellWord, stopChild } from "../lib/io/process.ts";
import { writeMarker } from "../lib/io/safe_output.ts";
import { runProcess, startProcess } from "./helpers/process.ts";
import { withTempDir } from "./helpers/temp.ts";

const KNOWN = new Set(["data", "run", "eval.json"]);

/** A demo directory as a finished run leaves it: a stage directory with its marker, a file. */
async function finishedDemo(out: string): Promise<void> {
  await prepareDemoOut(out, KNOWN);
  await Deno.mkdir(join(out, "run"));
  await Deno.writeTextFile(join(out, "run", "metrics.jsonl"), "{}\n");
  await writeMarker(join(out, "run"), "pretrain", ["metrics.jsonl"]);
  await Deno.writeTextFile(join(out, "eval.json"), "{}");
}

async function entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("a rerun empties what the demo wrote, and refuses a file added inside a stage's output", async () => {
  await withTempDir(async (tmp) => {
    const out = join(tmp, "demo");
    await finishedDemo(out);
    await prepareDemoOut(out, KNOWN);
    assert.deepEqual(await entries(out), [DEMO_MARKER]);
    await finishedDemo(out);
    await Deno.writeTextFile(join(out, "run", "my-notes.txt"), "mine");
    await assert.rejects(
      () => prepareDemoOut(out, KNOWN),
      /run: holds files the demo did not write \(my-notes\.txt\); choose another (--)?out/,
    );
    assert.equal(await Deno.readTextFile(join(out, "run", "my-notes.txt")), "mine");
    assert.ok((await entries(out)).includes("eval.json"), "nothing touched");
  });
});

Deno.test("a stage directory of files claimed one by one (saved baselines): its own names go, another is refused", async () => {
  await withTempDir(async (tmp) => {
    const out = join(tmp, "demo");
    const known = new Set([...KNOWN, "baselines"]);
    const unmarked = { baselines: new Set(["pop.jsonl", "sasrec.jsonl"]) };
    await prepareDemoOut(out, known, unmarked);
    await Deno.mkdir(join(out, "baselines"));
    await Deno.writeTextFile(join(out, "baselines", "pop.jsonl"), "");
    await Deno.writeTextFile(join(out, "baselines", ".sasrec.jsonl.lock"), "");
    await prepareDemoOut(out, known, unmarked);
    assert.deepEqual(await entries(out), [DEMO_MARKER]);
    await Deno.mkdir(join(out, "baselines"));
    await Deno.writeTextFile(join(out, "baselines", "my-mf.jsonl"), "mine");
    await assert.rejects(
      () => prepareDemoOut(out, known, unmarked),
      /baselines: holds files the demo did not write \(my-mf\.jsonl\)/,
    );
  });
});

Deno.test("a stage's lock: taken over when its process died, refused while it runs", async () => {
  await withTempDir(async (tmp) => {
    const out = join(tmp, "demo");
    await finishedDemo(out);
    // A killed stage's lock file: no process holds it.
    await Deno.writeTextFile(join(out, ".run.lock"), JSON.stringify({ pid: 999999 }));
    await prepareDemoOut(out, KNOWN);
    assert.deepEqual(await entries(out), [DEMO_MARKER]);
    await finishedDemo(out);
    const held = await OutputLock.acquire(join(out, "run"), "pretrain");
    try {
      await assert.rejects(() => prepareDemoOut(out, KNOWN), LockedError);
      assert.ok((await entries(out)).includes("run"));
    } finally {
      held.release();
    }
  });
});

Deno.test("a link as the demo's directory stays a link; temporaries of an emptying cut short go", async () => {
  await withTempDir(async (tmp) => {
    const target = join(tmp, "target"), link = join(tmp, "link");
    await finishedDemo(target);
    await Deno.symlink(target, link);
    // An earlier emptying stopped after renaming an entry aside.
    await Deno.mkdir(tempName(join(target, "data")));
    await prepareDemoOut(link, KNOWN);
    assert.ok((await Deno.lstat(link)).isSymlink);
    assert.deepEqual(await entries(target), [DEMO_MARKER]);
  });
});

Deno.test("stopChild ends a child before it returns; printed command lines read back in a shell", async () => {
  const child = startProcess(["sleep", "60"]);
  const started = performance.now();
  stopChild(child.pid, 5_000);
  const result = await child.result();
  assert.notEqual(result.code, 0);
  assert.ok(performance.now() - started < 5_000);
  const words = ["demo", "--out", "/tmp/my demo", "it's", "", "a$b"];
  const echoed = await runProcess(["sh", "-c", `printf '%s\\n' ${words.map(shellWord).join(" ")}`]);
  assert.equal(echoed.stdout, words.join("\n") + "\n");
  assert.equal(shellWord("--steps=3"), "--steps=3");
});
