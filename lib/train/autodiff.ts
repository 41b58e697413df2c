/**
 * Reverse-mode differentiation over the project's graph representation: given a graph, a loss
 * tensor and the tensors to train, emits the backward pass into the SAME graph in standard ONNX
 * operators (onnxruntime's inference build has no training operators) and returns the gradient
 * tensors. The per-operator rules live in one table, `grad_rules.ts`.
 *
 * Only nodes on a path from a trainable tensor to the loss are differentiated: with LoRA there is
 * no gradient for a frozen weight and nothing is computed below the lowest trainable tensor.
 * Where a tensor feeds several nodes, its gradients are summed (one Sum node).
 *
 * Not for running anything, nor for the optimizer: see `train_graph.ts`.
 *
 * @example
 * ```ts
 * import type { Graph, Value } from "../onnx/graph.ts";
 *
 * declare const g: Graph, loss: Value, w: Value;
 * const [dW] = gradients(g, loss, [w]);
 * g.output(dW, "grad.w");
 * ```
 *
 * @module
 */

import { type Graph, isFloat, type Node, type Value } from "../onnx/graph.ts";
import { sameDim } from "../onnx/shape.ts";
import { GRAD_RULES, zerosLike } from "./grad_rules.ts";

/** Options of {@linkcode gradients}. */
export interface GradientOptions {
  /**
   * The gradient of the loss to start from (default: ones shaped like the loss). A graph input
   * here scales every gradient at run time (gradient accumulation weights micro-batches so).
   */
  seed?: Value;
  /** Name prefix of the backward tensors and nodes (default `grad`). */
  scope?: string;
}

/** The nodes on a path from `wrt` to `loss`, and the tensors that carry gradient. */
function activePath(g: Graph, forward: readonly Node[], loss: Value, wrt: readonly Value[]) {
  const depends = new Set(wrt.map((v) => v.name));
  for (const node of forward) {
    if (!node.inputs.some((name) => depends.has(name))) continue;
    for (const o of node.outputs) if (isFloat(g.value(o).dtype)) depends.add(o);
  }
  const reaches = new Set([loss.name]);
  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i];
    if (!node.outputs.some((o) => reaches.has(o))) continue;
    for (const name of node.inputs) if (name !== "") reaches.add(name);
  }
  const carries = (name: string) => name !== "" && depends.has(name) && reaches.has(name);
  const active = forward.filter((n) => n.outputs.some(carries));
  return { active, carries };
}

/**
 * Emits the backward pass of `loss` with respect to each of `wrt` into `g` and returns the
 * gradients, one per `wrt` in order, each shaped like its tensor. A tensor the loss does not
 * depend on gets zeros. Throws for an operator without a rule (naming it and the node).
 */
export function gradients(
  g: Graph,
  loss: Value,
  wrt: readonly Value[],
  options: GradientOptions = {},
): Value[] {
  for (const v of wrt) {
    if (!isFloat(v.dtype)) throw new Error(`gradients: ${v.name} is ${v.dtype}, not a float`);
  }
  const forward = [...g.nodes];
  const { active, carries } = activePath(g, forward, loss, wrt);
  const pending = new Map<string, Value[]>();
  const add = (name: string, grad: Value) => {
    const list = pending.get(name);
    if (list) list.push(grad);
    else pending.set(name, [grad]);
  };
  // The total gradient of a tensor: its contributions summed once, when first asked for (every
  // consumer comes later in topological order, so all have contributed by then).
  const total = (name: string): Value | null => {
    const list = pending.get(name);
    if (!list || list.length === 0) return null;
    if (list.length > 1) list.splice(0, list.length, g.sum(...list));
    return list[0];
  };

  return g.scope(options.scope ?? "grad", () => {
    add(loss.name, options.seed ?? g.constantOfShape(g.shapeOf(loss), 1, loss.dtype));
    for (let n = active.length - 1; n >= 0; n--) {
      const node = active[n];
      const grads = node.outputs.map((o) => (carries(o) ? total(o) : null));
      if (grads.every((d) => d === null)) continue;
      // A trained tensor made from untrained ones: nothing below it wants a gradient.
      if (!node.inputs.some(carries)) continue;
      const rule = GRAD_RULES[node.op];
      if (!rule) {
        throw new Error(
          `no gradient rule for operator ${node.op} (node ${node.name}): add one to GRAD_RULES`,
        );
      }
      const inputs = node.inputs.map((name) => (name === "" ? null : g.value(name)));
      const needs = node.inputs.map((name) => carries(name));
      const results = g.scope(
        node.name,
        () => rule({ g, node, inputs, outputs: node.outputs.map((o) => g.value(o)), grads, needs }),
      );
      needs.forEach((need, i) => {
        const d = results[i];
        if (!need || !d) return;
        add(node.inputs[i], checked(g, node, inputs[i]!, d));
      });
    }
    return wrt.map((v) => total(v.name) ?? zerosLike(g, v));
  });
}

/** A rule's gradient for `x`, checked against `x`'s rank and static dims (a bug otherwise). */
function checked(g: Graph, node: Node, x: Value, d: Value): Value {
  const bad = d.shape.length !== x.shape.length || d.dtype !== x.dtype ||
    d.shape.some((dim, i) =>
      typeof dim === "number" && typeof x.shape[i] === "number" && dim !== x.shape[i]
    );
  if (bad) {
    throw new Error(
      `gradient rule ${node.op} (node ${node.name}) gave ${d.dtype} [${d.shape}] for ` +
        `${x.name}, which is ${x.dtype} [${x.shape}]`,
    );
  }
  // Symbolic dims the rule lost track of take the input's, so later rules see exact shapes.
  if (d.shape.some((dim, i) => !sameDim(dim, x.shape[i]))) return g.refine(d, x.shape);
  return d;
}
