// The engine's routed products against float64 `mm`: every route, autotuned or fixed, gives the
// same product up to float32 rounding, and the autotuner times the routes inside the products it is
// asked for, then caches one route per shape (row counts rounded up to a power of two).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decide, gemmNT, gemmRoute, gemmRoutes, gemmState, gemmTN, restoreGemmState, setGemmAutotune, setGemmCache, type GemmRoute } from '../src/curvature/gemm.js';
import { setWarningHandler } from '../src/warnings.js';
import { getNumThreads, manualSeed, randn, scope, type Tensor } from '../src/tensor/index.js';
import { leakCheck, relErr } from './helpers.js';

const SHAPES: [number, number, number][] = [[128, 64, 96], [128, 784, 128], [64, 300, 10], [128, 512, 256]];

/** Runs X Y^T until its key has a route (each route timed TRIALS = 4 times, or once when slow); the route and the products run. */
function settle(x: Tensor, y: Tensor): { route: GemmRoute; runs: number } {
  let runs = 0;
  while (gemmRoute('NT', x, y) === null) {
    scope(() => gemmNT(x, y));
    runs += 1;
    assert.ok(runs <= 8, 'decided after at most 4 runs of each route');
  }
  return { route: gemmRoute('NT', x, y)!, runs };
}

test('routed products equal float64 mm up to float32 rounding, on every route and with autotuning on or off', () => leakCheck(() => scope(() => {
  manualSeed(5);
  for (const [a, p, b] of SHAPES) {
    const x = randn([a, p]);
    const y = randn([b, p]);
    const refNT = x.double().mm(y.double().t());
    const u = randn([p, a]);
    const v = randn([p, b]);
    const refTN = u.double().t().mm(v.double());
    for (const route of ['mm', 'conv'] as const) {
      assert.ok(relErr(gemmNT(x, y, route).double(), refNT) < 1e-5, `NT ${route} [${a}, ${p}] x [${b}, ${p}]^T`);
      assert.ok(relErr(gemmTN(u, v, route).double(), refTN) < 1e-5, `TN ${route} [${p}, ${a}]^T x [${p}, ${b}]`);
    }
    for (const on of [true, false]) {
      setGemmAutotune(on);
      // Autotuned, the first products alternate between the routes (timed), then keep the faster.
      for (let i = 0; i < 10; i++) {
        assert.ok(relErr(gemmNT(x, y).double(), refNT) < 1e-5, `NT autotune ${on}, product ${i}`);
        assert.ok(relErr(gemmTN(u, v).double(), refTN) < 1e-5, `TN autotune ${on}, product ${i}`);
      }
    }
    // float64 and anything off the CPU's float32 path is plain mm.
    assert.equal(gemmRoute('NT', x.double(), y.double()), 'mm');
  }
  setGemmAutotune(true);
})));

test('the autotuner times a shape inside its first products and keeps the faster route; off, the fixed thresholds decide', () => leakCheck(() => scope(() => {
  manualSeed(6);
  setGemmAutotune(true);
  const x = randn([128, 784]);
  const y = randn([128, 784]);
  assert.equal(gemmRoute('NT', x, y), null, 'not timed yet');
  const { route: first, runs } = settle(x, y);
  assert.ok(runs === 8 || runs === 2, `four runs of each route (one each when slow), got ${runs}`);
  assert.equal(gemmRoutes().size, 1);
  for (let i = 0; i < 3; i++) {
    gemmNT(x, y);
    assert.equal(gemmRoute('NT', x, y), first, 'the cached route');
  }
  assert.equal(gemmRoutes().size, 1, 'no new measurement for a known shape');
  // Sequence batches change the row counts every batch: counts within one octave share a measurement.
  assert.equal(gemmRoute('NT', randn([120, 784]), randn([97, 784])), first, 'rows 120 and 97 round up to 128');
  assert.equal(gemmRoutes().size, 1, 'no new measurement within the octave');
  assert.equal(gemmRoute('NT', randn([200, 784]), y), null, 'rows 200: the next octave');
  settle(randn([200, 784]), y);
  assert.equal(gemmRoutes().size, 2, 'rows 200: measured once');
  setGemmAutotune(false);
  assert.equal(gemmRoutes().size, 0);
  assert.equal(gemmRoute('NT', x, y), 'conv', 'P = 784 >= 192');
  assert.equal(gemmRoute('NT', randn([128, 64]), randn([128, 64])), 'mm', 'P = 64 < 192');
  assert.equal(gemmRoute('TN', randn([128, 10]), randn([128, 256])), 'mm', '10 x 256 < 2^16');
  assert.equal(gemmRoutes().size, 0, 'fixed routes are not cached');
  setGemmAutotune(true);
})));

test('the route decision: medians without the warm-up run, oneDNN only by a 5% margin, slow products from one run each', () => {
  assert.equal(decide({ mm: [9], conv: [] }), null, 'conv not run yet');
  assert.equal(decide({ mm: [9, 2, 2], conv: [9, 1, 1] }), null, 'three runs of each are not enough');
  assert.equal(decide({ mm: [1, 2, 2, 2], conv: [9, 1.5, 1.5, 1.5] }), 'conv', 'the warm-up runs do not count');
  assert.equal(decide({ mm: [1, 2, 2, 2], conv: [1, 1.95, 1.95, 1.95] }), 'mm', 'within the margin: mm');
  assert.equal(decide({ mm: [2, 2, 5, 2], conv: [2, 1.8, 1.8, 9] }), 'conv', 'medians, not means: one disturbed run does not decide');
  assert.equal(decide({ mm: [80], conv: [60] }), 'conv', 'slow on both routes: the first runs decide');
  assert.equal(decide({ mm: [80], conv: [79] }), 'mm', 'slow, within the margin');
  assert.equal(decide({ mm: [80], conv: [30] }), null, 'slow on one route only: timed like the others');
});

