// The approximation-quality measure against a dense Fisher built the slow, obvious way, in float64:
// one backward pass per logit gives the rows of J, autograd's own second derivative of the loss in
// the logits gives H (not the softmax formula the fast path uses), and
// F = (1/B) sum over the counted rows of J_r^T H_r J_r as a P x P matrix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cat, eye, F, grad, linalg, liveTensors, manualSeed, noGrad, randn, scope, stack, tensor, zeros, type Tensor,
} from '../src/tensor/index.js';
import { Conv2d, crossEntropyPerSample, Embedding, Flatten, Linear, mlp, Sequential, Tanh, type CrossEntropyOptions, type Module } from '../src/nn/index.js';
import { approximationQuality, fisherQuadratic } from '../src/curvature/quality.js';
import { leakCheck } from './helpers.js';

const f64 = { dtype: 'float64' as const };
const TOL = 1e-10;
const verbose = process.env.FNGD_TEST_VERBOSE !== undefined;

function rel(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);
}
function near(actual: number, expected: number, what: string, tol = TOL): void {
  const e = rel(actual, expected);
  assert.ok(e <= tol, `${what}: got ${actual}, want ${expected} (relative error ${e} > ${tol})`);
  assert.ok(expected !== 0, `${what}: the expected value is zero (a vacuous check)`);
  if (verbose) console.log(`${what}: ${e.toExponential(2)}`);
}

const flatten = (v: (Tensor | null)[], params: Tensor[]): Tensor =>
  cat(v.map((t, k) => (t ?? zeros(params[k]!.shape, f64)).reshape(-1)));
const unflatten = (x: Tensor, params: Tensor[]): Tensor[] => {
  let at = 0;
  return params.map((p) => {
    const t = x.reshape(-1).narrow(0, at, p.numel).reshape(p.shape);
    at += p.numel;
    return t;
  });
};

/**
 * The dense cross-entropy GGN over `params`: rows r of logits.reshape(-1, C) with a non-zero weight,
 * J_r by C separate backward passes, H_r as autograd's Hessian of that row's loss in its logits.
 */
function denseFisher(logits: Tensor, target: Tensor, params: Tensor[], batchSize: number, o: CrossEntropyOptions & { weights?: number[] } = {}): Tensor {
  const C = logits.size(-1);
  const z = logits.reshape(-1, C);
  const y = target.reshape(-1);
  const P = params.reduce((s, p) => s + p.numel, 0);
  let Fm = zeros([P, P], f64);
  for (let r = 0; r < z.size(0); r++) {
    const w = o.weights?.[r] ?? 1;
    if (w === 0) continue;
    const J = stack(Array.from({ length: C }, (_, c) => {
      const g = grad(z.select(0, r).select(0, c), params, { retainGraph: true, allowUnused: true });
      return flatten(g, params);
    })); // [C, P]
    const H = rowHessian(z.select(0, r), y.narrow(0, r, 1), o);
    Fm = Fm.add(J.t().mm(H).mm(J).mul(w));
  }
  return Fm.div(batchSize);
}

/** d^2 CE(z, y) / dz^2 for one row, by differentiating autograd's gradient once more. */
function rowHessian(zRow: Tensor, y: Tensor, o: CrossEntropyOptions): Tensor {
  const z = zRow.detach().clone().requiresGrad_();
  // A target equal to ignoreIndex would give a zero loss; the Fisher row does not depend on it.
  const yy = y.eq(o.ignoreIndex ?? -100).all().item() ? tensor(BigInt64Array.from([0n])) : y;
  const l = F.crossEntropy(z.unsqueeze(0), yy, { labelSmoothing: o.labelSmoothing, reduction: 'sum' });
  const [g] = grad(l, [z], { createGraph: true, retainGraph: true });
  return stack(Array.from({ length: z.size(0) }, (_, c) => grad(g!.select(0, c), [z], { retainGraph: true })[0]!));
}

function quadForm(Fm: Tensor, d: Tensor): number {
  return d.reshape(1, -1).mm(Fm).mm(d.reshape(-1, 1)).item();
}

function randomLike(params: Tensor[], withNull = false): (Tensor | null)[] {
  return params.map((p, k) => (withNull && k === 1 ? null : randn(p.shape, f64)));
}

/**
 * The shared oracle check: fisherQuadratic and approximationQuality against the dense Fisher, with
 * g from a plain backward of the mean loss, computed after fisherQuadratic ran on the same graph.
 */
