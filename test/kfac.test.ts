// KFAC against the dense Kronecker formula, in float64: A and G are built here from the layers'
// recorded inputs and the per-sample output gradients (autograd of sum_i l_i w.r.t. the layer output),
// the damped Kronecker product (A + pi sqrt(lambda) I) (x) (G + sqrt(lambda)/pi I) is materialized
// with an outer-product einsum and solved densely against vec(mean gradient). Also: running averages,
// KL clipping, fallback parameters, NaN losses, the state-dict round trip and tensor leaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cat, einsum, eye, F, grad, linalg, liveTensors, manualSeed, noGrad, randn, scope, tensor, zeros, type Tensor } from '../src/tensor/index.js';
import { Conv2d, crossEntropyPerSample, Embedding, LayerNorm, Linear, Module } from '../src/nn/index.js';
import { SGD, type ParamGroupInput, type SGDHyper, type SGDOptions, type StepStats } from '../src/optim/index.js';
import { kfac, type KfacOptions, type KfacPreconditioner } from '../src/precondition/index.js';
import { setWarningHandler } from '../src/warnings.js';
import { assertRelClose as close, leakCheck, relErr } from './helpers.js';

const f64 = { dtype: 'float64' as const };

type KFACOptions = SGDOptions & KfacOptions & { params?: Tensor[] | ParamGroupInput<SGDHyper>[] };
type KFAC = SGD & { pre: KfacPreconditioner };
/** KFAC with SGD's rule: the rule's options (and parameter groups) go to SGD, the rest to KFAC. */
function KFAC(model: Module, o: KFACOptions): KFAC {
  const { lr, momentum, dampening, weightDecay, nesterov, params, ...rest } = o;
  const pre = kfac(model, rest);
  try {
    return Object.assign(new SGD(params ?? model.parameters(), { lr, momentum, dampening, weightDecay, nesterov, preconditioner: pre }), { pre });
  } catch (e) {
    pre.dispose();
    throw e;
  }
}
const TOL = 1e-10;
const B = 6;


/** What the test needs of a layer's run: its input, as rows a (bias 1 appended), and its output. */
interface Run {
  layer: Linear | Conv2d;
  /** [B, T, din] input features per position (conv: im2col patches). */
  a: Tensor;
  output: Tensor;
}
type Net = Module & { forward(x: Tensor): Tensor; runs: Map<string, Run> };

/** Linear(din, hidden), tanh, Linear(hidden, 3). */
class Mlp extends Module {
  runs = new Map<string, Run>();
  readonly l1: Linear;
  readonly l2: Linear;
  constructor(din = 4, hidden = 5) {
    super();
    this.l1 = this.registerModule('l1', new Linear(din, hidden, f64));
    this.l2 = this.registerModule('l2', new Linear(hidden, 3, f64));
  }
  forward(x: Tensor): Tensor {
    const z1 = this.l1.forward(x);
    const h = z1.tanh();
    const z2 = this.l2.forward(h);
    this.runs.set('l1', { layer: this.l1, a: x.unsqueeze(1), output: z1 });
    this.runs.set('l2', { layer: this.l2, a: h.unsqueeze(1), output: z2 });
    return z2;
  }
}

// The wide MLP, Mlp(12, 10): wide enough for the low-rank route (kfac.ts lowRankFactors) in l1:
// n = B = 6 rows against dout 10, dA 13: 6 (100 + 169 + 130) < 130 (10 + 13). l2 stays dense.

class Cnn extends Module {
  runs = new Map<string, Run>();
  readonly c1 = this.registerModule('c1', new Conv2d(2, 3, 3, { ...f64, padding: 1 }));
  readonly fc = this.registerModule('fc', new Linear(48, 3, f64));
  forward(x: Tensor): Tensor {
    const z1 = this.c1.forward(x);
    const h = z1.relu().flatten(1);
    const z2 = this.fc.forward(h);
    // Patches in the weight's (cin, kh, kw) order: [B, T, cin kh kw].
    this.runs.set('c1', { layer: this.c1, a: F.unfold(x, [3, 3], { padding: [1, 1] }).transpose(1, 2), output: z1 });
    this.runs.set('fc', { layer: this.fc, a: h.unsqueeze(1), output: z2 });
    return z2;
  }
}