test('measured routes persist in a cache file: read back instead of measured, ignored from another machine, a corrupt file is replaced', () => leakCheck(() => scope(() => {
  const dir = mkdtempSync(join(tmpdir(), 'fngd-gemm-'));
  const file = join(dir, 'routes.json');
  const warnings: string[] = [];
  const previous = setWarningHandler((m) => warnings.push(m));
  try {
    manualSeed(7);
    const x = randn([128, 784]);
    const y = randn([128, 784]);
    setGemmCache(file);
    const measured = settle(x, y).route;
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { machine: string; routes: Record<string, string> };
    const key = `NT:128x128x784:float32:cpu:t${getNumThreads()}`;
    assert.deepEqual(saved.routes, { [key]: measured });
    assert.match(saved.machine, /"cpu":/);
    // The other route written into the file: a new process (here: a cleared cache) takes the file's word.
    const other = measured === 'mm' ? 'conv' : 'mm';
    writeFileSync(file, JSON.stringify({ machine: saved.machine, routes: { [key]: other } }));
    setGemmCache(file);
    assert.equal(gemmRoute('NT', x, y), other, 'read from the file, not measured');
    // Written on another machine: ignored, measured again, and the file now names this machine.
    writeFileSync(file, JSON.stringify({ machine: 'elsewhere', routes: { [key]: other } }));
    setGemmCache(file);
    assert.equal(gemmRoute('NT', x, y), null, 'measured again');
    settle(x, y);
    assert.equal((JSON.parse(readFileSync(file, 'utf8')) as { machine: string }).machine, saved.machine);
    writeFileSync(file, '{ not json');
    setGemmCache(file);
    settle(x, y);
    assert.ok(warnings.some((w) => /routes\.json is not JSON.*measuring again/.test(w)), warnings.join('\n'));
    assert.equal((JSON.parse(readFileSync(file, 'utf8')) as { machine: string }).machine, saved.machine, 'rewritten whole');
    // Another run's routes in the same file are kept when this one writes.
    writeFileSync(file, JSON.stringify({ machine: saved.machine, routes: { 'NT:1x1x1:float32:cpu:t1': 'mm' } }));
    setGemmCache(file);
    settle(randn([64, 300]), randn([64, 300]));
    const merged = (JSON.parse(readFileSync(file, 'utf8')) as { routes: Record<string, string> }).routes;
    assert.equal(merged['NT:1x1x1:float32:cpu:t1'], 'mm');
    assert.equal(Object.keys(merged).length, 2);
    // An unwritable file: said once, the product still computed.
    setGemmCache(join(dir, 'no-such-dir', 'routes.json'));
    warnings.length = 0;
    settle(x, y);
    settle(randn([64, 300]), randn([64, 300]));
    assert.equal(warnings.filter((w) => /cannot be written/.test(w)).length, 1, warnings.join('\n'));
  } finally {
    setGemmCache(null);
    setWarningHandler(previous);
    rmSync(dir, { recursive: true, force: true });
  }
})));

test('the autotuner\'s state round-trips (a resumed run takes the routes and the timings in progress of the run it continues); not from another machine', () => leakCheck(() => scope(() => {
  manualSeed(8);
  setGemmAutotune(true);
  const x = randn([128, 784]);
  const y = randn([128, 784]);
  const decided = settle(x, y).route;
  const u = randn([64, 300]);
  const v = randn([64, 300]);
  gemmNT(u, v);
  gemmNT(u, v); // one run of each route so far
  const saved = JSON.parse(JSON.stringify(gemmState())) as ReturnType<typeof gemmState>;
  assert.equal(Object.keys(saved.trials).length, 1);
  setGemmAutotune(true); // a new process: nothing measured
  assert.equal(gemmRoute('NT', x, y), null);
  assert.ok(restoreGemmState(saved));
  assert.equal(gemmRoute('NT', x, y), decided, 'the saved route');
  assert.equal(settle(u, v).runs, 6, 'the timing in progress continues: 3 more runs of each route');
  const warnings: string[] = [];
  const previous = setWarningHandler((m) => warnings.push(m));
  try {
    setGemmAutotune(true);
    assert.equal(restoreGemmState({ ...saved, machine: 'elsewhere' }), false);
    assert.equal(gemmRoutes().size, 0, 'another machine\'s routes are not taken');
    assert.match(warnings.join('\n'), /routes are not used \(they were measured on another machine\)/);
    setGemmAutotune(false);
    assert.equal(restoreGemmState(saved), false, 'autotuning off: the fixed routes stay');
    assert.match(warnings.join('\n'), /routes are not used \(autotuning is off\)/);
    setGemmAutotune(true);
    // A damaged entry is skipped, the rest taken.
    const damaged = { ...saved, trials: { ...saved.trials, 'NT:1x1x1:float32:cpu:t1': { mm: 'x', conv: [1] } } } as unknown as typeof saved;
    assert.ok(restoreGemmState(damaged));
    assert.equal(gemmRoute('NT', x, y), decided);
  } finally {
    setWarningHandler(previous);
    setGemmAutotune(true);
  }
})));
