// Gradients of outputs with respect to any tensors (leaves or intermediates), and grad-mode scopes.
import { native } from './native.js';
import { show, Tensor } from './tensor.js';

export interface GradOptions {
  /** Seeds for non-scalar outputs (default: ones for scalar outputs). */
  gradOutputs?: (Tensor | null)[];
  /** Keep the graph for another backward pass. */
  retainGraph?: boolean;
  /** Build a graph of the gradient itself (for higher-order derivatives). */
  createGraph?: boolean;
  /** Return null for inputs the outputs do not depend on instead of throwing. */
  allowUnused?: boolean;
}

/**
 * d(sum of outputs . gradOutputs) / d(inputs), without touching any `.grad`. Inputs may be
 * intermediate tensors of the graph, e.g. a layer's output, which gives per-sample output
 * gradients of a summed loss in one pass.
 */
export function grad(outputs: Tensor | Tensor[], inputs: Tensor[], o: GradOptions = {}): (Tensor | null)[] {
  const outs = Array.isArray(outputs) ? outputs : [outputs];
  const handle = (t: unknown, what: string): bigint => {
    if (!(t instanceof Tensor)) throw new TypeError(`grad: ${what} must be a Tensor, got ${show(t)}`);
    return t.handle;
  };
  if (!Array.isArray(inputs)) throw new TypeError(`grad: inputs must be an array of tensors, got ${show(inputs)}`);
  const res = native.grad(
    outs.map((t, i) => handle(t, `outputs[${i}]`)),
    inputs.map((t, i) => handle(t, `inputs[${i}]`)),
    o.gradOutputs ? o.gradOutputs.map((t, i) => (t === null ? null : handle(t, `gradOutputs[${i}]`))) : null,
    o.retainGraph ?? false,
    o.createGraph ?? false,
    o.allowUnused ?? false,
  );
  return res.map((h) => (h === null ? null : new Tensor(h)));
}

function withGradMode<T>(on: boolean, fn: () => T): T {
  const prev = native.setGradEnabled(on);
  try {
    const r = fn();
    if (r instanceof Promise) throw new Error('noGrad/enableGrad: fn must be synchronous');
    return r;
  } finally {
    native.setGradEnabled(prev);
  }
}

/** Runs `fn` without recording autograd history (evaluation, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/** Runs `fn` with autograd recording on, even inside `noGrad`. */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}
