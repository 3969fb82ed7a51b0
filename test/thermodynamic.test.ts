// The thermodynamic solver (src/precondition/thermodynamic.ts) against oracles written the slow,
// obvious way: dense float64 linalg.solve per group, the OU closed form through eigh, sample
// statistics by explicit loops, warm starts and time scales by JS loops over the entries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eye, Generator, linalg, ones, randn, stack, tensor, type Tensor } from '../src/tensor/index.js';
import { thermodynamicSolver } from '../src/precondition/thermodynamic.js';
import type { SolveInput } from '../src/precondition/solver.js';
import { leakCheck, relErr } from './helpers.js';

const f64 = { dtype: 'float64' as const };

/**
 * G groups of B samples: K_g = U_g^T U_g from P random per-sample gradients whose Gram entries are
 * ~ scales[g]; shift_g as given; rhs ones (NGD) or positive random (iEF-like) per group.
 */
function system(seed: number, b: number, scales: number[], shifts: number[], p = 3 * b, randomRhs: boolean[] = []): SolveInput {
  const gen = new Generator(seed);
  const K = stack(scales.map((sc) => {
    const U = randn([p, b], { ...f64, generator: gen }).mul(Math.sqrt(sc / p));
    return U.t().mm(U);
  }));
  const rhs = stack(scales.map((_, g) => (randomRhs[g] ? randn([b], { ...f64, generator: gen }).abs().add(0.1) : ones([b], f64))));
  return { K, shift: tensor(shifts, f64), rhs };
}

/** A_g = K_g + shift_g I as nested JS arrays. */
function denseA(inp: SolveInput): number[][][] {
  const [g, b] = [inp.K.size(0), inp.K.size(1)];
  const k = inp.K.toArray();
  const sh = inp.shift.toArray();
  return Array.from({ length: g }, (_, gi) => Array.from({ length: b }, (_, i) => Array.from({ length: b }, (_, j) => k[(gi * b + i) * b + j]! + (i === j ? sh[gi]! : 0))));
}

/** The time unit of each group: max absolute row sum of A_g. */
function timeScale(A: number[][]): number {
  return Math.max(...A.map((row) => row.reduce((acc, v) => acc + Math.abs(v), 0)));
}

/** The uniform warm start's c = (1^T b)/(1^T A 1). */
function uniformC(A: number[][], rhs: number[]): number {
  let num = 0;
  let den = 0;
  for (const v of rhs) num += v;
  for (const row of A) for (const v of row) den += v;
  return num / den;
}

function rowOf(t: Tensor, g: number): number[] {
  const b = t.size(1);
  return t.toArray().slice(g * b, (g + 1) * b);
}

/** A^-1 b by a dense LU solve, group by group. */
function exactSolve(A: number[][], rhs: number[]): Tensor {
  return linalg.solve(tensor(A, f64), tensor(rhs, f64).unsqueeze(1)).squeeze(1);
}

/** Ascending eigenvalues and eigenvectors of A/s. */
function scaledEig(A: number[][], s: number): { values: number[]; vectors: Tensor } {
  const { values, vectors } = linalg.eigh(tensor(A, f64).div(s));
  return { values: values.toArray(), vectors };
}

function bitwiseEqual(a: Tensor, b: Tensor, what: string): void {
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  assert.deepEqual(a.data(), b.data(), `${what}: not bitwise equal`);
}

test('noise-free, long t: equals the dense float64 solve for groups of very different scales', () => leakCheck(() => {
  const b = 6;
  // Gram entries ~1e4, ~1 and ~1e-3 under the same absolute shift lambda B (lambda 0.01): without
  // the per-group time unit, dt 0.5 would blow the first group up and leave the last one at x0.
  const inp = system(1, b, [1e4, 1, 1e-3], [0.06, 0.06, 0.06], 3 * b, [false, true, false]);
  const A = denseA(inp);
  const dt = 0.5;
  // Slowest mode of x_{n+1} - x* = (I - dt A/s)(x_n - x*): factor 1 - dt lambda_min(A/s) per step
  // (every mode's factor is in [1 - dt, 1) since the eigenvalues of A/s are in (0, 1]). Run until
  // it is below 1e-12, leaving room under the 1e-8 tolerance for the start's distance and roundoff.
  let t = 0;
  for (const Ag of A) {
    const lmin = scaledEig(Ag, timeScale(Ag)).values[0]!;
    assert.ok(lmin > 0);
    t = Math.max(t, dt * Math.ceil(Math.log(1e-12) / Math.log(1 - dt * lmin)));
  }
  assert.ok(t < 1e5, `test system too ill-conditioned (t = ${t})`);
  const solver = thermodynamicSolver({ t, dt });
  const { alpha, stats } = solver.solve(inp);
  assert.equal(stats.thermo_steps, Math.round(t / dt));
  assert.equal(stats.analog_s, t * 1e-6);
  assert.deepEqual(alpha.shape, [3, b]);
  assert.equal(alpha.dtype, 'float64');
  const rhs = inp.rhs.toArray();
  A.forEach((Ag, g) => {
    const want = exactSolve(Ag, rhs.slice(g * b, (g + 1) * b));
    const e = relErr(tensor(rowOf(alpha, g), f64), want);
    assert.ok(e <= 1e-8, `group ${g}: relative error ${e} against linalg.solve`);
  });
  solver.dispose();
}));

