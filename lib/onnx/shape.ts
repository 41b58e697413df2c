/**
 * Static shapes for the graph layer: dimensions that are numbers or symbols (`"B"`, `"L"`,
 * products such as `"B*L"`), and the arithmetic shape inference needs (products, exact division,
 * numpy broadcasting). Not a general symbolic algebra: sums of symbols and anything not a product
 * become fresh symbols (`"?3"`), which keeps the rank and every literal 1 known, the two things
 * reverse-mode differentiation relies on to undo broadcasting.
 *
 * @module
 */

/** One dimension: a size, or a symbol (or product of symbols) fixed only when the graph runs. */
export type Dim = number | string;

/** A tensor's shape: one {@linkcode Dim} per axis. */
export type Shape = readonly Dim[];

let freshCounter = 0;

/** A new symbol that equals no other dimension: for sizes shape inference cannot express. */
export function freshDim(): string {
  return `?${++freshCounter}`;
}

/** Whether `d` is a symbol made by {@linkcode freshDim} (a size shape inference lost track of). */
export function isFresh(d: Dim): boolean {
  return typeof d === "string" && d.startsWith("?");
}

interface Monomial {
  coef: number;
  symbols: string[];
}

function parse(d: Dim): Monomial {
  if (typeof d === "number") return { coef: d, symbols: [] };
  let coef = 1;
  const symbols: string[] = [];
  for (const part of d.split("*")) {
    const n = Number(part);
    if (part !== "" && Number.isInteger(n)) coef *= n;
    else symbols.push(part);
  }
  symbols.sort();
  return { coef, symbols };
}

function format(m: Monomial): Dim {
  if (m.symbols.length === 0) return m.coef;
  if (m.coef === 0) return 0;
  return [...(m.coef === 1 ? [] : [String(m.coef)]), ...m.symbols].join("*");
}

/** `d` in its canonical form (`"L*B"` and `"B*L"` both become `"B*L"`). */
export function canonicalDim(d: Dim): Dim {
  return format(parse(d));
}

/** Whether two dimensions are known to be equal. */
export function sameDim(a: Dim, b: Dim): boolean {
  return canonicalDim(a) === canonicalDim(b);
}

/** The product of dimensions (`mulDims("B", "L", 4)` is `"4*B*L"`). */
export function mulDims(...dims: Dim[]): Dim {
  let coef = 1;
  const symbols: string[] = [];
  for (const d of dims) {
    const m = parse(d);
    coef *= m.coef;
    symbols.push(...m.symbols);
  }
  symbols.sort();
  return format({ coef, symbols });
}

/** The number of elements of `shape` (a product, possibly symbolic). */
export function numel(shape: Shape): Dim {
  return mulDims(...shape);
}

/** `a / b` when it divides exactly as a product of symbols; otherwise a fresh symbol. */
export function divDims(a: Dim, b: Dim): Dim {
  const ma = parse(a);
  const mb = parse(b);
  if (mb.coef === 0 || ma.coef % mb.coef !== 0) return freshDim();
  const rest = [...ma.symbols];
  for (const s of mb.symbols) {
    const i = rest.indexOf(s);
    if (i < 0) return freshDim();
    rest.splice(i, 1);
  }
  return format({ coef: ma.coef / mb.coef, symbols: rest });
}

/** Whether every dimension of `shape` is a number. */
export function isStatic(shape: Shape): shape is readonly number[] {
  return shape.every((d) => typeof d === "number");
}

/** The shape as numbers; throws naming `what` when a dimension is symbolic. */
export function staticShape(shape: Shape, what: string): number[] {
  if (!isStatic(shape)) throw new Error(`${what}: shape [${shape.join(", ")}] is not static`);
  return [...shape];
}

/** Normalizes a possibly negative axis for a tensor of rank `rank`; throws when out of range. */
export function normAxis(axis: number, rank: number, what = "axis"): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new Error(`${what} ${axis} is out of range for rank ${rank}`);
  }
  return a;
}

/**
 * The numpy broadcast of several shapes (right-aligned; a 1 stretches; equal dims stay). Throws
 * when two numeric dims differ and neither is 1. A symbol against a number other than 1 gives the
 * number (the graph will only run when they agree).
 */
export function broadcastShapes(...shapes: Shape[]): Dim[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let dim: Dim = 1;
    for (const s of shapes) {
      const d = s[s.length - rank + i];
      if (d === undefined || d === 1) continue;
      if (dim === 1) dim = d;
      else if (sameDim(dim, d)) continue;
      else if (typeof dim === "number" && typeof d === "number") {
        throw new Error(`cannot broadcast shapes ${shapes.map(show).join(" and ")}`);
      } else if (typeof d === "number") dim = d;
    }
    out.push(dim);
  }
  return out;
}

/** A shape for messages: `[B, L, 256]`. */
export function show(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}
