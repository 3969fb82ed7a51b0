// NGD and FNGD against dense float64 oracles: F built from brute-force per-sample gradients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crossEntropyPerSample, type Module, type Sequential } from '../src/nn/index.js';
import { SGD, type SGDOptions } from '../src/optim/index.js';
import { CoefficientStore, fngd, ngd, normalizeSolved, normalizeStored, type SampleSpaceMethodOptions, type SampleSpacePreconditioner, type StoreOptions } from '../src/precondition/index.js';
import * as T from '../src/tensor/index.js';
import { cat, grad, keep, linalg, liveTensors, scope, tensor, type Tensor } from '../src/tensor/index.js';
import { relErr, settledLiveTensors, tinyCnn, tinyMlp } from './helpers.js';

const f64 = { dtype: 'float64' as const };


interface Batch { x: Tensor; y: Tensor; ids: Int32Array }
function batch(g: T.Generator, shape: number[], b: number, firstId = 0): Batch {
  return {
    x: keep(T.randn([b, ...shape], { ...f64, generator: g })),
    y: keep(T.randint(0, 3, [b], { generator: g })),
    ids: Int32Array.from({ length: b }, (_, i) => firstId + i),
  };
}

function loss(model: Module & { forward(x: Tensor): Tensor }, b: Batch): Tensor {
  return crossEntropyPerSample(model.forward(b.x), b.y);
}

/** U [P, B]: per-sample gradients from B separate backward passes, parameters in `blocks` order. */
function bruteU(model: Module & { forward(x: Tensor): Tensor }, b: Batch, params: Tensor[]): Tensor {
  const l = loss(model, b);
  const cols: Tensor[] = [];
  for (let i = 0; i < b.ids.length; i++) {
    const gs = grad(l.select(0, i), params, { retainGraph: true });
    cols.push(cat(gs.map((x) => x!.reshape(-1))));
  }
  return T.stack(cols, 1);
}

/** The dense damped NGD direction (F + lambda I)^-1 gbar, F = U U^T / B, per block of parameters. */
function denseDirection(U: Tensor, blocks: number[][], lambda: number): Tensor {
  const b = U.size(1);
  const parts: Tensor[] = [];
  for (const rows of blocks) {
    const Ub = U.index([tensor(rows, { dtype: 'int64' })]);
    const Fb = Ub.matmul(Ub.t()).div(b).add(T.eye(rows.length, f64).mul(lambda));
    parts.push(linalg.solve(Fb, Ub.mean(1, true)).squeeze(1));
  }
  return cat(parts);
}

function flatGrad(params: Tensor[]): Tensor {
  return cat(params.map((p) => p.grad!.reshape(-1)));
}

type NGDOptions = SGDOptions & SampleSpaceMethodOptions;
const opts = (o: Partial<NGDOptions> = {}): NGDOptions => ({ lr: 0, damping: 0.1, dampingMode: 'absolute', normalize: 'none', ...o });

/** A method with SGD's rule: the rule's options go to SGD, the rest to the preconditioner. */
function paired<O extends object>(make: (m: Module, o: O) => SampleSpacePreconditioner, model: Module, o: SGDOptions & O): SGD & { pre: SampleSpacePreconditioner } {
  const { lr, momentum, dampening, weightDecay, nesterov, ...rest } = o as SGDOptions & Record<string, unknown>;
  const pre = make(model, rest as O);
  return Object.assign(new SGD(model.parameters(), { lr, momentum, dampening, weightDecay, nesterov, preconditioner: pre }), { pre });
}
const NGD = (model: Module, o: NGDOptions): SGD & { pre: SampleSpacePreconditioner } => paired(ngd, model, o);
const FNGD = (model: Module, o: NGDOptions & Partial<StoreOptions>): SGD & { pre: SampleSpacePreconditioner } => paired(fngd, model, o as NGDOptions & StoreOptions);

