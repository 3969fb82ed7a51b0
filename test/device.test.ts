// Every method on an accelerator gives what it gives on the CPU: the CPU run is the oracle (float64,
// the same weights and batch). The device is FNGD_TEST_DEVICE (cuda, cuda:1; `cpu` runs this file's
// code on a machine without one), else CUDA when this libtorch build has a device. Without any, the
// tests are skipped with that reason (CI's CPU build). scripts/gpu-check.sh sets
// FNGD_REQUIRE_DEVICE=1, which turns a missing device into a failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crossEntropyPerSample, type Module, type Sequential } from '../src/nn/index.js';
import { SGD } from '../src/optim/index.js';
import { CurvatureEngine } from '../src/curvature/index.js';
import { engineSgd, fastIef, fngd, ief, kfac, ngd, thermodynamicNgd, type Preconditioner } from '../src/precondition/index.js';
import * as T from '../src/tensor/index.js';
import { cat, cuda, keep, scope, type Device, type Tensor } from '../src/tensor/index.js';
import { relErr, tinyCnn, tinyMlp } from './helpers.js';

const DEVICE: Device | null = (process.env.FNGD_TEST_DEVICE as Device | undefined) ?? (cuda.isAvailable() ? 'cuda' : null);
if (DEVICE === null && process.env.FNGD_REQUIRE_DEVICE === '1') {
  throw new Error('FNGD_REQUIRE_DEVICE=1 but this libtorch build has no CUDA device (and FNGD_TEST_DEVICE is not set)');
}
const skip = DEVICE === null ? 'no CUDA device in this libtorch build (scripts/gpu-check.sh runs these on a GPU)' : false;
const f64 = { dtype: 'float64' as const };

interface Pair { cpu: Sequential; dev: Sequential; x: Tensor; y: Tensor; xd: Tensor; yd: Tensor; ids: Int32Array }

/** The same model twice (one moved to the device) and one batch on both. */
function pair(make: (g: T.Generator) => Sequential, shape: number[], b: number, seed: number): Pair {
  const cpu = make(new T.Generator(seed));
  const dev = make(new T.Generator(seed)).to(DEVICE!);
  const g = new T.Generator(seed + 1);
  const x = keep(T.randn([b, ...shape], { ...f64, generator: g }));
  const y = keep(T.randint(0, 3, [b], { generator: g }));
  return { cpu, dev, x, y, xd: keep(x.to(DEVICE!)), yd: keep(y.to(DEVICE!)), ids: Int32Array.from({ length: b }, (_, i) => i) };
}
function free(p: Pair): void {
  for (const t of [p.x, p.y, p.xd, p.yd]) t.dispose();
  p.cpu.dispose();
  p.dev.dispose();
}
const flatGrad = (m: Module): Tensor => cat(m.parameters().map((q) => q.grad!.reshape(-1).to('cpu')));
const flatParams = (m: Module): Tensor => cat(m.parameters().map((q) => q.detach().reshape(-1).to('cpu')));

const METHODS: [string, (m: Module, n: number) => Preconditioner][] = [
  ['engine SGD', (m) => engineSgd(m)],
  ['NGD', (m) => ngd(m, { damping: 0.1 })],
  ['NGD global', (m) => ngd(m, { damping: 0.1, mode: 'global' })],
  ['FNGD', (m, n) => fngd(m, { numSamples: n, damping: 0.1 })],
  ['iEF', (m) => ief(m, { damping: 0.1 })],
  ['fast iEF', (m, n) => fastIef(m, { numSamples: n, damping: 0.1 })],
  ['thermodynamic NGD', (m) => thermodynamicNgd(m, { damping: 1, t: 5, dt: 0.1 })],
  ['KFAC', (m) => kfac(m, { covUpdateEvery: 1, invUpdateEvery: 1 })],
];

test(`every method's direction and update on ${DEVICE ?? 'a device'} equal the CPU's (float64, MLP and CNN, solve and reuse epochs)`, { skip }, () => scope(() => {
  for (const [make, shape] of [[tinyMlp, [4]], [tinyCnn, [2, 4, 4]]] as const) {
    for (const [name, method] of METHODS) {
      const p = pair(make, [...shape], 6, 31);
      const opts = (m: Module): SGD => new SGD(m.parameters(), { lr: 0.1, momentum: 0.9, preconditioner: method(m, 6) });
      const [oc, od] = [opts(p.cpu), opts(p.dev)];
      for (const epoch of [0, 1, 1]) {
        const sc = oc.step({ perSampleLoss: crossEntropyPerSample(p.cpu.forward(p.x), p.y), sampleIds: p.ids, epoch });
        const sd = od.step({ perSampleLoss: crossEntropyPerSample(p.dev.forward(p.xd), p.yd), sampleIds: p.ids, epoch });
        const what = `${name} on ${make.name}, epoch ${epoch}`;
        assert.equal(sd.reused, sc.reused, `${what}: reuse`);
        assert.ok(relErr(flatGrad(p.dev), flatGrad(p.cpu)) < 1e-10, `${what}: direction ${relErr(flatGrad(p.dev), flatGrad(p.cpu))}`);
        assert.ok(relErr(flatParams(p.dev), flatParams(p.cpu)) < 1e-10, `${what}: parameters after the update`);
      }
      const on = DEVICE === 'cuda' ? 'cuda:0' : DEVICE!;
      assert.ok(p.dev.parameters().every((q) => q.device === on && q.grad!.device === on), `${name}: parameters and directions stay on ${on}`);
      oc.dispose();
      od.dispose();
      free(p);
    }
  }
}));

test(`per-layer Grams and the weighted backward on ${DEVICE ?? 'a device'} equal the CPU's (gradient hooks that cannot run fall back)`, { skip }, () => scope(() => {
  const p = pair(tinyCnn, [2, 4, 4], 5, 37);
  const [ec, ed] = [new CurvatureEngine(p.cpu), new CurvatureEngine(p.dev)];
  const [cc, cd] = [ec.capture(crossEntropyPerSample(p.cpu.forward(p.x), p.y)), ed.capture(crossEntropyPerSample(p.dev.forward(p.xd), p.yd))];
  for (const [name, k] of cc.grams()) assert.ok(relErr(cd.grams().get(name)!.to('cpu'), k) < 1e-10, `Gram of ${name}`);
  cc.dispose();
  cd.dispose();
  const alpha = T.tensor([0.3, -0.1, 0.5, 0.2, 0.1], f64);
  ec.weightedBackward(crossEntropyPerSample(p.cpu.forward(p.x), p.y), alpha);
  const where = ed.weightedBackward(crossEntropyPerSample(p.dev.forward(p.xd), p.yd), alpha.to(DEVICE!));
  assert.equal(where.inBackward.length + where.afterBackward.length, ec.layers.length, 'every covered layer is done, in or after the backward');
  assert.ok(relErr(flatGrad(p.dev), flatGrad(p.cpu)) < 1e-10, 'sum_i alpha_i g_i');
  ec.dispose();
  ed.dispose();
  free(p);
}));
