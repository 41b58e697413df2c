// Sharded runs (lib/shard, `--shard`, `recsysllm merge`): the stable user hash, --shard parsing,
// byte-identical merges of infer, baselines and textualize parts for n = 1, 3 and 7, eval over
// parts, and the refusals of merge.
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { runCli } from "./helpers/cli.ts";
import { TINY, tinyWeights, writeModelDir } from "./helpers/infer.ts";
import { processTempDir, withTempDir } from "./helpers/temp.ts";
import { parseShard, partPath, shardOfUser } from "../lib/shard/shard.ts";
import { inferRunIdentity } from "../lib/shard/identity.ts";
import { canonicalJson } from "../lib/shard/part.ts";
import { fixture, GOLDEN_CASES } from "./helpers/textualize.ts";
import { fileURLToPath } from "node:url";

const DEMO = fileURLToPath(new URL("../fixtures/demo", import.meta.url));
const TEXTUALIZE = [
  "textualize",
  "--quiet",
  "--format",
  "csv",
  "--input",
  join(DEMO, "interactions.csv"),
  "--users",
  join(DEMO, "users.csv"),
  "--items",
  join(DEMO, "items.csv"),
  "--seed",
  "3",
];

// One dataset (the built-in demo data: 600 users) and one tiny model for the whole file.
const WORK = await processTempDir();
const DATA = join(WORK, "data");
const MODEL = join(WORK, "model");
assert.equal((await runCli([...TEXTUALIZE, "--out", DATA])).code, 0);
await writeModelDir(MODEL, TINY, tinyWeights(TINY, 5));

async function ok(args: string[]): Promise<string> {
  const result = await runCli(args);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout;
}

async function files(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

async function sameTree(a: string, b: string): Promise<void> {
  const names = await files(a);
  assert.deepEqual(await files(b), names);
  for (const name of names) {
    assert.ok(
      (await Deno.readTextFile(join(a, name))) === (await Deno.readTextFile(join(b, name))),
      `${name} differs`,
    );
  }
}

/** Independent of lib/shard: WebCrypto's SHA-256 and DataView's 64-bit read. */
async function expectedShard(user: string, n: number): Promise<number> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(user));
  return Number(new DataView(digest).getBigUint64(0, false) % BigInt(n));
}

Deno.test("a user's shard is SHA-256 of its id mod n: fixed, spread evenly", async () => {
  const users = Array.from({ length: 3000 }, (_, i) => (i % 3 === 0 ? `A${i * 7919}X` : `${i}`));
  for (const n of [1, 2, 3, 7, 100]) {
    const sizes = new Array(n).fill(0);
    for (const [i, user] of users.entries()) {
      const s = shardOfUser(user, n);
      if (i < 300) assert.equal(s, await expectedShard(user, n), `${user} of ${n}`);
      sizes[s]++;
    }
    if (n <= 7) {
      for (const size of sizes) {
        assert.ok(Math.abs(size - users.length / n) < 0.2 * users.length / n);
      }
    }
  }
  assert.equal(shardOfUser("ü-ñ", 5), await expectedShard("ü-ñ", 5));
});

