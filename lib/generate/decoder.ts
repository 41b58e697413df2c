/**
 * The {@linkcode StepModel} of any model family (lib/model/family.ts) on onnxruntime: the prefill
 * graph encodes part A of a batch of prompts once; the step graphs then take one token per sequence
 * (or a run of T known tokens: the graph that returns the log-probabilities after each) against
 * that shared part-A cache and the sequences' own key/value cache, which onnxruntime reorders by
 * `beam_index` inside the graph. Only the tensors of the current step cross between
 * JavaScript and onnxruntime; every tensor is a flat typed array.
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

  readonly #threads?: number;
  readonly #prefill: Session;
  readonly #steps = new Map<StepOutputs, Session>();
  readonly #nh: number;
  readonly #hd: number;
  /** Part-A caches by input name, [Bp, nh, La, hd] each. */
  #partA: Record<string, TensorData> = {};
  #sep: Int32Array = new Int32Array(0);
  /** Generated-token caches by input name (`past_*`), or null before the first step. */
  #past: Record<string, TensorData> | null = null;
  /** Whether the past's rows are twins (see {@linkcode CachedDecoder.step}). */
  #pastTwinned = false;
  #emptyPast: Record<string, TensorData> = {};
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
    const presents: string[] = [];
    for (let i = 0; i < family.numLayers; i++) {
      presents.push(cacheNames.presentKey(i), cacheNames.presentValue(i));
      const empty: TensorData = {
        dtype: "float32",
        shape: [1, this.#nh, 0, this.#hd],
        data: new Float32Array(0),
      };
      this.#emptyPast[cacheNames.pastKey(i)] = empty;
      this.#emptyPast[cacheNames.pastValue(i)] = empty;
    }
    this.#fetchLast = ["log_probs", ...presents];
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

  async prefill(prompts: readonly PromptInput[]): Promise<void> {
    const bp = prompts.length;
    if (bp === 0) throw new RangeError("prefill needs at least one prompt");
    let la = 0;
    for (const p of prompts) la = Math.max(la, p.ids.length);
    // To a multiple of PART_A_QUANTUM, so that a prompt's results do not depend on its batch.
    la = paddedLength(la, PART_A_QUANTUM);
    // Right padding (id 0, positions 0): no real token attends to it (sep masks it).
    const ids = new Int32Array(bp * la);
    const positions = new Int32Array(bp * 2 * la);
    const sep = new Int32Array(bp);
    for (let b = 0; b < bp; b++) {
      const p = prompts[b];
      ids.set(p.ids, b * la);
      positions.set(p.inter, b * 2 * la);
      positions.set(p.intra, b * 2 * la + la);
      sep[b] = p.ids.length;
    }
    const fetch: string[] = [];
    for (let i = 0; i < this.family.numLayers; i++) {
      fetch.push(cacheNames.partAKey(i), cacheNames.partAValue(i));
    }
    const feeds: Record<string, TensorData> = {
      input_ids: int32([bp, la], ids),
      position_ids: int32([bp, 2, la], positions),
      sep: int32([bp], sep),
    };
    if (this.family.usesRope) {
      const rope = new Int32Array(bp * la);
      prompts.forEach((p, b) => rope.set(p.inter, b * la));
      feeds.rope_position_ids = int32([bp, la], rope);
    }
    this.#partA = await this.#run(this.#prefill, feeds, fetch);
    this.#sep = sep;
    this.#past = null;
    this.#pastTwinned = false;
    this.#fed = 0;
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
    this.#past = null;
    this.#pastTwinned = false;
    this.#fed = 0;
  }

  async step(input: StepInput): Promise<Float32Array> {
    const t = input.length ?? 1;
    if (
      !(Number.isInteger(t) && t >= 1) ||
      input.ids.length !== this.#sep.length * input.perPrompt * t
    ) {
      throw new RangeError(
        `step: ${input.ids.length} tokens for ${this.#sep.length} prompts x ${input.perPrompt} ` +
          `rows x ${t}`,
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
    const twinned = t === 1 && input.perPrompt === 1 && !input.oneRowEach;
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
    const logp = await this.#step({
      perPrompt: 2,
      ids: twice(input.ids),
      inter: twice(input.inter),
      intra: twice(input.intra),
      beamIndex: twice(input.beamIndex, fromPast),
    });
    this.#pastTwinned = true;
    const v = logp.length / (2 * input.ids.length);
    const rows = new Float32Array(input.ids.length * v);
    for (let r = 0; r < input.ids.length; r++) {
      rows.set(logp.subarray(2 * r * v, (2 * r + 1) * v), r * v);
    }
    return rows;
  }

  async #step(input: StepInput): Promise<Float32Array> {
    const t = input.length ?? 1;
    const n = input.ids.length / t;
    const positions = new Int32Array(2 * n * t);
    for (let r = 0; r < n; r++) {
      positions.set(input.inter.subarray(r * t, (r + 1) * t), 2 * r * t);
      positions.set(input.intra.subarray(r * t, (r + 1) * t), 2 * r * t + t);
    }
    const first = this.#past === null;
    const feeds: Record<string, TensorData> = {
      input_ids: int32([n, t], input.ids),
      position_ids: int32([n, 2, t], positions),
      sep: int32([this.#sep.length], this.#sep),
      // Before any token is generated the past is [1, nh, 0, hd]: every row continues row 0.
      beam_index: int32([n], first ? new Int32Array(n) : input.beamIndex),
      ...this.#partA,
      ...(first ? this.#emptyPast : this.#past),
    };
    if (this.family.usesRope) {
      // Token j of a row is the span's (fed + j + 1)-th.
      const rope = Int32Array.from(input.inter, (inter, i) => inter + this.#fed + (i % t) + 1);
      feeds.rope_position_ids = int32([n, t], rope);
    }
    // One token: only its log-probabilities ("last"); a run of tokens: those after each ("all").
    const session = await this.#stepSession(t === 1 ? "last" : "all");
    const out = await this.#run(session, feeds, this.#fetchLast);
    this.#fed += t;
    const past: Record<string, TensorData> = {};
    for (let i = 0; i < this.family.numLayers; i++) {
      past[cacheNames.pastKey(i)] = out[cacheNames.presentKey(i)];
      past[cacheNames.pastValue(i)] = out[cacheNames.presentValue(i)];
    }
    this.#past = past;
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
      beam_index: int32([n], new Int32Array(n)),
      targets: int32([n, t], input.targets),
      ...this.#partA,
      ...this.#emptyPast,
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
