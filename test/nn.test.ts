// Layers and models against PyTorch reference outputs (scripts/fixtures/make_nn_fixtures.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { grad, liveTensors, manualSeed, noGrad, randn, scope, tensor, zeros, type Tensor } from '../src/tensor/index.js';
import {
  AdaptiveAvgPool2d, AvgPool2d, BasicBlock, BatchNorm2d, Conv2d, crossEntropyLoss, crossEntropyPerSample, Dropout,
  Embedding, fromTorchAttentionKeys, LayerNorm, Linear, loadSafetensors, MaxPool2d, mlp, Module, MultiheadAttention,
  ReLU, resnet18Cifar, resnetSmall, Sequential, TransformerDecoderLayer, TransformerEncoderLayer, transformerSeq2Seq,
  type InitOptions,
} from '../src/nn/index.js';

const F64: InitOptions = { dtype: 'float64' };

function fixture(name: string): Map<string, Tensor> {
  return loadSafetensors(fileURLToPath(new URL(`../../test/fixtures/${name}.safetensors`, import.meta.url))).tensors;
}
function get(m: Map<string, Tensor>, k: string): Tensor {
  const t = m.get(k);
  assert.ok(t !== undefined, `fixture has no '${k}'`);
  return t;
}
/** The entries under `prefix`, with the prefix removed. */
function sub(m: Map<string, Tensor>, prefix: string): Map<string, Tensor> {
  return new Map([...m].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
}
function close(actual: Tensor | null, expected: Tensor, tol = 1e-10, what = ''): void {
  assert.ok(actual !== null, `${what}: missing`);
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const a = actual.toArray();
  const e = expected.toArray();
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - e[i]!) / (1 + Math.abs(e[i]!)));
  assert.ok(worst <= tol, `${what}: max relative error ${worst} > ${tol}`);
}
function leakCheck(fn: () => void): void {
  const before = liveTensors().tensors;
  scope(fn);
  assert.equal(liveTensors().tensors, before, 'tensors leaked');
}

test('Linear: forward and backward match PyTorch (float64)', () => leakCheck(() => {
  const f = fixture('nn_linear');
  const m = new Linear(3, 4, F64);
  m.loadStateDict(sub(f, 'p.'));
  const x = get(f, 'x').clone().requiresGrad_();
  const y = m.forward(x);
  close(y, get(f, 'y'), 1e-12, 'y');
  const [gx, gw, gb] = grad(y, [x, m.weight, m.bias!], { gradOutputs: [get(f, 'gy')] });
  close(gx!, get(f, 'gx'), 1e-12, 'gx');
  close(gw!, get(f, 'g.weight'), 1e-12, 'gW');
  close(gb!, get(f, 'g.bias'), 1e-12, 'gb');
  m.dispose();
}));

test('Conv2d: stride/padding/dilation/groups, forward and backward match PyTorch', () => leakCheck(() => {
  const f = fixture('nn_conv2d');
  const a = new Conv2d(2, 4, 3, { ...F64, stride: 2, padding: 1 });
  const b = new Conv2d(4, 6, [3, 2], { ...F64, stride: [1, 2], padding: [2, 1], dilation: [2, 1], groups: 2, bias: false });
  assert.equal(b.bias, null);
  a.loadStateDict(sub(f, 'a.'));
  b.loadStateDict(sub(f, 'b.'));
  const x = get(f, 'x').clone().requiresGrad_();
  const ya = a.forward(x);
  const yb = b.forward(ya);
  close(ya, get(f, 'ya'), 1e-12, 'ya');
  close(yb, get(f, 'yb'), 1e-12, 'yb');
  const [gx, gaw, gab, gbw] = grad(yb, [x, a.weight, a.bias!, b.weight], { gradOutputs: [get(f, 'gy')] });
  close(gx!, get(f, 'gx'), 1e-12, 'gx');
  close(gaw!, get(f, 'g.a.weight'), 1e-12, 'ga.weight');
  close(gab!, get(f, 'g.a.bias'), 1e-12, 'ga.bias');
  close(gbw!, get(f, 'g.b.weight'), 1e-12, 'gb.weight');
  a.dispose();
  b.dispose();
}));

