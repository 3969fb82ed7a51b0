// The curvature engine against brute force, in float64: B separate backward passes of l_i give
// every per-sample gradient g_i exactly (U), from which Grams, weighted sums, per-sample gradients
// and KFAC factors are formed by their definitions. Relative errors must stay below 1e-10.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cat, eye, F, grad, linalg, liveTensors, manualSeed, noGrad, randn, registerGradHook, scope, stack, tensor, zeros, type Tensor,
} from '../src/tensor/index.js';
import {
  BatchNorm2d, Conv2d, crossEntropyPerSample, Embedding, LayerNorm, Linear, Module, resnetSmall, transformerSeq2Seq,
} from '../src/nn/index.js';
import {
  CurvatureEngine, gemmNT, gemmTN, layerGram, planGram, solveCoefficients, solveCoefficientsBatched, solveCoefficientsEx, type Capture, type GramMethod, type GramPlan, type LayerCurvature,
} from '../src/curvature/index.js';
import { assertRelClose as close, leakCheck, relErr } from './helpers.js';

const f64 = { dtype: 'float64' as const };
const TOL = 1e-10;


/** U per parameter, [B, ...shape]: row i from a backward pass of l_i alone (the graph is kept). */
function bruteForce(loss: Tensor, params: Tensor[]): Tensor[] {
  const b = loss.size(0);
  const rows: Tensor[][] = [];
  for (let i = 0; i < b; i++) {
    const g = grad(loss.select(0, i), params, { retainGraph: true, allowUnused: true });
    rows.push(g.map((t, k) => t ?? zeros(params[k]!.shape, f64)));
  }
  return params.map((_, k) => stack(rows.map((r) => r[k]!)));
}

/** sum over the given U's of U U^T. */
function gramOf(us: Tensor[]): Tensor {
  let k: Tensor | null = null;
  for (const u of us) {
    const m = u.reshape(u.size(0), -1);
    const p = m.mm(m.t());
    k = k === null ? p : k.add(p);
  }
  return k!;
}

/** sum_i a_i U_i: the weighted sum of per-sample gradients U [B, ...] by its definition. */
function weightedSum(u: Tensor, a: Tensor): Tensor {
  return u.mul(a.reshape([u.size(0), ...new Array<number>(u.dim - 1).fill(1)])).sum(0);
}

type Net = Module & { forward(x: Tensor): Tensor; trace: Map<string, { input: Tensor; output: Tensor }> };

/** One position per sample (the Hadamard form): Linear with bias, Linear without. */
class MlpNet extends Module {
  trace = new Map<string, { input: Tensor; output: Tensor }>();
  readonly l1 = this.registerModule('l1', new Linear(6, 7, f64));
  readonly l2 = this.registerModule('l2', new Linear(7, 3, { ...f64, bias: false }));
  forward(x: Tensor): Tensor {
    const z = this.l1.forward(x);
    const h = z.tanh();
    const out = this.l2.forward(h);
    this.trace.set('l1', { input: x, output: z });
    this.trace.set('l2', { input: h, output: out });
    return out;
  }
}

/** A Linear over sequences with LayerNorm (uncovered), and a bias-free Linear used twice. */
class SeqNet extends Module {
  trace = new Map<string, { input: Tensor; output: Tensor }>();
  readonly l1 = this.registerModule('l1', new Linear(6, 8, f64));
  readonly ln = this.registerModule('ln', new LayerNorm(8, f64));
  readonly l2 = this.registerModule('l2', new Linear(8, 3, { ...f64, bias: false }));
  forward(x: Tensor): Tensor {
    const z = this.l1.forward(x);
    this.trace.set('l1', { input: x, output: z });
    const h = this.ln.forward(z).tanh();
    return this.l2.forward(h).add(this.l2.forward(h.mul(0.5).sin()));
  }
}

/**
 * Conv with stride 2 and padding 1 (bias; output larger than input), conv with dilation 2 (no bias;
 * output smaller), then a Linear.
 */
class ConvNet extends Module {
  trace = new Map<string, { input: Tensor; output: Tensor }>();
  readonly c1 = this.registerModule('c1', new Conv2d(1, 5, 3, { ...f64, stride: 2, padding: 1 }));
  readonly c2 = this.registerModule('c2', new Conv2d(5, 4, 3, { ...f64, dilation: 2, padding: 2, bias: false }));
  readonly fc = this.registerModule('fc', new Linear(64, 3, f64));
  forward(x: Tensor): Tensor {
    const z1 = this.c1.forward(x);
    const h = z1.tanh();
    const z2 = this.c2.forward(h);
    this.trace.set('c1', { input: x, output: z1 });
    this.trace.set('c2', { input: h, output: z2 });
    return this.fc.forward(z2.relu().flatten(1));
  }
}

/** Two embeddings (one with padding index 0) over repeated tokens, then a Linear per position. */
class EmbNet extends Module {
  trace = new Map<string, { input: Tensor; output: Tensor }>();
  readonly e1 = this.registerModule('e1', new Embedding(7, 4, { ...f64, paddingIdx: 0 }));
  readonly e2 = this.registerModule('e2', new Embedding(5, 4, f64));
  readonly out = this.registerModule('out', new Linear(4, 3, f64));
  forward(x: Tensor): Tensor {
    const z = this.e1.forward(x);
    this.trace.set('e1', { input: x, output: z });
    return this.out.forward(z.add(this.e2.forward(x.remainder(5))).tanh());
  }
}

function layerParams(m: Module, name: string): Tensor[] {
  return m.namedParameters().filter(([n]) => n.startsWith(`${name}.`)).map(([, p]) => p);
}

interface Case {
  model: Net;
  x: Tensor;
  y: Tensor;
  layers: string[];
}

