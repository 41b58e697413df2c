/**
 * The {@linkcode StepModel} of any model family (lib/model/family.ts) on onnxruntime: the prefill
 * graph encodes part A of a batch of prompts once; the step graphs then take one token per sequence
 * (or a run of T known tokens: the graph that returns the log-probabilities after each) against
 * that shared part-A cache and the keys and values of the tokens generated before. Those live in
 * an append-only history here: a step returns only its new tokens' keys and values, which are
 * appended, and each sequence names its past tokens' history rows (`past_index`), which onnxruntime
 * gathers inside the graph. So a beam search reorders index rows, never keys, and no step copies
 * the old cache out of onnxruntime. Every tensor is a flat typed array.
 *
 * Families with rotary positions (docs/method.md section 11) get `rope_position_ids`: part A's
 * inter-positions, and for generated tokens the span's mask index plus the count of the span's
 * tokens so far (1 for `[S]`).
 *
 * Sessions are built lazily (the scoring graph only when something is scored) on the device the
 * prefill session resolved, so `auto` probes the devices once.
 *
 * Not here: search (items.ts, text.ts, score.ts), which only see the StepModel interface.
 *
 * @module
 */

import type { GlmConfig } from "../model/config.ts";
import { glmFamily, type ModelFamily } from "../model/family.ts";
import { cacheNames, type StepOutputs } from "../model/glm.ts";
import type { Weights } from "../model/weights.ts";
import type { TensorData } from "../onnx/graph.ts";
import { type Device, type ResolvedDevice, Session } from "../runtime/session.ts";
import {
  paddedLength,
  PART_A_QUANTUM,
  type PromptInput,
  type ScoreInput,
  type StepInput,
  type StepModel,
} from "./step_model.ts";

/** Options of {@linkcode CachedDecoder.create}. */
export interface DecoderOptions {
  /** Where to run (default `auto`). */
  device?: Device;
  /** Intra-op threads (default: every core). */
  threads?: number;
}

function int32(shape: number[], data: Int32Array): TensorData {
  return { dtype: "int32", shape, data };
}

/**
 * The step graph's `slot_row` [Bp * K] and `row_slot` [N] for `bp` prompts of `rows[q]` rows
 * each (K = `k` each without `rows`), packed prompt after prompt: slot q * K + j reads the
 * prompt's row j, or its last row past its count.
 */
function slotMaps(bp: number, k: number, rows?: Int32Array) {
  const slotRow = new Int32Array(bp * k);
  const rowSlot: number[] = [];
  let start = 0;
  for (let q = 0; q < bp; q++) {
    const count = rows?.[q] ?? k;
    for (let j = 0; j < k; j++) slotRow[q * k + j] = start + Math.min(j, count - 1);
    for (let j = 0; j < count; j++) rowSlot.push(q * k + j);
    start += count;
  }
  return { slot_row: int32([bp * k], slotRow), row_slot: int32([start], Int32Array.from(rowSlot)) };
}

/** A model decoding inside a span with cached part A (see the module docs). */
export class CachedDecoder implements StepModel {
  /** Rows of the model's output (special rows included). */
  readonly vocabSize: number;
  /** The model family the decoder's graphs were built for. */
  readonly family: ModelFamily;
  /** Seconds spent inside onnxruntime's `run` so far (for benchmarks). */
  runSeconds = 0;
  /** Number of `run` calls so far. */
  runs = 0;
  /** Rows part A's prefills have encoded so far: the prompts' tokens (no padding; benchmarks). */
  prefillRows = 0;
  /** Rows the steps have fed so far (sequences times new tokens, twins included). */
  stepRows = 0;

  readonly #threads?: number;
  readonly #prefill: Session;
  readonly #steps = new Map<StepOutputs, Session>();
  readonly #nh: number;
  readonly #hd: number;
  /** Part-A caches by input name, [Bp, nh, La, hd] each. */
  #partA: Record<string, TensorData> = {};
  #sep: Int32Array = new Int32Array(0);
  /**
   * Keys and values of every token generated since part A, by layer ([R, nkv, hd] rows in the
   * first R * nkv * hd elements of each array; the arrays grow by doubling).
   */
  #history: { k: Float32Array; v: Float32Array }[] = [];
  /** R: rows of the history in use. */
  #historyRows = 0;
  /**
   * [Nprev, P] the history rows of each sequence of the previous step (its generated tokens in
   * order), or null before the first step.
   */
  #pastIndex: Int32Array | null = null;
  /** P: generated tokens per sequence (the width of `#pastIndex`). */
  #pastLength = 0;
  /** Whether the past's rows are twins (see {@linkcode CachedDecoder.step}). */
  #pastTwinned = false;
  #fetchLast: string[];
  /** Tokens fed since part A (every row has as many): the rotary offset of the next one. */
  #fed = 0;