function checkAgainstDense(label: string, model: Module & { forward(x: Tensor): Tensor }, x: Tensor, y: Tensor, ce: CrossEntropyOptions, extra: { rowWeights?: Tensor; weights?: number[] } = {}): void {
  const params = model.parameters();
  const logits = model.forward(x);
  const B = logits.size(0);
  const Fm = denseFisher(logits, y, params, B, { ...ce, weights: extra.weights });
  for (const [i, d] of [randomLike(params), randomLike(params, true), randomLike(params)].entries()) {
    const got = fisherQuadratic({ logits, params, direction: d, rowWeights: extra.rowWeights });
    near(got, quadForm(Fm, flatten(d, params)), `${label}: d^T F d, direction ${i}`);
  }
  // The graph survived: the gradient of the mean loss comes from the same logits afterwards.
  const g = grad(crossEntropyPerSample(logits, y, ce).mean(), params, { retainGraph: true });
  const gf = flatten(g, params);
  const d = randomLike(params);
  const df = flatten(d, params);
  const q = approximationQuality({ logits, params, direction: d, gradient: g, batchSize: B, rowWeights: extra.rowWeights });
  const dFd = quadForm(Fm, df);
  const dg = df.dot(gf).item();
  const gamma = Math.sqrt(dFd) / Math.abs(dg);
  const gammaG = Math.sqrt(quadForm(Fm, gf)) / gf.dot(gf).item();
  near(q.dFd, dFd, `${label}: quality dFd`);
  near(q.dDotGrad, dg, `${label}: quality d^T g`);
  near(q.gamma, gamma, `${label}: gamma(d)`);
  near(q.gammaGradient, gammaG, `${label}: gamma(g)`);
  near(q.ratio, gamma / gammaG, `${label}: gamma(d) / gamma(g)`);
}

test('MLP 5-4-3 (tanh, label smoothing): d^T F d and gamma equal the dense GGN built from per-logit backward passes', () => leakCheck(() => {
  manualSeed(1);
  const model = mlp({ inputSize: 5, hidden: [4], classes: 3, activation: 'tanh', dtype: 'float64' });
  const x = randn([6, 5], f64);
  const y = tensor(BigInt64Array.from([0n, 2n, 1n, 1n, 0n, 2n]));
  checkAgainstDense('mlp', model, x, y, { labelSmoothing: 0.1 });
  // The fast path's H = diag(p) - p p^T is the Hessian the oracle gets from autograd.
  const z = noGrad(() => model.forward(x));
  for (let r = 0; r < 6; r++) {
    const p = z.select(0, r).softmax(0);
    const H = rowHessian(z.select(0, r), y.narrow(0, r, 1), { labelSmoothing: 0.1 });
    const e = H.sub(eye(3, f64).mul(p).sub(p.outer(p))).norm().item() / H.norm().item();
    assert.ok(e < 1e-13, `row ${r}: autograd Hessian vs diag(p) - p p^T: ${e}`);
  }
  model.dispose();
}));

test('conv2d (stride 2, padding 1) + tanh + linear: d^T F d and gamma equal the dense GGN', () => leakCheck(() => {
  manualSeed(2);
  const model = new Sequential(new Conv2d(1, 2, 3, { ...f64, stride: 2, padding: 1 }), new Tanh(), new Flatten(), new Linear(18, 3, f64));
  const x = randn([4, 1, 6, 6], f64);
  const y = tensor(BigInt64Array.from([2n, 0n, 1n, 1n]));
  checkAgainstDense('conv', model, x, y, {});
  model.dispose();
}));

test('sequence logits [B, T, C] (embedding + linear) with padding rows weighted 0: the dense GGN over valid tokens only', () => leakCheck(() => {
  manualSeed(3);
  const model = new Sequential(new Embedding(7, 4, { ...f64, paddingIdx: 0 }), new Tanh(), new Linear(4, 3, f64));
  const tokens = [[1, 3, 3, 0, 0], [3, 1, 6, 6, 6], [2, 5, 2, 0, 0], [4, 4, 6, 1, 0]];
  const x = tensor(BigInt64Array.from(tokens.flat().map(BigInt)), { shape: [4, 5] });
  const y = tensor(BigInt64Array.from(tokens.flat().map((t) => BigInt(t === 0 ? -100 : t % 3))), { shape: [4, 5] });
  const weights = tokens.flat().map((t) => (t === 0 ? 0 : 1));
  const rowWeights = tensor(weights, { ...f64, shape: [4, 5] });
  checkAgainstDense('sequence', model, x, y, { ignoreIndex: -100, labelSmoothing: 0.1 }, { rowWeights, weights });

  const params = model.parameters();
  const logits = model.forward(x);
  const d = randomLike(params);
  const q = fisherQuadratic({ logits, params, direction: d, rowWeights });
  // Rows flattened to [B T, C] with B given explicitly: the same number.
  near(fisherQuadratic({ logits: logits.reshape(-1, 3), params, direction: d, rowWeights: rowWeights.reshape(-1), batchSize: 4 }), q, 'flattened rows');
  near(fisherQuadratic({ logits, params, direction: d, rowWeights: x.ne(0) }), q, 'a bool mask as row weights');
  // Padding rows do reach the Linear's parameters, so leaving the weights out must change the value.
  const unweighted = fisherQuadratic({ logits, params, direction: d });
  assert.ok(rel(unweighted, q) > 1e-3, `padding rows should matter: ${unweighted} vs ${q}`);
  near(unweighted, quadForm(denseFisher(logits, y, params, 4, { ignoreIndex: -100 }), flatten(d, params)), 'unweighted = dense over every row');
  model.dispose();
}));

