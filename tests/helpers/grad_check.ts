/**
 * Test helper (not a test file): checks the gradients `lib/train/autodiff.ts` emits against central
 * finite differences computed by running the forward graph in onnxruntime, and reports the worst
 * relative error, llm.c style, so that a regression is visible in the test output.
 *
 * Relative error of one element: |analytic - numeric| / max(|analytic|, |numeric|, floor), with
 * floor = 1e-3 x the largest |numeric| of that tensor (so entries that are zero up to rounding do
 * not dominate).
 *
 * @module
 */

import type { DType, Graph, TensorData, Value } from "../../lib/onnx/graph.ts";
import { Session } from "../../lib/runtime/session.ts";
import { gradients } from "../../lib/train/autodiff.ts";

/** What {@linkcode checkGradients} found. */
export interface GradCheckResult {
  /** Worst relative error over every checked element. */
  worst: number;
  /** Worst relative error per checked tensor. */
  perTensor: Record<string, number>;
  /** Largest |gradient| seen (a check of all-zero gradients proves nothing). */
  largest: number;
  /** Number of elements checked. */
  checked: number;
}

/** Options of {@linkcode checkGradients}. */
export interface GradCheckOptions {
  /** Finite-difference step (default 1e-5 for float64, 1e-2 for float32). */
  step?: number;
  /** Check at most this many elements per tensor, spread evenly (default all). */
  maxElements?: number;
  /** Intra-op threads of the session (default 1). */
  threads?: number;
}

function toNumbers(t: TensorData): Float64Array {
  return Float64Array.from(t.data as ArrayLike<number>);
}

function perturbed(t: TensorData, i: number, delta: number): TensorData {
  const data = (t.data as Float32Array | Float64Array).slice();
  data[i] += delta;
  return { dtype: t.dtype, shape: t.shape, data };
}

/**
 * Compares gradients a session computes with central finite differences of its loss output. For
 * each pair, `input` is a graph input (perturbed element by element) and `grad` the output that
 * holds its gradient. Returns the errors; the caller asserts on them.
 */
export async function compareWithFiniteDifferences(
  session: Session,
  feeds: Record<string, TensorData>,
  lossName: string,
  pairs: readonly { input: string; grad: string }[],
  options: GradCheckOptions = {},
): Promise<GradCheckResult> {
  const analytic = await session.run(feeds, pairs.map((p) => p.grad));
  const dtype: DType = feeds[pairs[0].input].dtype;
  const h = options.step ?? (dtype === "float64" ? 1e-6 : 1e-2);
  const lossAt = async (name: string, t: TensorData) => {
    const out = await session.run({ ...feeds, [name]: t }, [lossName]);
    return Number((out[lossName].data as ArrayLike<number>)[0]);
  };
  const result: GradCheckResult = { worst: 0, perTensor: {}, largest: 0, checked: 0 };
  for (const { input, grad } of pairs) {
    const x = feeds[input];
    const a = toNumbers(analytic[grad]);
    const n = x.data.length;
    const count = Math.min(n, options.maxElements ?? n);
    const numeric = new Map<number, number>();
    for (let k = 0; k < count; k++) {
      // Evenly spread, with an odd offset so that rows and columns both vary.
      const i = count === n ? k : Math.floor(((k + 0.5) * n) / count);
      const up = await lossAt(input, perturbed(x, i, h));
      const down = await lossAt(input, perturbed(x, i, -h));
      numeric.set(i, (up - down) / (2 * h));
    }
    let scale = 0;
    for (const v of numeric.values()) scale = Math.max(scale, Math.abs(v));
    const floor = Math.max(1e-3 * scale, 1e-12);
    let worst = 0;
    for (const [i, num] of numeric) {
      const err = Math.abs(a[i] - num) / Math.max(Math.abs(a[i]), Math.abs(num), floor);
      worst = Math.max(worst, err);
      result.largest = Math.max(result.largest, Math.abs(a[i]));
      result.checked++;
    }
    result.perTensor[input] = worst;
    result.worst = Math.max(result.worst, worst);
  }
  return result;
}

/**
 * Builds the backward pass of `loss` (a scalar or one-element tensor of `graph`) for the graph
 * inputs `wrt`, runs it on `feeds`, and compares each gradient with central differences of the
 * loss.
 */
export async function checkGradients(
  graph: Graph,
  loss: Value,
  wrt: readonly Value[],
  feeds: Record<string, TensorData>,
  options: GradCheckOptions = {},
): Promise<GradCheckResult> {
  const grads = gradients(graph, loss, wrt);
  const lossOut = graph.output(loss, "loss_out");
  const gradOuts = grads.map((d, i) => graph.output(d, `grad_out_${i}`));
  const session = await Session.create(graph, { device: "cpu", threads: options.threads ?? 1 });
  try {
    const pairs = wrt.map((v, i) => ({ input: v.name, grad: gradOuts[i].name }));
    return await compareWithFiniteDifferences(session, feeds, lossOut.name, pairs, options);
  } finally {
    await session.release();
  }
}
