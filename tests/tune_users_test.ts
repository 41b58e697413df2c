// textualize --train-through valid --tune-users N: every user's validation item refits the
// training records except a seeded sample's, whose validation records stay a held-out measure
// (infer/eval --sample-users N with the same seed).
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseCsv } from "../lib/data/csv.ts";
import { DEFAULT_RECORD_OPTIONS } from "../lib/data/record_options.ts";
import { textualize } from "../lib/data/textualize.ts";
import { UserSample } from "../lib/data/user_sample.ts";
import { readLines } from "../lib/io/lines.ts";
import { tuneRerank } from "../lib/eval/fusion.ts";
import { runCli } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp.ts";
import { DEMO_READ, demoSequentialArgs, fixture } from "./helpers/textualize.ts";

async function lines(file: string) {
  return (await Deno.readTextFile(file)).trim().split("\n").map((l) => JSON.parse(l));
}

const items = (record: { segments: { entity?: string; kind?: string }[] }) =>
  record.segments.filter((s) => s.kind === "item").map((s) => s.entity!);

Deno.test("textualize --tune-users keeps the sample's validation items out of a refit's training records", async () => {
  await withTempDir(async (dir) => {
    const data = join(dir, "data");

    const run = await runCli(
      demoSequentialArgs(data, "--train-through", "valid", "--tune-users", "100"),
    );
    assert.equal(run.code, 0, run.stderr);
    const manifest = JSON.parse(await Deno.readTextFile(join(data, "manifest.json")));
    assert.deepEqual(manifest.options.tune_users, { size: 100, seed: 1 });
    const sample = new UserSample({ size: 100, users: manifest.users, seed: 1 });

    const validTarget = new Map<string, string>();
    for (const r of await lines(join(data, "valid.jsonl"))) {
      validTarget.set(r.user, r.target[0].entity);
    }
    const trained = new Map<string, Set<string>>();
    for (const r of await lines(join(data, "train.jsonl"))) {
      const seen = trained.get(r.user) ?? new Set<string>();
      for (const e of items(r)) seen.add(e);
      for (const t of r.target ?? []) if (t.entity) seen.add(t.entity);
      trained.set(r.user, seen);
    }
    let tuning = 0, refit = 0;
    for (const [user, target] of validTarget) {
      const seen = trained.get(user) ?? new Set();
      // The validation item is the last before test: a refit user's training records reach it.
      if (sample.has(user)) {
        tuning++;
        // Not as a position of their training records (an item may repeat earlier: skip those).
        const valid = (await lines(join(data, "valid.jsonl"))).find((r) => r.user === user)!;
        if (!valid.history.includes(target)) assert.ok(!seen.has(target), `user ${user}`);
      } else if (seen.has(target)) refit++;
    }
    assert.ok(tuning > 50 && tuning < 160, `${tuning} tuning users`);
    assert.ok(refit > 300, `${refit} users refit`);

    // The validation split scores on the tuning users (or fewer of the same seed), not others.
    const evalValid = (...extra: string[]) =>
      runCli([
        "eval",
        "--data",
        data,
        "--split",
        "valid",
        "--tasks",
        "sequential",
        "--baseline",
        "pop",
        "--quiet",
        ...extra,
      ]);
    for (
      const ok of [["--sample-users", "100"], ["--sample-users", "40", "--sample-seed", "1"]]
    ) {
      const r = await evalValid(...ok);
      assert.equal(r.code, 0, r.stderr);
    }
    for (
      const bad of [[], ["--sample-users", "100", "--sample-seed", "3"], ["--sample-users", "200"]]
    ) {
      const r = await evalValid(...bad);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /or score the users it kept out \(--sample-users 100 --sample-seed 1\)/,
      );
    }

    // eval --tune-rerank likewise: a fusion tuned on the tuning users' validation records only
    // (entries naming their items by entity alone, as the predictions format allows).
    const valid = await lines(join(data, "valid.jsonl"));
    const fusionFile = async (users: (user: string) => boolean) => {
      const file = join(dir, "reranked.jsonl");
      const out = valid.filter((r) => users(r.user)).map((r) => {
        const entities = [...new Set([...r.history.slice(-4), r.target[0].entity])];
        return JSON.stringify({
          id: r.id,
          // As infer --rerank-weight 1 writes them: the score is the model's.
          predictions: entities.map((entity, i) => {
            const lm = entity === r.target[0].entity ? 0 : -5;
            return { entity, score: lm, first_score: -i, lm_score: lm };
          }),
        });
      });
      await Deno.writeTextFile(file, out.join("\n") + "\n");
      return file;
    };
    const tuned = await tuneRerank(await fusionFile((u) => sample.has(u)), data, "valid");
    // The language model's score alone puts the target first: found through its entity.
    assert.equal(tuned.best.metrics["NDCG@10"], 1);
    await assert.rejects(
      async () => tuneRerank(await fusionFile(() => true), data, "valid"),
      /the validation items are training data here .*--sample-users 100 --sample-seed 1/,
    );

    // infer refuses it too, before any model is loaded (eval would refuse what it wrote); on the
    // tuning users it answers.
    const inferValid = (...extra: string[]) =>
      runCli([
        ...["infer", "--data", data, "--split", "valid", "--tasks", "sequential", "--quiet"],
        ...["--model", join(dir, "no-model"), "--out", join(dir, "valid.jsonl"), ...extra],
      ]);
    const refused = await inferValid();
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /the validation items are training data here/);
    const onTuning = await inferValid("--sample-users", "100");
    assert.match(onTuning.stderr, /no-model/, "past the split check, at the model");

    const misuse = await runCli(demoSequentialArgs(join(dir, "x"), "--tune-users", "10"));
    assert.equal(misuse.code, 2);
    assert.match(
      misuse.stderr,
      /--tune-users holds users out of a refit: it needs --train-through valid/,
    );
  });
});