test('BatchNorm2d: training (batch stats, running-stat updates, counter, backward) and eval match PyTorch', () => leakCheck(() => {
  const f = fixture('nn_batchnorm');
  const bn = new BatchNorm2d(3, F64);
  bn.loadStateDict(sub(f, 'p.'));
  const x1 = get(f, 'x1').clone().requiresGrad_();
  const y1 = bn.forward(x1);
  close(y1, get(f, 'y1'), 1e-10, 'y1');
  close(grad(y1, [x1], { gradOutputs: [get(f, 'gy1')] })[0]!, get(f, 'gx1'), 1e-10, 'gx1');
  close(bn.forward(get(f, 'x2')), get(f, 'y2'), 1e-10, 'y2');
  close(bn.runningMean, get(f, 'after.running_mean'), 1e-12, 'running_mean');
  close(bn.runningVar, get(f, 'after.running_var'), 1e-12, 'running_var');
  assert.equal(bn.numBatchesTracked.item(), 2);
  assert.equal(bn.numBatchesTracked.dtype, 'int64');
  bn.eval();
  close(bn.forward(get(f, 'x3')), get(f, 'y3'), 1e-12, 'y3 (eval)');
  assert.equal(bn.numBatchesTracked.item(), 2, 'eval does not count');

  const cma = new BatchNorm2d(3, { ...F64, momentum: null });
  cma.forward(get(f, 'x1'));
  cma.forward(get(f, 'x2'));
  close(cma.runningMean, get(f, 'cma.running_mean'), 1e-12, 'cumulative running_mean');
  close(cma.runningVar, get(f, 'cma.running_var'), 1e-12, 'cumulative running_var');
  assert.throws(() => cma.forward(randn([1, 3, 1, 1], F64)), /more than 1 value per channel/);
  bn.dispose();
  cma.dispose();
}));

test('LayerNorm: forward and backward match PyTorch', () => leakCheck(() => {
  const f = fixture('nn_layernorm');
  const m = new LayerNorm(6, F64);
  m.loadStateDict(sub(f, 'p.'));
  const x = get(f, 'x').clone().requiresGrad_();
  const y = m.forward(x);
  close(y, get(f, 'y'), 1e-12, 'y');
  const [gx, gw] = grad(y, [x, m.weight!], { gradOutputs: [get(f, 'gy')] });
  close(gx!, get(f, 'gx'), 1e-10, 'gx');
  close(gw!, get(f, 'g.weight'), 1e-12, 'gW');
  m.dispose();
}));

test('Embedding with paddingIdx: lookup and gradient (padding row gets none) match PyTorch', () => leakCheck(() => {
  const f = fixture('nn_embedding');
  const m = new Embedding(10, 4, { ...F64, paddingIdx: 1 });
  m.loadStateDict(sub(f, 'p.'));
  const y = m.forward(get(f, 'idx'));
  close(y, get(f, 'y'), 0, 'y');
  const [gw] = grad(y, [m.weight], { gradOutputs: [get(f, 'gy')] });
  close(gw!, get(f, 'g.weight'), 1e-12, 'gW');
  assert.deepEqual(gw!.select(0, 1).toArray(), [0, 0, 0, 0]);
  m.dispose();
  const neg = new Embedding(5, 2, { paddingIdx: -1 });
  assert.equal(neg.paddingIdx, 4);
  assert.deepEqual(neg.weight.select(0, 4).toArray(), [0, 0]);
  neg.dispose();
}));

