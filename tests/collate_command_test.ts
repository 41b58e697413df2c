import assert from "node:assert/strict";
import { Collator, exampleRng } from "../lib/collate/collator.ts";
import { itemTokenSummary, tokenizeRecord } from "../lib/collate/tokenize.ts";
import { openDataset, readRecords } from "../lib/data/dataset.ts";
import { TextTokenizer } from "../lib/tokenizer/tokenizer.ts";
import { runCliProcess } from "./helpers/cli.ts";
import { withTempDir } from "./helpers/temp.ts";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DATA = `${ROOT}fixtures/collate`;
const TOKENIZER = `${ROOT}fixtures/tokenizer/tokenizer.json`;

async function collate(...args: string[]) {
  const { code, stdout: out, stderr: err } = await runCliProcess(["collate", ...args]);
  return {
    code,
    lines: out.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l)),
    out,
    err,
  };
}

interface Line {
  id: string;
  objective: string;
  input_ids: number[];
  position_ids: [number[], number[]];
  sep: number;
  labels: number[];
  loss_mask: number[];
  units: number[];
  tokens: string[];
}

/** Checks the rules of docs/method.md section 6 from one output line alone. */
function checkLine(line: Line) {
  const L = line.input_ids.length;
  const [inter, intra] = line.position_ids;
  for (const array of [inter, intra, line.labels, line.loss_mask, line.units, line.tokens]) {
    assert.equal(array.length, L);
  }
  const special = (i: number) => line.units[i] === -1;
  const masks = new Set<number>();
  for (let i = 0; i < line.sep; i++) {
    assert.equal(inter[i], i);
    assert.equal(line.labels[i], -100);
    assert.equal(line.loss_mask[i], 0);
    if (special(i)) {
      assert.match(line.tokens[i], /^\[[sg]?MASK\]$/);
      assert.equal(intra[i], 0);
      masks.add(i);
    } else if (intra[i] > 0) {
      // Along an entity: 1, 2, ... within one unit.
      const continues = i > 0 && line.units[i - 1] === line.units[i];
      assert.equal(intra[i], continues ? intra[i - 1] + 1 : 1);
    } else {
      assert.ok(i === 0 || line.units[i - 1] !== line.units[i], "a separate token is its unit");
    }
  }
  const eop = line.labels[L - 1];
  for (let i = line.sep; i < L; i++) {
    assert.equal(line.loss_mask[i], 1);
    assert.ok(masks.has(inter[i]), "part B points at a mask token of part A");
    if (special(i)) {
      assert.equal(line.tokens[i], "[S]");
      assert.equal(intra[i], 1);
    } else {
      const sameUnit = line.units[i - 1] === line.units[i];
      assert.equal(intra[i], sameUnit ? intra[i - 1] + 1 : 2);
      assert.equal(inter[i], inter[i - 1]);
    }
    const spanEnds = i + 1 === L || special(i + 1);
    assert.equal(line.labels[i], spanEnds ? eop : line.input_ids[i + 1]);
  }
  assert.equal(
    masks.size,
    line.input_ids.slice(line.sep).filter((_, k) => special(line.sep + k)).length,
  );
}

Deno.test("collate prints one checkable example per record", async () => {
  const { code, lines, err } = await collate(
    "--data",
    DATA,
    "--tokenizer",
    TOKENIZER,
    "--seed",
    "3",
  );
  assert.equal(code, 0, err);
  assert.equal(lines.length, 7);
  for (const line of lines) checkLine(line);
  assert.deepEqual(
    lines.map((l: Line) => l.objective === "task"),
    [false, false, true, true, true, true, true],
  );
  const again = await collate("--data", DATA, "--tokenizer", TOKENIZER, "--seed", "3");
  assert.deepEqual(again.lines, lines);
  const other = await collate("--data", DATA, "--tokenizer", TOKENIZER, "--seed", "4");
  assert.notDeepEqual(other.lines.slice(0, 2), lines.slice(0, 2));
  assert.deepEqual(other.lines.slice(2), lines.slice(2), "task prompts do not depend on the seed");
});

Deno.test("collate honours --objective, --limit and --max-length", async () => {
  for (const objective of ["entity", "sentence", "document"]) {
    const { code, lines } = await collate(
      "--data",
      DATA,
      "--tokenizer",
      TOKENIZER,
      "--objective",
      objective,
      "--limit",
      "2",
      "--max-length",
      "40",
    );
    assert.equal(code, 0);
    assert.equal(lines.length, 2);
    for (const line of lines) {
      assert.equal(line.objective, objective);
      assert.ok(line.input_ids.length <= 40);
      checkLine(line);
    }
  }
});