interface Batch { x: Tensor; y: Tensor }
function mlpBatch(seed: number): Batch {
  manualSeed(seed);
  return { x: randn([B, 4], f64), y: tensor(BigInt64Array.from([0n, 1n, 2n, 2n, 1n, 0n])) };
}
function wideBatch(seed: number): Batch {
  manualSeed(seed);
  return { x: randn([B, 12], f64), y: tensor(BigInt64Array.from([0n, 1n, 2n, 2n, 1n, 0n])) };
}
function cnnBatch(seed: number): Batch {
  manualSeed(seed);
  return { x: randn([B, 2, 4, 4], f64), y: tensor(BigInt64Array.from([2n, 0n, 1n, 1n, 0n, 2n])) };
}

function stepOn(opt: KFAC, model: Net, batch: Batch): StepStats {
  return scope(() => opt.step({ perSampleLoss: crossEntropyPerSample(model.forward(batch.x), batch.y), sampleIds: new Int32Array(B), epoch: 0 }));
}

/** Batch factors by definition: A = E_{i,t}[a a^T] (trailing 1), G = (1/B) sum_{i,t} d d^T. */
function factorsByDefinition(run: Run, delta: Tensor): { A: Tensor; G: Tensor } {
  const [b, t] = run.a.shape as [number, number, number];
  const rows = run.a.reshape(b * t, -1);
  const a = run.layer.bias === null ? rows : cat([rows, zeros([b * t, 1], f64).add(1)], 1);
  // Output gradients as positions: [B T, dout] (conv: channels last).
  const d = delta.dim === 4 ? delta.flatten(2).transpose(1, 2).reshape(b * t, -1) : delta;
  return { A: a.t().mm(a).div(b * t), G: d.t().mm(d).div(b) };
}

/** vec(V) = ((A + pi sqrt(l) I) (x) (G + sqrt(l)/pi I))^-1 vec(X), dense; X [dout, din(+1)], vec stacks columns. */
function denseKron(A: Tensor, G: Tensor, X: Tensor, lambda: number): Tensor {
  const nA = A.size(0);
  const nG = G.size(0);
  const pi = Math.sqrt((A.diagonal().sum().item() / nA) / (G.diagonal().sum().item() / nG));
  const Ad = A.add(eye(nA, f64).mul(pi * Math.sqrt(lambda)));
  const Gd = G.add(eye(nG, f64).mul(Math.sqrt(lambda) / pi));
  // kron(Ad, Gd)[(i nG + k), (j nG + l)] = Ad[i, j] Gd[k, l], matching column-stacked vec.
  const K = einsum('ij,kl->ikjl', Ad, Gd).reshape(nA * nG, nA * nG);
  const v = linalg.solve(K, X.t().reshape(-1, 1));
  return v.reshape(nA, nG).t();
}

/** The mean gradient of every layer as [dout, din(+1)] (bias last) and the batch factors. */
function reference(model: Net, loss: Tensor): Map<string, { X: Tensor; A: Tensor; G: Tensor }> {
  const runs = [...model.runs];
  const deltas = grad(loss.sum(), runs.map(([, r]) => r.output), { retainGraph: true });
  const out = new Map<string, { X: Tensor; A: Tensor; G: Tensor }>();
  runs.forEach(([name, r], i) => {
    const ps = r.layer.bias === null ? [r.layer.weight] : [r.layer.weight, r.layer.bias];
    const g = grad(loss.mean(), ps, { retainGraph: true });
    const w = g[0]!.reshape(g[0]!.size(0), -1);
    const X = g[1] === undefined ? w : cat([w, g[1]!.unsqueeze(1)], 1);
    out.set(name, { X, ...factorsByDefinition(r, deltas[i]!) });
  });
  return out;
}

