// Bad input throws a clear JS error naming the problem, and the process goes on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../src/tensor/index.js';
import { F, callOp, linalg, scope, tensor } from '../src/tensor/index.js';

test('libtorch errors carry the operator name and libtorch message', () => scope(() => {
  const a = T.ones([2, 3]);
  assert.throws(() => a.matmul(T.ones([2, 3])), /aten::matmul: .*(mat1 and mat2 shapes cannot be multiplied|size mismatch)/);
  assert.throws(() => a.add(T.ones([4])), /aten::add\.Tensor: The size of tensor a \(3\) must match the size of tensor b \(4\)/);
  assert.throws(() => a.reshape(5), /aten::reshape: shape '\[5\]' is invalid for input of size 6/);
  assert.throws(() => F.conv2d(T.ones([1, 2, 4, 4]), T.ones([3, 5, 3, 3])), /aten::conv2d: .*expected input\[1, 2, 4, 4\] to have 5 channels/);
  assert.throws(() => F.crossEntropy(T.ones([2, 3]), tensor([0, 7], { dtype: 'int64' })), /cross_entropy_loss: .*Target 7 is out of bounds/);
  assert.throws(() => F.embedding(tensor([9], { dtype: 'int64' }), T.ones([3, 2])), /aten::embedding: .*index out of range/);
  assert.throws(() => linalg.cholesky(tensor([[1, 2], [2, 1]], { dtype: 'float64' })), /aten::linalg_cholesky: .*not positive-definite/);
  assert.throws(() => a.select(0, 5), /aten::select\.int: .*index 5 out of range/);
}));

test('wrong argument types, missing arguments and unknown operators are named', () => scope(() => {
  const a = T.ones([2]);
  assert.throws(() => callOp('aten::add.Tensor', a, 'x'), /aten::add\.Tensor: argument 'other' expects Tensor, got string 'x'/);
  assert.throws(() => callOp('aten::add.Tensor', a), /aten::add\.Tensor: missing argument 'other' \(Tensor\)/);
  assert.throws(() => callOp('aten::sum.dim_IntList', a, [0.5]), /argument 'dim' expects int\[\]\?, got number 0\.5/);
  assert.throws(() => callOp('aten::mul.Tensor', a, a, a), /takes 2 arguments, got 3/);
  assert.throws(() => callOp('aten::no_such_op', a), /unknown operator 'aten::no_such_op'/);
  assert.throws(() => callOp('aten::add.NoSuchOverload', a, a), /unknown operator 'aten::add\.NoSuchOverload'/);
  assert.throws(() => a.softmax('x' as unknown as number), /aten::softmax\.int: argument 'dim' expects int, got string/);
  assert.throws(() => T.zeros([2], { dtype: 'float7' as never }), /unknown dtype "float7"/);
  assert.throws(() => T.zeros([2, -1]), /zeros: shape must be an array of non-negative integers/);
  assert.throws(() => tensor(new Float32Array(5), { shape: [2, 2] }), /shape \[2,2\] holds 4 elements but the data has 5/);
  assert.throws(() => tensor([[1, 2], [3]]), /ragged/);
  assert.throws(() => F.crossEntropy(T.ones([2, 3]), tensor([0, 1], { dtype: 'int64' }), { reduction: 'avg' as never }), /reduction must be 'none', 'mean' or 'sum'/);
  assert.throws(() => F.dropout(a, 1.5, true), /dropout: p must be in \[0, 1\]/);
  assert.throws(() => a.to('tpu'), /Expected one of cpu, cuda|unknown device/);
}));

test('use after dispose throws and names the operation', () => {
  const a = T.ones([2]);
  const b = T.ones([2]);
  a.dispose();
  assert.equal(a.isDisposed, true);
  assert.throws(() => a.add(b), /aten::add\.Tensor: argument 'self' is a tensor used after dispose\(\)/);
  assert.throws(() => a.shape, /shape: tensor used after dispose\(\)/);
  assert.throws(() => a.toArray(), /toTypedArray: tensor used after dispose\(\)/);
  assert.throws(() => T.cat([b, a]), /tensor used after dispose\(\)/);
  b.dispose();
});

test('autograd misuse throws instead of crashing', () => scope(() => {
  const w = T.ones([3]).requiresGrad_();
  assert.throws(() => T.ones([3]).sum().backward(), /does not require grad/);
  assert.throws(() => w.mul(2).backward(), /a gradient is needed for a non-scalar output of shape \[3\]/);
  const y = w.mul(w).sum();
  y.backward();
  assert.throws(() => y.backward(), /backward.*(second time|freed)/s);
  assert.throws(() => T.grad(w.mul(2).sum(), [T.ones([3]).requiresGrad_()]), /grad: .*(not have been used|One of the differentiated Tensors)/);
  assert.throws(() => T.ones([2]).item(), /item: tensor has 2 elements, expected exactly 1/);
  assert.throws(() => w.mul(2).requiresGrad_(false), /requiresGrad: .*non-leaf/);
}));

test('the process survives a burst of native errors', () => {
  for (let i = 0; i < 1000; i++) {
    assert.throws(() => scope(() => T.ones([2, 2]).matmul(T.ones([3, 3]))));
  }
  assert.equal(scope(() => T.ones([2, 2]).sum().item()), 4);
});
