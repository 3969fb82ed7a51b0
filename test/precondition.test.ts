// The preconditioner design: iEF and thermodynamic NGD against dense float64 oracles built from
// brute-force per-sample gradients, any method paired with any rule (NGD+AdamW), reuse of any
// solved rule (fast iEF), and the registry (one default per option, settings in state dicts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crossEntropyPerSample, type Module, type Sequential } from '../src/nn/index.js';
import { AdamW, SGD, type Optimizer } from '../src/optim/index.js';
import {
  METHODS, buildMethod, camel, resolveValues,
} from '../src/precondition/registry.js';
import { SampleSpacePreconditioner } from '../src/precondition/sample-space.js';
import { engineSgd, fastIef, fngd, ief, kfac, ngd, thermodynamicNgd, type Preconditioner } from '../src/precondition/index.js';
import * as T from '../src/tensor/index.js';
import { cat, grad, keep, linalg, scope, tensor, type Tensor } from '../src/tensor/index.js';
import { leakCheck, relErr, tinyCnn, tinyMlp } from './helpers.js';

const f64 = { dtype: 'float64' as const };


interface Batch { x: Tensor; y: Tensor; ids: Int32Array }
function batch(g: T.Generator, shape: number[], b: number): Batch {
  return {
    x: keep(T.randn([b, ...shape], { ...f64, generator: g })),
    y: keep(T.randint(0, 3, [b], { generator: g })),
    ids: Int32Array.from({ length: b }, (_, i) => i),
  };
}
const free = (b: Batch): void => {
  b.x.dispose();
  b.y.dispose();
};
const lossOf = (model: Sequential, b: Batch): Tensor => crossEntropyPerSample(model.forward(b.x), b.y);

/** U [P, B] from B separate backward passes, and s_i = ||d l_i / d z_i||^2 from the logits. */
function bruteForce(model: Sequential, b: Batch): { U: Tensor; s: Tensor } {
  const params = model.parameters();
  const logits = model.forward(b.x);
  const l = crossEntropyPerSample(logits, b.y);
  const cols: Tensor[] = [];
  const norms: number[] = [];
  for (let i = 0; i < b.ids.length; i++) {
    const [dz, ...gs] = grad(l.select(0, i), [logits, ...params], { retainGraph: true });
    cols.push(cat(gs.map((x) => x!.reshape(-1))));
    norms.push(dz!.select(0, i).square().sum().item());
  }
  return { U: T.stack(cols, 1), s: tensor(norms, f64) };
}

/**
 * iEF's direction densely, by the push-through identity: U (U^T U + lambda B I)^-1 s equals
 * (U U^T + lambda B I)^-1 U s, a P x P solve that shares nothing with the Gram code.
 */
function denseIef(U: Tensor, s: Tensor, blocks: number[][], lambda: number): Tensor {
  const b = U.size(1);
  return cat(blocks.map((rows) => {
    const Ub = U.index([tensor(rows, { dtype: 'int64' })]);
    const M = Ub.matmul(Ub.t()).add(T.eye(rows.length, f64).mul(lambda * b));
    return linalg.solve(M, Ub.matmul(s.unsqueeze(1))).squeeze(1);
  }));
}

function layerBlocks(params: Tensor[]): { all: number[]; layers: number[][] } {
  const ranges: number[][] = [];
  let offset = 0;
  for (const p of params) {
    ranges.push(Array.from({ length: p.numel }, (_, k) => offset + k));
    offset += p.numel;
  }
  return { all: ranges.flat(), layers: [[...ranges[0]!, ...ranges[1]!], [...ranges[2]!, ...ranges[3]!]] };
}

/** The gradient of the mean loss, flattened (SGD's direction). */
const meanGradient = (model: Sequential, b: Batch): Tensor => cat(grad(lossOf(model, b).mean(), model.parameters()).map((x) => x!.reshape(-1)));
const flatGrad = (params: Tensor[]): Tensor => cat(params.map((p) => p.grad!.reshape(-1)));
const withSgd = (model: Module, pre: Preconditioner, lr = 0): SGD => new SGD(model.parameters(), { lr, preconditioner: pre });