/** The direction KFAC left in .grad, as [dout, din(+1)]. */
function directionOf(layer: Linear | Conv2d): Tensor {
  const w = layer.weight.grad!;
  const flat = w.reshape(w.size(0), -1);
  return layer.bias === null ? flat : cat([flat, layer.bias.grad!.unsqueeze(1)], 1);
}

const exact: Omit<KFACOptions, 'lr'> = { momentum: 0, weightDecay: 0, covUpdateEvery: 1, invUpdateEvery: 1, klClip: null };

for (const [label, make, batch] of [['MLP', () => new Mlp(), mlpBatch], ['wide MLP (low-rank route)', () => new Mlp(12, 10), wideBatch], ['CNN', () => new Cnn(), cnnBatch]] as const) {
  test(`${label}: the preconditioned gradient equals the dense Kronecker solve, first batch and running average`, () => leakCheck(() => {
    manualSeed(1);
    const model: Net = make();
    const lambda = 1e-2;
    const decay = 0.6;
    const lr = 0.1;
    const opt = KFAC(model, { lr, damping: lambda, statDecay: decay, ...exact });
    assert.deepEqual(opt.pre.fallbackParams(), []);
    let previous: Map<string, { A: Tensor; G: Tensor }> | null = null;
    for (const seed of [21, 22]) {
      scope(() => {
        const { x, y } = batch(seed);
        const loss = crossEntropyPerSample(model.forward(x), y);
        const ref = reference(model, loss);
        const before = model.parameters().map((p) => p.detach().clone());
        const stats = opt.step({ perSampleLoss: loss, sampleIds: new Int32Array(B), epoch: 0 });
        assert.equal(stats.nu, 1);
        assert.ok(Math.abs(stats.loss - loss.detach().mean().item()) < 1e-14);
        const running = new Map<string, { A: Tensor; G: Tensor }>();
        for (const [name, r] of ref) {
          // Step 1 uses the batch factors as they are; step 2 the running average with `decay`.
          const prev = previous?.get(name);
          const A = prev === undefined ? r.A : prev.A.mul(decay).add(r.A, 1 - decay);
          const G = prev === undefined ? r.G : prev.G.mul(decay).add(r.G, 1 - decay);
          running.set(name, { A, G });
          const want = denseKron(A, G, r.X, lambda);
          close(directionOf(model.runs.get(name)!.layer), want, `${label} ${name} step ${seed - 20}`);
        }
        // SGD's rule on the direction: p <- p - lr V.
        model.parameters().forEach((p, i) => close(p.detach(), before[i]!.sub(p.grad!, lr), `${label} update ${i}`, 1e-13));
        previous = running;
        return running; // escapes to the loop's scope
      });
    }
    opt.dispose();
    model.dispose();
  }));
}

test('KL clipping: nu = min(1, sqrt(klClip / sum_p lr_p^2 <V_p, grad_p>)) scales every preconditioned gradient', () => leakCheck(() => {
  const klClip = 1e-4;
  // Weights at lr 0.5, biases (their own group) at 0.25: each parameter's term uses its group's lr.
  const lrOf = (name: string): number => (name.endsWith('bias') ? 0.25 : 0.5);
  const run = (clip: number | null): { dirs: Tensor[]; nu: number; vg: number } => {
    manualSeed(3);
    const model = new Mlp();
    const named = model.namedParameters();
    const groups = [0.5, 0.25].map((lr) => ({ lr, params: named.filter(([n]) => lrOf(n) === lr).map(([, p]) => p) }));
    const opt = KFAC(model, { lr: 1, damping: 1e-2, ...exact, klClip: clip, params: groups });
    const r = scope(() => {
      const { x, y } = mlpBatch(31);
      const loss = crossEntropyPerSample(model.forward(x), y);
      const mean = grad(loss.mean(), named.map(([, p]) => p), { retainGraph: true });
      const nu = opt.step({ perSampleLoss: loss, sampleIds: new Int32Array(B), epoch: 0 }).nu!;
      const dirs = named.map(([, p]) => p.grad!);
      const vg = named.reduce((s, [n], i) => s + lrOf(n) ** 2 * dirs[i]!.mul(mean[i]!).sum().item(), 0);
      return { dirs, nu, vg };
    });
    opt.dispose();
    model.dispose();
    return r;
  };
  const free = run(null);
  const clipped = run(klClip);
  const nu = Math.min(1, Math.sqrt(klClip / free.vg));
  assert.ok(nu < 0.5, `the test should clip (nu = ${nu})`);
  assert.equal(free.nu, 1);
  assert.ok(Math.abs(clipped.nu - nu) <= 1e-12 * nu, `nu ${clipped.nu}, expected ${nu}`);
  clipped.dirs.forEach((d, i) => close(d, free.dirs[i]!.mul(nu), `clipped direction ${i}`));
  // A generous bound does not clip.
  assert.equal(run(1e6).nu, 1);
}));