test('t = 0 returns the uniform warm start c 1, c = (1^T b)/(1^T A 1): SGD after normalizing', () => leakCheck(() => {
  const b = 5;
  const inp = system(2, b, [3, 0.02], [0.05, 1e-3], 2 * b, [true, false]);
  const A = denseA(inp);
  const rhs = inp.rhs.toArray();
  // The noise cannot act without a step.
  const solver = thermodynamicSolver({ t: 0, kappa0: 0.5 });
  const { alpha, stats } = solver.solve(inp);
  assert.equal(stats.thermo_steps, 0);
  assert.equal(stats.analog_s, 0);
  A.forEach((Ag, g) => {
    const row = rowOf(alpha, g);
    for (const v of row) assert.equal(v, row[0], `group ${g}: entries not all equal`);
    const c = uniformC(Ag, rhs.slice(g * b, (g + 1) * b));
    assert.ok(Math.abs(row[0]! - c) <= 1e-14 * Math.abs(c), `group ${g}: c = ${row[0]}, want ${c}`);
    const sum = row.reduce((x, y) => x + y, 0);
    for (const v of row) assert.ok(Math.abs(v / sum - 1 / b) <= 1e-15, `group ${g}: normalized ${v / sum} != 1/B`);
  });
  // A tiny step count still moves it: t = 0 is the only exact SGD point.
  const moved = thermodynamicSolver({ t: 0.1, dt: 0.1 }).solve(inp);
  assert.ok(relErr(moved.alpha, alpha) > 1e-6);
  solver.dispose();
}));