for (const [name, make, shape] of [['MLP', tinyMlp, [4]], ['CNN', tinyCnn, [2, 4, 4]]] as const) {
  test(`iEF on a tiny ${name}: .grad equals the dense (U U^T + lambda B I)^-1 U s, layer-wise and global`, () => leakCheck(() => scope(() => {
    const g = new T.Generator(17);
    const model = make(g);
    const b = batch(g, [...shape], 6);
    const params = model.parameters();
    const { U, s } = bruteForce(model, b);
    const blocks = layerBlocks(params);
    for (const mode of ['layerwise', 'global'] as const) {
      const opt = withSgd(model, ief(model, { mode, damping: 0.1, dampingMode: 'absolute', normalize: 'none' }));
      opt.step({ perSampleLoss: lossOf(model, b), sampleIds: b.ids, epoch: 0 });
      const want = denseIef(U, s, mode === 'global' ? [blocks.all] : blocks.layers, 0.1);
      const err = relErr(flatGrad(params), want);
      assert.ok(err < 1e-10, `${mode}: relative error ${err}`);
      // iEF is not NGD: the right-hand side matters (else the test could not tell them apart).
      const ngdDir = denseIef(U, T.onesLike(s), mode === 'global' ? [blocks.all] : blocks.layers, 0.1);
      assert.ok(relErr(ngdDir, want) > 1e-3, 'iEF differs from NGD on this batch');
      opt.dispose();
    }
    free(b);
    model.dispose();
  })));
}

test('fast iEF: a reuse step on the batch whose coefficients were just stored equals the iEF step', () => leakCheck(() => scope(() => {
  for (const mode of ['layerwise', 'global'] as const) {
    const g = new T.Generator(23);
    const model = tinyCnn(g);
    const b = batch(g, [2, 4, 4], 6);
    const params = model.parameters();
    // One preconditioner taps a model at a time: iEF first, then fast iEF.
    const ref = withSgd(model, ief(model, { mode }));
    ref.step({ perSampleLoss: lossOf(model, b), sampleIds: b.ids, epoch: 0 });
    const iefDir = flatGrad(params).clone();
    ref.dispose();
    const opt = withSgd(model, fastIef(model, { mode, numSamples: 6 }));
    assert.equal(opt.step({ perSampleLoss: lossOf(model, b), sampleIds: b.ids, epoch: 0 }).reused, 0);
    assert.ok(relErr(flatGrad(params), iefDir) < 1e-12, `${mode}: the stored solve is iEF's`);
    const s1 = opt.step({ perSampleLoss: lossOf(model, b), sampleIds: b.ids, epoch: 1 });
    assert.equal(s1.reused, 1);
    assert.ok(relErr(flatGrad(params), iefDir) < 1e-12, `${mode}: the reuse step replays it`);
    opt.dispose();
    free(b);
    model.dispose();
  }
})));

test('thermodynamic NGD: t = 0 is SGD\'s direction, a long noise-free run is NGD\'s (1e-8)', () => leakCheck(() => scope(() => {
  const g = new T.Generator(29);
  const model = tinyMlp(g);
  const b = batch(g, [4], 8);
  const params = model.parameters();
  const directionOf = (pre: Preconditioner): Tensor => {
    const opt = withSgd(model, pre);
    opt.step({ perSampleLoss: lossOf(model, b), sampleIds: b.ids, epoch: 0 });
    const d = flatGrad(params).clone();
    opt.dispose();
    return d;
  };
  const sgdDir = meanGradient(model, b);
  const exact = directionOf(ngd(model, { damping: 1 }));
  const atZero = directionOf(thermodynamicNgd(model, { damping: 1, t: 0, kappa0: 0.3 }));
  assert.ok(relErr(atZero, sgdDir) < 1e-12, `t = 0: relative error to SGD ${relErr(atZero, sgdDir)}`);
  const long = directionOf(thermodynamicNgd(model, { damping: 1, t: 400, dt: 0.5 }));
  assert.ok(relErr(long, exact) < 1e-8, `t = 400: relative error to NGD ${relErr(long, exact)}`);
  const mid = directionOf(thermodynamicNgd(model, { damping: 1, t: 2 }));
  assert.ok(relErr(mid, exact) > 1e-4 && relErr(mid, sgdDir) > 1e-4, 'an intermediate t is neither');
  free(b);
  model.dispose();
})));

