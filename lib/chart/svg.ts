/**
 * Small dependency-free SVG charts for reports: a grouped bar chart (methods side by side per
 * metric, one panel per task, for `eval --chart`) and a line chart (series over steps, for a
 * training loss curve). Output is a complete SVG document and deterministic: the same data give
 * the same bytes (coordinates are rounded to 2 decimals, colours come from a fixed palette).
 * Not a plotting library: no log axes, no dates, no interactivity beyond hover titles.
 *
 * @module
 */

/** Colours for series, in order (repeats past ten). */
export const PALETTE = [
  "#4e79a7",
  "#f28e2b",
  "#59a14f",
  "#e15759",
  "#76b7b2",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
] as const;

const FONT = 'font-family="Helvetica, Arial, DejaVu Sans, sans-serif"';

/** Returns `text` with the five XML special characters escaped. */
export function escapeXml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!,
  );
}

/** A coordinate as text: at most 2 decimals, no trailing zeros, never "-0". */
function fmt(value: number): string {
  const text = String(Number(value.toFixed(2)));
  return text === "-0" ? "0" : text;
}

/** Axis ticks: round numbers (1, 2 or 5 times a power of ten) covering [min, max]. */
export interface Ticks {
  min: number;
  max: number;
  step: number;
  values: number[];
}

/**
 * Returns round ticks covering [min, max] with at most `target` intervals (a zero-width range is
 * widened).
 *
 * @example
 * ```ts
 * niceTicks(0, 0.73).values; // [0, 0.2, 0.4, 0.6, 0.8]
 * ```
 */
export function niceTicks(min: number, max: number, target = 5): Ticks {
  if (!Number.isFinite(min) || !Number.isFinite(max)) [min, max] = [0, 1];
  if (max < min) [min, max] = [max, min];
  if (max === min) {
    const pad = Math.abs(max) > 0 ? Math.abs(max) * 0.1 : 1;
    [min, max] = [min - pad, max + pad];
  }
  // The smallest round step that needs at most `target` intervals.
  const rough = (max - min) / target;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((st) =>
    (max - min) / st <= target + 1e-9
  )!;
  const lo = Math.floor(min / step + 1e-9) * step;
  const hi = Math.ceil(max / step - 1e-9) * step;
  const values: number[] = [];
  for (let i = 0; lo + i * step <= hi + step * 1e-9; i++) {
    values.push(Number((lo + i * step).toPrecision(12)));
  }
  return { min: values[0], max: values[values.length - 1], step, values };
}

/** Returns a tick value as text with as many decimals as the step needs. */
export function tickLabel(value: number, step: number): string {
  const decimals = Math.max(0, Math.min(10, Math.ceil(-Math.log10(step) - 1e-9)));
  const text = value.toFixed(decimals);
  return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text;
}

function text(
  x: number,
  y: number,
  content: string,
  attrs: { size?: number; anchor?: string; weight?: string; transform?: string } = {},
): string {
  const extra = [
    `font-size="${attrs.size ?? 12}"`,
    attrs.anchor ? `text-anchor="${attrs.anchor}"` : "",
    attrs.weight ? `font-weight="${attrs.weight}"` : "",
    attrs.transform ? `transform="${attrs.transform}"` : "",
  ].filter(Boolean).join(" ");
  return `<text x="${fmt(x)}" y="${fmt(y)}" ${extra}>${escapeXml(content)}</text>`;
}

/** Legend rows (swatch + name) wrapped to `width`; returns the markup and its height. */
function legend(names: readonly string[], x0: number, y0: number, width: number) {
  const parts: string[] = [];
  let x = x0;
  let y = y0;
  names.forEach((name, i) => {
    const w = 22 + name.length * 7 + 16;
    if (x > x0 && x + w > x0 + width) {
      x = x0;
      y += 18;
    }
    const color = PALETTE[i % PALETTE.length];
    parts.push(
      `<rect x="${fmt(x)}" y="${fmt(y - 10)}" width="14" height="10" fill="${color}"/>`,
      text(x + 20, y, name, { size: 12 }),
    );
    x += w;
  });
  return { markup: parts.join("\n"), height: names.length > 0 ? y - y0 + 18 : 0 };
}

/**
 * The start of every chart: the XML declaration and the root element with an attribute that says
 * this toolkit drew it, so an output path holding a chart can be told from a user's own SVG.
 */
export const CHART_START = `<?xml version="1.0" encoding="UTF-8"?>\n` +
  `<svg xmlns="http://www.w3.org/2000/svg" data-generator="recsysllm" `;

function document(width: number, height: number, body: string[]): string {
  return [
    CHART_START + `width="${fmt(width)}" height="${fmt(height)}" ` +
    `viewBox="0 0 ${fmt(width)} ${fmt(height)}" ${FONT}>`,
    `<rect x="0" y="0" width="${fmt(width)}" height="${fmt(height)}" fill="#ffffff"/>`,
    ...body,
    `</svg>`,
    "",
  ].join("\n");
}

