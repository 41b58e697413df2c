/**
 * How far above SASRec and the mean with biases a method can go on the demo's data when it reads
 * only what the data shows (each user's purchases, the items' categories and brands), as every
 * recommender does; `demo_ceiling` knows the generator's hidden tastes and bounds from above.
 *
 * The demo's generator (fixtures/demo/generate.ts) draws two purchases in three as a follow-up of
 * the previous item's series, which SASRec learns almost perfectly, and the rest from the user's
 * preferred categories with a boost for their brands and a popularity skew. A hand-built model of
 * that second part from the history alone (`profile`: the user's category shares, smoothed, times
 * the item's popularity inside its category, times 2 for the user's three most bought brands) is
 * mixed with SASRec's softmax over its 50 best (`mixture`: a of SASRec, 1 - a of the profile, a
 * chosen on the validation split, then applied to test). Its figures are what a model that had
 * learned the generator's form exactly from the history would add to SASRec: the room the demo
 * leaves a language model above SASRec.
 *
 * Ratings the same way: the mean with damped user and item biases, and the biases plus three
 * features of the history (the share of the item's category among the user's earlier purchases,
 * whether they bought its brand before, and how often other users bought it right after the
 * previous item), fitted by least squares on the training purchases.
 *
 * SASRec is the toolkit's own (`eval --baseline sasrec`, refit for test as the demo's is), trained
 * here in child processes on the built-in dataset: about two minutes on 2 cores.
 *
 *     deno task bench demo_room
 *
 * @module
 */

import { join } from "node:path";
import { type DemoTruth, generateDemo } from "../fixtures/demo/generate.ts";
import { parseCsv } from "../lib/data/csv.ts";
import { readJsonLines } from "../lib/io/lines.ts";
import { scoreLists } from "./demo_ceiling.ts";
import { InputError } from "../lib/errors.ts";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));
const FIXTURES = fileURLToPath(new URL("../fixtures/demo/", import.meta.url));
const round = (x: number) => Math.round(x * 1e4) / 1e4;

/** SASRec's candidates kept per record, as the demo's two stages keep. */
const SASREC_TOP = 50;
/** The profile's brand boost and how many of the user's brands it boosts. */
const BRAND_BOOST = 2;
const BRANDS_BOOSTED = 3;
/** Pseudo-purchases spread over the ten categories in the category shares. */
const CATEGORY_SMOOTHING = 1;
/** Damping of the user and item biases (as the mean baseline's). */
const BIAS_DAMPING = 5;

interface Purchase {
  item: string;
  time: number;
  rating: number;
}

async function rowsOf(text: string): Promise<string[][]> {
  async function* lines() {
    let number = 0;
    for (const line of text.split("\n")) yield { number: ++number, text: line };
  }
  const rows: string[][] = [];
  for await (const { fields } of parseCsv(lines())) rows.push(fields);
  return rows.slice(1);
}

/** Each user's purchases by time and each item's category and brand, from the generated CSVs. */
async function demoData() {
  const { interactions, items, truth } = generateDemo(undefined, undefined, { truth: true });
  const catalog = new Map<string, { category: string; brand: string }>();
  for (const [id, , brand, category] of await rowsOf(items)) catalog.set(id, { category, brand });
  const purchases = new Map<string, Purchase[]>();
  for (const [user, item, time, rating] of await rowsOf(interactions)) {
    if (!purchases.has(user)) purchases.set(user, []);
    purchases.get(user)!.push({ item, time: Number(time), rating: Number(rating) });
  }
  for (const list of purchases.values()) list.sort((a, b) => a.time - b.time);
  return { catalog, purchases, truth };
}

type Catalog = Awaited<ReturnType<typeof demoData>>["catalog"];

/** The purchases a split may learn from: all but the last two (valid) or the last (test). */
const known = (list: Purchase[], split: "valid" | "test") =>
  list.slice(0, list.length - (split === "valid" ? 2 : 1));

/** The profile model's probability of each item the user does not own (see the module docs). */
function profile(history: Purchase[], catalog: Catalog, popularity: Map<string, number>) {
  const owned = new Set(history.map((p) => p.item));
  const count = (key: (id: string) => string) => {
    const counts = new Map<string, number>();
    for (const p of history) counts.set(key(p.item), (counts.get(key(p.item)) ?? 0) + 1);
    return counts;
  };
  const categories = count((id) => catalog.get(id)!.category);
  const brands = new Set(
    [...count((id) => catalog.get(id)!.brand)].sort((a, b) => b[1] - a[1])
      .slice(0, BRANDS_BOOSTED).map(([brand]) => brand),
  );
  const categoryTotal = new Map<string, number>();
  for (const [id, { category }] of catalog) {
    categoryTotal.set(category, (categoryTotal.get(category) ?? 0) + (popularity.get(id) ?? 0) + 1);
  }
  const nCategories = categoryTotal.size;
  const scores = new Map<string, number>();
  let total = 0;
  for (const [id, { category, brand }] of catalog) {
    if (owned.has(id)) continue;
    const share = ((categories.get(category) ?? 0) + CATEGORY_SMOOTHING / nCategories) /
      (history.length + CATEGORY_SMOOTHING);
    const score = share * ((popularity.get(id) ?? 0) + 1) / categoryTotal.get(category)! *
      (brands.has(brand) ? BRAND_BOOST : 1);
    scores.set(id, score);
    total += score;
  }
  for (const [id, s] of scores) scores.set(id, s / total);
  return scores;
}