function mlpCase(): Case {
  manualSeed(10);
  return { model: new MlpNet(), x: randn([6, 6], f64), y: tensor(BigInt64Array.from([0n, 2n, 1n, 1n, 0n, 2n])), layers: ['l1', 'l2'] };
}
function seqCase(): Case {
  manualSeed(11);
  const model = new SeqNet();
  return { model, x: randn([5, 4, 6], f64), y: tensor(BigInt64Array.from([0, 1, 2, 0, 2, 2, 1, 0, 1, 1, 0, 2, 2, 0, 1, 0, 1, 2, 2, 1].map(BigInt)), { shape: [5, 4] }), layers: ['l1', 'l2'] };
}
function convCase(): Case {
  manualSeed(12);
  const model = new ConvNet();
  return { model, x: randn([5, 1, 8, 8], f64), y: tensor(BigInt64Array.from([2n, 0n, 1n, 1n, 0n])), layers: ['c1', 'c2', 'fc'] };
}
function embCase(): Case {
  manualSeed(13);
  const model = new EmbNet();
  // Repeated tokens within and across samples, padding (0) in several places.
  const tokens = [[1, 3, 3, 0, 0], [3, 1, 6, 6, 6], [2, 0, 2, 5, 0], [4, 4, 4, 4, 4], [6, 3, 1, 2, 0]];
  const x = tensor(BigInt64Array.from(tokens.flat().map(BigInt)), { shape: [5, 5] });
  return { model, x, y: tensor(BigInt64Array.from(tokens.flat().map((t) => BigInt(t % 3))), { shape: [5, 5] }), layers: ['e1', 'e2', 'out'] };
}

function perSampleLoss(c: Case): Tensor {
  return crossEntropyPerSample(c.model.forward(c.x), c.y);
}

/** Forward, brute force and capture in one scope. */
function withCapture(c: Case, engine: CurvatureEngine, fn: (cap: Capture, U: Map<string, Tensor[]>, uncoveredU: Tensor[], loss: Tensor) => void): void {
  scope(() => {
    const loss = perSampleLoss(c);
    const names = c.layers;
    const covered = names.map((n) => layerParams(c.model, n));
    const uncovered = engine.uncoveredParams.map((p) => p.param);
    const all = bruteForce(loss, [...covered.flat(), ...uncovered]);
    const U = new Map<string, Tensor[]>();
    let k = 0;
    names.forEach((n, i) => {
      U.set(n, all.slice(k, k + covered[i]!.length));
      k += covered[i]!.length;
    });
    const cap = engine.capture(loss);
    fn(cap, U, all.slice(k), loss);
  });
}

const METHODS: { method: GramMethod | 'auto'; label: string }[] = [
  { method: 'auto', label: 'auto' },
  { method: 'pairwise', label: 'pairwise' },
  { method: 'materialize', label: 'materialize' },
];

/** The smallest power-of-two memory bound under which `method` fits, with its plan (blocks < B). */
function tightPlan(l: LayerCurvature, method: GramMethod): GramPlan {
  for (let mb = 256; ; mb *= 2) {
    try {
      return planGram(l, mb, method);
    } catch {
      assert.ok(mb < 2 ** 30, 'no bound fits');
    }
  }
}

for (const [label, make] of [['Linear, one position per sample, with and without bias', mlpCase], ['Linear over sequences (shared, no bias) + LayerNorm', seqCase], ['Conv2d stride/padding/dilation, with and without bias', convCase], ['Embedding with repeats and padding_idx', embCase]] as const) {
  test(`Grams match brute force: ${label}`, () => leakCheck(() => {
    const c = make();
    const engine = new CurvatureEngine(c.model);
    withCapture(c, engine, (cap, U) => {
      assert.deepEqual(cap.layers.map((l) => l.name).sort(), [...c.layers].sort());
      for (const m of METHODS) {
        const grams = cap.grams({ method: m.method });
        for (const n of c.layers) close(grams.get(n)!, gramOf(U.get(n)!), `${n} Gram (${m.label})`);
      }
      // Tight memory bounds: pairwise in row blocks, materialized in chunk pairs with recomputation
      // (Linear: in blocks of weight rows).
      for (const l of cap.layers) {
        for (const method of ['pairwise', 'materialize'] as const) {
          const plan = tightPlan(l, method);
          const whole = plan.split === 'rows' ? l.params[0].size(0) : cap.batchSize;
          assert.equal(plan.split === 'rows', method === 'materialize' && l.kind === 'linear', `${l.name} ${method}: split ${plan.split}`);
          assert.ok(plan.block < whole, `${l.name} ${method}: blocks of ${plan.block} under ${plan.bytes} bytes`);
          close(layerGram(l, plan), gramOf(U.get(l.name)!), `${l.name} Gram (${method}, blocks of ${plan.block})`);
        }
      }
      const K = gramOf(c.layers.flatMap((n) => U.get(n)!));
      close(cap.globalGram(), K, 'global Gram');
    });
    engine.dispose();
    c.model.dispose();
  }));

  test(`weighted gradients, per-sample gradients and KFAC factors match: ${label}`, () => leakCheck(() => {
    const c = make();
    const engine = new CurvatureEngine(c.model);
    withCapture(c, engine, (cap, U, uncoveredU) => {
      const b = cap.batchSize;
      // One global alpha.
      const alpha = randn([b], f64);
      cap.writeWeightedGradients(alpha, { uncoveredScale: 2 });
      for (const n of c.layers) {
        layerParams(c.model, n).forEach((p, k) => close(p.grad!, weightedSum(U.get(n)![k]!, alpha), `${n} weighted gradient (global alpha), param ${k}`));
      }
      engine.uncoveredParams.forEach((p, k) => close(p.param.grad!, uncoveredU[k]!.mean(0).mul(2), `uncovered ${p.name}: 2 x mean-loss gradient`));
      // One alpha per layer.
      const per = new Map(c.layers.map((n) => [n, randn([b], f64)] as const));
      cap.writeWeightedGradients(per);
      for (const n of c.layers) {
        layerParams(c.model, n).forEach((p, k) => close(p.grad!, weightedSum(U.get(n)![k]!, per.get(n)!), `${n} weighted gradient (per-layer alpha), param ${k}`));
      }
      // The capture-free global path: every parameter (uncovered too) gets sum_i alpha_i g_i.
      const loss2 = perSampleLoss(c);
      engine.writeGlobalWeightedGradients(loss2, alpha);
      for (const n of c.layers) {
        layerParams(c.model, n).forEach((p, k) => close(p.grad!, weightedSum(U.get(n)![k]!, alpha), `${n} global one-backward weighted gradient, param ${k}`));
      }
      engine.uncoveredParams.forEach((p, k) => close(p.param.grad!, weightedSum(uncoveredU[k]!, alpha), `uncovered ${p.name}: global one-backward weighted gradient`));
      // Materialized per-sample gradients, whole and in chunks.
      for (const n of c.layers) {
        const ps = layerParams(c.model, n);
        const g = cap.perSampleGradients(n);
        close(g.weight, U.get(n)![0]!, `${n} per-sample weight gradients`);
        if (ps.length > 1) close(g.bias!, U.get(n)![1]!, `${n} per-sample bias gradients`);
        else assert.equal(g.bias, null);
        const chunks: Tensor[] = [];
        for (const ch of cap.perSampleGradientChunks(n, 2)) chunks.push(ch.weight);
        close(cat(chunks, 0), U.get(n)![0]!, `${n} per-sample gradients in chunks of 2`);
      }
      // Consumed: output gradients scaled in place where nothing else shares them. Here the seq and
      // embedding nets sum two covered outputs, so autograd hands both layers one gradient tensor:
      // scaling it in place for one would corrupt the other.
      const last = new Map(c.layers.map((n) => [n, randn([b], f64)] as const));
      cap.writeWeightedGradients(last, { consume: true });
      for (const n of c.layers) {
        layerParams(c.model, n).forEach((p, k) => close(p.grad!, weightedSum(U.get(n)![k]!, last.get(n)!), `${n} weighted gradient (consumed capture), param ${k}`));
      }
      assert.throws(() => cap.grams(), /used after dispose/);
    });
    engine.dispose();
    c.model.dispose();
  }));
}

