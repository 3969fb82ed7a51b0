// Scopes free every tensor created inside them except what they return (like tf.tidy). Tensors made
// outside any scope live until `dispose()` or, as a safety net only, garbage collection.

/** What a scope needs to know about a tensor: the Tensor class implements it. */
export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
  /** Set by `keep`: no scope disposes this tensor. */
  kept: boolean;
  /**
   * Called when no scope owns the tensor any more (kept, or returned from the outermost scope): from
   * then on only the caller or the garbage-collection safety net frees it. A scope's list holds its
   * tensors, so the collector could never take them before the scope disposes them anyway: arming
   * the net for them (a native call per tensor) would be wasted.
   */
  armSafetyNet(): void;
}

const stack: Disposable[][] = [];

/** Called by every Tensor constructor: the innermost scope, if any, takes ownership (returns whether one did). */
export function track(t: Disposable): boolean {
  const top = stack[stack.length - 1];
  if (top === undefined) return false;
  top.push(t);
  return true;
}

/** Takes `t` out of every scope's reach; the caller now owns it. */
export function keep<T extends Disposable>(t: T): T {
  if (!t.kept) {
    t.kept = true;
    t.armSafetyNet();
  }
  return t;
}

function collect(value: unknown, out: Set<Disposable>, isTensor: (v: unknown) => v is Disposable, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 8) return;
  if (isTensor(value)) {
    out.add(value);
  } else if (Array.isArray(value)) {
    for (const v of value) collect(v, out, isTensor, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, isTensor, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, isTensor, depth + 1);
  }
}

let tensorCheck: (v: unknown) => v is Disposable = (_v): _v is Disposable => false;
/** The Tensor module registers how to recognise a tensor (avoids an import cycle). */
export function setTensorCheck(f: (v: unknown) => v is Disposable): void {
  tensorCheck = f;
}

/**
 * Runs `fn`; every tensor created during it is disposed afterwards, except the tensors found in its
 * result (a tensor, or arrays / plain objects / Maps holding tensors), which move to the enclosing
 * scope. `fn` must be synchronous: tensors created after an `await` would escape the scope.
 */
export function scope<T>(fn: () => T): T {
  const mine: Disposable[] = [];
  stack.push(mine);
  // Whatever the loop below does not reach (fn threw or returned a Promise, reading its result or a
  // dispose threw) is freed in the finally: nothing escapes an error, and no safety net was armed.
  let next = 0;
  try {
    let result: T;
    try {
      result = fn();
    } finally {
      stack.pop();
    }
    if (result instanceof Promise) {
      throw new Error('scope(fn): fn returned a Promise; scopes are synchronous (create tensors between awaits inside their own scopes)');
    }
    const parent = stack[stack.length - 1];
    const escaping = new Set<Disposable>();
    collect(result, escaping, tensorCheck);
    while (next < mine.length) {
      const t = mine[next++]!;
      if (t.kept) continue;
      if (!escaping.has(t)) t.dispose();
      else if (parent !== undefined) parent.push(t);
      else t.armSafetyNet();
    }
    return result;
  } finally {
    while (next < mine.length) {
      const t = mine[next++]!;
      if (!t.kept) t.dispose();
    }
  }
}

/** How many scopes are open (for tests and assertions). */
export function scopeDepth(): number {
  return stack.length;
}