/** SASRec's validation or test ranking (its 50 best with scores), trained by eval here. */
async function sasrecScores(dir: string, data: string, split: "valid" | "test") {
  const out = join(dir, split);
  const child = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "eval", `--data=${data}`, `--split=${split}`, "--tasks=sequential"]
      .concat(["--baseline=sasrec", `--top-k=${SASREC_TOP}`, `--save-baselines=${out}`, "--quiet"]),
    stdout: "null",
    stderr: "inherit",
  }).output();
  if (!child.success) throw new InputError(`eval --split ${split} failed (exit ${child.code})`);
  const byUser = new Map<string, Map<string, number>>();
  for await (const { value } of readJsonLines(join(out, "sasrec.jsonl"))) {
    const line = value as { user: string; predictions: { item_id: string; score: number }[] };
    // Every template of a user gets the same list: SASRec reads only the history.
    byUser.set(line.user, new Map(line.predictions.map((p) => [p.item_id, p.score])));
  }
  return byUser;
}

/** A softmax of SASRec's scores over its candidates (zero elsewhere). */
function softmax(scores: Map<string, number>) {
  const top = Math.max(...scores.values());
  const exp = new Map([...scores].map(([id, s]) => [id, Math.exp(s - top)]));
  const total = [...exp.values()].reduce((a, b) => a + b, 0);
  return new Map([...exp].map(([id, e]) => [id, e / total]));
}

const ranked = (scores: Map<string, number>) =>
  [...scores].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([id]) => id);

function mix(a: number, sasrec: Map<string, number>, prof: Map<string, number>) {
  return new Map([...prof].map(([id, p]) => [id, a * (sasrec.get(id) ?? 0) + (1 - a) * p]));
}

/** The ranking figures of SASRec, the profile and their mixture on both splits. */
async function ranking(data: Awaited<ReturnType<typeof demoData>>, dir: string, dataset: string) {
  const lists: Record<string, Record<string, { truth: DemoTruth; scores: Map<string, number> }[]>> =
    {};
  for (const split of ["valid", "test"] as const) {
    const sasrec = await sasrecScores(dir, dataset, split);
    const popularity = new Map<string, number>();
    for (const list of data.purchases.values()) {
      for (const p of known(list, split)) popularity.set(p.item, (popularity.get(p.item) ?? 0) + 1);
    }
    lists[split] = { sasrec: [], profile: [] };
    for (const truth of data.truth.filter((t) => t.split === split)) {
      const history = known(data.purchases.get(truth.user)!, split);
      lists[split].sasrec.push({ truth, scores: softmax(sasrec.get(truth.user)!) });
      lists[split].profile.push({ truth, scores: profile(history, data.catalog, popularity) });
    }
  }
  const mixed = (split: string, a: number) =>
    lists[split].profile.map(({ truth, scores }, i) => ({
      truth,
      ranked: ranked(mix(a, lists[split].sasrec[i].scores, scores)),
    }));
  // The mixture's weight on SASRec, chosen on validation by HR@10, then NDCG@10.
  let best = { a: 1, hr: -1, ndcg: -1 };
  for (let tenths = 1; tenths <= 9; tenths++) {
    const a = tenths / 10;
    const f = scoreLists(mixed("valid", a));
    if (f["HR@10"] > best.hr || (f["HR@10"] === best.hr && f["NDCG@10"] > best.ndcg)) {
      best = { a, hr: f["HR@10"], ndcg: f["NDCG@10"] };
    }
  }
  const figures: Record<string, unknown> = { mixture_sasrec_weight: best.a };
  for (const split of ["valid", "test"]) {
    const alone = (name: string) =>
      scoreLists(
        lists[split][name].map(({ truth, scores }) => ({ truth, ranked: ranked(scores) })),
      );
    figures[split] = {
      sasrec: alone("sasrec"),
      profile: alone("profile"),
      mixture: scoreLists(mixed(split, best.a)),
    };
  }
  return figures;
}

/** The features of the module docs for the purchase at `k` of a user's list. */
function ratingFeatures(
  list: Purchase[],
  k: number,
  catalog: Catalog,
  follows: Map<string, number>,
  own: number,
) {
  const item = catalog.get(list[k].item)!;
  const earlier = list.slice(0, k).map((p) => catalog.get(p.item)!);
  const share = earlier.filter((e) => e.category === item.category).length / Math.max(k, 1);
  const brand = earlier.some((e) => e.brand === item.brand) ? 1 : 0;
  const pair = k > 0 ? (follows.get(`${list[k - 1].item}>${list[k].item}`) ?? 0) - own : 0;
  return [share, brand, Math.min(pair, 3) / 3];
}