/** A trainer run of FNGD on 128 MNIST images (3 epochs of 4 steps) in this process; the step losses. */
async function fngdMnistRun(outDir: string, o: { stopAfter?: number; resume?: boolean; probeEvery?: number }): Promise<number[]> {
  const { Trainer } = await import('../src/train/trainer.js');
  const { createTask } = await import('../src/train/tasks.js');
  T.manualSeed(1);
  const task = createTask('mnist-mlp', { batchSize: 32, seed: 4, trainLimit: 128, evalLimit: 64, evalBatchSize: 64 });
  const opt = FNGD(task.model, { lr: 0.05, momentum: 0.9, numSamples: task.trainLoader.dataset.length, probeEvery: o.probeEvery ?? 0 });
  try {
    const r = await new Trainer(task as never, opt, { epochs: 3, seed: 4, outDir, resume: o.resume, stopAfterSteps: o.stopAfter, progress: false }).fit();
    return r.steps.map((s) => s.loss);
  } finally {
    opt.dispose();
    task.dispose();
  }
}

for (const [name, make, shape] of [['MLP', tinyMlp, [4]], ['CNN', tinyCnn, [2, 4, 4]]] as const) {
  test(`NGD on a tiny ${name}: .grad equals the dense solution of (F + lambda I) d = gbar, layer-wise and global`, () => scope(() => {
    const g = new T.Generator(7);
    const model = make(g);
    const b = batch(g, [...shape], 6);
    const params = model.parameters();
    const U = bruteU(model, b, params);
    const ranges: number[][] = [];
    let offset = 0;
    for (const p of params) {
      ranges.push(Array.from({ length: p.numel }, (_, k) => offset + k));
      offset += p.numel;
    }
    // Blocks: a layer's weight and bias together (params come as w0, b0, w1, b1).
    const layerBlocks = [[...ranges[0]!, ...ranges[1]!], [...ranges[2]!, ...ranges[3]!]];
    for (const mode of ['layerwise', 'global'] as const) {
      const opt = NGD(model, opts({ mode }));
      opt.step({ perSampleLoss: loss(model, b), sampleIds: b.ids, epoch: 0 });
      const blocks = mode === 'global' ? [ranges.flat()] : layerBlocks;
      const expected = denseDirection(U, blocks, 0.1);
      const err = relErr(flatGrad(params), expected);
      assert.ok(err < 1e-10, `${mode}: relative error ${err}`);
      opt.dispose();
    }
  }));
}

test('relative damping and sum normalization: the same direction, rescaled', () => scope(() => {
  const g = new T.Generator(3);
  const model = tinyMlp(g);
  const b = batch(g, [4], 8);
  const params = model.parameters();
  const a = NGD(model, opts({ normalize: 'none', dampingMode: 'absolute', damping: 0.05 }));
  a.step({ perSampleLoss: loss(model, b), sampleIds: b.ids, epoch: 0 });
  const raw = params.map((p) => p.grad!.clone());
  a.dispose();
  const s = NGD(model, opts({ normalize: 'sum', dampingMode: 'absolute', damping: 0.05 }));
  s.step({ perSampleLoss: loss(model, b), sampleIds: b.ids, epoch: 0 });
  for (const [i, p] of params.entries()) {
    const ratio = p.grad!.div(raw[i]!);
    const r0 = ratio.reshape(-1).select(0, 0).item();
    assert.ok(r0 > 0, 'sum normalization rescales by a positive factor');
    assert.ok(ratio.sub(r0).abs().max().item() < 1e-9 * Math.abs(r0), 'each layer is rescaled as a whole');
  }
  s.dispose();
}));

test('FNGD: a reuse step on the batch whose coefficients were just stored, parameters unchanged, equals the NGD step', () => scope(() => {
  for (const normalize of ['none', 'sum'] as const) {
    for (const mode of ['layerwise', 'global'] as const) {
      const g = new T.Generator(11);
      const model = tinyCnn(g);
      const b = batch(g, [2, 4, 4], 6, 100);
      const params = model.parameters();
      const f = FNGD(model, { ...opts({ normalize, mode }), numSamples: 200 });
      const s0 = f.step({ perSampleLoss: loss(model, b), sampleIds: b.ids, epoch: 0 });
      assert.equal(s0.reused, 0);
      const ngdGrad = flatGrad(params).clone();
      const s1 = f.step({ perSampleLoss: loss(model, b), sampleIds: b.ids, epoch: 1 });
      assert.equal(s1.reused, 1);
      assert.equal(s1.missing, 0);
      assert.ok(relErr(flatGrad(params), ngdGrad) < 1e-12, `${normalize}/${mode}`);
      f.dispose();
    }
  }
}));

