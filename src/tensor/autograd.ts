// Gradients of outputs with respect to any tensors (leaves or intermediates), and grad-mode scopes.
import { noteHookError, rethrowingHookErrors } from './hook-errors.js';
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
  const res = rethrowingHookErrors(() => native.grad(
    outs.map((t, i) => handle(t, `outputs[${i}]`)),
    inputs.map((t, i) => handle(t, `inputs[${i}]`)),
    o.gradOutputs ? o.gradOutputs.map((t, i) => (t === null ? null : handle(t, `gradOutputs[${i}]`))) : null,
    o.retainGraph ?? false,
    o.createGraph ?? false,
    o.allowUnused ?? false,
  ));
  return res.map((h) => (h === null ? null : new Tensor(h)));
}

// Gradient hooks. The native side calls one dispatcher with (hook id, gradient); the hooks live here.
const gradHooks = new Map<number, (g: Tensor) => void>();
let nextHookId = 1;
native.setHookDispatcher((id, h) => {
  const g = new Tensor(h);
  try {
    gradHooks.get(id)?.(g);
  } catch (e) {
    noteHookError(e);
    throw e;
  } finally {
    g.dispose();
  }
});

/**
 * Calls `fn(gradient)` the moment a backward pass (`grad`, `backward`) computes `t`'s gradient, before
 * the rest of the backward runs: work on the gradient while it is fresh in cache. `t` may be an
 * intermediate tensor (a layer's output). The gradient tensor is valid during the call only (share it
 * with `keep`/a returned value of `fn`'s own scope to hold on to it); `fn` must not modify it. An error
 * thrown by `fn` is thrown by the backward call. Returns a function that removes the hook.
 *
 * Where the hook runs: libtorch runs a CPU graph on the calling thread, so the hook is called there. A
 * graph on a CUDA device runs on libtorch's own threads, which cannot call JS: there the hook is never
 * called, and code must not rely on it (check whether it ran; curvature/engine.ts falls back to the
 * gradient `grad` returns). Hooks on a non-leaf tensor only run when the backward passes through the
 * node that made it: with `grad(loss, [z])`, a hook on z runs only if something below z is needed too.
 */
export function registerGradHook(t: Tensor, fn: (g: Tensor) => void): () => void {
  if (!(t instanceof Tensor)) throw new TypeError(`registerGradHook: expected a Tensor, got ${show(t)}`);
  if (typeof fn !== 'function') throw new TypeError(`registerGradHook: expected a function, got ${show(fn)}`);
  const id = nextHookId++;
  native.registerGradHook(t.handle, id);
  gradHooks.set(id, fn);
  return () => {
    gradHooks.delete(id);
  };
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
