import assert from "node:assert/strict";
import { escapeXml, groupedBarChart, lineChart, niceTicks, tickLabel } from "../lib/chart/svg.ts";

/**
 * A small XML well-formedness check: one root element, every tag closed in order, attributes
 * quoted, `<` never in text or attribute values, `&` only as an entity. Returns the element names.
 */
function wellFormed(xml: string): string[] {
  const names: string[] = [];
  const stack: string[] = [];
  let i = 0;
  const prolog = /^<\?xml [^?]*\?>\s*/.exec(xml);
  if (prolog) i = prolog[0].length;
  const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/y;
  const entity = /&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/y;
  let roots = 0;
  while (i < xml.length) {
    const c = xml[i];
    if (c === "<") {
      tag.lastIndex = i;
      const m = tag.exec(xml);
      if (!m) throw new Error(`malformed tag at ${i}: ${xml.slice(i, i + 40)}`);
      const [all, closing, name, attrs, selfClosing] = m;
      for (const a of attrs.matchAll(/="([^"]*)"/g)) {
        for (const amp of a[1].matchAll(/&/g)) {
          entity.lastIndex = amp.index!;
          if (!entity.test(a[1])) throw new Error(`bare & in attribute of <${name}>`);
        }
      }
      if (closing) {
        const open = stack.pop();
        if (open !== name) throw new Error(`</${name}> closes <${open}>`);
      } else {
        if (stack.length === 0) roots++;
        names.push(name);
        if (!selfClosing) stack.push(name);
      }
      i += all.length;
    } else if (c === "&") {
      entity.lastIndex = i;
      const m = entity.exec(xml);
      if (!m) throw new Error(`bare & at ${i}`);
      i += m[0].length;
    } else {
      if (stack.length === 0 && !/\s/.test(c)) throw new Error(`text outside the root at ${i}`);
      i++;
    }
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.join("> <")}>`);
  if (roots !== 1) throw new Error(`${roots} root elements`);
  return names;
}

Deno.test("the well-formedness check itself rejects broken XML", () => {
  assert.deepEqual(wellFormed('<svg a="1"><g><rect/></g></svg>'), ["svg", "g", "rect"]);
  assert.throws(() => wellFormed("<svg><g></svg>"));
  assert.throws(() => wellFormed("<svg>a & b</svg>"));
  assert.throws(() => wellFormed('<svg a="<"></svg>'));
  assert.throws(() => wellFormed("<svg></svg><svg></svg>"));
  assert.throws(() => wellFormed("<svg><text>1 < 2</text></svg>"));
});

Deno.test("round ticks cover the range", () => {
  assert.deepEqual(niceTicks(0, 0.73).values, [0, 0.2, 0.4, 0.6, 0.8]);
  assert.deepEqual(niceTicks(0, 100).values, [0, 20, 40, 60, 80, 100]);
  assert.deepEqual(niceTicks(2.1, 6.4).values, [2, 3, 4, 5, 6, 7]);
  const flat = niceTicks(3, 3);
  assert.ok(flat.min < 3 && flat.max > 3);
  assert.equal(tickLabel(0.4, 0.2), "0.4");
  assert.equal(tickLabel(0.05, 0.05), "0.05");
  assert.equal(tickLabel(40, 20), "40");
});

Deno.test("a grouped bar chart is well-formed SVG holding every value and name", () => {
  const svg = groupedBarChart({
    title: "Beauty <test> & more",
    panels: [
      {
        title: "sequential",
        categories: ["HR@5", "NDCG@5"],
        series: [
          { name: "pop", values: [0.0123, 0.0087] },
          { name: "model & co", values: [0.0508, null] },
        ],
      },
      {
        title: "rating",
        categories: ["RMSE", "MAE"],
        series: [{ name: "mean", values: [1.2, 0.9] }],
        yLabel: "error",
      },
    ],
  });
  const names = wellFormed(svg);
  assert.equal(names[0], "svg");
  // one bar per non-null value: 2 + 1 + 2
  assert.equal(svg.match(/<rect [^>]*fill="#[0-9a-f]{6}">/g)?.length, 5);
  for (const v of ["0.0123", "0.0087", "0.0508", "1.2", "0.9"]) {
    assert.ok(svg.includes(`: ${v}</title>`), `value ${v} missing`);
  }
  for (
    const label of ["HR@5", "NDCG@5", "RMSE", "MAE", "sequential", "rating", "error", "pop", "mean"]
  ) {
    assert.ok(svg.includes(`>${label}<`), `label ${label} missing`);
  }
  assert.ok(svg.includes("Beauty &lt;test&gt; &amp; more"));
  assert.ok(svg.includes(">model &amp; co<"));
  // a method keeps its colour across panels: "mean" is the third name, so the third colour
  assert.ok(svg.includes('fill="#59a14f"><title>mean, RMSE: 1.2</title>'));
});

Deno.test("charts are deterministic", () => {
  const options = {
    panels: [{ title: "t", categories: ["a"], series: [{ name: "s", values: [1 / 3] }] }],
  };
  assert.equal(groupedBarChart(options), groupedBarChart(options));
  const line = {
    series: [{ name: "loss", points: [[0, 1 / 3], [1, 1 / 7]] as [number, number][] }],
  };
  assert.equal(lineChart(line), lineChart(line));
});

Deno.test("a line chart is well-formed, with a line per series, axes, labels and legend", () => {
  const loss: [number, number][] = [[0, 6.2], [100, 4.1], [200, 3.3], [300, 2.9]];
  const val: [number, number][] = [[100, 4.4], [200, NaN], [300, 3.6], [400, 3.4]];
  const svg = lineChart({
    title: "training",
    xLabel: "step",
    yLabel: "loss",
    series: [
      { name: "loss", points: loss },
      { name: "val_loss", points: val },
    ],
  });
  wellFormed(svg);
  const polylines = [...svg.matchAll(/<polyline points="([^"]*)"/g)].map((m) => m[1].split(" "));
  // loss: one line of 4 points; val_loss: broken at NaN into [100] (a dot only) and [300, 400]
  assert.deepEqual(polylines.map((p) => p.length), [4, 2]);
  for (const [x, y] of [...loss, [100, 4.4], [300, 3.6], [400, 3.4]]) {
    assert.ok(svg.includes(` at ${x}: ${y}</title>`), `point ${x},${y} missing`);
  }
  assert.ok(!svg.includes("NaN"));
  for (const label of ["training", "step", "loss", "val_loss"]) {
    assert.ok(svg.includes(`>${label}<`), `label ${label} missing`);
  }
  // x ticks are round numbers over 0..400, y ticks cover 2.9..6.2
  for (const tick of [">0<", ">100<", ">400<", ">3<", ">6<"]) assert.ok(svg.includes(tick), tick);
  // larger loss is drawn higher: y coordinate of step 0 above (smaller than) step 300
  const first = polylines[0][0].split(",").map(Number);
  const last = polylines[0][3].split(",").map(Number);
  assert.ok(first[0] < last[0] && first[1] < last[1]);
});

Deno.test("escapeXml escapes the five special characters", () => {
  assert.equal(
    escapeXml(`<a href="x">Tom & Jerry's</a>`),
    "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&apos;s&lt;/a&gt;",
  );
});