  private constructor(family: ModelFamily, prefill: Session, threads?: number) {
    this.family = family;
    this.vocabSize = family.vocabSize;
    this.#prefill = prefill;
    this.#threads = threads;
    this.#nh = family.cacheHeads;
    this.#hd = family.headDim;
    const newRows: string[] = [];
    for (let i = 0; i < family.numLayers; i++) {
      newRows.push(cacheNames.newKey(i), cacheNames.newValue(i));
    }
    this.#fetchLast = ["log_probs", ...newRows];
  }

  /**
   * Builds the prefill graph and opens its session (a device that cannot load throws here).
   * `model` is a family (lib/model/family.ts) or a GLM's config and weights.
   */
  static async create(
    model: ModelFamily | { config: GlmConfig; weights: Weights },
    options: DecoderOptions = {},
  ): Promise<CachedDecoder> {
    const family = "prefillGraph" in model ? model : glmFamily(model);
    const prefill = await Session.create(family.prefillGraph(), {
      ...family.sessionOptions,
      device: options.device,
      threads: options.threads,
    });
    return new CachedDecoder(family, prefill, options.threads);
  }

  /** The device the sessions run on. */
  get device(): ResolvedDevice {
    return this.#prefill.device;
  }

  /** Number of prompts currently held. */
  get promptCount(): number {
    return this.#sep.length;
  }

