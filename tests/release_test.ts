/**
 * The one-file release (tools/release.ts), built uncompressed here (xz takes minutes; `deno task
 * release` reports the xz size and refuses one over 60 MB), copied alone into a fresh directory
 * and run from there with an empty HOME, a bare environment and, where `unshare -n` works (as
 * root), no network: `--version`, then a 2-step demo.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { stub } from "../tools/release.ts";
import { type ProcessRun, runProcess } from "./helpers/process.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const denoConfig = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
const supported = Deno.build.os === "linux" && Deno.build.arch === "x86_64";

function run(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<ProcessRun> {
  return runProcess([cmd, ...args], { ...options, clearEnv: options.env !== undefined });
}

async function canUnshare(): Promise<boolean> {
  try {
    return (await run("unshare", ["-n", "true"])).code === 0;
  } catch {
    return false;
  }
}

Deno.test("the release stub's length does not depend on the offset it records", () => {
  const text = (offset: number) =>
    stub({ version: "1.2.3", name: "n", hash: "abc", offset, compression: "xz" });
  assert.equal(text(0).length, text(123456).length);
  assert.match(text(1496), /^offset=0000001496$/m);
  assert.match(text(0), /command -v xz/);
  assert.doesNotMatch(
    stub({ version: "1", name: "n", hash: "a", offset: 0, compression: "none" }),
    /command -v/,
  );
});

Deno.test({
  name: "the release is one file that runs from a fresh directory, offline, with an empty HOME",
  ignore: !supported,
  async fn() {
    await withTempDir(async (dir) => {
      const built = join(dir, "built", "recsysllm");
      const release = await run(Deno.execPath(), [
        "run",
        "-A",
        join(ROOT, "tools/release.ts"),
        ...["--compression", "none", "--out", built],
      ]);
      assert.equal(release.code, 0, release.stderr);
      const report = JSON.parse(release.stdout.trim());
      assert.equal(report.bytes, (await Deno.stat(built)).size);
      assert.match(release.stderr, /bundle: packing .* \[\d+\.\ds\]/); // progress as it goes

      // A fresh place holding only the file; an empty HOME; no Deno on PATH; no network.
      const fresh = join(dir, "fresh");
      const home = join(dir, "home");
      await Deno.mkdir(fresh);
      await Deno.mkdir(home);
      await Deno.rename(built, join(fresh, "recsysllm"));
      const env = { HOME: home, PATH: "/usr/bin:/bin", NO_COLOR: "1" };
      const offline = await canUnshare();
      const recsysllm = (...args: string[]) =>
        offline
          ? run("unshare", ["-n", "./recsysllm", ...args], { env, cwd: fresh })
          : run("./recsysllm", args, { env, cwd: fresh });

      const version = await recsysllm("--version");
      assert.equal(version.code, 0, version.stderr);
      assert.equal(version.stdout.trim(), `recsysllm ${denoConfig.version}`);
      assert.match(
        version.stderr,
        /^recsysllm: unpacking into .*\.cache\/recsysllm\/.* \(first run only\)\n$/,
      );
      const again = await recsysllm("--version");
      assert.equal(again.stderr, ""); // unpacked once

      const demo = await recsysllm(
        "demo",
        "--steps",
        "2",
        "--limit",
        "2",
        "--out",
        "demo",
        "--quiet",
      );
      assert.equal(demo.code, 0, demo.stderr);
      const summary = JSON.parse(demo.stdout.trim().split("\n").at(-1)!);
      assert.equal(summary.out, "demo");
      const evaluation = JSON.parse(await Deno.readTextFile(join(fresh, "demo", "eval.json")));
      assert.ok("recsysllm" in evaluation.methods);
      // Nothing but the file and what the demo wrote is left in the working directory.
      const names = [...Deno.readDirSync(fresh)].map((e) => e.name).sort();
      assert.deepEqual(names, ["demo", "recsysllm"]);

      // Without HOME it unpacks into $TMPDIR/recsysllm-UID, a folder nobody else may write (one
      // left open, as another user could have made it, is closed before it is trusted).
      const tmp = join(dir, "tmp");
      const shared = join(tmp, `recsysllm-${Deno.uid()}`);
      await Deno.mkdir(shared, { recursive: true });
      await Deno.chmod(shared, 0o777);
      const bare = await run("./recsysllm", ["--version"], {
        env: { PATH: "/usr/bin:/bin", TMPDIR: tmp, NO_COLOR: "1" },
        cwd: fresh,
      });
      assert.equal(bare.code, 0, bare.stderr);
      assert.match(bare.stderr, new RegExp(`unpacking into ${shared}/`));
      assert.equal((await Deno.stat(shared)).mode! & 0o777, 0o700);
    });
  },
});