test('kappa0 > 0: the stationary mean is A^-1 b and the covariance kappa0 A^-1, within sampling error', () => leakCheck(() => {
  const b = 4;
  const chains = 3000;
  const kappa0 = 0.2;
  const dt = 0.01;
  // A correlated but well-conditioned 4 x 4 system; every group is an independent chain on it.
  const base = system(3, b, [1], [0.4], 6, [true]);
  const A = denseA(base)[0]!;
  const rhs = base.rhs.toArray();
  const s = timeScale(A);
  const lam = scaledEig(A, s).values;
  // Burn-in: the covariance relaxes like exp(-2 lambda_min(A/s) t), the mean like exp(-lambda_min t);
  // exp(-12) leaves ~6e-6 of the initial offset, far below the standard errors (~1e-2 relative).
  const t = Math.ceil(12 / lam[0]!);
  assert.ok(t <= 200, `burn-in ${t} too long for this test`);
  const inp: SolveInput = {
    K: base.K.expand(chains, b, b),
    shift: base.shift.expand(chains),
    rhs: base.rhs.expand(chains, b),
  };
  const solver = thermodynamicSolver({ t, dt, kappa0, seed: 11 });
  const { alpha } = solver.solve(inp);
  const x = alpha.toArray();

  // Oracle moments.
  const mu = exactSolve(A, rhs).toArray();
  const C = linalg.inverse(tensor(A, f64)).mul(kappa0).toArray(); // kappa0 A^-1, row-major
  // Euler-Maruyama's exact stationary covariance kappa0 A^-1 (I - dt A/(2s))^-1: its gap to C is
  // the O(dt) bias, added to the tolerance (checked below to be small next to the sampling error).
  const Cem = linalg.inverse(tensor(A, f64).mm(eye(b, f64).sub(tensor(A, f64).mul(dt / (2 * s))))).mul(kappa0).toArray();

  // Sample moments by explicit loops.
  const m = new Array<number>(b).fill(0);
  for (let n = 0; n < chains; n++) for (let i = 0; i < b; i++) m[i]! += x[n * b + i]! / chains;
  const S = new Array<number>(b * b).fill(0);
  for (let n = 0; n < chains; n++) {
    for (let i = 0; i < b; i++) for (let j = 0; j < b; j++) S[i * b + j]! += (x[n * b + i]! - m[i]!) * (x[n * b + j]! - m[j]!) / (chains - 1);
  }

  // Tolerances from the standard errors of Gaussian sample moments over N independent chains:
  // se(mean_i) = sqrt(C_ii / N), se(S_ij) = sqrt((C_ii C_jj + C_ij^2) / N). A 4.5-sigma band per
  // entry (two-sided p ~ 7e-6, so ~1e-4 for all 14 checks together; the seed makes it deterministic).
  const Z = 4.5;
  for (let i = 0; i < b; i++) {
    const se = Math.sqrt(C[i * b + i]! / chains);
    assert.ok(Math.abs(m[i]! - mu[i]!) <= Z * se, `mean ${i}: ${m[i]} vs ${mu[i]} (se ${se})`);
  }
  const tolFor = (cov: number[], i: number, j: number, bias: number): number =>
    Z * Math.sqrt((cov[i * b + i]! * cov[j * b + j]! + cov[i * b + j]! ** 2) / chains) + bias;
  let wrongFails = false;
  for (let i = 0; i < b; i++) {
    for (let j = i; j < b; j++) {
      const bias = Math.abs(Cem[i * b + j]! - C[i * b + j]!);
      const se = Math.sqrt((C[i * b + i]! * C[j * b + j]! + C[i * b + j]! ** 2) / chains);
      assert.ok(bias <= 0.2 * se, `dt too large: EM bias ${bias} vs se ${se}`);
      const tol = tolFor(C, i, j, bias);
      assert.ok(Math.abs(S[i * b + j]! - C[i * b + j]!) <= tol, `cov[${i}][${j}]: ${S[i * b + j]} vs ${C[i * b + j]} (tol ${tol})`);
      // Power: the same test against twice the covariance (with its own, wider band) must fail.
      const twice = C.map((v) => 2 * v);
      if (Math.abs(S[i * b + j]! - twice[i * b + j]!) > tolFor(twice, i, j, 2 * bias)) wrongFails = true;
    }
  }
  assert.ok(wrongFails, 'a covariance of 2 kappa0 A^-1 would have passed: the test has no power');
  // The off-diagonal covariances are not negligible, so the test checks correlations too.
  assert.ok(Math.max(...[1, 2, 3].map((j) => Math.abs(C[j]!) / Math.sqrt(C[0]! * C[j * b + j]!))) > 0.2);
  solver.dispose();
}));

test('intermediate t: x(t) is the OU closed form e^{-At/s} x0 + (I - e^{-At/s}) A^-1 b up to the Euler error', () => leakCheck(() => {
  const b = 5;
  const inp = system(4, b, [1e4, 1, 1e-3], [0.05, 0.05, 0.05], 2 * b, [true, false, false]);
  const A = denseA(inp);
  const rhs = inp.rhs.toArray();
  const t = 4;
  const dt = 1e-3;
  const { alpha } = thermodynamicSolver({ t, dt }).solve(inp);
  A.forEach((Ag, g) => {
    const s = timeScale(Ag);
    const r = rhs.slice(g * b, (g + 1) * b);
    const xs = exactSolve(Ag, r);
    const x0 = ones([b], f64).mul(uniformC(Ag, r));
    const { values, vectors } = scaledEig(Ag, s);
    const at = (time: number): Tensor => {
      const E = vectors.mul(tensor(values.map((l) => Math.exp(-l * time)), f64)).mm(vectors.t());
      return E.matmul(x0).add(eye(b, f64).sub(E).matmul(xs));
    };
    const want = at(t);
    // Per mode, with n dt = t exactly: e^{-lt} >= (1 - dt l)^n >= e^{-lt} (1 - t dt l^2 / (2 (1 - dt l)))
    // (from log(1 - u) >= -u - u^2 / (2 (1 - u))), so the error is at most
    // max_l e^{-lt} t dt l^2 / (2 (1 - dt l)) times ||x0 - x*|| (A/s symmetric: modes orthogonal),
    // plus roundoff over n = 4000 steps (1e-11 of the solution's size).
    const d0 = x0.sub(xs).norm().item();
    const bound = Math.max(...values.map((l) => Math.exp(-l * t) * t * dt * l * l / (2 * (1 - dt * l)))) * d0
      + 1e-11 * (xs.norm().item() + x0.norm().item());
    const got = tensor(rowOf(alpha, g), f64);
    const err = got.sub(want).norm().item();
    assert.ok(err <= bound, `group ${g}: error ${err} > bound ${bound}`);
    // Not vacuous: t is intermediate (far from both ends), and 5% more or less time is visible.
    assert.ok(want.sub(xs).norm().item() > 100 * bound, `group ${g}: already converged`);
    assert.ok(want.sub(x0).norm().item() > 100 * bound, `group ${g}: has not moved`);
    for (const other of [0.95 * t, 1.05 * t]) {
      assert.ok(at(other).sub(want).norm().item() > 10 * bound, `group ${g}: time ${other} indistinguishable from ${t}`);
    }
  });
}));