test('FNGD: reshuffled batches, a smaller last batch and unseen sample ids all work', () => scope(() => {
  const g = new T.Generator(5);
  const model = tinyMlp(g);
  const f = FNGD(model, { ...opts({ normalize: 'sum', lr: 0.1 }), numSamples: 20 });
  const all = batch(g, [4], 12);
  const pick = (idx: number[]): Batch => ({ x: all.x.indexSelect(0, tensor(idx, { dtype: 'int64' })), y: all.y.indexSelect(0, tensor(idx, { dtype: 'int64' })), ids: Int32Array.from(idx) });
  f.step({ perSampleLoss: loss(model, pick([0, 1, 2, 3, 4, 5])), sampleIds: Int32Array.from([0, 1, 2, 3, 4, 5]), epoch: 0 });
  f.step({ perSampleLoss: loss(model, pick([6, 7, 8, 9])), sampleIds: Int32Array.from([6, 7, 8, 9]), epoch: 0, batchIndex: 1 });
  // Epoch 1: reshuffled, a batch of 3, and ids 10 and 11 never seen.
  const shuffled = pick([9, 2, 7, 0, 5]);
  const s = f.step({ perSampleLoss: loss(model, shuffled), sampleIds: shuffled.ids, epoch: 1 });
  assert.equal(s.reused, 1);
  assert.equal(s.missing, 0);
  const last = pick([10, 11, 3]);
  const s2 = f.step({ perSampleLoss: loss(model, last), sampleIds: last.ids, epoch: 1 });
  assert.equal(s2.missing, 2, 'two unseen ids fall back to the layer mean');
  for (const p of model.parameters()) assert.ok(p.isfinite().all().item(), 'parameters stay finite');
  // The fallback is the mean of the stored coefficients.
  const { alpha } = f.pre.store!.get(Int32Array.from([11]), 0);
  const known = f.pre.store!.get(Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]), 0).alpha;
  assert.ok(relErr(alpha.squeeze(1), known.mean(1)) < 1e-14);
  assert.throws(() => f.pre.store!.get(Int32Array.from([20]), 0), /sample id 20 outside \[0, 20\)/);
  f.dispose();
}));

test('FNGD reuse on a reshuffled batch: each layer sum_i alpha_i g_i with the stored alphas summed to 1 again (brute force)', () => scope(() => {
  const g = new T.Generator(6);
  const model = tinyMlp(g);
  const params = model.parameters();
  const f = FNGD(model, { ...opts({ normalize: 'sum', damping: 0.3 }), numSamples: 10 });
  const all = batch(g, [4], 10);
  const pick = (idx: number[]): Batch => ({ x: all.x.indexSelect(0, tensor(idx, { dtype: 'int64' })), y: all.y.indexSelect(0, tensor(idx, { dtype: 'int64' })), ids: Int32Array.from(idx) });
  f.step({ perSampleLoss: loss(model, pick([0, 1, 2, 3, 4])), sampleIds: Int32Array.from([0, 1, 2, 3, 4]), epoch: 0 });
  f.step({ perSampleLoss: loss(model, pick([5, 6, 7, 8, 9])), sampleIds: Int32Array.from([5, 6, 7, 8, 9]), epoch: 0, batchIndex: 1 });
  // Samples from both solve batches: each layer's stored row no longer sums to 1 over this batch.
  const mixed = pick([8, 1, 6, 3]);
  const stored = f.pre.store!.get(mixed.ids, 0).alpha; // float64 [layers, 4], as solved
  assert.ok(Math.abs(stored.select(0, 0).sum().item() - 1) > 1e-3, 'the mixed batch\'s stored row does not sum to 1 by itself');
  f.step({ perSampleLoss: loss(model, mixed), sampleIds: mixed.ids, epoch: 1 });
  const U = bruteU(model, mixed, params);
  let row = 0;
  const expected: Tensor[] = [];
  for (const [layer, n] of [[0, 4 * 5 + 5], [1, 5 * 3 + 3]] as const) {
    const a = stored.select(0, layer);
    expected.push(U.narrow(0, row, n).mv(a.div(a.sum())));
    row += n;
  }
  const err = relErr(flatGrad(params), cat(expected));
  assert.ok(err < 1e-12, `relative error ${err}`);
  f.dispose();
}));