Deno.test("--shard reads i/n, and the index of a Kubernetes or Slurm array job with auto", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const none = env({});
  assert.deepEqual(parseShard("2/7", none), { index: 2, count: 7 });
  assert.deepEqual(parseShard("0/1", none), { index: 0, count: 1 });
  for (const bad of ["7/7", "-1/3", "1", "a/3", "1/0", "1/2/3", ""]) {
    // The library names its option; the command words it as --shard (cli tests).
    assert.throws(() => parseShard(bad, none), /OptionError: shard\b/, bad);
  }
  const k8s = env({ JOB_COMPLETION_INDEX: "4" });
  assert.deepEqual(parseShard("auto/5", k8s), { index: 4, count: 5 });
  assert.throws(() => parseShard("auto", k8s), /auto\/N/);
  // Said with the variable the index came from, not as an i/n the user never wrote.
  assert.throws(
    () => parseShard("auto/4", k8s),
    /auto\/4: JOB_COMPLETION_INDEX is 4, not in 0\.\.3/,
  );
  const slurm = env({
    SLURM_ARRAY_TASK_ID: "7",
    SLURM_ARRAY_TASK_MIN: "1",
    SLURM_ARRAY_TASK_COUNT: "7",
  });
  assert.deepEqual(parseShard("auto", slurm), { index: 6, count: 7 });
  assert.deepEqual(parseShard("auto/7", slurm), { index: 6, count: 7 });
  assert.throws(() => parseShard("auto/8", slurm), /SLURM_ARRAY_TASK_COUNT is 7/);
  const stepped = env({ SLURM_ARRAY_TASK_ID: "12", SLURM_ARRAY_TASK_COUNT: "7" });
  assert.throws(() => parseShard("auto", stepped), /contiguous/);
  // --array=0-14:2 and --array=1,2,5: every task refuses, the early ones too.
  const everyOther = (id: string) =>
    env({
      SLURM_ARRAY_TASK_ID: id,
      SLURM_ARRAY_TASK_MIN: "0",
      SLURM_ARRAY_TASK_MAX: "14",
      SLURM_ARRAY_TASK_COUNT: "8",
      SLURM_ARRAY_TASK_STEP: "2",
    });
  assert.throws(() => parseShard("auto", everyOther("4")), /the Slurm array has gaps/);
  const listed = env({
    SLURM_ARRAY_TASK_ID: "2",
    SLURM_ARRAY_TASK_MIN: "1",
    SLURM_ARRAY_TASK_MAX: "5",
    SLURM_ARRAY_TASK_COUNT: "3",
  });
  assert.throws(() => parseShard("auto", listed), /5 ids for 3 tasks/);
  assert.throws(
    () => parseShard("auto/0", env({ SLURM_ARRAY_TASK_ID: "0" })),
    /the number of shards must be at least 1/,
  );
  assert.throws(() => parseShard("auto", none), /neither/);
  assert.throws(
    () => parseShard("auto/3", env({ JOB_COMPLETION_INDEX: "1", SLURM_ARRAY_TASK_ID: "1" })),
    /both/,
  );
  assert.equal(
    partPath("runs/pred.jsonl", { index: 2, count: 7 }),
    "runs/pred-00002-of-00007.jsonl",
  );
  assert.equal(partPath("runs/data/", { index: 0, count: 3 }), "runs/data-00000-of-00003");
});