class Mixed extends Module {
  readonly emb = this.registerModule('emb', new Embedding(7, 4, f64));
  readonly ln = this.registerModule('ln', new LayerNorm(4, f64));
  readonly out = this.registerModule('out', new Linear(4, 3, f64));
  forward(x: Tensor): Tensor {
    return this.out.forward(this.ln.forward(this.emb.forward(x)).tanh());
  }
}

test('fallback: LayerNorm parameters (and embeddings under embeddings: first-order) keep the mean gradient, listed once at the first step', () => leakCheck(() => {
  for (const [embeddings, fallback] of [['kfac', ['ln.weight', 'ln.bias']], ['first-order', ['emb.weight', 'ln.weight', 'ln.bias']]] as const) {
    manualSeed(4);
    const model = new Mixed();
    const messages: string[] = [];
    // Library code reports through the warning hook (the CLI prints it on stderr).
    const previous = setWarningHandler((m) => messages.push(`${m}\n`));
    try {
      const opt = KFAC(model, { lr: 0.1, ...exact, embeddings });
      assert.deepEqual(opt.pre.fallbackParams(), fallback);
      assert.deepEqual(messages, [], 'reported when it steps (a state dict loaded before may change the list)');
      const step = (check: boolean): void => scope(() => {
        const x = tensor(BigInt64Array.from([1n, 3n, 3n, 0n, 6n, 2n]));
        const loss = crossEntropyPerSample(model.forward(x), tensor(BigInt64Array.from([0n, 1n, 2n, 2n, 1n, 0n])));
        const params = model.parameters();
        const mean = grad(loss.mean(), params, { retainGraph: true });
        opt.step({ perSampleLoss: loss, sampleIds: new Int32Array(B), epoch: 0 });
        if (check) {
          model.namedParameters().forEach(([n, p], i) => {
            if (!(fallback as readonly string[]).includes(n)) assert.ok(relErr(p.grad!, mean[i]!) > 1e-3, `${embeddings}: ${n} should be preconditioned`);
            else close(p.grad!, mean[i]!, `${embeddings}: ${n} fallback gradient`, 1e-13);
          });
        }
      });
      step(true);
      step(false);
      assert.deepEqual(messages, [`KFAC: first-order fallback for ${fallback.length} parameters: ${fallback.join(', ')}\n`]);
      opt.dispose();
    } finally {
      setWarningHandler(previous);
    }
    model.dispose();
  }
}));