test('the engine\'s SGD configuration (uniform right-hand side, identity solver) is the mean-loss gradient', () => leakCheck(() => scope(() => {
  const g = new T.Generator(31);
  const model = tinyCnn(g);
  const b = batch(g, [2, 4, 4], 5);
  const params = model.parameters();
  const want = meanGradient(model, b);
  const opt = withSgd(model, engineSgd(model));
  opt.step({ perSampleLoss: lossOf(model, b), sampleIds: b.ids, epoch: 0 });
  assert.ok(relErr(flatGrad(params), want) < 1e-12);
  opt.dispose();
  free(b);
  model.dispose();
})));

test('any pairing: NGD+AdamW and FNGD+AdamW apply AdamW\'s rule to the natural-gradient direction', () => leakCheck(() => scope(() => {
  for (const which of ['ngd', 'fngd'] as const) {
    const g = new T.Generator(37);
    const model = tinyMlp(g);
    const b = batch(g, [4], 8);
    const params = model.parameters();
    const before = params.map((p) => p.detach().clone());
    // The direction alone (SGD with lr 0 writes it and moves nothing).
    const probe = withSgd(model, which === 'ngd' ? ngd(model) : fngd(model, { numSamples: 8 }));
    probe.step({ perSampleLoss: lossOf(model, b), sampleIds: b.ids, epoch: 0 });
    const d = params.map((p) => p.grad!.clone());
    probe.dispose();
    const pre = which === 'ngd' ? ngd(model) : fngd(model, { numSamples: 8 });
    const lr = 0.01;
    const wd = 0.1;
    const eps = 1e-8;
    const opt: Optimizer = new AdamW(params, { lr, weightDecay: wd, eps, preconditioner: pre });
    assert.equal(opt.label, which === 'ngd' ? 'NGD+AdamW' : 'FNGD+AdamW');
    opt.step({ perSampleLoss: lossOf(model, b), sampleIds: b.ids, epoch: 0 });
    // AdamW's first step: p (1 - lr wd) - lr m^ / (sqrt(v^) + eps) with m^ = d, v^ = d^2.
    params.forEach((p, i) => {
      const want = before[i]!.mul(1 - lr * wd).sub(d[i]!.div(d[i]!.abs().add(eps)).mul(lr));
      assert.ok(relErr(p.detach(), want) < 1e-12, `${which} parameter ${i}`);
    });
    if (which === 'fngd') {
      const s = opt.step({ perSampleLoss: lossOf(model, b), sampleIds: b.ids, epoch: 1 });
      assert.equal(s.reused, 1, 'FNGD+AdamW reuses its coefficients in epoch 1');
    }
    opt.dispose();
    free(b);
    model.dispose();
  }
})));

test('registry: every method\'s factory defaults are the registry\'s (one default per option)', () => {
  const g = new T.Generator(41);
  const model = tinyMlp(g);
  const ctx = { model, numSamples: 10, batchesPerEpoch: 2, batchSize: 5, seed: 3 };
  // Settings keys that are option flags under another name.
  const alias: Record<string, string> = { mode: 'ngdMode', t: 'tAnalog', dt: 'dtAnalog' };
  for (const [name, e] of Object.entries(METHODS)) {
    const v = resolveValues(name, 'mnist-mlp', {});
    const pre = e.build(ctx, v);
    if (pre === null) {
      assert.deepEqual(Object.keys(e.options), [], `${name} has no preconditioner and no options`);
      continue;
    }
    const settings = { ...pre.settings } as Record<string, unknown>;
    assert.equal(pre.costPeriod, e.costPeriod(v), `${name}: the registry's cost period is the built one's`);
    pre.dispose();
    // The factory with no options at all, for comparison with the registry's defaults.
    const factories: Record<string, () => Preconditioner> = {
      ngd: () => ngd(model), fngd: () => fngd(model, { numSamples: 10 }), ief: () => ief(model),
      'fast-ief': () => fastIef(model, { numSamples: 10 }), 'thermo-ngd': () => thermodynamicNgd(model), kfac: () => kfac(model),
    };
    assert.ok(factories[name], `the test knows how to build ${name} bare`);
    const bare = factories[name]!();
    const bareSettings = bare.settings as Record<string, unknown>;
    bare.dispose();
    const flat: Record<string, unknown> = { ...settings, ...(settings.reuse as object | null ?? {}), ...(settings.solver as object) };
    for (const [flag, spec] of Object.entries(e.options)) {
      const key = camel(flag);
      const settingKey = Object.entries(alias).find(([, k]) => k === key)?.[0] ?? key;
      if (spec.default === undefined || !(settingKey in flat) || e.tasks['mnist-mlp'][key] !== undefined) continue;
      assert.deepEqual(flat[settingKey], spec.default, `${name}: --${flag} default ${String(spec.default)}, built ${String(flat[settingKey])}`);
      {
        const b = bareSettings;
        const bflat: Record<string, unknown> = { ...b, ...(b.reuse as object | null ?? {}), ...(b.solver as object) };
        assert.deepEqual(bflat[settingKey], spec.default, `${name}: the factory's own default for ${settingKey}`);
      }
    }
  }
  assert.throws(() => resolveValues('ngd', 'mnist-mlp', { statDecay: 0.9 }), /--stat-decay is not an option of ngd with sgd/);
  assert.throws(() => resolveValues('kfac', 'mnist-mlp', { rule: 'adamw', momentum: 0.5 }), /--momentum is not an option of kfac with adamw/);
  model.dispose();
});

