import assert from "node:assert/strict";
import denoConfig from "../deno.json" with { type: "json" };
import { runCli } from "./helpers/cli.ts";

const COMMANDS = ["textualize", "collate", "init", "forward", "pretrain", "infer", "eval", "demo"];

const cli = (...args: string[]) => runCli(args);

Deno.test("--version prints the version from deno.json", async () => {
  const run = await cli("--version");
  assert.equal(run.code, 0);
  assert.equal(run.stdout, `recsysllm ${denoConfig.version}`);
});

Deno.test("--help lists every command; no arguments prints it with status 2", async () => {
  const help = await cli("--help");
  assert.equal(help.code, 0);
  for (const name of COMMANDS) assert.match(help.stdout, new RegExp(`^  ${name} `, "m"));
  const bare = await cli();
  assert.equal(bare.code, 2);
  assert.equal(bare.stdout, help.stdout);
});

Deno.test("an unknown command is a one-line usage error with status 2", async () => {
  const run = await cli("trian", "--data", "x");
  assert.equal(run.code, 2);
  assert.equal(run.stderr.split("\n").length, 1);
  assert.match(run.stderr, /^error: unknown command "trian" \(commands: textualize, collate,/);
});

for (const name of COMMANDS) {
  Deno.test(`${name}: --help prints its usage; an unknown flag is a one-line error with status 2`, async () => {
    const help = await cli(name, "--help");
    assert.equal(help.code, 0);
    assert.match(help.stdout, new RegExp(`^Usage: recsysllm ${name}\\b`));
    const bad = await cli(name, "--no-such-flag");
    assert.equal(bad.code, 2, bad.stderr);
    assert.equal(bad.stderr.split("\n").length, 1, bad.stderr);
    assert.match(bad.stderr, new RegExp(`^error: ${name}: .*--no-such-flag`));
  });
}