/** Sentences of T tokens (0 is padding) through an embedding, a LayerNorm, tanh, a mean over positions and a Linear. */
class Seq extends Module {
  readonly emb = this.registerModule('emb', new Embedding(7, 4, { ...f64, paddingIdx: 0 }));
  readonly ln = this.registerModule('ln', new LayerNorm(4, f64));
  readonly out = this.registerModule('out', new Linear(4, 3, f64));
  /** The embedding's last output [B, T, 4]. */
  y: Tensor | null = null;
  forward(x: Tensor): Tensor {
    this.y = this.emb.forward(x);
    return this.out.forward(this.ln.forward(this.y).tanh().mean(1));
  }
}
const SEQ_Y = tensor(BigInt64Array.from([0n, 1n, 2n, 2n, 1n, 0n]));
/** B sentences of 3 tokens with padding at the ends; token 5 never occurs (a = 0 but for damping). */
function seqTokens(seed: number): Tensor {
  const rows = [[1, 3, 3], [2, 6, 0], [4, 1, 0], [3, 0, 0], [6, 2, 4], [1, 1, 2]];
  const shift = seed % 3;
  return tensor(BigInt64Array.from(rows.flatMap((r, i) => (i % 2 === 0 ? r : [...r.slice(shift), ...r.slice(0, shift)].map((t) => t)).map(BigInt))), { shape: [B, 3] });
}

test('embeddings: the preconditioned table gradient equals the dense Kronecker solve with the diagonal A of token frequencies, padding left out', () => leakCheck(() => {
  manualSeed(8);
  const model = new Seq();
  const lambda = 1e-2;
  const decay = 0.6;
  const opt = KFAC(model, { lr: 0.1, damping: lambda, statDecay: decay, ...exact });
  assert.deepEqual(opt.pre.fallbackParams(), ['ln.weight', 'ln.bias']);
  let previous: { A: Tensor; G: Tensor } | null = null;
  for (const seed of [1, 2]) {
    previous = scope(() => {
      const x = seqTokens(seed);
      const loss = crossEntropyPerSample(model.forward(x), SEQ_Y);
      const y = model.y!;
      const [b, t] = x.shape as [number, number];
      // By definition: a_it one-hot rows of the non-padding tokens, A = (1/(B T)) sum a a^T (diagonal),
      // G = (1/B) sum over non-padding positions of d d^T, d = d (sum_i l_i) / d y_it.
      const keepRows = x.reshape(-1).ne(0).to('float64').unsqueeze(1);
      const onehot = F.oneHot(x.reshape(-1), 7).to('float64').mul(keepRows);
      const d = grad(loss.sum(), [y], { retainGraph: true })[0]!.reshape(b * t, 4).mul(keepRows);
      const Abatch = onehot.t().mm(onehot).div(b * t);
      const Gbatch = d.t().mm(d).div(b);
      assert.equal(Abatch.sub(Abatch.mul(eye(7, f64))).abs().max().item(), 0, 'one-hot rows give a diagonal A');
      const A = previous === null ? Abatch : previous.A.mul(decay).add(Abatch, 1 - decay);
      const G = previous === null ? Gbatch : previous.G.mul(decay).add(Gbatch, 1 - decay);
      // The table E [7, 4] is W^T of a Linear on one-hot inputs: X = grad_W = grad_E^T [4, 7].
      const gradE = grad(loss.mean(), [model.emb.weight], { retainGraph: true })[0]!;
      const want = denseKron(A, G, gradE.t(), lambda).t();
      opt.step({ perSampleLoss: loss, sampleIds: new Int32Array(B), epoch: 0 });
      close(model.emb.weight.grad!, want, `embedding direction, step ${seed}`);
      assert.equal(model.emb.weight.grad!.select(0, 0).abs().max().item(), 0, 'the padding row gets nothing');
      return { A, G };
    });
  }
  opt.dispose();
  model.dispose();
}));

