// Shared test oracles: comparisons and central finite differences in float64.
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Tensor, liveTensors, noGrad, scope } from '../src/tensor/index.js';
import * as T from '../src/tensor/index.js';
import { Conv2d, Flatten, Linear, ReLU, Sequential, Tanh } from '../src/nn/index.js';

export function assertClose(actual: ArrayLike<number> | number[], expected: ArrayLike<number> | number[], tol = 1e-6, what = 'values'): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const a = Number(actual[i]);
    const e = Number(expected[i]);
    const err = Math.abs(a - e) / Math.max(1, Math.abs(e));
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  assert.ok(worst <= tol, `${what}: relative error ${worst} at index ${at} (got ${actual[at]}, want ${expected[at]}) exceeds ${tol}`);
}

export function assertTensorClose(actual: Tensor, expected: Tensor | number[], tol = 1e-6, what = 'tensor'): void {
  if (expected instanceof Tensor) assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  assertClose(actual.toArray(), expected instanceof Tensor ? expected.toArray() : expected, tol, what);
}

/** Relative error ||a - b|| / max(||b||, tiny), over whole tensors. */
export function relErr(a: Tensor, b: Tensor): number {
  return scope(() => a.sub(b).norm().item() / Math.max(b.norm().item(), 1e-300));
}

const collectGarbage = ((): (() => void) => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

/**
 * Live tensors after a full garbage collection: tensors an earlier test dropped without disposing
 * are freed by the GC safety net whenever V8 collects, which would otherwise change a count taken
 * across a stretch of code at random.
 */
export function settledLiveTensors(): number {
  collectGarbage();
  return liveTensors().tensors;
}

/** Runs `fn` in a scope and checks that it leaves no tensor behind. */
export function leakCheck(fn: () => void): void {
  const before = settledLiveTensors();
  scope(fn);
  assert.equal(settledLiveTensors(), before, 'tensors leaked');
}

/** Relative error of whole tensors within `tol`, against a non-zero expected value (no vacuous checks). */
export function assertRelClose(actual: Tensor, expected: Tensor, what: string, tol = 1e-10): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const e = relErr(actual, expected);
  assert.ok(e <= tol, `${what}: relative error ${e} > ${tol}`);
  assert.ok(scope(() => expected.norm().item()) > 0, `${what}: the expected value is zero (a vacuous check)`);
  if (process.env.FNGD_TEST_VERBOSE) console.log(`${what}: ${e.toExponential(2)}`);
}

/**
 * Central differences of the scalar f() with respect to every element of `x` (float64), by
 * perturbing x in place: the independent oracle for autograd.
 */
export function numericGrad(f: () => number, x: Tensor, h = 1e-6): Float64Array {
  const n = x.numel;
  const out = new Float64Array(n);
  noGrad(() => {
    const flat = x.detach().view(-1);
    for (let i = 0; i < n; i++) {
      scope(() => {
        const e = flat.select(0, i);
        const orig = e.item();
        e.fill_(orig + h);
        const fp = f();
        e.fill_(orig - h);
        const fm = f();
        e.fill_(orig);
        out[i] = (fp - fm) / (2 * h);
      });
    }
    flat.dispose();
  });
  return out;
}

const f64 = { dtype: 'float64' as const };

/** A float64 4-5-3 tanh MLP (the dense-oracle tests' tiny model). */
export function tinyMlp(g: T.Generator): Sequential {
  return new Sequential(new Linear(4, 5, { ...f64, generator: g }), new Tanh(), new Linear(5, 3, { ...f64, generator: g }));
}
/** A float64 conv (2 -> 3 channels, stride 2) + linear model on [B, 2, 4, 4] inputs. */
export function tinyCnn(g: T.Generator): Sequential {
  return new Sequential(new Conv2d(2, 3, 3, { padding: 1, stride: 2, ...f64, generator: g }), new ReLU(), new Flatten(), new Linear(3 * 2 * 2, 3, { ...f64, generator: g }));
}

