// Operator results against known values (hand-computed or closed-form).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import * as T from '../src/tensor/index.js';
import { F, linalg, scope, tensor } from '../src/tensor/index.js';
import { assertClose, assertTensorClose, relErr } from './helpers.js';

const f64 = { dtype: 'float64' as const };

test('typed-array round trips keep dtype, shape and values', () => scope(() => {
  const f = tensor(new Float32Array([1.5, -2, 3, 4, 5, 6]), { shape: [2, 3] });
  assert.deepEqual(f.shape, [2, 3]);
  assert.equal(f.dtype, 'float32');
  assert.deepEqual(Array.from(f.data() as Float32Array), [1.5, -2, 3, 4, 5, 6]);
  const d = tensor(new Float64Array([Math.PI, 1e-300]));
  assert.equal(d.dtype, 'float64');
  assert.deepEqual(Array.from(d.data() as Float64Array), [Math.PI, 1e-300]);
  const big = tensor(new BigInt64Array([2n ** 60n, -3n]));
  assert.equal(big.dtype, 'int64');
  assert.deepEqual(Array.from(big.data() as BigInt64Array), [2n ** 60n, -3n]);
  const b = tensor([[true, false], [false, true]]);
  assert.equal(b.dtype, 'bool');
  assert.deepEqual(Array.from(b.data() as Uint8Array), [1, 0, 0, 1]);
  const i = tensor([1, 2, 3], { dtype: 'int64' });
  assert.equal(i.dtype, 'int64');
  assert.deepEqual(i.toArray(), [1, 2, 3]);
  assert.equal(T.scalar(7).dim, 0);
  assert.equal(T.scalar(7).item(), 7);
  assert.equal(tensor([1, 2], { dtype: 'float32' }).to('float64').dtype, 'float64');
}));

