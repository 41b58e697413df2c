/**
 * Golden outputs of textualize, one hand-written fixture per input format: the command is run
 * in-process and every file of the dataset directory must equal the committed golden byte for
 * byte. To refresh the goldens after an intended change, run
 *
 *     UPDATE_GOLDENS=1 deno test -A tests/textualize_golden_test.ts
 *
 * and review the diff under fixtures/textualize/NAME/expected/ before committing.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { runCli } from "./helpers/cli.ts";
import { DATASET_FILES, fixture, GOLDEN_CASES, readRecords } from "./helpers/textualize.ts";
import { withTempDir } from "./helpers/temp.ts";

const UPDATE = Deno.env.get("UPDATE_GOLDENS") === "1";

for (const { name, args } of GOLDEN_CASES) {
  Deno.test(`textualize ${name} fixture matches its golden output byte for byte`, async () => {
    await withTempDir(async (tmp) => {
      const out = join(tmp, "data");
      const run = await runCli(["textualize", ...args, `--out=${out}`, "--quiet"]);
      assert.equal(run.code, 0, run.stderr);
      const expectedDir = fixture("textualize", name, "expected");
      if (UPDATE) {
        await Deno.mkdir(expectedDir, { recursive: true });
        for (const file of DATASET_FILES) {
          await Deno.copyFile(join(out, file), join(expectedDir, file));
        }
      }
      for (const file of DATASET_FILES) {
        const got = await Deno.readTextFile(join(out, file));
        const want = await Deno.readTextFile(join(expectedDir, file));
        assert.equal(got, want, `${name}/${file} differs from the golden (see the file's header)`);
      }
    });
  });
}

Deno.test("a gzip-compressed review file gives the same records as the plain one, in one member or two", async () => {
  const bytes = await Deno.readFile(fixture("textualize", "amazon", "reviews.json"));
  // `cat a.gz b.gz` (and bgzip, and appending writers) make a file of several gzip members.
  const cut = bytes.indexOf(0x0a, bytes.length >> 1) + 1;
  const members = [
    gzipSync(bytes),
    new Uint8Array([...gzipSync(bytes.subarray(0, cut)), ...gzipSync(bytes.subarray(cut))]),
  ];
  for (const compressed of members) {
    await withTempDir(async (tmp) => {
      const gz = join(tmp, "reviews.json.gz");
      await Deno.writeFile(gz, compressed);
      await sameAsGolden(tmp, gz);
    });
  }
});

async function sameAsGolden(tmp: string, gz: string): Promise<void> {
  {
    const amazon = GOLDEN_CASES.find((c) => c.name === "amazon")!;
    const args = amazon.args.map((a) => a.startsWith("--input=") ? `--input=${gz}` : a);
    const run = await runCli(["textualize", ...args, `--out=${join(tmp, "data")}`, "--quiet"]);
    assert.equal(run.code, 0, run.stderr);
    for (
      const file of [
        "train.jsonl",
        "valid.jsonl",
        "test.jsonl",
        "candidates.jsonl",
        "entities.json",
      ]
    ) {
      assert.equal(
        await Deno.readTextFile(join(tmp, "data", file)),
        await Deno.readTextFile(fixture("textualize", "amazon", "expected", file)),
        file,
      );
    }
    assert.ok(readRecords(join(tmp, "data", "train.jsonl")).length > 0);
  }
}