test('MaxPool2d / AvgPool2d / AdaptiveAvgPool2d match PyTorch', () => leakCheck(() => {
  const f = fixture('nn_pools');
  const x = get(f, 'x');
  close(new MaxPool2d(3, { stride: 2, padding: 1 }).forward(x), get(f, 'max_k3s2p1'), 0, 'max k3s2p1');
  close(new MaxPool2d(2, { ceilMode: true }).forward(x), get(f, 'max_k2_ceil'), 0, 'max ceil');
  close(new AvgPool2d(3, { stride: 2, padding: 1 }).forward(x), get(f, 'avg_k3s2p1'), 1e-14, 'avg');
  close(new AvgPool2d(3, { stride: 2, padding: 1, countIncludePad: false }).forward(x), get(f, 'avg_k3s2p1_nopad'), 1e-14, 'avg nopad');
  close(new AdaptiveAvgPool2d([3, 2]).forward(x), get(f, 'adaptive_3x2'), 1e-14, 'adaptive 3x2');
  close(new AdaptiveAvgPool2d(1).forward(x), get(f, 'adaptive_1'), 1e-14, 'adaptive 1');
}));

test('MultiheadAttention: masks (bool causal, key padding, float, 3-D), weights and backward match PyTorch', () => leakCheck(() => {
  const f = fixture('nn_mha');
  const m = new MultiheadAttention(8, 2, F64);
  m.loadStateDict(fromTorchAttentionKeys(sub(f, 'p.')));
  const q = get(f, 'q').clone().requiresGrad_();
  const ySelf = m.forward(q, q, q, { attnMask: get(f, 'causal'), keyPaddingMask: get(f, 'kpm_self') });
  close(ySelf, get(f, 'y_self'), 1e-12, 'self-attention');
  close(grad(ySelf, [q], { gradOutputs: [get(f, 'gy')] })[0]!, get(f, 'gq'), 1e-12, 'gq');
  const cross = m.forwardWithWeights(q, get(f, 'k'), get(f, 'v'), { attnMask: get(f, 'fmask'), keyPaddingMask: get(f, 'kpm') });
  close(cross.output, get(f, 'y_cross'), 1e-12, 'cross-attention');
  close(cross.weights, get(f, 'w_cross'), 1e-12, 'averaged weights');
  close(m.forward(q, get(f, 'k'), get(f, 'v'), { attnMask: get(f, 'mask3') }), get(f, 'y_mask3'), 1e-12, '3-D mask');
  const floatKpm = zeros([2, 4], F64).maskedFill(get(f, 'kpm'), -Infinity);
  close(m.forward(q, get(f, 'k'), get(f, 'v'), { attnMask: get(f, 'fmask'), keyPaddingMask: floatKpm }), get(f, 'y_cross'), 1e-12, 'float key padding mask');
  assert.throws(() => m.forward(q, q, q, { keyPaddingMask: get(f, 'kpm') }), /keyPaddingMask must be \[2, 3\]/);
  m.dispose();
}));

test('TransformerEncoderLayer: post-norm ReLU and pre-norm GELU match PyTorch', () => leakCheck(() => {
  const f = fixture('nn_encoder_layer');
  const post = new TransformerEncoderLayer(6, 2, { ...F64, dimFeedforward: 8, dropout: 0.1 });
  const pre = new TransformerEncoderLayer(6, 2, { ...F64, dimFeedforward: 8, dropout: 0.1, activation: 'gelu', normFirst: true });
  post.loadStateDict(sub(f, 'post.'));
  pre.loadStateDict(sub(f, 'pre.'));
  post.eval();
  pre.eval();
  const x = get(f, 'x');
  close(post.forward(x, { srcKeyPaddingMask: get(f, 'kpm') }), get(f, 'y_post'), 1e-10, 'post-norm');
  close(pre.forward(x, { srcMask: get(f, 'causal'), srcKeyPaddingMask: get(f, 'kpm') }), get(f, 'y_pre'), 1e-10, 'pre-norm');
  post.dispose();
  pre.dispose();
}));

