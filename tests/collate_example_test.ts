import assert from "node:assert/strict";
import { assembleExample, type CollatedExample } from "../lib/collate/example.ts";
import { Collator } from "../lib/collate/collator.ts";
import type { TokenizedRecord } from "../lib/collate/tokenize.ts";
import type { SpecialIds } from "../lib/tokenizer/tokenizer.ts";
import { Rng } from "../lib/random.ts";

// Symbolic tokens: the special tokens get fixed ids, every other name the next free id.
const SPECIALS: SpecialIds = { pad: 0, mask: 1, smask: 2, gmask: 3, sop: 4, eop: 5 };
const SPECIAL_NAMES: Record<string, number> = {
  "[PAD]": 0,
  "[MASK]": 1,
  "[sMASK]": 2,
  "[gMASK]": 3,
  "[S]": 4,
  "[E]": 5,
};

class Names {
  #ids = new Map<string, number>(Object.entries(SPECIAL_NAMES));
  id(name: string): number {
    let id = this.#ids.get(name);
    if (id === undefined) this.#ids.set(name, id = 100 + this.#ids.size);
    return id;
  }
  name(id: number): string {
    for (const [name, value] of this.#ids) if (value === id) return name;
    throw new Error(`no name for ${id}`);
  }
}

interface SymbolicRecord {
  units: string[][];
  entity: boolean[];
  answerAt?: number;
  target?: string[][];
  targetEntity?: boolean[];
}

function buildRecord(names: Names, symbolic: SymbolicRecord): TokenizedRecord {
  const units = [...symbolic.units, ...(symbolic.target ?? [])];
  const entity = [...symbolic.entity, ...(symbolic.targetEntity ?? [])];
  const unitStart = [0];
  const ids: number[] = [];
  for (const unit of units) {
    for (const name of unit) ids.push(names.id(name));
    unitStart.push(ids.length);
  }
  return {
    id: "symbolic",
    ids: Int32Array.from(ids),
    unitStart: Int32Array.from(unitStart),
    unitEntity: Uint8Array.from(entity.map((e) => (e ? 1 : 0))),
    unitSentence: new Int32Array(units.length),
    promptUnits: symbolic.units.length,
    answerAt: symbolic.answerAt ?? symbolic.units.length,
    hasTarget: symbolic.target !== undefined,
    answerMarked: symbolic.answerAt !== undefined,
  };
}

function spansOf(pairs: number[][]): Int32Array {
  return Int32Array.from(pairs.flat());
}

function asTable(names: Names, example: CollatedExample) {
  return {
    input: Array.from(example.inputIds, (id) => names.name(id)),
    label: Array.from(example.labels, (id) => (id === -100 ? null : names.name(id))),
    inter: Array.from(example.inter),
    intra: Array.from(example.intra),
    sep: example.sep,
  };
}

const MASK_OF: Record<string, number> = {
  entity: SPECIALS.mask,
  sentence: SPECIALS.smask,
  document: SPECIALS.gmask,
};

Deno.test("the worked example of docs/method.md section 6 is reproduced exactly", async () => {
  const fixture = JSON.parse(
    await Deno.readTextFile(new URL("../fixtures/collate/spec6_example.json", import.meta.url)),
  );
  const names = new Names();
  const record = buildRecord(names, { units: fixture.units, entity: fixture.entity });
  const example = assembleExample(record, {
    from: 0,
    to: 4,
    spans: spansOf(fixture.spans),
    spanCount: fixture.spans.length,
    mask: SPECIALS.mask,
    task: false,
    objective: "entity",
  }, SPECIALS);
  assert.deepEqual(asTable(names, example), fixture.expected);
  assert.equal(example.length, fixture.expected.input.length);

  const two = assembleExample(record, {
    from: 0,
    to: 4,
    spans: spansOf(fixture.twoUnitSpan.spans),
    spanCount: 1,
    mask: SPECIALS.mask,
    task: false,
    objective: "entity",
  }, SPECIALS);
  const table = asTable(names, two);
  assert.deepEqual(table.input.slice(two.sep), fixture.twoUnitSpan.partB);
  assert.deepEqual(table.intra.slice(two.sep), fixture.twoUnitSpan.intraB);
});

Deno.test("golden examples for each objective match the hand-written tables", async () => {
  const fixture = JSON.parse(
    await Deno.readTextFile(new URL("../fixtures/collate/golden.json", import.meta.url)),
  );
  for (const testCase of fixture.cases) {
    const names = new Names();
    const record = buildRecord(names, testCase);
    let example: CollatedExample;
    if (testCase.objective === "task") {
      const collator = new Collator(SPECIALS, { maxLength: testCase.maxLength ?? undefined });
      example = collator.collate(record, new Rng(1));
      assert.equal(example.objective, "task");
    } else {
      example = assembleExample(record, {
        from: 0,
        to: testCase.units.length,
        spans: spansOf(testCase.spans),
        spanCount: testCase.spans.length,
        mask: MASK_OF[testCase.objective],
        task: false,
        objective: testCase.objective,
      }, SPECIALS);
    }
    const { units, ...expected } = testCase.expected;
    assert.deepEqual(asTable(names, example), expected, testCase.name);
    assert.deepEqual(Array.from(example.units), units, testCase.name);
  }
});

Deno.test("shuffled span order keeps every span's own positions", () => {
  const names = new Names();
  const record = buildRecord(names, {
    units: [["a"], ["b", "c"], ["d"], ["e"], ["f"]],
    entity: [false, true, false, false, false],
  });
  const example = assembleExample(record, {
    from: 0,
    to: 5,
    spans: Int32Array.of(1, 2, 3, 4),
    spanCount: 2,
    mask: SPECIALS.mask,
    task: false,
    order: Int32Array.of(1, 0),
    objective: "entity",
  }, SPECIALS);
  const table = asTable(names, example);
  assert.deepEqual(table.input, ["a", "[MASK]", "d", "[MASK]", "f", "[S]", "e", "[S]", "b", "c"]);
  assert.deepEqual(table.inter.slice(5), [3, 3, 1, 1, 1]);
  assert.deepEqual(table.intra.slice(5), [1, 2, 1, 2, 3]);
  assert.deepEqual(Array.from(example.spans), [3, 4, 1, 2]);
});
