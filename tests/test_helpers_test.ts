/**
 * The tests' own layout: what test files share lives in tests/helpers/, and there is one way to
 * make a temporary directory (tests/helpers/temp.ts), one way to run the CLI
 * (tests/helpers/cli.ts: in this process, or as a process) and one way to start any other
 * process (tests/helpers/process.ts). A test file that makes its own temporary directory, spawns
 * a process or calls `main` itself fails here, naming the file and the line.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { ROOT } from "./helpers/process.ts";
import { tsFiles } from "./helpers/source_files.ts";

const TESTS = join(ROOT, "tests");

/** Folders of tests/: the shared helpers, reference implementations, test-only packages. */
const FOLDERS = ["deps", "helpers", "reference"];

/** What only tests/helpers does, and which helper does it instead. */
const ONE_WAY: { pattern: RegExp; instead: string }[] = [
  { pattern: /\bDeno\.makeTemp(Dir|File)(Sync)?\b/, instead: "withTempDir or processTempDir" },
  { pattern: /\bmk[d]temp(Sync)?\b/, instead: "withTempDir or processTempDir" },
  { pattern: /\bDeno\.Command\b/, instead: "runCliProcess/startCli or runProcess/startProcess" },
  { pattern: /\bchild[_]process\b/, instead: "runCliProcess/startCli or runProcess/startProcess" },
  {
    pattern: /import\s*\{[^}]*\bmain\b[^}]*\}\s*from\s*"[^"]*\/main\.ts"/,
    instead: "runCli",
  },
];

Deno.test("tests/ holds test files only; what they share is in tests/helpers/", async () => {
  const stray: string[] = [];
  for await (const entry of Deno.readDir(TESTS)) {
    if (entry.isDirectory) {
      if (!FOLDERS.includes(entry.name)) stray.push(`${entry.name}/ (not one of ${FOLDERS})`);
    } else if (!entry.name.endsWith("_test.ts")) {
      stray.push(`${entry.name} (a helper belongs in tests/helpers/)`);
    }
  }
  for await (const file of tsFiles(join(TESTS, "helpers"))) {
    if (file.endsWith("_test.ts")) stray.push(`${relative(TESTS, file)} (a test file in helpers)`);
  }
  assert.deepEqual(stray, [], "tests/");
});

Deno.test("one way to make a temporary directory and one way to run the CLI or a process", async () => {
  const found: string[] = [];
  for await (const file of tsFiles(TESTS)) {
    const rel = relative(TESTS, file);
    if (rel.startsWith("helpers/") || rel.startsWith("deps/")) continue;
    const text = await Deno.readTextFile(file);
    for (const { pattern, instead } of ONE_WAY) {
      const at = text.search(pattern);
      if (at < 0) continue;
      const line = text.slice(0, at).split("\n").length;
      found.push(
        `tests/${rel}:${line}: ${text.match(pattern)![0]} (use ${instead} of tests/helpers)`,
      );
    }
  }
  assert.deepEqual(found, []);
});

Deno.test("the checks above see what they look for", () => {
  // Spelled in pieces, so that this file passes its own check.
  const samples = [
    "const d = await Deno." + "makeTempDir();",
    "import { mk" + 'dtempSync } from "node:fs";',
    "new Deno." + "Command(Deno.execPath(), { args });",
    'import { spawn } from "node:child' + '_process";',
    "import { errorReport, main } from " + JSON.stringify("../main.ts") + ";",
  ];
  samples.forEach((sample, i) => assert.match(sample, ONE_WAY[i].pattern));
  assert.doesNotMatch(
    "import { errorReport } from " + JSON.stringify("../main.ts"),
    ONE_WAY[4].pattern,
  );
  assert.doesNotMatch("await withTempDir(async (dir) => {});", ONE_WAY[0].pattern);
});