test('TransformerDecoderLayer: post-norm and pre-norm with causal and padding masks match PyTorch', () => leakCheck(() => {
  const f = fixture('nn_decoder_layer');
  const post = new TransformerDecoderLayer(6, 2, { ...F64, dimFeedforward: 8, dropout: 0 });
  const pre = new TransformerDecoderLayer(6, 2, { ...F64, dimFeedforward: 8, dropout: 0, activation: 'gelu', normFirst: true });
  post.loadStateDict(sub(f, 'post.'));
  pre.loadStateDict(sub(f, 'pre.'));
  const masks = { tgtMask: get(f, 'causal'), tgtKeyPaddingMask: get(f, 'tkpm'), memoryKeyPaddingMask: get(f, 'mkpm') };
  close(post.forward(get(f, 'tgt'), get(f, 'mem'), masks), get(f, 'y_post'), 1e-10, 'post-norm');
  close(pre.forward(get(f, 'tgt'), get(f, 'mem'), masks), get(f, 'y_pre'), 1e-10, 'pre-norm');
  post.dispose();
  pre.dispose();
}));

test('BasicBlock: option B (1x1 conv + BN) and option A (subsample + zero channels) match, train and eval', () => leakCheck(() => {
  const f = fixture('nn_basic_block');
  for (const type of ['B', 'A'] as const) {
    const blk = new BasicBlock(2, 4, 2, { ...F64, shortcut: type });
    assert.equal(blk.downsample !== null, type === 'B');
    blk.loadStateDict(sub(f, `p${type}.`));
    close(blk.forward(get(f, 'x')), get(f, `${type}.y_train`), 1e-10, `${type} train`);
    blk.eval();
    close(blk.forward(get(f, 'x')), get(f, `${type}.y_eval`), 1e-10, `${type} eval`);
    blk.dispose();
  }
}));

test('resnetSmall (depth 8, width 1/8, option A): train forward, gradients, running stats and eval match PyTorch', () => leakCheck(() => {
  const f = fixture('nn_resnet_small');
  const m = resnetSmall({ depth: 8, width: 0.125, classes: 10, ...F64 });
  m.loadStateDict(sub(f, 'p.'));
  const y = m.forward(get(f, 'x'));
  close(y, get(f, 'y_train'), 1e-10, 'train logits');
  const loss = crossEntropyLoss(y, get(f, 'target'), { reduction: 'sum' });
  const params = new Map(m.namedParameters());
  const names = ['conv1.weight', 'layer2.0.conv1.weight', 'layer3.0.bn2.weight', 'fc.weight', 'fc.bias'];
  const gs = grad(loss, names.map((n) => params.get(n)!));
  names.forEach((n, i) => close(gs[i]!, get(f, `g.${n}`), 1e-9, `grad ${n}`));
  const bufs = new Map(m.namedBuffers());
  close(bufs.get('layer1.0.bn1.running_mean')!, get(f, 'after.layer1.0.bn1.running_mean'), 1e-12, 'running_mean');
  close(bufs.get('layer3.0.bn2.running_var')!, get(f, 'after.layer3.0.bn2.running_var'), 1e-12, 'running_var');
  m.eval();
  close(m.forward(get(f, 'x')), get(f, 'y_eval'), 1e-10, 'eval logits');
  m.dispose();
}));

test('resnet18Cifar and resnetSmall(20): names, shapes and parameter counts match the PyTorch definitions', () => {
  const meta = loadSafetensors(fileURLToPath(new URL('../../test/fixtures/nn_resnet_keys.safetensors', import.meta.url))).metadata;
  const r18 = resnet18Cifar({ classes: 10 });
  const keys = [...r18.stateDict()].map(([k, t]) => [k, t.shape]);
  assert.deepEqual(keys, JSON.parse(meta.resnet18!));
  assert.equal(r18.parameterCount(), Number(meta.resnet18_params));
  assert.equal(r18.parameterCount(), 11173962);
  r18.dispose();
  const r20 = resnetSmall({ depth: 20 });
  assert.equal(r20.parameterCount(), Number(meta.resnet20_params));
  assert.equal(r20.parameterCount(), 269722); // He et al.'s 0.27M
  scope(() => assert.deepEqual(r20.forward(randn([2, 3, 32, 32])).shape, [2, 10]));
  r20.dispose();
  assert.throws(() => resnetSmall({ depth: 10 }), /6n\+2/);
});