test('exact damped NGD: gamma falls monotonically with lambda from SGD\'s to the minimum 1/sqrt(g^T F^+ g); no direction beats it', () => leakCheck(() => {
  manualSeed(4);
  const model = mlp({ inputSize: 5, hidden: [4], classes: 3, activation: 'tanh', dtype: 'float64' });
  const x = randn([6, 5], f64);
  const y = tensor(BigInt64Array.from([0n, 2n, 1n, 1n, 0n, 2n]));
  const params = model.parameters();
  const logits = model.forward(x);
  const B = 6;
  const g = grad(crossEntropyPerSample(logits, y).mean(), params, { retainGraph: true });
  const gf = flatten(g, params).reshape(-1, 1);
  const Fm = denseFisher(logits, y, params, B);
  const P = Fm.size(0); // 39 parameters, rank(F) <= B (C - 1) = 12: F is singular.
  const { values, vectors } = linalg.eigh(Fm);
  const cutoff = values.max().item() * 1e-10;
  const rank = values.gt(cutoff).sum().item();
  assert.ok(rank <= B * 2 && rank < P, `rank ${rank}`);
  const inv = values.gt(cutoff).double().div(values.clamp(cutoff));
  const pinvG = vectors.mm(inv.reshape(-1, 1).mul(vectors.t().mm(gf))); // F^+ g
  const gammaMin = 1 / Math.sqrt(gf.t().mm(pinvG).item());
  const gamma = (d: Tensor[] | (Tensor | null)[]): number => approximationQuality({ logits, params, direction: d, gradient: g }).gamma;
  const gammaSgd = gamma(g);

  // g lies in F's range (cross-entropy: p - y sums to zero), so F^+ g attains the bound exactly.
  near(gamma(unflatten(pinvG, params)), gammaMin, 'gamma(F^+ g) = 1/sqrt(g^T F^+ g)', 1e-8);
  // Damped NGD: gamma is non-decreasing in lambda (d gamma^2 / d lambda = 2 lambda (S1 S3 - S2^2) / S1^3
  // >= 0 in F's eigenbasis, S_k = sum c_j^2 / (f_j + lambda)^k), between the minimum and SGD's.
  const lambdas = [1e2, 1, 1e-2, 1e-4, 1e-6, 1e-8];
  const gammas = lambdas.map((l) => gamma(unflatten(linalg.solve(Fm.add(eye(P, f64).mul(l)), gf), params)));
  if (verbose) console.log('gamma(d_lambda)/gamma(g):', lambdas.map((l, i) => `${l}: ${(gammas[i]! / gammaSgd).toFixed(6)}`).join(', '), `min ${(gammaMin / gammaSgd).toFixed(6)}`);
  for (const [i, gl] of gammas.entries()) {
    assert.ok(gl <= gammaSgd * (1 + 1e-12), `lambda ${lambdas[i]}: gamma ${gl} > SGD's ${gammaSgd}`);
    assert.ok(gl >= gammaMin * (1 - 1e-10), `lambda ${lambdas[i]}: gamma ${gl} below the minimum ${gammaMin}`);
    if (i > 0) assert.ok(gl <= gammas[i - 1]! * (1 + 1e-12), `gamma not monotone in lambda at ${lambdas[i]}: ${gl} > ${gammas[i - 1]}`);
  }
  assert.ok(gammas[0]! < gammaSgd && gammas.at(-1)! < 0.5 * gammaSgd, 'NGD should be well below SGD on this batch (non-vacuous)');
  near(gammas.at(-1)!, gammaMin, 'lambda 1e-8: gamma at the minimum', 1e-8);
  // No random direction, nor any perturbation of F^+ g, does better than the bound.
  let best = Infinity;
  for (let k = 0; k < 100; k++) {
    const r = randn([P, 1], f64);
    best = Math.min(best, gamma(unflatten(r, params)), gamma(unflatten(pinvG.add(r.mul(1e-3 * pinvG.norm().item() / r.norm().item())), params)));
  }
  assert.ok(best >= gammaMin * (1 - 1e-10), `a direction beat the bound: ${best} < ${gammaMin}`);
  if (verbose) console.log(`best random or perturbed: ${(best / gammaMin).toFixed(8)} x the minimum`);
  model.dispose();
}));