test('normalize sum: rows summed to 1, a row summing to <= 0 takes 1/B, on stored host rows and on solved tensors alike', () => scope(() => {
  const store = new CoefficientStore({ key: 'sample', groups: 2, capacity: 6, batchSize: 3 });
  // Group 0 positive; group 1 mixed signs, summing to 0 over samples [1, 3, 4] and to -1 over [3, 4, 5].
  const stored = [[0.2, 0.3, 0.5, 0.1, 0.6, 0.3], [0.7, 1.0, -0.7, -2.0, 1.0, 0.0]];
  store.put(Int32Array.from([0, 1, 2]), 0, tensor(stored.map((r) => r.slice(0, 3)), f64));
  store.put(Int32Array.from([3, 4, 5]), 1, tensor(stored.map((r) => r.slice(3)), f64));
  const expected = (ids: number[]): { rows: number[][]; uniform: number } => {
    let uniform = 0;
    const rows = stored.map((r) => {
      const picked = ids.map((i) => r[i]!);
      const sum = picked.reduce((a, v) => a + v, 0);
      if (sum <= 0) uniform += 1;
      return picked.map((v) => (sum > 0 ? v / sum : 1 / ids.length));
    });
    return { rows, uniform };
  };
  for (const ids of [[1, 3, 4], [3, 4, 5], [0, 1, 2]]) {
    const want = expected(ids);
    const host = store.gather(Int32Array.from(ids), 0).values;
    assert.equal(normalizeStored(host, 2, 'sum'), want.uniform, `uniform rows of [${ids}] (host)`);
    const raw = store.get(Int32Array.from(ids), 0).alpha;
    const solved = normalizeSolved(raw, 'sum');
    assert.equal(solved.uniformRows, want.uniform, `uniform rows of [${ids}] (tensor)`);
    for (let g = 0; g < 2; g++) {
      for (let j = 0; j < 3; j++) {
        assert.ok(Math.abs(host[g * 3 + j]! - want.rows[g]![j]!) < 1e-15, `host [${ids}] row ${g}`);
        assert.ok(Math.abs((solved.alpha.select(0, g).toArray() as number[])[j]! - want.rows[g]![j]!) < 1e-15, `tensor [${ids}] row ${g}`);
      }
    }
  }
  // 'none' keeps the rows; the store hands raw rows out in any dtype.
  const raw = store.get(Int32Array.from([1, 3, 4]), 0).alpha;
  assert.equal(normalizeSolved(raw, 'none').alpha, raw);
  const host = store.gather(Int32Array.from([1, 3, 4]), 0).values;
  assert.equal(normalizeStored(host, 2, 'none'), 0);
  assert.deepEqual([...host], [0.3, 0.1, 0.6, 1.0, -2.0, 1.0]);
  const f32 = store.get(Int32Array.from([1, 3, 4]), 0, { dtype: 'float32' }).alpha;
  assert.equal(f32.dtype, 'float32');
  assert.deepEqual(f32.select(0, 1).toArray(), [1.0, -2.0, 1.0]);
  assert.deepEqual(f32.select(0, 0).toArray(), [0.3, 0.1, 0.6].map(Math.fround));
  assert.throws(() => store.get(Int32Array.from([0]), 0, 'cpu' as never), /CoefficientStore\.get: options must be \{ device, dtype \}, got cpu/);
}));

test('B = 1, duplicated samples (singular Gram) and a NaN loss: clear outcomes, no NaN in the parameters', () => scope(() => {
  const g = new T.Generator(2);
  const model = tinyMlp(g);
  const params = model.parameters();
  const one = batch(g, [4], 1);
  const ngd = NGD(model, { lr: 0.1, damping: 0, dampingMode: 'absolute', normalize: 'sum' });
  ngd.step({ perSampleLoss: loss(model, one), sampleIds: one.ids, epoch: 0 });
  for (const p of params) assert.ok(p.isfinite().all().item());
  // Four copies of the same sample: K has rank 1, lambda = 0: the solve needs jitter, stays finite.
  const dup: Batch = { x: one.x.expand(4, 4).contiguous(), y: one.y.expand(4).contiguous(), ids: Int32Array.from([0, 1, 2, 3]) };
  const st = ngd.step({ perSampleLoss: loss(model, dup), sampleIds: dup.ids, epoch: 0 });
  assert.ok(st.jitter! > 0, 'jitter was needed and reported');
  for (const p of params) assert.ok(p.isfinite().all().item(), 'no NaN after a singular Gram');
  const before = params.map((p) => p.clone());
  const bad = crossEntropyPerSample(model.forward(one.x.mul(Number.NaN)), one.y);
  assert.throws(() => ngd.step({ perSampleLoss: bad, sampleIds: one.ids, epoch: 0 }), /NGD\.step: the loss is NaN at epoch 0; parameters left unchanged/);
  for (const [i, p] of params.entries()) assert.equal(relErr(p, before[i]!), 0);
  ngd.dispose();
}));