Deno.test("sharded infer merges into the unsharded predictions byte for byte (n = 1, 3, 7)", async () => {
  await withTempDir(async (dir) => {
    const infer = [
      "infer",
      "--quiet",
      "--device",
      "cpu",
      "--model",
      MODEL,
      "--data",
      DATA,
      "--limit",
      "40",
      "--beams",
      "4",
      "--top-k",
      "3",
      "--max-new-tokens",
      "3",
      "--batch-size",
      "5",
    ]; // deno-fmt-ignore
    const whole = join(dir, "pred.jsonl");
    await ok([...infer, "--out", whole]);
    const expected = await Deno.readTextFile(whole);
    assert.equal(expected.split("\n").length - 1, 40);
    for (const n of [1, 3, 7]) {
      const parts: string[] = [];
      // In reverse order: what one shard writes does not depend on the others.
      for (let i = n - 1; i >= 0; i--) {
        await ok([...infer, "--out", join(dir, `p${n}.jsonl`), "--shard", `${i}/${n}`]);
        parts.push(
          join(dir, `p${n}-${String(i).padStart(5, "0")}-of-${String(n).padStart(5, "0")}.jsonl`),
        );
      }
      const merged = join(dir, `merged${n}.jsonl`);
      await ok(["merge", "--quiet", "--out", merged, ...parts]);
      assert.ok((await Deno.readTextFile(merged)) === expected, `n = ${n}`);
      if (n === 3) {
        // A whole run over a part would take it for its own predictions file: refused, the part
        // and its sidecar kept; --force replaces it.
        const part = parts[0];
        const before = await Deno.readTextFile(part);
        const over = await runCli([...infer, "--limit", "2", "--out", part]);
        assert.equal(over.code, 1, over.stderr);
        assert.match(
          over.stderr,
          /is a part of a sharded run \(.*\.shard\.json describes it\): writing over it would lose that part; choose another --out, or pass --force/,
        );
        assert.equal(await Deno.readTextFile(part), before);
        await ok([...infer, "--limit", "2", "--out", part, "--force"]);
        assert.equal((await Deno.readTextFile(part)).split("\n").length - 1, 2);
        // ... its sidecar with it, which would describe bytes gone.
        await assert.rejects(Deno.lstat(`${part}.shard.json`), Deno.errors.NotFound);
        await ok([...infer, "--out", join(dir, "p3.jsonl"), "--shard", "2/3"]); // restored
        // A link to a part is that part (the output is written through it): refused alike, by
        // infer and by a merge of another run; merge --force replaces it and its sidecar.
        const other = join(dir, "p1-00000-of-00001.jsonl");
        const link = join(dir, "link.jsonl");
        await Deno.symlink(other, link);
        const otherBefore = await Deno.readTextFile(other);
        for (const args of [[...infer, "--limit", "2"], ["merge", "--quiet", ...parts]]) {
          const viaLink = await runCli([...args, "--out", link]);
          assert.equal(viaLink.code, 1, viaLink.stderr);
          assert.match(viaLink.stderr, /link\.jsonl: is a part of a sharded run/);
          assert.equal(await Deno.readTextFile(other), otherBefore);
        }
        await ok(["merge", "--quiet", ...parts, "--out", link, "--force"]);
        assert.equal(await Deno.readTextFile(other), expected);
        await assert.rejects(Deno.lstat(`${other}.shard.json`), Deno.errors.NotFound);
        // A directory (a dataset's part) is no file output, --force or not: said at once.
        const datasetPart = join(dir, "d-00000-of-00002");
        await Deno.mkdir(datasetPart);
        await Deno.writeTextFile(join(datasetPart, "shard.json"), "{}");
        const overDir = await runCli([...infer, "--limit", "2", "--out", datasetPart]);
        assert.equal(overDir.code, 1, overDir.stderr);
        assert.doesNotMatch(overDir.stderr, /--force/);
        assert.match(overDir.stderr, /is a directory/);
        // eval over the parts (one method: the tag is not part of the name) = eval of the merge.
        const evalArgs = ["eval", "--quiet", "--data", DATA];
        const ofParts = await ok([...evalArgs, ...parts.flatMap((p) => ["--predictions", p])]);
        const ofMerged = await ok([...evalArgs, "--predictions", merged, "--name", "p3"]);
        const a = JSON.parse(ofParts);
        const b = JSON.parse(ofMerged);
        assert.deepEqual(Object.keys(a.methods), ["p3"]);
        assert.deepEqual(a, b);
      }
    }
  });
});

Deno.test("sharded baselines merge into the unsharded saved baselines byte for byte", async () => {
  await withTempDir(async (dir) => {
    const evalArgs = ["eval", "--quiet", "--data", DATA, "--baseline", "pop,itemknn,random,mean"];
    const wholeOut = await ok([...evalArgs, "--save-baselines", join(dir, "whole")]);
    for (const n of [1, 3, 7]) {
      const partsDir = join(dir, `parts${n}`);
      for (let i = 0; i < n; i++) {
        await ok([...evalArgs, "--save-baselines", partsDir, "--shard", `${i}/${n}`]);
      }
      for (const name of ["pop", "itemknn", "random", "mean"]) {
        const parts = (await files(partsDir))
          .filter((f) => f.startsWith(`${name}-`) && f.endsWith(".jsonl"))
          .map((f) => join(partsDir, f));
        assert.equal(parts.length, n);
        const merged = join(dir, `${name}${n}.jsonl`);
        await ok(["merge", "--quiet", "--out", merged, ...parts]);
        assert.ok(
          (await Deno.readTextFile(merged)) ===
            (await Deno.readTextFile(join(dir, "whole", `${name}.jsonl`))),
          `${name}, n = ${n}`,
        );
      }
    }
    // The merged files score as the baselines themselves did (on the tasks each answers).
    const scored = JSON.parse(
      await ok([
        "eval",
        "--quiet",
        "--data",
        DATA,
        ...["pop", "itemknn", "random", "mean"].flatMap((
          b,
        ) => ["--predictions", join(dir, `${b}7.jsonl`), "--name", b]),
      ]), // deno-fmt-ignore
    ).methods;
    const whole = JSON.parse(wholeOut).methods;
    for (const [name, tasks] of Object.entries(whole as Record<string, Record<string, unknown>>)) {
      for (const [task, result] of Object.entries(tasks)) {
        assert.deepEqual(scored[name][task], result, `${name} ${task}`);
      }
    }
  });
});