test('arithmetic broadcasts like PyTorch and integer scalars keep integer dtypes', () => scope(() => {
  const a = tensor([[1, 2, 3], [4, 5, 6]]);
  const row = tensor([10, 20, 30]);
  assert.deepEqual(a.add(row).toArray(), [11, 22, 33, 14, 25, 36]);
  assert.deepEqual(a.sub(row, 2).toArray(), [-19, -38, -57, -16, -35, -54]);
  assert.deepEqual(a.mul(tensor([[2], [3]])).toArray(), [2, 4, 6, 12, 15, 18]);
  assert.deepEqual(a.div(2).toArray(), [0.5, 1, 1.5, 2, 2.5, 3]);
  assert.deepEqual(a.pow(2).toArray(), [1, 4, 9, 16, 25, 36]);
  assert.deepEqual(a.neg().abs().toArray(), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(a.clamp(2, 5).toArray(), [2, 2, 3, 4, 5, 5]);
  assertClose(a.exp().log().toArray(), [1, 2, 3, 4, 5, 6], 1e-6);
  assertClose(a.sqrt().toArray(), [1, 2, 3, 4, 5, 6].map(Math.sqrt), 1e-7);
  const ints = tensor([1, 2, 3], { dtype: 'int64' });
  assert.equal(ints.mul(3).dtype, 'int64');
  assert.equal(ints.mul(0.5).dtype, 'float32');
  assert.deepEqual(a.gt(3).toArray(), [0, 0, 0, 1, 1, 1]);
  assert.deepEqual(a.where(a.gt(3), 0).toArray(), [0, 0, 0, 4, 5, 6]);
  assert.deepEqual(a.maskedFill(a.lt(3), -1).toArray(), [-1, -1, 3, 4, 5, 6]);
}));

test('matmul, bmm, einsum, dot and outer', () => scope(() => {
  const a = tensor([[1, 2], [3, 4]], f64);
  const b = tensor([[5, 6], [7, 8]], f64);
  assert.deepEqual(a.matmul(b).toArray(), [19, 22, 43, 50]);
  assert.deepEqual(a.mm(b.t()).toArray(), [17, 23, 39, 53]);
  const A = T.stack([a, b]);
  assert.deepEqual(A.bmm(A).toArray(), [7, 10, 15, 22, 67, 78, 91, 106]);
  assert.deepEqual(T.einsum('ij,jk->ik', a, b).toArray(), [19, 22, 43, 50]);
  assert.deepEqual(T.einsum('bi,bj->ij', a, b).toArray(), [26, 30, 38, 44]);
  assert.equal(tensor([1, 2, 3]).dot(tensor([4, 5, 6])).item(), 32);
  assert.deepEqual(tensor([1, 2]).outer(tensor([3, 4, 5])).toArray(), [3, 4, 5, 6, 8, 10]);
}));

test('reductions', () => scope(() => {
  const a = tensor([[1, 2, 3], [4, 5, 9]], f64);
  assert.equal(a.sum().item(), 24);
  assert.deepEqual(a.sum(0).toArray(), [5, 7, 12]);
  assert.deepEqual(a.sum(1, true).shape, [2, 1]);
  assert.deepEqual(a.mean(1).toArray(), [2, 6]);
  assertClose(a.var(1).toArray(), [1, 7], 1e-12);
  assertClose(a.var(1, { correction: 0 }).toArray(), [2 / 3, 14 / 3], 1e-12);
  assertClose(a.std(1).toArray(), [1, Math.sqrt(7)], 1e-12);
  assert.equal(a.max().item(), 9);
  const [v, i] = a.max(1);
  assert.deepEqual(v.toArray(), [3, 9]);
  assert.deepEqual(i.toArray(), [2, 2]);
  assert.deepEqual(a.argmax(0).toArray(), [1, 1, 1]);
  assertClose([a.norm().item()], [Math.sqrt(1 + 4 + 9 + 16 + 25 + 81)], 1e-12);
  assertClose(a.logsumexp(1).toArray(), [Math.log(Math.E + Math.E ** 2 + Math.E ** 3), Math.log(Math.E ** 4 + Math.E ** 5 + Math.E ** 9)], 1e-12);
  assert.deepEqual(a.cumsum(1).toArray(), [1, 3, 6, 4, 9, 18]);
}));

test('reshape, permute, slicing, index, gather, scatter, cat, stack', () => scope(() => {
  const a = T.arange(24, undefined, 1, f64).reshape(2, 3, 4);
  assert.deepEqual(a.permute(2, 0, 1).shape, [4, 2, 3]);
  assert.deepEqual(a.permute(2, 0, 1).contiguous().view(-1).slice(0, 0, 4).toArray(), [0, 4, 8, 12]);
  assert.deepEqual(a.transpose(0, 2).shape, [4, 3, 2]);
  assert.deepEqual(a.flatten(1).shape, [2, 12]);
  assert.deepEqual(a.select(1, 2).toArray(), [8, 9, 10, 11, 20, 21, 22, 23]);
  assert.deepEqual(a.slice(2, 1, 4, 2).select(0, 0).toArray(), [1, 3, 5, 7, 9, 11]);
  assert.deepEqual(a.narrow(1, 1, 1).squeeze(1).select(0, 1).toArray(), [16, 17, 18, 19]);
  assert.deepEqual(a.unsqueeze(0).shape, [1, 2, 3, 4]);
  assert.deepEqual(tensor([1, 2]).expand(3, 2).toArray(), [1, 2, 1, 2, 1, 2]);
  const m = tensor([[1, 2, 3], [4, 5, 6]]);
  const idx = tensor([2, 0], { dtype: 'int64' });
  assert.deepEqual(m.indexSelect(1, idx).toArray(), [3, 1, 6, 4]);
  assert.deepEqual(m.index([tensor([1, 0, 1], { dtype: 'int64' })]).toArray(), [4, 5, 6, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(m.index([null, idx]).toArray(), [3, 1, 6, 4]);
  assert.deepEqual(m.gather(1, tensor([[2], [0]], { dtype: 'int64' })).toArray(), [3, 4]);
  const z = T.zeros([2, 3]);
  assert.deepEqual(z.scatter(1, tensor([[2], [0]], { dtype: 'int64' }), tensor([[7], [8]])).toArray(), [0, 0, 7, 8, 0, 0]);
  assert.deepEqual(T.zeros([3]).scatterAdd(0, tensor([0, 0, 2], { dtype: 'int64' }), tensor([1, 2, 3])).toArray(), [3, 0, 3]);
  assert.deepEqual(T.cat([m, m], 0).shape, [4, 3]);
  assert.deepEqual(T.cat([m, m], 1).select(0, 0).toArray(), [1, 2, 3, 1, 2, 3]);
  assert.deepEqual(T.stack([m, m], 1).shape, [2, 2, 3]);
  assert.deepEqual(m.split(2, 1).map((t) => t.shape), [[2, 2], [2, 1]]);
  assert.deepEqual(m.chunk(2, 0)[1]!.toArray(), [4, 5, 6]);
  assert.deepEqual(m.unbind(1)[2]!.toArray(), [3, 6]);
  assert.deepEqual(T.eye(2).toArray(), [1, 0, 0, 1]);
  assert.deepEqual(tensor([[1, 2], [3, 4]]).triu().toArray(), [1, 2, 0, 4]);
}));

test('activations, softmax and log-softmax', () => scope(() => {
  const x = tensor([-2, -0.5, 0, 1.5], f64);
  assert.deepEqual(x.relu().toArray(), [0, 0, 0, 1.5]);
  assertClose(x.sigmoid().toArray(), [-2, -0.5, 0, 1.5].map((v) => 1 / (1 + Math.exp(-v))), 1e-12);
  assertClose(x.tanh().toArray(), [-2, -0.5, 0, 1.5].map(Math.tanh), 1e-12);
  // exact GELU: x * Phi(x); Phi(1.5) and Phi(-0.5) from the error function
  const phi = (v: number): number => 0.5 * (1 + erf(v / Math.SQRT2));
  assertClose(x.gelu().toArray(), [-2, -0.5, 0, 1.5].map((v) => v * phi(v)), 1e-7);
  const z = [1, 2, 3];
  const s = z.reduce((acc, v) => acc + Math.exp(v), 0);
  assertClose(tensor(z, f64).softmax(0).toArray(), z.map((v) => Math.exp(v) / s), 1e-12);
  assertClose(tensor(z, f64).logSoftmax(0).toArray(), z.map((v) => v - Math.log(s)), 1e-12);
}));

// Abramowitz-Stegun 7.1.26 is too coarse for 1e-7; use a series that converges for |x| < 3.
function erf(x: number): number {
  let sum = 0;
  let term = x;
  for (let n = 0; n < 60; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

test('cross-entropy per sample, label smoothing and ignore-index match the formula', () => scope(() => {
  const logits = tensor([[1, 2, 3], [1, 1, 1], [0, 5, -1]], f64);
  const target = tensor([2, 0, 1], { dtype: 'int64' });
  const rows = [[1, 2, 3], [1, 1, 1], [0, 5, -1]];
  const lse = rows.map((r) => Math.log(r.reduce((a, v) => a + Math.exp(v), 0)));
  const ce = rows.map((r, i) => lse[i]! - r[[2, 0, 1][i]!]!);
  assertClose(F.crossEntropy(logits, target, { reduction: 'none' }).toArray(), ce, 1e-12);
  assertClose([F.crossEntropy(logits, target).item()], [(ce[0]! + ce[1]! + ce[2]!) / 3], 1e-12);
  assertClose([F.crossEntropy(logits, target, { reduction: 'sum' }).item()], [ce[0]! + ce[1]! + ce[2]!], 1e-12);
  const eps = 0.1;
  const smooth = rows.map((r, i) => (1 - eps) * ce[i]! + eps * r.reduce((a, v) => a + (lse[i]! - v), 0) / 3);
  assertClose(F.crossEntropy(logits, target, { reduction: 'none', labelSmoothing: eps }).toArray(), smooth, 1e-12);
  const ignored = tensor([2, -100, 1], { dtype: 'int64' });
  assertClose(F.crossEntropy(logits, ignored, { reduction: 'none' }).toArray(), [ce[0]!, 0, ce[2]!], 1e-12);
  assertClose([F.crossEntropy(logits, ignored).item()], [(ce[0]! + ce[2]!) / 2], 1e-12);
}));

test('conv2d, its input and weight gradients, and pooling against hand-computed values', () => scope(() => {
  // 1x1x3x3 input, one 2x2 kernel of ones: each output is the sum of a 2x2 window.
  const x = tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], { ...f64, shape: [1, 1, 3, 3] });
  const w = T.ones([1, 1, 2, 2], f64);
  assert.deepEqual(F.conv2d(x, w).toArray(), [12, 16, 24, 28]);
  assert.deepEqual(F.conv2d(x, w, tensor([1], f64), { stride: 2, padding: 1 }).toArray(), [2, 6, 12, 29]);
  const gy = T.ones([1, 1, 2, 2], f64);
  const g = F.conv2dBackward(gy, x, w, { need: { input: true, weight: true, bias: true } });
  // d/dx of the sum of all windows: how many windows cover each pixel
  assert.deepEqual(g.input!.toArray(), [1, 2, 1, 2, 4, 2, 1, 2, 1]);
  // d/dw[a,b] = sum of x over the positions a kernel tap visits
  assert.deepEqual(g.weight!.toArray(), [12, 16, 24, 28]);
  assert.deepEqual(g.bias!.toArray(), [4]);
  assert.deepEqual(F.maxPool2d(x, 2, { stride: 1 }).toArray(), [5, 6, 8, 9]);
  assert.deepEqual(F.avgPool2d(x, 2, { stride: 1 }).toArray(), [3, 4, 6, 7]);
  assert.deepEqual(F.adaptiveAvgPool2d(x, 1).toArray(), [5]);
  // unfold lays the 2x2 patches out as columns
  assert.deepEqual(F.unfold(x, 2).shape, [1, 4, 4]);
  assert.deepEqual(F.unfold(x, 2).select(0, 0).select(1, 0).toArray(), [1, 2, 4, 5]);
}));

test('batch norm, layer norm, embedding and dropout', () => scope(() => {
  const x = tensor([1, 2, 3, 4, 5, 6, 7, 8], { ...f64, shape: [2, 2, 2, 1] });
  const rm = T.zeros([2], f64);
  const rv = T.ones([2], f64);
  const y = F.batchNorm(x, rm, rv, null, null, { training: true, momentum: 0.1, eps: 0 });
  // channel 0 holds 1,2,5,6 (mean 3.5, biased var 4.25); channel 1 holds 3,4,7,8 (mean 5.5)
  const s = Math.sqrt(4.25);
  assertClose(y.toArray(), [(1 - 3.5) / s, (2 - 3.5) / s, (3 - 5.5) / s, (4 - 5.5) / s, (5 - 3.5) / s, (6 - 3.5) / s, (7 - 5.5) / s, (8 - 5.5) / s], 1e-12);
  // running statistics use the unbiased variance (17/3)
  assertClose(rm.toArray(), [0.35, 0.55], 1e-12);
  assertClose(rv.toArray(), [0.9 + 0.1 * 17 / 3, 0.9 + 0.1 * 17 / 3], 1e-12);
  const ev = F.batchNorm(x, rm, rv, tensor([2, 1], f64), tensor([0, 1], f64), { training: false, eps: 0 });
  assertClose([ev.toArray()[0]!], [2 * (1 - 0.35) / Math.sqrt(0.9 + 0.1 * 17 / 3)], 1e-12);
  const l = F.layerNorm(tensor([[1, 2, 3], [2, 4, 6]], f64), [3], tensor([1, 2, 3], f64), tensor([0, 0, 1], f64), 0);
  const c = Math.sqrt(1.5);
  assertClose(l.toArray(), [-c, 0, 1 + 3 * c, -c, 0, 1 + 3 * c], 1e-12);
  const table = tensor([[0, 0], [1, 1], [2, 4]], f64);
  assert.deepEqual(F.embedding(tensor([[2, 1], [2, 2]], { dtype: 'int64' }), table).toArray(), [2, 4, 1, 1, 2, 4, 2, 4]);
  const ones = T.ones([1000], f64);
  assert.deepEqual(F.dropout(ones, 0.5, false).toArray(), ones.toArray());
  const dropped = F.dropout(ones, 0.5, true).toArray();
  assert.ok(dropped.every((v) => v === 0 || v === 2), 'kept values are scaled by 1/(1-p)');
  const kept = dropped.filter((v) => v === 2).length;
  assert.ok(kept > 400 && kept < 600, `about half kept, got ${kept}`);
  assert.equal(F.dropout(ones, 1, true).sum().item(), 0);
}));

test('linear algebra: cholesky, solves, inverse and eigh satisfy their defining equations', () => scope(() => {
  const g = new T.Generator(5);
  const M = T.randn([6, 6], { ...f64, generator: g });
  const A = M.matmul(M.t()).add(T.eye(6, f64));
  const b = T.randn([6, 2], { ...f64, generator: g });
  const L = linalg.cholesky(A);
  assert.ok(relErr(L.matmul(L.t()), A) < 1e-12);
  assert.equal(L.triu(1).abs().sum().item(), 0);
  assert.ok(relErr(A.matmul(linalg.choleskySolve(b, L)), b) < 1e-12);
  assert.ok(relErr(A.matmul(linalg.solve(A, b)), b) < 1e-12);
  assert.ok(relErr(A.matmul(linalg.inverse(A)), T.eye(6, f64)) < 1e-12);
  const { values, vectors } = linalg.eigh(A);
  assert.ok(relErr(A.matmul(vectors), vectors.mul(values)) < 1e-12);
  const vals = values.toArray();
  assert.ok(vals.every((v, i) => i === 0 || v >= vals[i - 1]!), 'ascending eigenvalues');
  const bad = tensor([[1, 2], [2, 1]], f64);
  assert.ok(linalg.choleskyEx(bad).info.item() > 0, 'an indefinite matrix is reported, not thrown');
  assert.throws(() => linalg.cholesky(bad), /linalg_cholesky/);
}));

test('seeded random generation is reproducible', () => scope(() => {
  T.manualSeed(42);
  const a = T.randn([5]).toArray();
  T.manualSeed(42);
  assert.deepEqual(T.randn([5]).toArray(), a);
  const g1 = new T.Generator(7);
  const g2 = new T.Generator(7);
  assert.deepEqual(T.rand([4], { generator: g1 }).toArray(), T.rand([4], { generator: g2 }).toArray());
  const p = T.randperm(10, { generator: new T.Generator(1) }).toArray();
  assert.deepEqual([...p].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const r = T.randint(3, 6, [200], { generator: g1 }).toArray();
  assert.ok(r.every((v) => v >= 3 && v < 6));
  const big = T.randn([20000], { ...f64, generator: g1 });
  assert.ok(Math.abs(big.mean().item()) < 0.03 && Math.abs(big.std().item() - 1) < 0.03);
}));

test('in-place updates change the tensor and leave no extra handles', () => scope(() => {
  const p = tensor([1, 2, 3], f64);
  const before = T.liveTensors().tensors;
  p.mul_(2).add_(tensor([1, 1, 1], f64), 0.5).addcmul_(tensor([1, 1, 1], f64), tensor([2, 2, 2], f64), 3);
  assert.deepEqual(p.toArray(), [8.5, 10.5, 12.5]);
  assert.equal(T.liveTensors().tensors, before + 3, 'only the three argument tensors are new');
  p.zero_();
  assert.deepEqual(p.toArray(), [0, 0, 0]);
}));

test('any ATen operator can be called by name, with schema defaults', () => scope(() => {
  const x = tensor([[1, 2], [3, 4]]);
  assert.deepEqual((T.callOp('aten::flip', x, [1]) as T.Tensor).toArray(), [2, 1, 4, 3]);
  assert.deepEqual((T.callOp('sum.dim_IntList', x, [0]) as T.Tensor).toArray(), [4, 6]);
  assert.match(T.opSchema('aten::add.Tensor'), /alpha=1/);
  const [vals, idx] = T.callOp('aten::sort', tensor([3, 1, 2])) as T.Tensor[];
  assert.deepEqual(vals!.toArray(), [1, 2, 3]);
  assert.deepEqual(idx!.toArray(), [1, 2, 0]);
  assert.equal(T.callOp('aten::is_nonzero', tensor([1])), true);
  assert.equal(T.callOp('aten::size.int', x, 1), 2);
}));

test('devices: cpu always works; cuda is reported honestly', () => scope(() => {
  assert.equal(tensor([1]).device, 'cpu');
  assert.equal(tensor([1]).to('cpu').device, 'cpu');
  const n = T.cuda.deviceCount();
  assert.equal(T.cuda.isAvailable(), n > 0);
  if (T.cuda.isAvailable()) {
    const g = tensor([1, 2]).to('cuda');
    assert.equal(g.device, 'cuda:0');
    assert.deepEqual(g.mul(2).cpu().toArray(), [2, 4]);
  } else {
    assert.throws(() => tensor([1]).to('cuda'), /CUDA|cuda/);
  }
}));

test('threads default to all cores and are settable', () => {
  const expected = process.env.FNGD_NUM_THREADS ? Number(process.env.FNGD_NUM_THREADS) : availableParallelism();
  assert.equal(T.getNumThreads(), expected);
  T.setNumThreads(1);
  assert.equal(T.getNumThreads(), 1);
  // OpenBLAS's own pool follows, so one thread is one core for matrix products too. Debian's libtorch
  // loads OpenBLAS (scripts/setup.sh installs it); a libtorch with another BLAS has no such pool.
  const openblasLoaded = readFileSync('/proc/self/maps', 'utf8').includes('libopenblas');
  const blas = T.blasInfo();
  assert.equal(blas !== null, openblasLoaded, `blasInfo() ${JSON.stringify(blas)}; libopenblas mapped: ${openblasLoaded}`);
  if (blas !== null) {
    assert.equal(blas.threads, 1);
    assert.match(blas.config ?? '', /OpenBLAS/);
  }
  T.setNumThreads(expected);
  // OpenBLAS caps its pool at its build's MAX_THREADS (64 in Debian's).
  if (blas !== null) assert.equal(T.blasInfo()!.threads, Math.min(expected, Number(/MAX_THREADS=(\d+)/.exec(blas.config ?? '')?.[1] ?? expected)));
  assert.throws(() => T.setNumThreads(0), /positive integer/);
});