/** d l_i / d z_i for every sample, by B backward passes, [B, ...z]. */
function bruteDeltas(loss: Tensor, z: Tensor): Tensor {
  const rows: Tensor[] = [];
  for (let i = 0; i < loss.size(0); i++) rows.push(grad(loss.select(0, i), [z], { retainGraph: true })[0]!.select(0, i));
  return stack(rows);
}

/** Conv patches by explicit slicing (no im2col): [B, T, Cin kh kw], order (c, p, q) like the weight. */
function slicePatches(x: Tensor, conv: Conv2d): Tensor {
  const [k, kw] = conv.kernelSize;
  const [s] = conv.stride;
  const [p] = conv.padding;
  const [d] = conv.dilation;
  const xp = F.pad(x, [p, p, p, p]);
  const ho = Math.floor((x.size(2) + 2 * p - d * (k - 1) - 1) / s) + 1;
  const rows: Tensor[] = [];
  for (let yy = 0; yy < ho; yy++) {
    for (let xx = 0; xx < ho; xx++) {
      const taps: Tensor[] = [];
      for (let a = 0; a < k; a++) for (let bb = 0; bb < kw; bb++) taps.push(xp.select(2, yy * s + a * d).select(2, xx * s + bb * d));
      rows.push(stack(taps, 2).reshape(x.size(0), -1));
    }
  }
  return stack(rows, 1);
}

/** A = 1/(B T) sum a a^T (a with a trailing 1 when `bias`), G = 1/B sum d d^T, from [B, T, *] tensors. */
function kfacByDefinition(a: Tensor, d: Tensor, bias: boolean): { A: Tensor; G: Tensor } {
  const [b, t] = a.shape as [number, number];
  let af = a.reshape(b * t, -1);
  if (bias) af = cat([af, zeros([b * t, 1], f64).add(1)], 1);
  const df = d.reshape(b * t, -1);
  return { A: af.t().mm(af).div(b * t), G: df.t().mm(df).div(b) };
}

test('KFAC factors match their definitions: Linear, sequence Linear, conv with stride/padding/dilation, embedding with padding', () => leakCheck(() => {
  for (const make of [mlpCase, seqCase, convCase, embCase]) {
    const c = make();
    const engine = new CurvatureEngine(c.model);
    scope(() => {
      const loss = perSampleLoss(c);
      const deltas = new Map([...c.model.trace].map(([n, r]) => [n, bruteDeltas(loss, r.output)] as const));
      const f = engine.capture(loss).kfacFactors();
      for (const [n, r] of c.model.trace) {
        const d = deltas.get(n)!;
        const got = f.get(n)!;
        const layer = c.model.namedModules().find(([m]) => m === n)![1];
        let want: { A: Tensor; G: Tensor };
        if (layer instanceof Conv2d) {
          const dd = d.reshape(d.size(0), d.size(1), -1).transpose(1, 2);
          want = kfacByDefinition(slicePatches(r.input, layer), dd, layer.bias !== null);
          assert.equal(got.positions, dd.size(1));
        } else if (layer instanceof Embedding) {
          const keep = r.input.ne(0).double();
          const x = r.input.reshape(-1);
          const counts = zeros([layer.numEmbeddings], f64).indexAdd(0, x, keep.reshape(-1));
          const dm = d.mul(keep.unsqueeze(2)).reshape(-1, layer.embeddingDim);
          want = { A: counts.div(x.size(0)), G: dm.t().mm(dm).div(d.size(0)) };
          assert.equal(got.aDiagonal, true);
        } else {
          const seq = (t: Tensor): Tensor => t.reshape(t.size(0), -1, t.size(-1));
          want = kfacByDefinition(seq(r.input), seq(d), (layer as Linear).bias !== null);
        }
        close(got.A, want.A, `${n} KFAC A`);
        close(got.G, want.G, `${n} KFAC G`);
      }
    });
    engine.dispose();
    c.model.dispose();
  }
}));