Deno.test("sharded textualize merges into the unsharded dataset directory byte for byte", async () => {
  await withTempDir(async (dir) => {
    for (const n of [1, 3, 7]) {
      const parts: string[] = [];
      for (let i = 0; i < n; i++) {
        const summary = JSON.parse(
          await ok([...TEXTUALIZE, "--out", join(dir, `d${n}`), "--shard", `${i}/${n}`]),
        );
        parts.push(summary.out);
      }
      await ok(["merge", "--quiet", "--out", join(dir, `merged${n}`), ...parts]);
      await sameTree(DATA, join(dir, `merged${n}`));
    }
    // A part directory named by its own shard.json (`merge d3-*/shard.json`) is that part.
    const sidecars = [0, 1, 2].map((i) => join(dir, `d3-0000${i}-of-00003`, "shard.json"));
    await ok(["merge", "--quiet", "--out", join(dir, "by-sidecar"), ...sidecars]);
    await sameTree(DATA, join(dir, "by-sidecar"));
    // Parts of another seed, missing parts, and a directory that is not a dataset are refused.
    const other = JSON.parse(
      await ok([...TEXTUALIZE, "--seed", "4", "--out", join(dir, "e"), "--shard", "1/3"]),
    ).out;
    const d3 = (i: number) => join(dir, `d3-0000${i}-of-00003`);
    const keep = join(dir, "keep");
    await Deno.mkdir(keep);
    await Deno.writeTextFile(join(keep, "notes.txt"), "mine");
    for (
      const [parts, out, pattern] of [
        [[d3(0), other, d3(2)], join(dir, "m"), /another run .*differ in manifest\.seed/],
        [[d3(0), d3(2)], join(dir, "m"), /1 of 3 shards are missing/],
        [[d3(0), d3(1), d3(2)], keep, /keep: holds files recsysllm did not write \(notes\.txt\)/],
      ] as const
    ) {
      const result = await runCli(["merge", "--out", out, ...parts]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, pattern);
    }
    assert.equal(await Deno.readTextFile(join(keep, "notes.txt")), "mine");
    assert.ok(!(await files(dir)).includes("m"));
    // Each part is a dataset of its own users: its counts are those of its files.
    const part = join(dir, "d3-00001-of-00003");
    const manifest = JSON.parse(await Deno.readTextFile(join(part, "manifest.json")));
    const lines = (await Deno.readTextFile(join(part, "test.jsonl"))).split("\n").length - 1;
    const counted = Object.values(manifest.counts.test as Record<string, Record<string, number>>)
      .flatMap((t) => Object.values(t)).reduce((a, b) => a + b, 0);
    assert.equal(counted, lines);
    // A whole dataset over a part directory: refused, kept; --force replaces it.
    const before = await files(d3(1));
    const over = await runCli([...TEXTUALIZE, "--out", d3(1)]);
    assert.equal(over.code, 1, over.stderr);
    assert.match(over.stderr, /d3-00001-of-00003: is a part of a sharded run .*--force/);
    assert.deepEqual(await files(d3(1)), before);
    await ok([...TEXTUALIZE, "--out", d3(1), "--force"]);
    await sameTree(DATA, d3(1));
  });
});