  async #stepSession(outputs: StepOutputs): Promise<Session> {
    let session = this.#steps.get(outputs);
    if (!session) {
      session = await Session.create(this.family.stepGraph(outputs), {
        ...this.family.sessionOptions,
        device: this.device,
        threads: this.#threads,
      });
      this.#steps.set(outputs, session);
    }
    return session;
  }

  async #run(session: Session, feeds: Record<string, TensorData>, fetch: string[]) {
    const t0 = performance.now();
    const out = await session.run(feeds, fetch);
    this.runSeconds += (performance.now() - t0) / 1000;
    this.runs++;
    return out;
  }

  /**
   * Encodes each prompt alone, at its own length, and lays the batch's caches out as the steps
   * read them: [Bp, nkv, La, hd], La the longest prompt rounded up to a multiple of
   * PART_A_QUANTUM, zeros past each prompt's length (its `sep` masks them). No row of padding goes
   * through the model (a batch padded to its longest prompt spent a fifth to a third of its
   * prefill on padding, issue 30), and a prompt's keys and values cannot depend on its batch.
   */
  async prefill(prompts: readonly PromptInput[]): Promise<void> {
    const bp = prompts.length;
    if (bp === 0) throw new RangeError("prefill needs at least one prompt");
    let longest = 0;
    for (const p of prompts) longest = Math.max(longest, p.ids.length);
    const la = paddedLength(longest, PART_A_QUANTUM);
    const names: string[] = [];
    for (let i = 0; i < this.family.numLayers; i++) {
      names.push(cacheNames.partAKey(i), cacheNames.partAValue(i));
    }
    const partA: Record<string, TensorData> = {};
    const sep = new Int32Array(bp);
    const nh = this.#nh, hd = this.#hd;
    for (let b = 0; b < bp; b++) {
      const p = prompts[b];
      const l = p.ids.length;
      sep[b] = l;
      const positions = new Int32Array(2 * l);
      positions.set(p.inter, 0);
      positions.set(p.intra, l);
      const feeds: Record<string, TensorData> = {
        input_ids: int32([1, l], p.ids),
        position_ids: int32([1, 2, l], positions),
        sep: int32([1], Int32Array.of(l)),
      };
      if (this.family.usesRope) feeds.rope_position_ids = int32([1, l], Int32Array.from(p.inter));
      const out = await this.#run(this.#prefill, feeds, names);
      this.prefillRows += l;
      for (const name of names) {
        const src = out[name].data as Float32Array; // [1, nh, l, hd]
        partA[name] ??= {
          dtype: out[name].dtype,
          shape: [bp, nh, la, hd],
          data: new (src.constructor as Float32ArrayConstructor)(bp * nh * la * hd),
        };
        const dst = partA[name].data as Float32Array;
        for (let h = 0; h < nh; h++) {
          dst.set(src.subarray(h * l * hd, (h + 1) * l * hd), (b * nh + h) * la * hd);
        }
      }
    }
    this.#partA = partA;
    this.#sep = sep;
    this.resetPast();
  }

  keepPrompts(keep: readonly number[]): void {
    const bp = this.#sep.length;
    if (keep.length === bp && keep.every((k, i) => k === i)) return;
    const sep = new Int32Array(keep.length);
    keep.forEach((k, i) => (sep[i] = this.#sep[k]));
    const partA: Record<string, TensorData> = {};
    for (const [name, t] of Object.entries(this.#partA)) {
      // [Bp, nh, La, hd]: each prompt's block is contiguous.
      const stride = t.shape[1] * t.shape[2] * t.shape[3];
      const src = t.data as Float32Array;
      const data = new Float32Array(keep.length * stride);
      keep.forEach((k, i) => data.set(src.subarray(k * stride, (k + 1) * stride), i * stride));
      partA[name] = { dtype: "float32", shape: [keep.length, ...t.shape.slice(1)], data };
    }
    this.#partA = partA;
    this.#sep = sep;
  }

  resetPast(): void {
    this.#historyRows = 0;
    this.#pastIndex = null;
    this.#pastLength = 0;
    this.#pastTwinned = false;
    this.#fed = 0;
  }

  /**
   * The history's first `rows` rows as the step graph's `past_key_{i}`/`past_value_{i}` inputs,
   * [rows, nkv, hd] (scoring feeds none: it reads no generated token).
   */
  #historyFeeds(rows = this.#historyRows): Record<string, TensorData> {
    const shape = [rows, this.#nh, this.#hd];
    const used = rows * this.#nh * this.#hd;
    const feeds: Record<string, TensorData> = {};
    for (let i = 0; i < this.family.numLayers; i++) {
      const h = this.#history[i];
      feeds[cacheNames.pastKey(i)] = {
        dtype: "float32",
        shape,
        data: h?.k.subarray(0, used) ?? new Float32Array(0),
      };
      feeds[cacheNames.pastValue(i)] = {
        dtype: "float32",
        shape,
        data: h?.v.subarray(0, used) ?? new Float32Array(0),
      };
    }
    return feeds;
  }

  /** Appends a step's new rows (`new_key_{i}`/`new_value_{i}`, [rows, nkv, hd]) to the history. */
  #appendHistory(out: Record<string, TensorData>, rows: number): void {
    const row = this.#nh * this.#hd;
    const used = this.#historyRows * row;
    const needed = used + rows * row;
    for (let i = 0; i < this.family.numLayers; i++) {
      let h = this.#history[i];
      if (!h || h.k.length < needed) {
        const capacity = Math.max(needed, 2 * (h?.k.length ?? 0));
        const grown = { k: new Float32Array(capacity), v: new Float32Array(capacity) };
        if (h) {
          grown.k.set(h.k.subarray(0, used));
          grown.v.set(h.v.subarray(0, used));
        }
        h = this.#history[i] = grown;
      }
      h.k.set(out[cacheNames.newKey(i)].data as Float32Array, used);
      h.v.set(out[cacheNames.newValue(i)].data as Float32Array, used);
    }
    this.#historyRows += rows;
  }

  async step(input: StepInput): Promise<Float32Array> {
    const t = input.length ?? 1;
    const bp = this.#sep.length;
    const { rows, perPrompt } = input;
    if (rows && (rows.length !== bp || rows.some((r) => !(r >= 1 && r <= perPrompt)))) {
      throw new RangeError(`step: rows of ${rows.length} prompts (1 to ${perPrompt}) for ${bp}`);
    }
    const n = rows ? rows.reduce((a, r) => a + r, 0) : bp * perPrompt;
    if (!(Number.isInteger(t) && t >= 1) || input.ids.length !== n * t) {
      throw new RangeError(
        `step: ${input.ids.length} tokens for ${n} rows (${bp} prompts, up to ${perPrompt} ` +
          `each) x ${t}`,
      );
    }
    // The step attends to part A with each prompt's rows as the rows of one matrix product
    // (K = rows per prompt). onnxruntime's CPU GEMM computes a product of one row with a kernel
    // of its own, whose sums round differently from those of two rows or more: a prompt's scores
    // would then depend on how many beams the other prompts of its batch keep, and a sharded run
    // would differ from an unsharded one in the last digits. So one row per prompt is fed twice
    // (K = 2) and the twins' outputs are dropped; the past keeps the twins, so the caller's row r
    // of a twinned step is row 2r there. A search of one beam (greedy text) has one row per prompt
    // at every step, whatever its batch: it needs no twins. A step of T > 1 tokens multiplies
    // K * T rows: no twins either.
    const twinned = t === 1 && n === bp && !input.oneRowEach; // one row per prompt
    const wasTwinned = this.#pastTwinned;
    const fromPast = (r: number) => (wasTwinned ? 2 * r : r);
    if (!twinned) {
      this.#pastTwinned = false;
      return this.#step(
        wasTwinned ? { ...input, beamIndex: input.beamIndex.map(fromPast) } : input,
      );
    }
    const twice = (a: Int32Array, map = (x: number) => x) => {
      const out = new Int32Array(2 * a.length);
      a.forEach((x, r) => (out[2 * r] = out[2 * r + 1] = map(x)));
      return out;
    };
    // Every prompt has one row: twice that is two each, whatever `rows` and `perPrompt` said.
    const logp = await this.#step({
      perPrompt: 2,
      ids: twice(input.ids),
      inter: twice(input.inter),
      intra: twice(input.intra),
      beamIndex: twice(input.beamIndex, fromPast),
    });
    this.#pastTwinned = true;
    const v = logp.length / (2 * input.ids.length);
    const kept = new Float32Array(input.ids.length * v);
    for (let r = 0; r < input.ids.length; r++) {
      kept.set(logp.subarray(2 * r * v, (2 * r + 1) * v), r * v);
    }
    return kept;
  }

  async #step(input: StepInput): Promise<Float32Array> {
    const t = input.length ?? 1;
    const n = input.ids.length / t;
    const positions = new Int32Array(2 * n * t);
    for (let r = 0; r < n; r++) {
      positions.set(input.inter.subarray(r * t, (r + 1) * t), 2 * r * t);
      positions.set(input.intra.subarray(r * t, (r + 1) * t), 2 * r * t + t);
    }
    // Row r continues the previous step's row beamIndex[r]: its past is that row's tokens.
    // Before any token is generated every row's past is empty (P = 0).
    const p = this.#pastLength;
    const pastIndex = new Int32Array(n * p);
    if (this.#pastIndex !== null) {
      const previousRows = this.#pastIndex.length / p;
      for (let r = 0; r < n; r++) {
        const b = input.beamIndex[r];
        if (!(b >= 0 && b < previousRows)) {
          throw new RangeError(`step: beam index ${b} of row ${r} outside ${previousRows} rows`);
        }
        pastIndex.set(this.#pastIndex.subarray(b * p, (b + 1) * p), r * p);
      }
    }
    const feeds: Record<string, TensorData> = {
      input_ids: int32([n, t], input.ids),
      position_ids: int32([n, 2, t], positions),
      sep: int32([this.#sep.length], this.#sep),
      ...slotMaps(this.#sep.length, input.perPrompt, input.rows),
      past_index: int32([n, p], pastIndex),
      ...this.#partA,
      ...this.#historyFeeds(),
    };
    if (this.family.usesRope) {
      // Token j of a row is the span's (fed + j + 1)-th.
      const rope = Int32Array.from(input.inter, (inter, i) => inter + this.#fed + (i % t) + 1);
      feeds.rope_position_ids = int32([n, t], rope);
    }
    // One token: only its log-probabilities ("last"); a run of tokens: those after each ("all").
    const session = await this.#stepSession(t === 1 ? "last" : "all");
    const out = await this.#run(session, feeds, this.#fetchLast);
    this.stepRows += n * t;
    this.#fed += t;
    // Row r's new tokens are history rows R + r * T + j: its past grows by them.
    const from = this.#historyRows;
    this.#appendHistory(out, n * t);
    const next = new Int32Array(n * (p + t));
    for (let r = 0; r < n; r++) {
      next.set(pastIndex.subarray(r * p, (r + 1) * p), r * (p + t));
      for (let j = 0; j < t; j++) next[r * (p + t) + p + j] = from + r * t + j;
    }
    this.#pastIndex = next;
    this.#pastLength = p + t;
    return out.log_probs.data as Float32Array;
  }

  async scoreTargets(input: ScoreInput): Promise<Float32Array> {
    const t = input.length;
    const n = input.ids.length / t;
    if (n !== this.#sep.length * input.perPrompt) {
      throw new RangeError(`score: ${n} rows for ${this.#sep.length} prompts x ${input.perPrompt}`);
    }
    const positions = new Int32Array(2 * n * t);
    for (let r = 0; r < n; r++) {
      positions.set(input.inter.subarray(r * t, (r + 1) * t), 2 * r * t);
      positions.set(input.intra.subarray(r * t, (r + 1) * t), 2 * r * t + t);
    }
    const feeds: Record<string, TensorData> = {
      input_ids: int32([n, t], input.ids),
      position_ids: int32([n, 2, t], positions),
      sep: int32([this.#sep.length], this.#sep),
      ...slotMaps(this.#sep.length, input.perPrompt),
      past_index: int32([n, 0], new Int32Array(0)),
      targets: int32([n, t], input.targets),
      ...this.#partA,
      ...this.#historyFeeds(0),
    };
    if (this.family.usesRope) {
      // Rows start right after part A: token j of a row is the span's (j + 1)-th.
      const rope = Int32Array.from(input.inter, (inter, i) => inter + (i % t) + 1);
      feeds.rope_position_ids = int32([n, t], rope);
    }
    const out = await this.#run(await this.#stepSession("targets"), feeds, ["target_log_probs"]);
    return out.target_log_probs.data as Float32Array;
  }

  /** Frees every session. */
  async release(): Promise<void> {
    await this.#prefill.release();
    for (const s of this.#steps.values()) await s.release();
    this.#steps.clear();
  }
}