test('NGD through the engine equals the dense solve (F + lambda I) d = gbar, global and layer-wise (FNGD.md 6)', () => leakCheck(() => {
  const c = convCase();
  const engine = new CurvatureEngine(c.model);
  const lambda = 0.05;
  withCapture(c, engine, (cap, U) => {
    const b = cap.batchSize;
    const params = c.layers.flatMap((n) => layerParams(c.model, n));
    const flatU = (us: Tensor[]): Tensor => cat(us.map((u) => u.reshape(b, -1)), 1).t(); // P x B
    // Global: one Fisher over every covered parameter.
    const Ug = flatU(c.layers.flatMap((n) => U.get(n)!));
    const P = Ug.size(0);
    const Fm = Ug.mm(Ug.t()).div(b);
    const gbar = Ug.mean(1, true);
    const dGlobal = linalg.solve(Fm.add(eye(P, f64).mul(lambda)), gbar);
    const alpha = solveCoefficients(cap.globalGram(), lambda);
    cap.writeWeightedGradients(alpha);
    close(cat(params.map((p) => p.grad!.reshape(-1, 1)), 0), dGlobal, 'global NGD direction');
    // Layer-wise: block-diagonal Fisher.
    const grams = cap.grams();
    const alphas = new Map(c.layers.map((n) => [n, solveCoefficients(grams.get(n)!, lambda)] as const));
    cap.writeWeightedGradients(alphas);
    for (const n of c.layers) {
      const Ul = flatU(U.get(n)!);
      const Fl = Ul.mm(Ul.t()).div(b);
      const dl = linalg.solve(Fl.add(eye(Ul.size(0), f64).mul(lambda)), Ul.mean(1, true));
      close(cat(layerParams(c.model, n).map((p) => p.grad!.reshape(-1, 1)), 0), dl, `layer-wise NGD direction ${n}`);
    }
  });
  engine.dispose();
  c.model.dispose();
}));

// Which layers' hooks run: those whose output node the backward passes through on its way to a
// layer below (a first layer, fed by data, is reached by no such path: it is done after the backward).
for (const [label, make, hooked] of [
  ['Linear', mlpCase, ['l2']], ['Linear over sequences, used twice, + LayerNorm', seqCase, ['l2']],
  ['Conv2d', convCase, ['c2', 'fc']], ['two Embeddings summed', embCase, ['out']],
] as const) {
  test(`hook-based weighted gradients (weightedBackward) equal the after-backward ones and brute force: ${label}`, () => leakCheck(() => {
    const c = make();
    const engine = new CurvatureEngine(c.model);
    withCapture(c, engine, (cap, U, uncoveredU) => {
      const b = cap.batchSize;
      const per = new Map(c.layers.map((n) => [n, randn([b], f64)] as const));
      cap.writeWeightedGradients(per, { uncoveredScale: 3, consume: true });
      const after = c.model.parameters().map((p) => p.grad!.clone());
      const where = engine.weightedBackward(perSampleLoss(c), per, { uncoveredScale: 3 });
      assert.deepEqual(where.inBackward.sort(), [...hooked].sort(), 'layers done inside the backward');
      assert.deepEqual([...where.inBackward, ...where.afterBackward].sort(), [...c.layers].sort());
      c.model.parameters().forEach((p, k) => close(p.grad!, after[k]!, `parameter ${k}: hook-based vs after-backward`, 1e-12));
      for (const n of c.layers) {
        layerParams(c.model, n).forEach((p, k) => close(p.grad!, weightedSum(U.get(n)![k]!, per.get(n)!), `${n} hook-based weighted gradient, param ${k}`));
      }
      engine.uncoveredParams.forEach((p, k) => close(p.param.grad!, uncoveredU[k]!.mean(0).mul(3), `uncovered ${p.name}: 3 x mean-loss gradient`));
    });
    engine.dispose();
    c.model.dispose();
  }));
}

test('hook-based weighted gradients where two layers get one output-gradient tensor (z = l1(x) + l2(x)), float32 and float64', () => leakCheck(() => {
  for (const [dtype, tol] of [['float32', 1e-6], ['float64', 1e-12]] as const) {
    manualSeed(16);
    const o = { dtype };
    class SharedDelta extends Module {
      readonly l0 = this.registerModule('l0', new Linear(5, 5, o));
      readonly l1 = this.registerModule('l1', new Linear(5, 4, o));
      readonly l2 = this.registerModule('l2', new Linear(5, 4, o));
      readonly l3 = this.registerModule('l3', new Linear(4, 3, o));
      forward(x: Tensor): Tensor {
        const h = this.l0.forward(x).tanh();
        return this.l3.forward(this.l1.forward(h).add(this.l2.forward(h)).tanh());
      }
    }
    const model = new SharedDelta();
    const engine = new CurvatureEngine(model);
    scope(() => {
      const b = 6;
      const x = randn([b, 5], o);
      const y = tensor(BigInt64Array.from([0n, 1n, 2n, 2n, 1n, 0n]));
      const alphas = new Map(['l0', 'l1', 'l2', 'l3'].map((n) => [n, randn([b], o)] as const));
      engine.capture(crossEntropyPerSample(model.forward(x), y)).writeWeightedGradients(alphas, { consume: true });
      const after = model.parameters().map((p) => p.grad!.clone());
      const where = engine.weightedBackward(crossEntropyPerSample(model.forward(x), y), alphas);
      assert.deepEqual(where.inBackward.sort(), ['l1', 'l2', 'l3'], 'l1 and l2 (one shared gradient tensor) and l3 inside the backward');
      assert.deepEqual(where.afterBackward, ['l0']);
      const names = model.namedParameters().map(([n]) => n);
      model.parameters().forEach((p, k) => assert.ok(relErr(p.grad!, after[k]!) <= tol, `${dtype} ${names[k]}: ${relErr(p.grad!, after[k]!)}`));
      // And against brute force in float64 (a float64 copy of the model): the per-layer sums by definition.
      if (dtype === 'float64') {
        const loss = crossEntropyPerSample(model.forward(x), y);
        const U = bruteForce(loss, model.parameters());
        model.parameters().forEach((p, k) => close(p.grad!, weightedSum(U[k]!, alphas.get(names[k]!.split('.')[0]!)!), `${names[k]} vs brute force`));
      }
    });
    engine.dispose();
    model.dispose();
  }
}));