Deno.test("merged textualize parts are checked as one dataset: no training record is an error, a split left empty a warning", async () => {
  await withTempDir(async (dir) => {
    // One user of three interactions: sequential has no training record (it needs four).
    const input = join(dir, "three.csv");
    await Deno.writeTextFile(input, "user_id,item_id\nu1,a\nu1,b\nu1,c\n");
    const args = ["textualize", "--quiet", "--format=csv", `--input=${input}`];
    const parts = [];
    for (const i of [0, 1]) {
      const run = [...args, "--tasks=sequential", `--out=${join(dir, "s")}`, `--shard=${i}/2`];
      parts.push(JSON.parse(await ok(run)).out);
    }
    const merged = await runCli(["merge", "--quiet", "--out", join(dir, "m"), ...parts]);
    assert.equal(merged.code, 1);
    assert.match(
      merged.stderr,
      /three\.csv: no training records for 1 users \(sequential: it needs users with 4 or more/,
    );
    assert.ok(!(await files(dir)).includes("m"), "nothing written");
    // Profiles train; with no prompted task, valid and test are empty: a warning, as unsharded.
    // The second shard reads the file by another path (as an array task's scratch copy would):
    // the parts still merge.
    const profiles = [];
    const elsewhere = `${dir}/../${basename(dir)}/three.csv`;
    for (const i of [0, 1]) {
      const run = [
        ...["textualize", "--quiet", "--format=csv", `--input=${i === 0 ? input : elsewhere}`],
        ...["--tasks=profile", `--out=${join(dir, "p")}`, `--shard=${i}/2`],
      ];
      profiles.push(JSON.parse(await ok(run)).out);
    }
    const warned = await runCli(["merge", "--quiet", "--out", join(dir, "pm"), ...profiles]);
    assert.equal(warned.code, 0, warned.stderr);
    assert.match(
      warned.stderr,
      /^warning: .*three\.csv: valid\.jsonl and test\.jsonl hold no records: profile has no prompts/m,
    );
  });
});

Deno.test("every golden textualize case, sharded in 3 and merged, is its golden directory", async () => {
  // These small inputs have users skipped, short candidate lists and reviews without an
  // explanation: the per-user skip counts of the manifest add up over the shards.
  await withTempDir(async (dir) => {
    for (const { name, args } of GOLDEN_CASES) {
      const parts: string[] = [];
      for (let i = 0; i < 3; i++) {
        const summary = await ok([
          "textualize",
          "--quiet",
          ...args,
          `--out=${join(dir, name)}`,
          `--shard=${i}/3`,
        ]);
        parts.push(JSON.parse(summary).out);
      }
      await ok(["merge", "--quiet", "--out", join(dir, `${name}-merged`), ...parts]);
      const expected = fixture("textualize", name, "expected");
      for (const file of await files(expected)) {
        assert.ok(
          (await Deno.readTextFile(join(dir, `${name}-merged`, file))) ===
            (await Deno.readTextFile(join(expected, file))),
          `${name}: ${file}`,
        );
      }
    }
  });
});

Deno.test("--shard auto on the command line reads the array job's environment", async () => {
  const names = [
    "JOB_COMPLETION_INDEX",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_STEP",
  ];
  // This test may itself run inside an array job: its variables are put back afterwards.
  const saved = names.map((k) => [k, Deno.env.get(k)] as const);
  for (const k of names) Deno.env.delete(k);
  try {
    await withTempDir(async (dir) => {
      const args = ["textualize", "--quiet", ...GOLDEN_CASES[0].args, `--out=${join(dir, "d")}`];
      const cases: [Record<string, string>, string, string][] = [
        [
          { SLURM_ARRAY_TASK_ID: "3", SLURM_ARRAY_TASK_MIN: "1", SLURM_ARRAY_TASK_COUNT: "3" },
          "auto",
          "d-00002-of-00003",
        ],
        [{ JOB_COMPLETION_INDEX: "1" }, "auto/4", "d-00001-of-00004"],
      ]; // deno-fmt-ignore
      for (const [env, value, part] of cases) {
        for (const [k, v] of Object.entries(env)) Deno.env.set(k, v);
        try {
          assert.equal(JSON.parse(await ok([...args, `--shard=${value}`])).out, join(dir, part));
        } finally {
          for (const k of Object.keys(env)) Deno.env.delete(k);
        }
      }
      assert.equal((await runCli([...args, "--shard=auto"])).code, 2);
    });
  } finally {
    for (const [k, v] of saved) if (v !== undefined) Deno.env.set(k, v);
  }
});

Deno.test("a user's shard does not depend on the order of the input or on other shards", async () => {
  await withTempDir(async (dir) => {
    // The interactions in reverse row order: other record order, same users in each shard.
    const [header, ...rows] = (await Deno.readTextFile(join(DEMO, "interactions.csv")))
      .trimEnd().split("\n");
    const reversed = join(dir, "reversed.csv");
    await Deno.writeTextFile(reversed, [header, ...rows.reverse()].join("\n") + "\n");
    const usersOf = async (path: string) => {
      const users = new Set<string>();
      for (const line of (await Deno.readTextFile(path)).split("\n")) {
        if (line !== "") users.add(JSON.parse(line).user);
      }
      return [...users].sort();
    };
    const args = TEXTUALIZE.map((a) => (a === join(DEMO, "interactions.csv") ? reversed : a));
    for (const i of [2, 0]) {
      const a = JSON.parse(await ok([...TEXTUALIZE, "--out", join(dir, "a"), "--shard", `${i}/3`]));
      const b = JSON.parse(await ok([...args, "--out", join(dir, "b"), "--shard", `${i}/3`]));
      const users = await usersOf(join(a.out, "test.jsonl"));
      assert.ok(users.length > 150);
      assert.deepEqual(await usersOf(join(b.out, "test.jsonl")), users);
      for (const user of users) assert.equal(shardOfUser(user, 3), i);
    }
  });
});

Deno.test("merge refuses missing, duplicated, foreign and altered parts, writing nothing", async () => {
  await withTempDir(async (dir) => {
    const evalArgs = ["eval", "--quiet", "--data", DATA, "--baseline", "pop,itemknn"];
    for (let i = 0; i < 3; i++) {
      await ok([...evalArgs, "--save-baselines", join(dir, "a"), "--shard", `${i}/3`]);
    }
    await ok([...evalArgs, "--top", "30", "--save-baselines", join(dir, "b"), "--shard", "1/3"]);
    await ok([...evalArgs, "--save-baselines", join(dir, "c"), "--shard", "1/4"]);
    const pop = (i: number, d = "a", n = 3) => join(dir, d, `pop-0000${i}-of-0000${n}.jsonl`);
    const refused = async (parts: string[], pattern: RegExp) => {
      const before = await files(dir);
      const out = join(dir, "merged.jsonl");
      const result = await runCli(["merge", "--out", out, ...parts]);
      assert.equal(result.code, 1, result.stderr);
      assert.equal(result.stderr.split("\n").length, 1, result.stderr);
      assert.match(result.stderr, pattern);
      assert.deepEqual(await files(dir), before, "merge wrote something");
    };
    await refused([pop(0), pop(2)], /1 of 3 shards are missing \(1\/3\)/);
    await refused([pop(0), pop(1), pop(1), pop(2)], /shard 1\/3 is given twice \(also /);
    // A glob that catches the sidecars too (pop-0000*) says so.
    await refused(
      [pop(0), pop(1), `${pop(1)}.shard.json`, pop(2)],
      /shard 1\/3 is given twice \(the part and its sidecar \.shard\.json: name the parts only\)/,
    );
    await refused([pop(0), pop(1, "b"), pop(2)], /another run .*differ in top/);
    await refused([pop(0), pop(1, "c", 4), pop(2)], /one of 3 shards/);
    await refused(
      [pop(0), join(dir, "a", "itemknn-00001-of-00003.jsonl"), pop(2)],
      /differ in baseline/,
    );
    const plain = join(dir, "plain.jsonl");
    await Deno.copyFile(pop(1), plain);
    await refused(
      [pop(0), plain, pop(2)],
      /not a shard part: plain\.jsonl\.shard\.json is missing/,
    );
    await Deno.remove(plain);
    // A part changed after it was written (same size): caught while copying, nothing left.
    const text = await Deno.readTextFile(pop(1));
    const at = text.indexOf('"score":') + 8;
    const digit = String((Number(text[at]) + 1) % 10);
    await Deno.writeTextFile(pop(1), text.slice(0, at) + digit + text.slice(at + 1));
    assert.notEqual(await Deno.readTextFile(pop(1)), text);
    await refused([pop(0), pop(1), pop(2)], /not those its sidecar records/);
    await Deno.writeTextFile(pop(1), text);
    await ok(["merge", "--quiet", "--out", join(dir, "merged.jsonl"), pop(0), pop(1), pop(2)]);
    // Usage mistakes are usage errors.
    assert.equal((await runCli(["merge", "--out", join(dir, "x.jsonl")])).code, 2);
    const shardStdout = await runCli([
      "infer",
      "--model",
      MODEL,
      "--data",
      DATA,
      "--out",
      "-",
      "--shard",
      "0/2",
    ]);
    assert.equal(shardStdout.code, 2);
    assert.equal((await runCli([...evalArgs, "--shard", "0/2"])).code, 2);
  });
});

Deno.test("merge refuses --out -, a part of another run as --out, and a malformed sidecar, writing nothing", async () => {
  await withTempDir(async (dir) => {
    const evalArgs = ["eval", "--quiet", "--data", DATA, "--baseline", "pop"];
    for (let i = 0; i < 2; i++) {
      await ok([...evalArgs, "--save-baselines", join(dir, "a"), "--shard", `${i}/2`]);
    }
    await ok([...evalArgs, "--save-baselines", join(dir, "b"), "--shard", "0/3"]);
    const parts = [0, 1].map((i) => join(dir, "a", `pop-0000${i}-of-00002.jsonl`));
    const other = join(dir, "b", "pop-00000-of-00003.jsonl");
    const otherBytes = await Deno.readTextFile(other);
    const refused = async (args: string[], code: number, pattern: RegExp) => {
      const before = await files(join(dir, "b"));
      const result = await runCli(["merge", ...args]);
      assert.equal(result.code, code, result.stderr);
      assert.equal(result.stderr.split("\n").length, 1, result.stderr);
      assert.match(result.stderr, pattern);
      assert.deepEqual(await files(join(dir, "b")), before, "merge wrote something");
    };
    // `-` is no file name: merge writes no file called "-" (nor half a merge to stdout).
    await refused(["--out", "-", ...parts], 2, /--out - is not stdout/);
    assert.equal(await Deno.lstat("-").then(() => true, () => false), false);
    // A part of another run (beside its sidecar) is not replaced as a predictions file would be.
    await refused(
      ["--out", other, ...parts],
      1,
      /is a part of a sharded run \(.*pop-00000-of-00003\.jsonl\.shard\.json describes it\).*--force/,
    );
    assert.equal(await Deno.readTextFile(other), otherBytes);
    // A sidecar with a negative key space is malformed: a one-line error, not an internal one.
    const sidecar = `${parts[0]}.shard.json`;
    const manifest = JSON.parse(await Deno.readTextFile(sidecar));
    manifest.files["pop.jsonl"].key_space = -1;
    await Deno.writeTextFile(sidecar, JSON.stringify(manifest));
    await refused(
      ["--out", join(dir, "b", "m.jsonl"), ...parts],
      1,
      /files\["pop\.jsonl"\] is malformed/,
    );
  });
});

Deno.test("item predictions do not depend on the batch size, even where a prompt keeps one beam", async () => {
  await withTempDir(async (dir) => {
    // The step multiplies each prompt's rows (its live beams) by its part A as one matrix: alone
    // in a batch, a prompt down to one live beam makes a product of one row, which onnxruntime's
    // CPU GEMM rounds differently; in a batch of 8 the widest prompt sets the rows of all.
    const infer = [
      ...["infer", "--quiet", "--device", "cpu", "--model", MODEL, "--data", DATA],
      ...["--limit", "60", "--tasks", "sequential,direct", "--beams", "3", "--top-k", "3"],
    ];
    const outputs: string[] = [];
    for (const size of ["1", "8"]) {
      const out = join(dir, `b${size}.jsonl`);
      await ok([...infer, "--batch-size", size, "--out", out]);
      outputs.push(await Deno.readTextFile(out));
    }
    assert.ok(outputs[0].split("\n").length > 10);
    assert.ok(outputs[0] === outputs[1], "batch size 1 and 8 give the same bytes");
  });
});

Deno.test("parts of runs on other sampled users, or on none, do not merge", async () => {
  await withTempDir(async (dir) => {
    const infer = [
      ...["infer", "--quiet", "--device", "cpu", "--model", MODEL, "--data", DATA],
      ...["--limit", "6", "--tasks", "sequential", "--beams", "2", "--top-k", "2"],
    ];
    const sample = ["--sample-users", "300", "--sample-seed", "4"];
    await ok([...infer, ...sample, "--out", join(dir, "p.jsonl"), "--shard", "0/2"]);
    await ok([...infer, "--out", join(dir, "p.jsonl"), "--shard", "1/2"]);
    const baselines = ["eval", "--quiet", "--data", DATA, "--baseline", "pop"];
    const saved = join(dir, "saved");
    await ok([...baselines, ...sample, "--save-baselines", saved, "--shard", "0/2"]);
    await ok([...baselines, "--save-baselines", saved, "--shard", "1/2"]);
    for (const name of ["p", join("saved", "pop")]) {
      const parts = [0, 1].map((i) => join(dir, `${name}-0000${i}-of-00002.jsonl`));
      const result = await runCli(["merge", "--out", join(dir, "merged.jsonl"), ...parts]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /is from another run .*\(they differ in sample\)/);
    }
  });
});

Deno.test("saved SASRec parts trained with other settings do not merge", async () => {
  await withTempDir(async (dir) => {
    const sasrec = [
      ...["eval", "--quiet", "--data", DATA, "--baseline", "sasrec,mf", "--tasks", "sequential"],
      ...["--sasrec-epochs", "1", "--sasrec-max-length", "5", "--sasrec-patience", "0"],
      ...["--save-baselines", dir],
    ];
    await ok([...sasrec, "--sasrec-hidden", "8", "--shard", "0/2"]);
    await ok([...sasrec, "--sasrec-hidden", "16", "--shard", "1/2"]);
    const part = (name: string, i: number) => join(dir, `${name}-0000${i}-of-00002.jsonl`);
    const result = await runCli([
      "merge",
      "--out",
      join(dir, "m.jsonl"),
      part("sasrec", 0),
      part("sasrec", 1),
    ]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /differ in sasrec\.hidden\)/);
    const sidecar = JSON.parse(await Deno.readTextFile(`${part("mf", 0)}.shard.json`));
    assert.equal(sidecar.run.mf.factors, 8, "mf records its settings, defaults included");
    assert.equal(sidecar.run.sasrec, undefined, "only SASRec's parts record SASRec's settings");
    await ok(["merge", "--quiet", "--out", join(dir, "mf.jsonl"), part("mf", 0), part("mf", 1)]);
  });
});

Deno.test("the identity of a model split in shards covers every file its index names; an adapter's, its settings", async () => {
  await withTempDir(async (dir) => {
    const model = join(dir, "model");
    await Deno.mkdir(model);
    await Deno.writeTextFile(join(model, "config.json"), "{}");
    const weightMap = {
      a: "model-00001-of-00002.safetensors",
      b: "model-00002-of-00002.safetensors",
    };
    await Deno.writeTextFile(
      join(model, "model.safetensors.index.json"),
      JSON.stringify({ weight_map: weightMap }),
    );
    await Deno.writeTextFile(join(model, weightMap.a), "first");
    await Deno.writeTextFile(join(model, weightMap.b), "second");
    const run = {
      model,
      data: DATA,
      split: "test",
      tasks: ["sequential"],
      protocol: "full",
      topK: 10,
      beams: 20,
      excludeSeen: true,
      limit: Infinity,
      maxNewTokens: 8,
      textBeams: 1,
    };
    const before = await inferRunIdentity(run);
    assert.deepEqual(Object.keys(before.model as object).sort(), [
      "config.json",
      "model-00001-of-00002.safetensors",
      "model-00002-of-00002.safetensors",
      "model.safetensors.index.json",
    ]);
    await Deno.writeTextFile(join(model, weightMap.b), "other");
    const after = await inferRunIdentity(run);
    assert.notEqual(canonicalJson(after), canonicalJson(before), "another second shard");

    // An adapter's identity covers its settings too (the attention rule, the trained length).
    const adapter = join(dir, "adapter");
    await Deno.mkdir(adapter);
    await Deno.writeTextFile(join(adapter, "adapter_config.json"), "{}");
    await Deno.writeTextFile(join(adapter, "adapter_model.safetensors"), "lora");
    await Deno.writeTextFile(join(adapter, "recsysllm_adapter.json"), '{"max_length":512}');
    const withAdapter = async () => canonicalJson(await inferRunIdentity({ ...run, adapter }));
    const first = await withAdapter();
    await Deno.writeTextFile(join(adapter, "recsysllm_adapter.json"), '{"max_length":128}');
    assert.notEqual(await withAdapter(), first, "other adapter settings");
  });
});
