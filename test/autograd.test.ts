// Autograd against central finite differences in float64, and gradients of intermediates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/tensor/index.js';
import { F, grad, noGrad, scope, tensor } from '../src/tensor/index.js';
import { assertClose, numericGrad } from './helpers.js';

const f64 = { dtype: 'float64' as const };

test('composite conv2d -> layer norm -> cross-entropy (+ embedding) matches finite differences', () => scope(() => {
  const g = new T.Generator(3);
  const x = T.randn([2, 2, 5, 5], { ...f64, generator: g }).requiresGrad_();
  const w = T.randn([3, 2, 3, 3], { ...f64, generator: g }).mul(0.5).requiresGrad_();
  const b = T.randn([3], { ...f64, generator: g }).requiresGrad_();
  const lnW = T.randn([3 * 3 * 3], { ...f64, generator: g }).requiresGrad_();
  const lnB = T.randn([3 * 3 * 3], { ...f64, generator: g }).requiresGrad_();
  const table = T.randn([4, 27], { ...f64, generator: g }).requiresGrad_();
  const head = T.randn([5, 27], { ...f64, generator: g }).mul(0.3).requiresGrad_();
  const tokens = tensor([[1, 3], [3, 3]], { dtype: 'int64' });
  const target = tensor([4, 1], { dtype: 'int64' });
  const params = [x, w, b, lnW, lnB, table, head];

  const loss = (): T.Tensor => {
    const h = F.conv2d(x, w, b, { stride: 2, padding: 1 }).tanh().flatten(1);
    const n = F.layerNorm(h, [27], lnW, lnB);
    const e = F.embedding(tokens, table).sum(1);
    const logits = F.linear(n.add(e).gelu(), head);
    return F.crossEntropy(logits, target, { labelSmoothing: 0.1 });
  };
  const analytic = grad(loss(), params);
  const f = (): number => scope(() => loss().item());
  for (const [i, p] of params.entries()) {
    assertClose(analytic[i]!.toArray(), numericGrad(f, p), 1e-7, `parameter ${i}`);
  }
}));

test('pooling, batch norm (training) and softmax gradients match finite differences', () => scope(() => {
  const g = new T.Generator(11);
  const x = T.randn([3, 2, 4, 4], { ...f64, generator: g }).requiresGrad_();
  const gamma = T.randn([2], { ...f64, generator: g }).requiresGrad_();
  const beta = T.randn([2], { ...f64, generator: g }).requiresGrad_();
  const loss = (): T.Tensor => {
    const y = F.batchNorm(x, null, null, gamma, beta, { training: true });
    const p = F.maxPool2d(y, 2).add(F.avgPool2d(y, 2));
    return p.flatten(1).softmax(1).select(1, 0).log().sum();
  };
  const analytic = grad(loss(), [x, gamma, beta]);
  const f = (): number => scope(() => loss().item());
  assertClose(analytic[0]!.toArray(), numericGrad(f, x), 1e-6, 'x');
  assertClose(analytic[1]!.toArray(), numericGrad(f, gamma), 1e-7, 'gamma');
  assertClose(analytic[2]!.toArray(), numericGrad(f, beta), 1e-7, 'beta');
}));

test('grad with respect to an intermediate gives per-sample output gradients of a summed loss', () => scope(() => {
  const g = new T.Generator(4);
  const W = T.randn([3, 4], { ...f64, generator: g }).requiresGrad_();
  const X = T.randn([5, 4], { ...f64, generator: g });
  const y = tensor([0, 2, 1, 1, 0], { dtype: 'int64' });
  const z = F.linear(X, W); // [5, 3], a non-leaf
  const perSample = F.crossEntropy(z, y, { reduction: 'none' });
  const [dz] = grad(perSample.sum(), [z], { retainGraph: true });
  // closed form: softmax(z) - onehot(y), row by row
  const expected = noGrad(() => z.softmax(1).sub(F.oneHot(y, 3).double()));
  assertClose(dz!.toArray(), expected.toArray(), 1e-12);
  // and the weight gradient through the same graph is the sum of per-sample outer products
  const [dW] = grad(perSample.sum(), [W]);
  assertClose(dW!.toArray(), dz!.t().matmul(X).toArray(), 1e-12);
}));

test('backward accumulates into .grad, zeroGrad clears it, gradient seeds and retainGraph work', () => scope(() => {
  const w = tensor([1, 2, 3], f64).requiresGrad_();
  assert.equal(w.grad, null);
  assert.ok(w.isLeaf && w.requiresGrad);
  const y = w.mul(w); // dy/dw = 2w
  y.backward(tensor([1, 1, 1], f64), { retainGraph: true });
  assert.deepEqual(w.grad!.toArray(), [2, 4, 6]);
  y.backward(tensor([1, 0, 2], f64));
  assert.deepEqual(w.grad!.toArray(), [4, 4, 18]);
  w.zeroGrad();
  assert.equal(w.grad, null);
  w.mul(3).sum().backward();
  assert.deepEqual(w.grad!.toArray(), [3, 3, 3]);
  w.grad = T.zeros([3], f64);
  assert.deepEqual(w.grad!.toArray(), [0, 0, 0]);
  assert.throws(() => { w.grad = T.zeros([2], f64); }, /shape/);
}));

test('noGrad records no history; detach cuts the graph; higher-order grad with createGraph', () => scope(() => {
  const w = tensor([2], f64).requiresGrad_();
  const y = noGrad(() => w.mul(3));
  assert.equal(y.requiresGrad, false);
  assert.equal(T.isGradEnabled(), true);
  assert.equal(w.mul(3).detach().requiresGrad, false);
  const cube = w.pow(3);
  const [d1] = grad(cube, [w], { createGraph: true });
  assert.equal(d1!.item(), 12);
  const [d2] = grad(d1!, [w]);
  assert.equal(d2!.item(), 12); // 6w
  const [unused] = grad(w.mul(2), [tensor([1], f64).requiresGrad_()], { allowUnused: true });
  assert.equal(unused, null);
}));