/** A horizontal grid line and label per tick of a y axis spanning [top, bottom]. */
function yAxis(ticks: Ticks, left: number, right: number, y: (v: number) => number): string[] {
  const out: string[] = [];
  for (const v of ticks.values) {
    out.push(
      `<line x1="${fmt(left)}" y1="${fmt(y(v))}" x2="${fmt(right)}" y2="${fmt(y(v))}" ` +
        `stroke="#e0e0e0" stroke-width="1"/>`,
      text(left - 6, y(v) + 4, tickLabel(v, ticks.step), { size: 11, anchor: "end" }),
    );
  }
  out.push(
    `<line x1="${fmt(left)}" y1="${fmt(y(ticks.max))}" x2="${fmt(left)}" ` +
      `y2="${fmt(y(ticks.min))}" stroke="#333333" stroke-width="1"/>`,
  );
  return out;
}

/** One panel of a grouped bar chart: bars of every series for each category. */
export interface BarPanel {
  /** Shown above the panel (`sequential`). */
  title: string;
  /** The groups along the x axis (`HR@5`, `NDCG@5`, ...). */
  categories: readonly string[];
  /** One bar per category per series; null leaves a gap. */
  series: readonly { name: string; values: readonly (number | null)[] }[];
  /** Label of the y axis. */
  yLabel?: string;
}

/** Options of {@linkcode groupedBarChart}. */
export interface BarChartOptions {
  /** Shown at the top. */
  title?: string;
  /**
   * Stacked top to bottom. The legend is shared: every series name once, in order of first
   * appearance, and a name has the same colour in every panel (a panel may leave a series out).
   */
  panels: readonly BarPanel[];
  /** Total width in pixels; default 760. */
  width?: number;
  /** Height of each panel in pixels; default 280. */
  panelHeight?: number;
}

/**
 * Returns an SVG document with a grouped bar chart per panel. Every bar carries a hover title
 * with its exact value, and a value label when there is room.
 *
 * @example
 * ```ts
 * groupedBarChart({
 *   title: "Beauty, test split",
 *   panels: [{ title: "sequential", categories: ["HR@5", "HR@10"],
 *              series: [{ name: "pop", values: [0.01, 0.02] }, { name: "model", values: [0.04, 0.06] }] }],
 * });
 * ```
 */
export function groupedBarChart(options: BarChartOptions): string {
  const width = options.width ?? 760;
  const panelHeight = options.panelHeight ?? 280;
  const names = [...new Set(options.panels.flatMap((p) => p.series.map((s) => s.name)))];
  const body: string[] = [];
  let top = 14;
  if (options.title) {
    body.push(
      text(width / 2, top + 12, options.title, { size: 16, anchor: "middle", weight: "bold" }),
    );
    top += 28;
  }
  const key = legend(names, 70, top + 10, width - 90);
  body.push(key.markup);
  top += key.height + 8;
  for (const panel of options.panels) {
    const left = 70;
    const right = width - 20;
    const plotTop = top + 26;
    const plotBottom = top + panelHeight - 34;
    const values = panel.series.flatMap((s) => s.values).filter((v): v is number =>
      v !== null && Number.isFinite(v)
    );
    const lo = Math.min(0, ...values);
    const hi = Math.max(0, ...values);
    const ticks = niceTicks(lo, hi === lo ? lo + 1 : hi);
    const y = (v: number) =>
      plotBottom - ((v - ticks.min) / (ticks.max - ticks.min)) * (plotBottom - plotTop);
    body.push(`<g>`);
    body.push(text(left, top + 14, panel.title, { size: 13, weight: "bold" }));
    body.push(...yAxis(ticks, left, right, y));
    if (panel.yLabel) {
      const cy = (plotTop + plotBottom) / 2;
      body.push(
        text(16, cy, panel.yLabel, {
          size: 11,
          anchor: "middle",
          transform: `rotate(-90 16 ${fmt(cy)})`,
        }),
      );
    }
    const groupWidth = (right - left) / Math.max(1, panel.categories.length);
    const barWidth = (groupWidth * 0.8) / Math.max(1, panel.series.length);
    panel.categories.forEach((category, c) => {
      const gx = left + c * groupWidth + groupWidth * 0.1;
      panel.series.forEach((series, s) => {
        const v = series.values[c];
        if (v === null || v === undefined || !Number.isFinite(v)) return;
        const x = gx + s * barWidth;
        const y0 = y(Math.max(0, ticks.min));
        const y1 = y(v);
        const color = PALETTE[names.indexOf(series.name) % PALETTE.length];
        body.push(
          `<rect x="${fmt(x)}" y="${fmt(Math.min(y0, y1))}" width="${fmt(barWidth * 0.92)}" ` +
            `height="${fmt(Math.abs(y0 - y1))}" fill="${color}">` +
            `<title>${escapeXml(`${series.name}, ${category}: ${v}`)}</title></rect>`,
        );
        if (barWidth >= 34) {
          const label = tickLabel(v, ticks.step / 100);
          body.push(
            text(x + barWidth * 0.46, Math.min(y0, y1) - 3, label, { size: 9, anchor: "middle" }),
          );
        }
      });
      body.push(
        text(left + (c + 0.5) * groupWidth, plotBottom + 16, category, {
          size: 11,
          anchor: "middle",
        }),
      );
    });
    body.push(
      `<line x1="${fmt(left)}" y1="${fmt(y(Math.max(0, ticks.min)))}" x2="${fmt(right)}" ` +
        `y2="${fmt(y(Math.max(0, ticks.min)))}" stroke="#333333" stroke-width="1"/>`,
    );
    body.push(`</g>`);
    top += panelHeight;
  }
  return document(width, top + 6, body);
}