test('gradient hooks: see the gradient grad() returns, run before the layers below, pass errors through unchanged', () => leakCheck(() => {
  manualSeed(17);
  scope(() => {
    const w1 = randn([4, 3], f64).requiresGrad_(true);
    const w2 = randn([3, 2], f64).requiresGrad_(true);
    const x = randn([5, 4], f64);
    const z1 = x.mm(w1);
    const z2 = z1.tanh().mm(w2);
    const order: string[] = [];
    let seen: Tensor | null = null;
    const remove = registerGradHook(z1, (g) => {
      order.push('z1');
      seen = g.clone();
    });
    registerGradHook(z2, () => order.push('z2'));
    const [gz1] = grad(z2.square().sum(), [z1], { retainGraph: true });
    assert.deepEqual(order, ['z2'], 'z1\'s node is not needed for grad(., [z1]): only z2\'s hook runs');
    const [gw1] = grad(z2.square().sum(), [w1], { retainGraph: true });
    assert.deepEqual(order, ['z2', 'z2', 'z1'], 'backward order: z2 first, then z1');
    close(seen!, gz1!, 'the hook saw dL/dz1', 0);
    close(gw1!, x.t().mm(gz1!), 'the hook did not change the backward');
    remove();
    grad(z2.square().sum(), [w1], { retainGraph: true });
    assert.deepEqual(order, ['z2', 'z2', 'z1', 'z2'], 'a removed hook is not called');
    class HookFailure extends Error {}
    registerGradHook(z1, () => {
      throw new HookFailure('from the hook');
    });
    assert.throws(() => grad(z2.sum(), [w1], { retainGraph: true }), (e: unknown) => e instanceof HookFailure && e.message === 'from the hook');
    assert.throws(() => z2.sum().backward(), HookFailure, 'Tensor.backward passes it through too');
    assert.throws(() => registerGradHook(x, () => {}), /does not require grad/);
  });
}));

test('a consumed capture scales output gradients in place only where no other layer shares them (z = l1(x) + l2(x))', () => leakCheck(() => {
  manualSeed(14);
  // Autograd hands l1 and l2 one and the same output-gradient tensor: scaling it in place for l1
  // would also scale l2's. l3 has its own and is scaled in place.
  class SharedDelta extends Module {
    readonly l1 = this.registerModule('l1', new Linear(5, 4, f64));
    readonly l2 = this.registerModule('l2', new Linear(5, 4, f64));
    readonly l3 = this.registerModule('l3', new Linear(4, 3, f64));
    forward(x: Tensor): Tensor {
      return this.l3.forward(this.l1.forward(x).add(this.l2.forward(x)).tanh());
    }
  }
  const model = new SharedDelta();
  const engine = new CurvatureEngine(model);
  scope(() => {
    const b = 6;
    const loss = crossEntropyPerSample(model.forward(randn([b, 5], f64)), tensor(BigInt64Array.from([0n, 1n, 2n, 2n, 1n, 0n])));
    const params = model.parameters();
    const U = bruteForce(loss, params);
    const cap = engine.capture(loss);
    const [d1, d2] = ['l1', 'l2'].map((n) => cap.layer(n).uses[0]!.delta);
    assert.equal(d1!.memoryLayout.storage, d2!.memoryLayout.storage, 'the two deltas share memory (the case under test)');
    const alphas = new Map(['l1', 'l2', 'l3'].map((n) => [n, randn([b], f64)] as const));
    const delta3 = cap.layer('l3').uses[0]!.delta;
    const d3 = delta3.view(delta3.shape); // a handle of our own: the capture frees its tensors when consumed
    const d3Before = d3.clone();
    cap.writeWeightedGradients(alphas, { consume: true });
    const names = model.namedParameters().map(([n]) => n);
    params.forEach((p, k) => {
      const a = alphas.get(names[k]!.split('.')[0]!)!;
      const want = weightedSum(U[k]!, a);
      close(p.grad!, want, `${names[k]} weighted gradient`);
    });
    // l3's delta was scaled in place (no copy): it was its own.
    close(d3, d3Before.mul(alphas.get('l3')!.unsqueeze(1)), 'l3 delta scaled in place');
    assert.throws(() => cap.writeWeightedGradients(alphas), /used after dispose/);
  });
  engine.dispose();
  model.dispose();
}));

test('conv with bias whose output gradient is the smaller side: weighted weight and bias gradients, copied and in place', () => leakCheck(() => {
  manualSeed(15);
  // 4 -> 2 channels: the output gradient (2 channels) is scaled, not the input, and the bias
  // gradient is summed from the scaled copy (or, consumed, from the gradient scaled in place).
  class Narrowing extends Module {
    readonly c = this.registerModule('c', new Conv2d(4, 2, 3, { ...f64, padding: 1 }));
    readonly fc = this.registerModule('fc', new Linear(2 * 6 * 6, 3, f64));
    forward(x: Tensor): Tensor {
      return this.fc.forward(this.c.forward(x).tanh().flatten(1));
    }
  }
  const model = new Narrowing();
  const engine = new CurvatureEngine(model);
  const b = 5;
  scope(() => {
    const loss = crossEntropyPerSample(model.forward(randn([b, 4, 6, 6], f64)), tensor(BigInt64Array.from([0n, 1n, 2n, 2n, 1n])));
    const params = [model.c.weight, model.c.bias!];
    const U = bruteForce(loss, params);
    const cap = engine.capture(loss);
    const alpha = randn([b], f64);
    const want = U.map((u) => weightedSum(u, alpha));
    cap.writeWeightedGradients(alpha);
    params.forEach((p, k) => close(p.grad!, want[k]!, `copied: ${k === 0 ? 'weight' : 'bias'}`));
    cap.writeWeightedGradients(alpha, { consume: true });
    params.forEach((p, k) => close(p.grad!, want[k]!, `in place: ${k === 0 ? 'weight' : 'bias'}`));
  });
  engine.dispose();
  model.dispose();
}));