Deno.test("--tune-users: no training record of any task mentions a tuning user's validation item; every other user's refits", async () => {
  await withTempDir(async (dir) => {
    const out = join(dir, "data");
    const tuneUsers = { size: 100, seed: 1 };
    await textualize({
      read: DEMO_READ,
      records: {
        ...DEFAULT_RECORD_OPTIONS,
        seed: 1,
        ratingPerUser: 3,
        explanationPerUser: 2,
        reviewPerUser: 2,
        trainThrough: "valid",
        tuneUsers,
      },
      out,
    });
    // Each user's item ids in time order (ties: file order), from the raw input.
    const rows: { user: string; item: string; time: number; line: number }[] = [];
    for await (const { line, fields } of parseCsv(readLines(fixture("demo", "interactions.csv")))) {
      if (line > 1) rows.push({ user: fields[0], item: fields[1], time: Number(fields[2]), line });
    }
    rows.sort((a, b) => a.time - b.time || a.line - b.line);
    const ids = new Map<string, string[]>();
    for (const r of rows) ids.set(r.user, [...(ids.get(r.user) ?? []), r.item]);
    const entities: { entity: string; kind: string; id: string }[] = JSON.parse(
      await Deno.readTextFile(join(out, "entities.json")),
    );
    const entityOf = new Map(
      entities.filter((e) => e.kind === "item").map((e) => [e.id, e.entity]),
    );
    const manifest = JSON.parse(await Deno.readTextFile(join(out, "manifest.json")));
    const sample = new UserSample({ ...tuneUsers, users: manifest.users });

    const tasks = new Set<string>();
    const refit = new Set<string>();
    const tuning = new Set<string>();
    for (const r of await lines(join(out, "train.jsonl"))) {
      const seq = ids.get(r.user)!.map((id) => entityOf.get(id)!);
      const n = seq.length;
      const tunes = sample.has(r.user);
      if (tunes) tuning.add(r.user);
      // Tuning users train on positions before the validation item; the others through it.
      const allowed = new Set(seq.slice(0, tunes ? n - 2 : n - 1));
      const mentioned = [
        ...items(r),
        ...(r.target ?? []).filter((t: { kind?: string }) => t.kind)
          .map((t: { entity: string }) => t.entity),
      ];
      for (const e of mentioned) {
        assert.ok(allowed.has(e), `${r.id} (tuning: ${tunes}) mentions ${e}`);
      }
      tasks.add(r.task);
      if (!tunes && r.task === "sequential" && r.target[0].entity === seq[n - 2]) refit.add(r.user);
    }
    assert.deepEqual([...tasks].sort(), [...DEFAULT_RECORD_OPTIONS.tasks].sort());
    assert.ok(tuning.size > 50 && tuning.size < 160, `${tuning.size} tuning users`);
    // seq-per-user 0: every position is a training target, the validation item of a refit too.
    assert.equal(refit.size, manifest.users - tuning.size);
  });
});