test('embeddings: state dict round trip (diagonal A saved as [V]), and state saved before embeddings were covered resumes them first order', () => leakCheck(() => {
  const o: KFACOptions = { lr: 0.3, momentum: 0.9, damping: 1e-2, statDecay: 0.8, covUpdateEvery: 2, invUpdateEvery: 3, klClip: null };
  const run = (embeddings: 'kfac' | 'first-order', split: boolean, dropSetting = false): Tensor[] => {
    manualSeed(9);
    let model = new Seq();
    let opt = KFAC(model, { ...o, embeddings });
    const step = (seed: number): void => {
      scope(() => opt.step({ perSampleLoss: crossEntropyPerSample(model.forward(seqTokens(seed)), SEQ_Y), sampleIds: new Int32Array(B), epoch: 0 }));
    };
    for (const seed of [1, 2, 3]) step(seed);
    if (split) {
      const sd = opt.stateDict();
      if (embeddings === 'kfac') {
        assert.deepEqual(sd.tensors.get('extra.emb.A')!.shape, [7]);
        assert.deepEqual(sd.tensors.get('extra.emb.Ainv')!.shape, [7]);
        assert.deepEqual(sd.tensors.get('extra.emb.G')!.shape, [4, 4]);
      } else {
        assert.equal(sd.tensors.has('extra.emb.A'), false);
      }
      // Older state dicts have no `embeddings` setting.
      if (dropSetting) delete (sd.meta as { extra: { settings: Record<string, unknown> } }).extra.settings.embeddings;
      const weights = new Map([...model.stateDict()].map(([k, t]) => [k, noGrad(() => t.clone())] as const));
      opt.dispose();
      model.dispose();
      manualSeed(99);
      model = new Seq();
      opt = KFAC(model, { ...o, embeddings: 'kfac' }); // the state dict's setting wins
      model.loadStateDict(weights);
      opt.loadStateDict(sd);
      for (const t of [...weights.values(), ...sd.tensors.values()]) t.dispose();
      assert.equal(opt.pre.settings.embeddings, embeddings);
      assert.deepEqual(opt.pre.fallbackParams(), embeddings === 'kfac' ? ['ln.weight', 'ln.bias'] : ['emb.weight', 'ln.weight', 'ln.bias']);
    }
    for (const seed of [4, 5, 6]) step(seed);
    const out = model.parameters().map((p) => noGrad(() => p.detach().clone()));
    opt.dispose();
    model.dispose();
    return out;
  };
  const same = (a: Tensor[], b: Tensor[], what: string): void => a.forEach((p, i) => close(p, b[i]!, `${what}: parameter ${i}`, 0));
  const whole = run('kfac', false);
  same(run('kfac', true), whole, 'kfac, saved and loaded');
  const firstOrder = run('first-order', false);
  same(run('first-order', true, true), firstOrder, 'first-order state without the setting');
  assert.ok(relErr(whole[0]!, firstOrder[0]!) > 1e-6, 'the two settings train the table differently');
  for (const t of [...whole, ...firstOrder]) t.dispose();
}));

test('a NaN loss throws before any parameter or factor changes', () => leakCheck(() => {
  manualSeed(5);
  const model = new Mlp();
  const opt = KFAC(model, { lr: 0.1, ...exact });
  stepOn(opt, model, mlpBatch(51));
  const snapshot = (): number[] => scope(() => [...model.parameters().map((p) => p.detach().clone()), ...opt.stateDict().tensors.values()].flatMap((t) => t.toArray()));
  const before = snapshot();
  scope(() => {
    const { x, y } = mlpBatch(52);
    const loss = crossEntropyPerSample(model.forward(x), y);
    const bad = loss.add(tensor([0, 0, Number.NaN, 0, 0, 0], f64));
    assert.throws(() => opt.step({ perSampleLoss: bad, sampleIds: new Int32Array(B), epoch: 0 }), /loss is NaN/);
  });
  assert.deepEqual(snapshot(), before);
  stepOn(opt, model, mlpBatch(53)); // and it carries on
  opt.dispose();
  model.dispose();
}));