/** Least squares of `y` on the columns of `x` (normal equations; three columns). */
function leastSquares(x: number[][], y: number[]): number[] {
  const d = x[0].length;
  const a = Array.from({ length: d }, () => new Array(d + 1).fill(0));
  x.forEach((row, n) => {
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) a[i][j] += row[i] * row[j];
      a[i][d] += row[i] * y[n];
    }
  });
  for (let i = 0; i < d; i++) { // Gauss-Jordan with partial pivoting
    const p = a.slice(i).reduce((b, row, r) => Math.abs(row[i]) > Math.abs(a[b][i]) ? r + i : b, i);
    [a[i], a[p]] = [a[p], a[i]];
    for (let r = 0; r < d; r++) {
      if (r === i) continue;
      const f = a[r][i] / a[i][i];
      for (let c = i; c <= d; c++) a[r][c] -= f * a[i][c];
    }
  }
  return a.map((row, i) => row[d] / row[i]);
}

/** RMSE of the biases alone and with the history's features, on each split's held-out rating. */
function ratings(data: Awaited<ReturnType<typeof demoData>>) {
  const figures: Record<string, unknown> = {};
  for (const split of ["valid", "test"] as const) {
    const follows = new Map<string, number>();
    const rows: { user: string; item: string; x: number[]; y: number }[] = [];
    for (const list of data.purchases.values()) {
      const seen = known(list, split);
      for (let k = 1; k < seen.length; k++) {
        const key = `${seen[k - 1].item}>${seen[k].item}`;
        follows.set(key, (follows.get(key) ?? 0) + 1);
      }
    }
    for (const [user, list] of data.purchases) {
      const seen = known(list, split);
      seen.forEach((p, k) =>
        rows.push({
          user,
          item: p.item,
          x: ratingFeatures(seen, k, data.catalog, follows, k > 0 ? 1 : 0),
          y: p.rating,
        })
      );
    }
    const fit = (features: boolean) => {
      const mu = rows.reduce((a, r) => a + r.y, 0) / rows.length;
      const bu = new Map<string, number>();
      const bi = new Map<string, number>();
      let w = [0, 0, 0];
      const dot = (x: number[]) => x.reduce((a, v, i) => a + v * w[i], 0);
      const base = (r: (typeof rows)[number]) => mu + (bu.get(r.user) ?? 0) + (bi.get(r.item) ?? 0);
      for (let sweep = 0; sweep < 10; sweep++) {
        if (features) w = leastSquares(rows.map((r) => r.x), rows.map((r) => r.y - base(r)));
        for (const [bias, key, other] of [[bi, "item", bu], [bu, "user", bi]] as const) {
          const sums = new Map<string, [number, number]>();
          for (const r of rows) {
            const k = r[key];
            const otherKey = key === "item" ? r.user : r.item;
            const residual = r.y - mu - (other.get(otherKey) ?? 0) - dot(r.x);
            const s = sums.get(k) ?? [0, 0];
            sums.set(k, [s[0] + residual, s[1] + 1]);
          }
          for (const [k, [s, n]] of sums) bias.set(k, s / (n + BIAS_DAMPING));
        }
      }
      let squares = 0;
      const held = data.truth.filter((t) => t.split === split);
      for (const t of held) {
        const list = data.purchases.get(t.user)!;
        const k = list.length - (split === "valid" ? 2 : 1);
        const x = ratingFeatures(list, k, data.catalog, follows, 0);
        const p = mu + (bu.get(t.user) ?? 0) + (bi.get(t.item) ?? 0) + dot(x);
        squares += (Math.min(5, Math.max(1, p)) - t.rating) ** 2;
      }
      return { rmse: round(Math.sqrt(squares / held.length)), weights: w.map(round) };
    };
    figures[split] = { biases: fit(false).rmse, biases_history: fit(true) };
  }
  return figures;
}

/** Runs the benchmark once and returns its figures. */
export async function run(): Promise<Record<string, unknown>> {
  const dir = await Deno.makeTempDir({ prefix: "recsysllm-demo-room-" });
  try {
    const dataset = join(dir, "data");
    const textualize = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "textualize", "--format=csv", "--quiet", "--seed=1"]
        .concat([`--input=${FIXTURES}interactions.csv`, `--items=${FIXTURES}items.csv`])
        .concat([`--users=${FIXTURES}users.csv`, `--out=${dataset}`]),
      stdout: "null",
      stderr: "inherit",
    }).output();
    if (!textualize.success) throw new InputError(`textualize failed (exit ${textualize.code})`);
    const data = await demoData();
    return { ranking: await ranking(data, dir, dataset), rating: ratings(data) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