test('with alpha = 1/B the weighted gradients are the mean-loss gradient, BatchNorm included (ResNet, training mode)', () => leakCheck(() => {
  manualSeed(5);
  const model = resnetSmall({ depth: 8, width: 0.25, ...f64 });
  const engine = new CurvatureEngine(model);
  const cov = engine.coverage();
  assert.ok(cov.uncovered.length > 0 && cov.uncovered.every((n) => /bn\d?\.(weight|bias)$/.test(n)), `uncovered: ${cov.uncovered}`);
  assert.ok(cov.covered.includes('conv1.weight') && cov.covered.includes('fc.bias'));
  assert.ok(model.modules().some((m) => m instanceof BatchNorm2d));
  scope(() => {
    const x = randn([4, 3, 8, 8], f64);
    const y = tensor(BigInt64Array.from([1n, 0n, 3n, 9n]));
    const loss = crossEntropyPerSample(model.forward(x), y);
    const params = model.parameters();
    const want = grad(loss.mean(), params, { retainGraph: true });
    const cap = engine.capture(loss);
    cap.writeWeightedGradients(zeros([4], f64).add(0.25));
    params.forEach((p, i) => close(p.grad!, want[i]!, `param ${i}`, 1e-12));
    assert.equal(cap.grams().size, cap.layers.length);
  });
  engine.dispose();
  model.dispose();
}));

test('cost model: Hadamard for one position, materialized for large conv outputs, pairwise for tiny conv outputs with many weights', () => leakCheck(() => {
  manualSeed(6);
  class Mixed extends Module {
    readonly big = this.registerModule('big', new Conv2d(3, 4, 3, { padding: 1 }));
    readonly tiny = this.registerModule('tiny', new Conv2d(4, 64, 4, {}));
    readonly fc = this.registerModule('fc', new Linear(64 * 13 * 13, 10));
    forward(x: Tensor): Tensor {
      const h = this.big.forward(x).relu();
      const t = this.tiny.forward(h.narrow(2, 0, 4).narrow(3, 0, 4)).relu().sum();
      return this.fc.forward(h.narrow(1, 0, 1).expand([-1, 64, -1, -1]).narrow(2, 0, 13).narrow(3, 0, 13).flatten(1)).add(t);
    }
  }
  const model = new Mixed();
  const engine = new CurvatureEngine(model);
  scope(() => {
    const x = randn([8, 3, 16, 16]);
    const loss = model.forward(x).square().sum(1);
    const plan = engine.capture(loss).plan();
    const by = new Map(plan.map((p) => [p.name, p] as const));
    assert.equal(by.get('fc')!.method, 'pairwise');
    assert.equal(by.get('fc')!.positions, 1);
    assert.equal(by.get('big')!.method, 'materialize');
    assert.equal(by.get('tiny')!.method, 'pairwise');
    for (const p of plan) assert.ok(p.bytes <= engine.maxBytes);
  });
  engine.dispose();
  model.dispose();
}));

test('capture: eval forwards are not recorded, stale records are dropped, batch mismatches are reported', () => leakCheck(() => {
  const c = seqCase();
  const engine = new CurvatureEngine(c.model);
  // Recorded in a scope that ended: dropped at the next capture. Evaluation (noGrad): not recorded.
  scope(() => { perSampleLoss(c); });
  noGrad(() => scope(() => { perSampleLoss(c); }));
  scope(() => {
    const loss = perSampleLoss(c);
    const cap = engine.capture(loss);
    assert.deepEqual(cap.layers.map((l) => [l.name, l.uses.length]), [['l1', 1], ['l2', 2]]);
    cap.dispose();
    assert.throws(() => cap.grams(), /after dispose/);
  });
  scope(() => {
    const loss = perSampleLoss(c);
    assert.throws(() => engine.capture(loss.narrow(0, 0, 3)), /batch of 5 in this forward, the loss has 3 samples/);
  });
  engine.dispose();
  c.model.dispose();
}));

test('solveCoefficients: equals a dense float64 solve; rhs vectors and matrices', () => leakCheck(() => {
  manualSeed(7);
  const b = 16;
  const G = randn([b, 40], f64);
  const K = G.mm(G.t());
  const lambda = 0.01;
  const M = K.add(eye(b, f64).mul(lambda * b));
  close(solveCoefficients(K, lambda), linalg.solve(M, zeros([b, 1], f64).add(1)).squeeze(1), 'alpha with rhs = 1');
  const r = randn([b, 3], f64);
  close(solveCoefficients(K, lambda, { rhs: r }), linalg.solve(M, r), 'alpha with a matrix rhs');
  // float32 K: solved in float64.
  const a32 = solveCoefficients(K.float(), lambda);
  assert.equal(a32.dtype, 'float64');
  close(a32, linalg.solve(M, zeros([b, 1], f64).add(1)).squeeze(1), 'float32 K', 1e-5);
}));

test('solveCoefficients: singular K (duplicate samples, lambda 0) gives finite alpha via jitter; NaN and indefinite K give clear errors', () => leakCheck(() => {
  manualSeed(8);
  // A rank-3 Gram of 8 samples (duplicates): singular; lambda = 0.
  const G = randn([3, 20], f64);
  const dup = G.index([tensor(BigInt64Array.from([0n, 1n, 2n, 0n, 1n, 2n, 0n, 1n]))]);
  const K = dup.mm(dup.t());
  const res = solveCoefficientsEx(K, 0);
  assert.equal(res.alpha.isfinite().eq(false).sum().item(), 0, "finite alpha");
  assert.ok(res.tries >= 1);
  // Residual of the jittered system is small relative to the rhs.
  const resid = K.add(eye(8, f64).mul(res.jitter)).mm(res.alpha.unsqueeze(1)).squeeze(1).sub(1).norm().item();
  assert.ok(resid < 1e-6, `residual ${resid}`);
  const Knan = K.clone();
  Knan.select(0, 2).select(0, 5).fill_(Number.NaN);
  assert.throws(() => solveCoefficients(Knan, 0.1), /NaN or infinite/);
  assert.throws(() => solveCoefficients(eye(4, f64).neg(), 0, { maxTries: 3 }), /failed 3 times/);
  assert.throws(() => solveCoefficients(K, -1), /lambda must be/);
  assert.throws(() => solveCoefficients(K, Number.NaN), /lambda must be/);
}));