test('state dict: 3 steps, save, load into a fresh optimizer, 3 more equals 6 uninterrupted', () => leakCheck(() => {
  // Factor updates every 2 steps, inverses every 3 (not a multiple), momentum, weight decay, KL clipping on.
  const o: KFACOptions = { lr: 0.3, momentum: 0.9, weightDecay: 1e-3, damping: 1e-2, statDecay: 0.8, covUpdateEvery: 2, invUpdateEvery: 3, klClip: 1e-3 };
  const batches = [61, 62, 63, 64, 65, 66].map(mlpBatch);
  const fresh = (): { model: Mlp; opt: KFAC } => {
    manualSeed(6);
    const model = new Mlp();
    return { model, opt: KFAC(model, o) };
  };
  const a = fresh();
  const nus = batches.map((b) => stepOn(a.opt, a.model, b).nu!);
  assert.ok(nus.some((nu) => nu < 1), `KL clipping should act at least once: ${nus}`);

  const b = fresh();
  for (const batch of batches.slice(0, 3)) stepOn(b.opt, b.model, batch);
  const sd = b.opt.stateDict();
  const weights = new Map([...b.model.stateDict()].map(([k, t]) => [k, noGrad(() => t.clone())] as const));
  b.opt.dispose();
  b.model.dispose();

  manualSeed(99); // a different initialization, overwritten by the load
  const model = new Mlp();
  const opt = KFAC(model, { ...o, damping: 1, covUpdateEvery: 5 });
  model.loadStateDict(weights);
  opt.loadStateDict(sd);
  for (const t of [...weights.values(), ...sd.tensors.values()]) t.dispose();
  assert.equal(opt.pre.settings.damping, 1e-2);
  assert.equal(opt.pre.settings.covUpdateEvery, 2);
  assert.equal(opt.stepCount, 3);
  const resumed = batches.slice(3).map((batch) => stepOn(opt, model, batch).nu!);
  assert.deepEqual(resumed, nus.slice(3));
  model.parameters().forEach((p, i) => close(p.detach(), a.model.parameters()[i]!.detach(), `parameter ${i}`, 0));
  // The loaded state dict is complete: another save is the same as the uninterrupted one.
  scope(() => {
    const x = opt.stateDict();
    const y = a.opt.stateDict();
    assert.deepEqual(x.meta, y.meta);
    assert.deepEqual([...x.tensors.keys()], [...y.tensors.keys()]);
    for (const [k, t] of x.tensors) assert.equal(relErr(t, y.tensors.get(k)!), 0, k);
    for (const t of [...x.tensors.values(), ...y.tensors.values()]) t.dispose();
  });
  for (const d of [opt, model, a.opt, a.model]) d.dispose();
}));

test('options are validated', () => {
  manualSeed(7);
  const model = new Mlp();
  assert.throws(() => KFAC(model, { lr: 0.1, damping: 0 }), /damping/);
  assert.throws(() => KFAC(model, { lr: 0.1, statDecay: 1 }), /statDecay/);
  assert.throws(() => KFAC(model, { lr: 0.1, covUpdateEvery: 1.5 }), /covUpdateEvery/);
  assert.throws(() => KFAC(model, { lr: 0.1, invUpdateEvery: 0 }), /invUpdateEvery/);
  assert.throws(() => KFAC(model, { lr: 0.1, klClip: -1 }), /klClip/);
  assert.throws(() => KFAC(model, { lr: 0.1, embeddings: 'diagonal' as 'kfac' }), /option 'embeddings' must be 'kfac' or 'first-order', got 'diagonal'/);
  const other = new Linear(2, 2, f64);
  assert.throws(() => KFAC(model, { lr: 0.1, params: other.parameters() }), /not a parameter of the model/);
  other.dispose();
  model.dispose();
});

test('cost period: KFAC\'s step cost repeats with its factor updates (benchmarks time whole periods)', () => {
  manualSeed(7);
  const model = new Mlp();
  const k = KFAC(model, { lr: 0.1, covUpdateEvery: 7 });
  assert.equal(k.costPeriod, 7);
  k.dispose();
  const d = KFAC(model, { lr: 0.1 });
  assert.equal(d.costPeriod, 10, 'the default factor interval');
  d.dispose();
  assert.equal(new SGD(model.parameters(), { lr: 0.1 }).costPeriod, 1, 'a first-order step costs the same every time');
  model.dispose();
});
