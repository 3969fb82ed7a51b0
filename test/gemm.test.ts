// The engine's routed products against float64 `mm`: every route, autotuned or fixed, gives the
// same product up to float32 rounding, and the autotuner caches one route per shape (row counts
// rounded up to a power of two).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gemmNT, gemmRoute, gemmRoutes, gemmTN, setGemmAutotune, setGemmCache } from '../src/curvature/gemm.js';
import { setWarningHandler } from '../src/warnings.js';
import { getNumThreads, manualSeed, randn, scope } from '../src/tensor/index.js';
import { leakCheck, relErr } from './helpers.js';

const SHAPES: [number, number, number][] = [[128, 64, 96], [128, 784, 128], [64, 300, 10], [128, 512, 256]];

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
      assert.ok(relErr(gemmNT(x, y).double(), refNT) < 1e-5, `NT autotune ${on}`);
      assert.ok(relErr(gemmTN(u, v).double(), refTN) < 1e-5, `TN autotune ${on}`);
    }
    // float64 and anything off the CPU's float32 path is plain mm.
    assert.equal(gemmRoute('NT', x.double(), y.double()), 'mm');
  }
  setGemmAutotune(true);
})));

test('the autotuner measures a shape once and keeps its route; off, the fixed thresholds decide', () => leakCheck(() => scope(() => {
  manualSeed(6);
  setGemmAutotune(true);
  const x = randn([128, 784]);
  const y = randn([128, 784]);
  const first = gemmRoute('NT', x, y);
  assert.equal(gemmRoutes().size, 1);
  for (let i = 0; i < 3; i++) assert.equal(gemmRoute('NT', x, y), first, 'the cached route');
  assert.equal(gemmRoutes().size, 1, 'no new measurement for a known shape');
  // Sequence batches change the row counts every batch: counts within one octave share a measurement.
  assert.equal(gemmRoute('NT', randn([120, 784]), randn([97, 784])), first, 'rows 120 and 97 round up to 128');
  assert.equal(gemmRoutes().size, 1, 'no new measurement within the octave');
  gemmRoute('NT', randn([200, 784]), y);
  assert.equal(gemmRoutes().size, 2, 'rows 200: the next octave, measured once');
  setGemmAutotune(false);
  assert.equal(gemmRoutes().size, 0);
  assert.equal(gemmRoute('NT', x, y), 'conv', 'P = 784 >= 192');
  assert.equal(gemmRoute('NT', randn([128, 64]), randn([128, 64])), 'mm', 'P = 64 < 192');
  assert.equal(gemmRoute('TN', randn([128, 10]), randn([128, 256])), 'mm', '10 x 256 < 2^16');
  assert.equal(gemmRoutes().size, 0, 'fixed routes are not cached');
  setGemmAutotune(true);
})));

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
    const measured = gemmRoute('NT', x, y);
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
    gemmRoute('NT', x, y);
    assert.equal((JSON.parse(readFileSync(file, 'utf8')) as { machine: string }).machine, saved.machine);
    writeFileSync(file, '{ not json');
    setGemmCache(file);
    gemmRoute('NT', x, y);
    assert.ok(warnings.some((w) => /routes\.json is not JSON.*measuring again/.test(w)), warnings.join('\n'));
    assert.equal((JSON.parse(readFileSync(file, 'utf8')) as { machine: string }).machine, saved.machine, 'rewritten whole');
    // Another run's routes in the same file are kept when this one writes.
    writeFileSync(file, JSON.stringify({ machine: saved.machine, routes: { 'NT:1x1x1:float32:cpu:t1': 'mm' } }));
    setGemmCache(file);
    gemmRoute('NT', randn([64, 300]), randn([64, 300]));
    const merged = (JSON.parse(readFileSync(file, 'utf8')) as { routes: Record<string, string> }).routes;
    assert.equal(merged['NT:1x1x1:float32:cpu:t1'], 'mm');
    assert.equal(Object.keys(merged).length, 2);
    // An unwritable file: said once, the product still computed.
    setGemmCache(join(dir, 'no-such-dir', 'routes.json'));
    warnings.length = 0;
    gemmRoute('NT', x, y);
    gemmRoute('NT', randn([64, 300]), randn([64, 300]));
    assert.equal(warnings.filter((w) => /cannot be written/.test(w)).length, 1, warnings.join('\n'));
  } finally {
    setGemmCache(null);
    setWarningHandler(previous);
    rmSync(dir, { recursive: true, force: true });
  }
})));