test("warmStart 'previous' continues from the last raw alpha; a shape change falls back to uniform", () => leakCheck(() => {
  const b = 6;
  const inp = system(5, b, [10, 0.1], [0.06, 0.06], 2 * b, [true, false]);
  // Two calls of t = 3 from the previous result are one call of t = 6: the same 60 Euler steps.
  const prev = thermodynamicSolver({ t: 3, dt: 0.1, warmStart: 'previous' });
  const a1 = prev.solve(inp).alpha;
  const x0 = thermodynamicSolver({ t: 0 }).solve(inp).alpha;
  assert.ok(relErr(a1, x0) > 1e-3, 'the first call moved away from the uniform start');
  bitwiseEqual(a1, thermodynamicSolver({ t: 3, dt: 0.1 }).solve(inp).alpha, 'first call starts uniform');
  a1.fill_(123); // the caller owns what it got: the solver kept its own copy
  const a2 = prev.solve(inp).alpha;
  bitwiseEqual(a2, thermodynamicSolver({ t: 6, dt: 0.1 }).solve(inp).alpha, 'second call continues the first');

  // t = 0: the second call returns the first call's alpha, even for a changed system.
  const hold = thermodynamicSolver({ t: 0, warmStart: 'previous' });
  const h1 = hold.solve(inp).alpha;
  const other = system(6, b, [10, 0.1], [0.06, 0.06], 2 * b, [false, true]);
  bitwiseEqual(hold.solve(other).alpha, h1, 't = 0 holds the previous alpha');
  assert.ok(relErr(thermodynamicSolver({ t: 0 }).solve(other).alpha, h1) > 1e-3, 'the changed system has another uniform start');

  // Another batch size, or another number of groups: uniform again.
  for (const [label, changed] of [
    ['B - 1', system(7, b - 1, [10, 0.1], [0.06, 0.06])],
    ['G + 1', system(8, b, [10, 0.1, 1], [0.06, 0.06, 0.06])],
  ] as const) {
    bitwiseEqual(prev.solve(changed).alpha, thermodynamicSolver({ t: 3, dt: 0.1 }).solve(changed).alpha, `${label}: uniform fallback`);
  }
  prev.dispose();
  hold.dispose();
}));