test('engine on duplicate samples: exact singular Gram, NGD with lambda = 0 still finite', () => leakCheck(() => {
  manualSeed(9);
  const c = seqCase();
  c.x = c.x.narrow(0, 0, 2).repeat(3, 1, 1).narrow(0, 0, 5);
  c.y = c.y.narrow(0, 0, 2).repeat(3, 1).narrow(0, 0, 5);
  const engine = new CurvatureEngine(c.model);
  withCapture(c, engine, (cap, U) => {
    const K = cap.globalGram();
    close(K, gramOf(c.layers.flatMap((n) => U.get(n)!)), 'global Gram with duplicates');
    const alpha = solveCoefficients(K, 0);
    assert.equal(alpha.isfinite().eq(false).sum().item(), 0, "finite alpha");
  });
  engine.dispose();
  c.model.dispose();
}));

test('a whole Transformer (embeddings with padding, sequence Linears, LayerNorm): Grams and weighted gradients match brute force', () => leakCheck(() => {
  manualSeed(3);
  const pad = 0;
  const model = transformerSeq2Seq({ srcVocab: 9, tgtVocab: 7, dModel: 4, heads: 2, layers: 1, ffn: 6, dropout: 0, maxLen: 8, padIdx: pad, dtype: 'float64' });
  const engine = new CurvatureEngine(model);
  assert.ok(engine.coverage().uncovered.every((n) => /norm/.test(n)), `uncovered: ${engine.coverage().uncovered}`);
  const src = tensor(BigInt64Array.from([1n, 4n, 5n, 2n, 1n, 3n, 0n, 0n, 1n, 6n, 6n, 8n]), { shape: [3, 4] });
  const tgtIn = tensor(BigInt64Array.from([1n, 3n, 4n, 1n, 5n, 0n, 1n, 6n, 2n]), { shape: [3, 3] });
  const tgtOut = tensor(BigInt64Array.from([3n, 4n, 2n, 5n, 2n, 0n, 6n, 2n, 3n]), { shape: [3, 3] });
  scope(() => {
    const loss = crossEntropyPerSample(model.forward(src, tgtIn), tgtOut, { ignoreIndex: pad });
    const layers = engine.layers.map((l) => l.name);
    const covered = layers.map((n) => layerParams(model, n));
    const all = bruteForce(loss, covered.flat());
    const cap = engine.capture(loss);
    const grams = cap.grams();
    assert.equal(grams.size, layers.length);
    const alpha = randn([3], f64);
    cap.writeWeightedGradients(alpha);
    let k = 0;
    layers.forEach((n, i) => {
      const U = all.slice(k, k + covered[i]!.length);
      k += covered[i]!.length;
      close(grams.get(n)!, gramOf(U), `${n} Gram`);
      // Weight and bias together: k_proj's bias gradient is zero up to rounding (softmax ignores a
      // shift of every key), so alone its relative error would be meaningless.
      const got = cat(covered[i]!.map((p) => p.grad!.reshape(-1)));
      const want = cat(U.map((u) => weightedSum(u, alpha).reshape(-1)));
      close(got, want, `${n} weighted gradient`);
    });
  });
  engine.dispose();
  model.dispose();
}));

test('solveCoefficients: K = 0 with lambda = 0 is solved with absolute jitter (finite)', () => leakCheck(() => {
  const r = solveCoefficientsEx(zeros([4, 4], f64), 0);
  assert.ok(r.tries > 1 && r.jitter > 0);
  assert.equal(r.alpha.isfinite().eq(false).sum().item(), 0);
}));

test('a conv layer used twice in one forward (different spatial sizes): Grams, weighted and per-sample gradients match', () => leakCheck(() => {
  manualSeed(14);
  class Twice extends Module {
    trace = new Map<string, { input: Tensor; output: Tensor }>();
    readonly conv = this.registerModule('conv', new Conv2d(2, 3, 3, { ...f64, padding: 1 }));
    readonly fc = this.registerModule('fc', new Linear(3, 2, f64));
    forward(x: Tensor): Tensor {
      const a = this.conv.forward(x).tanh().mean([2, 3]);
      const b = this.conv.forward(x.narrow(2, 0, 3).narrow(3, 0, 3)).tanh().mean([2, 3]);
      return this.fc.forward(a.add(b.mul(2)));
    }
  }
  const c: Case = { model: new Twice(), x: randn([4, 2, 5, 5], f64), y: tensor(BigInt64Array.from([0n, 1n, 1n, 0n])), layers: ['conv', 'fc'] };
  const engine = new CurvatureEngine(c.model);
  withCapture(c, engine, (cap, U) => {
    assert.equal(cap.layer('conv').uses.length, 2);
    assert.equal(cap.layer('conv').positions, 25 + 9);
    for (const method of ['pairwise', 'materialize'] as const) close(cap.grams({ method }).get('conv')!, gramOf(U.get('conv')!), `conv Gram (${method})`);
    const alpha = randn([4], f64);
    cap.writeWeightedGradients(alpha);
    const [w, b] = layerParams(c.model, 'conv');
    close(w!.grad!, U.get('conv')![0]!.mul(alpha.reshape(4, 1, 1, 1, 1)).sum(0), 'conv weighted weight gradient');
    close(b!.grad!, U.get('conv')![1]!.mul(alpha.reshape(4, 1)).sum(0), 'conv weighted bias gradient');
    close(cap.perSampleGradients('conv').weight, U.get('conv')![0]!, 'conv per-sample gradients');
  });
  engine.dispose();
  c.model.dispose();
}));

test('float32 products through oneDNN (gemmNT, gemmTN) equal float64 matrix products, on and below the size thresholds', () => leakCheck(() => {
  manualSeed(11);
  scope(() => {
    for (const [m, n, p] of [[128, 128, 784], [64, 96, 200], [128, 128, 64], [32, 10, 256]] as const) {
      const x = randn([m, p]);
      const y = randn([n, p]);
      close(gemmNT(x, y).double(), x.double().mm(y.double().t()), `gemmNT ${m}x${n}, P ${p}`, 1e-5);
    }
    for (const [rows, m, n] of [[128, 512, 784], [300, 256, 256], [128, 10, 256], [7, 300, 300]] as const) {
      const x = randn([rows, m]);
      const y = randn([rows, n]);
      close(gemmTN(x, y).double(), x.double().t().mm(y.double()), `gemmTN ${rows} rows, ${m}x${n}`, 1e-5);
    }
    // A transposed (non-contiguous) operand.
    const xt = randn([784, 128]).t();
    close(gemmNT(xt, xt).double(), xt.double().mm(xt.double().t()), 'gemmNT of a transposed view', 1e-5);
  });
}));