test('transformerSeq2Seq: logits, per-sample CE (label smoothing, PAD ignored) and greedy decoding match PyTorch', () => leakCheck(() => {
  const f = fixture('nn_seq2seq');
  const m = transformerSeq2Seq({ srcVocab: 13, tgtVocab: 11, dModel: 4, heads: 2, layers: 2, ffn: 8, dropout: 0.1, maxLen: 12, padIdx: 1, ...F64 });
  m.loadStateDict(sub(f, 'p.'));
  m.eval();
  const logits = m.forward(get(f, 'src'), get(f, 'tgt_in'));
  close(logits, get(f, 'logits'), 1e-10, 'logits');
  const o = { ignoreIndex: 1, labelSmoothing: 0.1 };
  close(crossEntropyPerSample(logits, get(f, 'tgt_out'), o), get(f, 'per_sample'), 1e-10, 'per-sample CE');
  close(crossEntropyLoss(logits, get(f, 'tgt_out'), { ...o, reduction: 'tokenMean' }), get(f, 'token_mean'), 1e-10, 'token mean');
  close(crossEntropyLoss(logits, get(f, 'tgt_out'), { ...o, reduction: 'mean' }), get(f, 'per_sample').mean(), 1e-12, 'mean');
  close(crossEntropyLoss(logits, get(f, 'tgt_out'), { ...o, reduction: 'sum' }), get(f, 'per_sample').sum(), 1e-12, 'sum');
  m.train();
  const out = m.greedyDecode(get(f, 'src'), { bos: 2, eos: 3, maxLen: 6 });
  assert.ok(m.training && m.encoder.layers.at(0).training, 'training flags restored');
  const ref = get(f, 'greedy').toArray();
  const expected = [0, 1].map((i) => ref.slice(i * 6, i * 6 + 6).filter((v) => v >= 0));
  assert.deepEqual(out, expected);
  close(crossEntropyPerSample(get(f, 'cls_logits'), get(f, 'cls_target'), { ignoreIndex: 2, labelSmoothing: 0.2 }), get(f, 'cls_ce'), 1e-12, 'classification CE');
  assert.throws(() => crossEntropyPerSample(logits, get(f, 'src')), /targets of shape/);
  m.dispose();
}));

test('default initializations draw the same numbers as PyTorch after manualSeed', () => leakCheck(() => {
  const f = fixture('nn_init');
  const cases: [string, number, () => Module][] = [
    ['linear.', 21, () => new Linear(5, 3)],
    ['conv.', 22, () => new Conv2d(4, 6, 3, { groups: 2 })],
    ['embedding.', 23, () => new Embedding(6, 3, { paddingIdx: 2 })],
    ['mha.', 24, () => new MultiheadAttention(8, 2)],
    ['enc.', 25, () => new TransformerEncoderLayer(8, 2, { dimFeedforward: 16 })],
    ['dec.', 26, () => new TransformerDecoderLayer(8, 2, { dimFeedforward: 16 })],
  ];
  for (const [prefix, seed, make] of cases) {
    manualSeed(seed);
    const m = make();
    const ref = sub(f, prefix);
    const sd = m.stateDict();
    assert.deepEqual([...sd.keys()].sort(), [...ref.keys()].sort(), prefix);
    for (const [k, t] of sd) assert.deepEqual(t.toArray(), ref.get(k)!.toArray(), `${prefix}${k}`);
    m.dispose();
  }
}));