test('stateDict / loadStateDict: a restored solver continues bitwise; seeds give reproducible noise', () => leakCheck(() => {
  const b = 5;
  const inp = system(9, b, [2, 0.5, 1e3], [0.05, 0.05, 0.05], 2 * b, [false, true, false]);
  const opts = { t: 2, dt: 0.1, kappa0: 0.3, seed: 7 };
  for (const warmStart of ['previous', 'uniform'] as const) {
    const a = thermodynamicSolver({ ...opts, warmStart });
    const outs = [0, 1, 2].map(() => a.solve(inp).alpha);
    // The call counter moves the noise stream on, whatever the warm start.
    assert.ok(relErr(outs[1]!, outs[0]!) > 1e-6, `${warmStart}: consecutive calls drew the same noise`);
    const sd = a.stateDict();
    assert.deepEqual([...sd.tensors.keys()], warmStart === 'previous' ? ['previous'] : []);
    const restored = thermodynamicSolver({ ...opts, warmStart });
    restored.solve(inp); // some state of its own, to be replaced
    restored.loadStateDict(sd);
    for (const t of sd.tensors.values()) t.dispose(); // the solver copied what it needs
    for (let k = 0; k < 2; k++) bitwiseEqual(restored.solve(inp).alpha, a.solve(inp).alpha, `${warmStart}: call ${4 + k} after restore`);
    a.dispose();
    restored.dispose();
  }

  // Same seed, same results; another seed, other results (and noise-free ignores the seed).
  const first = (o: object): Tensor => {
    const sv = thermodynamicSolver({ ...opts, ...o });
    const out = sv.solve(inp).alpha;
    sv.dispose();
    return out;
  };
  bitwiseEqual(first({}), first({}), 'same seed');
  assert.ok(relErr(first({ seed: 8 }), first({})) > 1e-6, 'another seed gave the same noise');
  bitwiseEqual(first({ kappa0: 0, seed: 1 }), first({ kappa0: 0, seed: 2 }), 'noise-free');

  // Bad state dicts are refused with a reason, and leave the solver as it was.
  const sv = thermodynamicSolver({ ...opts, warmStart: 'previous' });
  sv.solve(inp);
  const good = sv.stateDict();
  const meta = good.meta as Record<string, unknown>;
  const bad: [string, () => void, RegExp][] = [
    ['format', () => sv.loadStateDict({ tensors: new Map(), meta: { ...meta, format: 'x' } }), /not a thermodynamic solver state dict/],
    ['meta null', () => sv.loadStateDict({ tensors: new Map(), meta: null }), /not a thermodynamic solver state dict/],
    ['name', () => sv.loadStateDict({ tensors: new Map(), meta: { ...meta, name: 'cholesky' } }), /'cholesky' solver/],
    ['calls', () => sv.loadStateDict({ tensors: new Map(), meta: { ...meta, calls: -1 } }), /call counter/],
    ['shape', () => sv.loadStateDict({ tensors: new Map([['previous', ones([2, 3, 4], f64)]]), meta }), /\[G, B\]/],
    ['dtype', () => sv.loadStateDict({ tensors: new Map([['previous', ones([3, b])]]), meta }), /float64/],
    ['key', () => sv.loadStateDict({ tensors: new Map([['momentum', ones([3, b], f64)]]), meta }), /unexpected tensor 'momentum'/],
  ];
  const twin = thermodynamicSolver({ ...opts, warmStart: 'previous' });
  twin.loadStateDict(good);
  for (const [label, f, msg] of bad) assert.throws(f, msg, label);
  bitwiseEqual(sv.solve(inp).alpha, twin.solve(inp).alpha, 'state untouched by failed loads');
  for (const t of good.tensors.values()) t.dispose();
  sv.dispose();
  twin.dispose();
}));

test('options: defaults, settings, and bad values rejected naming the option', () => leakCheck(() => {
  assert.deepEqual(thermodynamicSolver().settings, { t: 50, dt: 0.1, kappa0: 0, warmStart: 'uniform', seed: 0, tau: 1e-6 });
  assert.equal(thermodynamicSolver().name, 'thermodynamic');
  const cases: [object, string][] = [
    [{ t: -1 }, 't'], [{ t: Number.NaN }, 't'], [{ t: Infinity }, 't'],
    [{ dt: 0 }, 'dt'], [{ dt: -0.1 }, 'dt'], [{ dt: 2 }, 'dt'],
    [{ kappa0: -1e-3 }, 'kappa0'],
    [{ warmStart: 'foo' }, 'warmStart'],
    [{ seed: -1 }, 'seed'], [{ seed: 1.5 }, 'seed'],
    [{ tau: 0 }, 'tau'],
  ];
  for (const [o, name] of cases) {
    assert.throws(() => thermodynamicSolver(o as never), (e: unknown) => e instanceof RangeError && e.message.includes(`'${name}'`), JSON.stringify(o));
  }
  // Step counts: the defaults give 500; a computed time t = 3 * 0.1 (0.30000000000000004, so
  // t / dt = 3.0000000000000004) is 3 steps, not 4.
  const inp = system(10, 3, [1], [0.03]);
  const sv = thermodynamicSolver();
  assert.deepEqual(sv.solve(inp).stats, { analog_s: 50 * 1e-6, thermo_steps: 500 });
  assert.equal(thermodynamicSolver({ t: 3 * 0.1, dt: 0.1 }).solve(inp).stats.thermo_steps, 3);
  // Bad inputs.
  assert.throws(() => sv.solve({ ...inp, K: inp.K.select(0, 0) }), /K must be \[G, B, B\]/);
  assert.throws(() => sv.solve({ ...inp, shift: ones([2], f64) }), /shift must be \[1\]/);
  assert.throws(() => sv.solve({ ...inp, rhs: ones([1, 4], f64) }), /rhs must be \[1, 3\]/);
  assert.throws(() => sv.solve({ ...inp, shift: tensor([Number.NaN], f64) }), /NaN or infinite/);
  sv.dispose();
}));
