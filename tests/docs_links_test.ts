// The documentation holds together: every relative link and #anchor in README.md and docs/*.md
// points at a file that exists and a heading it has, README.md stays an entry page (at most 300
// lines, the two first commands at its top), and docs/README.md lists every page of docs/.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DOCS = join(ROOT, "docs");

/** README.md and every Markdown page of docs/, as absolute paths. */
function pages(): string[] {
  const docs = readdirSync(DOCS).filter((f) => f.endsWith(".md")).sort();
  return [join(ROOT, "README.md"), ...docs.map((f) => join(DOCS, f))];
}

/** Markdown without its fenced code blocks (their lines kept empty, so line numbers hold). */
function withoutFences(markdown: string): string {
  let fence: string | null = null;
  return markdown.split("\n").map((line) => {
    const open = line.match(/^\s*(`{3,}|~{3,})/)?.[1];
    if (fence === null && open) {
      fence = open[0].repeat(open.length);
      return "";
    }
    if (fence !== null) {
      if (line.trim().startsWith(fence)) fence = null;
      return "";
    }
    return line;
  }).join("\n");
}

/**
 * The anchors GitHub gives a page's headings: the heading's text as it renders (inline code and
 * links reduced to their text), lower-cased, punctuation removed, spaces made hyphens; a repeated
 * anchor gets -1, -2, ... Explicit `<a id="...">` and `<a name="...">` anchors count too.
 *
 * @example
 * ```ts
 * anchorsOf("## 6. Positions, attention, labels\n## `--device`"); // {"6-positions-attention-labels", "--device"}
 * ```
 */
export function anchorsOf(markdown: string): Set<string> {
  const text = withoutFences(markdown);
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const line of text.split("\n")) {
    const heading = line.match(/^#{1,6}\s+(.*?)\s*#*\s*$/)?.[1];
    if (heading === undefined) continue;
    const rendered = heading.replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1").replace(/`/g, "");
    const base = rendered.toLowerCase().replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "").replace(
      / /g,
      "-",
    );
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  for (const m of text.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1]);
  return anchors;
}

/** Every link target of a page outside code (fenced blocks and inline code), with its line. */
export function linksOf(markdown: string): { target: string; line: number }[] {
  const text = withoutFences(markdown).replace(/`[^`]*`/g, (code) => code.replace(/[^\n]/g, " "));
  const links: { target: string; line: number }[] = [];
  for (const m of text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    const line = text.slice(0, m.index).split("\n").length;
    links.push({ target: m[1], line });
  }
  return links;
}

Deno.test("every relative link and #anchor of README.md and docs/*.md resolves", () => {
  const broken: string[] = [];
  const anchorCache = new Map<string, Set<string>>();
  const anchors = (path: string) => {
    if (!anchorCache.has(path)) anchorCache.set(path, anchorsOf(readFileSync(path, "utf8")));
    return anchorCache.get(path)!;
  };
  let checked = 0;
  for (const page of pages()) {
    const name = relative(ROOT, page);
    for (const { target, line } of linksOf(readFileSync(page, "utf8"))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:, ...
      checked++;
      const hash = target.indexOf("#");
      const file = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
      const anchor = hash < 0 ? null : decodeURIComponent(target.slice(hash + 1));
      const path = file === "" ? page : resolve(dirname(page), file);
      if (!existsSync(path)) {
        broken.push(`${name}:${line}: ${target}: no file ${relative(ROOT, path)}`);
      } else if (anchor !== null) {
        if (!path.endsWith(".md")) {
          broken.push(`${name}:${line}: ${target}: an anchor into a file that is not Markdown`);
        } else if (!anchors(path).has(anchor)) {
          broken.push(
            `${name}:${line}: ${target}: ${relative(ROOT, path)} has no heading #${anchor}`,
          );
        }
      }
    }
  }
  assert.deepEqual(broken, []);
  assert.ok(checked > 50, `only ${checked} relative links found: is the link pattern still right?`);
});

Deno.test("README.md is an entry page: at most 300 lines, the two first commands at its top", () => {
  const lines = readFileSync(join(ROOT, "README.md"), "utf8").replace(/\n$/, "").split("\n");
  assert.ok(lines.length <= 300, `README.md has ${lines.length} lines; move detail to docs/`);
  const top = lines.slice(0, 10);
  assert.ok(top.some((l) => /^ {4}deno task demo\b/.test(l)), "README.md's top: deno task demo");
  assert.ok(top.some((l) => /^ {4}deno task test\b/.test(l)), "README.md's top: deno task test");
});

Deno.test("docs/README.md links every page of docs/", () => {
  const index = join(DOCS, "README.md");
  const linked = new Set(
    linksOf(readFileSync(index, "utf8")).map(({ target }) => resolve(DOCS, target.split("#")[0])),
  );
  const missing = pages().slice(1).filter((p) => p !== index && !linked.has(p));
  assert.deepEqual(missing.map((p) => relative(ROOT, p)), [], "pages docs/README.md does not list");
});

Deno.test("the anchor and link readers follow GitHub's rules", () => {
  const page = [
    "# Top",
    "## 6. Positions, attention, labels",
    "## `--device` and `auto`",
    "## Top",
    "```sh",
    "# not a heading [no](link.md)",
    "```",
    'See [one](a.md#x "title"), ![two](b.svg) and `[not](c.md)`, [three](#top-1).',
  ].join("\n");
  assert.deepEqual(
    [...anchorsOf(page)],
    ["top", "6-positions-attention-labels", "--device-and-auto", "top-1"],
  );
  assert.deepEqual(linksOf(page), [
    { target: "a.md#x", line: 8 },
    { target: "b.svg", line: 8 },
    { target: "#top-1", line: 8 },
  ]);
});