/** float32, MNIST-sized: big enough that the engine's products go through oneDNN. */
class WideMlp extends Module {
  readonly l1 = this.registerModule('l1', new Linear(784, 512));
  readonly l2 = this.registerModule('l2', new Linear(512, 256));
  forward(x: Tensor): Tensor {
    return this.l2.forward(this.l1.forward(x).relu());
  }
}

test('float32 MLP at full size (oneDNN routes): weighted gradients with alpha = 1/B equal autograd, Grams equal brute force', () => leakCheck(() => {
  manualSeed(12);
  const model = new WideMlp();
  const { l1, l2 } = model;
  const forward = (x: Tensor): Tensor => model.forward(x);
  const engine = new CurvatureEngine(model);
  scope(() => {
    const b = 16;
    const x = randn([b, 784]);
    const y = tensor(BigInt64Array.from({ length: b }, (_, i) => BigInt(i % 10)));
    const loss = crossEntropyPerSample(forward(x), y);
    const params = [l1.weight, l1.bias!, l2.weight, l2.bias!];
    const want = grad(loss.mean(), params, { retainGraph: true });
    const rows = Array.from({ length: b }, (_, i) => cat(grad(loss.select(0, i), [l1.weight, l1.bias!], { retainGraph: true }).map((g) => g!.reshape(-1).double())));
    const cap = engine.capture(loss);
    const U = stack(rows);
    close(cap.grams().get('l1')!, U.mm(U.t()), 'Gram of l1 (float32 products)', 1e-5);
    cap.writeWeightedGradients(zeros([b]).add(1 / b));
    params.forEach((p, i) => close(p.grad!.double(), want[i]!.double(), `param ${i}`, 1e-5));
  });
  engine.dispose();
  model.dispose();
}));

test('solveCoefficientsBatched: each group equals its dense float64 solve; a singular group falls back to jitter, a NaN group is refused', () => leakCheck(() => {
  manualSeed(13);
  const b = 8;
  const grams = [0, 1, 2].map(() => { const u = randn([b, 30], f64); return u.mm(u.t()); });
  const shift = tensor(Float64Array.from([0.5, 2, 10]));
  const { alpha, jitter } = solveCoefficientsBatched(stack(grams), shift);
  assert.equal(jitter, 0);
  grams.forEach((K, g) => {
    const want = linalg.solve(K.add(eye(b, f64).mul(shift.select(0, g).item())), zeros([b, 1], f64).add(1)).squeeze(1);
    close(alpha.select(0, g), want, `group ${g}`, 1e-10);
  });
  // Group 1 singular (duplicate samples) with shift 0: the fast Cholesky fails or is not finite there.
  const G = randn([3, 20], f64);
  const dup = G.index([tensor(BigInt64Array.from([0n, 1n, 2n, 0n, 1n, 2n, 0n, 1n]))]);
  const singular = dup.mm(dup.t());
  const mixed = solveCoefficientsBatched(stack([grams[0]!, singular, grams[2]!]), tensor(Float64Array.from([0.5, 0, 10])));
  assert.equal(mixed.alpha.isfinite().eq(false).sum().item(), 0, 'finite alpha');
  close(mixed.alpha.select(0, 0), alpha.select(0, 0), 'group 0 unchanged by the fallback of group 1', 1e-12);
  close(mixed.alpha.select(0, 1), solveCoefficientsEx(singular, 0).alpha, 'group 1 = the robust single solve', 1e-8);
  const withNan = grams[2]!.clone();
  withNan.select(0, 1).select(0, 3).fill_(Number.NaN);
  assert.throws(() => solveCoefficientsBatched(stack([grams[0]!, withNan]), tensor(Float64Array.from([1, 1]))), /NaN or infinite/);
  assert.throws(() => solveCoefficientsBatched(grams[0]!, shift), /K must be \[G, B, B\]/);
  assert.throws(() => solveCoefficientsBatched(stack(grams), tensor(Float64Array.from([1, 2]))), /shift must be \[3\]/);
}));

test('half-precision Linears: Grams are formed in float32 at least and match the float64 brute force to bfloat16 precision', () => leakCheck(() => {
  // The Hadamard product of a pairwise Gram is taken in the products' dtype, widened from 16 bits
  // (float16 entries overflow at a few hundred squared); bfloat16 runs on the CPU, float16 only on a GPU.
  manualSeed(14);
  const make = (dtype: 'bfloat16' | 'float64'): Module & { forward(x: Tensor): Tensor } => {
    class Net extends Module {
      readonly l1 = this.registerModule('l1', new Linear(6, 7, { dtype }));
      readonly l2 = this.registerModule('l2', new Linear(7, 3, { dtype }));
      forward(x: Tensor): Tensor { return this.l2.forward(this.l1.forward(x).tanh()); }
    }
    return new Net();
  };
  const half = make('bfloat16');
  const exact = make('float64');
  noGrad(() => exact.namedParameters().forEach(([, p], i) => p.copy_(half.namedParameters()[i]![1].to('float64'))));
  const engine = new CurvatureEngine(half);
  scope(() => {
    const x = randn([6, 6], f64);
    const y = tensor(BigInt64Array.from([0n, 2n, 1n, 1n, 0n, 2n]));
    const grams = engine.capture(crossEntropyPerSample(half.forward(x.to('bfloat16')), y)).grams({ method: 'pairwise' });
    const loss = crossEntropyPerSample(exact.forward(x.to('bfloat16').to('float64')), y);
    for (const name of ['l1', 'l2']) {
      const K = grams.get(name)!;
      assert.equal(K.dtype, 'float64');
      const err = relErr(K, gramOf(bruteForce(loss, layerParams(exact, name))));
      assert.ok(err < 5e-2, `${name}: bfloat16 Gram off the float64 brute force by ${err.toExponential(2)}`);
    }
  });
  engine.dispose();
}));