Deno.test("collate cuts a long prompt as pretrain does, with room for the longest item answer", async () => {
  const tokenizer = await TextTokenizer.load(TOKENIZER);
  const data = await openDataset(DATA);
  const records = [];
  for await (const record of readRecords(data, "train")) {
    records.push(tokenizeRecord(tokenizer, record));
  }
  const itemRoom = itemTokenSummary(tokenizer, data.entities).longest;
  let differs = 0;
  for (const maxLength of [28, 32, 40]) {
    const { code, lines, err } = await collate(
      ...["--data", DATA, "--tokenizer", TOKENIZER, "--objective", "entity"],
      ...["--max-length", String(maxLength)],
    );
    assert.equal(code, 0, err);
    const pretrain = new Collator(tokenizer.special, { objective: "entity", maxLength, itemRoom });
    const bare = new Collator(tokenizer.special, { objective: "entity", maxLength });
    records.forEach((record, i) => {
      const seps = [pretrain, bare].map((c) => c.collate(record, exampleRng(0, 0, i)).sep);
      assert.equal(lines[i].sep, seps[0], `${record.id} at ${maxLength}`);
      if (seps[0] !== seps[1]) differs++;
    });
  }
  assert.ok(differs > 0, "some prompt is cut otherwise without the room");
  const keep = await collate("--data", DATA, "--tokenizer", TOKENIZER, "--sequence-keep", "2");
  assert.equal(keep.code, 2);
  assert.match(keep.err, /--sequence-keep applies to --objective sequence/);
});

Deno.test("collate errors: missing tokenizer, record without segments, max length too short", async () => {
  const missing = await collate("--data", DATA, "--tokenizer", `${DATA}/none.json`);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /none\.json: tokenizer file not found/);

  await withTempDir(async (dir) => {
    for (const name of ["manifest.json", "entities.json"]) {
      await Deno.copyFile(`${DATA}/${name}`, `${dir}/${name}`);
    }
    const good = (await Deno.readTextFile(`${DATA}/train.jsonl`)).split("\n")[0];
    await Deno.writeTextFile(
      `${dir}/train.jsonl`,
      `${good}\n\n{"id": "empty", "task": "profile", "template": "p", "split": "train", "user": "u", "segments": []}\n`,
    );
    const empty = await collate("--data", dir, "--tokenizer", TOKENIZER);
    assert.equal(empty.code, 1);
    // The file's line, blank lines counted (the record is the second).
    assert.match(empty.err, /train\.jsonl line 3: record "empty": has no segments/);
    assert.equal(empty.lines.length, 0, "nothing half-written: the error comes before output");
  });

  const short = await collate("--data", DATA, "--tokenizer", TOKENIZER, "--max-length", "5");
  assert.equal(short.code, 1);
  assert.match(short.err, /record "u1\/seq\/train": needs \d+ tokens|first unit/);

  const usage = await collate("--data", DATA, "--tokenizer", TOKENIZER, "--objective", "word");
  assert.equal(usage.code, 2);
  assert.match(usage.err, /--objective must be one of entity, sentence, document, sequence, mix/);
});

Deno.test("a manifest or entity pool of the wrong shape is an input error naming the file", async () => {
  // Each once reached the stages that walk them: an internal error (exit 70) in collate, infer
  // and pretrain.
  const cases: [string, string, RegExp][] = [
    ["manifest.json", "null", /manifest\.json: expected a JSON object$/],
    ["manifest.json", '{"templates": {}}', /manifest\.json: "templates" must be a list$/],
    ["manifest.json", '{"templates": [null]}', /"templates"\[0\] must be an object/],
    ["manifest.json", '{"tasks": []}', /manifest\.json: "tasks" must be an object$/],
    ["manifest.json", '{"rating_scale": "1-5"}', /"rating_scale" must be null or \[lowest/],
    ["manifest.json", '{"rating_scale": [5, 1]}', /"rating_scale" must be null or \[lowest/],
    ["entities.json", '[{"entity": "A", "kind": "item", "id": "1"}, null]', /entry 2 is not/],
  ];
  for (const [name, text, pattern] of cases) {
    await withTempDir(async (dir) => {
      for (const file of ["manifest.json", "entities.json"]) {
        await Deno.copyFile(`${DATA}/${file}`, `${dir}/${file}`);
      }
      await Deno.writeTextFile(`${dir}/${name}`, text);
      await assert.rejects(() => openDataset(dir), (e: Error) => {
        assert.equal(e.name, "InputError", e.message);
        assert.ok(e.message.startsWith(`${dir}/${name}: `), e.message);
        assert.match(e.message, pattern);
        return true;
      });
    });
  }
});

Deno.test("a dataset's candidate lists are read once for every pass over its records", async () => {
  // eval reads a split two or three times; each pass parsed all of candidates.jsonl again.
  await withTempDir(async (dir) => {
    const tiny = fileURLToPath(new URL("../fixtures/eval/tiny", import.meta.url));
    for (const entry of Deno.readDirSync(tiny)) {
      await Deno.copyFile(`${tiny}/${entry.name}`, `${dir}/${entry.name}`);
    }
    const data = await openDataset(dir);
    const pass = async () => {
      const lists = new Map<string, string[] | undefined>();
      for await (const r of readRecords(data, "test")) lists.set(r.id, r.candidates);
      return lists;
    };
    const first = await pass();
    // Gone from disk after the first pass: the second still has every list, the same ones.
    await Deno.remove(`${dir}/candidates.jsonl`);
    const second = await pass();
    assert.ok([...first.values()].some((list) => list !== undefined && list.length > 0));
    for (const [id, list] of first) assert.equal(second.get(id), list, id);
    // Another opening of the dataset reads the file as it is now.
    for await (const r of readRecords(await openDataset(dir), "test")) {
      assert.equal(r.candidates, undefined, r.id);
    }
  });
});
