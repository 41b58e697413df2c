// The import direction of lib/, as the layout table of docs/development.md states it: every import of a lib file
// must name a folder its row allows, the table must name every folder, and it must have no circle.
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { tsFiles } from "./helpers/source_files.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const LIB = join(ROOT, "lib");

/** docs/development.md's table: allowed imports by unit (`io` for lib/io/, `errors` for lib/errors.ts). */
function readLayers(page: string): Map<string, Set<string>> {
  const lines = page.split("\n");
  const start = lines.findIndex((l) => l.startsWith("<!-- layers"));
  assert.ok(start >= 0, "docs/development.md has no <!-- layers --> table");
  const layers = new Map<string, Set<string>>();
  for (const line of lines.slice(start + 1)) {
    if (layers.size > 0 && !line.startsWith("|")) break;
    const cells = line.split("|").slice(1, -1).map((c) => c.trim());
    const unit = cells[0]?.match(/^`lib\/(\w+)(?:\/|\.ts)`$/)?.[1];
    if (!unit) continue; // header, separator, blank line
    const allowed = cells[2] === "—" ? [] : cells[2].split(",").map((s) => s.trim());
    layers.set(unit, new Set(allowed));
  }
  return layers;
}

/** The unit of a path inside lib/ (`lib/io/lines.ts` -> `io`, `lib/random.ts` -> `random`). */
function unitOf(path: string): string {
  const [first, ...rest] = relative(LIB, path).split(/[\\/]/);
  return rest.length === 0 ? first.replace(/\.ts$/, "") : first;
}

/** Import and re-export specifiers of TypeScript source, comments (and their examples) left out. */
export function importsOf(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const out: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\b[^;'"]*?\bfrom\s*["']([^"']+)["']/gm,
    /^\s*import\s*["']([^"']+)["']/gm,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const pattern of patterns) for (const m of code.matchAll(pattern)) out.push(m[1]);
  return out;
}

Deno.test("the import parser sees imports, re-exports and dynamic imports, not comments", () => {
  const source = [
    `/**`,
    ` * @example`,
    " * ```ts",
    ` * import { x } from "../commented/out.ts";`,
    " * ```",
    ` */`,
    `import { a, type B } from "../data/types.ts";`,
    `import {`,
    `  c,`,
    `} from "./c.ts";`,
    `import "./side_effect.ts";`,
    `export * from "./d.ts";`,
    `export { type E } from "../e/e.ts";`,
    `// import { f } from "../f.ts";`,
    `const g = await import("../g.ts");`,
  ].join("\n");
  assert.deepEqual(importsOf(source).sort(), [
    "../data/types.ts",
    "../e/e.ts",
    "../g.ts",
    "./c.ts",
    "./d.ts",
    "./side_effect.ts",
  ]);
});

Deno.test("lib/ imports point the way the layout table of docs/development.md says", async () => {
  const layers = readLayers(await Deno.readTextFile(join(ROOT, "docs", "development.md")));

  // The table names every folder and root file of lib/, and only those.
  const present = new Set<string>();
  for await (const entry of Deno.readDir(LIB)) {
    if (entry.isDirectory || entry.name.endsWith(".ts")) present.add(unitOf(join(LIB, entry.name)));
  }
  assert.deepEqual(
    [...layers.keys()].sort(),
    [...present].sort(),
    "docs/development.md's table vs lib/",
  );
  for (const [unit, allowed] of layers) {
    for (const a of allowed) {
      assert.ok(layers.has(a), `docs/development.md: ${unit} allows unknown "${a}"`);
    }
  }

  // No circle in the allowed directions (depth-first search).
  const state = new Map<string, "open" | "done">();
  const visit = (unit: string, path: string[]) => {
    if (state.get(unit) === "done") return;
    assert.notEqual(
      state.get(unit),
      "open",
      `docs/development.md's table has a circle: ${path.join(" -> ")}`,
    );
    state.set(unit, "open");
    for (const next of layers.get(unit)!) visit(next, [...path, next]);
    state.set(unit, "done");
  };
  for (const unit of layers.keys()) visit(unit, [unit]);

  // Every import of every lib file.
  const wrong: string[] = [];
  for await (const file of tsFiles(LIB)) {
    const from = unitOf(file);
    const where = relative(ROOT, file);
    for (const spec of importsOf(await Deno.readTextFile(file))) {
      if (spec.includes("onnxruntime") && from !== "runtime") {
        wrong.push(`${where}: imports ${spec} (only lib/runtime may)`);
      }
      if (!spec.startsWith(".")) continue; // node:, npm: and import-map packages
      const target = resolve(dirname(file), spec);
      if (relative(LIB, target).startsWith("..")) {
        wrong.push(`${where}: imports ${spec}, outside lib/`);
        continue;
      }
      const to = unitOf(target);
      if (to !== from && !layers.get(from)!.has(to)) {
        wrong.push(`${where}: imports ${spec} (${from} may not import ${to})`);
      }
    }
  }
  assert.deepEqual(wrong, [], "imports against the layout table of docs/development.md");
});

Deno.test("no circle among the files of lib/: every module has a bottom to read from", async () => {
  const graph = new Map<string, string[]>();
  for await (const file of tsFiles(LIB)) {
    const specs = importsOf(await Deno.readTextFile(file)).filter((s) => s.startsWith("."));
    graph.set(file, specs.map((s) => resolve(dirname(file), s)));
  }
  // Depth-first search; a file met again while still open closes a circle.
  const state = new Map<string, "open" | "done">();
  const circles: string[] = [];
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === "done" || !graph.has(file)) return;
    if (state.get(file) === "open") {
      const from = path.indexOf(file);
      circles.push(path.slice(from).map((f) => relative(LIB, f)).join(" -> "));
      return;
    }
    state.set(file, "open");
    for (const next of graph.get(file)!) visit(next, [...path, next]);
    state.set(file, "done");
  };
  for (const file of graph.keys()) visit(file, [file]);
  assert.deepEqual(circles, [], "files of lib/ that import each other in a circle");
});