test('memory, grad mode, float32 models, and bad inputs named in the error', () => leakCheck(() => {
  manualSeed(5);
  const model = mlp({ inputSize: 5, hidden: [4], classes: 3, dtype: 'float64' });
  const x = randn([6, 5], f64);
  const y = tensor(BigInt64Array.from([0n, 2n, 1n, 1n, 0n, 2n]));
  const params = model.parameters();
  const logits = model.forward(x);
  const loss = crossEntropyPerSample(logits, y).mean();
  const d = randomLike(params);
  const g = grad(loss, params, { retainGraph: true });

  // Every temporary (the J^T u graph included) is freed when the call returns.
  const before = liveTensors().tensors;
  const q = fisherQuadratic({ logits, params, direction: d });
  approximationQuality({ logits, params, direction: d, gradient: g });
  assert.equal(liveTensors().tensors, before, 'fisherQuadratic/approximationQuality left tensors behind');
  // Inside noGrad it still works (grad mode is switched on for the call).
  assert.equal(noGrad(() => fisherQuadratic({ logits, params, direction: d })), q);
  // An unused parameter, and null entries, count as zero.
  const stray = randn([2], f64).requiresGrad_();
  near(fisherQuadratic({ logits, params: [...params, stray], direction: [...d, randn([2], f64)] }), q, 'unused parameter');
  assert.equal(fisherQuadratic({ logits, params, direction: params.map(() => null) }), 0);

  const base = { logits, params, direction: d };
  assert.throws(() => fisherQuadratic({ ...base, direction: d.slice(1) }), /direction has 3 entries for 4 params/);
  assert.throws(() => fisherQuadratic({ ...base, direction: [d[0]!, d[0]!, d[2]!, d[3]!] }), /direction\[1\] has shape \[4,5\], params\[1\] has \[4\]/);
  assert.throws(() => approximationQuality({ ...base, gradient: g.slice(0, 2) }), /gradient has 2 entries/);
  assert.throws(() => approximationQuality({ ...base, gradient: [g[0]!, g[1]!, g[2]!, g[2]!] }), /gradient\[3\] has shape/);
  assert.throws(() => fisherQuadratic({ ...base, logits: noGrad(() => model.forward(x)) }), /logits are not attached/);
  assert.throws(() => fisherQuadratic({ ...base, logits: logits.detach() }), /logits are not attached/);
  assert.throws(() => fisherQuadratic({ ...base, logits: randn([6, 3], f64).requiresGrad_() }), /logits are not attached/);
  assert.throws(() => fisherQuadratic({ ...base, logits: logits.sum(1) }), /logits must be \[N, C\]/);
  assert.throws(() => fisherQuadratic({ ...base, rowWeights: zeros([5], f64) }), /rowWeights must have the logits' shape without the class dimension, \[6\], got \[5\]/);
  assert.throws(() => fisherQuadratic({ ...base, rowWeights: tensor([1, 1, -1, 1, 1, 1], f64) }), /rowWeights must be finite and >= 0/);
  assert.throws(() => fisherQuadratic({ ...base, batchSize: 0 }), /batchSize must be a positive integer/);
  assert.throws(() => fisherQuadratic({ ...base, params: [stray], direction: [stray] }), /depend on none of params/);
  assert.throws(() => fisherQuadratic({ ...base, params: [x], direction: [x] }), /params\[0\] does not require grad/);
  assert.throws(() => approximationQuality({ ...base, gradient: params.map(() => null) }), /gradient is zero/);
  // The caller's graph is intact after all of the above.
  loss.backward();
  assert.ok(params.every((p) => p.grad !== null));

  // float32 parameters, float64 direction: equal to the float64 model up to float32 rounding.
  model.to('float32');
  assert.ok(model.parameters().every((p) => p.dtype === 'float32'));
  const q32 = fisherQuadratic({ logits: model.forward(x.float()), params: model.parameters(), direction: d });
  assert.ok(rel(q32, q) < 1e-5, `float32 model: ${q32} vs ${q} (${rel(q32, q)})`);
  if (verbose) console.log(`float32 vs float64: ${rel(q32, q).toExponential(2)}`);
  model.dispose();
}));