test('Module: names, modes, parameters, to(), dispose', () => {
  const before = liveTensors().tensors;
  const m = mlp({ inputSize: 6, hidden: [5, 4], classes: 3 });
  assert.deepEqual(m.namedParameters().map(([n]) => n), ['1.weight', '1.bias', '3.weight', '3.bias', '5.weight', '5.bias']);
  assert.equal(m.parameterCount(), 6 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3);
  assert.ok(m.parameters().every((p) => p.requiresGrad && p.isLeaf && p.kept));
  m.eval();
  assert.ok(m.modules().every((x) => !x.training));
  m.train();
  assert.ok(m.modules().every((x) => x.training));
  assert.deepEqual(m.namedModules().map(([n]) => n), ['', '0', '1', '2', '3', '4', '5']);

  // to(dtype): floating tensors cast, integer buffers kept, leaves stay leaves with requiresGrad.
  const s = new Sequential(new Linear(2, 2), new BatchNorm2d(2));
  s.to('float64');
  assert.ok(s.parameters().every((p) => p.dtype === 'float64' && p.isLeaf && p.requiresGrad));
  const buf = new Map(s.namedBuffers());
  assert.equal(buf.get('1.running_mean')!.dtype, 'float64');
  assert.equal(buf.get('1.num_batches_tracked')!.dtype, 'int64');
  assert.equal((s.at(0) as Linear).weight.dtype, 'float64', 'getters see the moved tensor');
  s.to('cpu');
  assert.throws(() => s.to('int64'), /dtype must be floating/);
  s.dispose();
  m.dispose();
  assert.equal(liveTensors().tensors, before, 'dispose frees everything');
});

test('Module: stateDict order, loadStateDict errors name missing/unexpected keys and shape mismatches', () => leakCheck(() => {
  const m = new Sequential(new Linear(3, 2), new ReLU(), new BatchNorm2d(2));
  assert.deepEqual([...m.stateDict().keys()],
    ['0.weight', '0.bias', '2.weight', '2.bias', '2.running_mean', '2.running_var', '2.num_batches_tracked']);
  const good = new Map([...m.stateDict()].map(([k, t]) => [k, t.clone().add(1)]));
  const bad = new Map(good);
  bad.delete('0.bias');
  bad.set('extra.weight', tensor([1]));
  bad.set('0.weight', randn([2, 4]));
  assert.throws(() => m.loadStateDict(bad), (e: Error) =>
    /missing keys: 0\.bias/.test(e.message) && /unexpected keys: extra\.weight/.test(e.message)
    && /0\.weight: checkpoint \[2,4\], model \[2,3\]/.test(e.message));
  const w0 = (m.at(0) as Linear).weight.toArray();
  assert.deepEqual((m.at(0) as Linear).weight.toArray(), w0, 'nothing changed on error');
  bad.set('0.weight', good.get('0.weight')!);
  assert.throws(() => m.loadStateDict(bad), /missing keys/);
  const r = m.loadStateDict(bad, { strict: false });
  assert.deepEqual(r, { missing: ['0.bias'], unexpected: ['extra.weight'] });
  assert.deepEqual((m.at(0) as Linear).weight.toArray(), good.get('0.weight')!.toArray());
  m.loadStateDict(good);
  assert.equal((m.at(2) as BatchNorm2d).numBatchesTracked.item(), 1);
  m.dispose();
}));

test('Dropout and containers: train/eval behaviour, Sequential chaining, no scope leaks in forward', () => leakCheck(() => {
  const d = new Dropout(0.5);
  const x = randn([1000]).abs().add(1);
  const y = d.forward(x);
  const zeros = y.eq(0).sum().item();
  assert.ok(zeros > 350 && zeros < 650, `dropout zeroed ${zeros} of 1000`);
  assert.ok(y.ne(0).sum().item() === 1000 - zeros);
  close(y.where(y.ne(0), 0).sum(), x.mul(2).where(y.ne(0), 0).sum(), 1e-5, 'scaled by 1/(1-p)');
  d.eval();
  assert.equal(d.forward(x), x);
  const net = new Sequential(new Linear(4, 3), new ReLU(), new Linear(3, 2));
  assert.equal(net.length, 3);
  const out = noGrad(() => net.forward(randn([5, 4])));
  assert.deepEqual(out.shape, [5, 2]);
  assert.throws(() => net.at(3), /out of range/);
  net.dispose();
}));