test('a method\'s settings go into its state dict; a mismatched one is refused by name', () => leakCheck(() => scope(() => {
  const g = new T.Generator(43);
  const model = tinyMlp(g);
  const b = batch(g, [4], 6);
  const ctx = { model, numSamples: 6, batchesPerEpoch: 1, batchSize: 6, seed: 0 };
  const opt = buildMethod('fast-ief', ctx, resolveValues('fast-ief', 'mnist-mlp', { damping: 3, rule: 'adamw' }));
  assert.ok(opt instanceof AdamW);
  opt.step({ perSampleLoss: lossOf(model, b), sampleIds: b.ids, epoch: 0 });
  const sd = opt.stateDict();
  opt.dispose();
  const extra = sd.meta.extra!;
  assert.equal(extra.preconditioner, 'fast-ief');
  const s = extra.settings as Record<string, unknown>;
  assert.equal(s.damping, 3);
  assert.equal(s.rhs, 'ief');
  assert.equal(s.mode, 'layerwise');
  assert.deepEqual(s.solver, { name: 'cholesky' });
  assert.equal((s.reuse as Record<string, unknown>).key, 'sample');
  // The same method restores its damping from the dict; another method is refused.
  const again = buildMethod('fast-ief', ctx, resolveValues('fast-ief', 'mnist-mlp', { damping: 5, rule: 'adamw' }));
  again.loadStateDict(sd);
  assert.equal((again.preconditioner!.settings as Record<string, unknown>).damping, 3);
  again.dispose();
  const other = buildMethod('fngd', ctx, resolveValues('fngd', 'mnist-mlp', { rule: 'adamw' }));
  assert.throws(() => other.loadStateDict(sd), /from a 'fast-ief' preconditioner, this optimizer uses 'fngd'/);
  other.dispose();
  const plain = new AdamW(model.parameters(), {});
  assert.throws(() => plain.loadStateDict(sd), /this optimizer has no preconditioner/);
  plain.dispose();
  for (const t of sd.tensors.values()) t.dispose();
  free(b);
  model.dispose();
})));

test('a choice option out of its choices names the method, the option, every choice and the value given', () => scope(() => {
  const model = tinyMlp(new T.Generator(5));
  const cases: [() => unknown, RegExp][] = [
    [() => ngd(model, { mode: 'diag' as never }), /^NGD: option 'mode' must be 'layerwise' or 'global', got 'diag'$/],
    [() => ngd(model, { normalize: 'l2' as never }), /^NGD: option 'normalize' must be 'sum' or 'none', got 'l2'$/],
    [() => new SampleSpacePreconditioner(model, { rhs: 3 as never, name: 'x', label: 'X' }), /option 'rhs' must be 'ones', 'ief' or 'uniform', got 3$/],
    [() => ngd(model, { dampingMode: 'rel' as never }), /^NGD: option 'dampingMode' must be 'absolute' or 'relative', got 'rel'$/],
    [() => fngd(model, { key: 'id' as never, numSamples: 8, batchesPerEpoch: 2, batchSize: 4 }), /^FNGD: option 'key' must be 'sample' or 'slot', got 'id'$/],
    [() => thermodynamicNgd(model, { warmStart: 'cold' as never }), /option 'warmStart' must be 'uniform' or 'previous', got 'cold'$/],
    [() => kfac(model, { embeddings: 2 as never }), /^KFAC: option 'embeddings' must be 'kfac' or 'first-order', got 2$/],
  ];
  for (const [make, message] of cases) assert.throws(make, (e: unknown) => e instanceof RangeError && message.test(e.message), String(message));
}));