test('NGD options are validated; coverage names the first-order fallback', () => {
  const g = new T.Generator(1);
  const model = tinyMlp(g);
  assert.throws(() => NGD(model, { lr: 0.1, damping: -1 }), /option 'damping' must be a finite number in \[0, inf\)/);
  assert.throws(() => NGD(model, { lr: 0.1, mode: 'diag' as never }), /option 'mode' must be 'layerwise' or 'global'/);
  assert.throws(() => FNGD(model, { lr: 0.1 }), /option 'numSamples' must be a positive integer/);
  const base = settledLiveTensors();
  const ngd = NGD(model, { lr: 0.1 });
  assert.deepEqual(ngd.pre.coverage(), { covered: ['0.weight', '0.bias', '2.weight', '2.bias'], uncovered: [] });
  ngd.dispose();
  assert.equal(settledLiveTensors(), base);
  model.dispose();
});

test('FNGD resumed from a checkpoint across the NGD/reuse boundary reproduces the uninterrupted run', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { setGemmAutotune } = await import('../src/curvature/gemm.js');
  const dir = mkdtempSync(join(tmpdir(), 'fngd-resume-'));
  // Fixed product routes: the uninterrupted and the interrupted run share this process, so the first
  // would time the products on alternating routes and the second find them decided, rounding
  // differently in those steps. (A resumed process takes the routes from the checkpoint: the next test.)
  setGemmAutotune(false);
  const run = (out: string, o: { stopAfter?: number; resume?: boolean }): Promise<number[]> => fngdMnistRun(out, { ...o, probeEvery: 3 });
  try {
    const full = await run(join(dir, 'a'), {});
    assert.equal(full.length, 12);
    await run(join(dir, 'b'), { stopAfter: 5 }); // inside the first reuse epoch: the store must come back
    await run(join(dir, 'b'), { stopAfter: 4, resume: true });
    const resumed = await run(join(dir, 'b'), { resume: true });
    assert.deepEqual(resumed, full);
  } finally {
    setGemmAutotune(true);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a resumed FNGD run takes the product routes its checkpoint carries, as a new process would', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { gemmRoutes, gemmState, restoreGemmState, setGemmAutotune } = await import('../src/curvature/gemm.js');
  const dir = mkdtempSync(join(tmpdir(), 'fngd-routes-'));
  const run = (out: string, o: { stopAfter?: number; resume?: boolean }): Promise<number[]> => fngdMnistRun(out, o);
  try {
    setGemmAutotune(true);
    await run(join(dir, 'measure'), {}); // times the products: the weight products (12 steps) are decided
    const decided = gemmState();
    assert.ok(Object.keys(decided.routes).length >= 3, 'the weight products were timed');
    // The Grams' products run in epoch 0 only (4 steps), too few to decide: fix them to mm, so that
    // no route below depends on a timing.
    for (const k of Object.keys(decided.trials)) decided.routes[k] = 'mm';
    decided.trials = {};
    // Both runs start from the decided routes; the interrupted one stops, "a new process" (nothing
    // measured) resumes it, and must take the routes from the checkpoint rather than time them anew
    // on alternating routes, which round differently.
    setGemmAutotune(true);
    restoreGemmState(decided);
    const full = await run(join(dir, 'a'), {});
    setGemmAutotune(true);
    restoreGemmState(decided);
    await run(join(dir, 'b'), { stopAfter: 6 });
    setGemmAutotune(true);
    assert.equal(gemmRoutes().size, 0);
    const resumed = await run(join(dir, 'b'), { resume: true });
    for (const [k, r] of Object.entries(decided.routes)) assert.equal(gemmRoutes().get(k), r, `route of ${k} from the checkpoint`);
    assert.deepEqual(resumed, full);
  } finally {
    setGemmAutotune(true);
    rmSync(dir, { recursive: true, force: true });
  }
});