/** One line of a line chart: points (x, y) in x order; a non-finite y breaks the line. */
export interface LineSeries {
  name: string;
  points: readonly (readonly [number, number])[];
}

/** Options of {@linkcode lineChart}. */
export interface LineChartOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  series: readonly LineSeries[];
  /** Pixels; default 760 x 420. */
  width?: number;
  height?: number;
}

/**
 * Returns an SVG document with a line chart: one polyline per series (dots as well when a series
 * has at most 60 points), axes with round ticks, axis labels and a legend.
 *
 * @example
 * ```ts
 * lineChart({
 *   title: "training loss", xLabel: "step", yLabel: "loss",
 *   series: [{ name: "loss", points: [[0, 6.2], [100, 4.1]] },
 *            { name: "val_loss", points: [[100, 4.4]] }],
 * });
 * ```
 */
export function lineChart(options: LineChartOptions): string {
  const width = options.width ?? 760;
  const height = options.height ?? 420;
  const body: string[] = [];
  let top = 14;
  if (options.title) {
    body.push(
      text(width / 2, top + 12, options.title, { size: 16, anchor: "middle", weight: "bold" }),
    );
    top += 28;
  }
  const key = legend(options.series.map((s) => s.name), 70, top + 10, width - 90);
  body.push(key.markup);
  top += key.height + 8;
  const left = 70;
  const right = width - 24;
  const plotTop = top + 8;
  const plotBottom = height - (options.xLabel ? 48 : 32);
  const finite = options.series.flatMap((s) => s.points).filter(([x, y]) =>
    Number.isFinite(x) && Number.isFinite(y)
  );
  const xs = finite.map(([x]) => x);
  const ys = finite.map(([, y]) => y);
  const xTicks = niceTicks(Math.min(...xs, Infinity), Math.max(...xs, -Infinity), 6);
  const yTicks = niceTicks(Math.min(...ys, Infinity), Math.max(...ys, -Infinity), 5);
  const px = (x: number) => left + ((x - xTicks.min) / (xTicks.max - xTicks.min)) * (right - left);
  const py = (y: number) =>
    plotBottom - ((y - yTicks.min) / (yTicks.max - yTicks.min)) * (plotBottom - plotTop);
  body.push(...yAxis(yTicks, left, right, py));
  for (const x of xTicks.values) {
    body.push(
      `<line x1="${fmt(px(x))}" y1="${fmt(plotBottom)}" x2="${fmt(px(x))}" y2="${
        fmt(plotBottom + 4)
      }" ` +
        `stroke="#333333" stroke-width="1"/>`,
      text(px(x), plotBottom + 17, tickLabel(x, xTicks.step), { size: 11, anchor: "middle" }),
    );
  }
  body.push(
    `<line x1="${fmt(left)}" y1="${fmt(plotBottom)}" x2="${fmt(right)}" y2="${fmt(plotBottom)}" ` +
      `stroke="#333333" stroke-width="1"/>`,
  );
  if (options.xLabel) {
    body.push(
      text((left + right) / 2, height - 12, options.xLabel, { size: 12, anchor: "middle" }),
    );
  }
  if (options.yLabel) {
    const cy = (plotTop + plotBottom) / 2;
    body.push(
      text(16, cy, options.yLabel, {
        size: 12,
        anchor: "middle",
        transform: `rotate(-90 16 ${fmt(cy)})`,
      }),
    );
  }
  options.series.forEach((series, s) => {
    const color = PALETTE[s % PALETTE.length];
    const runs: (readonly [number, number])[][] = [[]];
    for (const point of series.points) {
      if (Number.isFinite(point[0]) && Number.isFinite(point[1])) runs[runs.length - 1].push(point);
      else if (runs[runs.length - 1].length > 0) runs.push([]);
    }
    body.push(`<g>`);
    for (const run of runs) {
      if (run.length < 2) continue;
      const points = run.map(([x, y]) => `${fmt(px(x))},${fmt(py(y))}`).join(" ");
      body.push(`<polyline points="${points}" fill="none" stroke="${color}" stroke-width="2"/>`);
    }
    if (series.points.length <= 60 || runs.some((r) => r.length === 1)) {
      for (const run of runs) {
        if (series.points.length > 60 && run.length !== 1) continue;
        for (const [x, y] of run) {
          body.push(
            `<circle cx="${fmt(px(x))}" cy="${fmt(py(y))}" r="2.5" fill="${color}">` +
              `<title>${escapeXml(`${series.name} at ${x}: ${y}`)}</title></circle>`,
          );
        }
      }
    }
    body.push(`</g>`);
  });
  return document(width, height, body);
}
