// Issue 16: the conveniences a user of the library needs (gradient hooks and clipping for every
// method, schedules, an iterable loader, metrics, a task from one's own parts, checkpoints with
// one's own state, per-step callbacks, the CLI's version and help) and the misuses that must fail
// with a clear error (update() without step() on a per-sample method, a stale optimizer after
// a disposed model, an FNGD store sized by a subset); Module.to() in place.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  data, keep, liveTensors, loadCheckpoint, manualSeed, metrics, nn, optim, precondition, randint, randn, saveCheckpoint,
  scope, supervisedTask, tensor, Trainer, type Tensor, type StepRecord,
} from '../src/index.js';

const f64 = { dtype: 'float64' as const };

interface Batch extends data.BaseBatch { x: Tensor; y: Tensor }

/** n samples of 4 features, 3 classes, in float64. */
class Toy implements data.Dataset<Batch> {
  readonly x: Tensor;
  readonly y: Tensor;
  constructor(readonly length: number, seed: number) {
    manualSeed(seed);
    this.x = keep(randn([length, 4], f64));
    this.y = keep(randint(0, 3, [length]));
  }
  batch(indices: Int32Array): Batch {
    const idx = tensor(indices, { dtype: 'int64' });
    return { ids: indices, x: this.x.indexSelect(0, idx), y: this.y.indexSelect(0, idx) };
  }
  dispose(): void {
    this.x.dispose();
    this.y.dispose();
  }
}

function mlp(): nn.Sequential {
  return new nn.Sequential(new nn.Linear(4, 6, f64), new nn.Tanh(), new nn.Linear(6, 3, f64));
}

const lossOf = (model: nn.Sequential, b: Batch): Tensor => nn.crossEntropyPerSample(model.forward(b.x), b.y);
const stepInput = (model: nn.Sequential, b: Batch, epoch = 0) => ({ perSampleLoss: lossOf(model, b), sampleIds: b.ids, epoch });
const gradNorm = (ps: readonly Tensor[]): number => Math.sqrt(ps.reduce((s, p) => s + scope(() => (p.grad === null ? 0 : p.grad.double().square().sum().item())), 0));

test('a gradient hook sees every method\'s direction before the update, and clipGradNorm clips it', () => {
  const ds = new Toy(16, 1);
  for (const make of [
    (m: nn.Module) => null,
    (m: nn.Module) => precondition.ngd(m, { damping: 0.1 }),
    (m: nn.Module) => precondition.fngd(m, { numSamples: ds.length, damping: 0.1 }),
    (m: nn.Module) => precondition.kfac(m),
  ]) {
    manualSeed(0);
    const model = mlp();
    const opt = new optim.SGD(model.parameters(), { lr: 0.1, preconditioner: make(model) });
    const seen: number[] = [];
    const after: number[] = [];
    const remove = opt.addGradientHook((params, stats) => {
      seen.push(gradNorm(params));
      const total = optim.clipGradNorm(params, 1e-3);
      after.push(gradNorm(params));
      stats.clippedFrom = total;
    });
    const before = model.parameters().map((p) => p.toArray());
    const stats = scope(() => opt.step(stepInput(model, ds.batch(Int32Array.from({ length: 16 }, (_, i) => i)))));
    assert.equal(seen.length, 1, opt.label);
    assert.ok(seen[0]! > 1e-3, `${opt.label}: direction norm ${seen[0]}`);
    assert.ok(Math.abs(stats.clippedFrom! - seen[0]!) < 1e-9 * seen[0]!, 'clipGradNorm returns the norm before clipping');
    assert.ok(Math.abs(after[0]! - 1e-3) < 1e-8, `${opt.label}: clipped norm ${after[0]}`);
    // The update applied the clipped direction: |delta p| = lr * 1e-3.
    const delta = Math.sqrt(model.parameters().reduce((s, p, i) => s + p.toArray().reduce((t, v, j) => t + (v - before[i]![j]!) ** 2, 0), 0));
    assert.ok(Math.abs(delta - 0.1 * 1e-3) < 1e-8, `${opt.label}: step length ${delta}`);
    remove();
    scope(() => opt.step(stepInput(model, ds.batch(Int32Array.from([0, 1, 2, 3])), 1)));
    assert.equal(seen.length, 1, 'a removed hook no longer runs');
    opt.dispose();
    model.dispose();
  }
  ds.dispose();
});

test('clipGradNorm: the total 2-norm and inf-norm over all gradients, no change below maxNorm, bad options named', () => {
  const a = tensor([3, 0], f64).requiresGrad_();
  const b = tensor([4], f64).requiresGrad_();
  const c = tensor([1], f64).requiresGrad_(); // no grad: skipped
  a.grad = tensor([3, 0], f64);
  b.grad = tensor([4], f64);
  assert.equal(optim.clipGradNorm([a, b, c], 10), 5);
  assert.deepEqual(a.grad!.toArray(), [3, 0], 'below maxNorm nothing changes');
  assert.equal(optim.clipGradNorm([a, b, c], 1), 5);
  assert.ok(Math.abs(gradNorm([a, b]) - 1) < 1e-6);
  b.grad = tensor([-8], f64);
  const inf = optim.clipGradNorm([a, b], 2, { normType: Infinity });
  assert.equal(inf, 8);
  assert.ok(Math.abs(b.grad!.item() + 2) < 1e-6);
  assert.throws(() => optim.clipGradNorm([a], -1), /maxNorm must be a finite number >= 0, got -1/);
  b.grad = tensor([NaN], f64);
  assert.throws(() => optim.clipGradNorm([a, b], 1, { errorIfNonfinite: true }), /total 2-norm of the gradients is NaN/);
  for (const t of [a, b, c]) t.dispose();
});

test('update() without step() is refused when the direction needs per-sample losses; computeDirection + update is step', () => {
  const ds = new Toy(8, 2);
  manualSeed(0);
  const model = mlp();
  const opt = new optim.SGD(model.parameters(), { lr: 0.1, preconditioner: precondition.fngd(model, { numSamples: ds.length }) });
  const before = model.parameters().map((p) => p.toArray());
  scope(() => lossOf(model, ds.batch(Int32Array.from([0, 1, 2, 3]))).mean().backward());
  assert.throws(() => opt.update(), /FNGD\.update: no FNGD direction to apply\. FNGD computes its direction from per-sample losses: call step\(/);
  assert.deepEqual(model.parameters().map((p) => p.toArray()), before, 'nothing changed');
  scope(() => opt.computeDirection(stepInput(model, ds.batch(Int32Array.from([0, 1, 2, 3])))));
  opt.update();
  assert.notDeepEqual(model.parameters().map((p) => p.toArray()), before);
  assert.throws(() => opt.update(), /no FNGD direction to apply/, 'a direction is applied once');
  // Plain SGD keeps PyTorch's backward-then-update.
  const sgd = new optim.SGD(model.parameters(), { lr: 0.1 });
  scope(() => lossOf(model, ds.batch(Int32Array.from([0, 1]))).mean().backward());
  sgd.update();
  opt.dispose();
  model.dispose();
  ds.dispose();
});

test('Module.to() moves parameters in place: an optimizer built before keeps training the model; a disposed model\'s optimizer is named stale', () => {
  const ds = new Toy(8, 3);
  manualSeed(0);
  const model = mlp();
  const params = model.parameters();
  const opt = new optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9, preconditioner: precondition.ngd(model) });
  model.to('float32');
  assert.ok(model.parameters().every((p, i) => p === params[i] && p.dtype === 'float32' && p.isLeaf && p.requiresGrad), 'same objects, moved');
  const b = (): Batch => {
    const x = ds.batch(Int32Array.from([0, 1, 2, 3]));
    return { ...x, x: x.x.to('float32') };
  };
  const w0 = params[0]!.toArray();
  for (let k = 0; k < 2; k++) scope(() => opt.step(stepInput(model, b())));
  assert.notDeepEqual(params[0]!.toArray(), w0, 'the optimizer built before to() updated the moved parameters');
  assert.equal(params[0]!.dtype, 'float32');

  // A model disposed under its optimizer: the next step says the optimizer is stale.
  const other = mlp();
  model.dispose();
  assert.throws(() => scope(() => opt.step(stepInput(other, ds.batch(Int32Array.from([0, 1]))))),
    /NGD\.step: parameter 0 \(of 4\) of this optimizer has been disposed \(its model was disposed.*This optimizer is stale: dispose\(\) it/);
  assert.throws(() => opt.update(), /NGD\.update: parameter 0 \(of 4\).*stale/);
  opt.dispose();
  other.dispose();
  ds.dispose();
});

test('an FNGD store sized by a loader\'s subset: the error names the dataset length', () => {
  const ds = new Toy(100, 4);
  const loader = new data.DataLoader(ds, { batchSize: 10, limit: 20, subsetSeed: 1, shuffle: true });
  const model = mlp();
  const opt = new optim.SGD(model.parameters(), { lr: 0.1, preconditioner: precondition.fngd(model, { numSamples: loader.numSamples }) });
  const ep = loader.epoch(0);
  assert.throws(() => {
    for (let k = 0; k < ep.length; k++) scope(() => opt.step({ ...stepInput(model, ep.batch(k)), sampleIds: ep.indices(k) }));
  }, /sample id \d+ outside \[0, 20\): the store keyed by sample id was sized for numSamples = 20, which must be the dataset's length \(dataset\.length.*not a loader's subset size \(loader\.numSamples\)/);
  opt.dispose();
  model.dispose();
  ds.dispose();
});

test('schedules: MultiStep, Exponential and OneCycle as PyTorch defines them; ReduceLROnPlateau\'s patience, cooldown and state', () => {
  const ms = optim.multiStep({ milestones: [2, 5], gamma: 0.5 });
  assert.deepEqual([0, 1, 2, 4, 5, 9].map((t) => ms(t, 1)), [1, 1, 0.5, 0.5, 0.25, 0.25]);
  assert.throws(() => optim.multiStep({ milestones: [5, 2] }), /milestones' must increase/);
  const ex = optim.exponential({ gamma: 0.9 });
  assert.ok(Math.abs(ex(3, 2) - 2 * 0.729) < 1e-15);
  // OneCycleLR(max_lr=1, total_steps=10, pct_start=0.3): warm-up ends at step 2, 1/25 -> 1 by cosine, then -> 1/25/1e4 at step 9.
  const oc = optim.oneCycle({ totalSteps: 10 });
  const start = 1 / 25;
  const end = start / 1e4;
  const cosI = (a: number, b: number, x: number): number => b + ((a - b) / 2) * (Math.cos(Math.PI * x) + 1);
  const want = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((t) => (t <= 2 ? cosI(start, 1, t / 2) : cosI(1, end, (t - 2) / 7)));
  const got = want.map((_, t) => oc(t, 1));
  got.forEach((v, t) => assert.ok(Math.abs(v - want[t]!) < 1e-15, `t=${t}: ${v} vs ${want[t]}`));
  assert.ok(Math.abs(got[0]! - start) < 1e-15);
  assert.ok(Math.abs(got[2]! - 1) < 1e-15);
  assert.ok(Math.abs(got[9]! - end) < 1e-18);
  assert.throws(() => oc(10, 1), /t = 10 is past totalSteps = 10/);
  const lin = optim.oneCycle({ totalSteps: 10, anneal: 'linear' });
  assert.ok(Math.abs(lin(1, 1) - (start + (1 - start) / 2)) < 1e-15);

  const p = tensor([0], f64).requiresGrad_();
  const opt = new optim.SGD([p], { lr: 1 });
  const plateau = new optim.ReduceLrOnPlateau(opt, { patience: 1, factor: 0.5, cooldown: 1 });
  const lrs = [5, 4, 4, 4, 4, 4, 4].map((m) => plateau.step(m)[0]);
  // best 4 at epoch 1; bad epochs 2, 3 -> reduce after epoch 3 (2 > patience 1); cooldown skips epoch 4; 5, 6 bad -> reduce.
  assert.deepEqual(lrs, [1, 1, 1, 0.5, 0.5, 0.5, 0.25]);
  const saved = plateau.stateDict();
  const again = new optim.ReduceLrOnPlateau(opt, { patience: 1, factor: 0.5, cooldown: 1 });
  again.loadStateDict(saved);
  assert.deepEqual(again.stateDict(), saved);
  assert.throws(() => new optim.ReduceLrOnPlateau(opt, { factor: 2 }), /option 'factor' must be in \(0, 1\), got 2/);
  p.dispose();
});

test('a DataLoader is iterable: each loop walks the next epoch, the batches epoch(e) gives', () => {
  const ds = new Toy(10, 5);
  const loader = new data.DataLoader(ds, { batchSize: 4, train: true, seed: 7 });
  for (let e = 0; e < 2; e++) {
    assert.equal(loader.nextEpoch, e);
    const ids: number[][] = [];
    for (const b of loader) {
      ids.push([...b.ids]);
      data.disposeBatch(b);
    }
    const ep = loader.epoch(e);
    assert.deepEqual(ids, Array.from({ length: ep.length }, (_, k) => [...ep.indices(k)]));
  }
  ds.dispose();
});

test('metrics: top-k accuracy, the loss and a user-defined per-sample mean', () => {
  const logits = tensor([[3, 2, 1], [1, 3, 2], [1, 2, 3], [3, 1, 2]], f64);
  const y = tensor([1, 1, 0, 2], { dtype: 'int64' });
  const b = { ids: Int32Array.from([0, 1, 2, 3]), y };
  const top1 = metrics.accuracy<typeof b>((x) => x.y);
  const top2 = metrics.topKAccuracy<typeof b>(2, (x) => x.y);
  const mine = metrics.meanMetric<typeof b>((out) => out.max(1)[0]);
  for (const m of [top1, top2, mine]) {
    m.reset();
    m.update(logits, b);
  }
  assert.equal(top1.compute(), 1 / 4);
  assert.equal(top2.compute(), 3 / 4);
  assert.equal(mine.compute(), 3);
  assert.throws(() => metrics.topKAccuracy(4, () => y).update(logits, b), /k = 4 is more than the 3 classes/);
  logits.dispose();
  y.dispose();
});

test('supervisedTask + Trainer: per-step callbacks, metrics by name, checkpoints with a state of one\'s own', async () => {
  const before = liveTensors().tensors;
  const train = new Toy(24, 6);
  const evalSet = new Toy(12, 7);
  const dir = mkdtempSync(join(tmpdir(), 'fngd-usability-'));
  try {
    const build = () => {
      manualSeed(0);
      const model = mlp();
      const opt = new optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9, preconditioner: precondition.fngd(model, { numSamples: train.length }) });
      const task = supervisedTask<Batch>({
        model,
        trainLoader: new data.DataLoader(train, { batchSize: 8, train: true, seed: 1 }),
        evalLoaders: { val: new data.DataLoader(evalSet, { batchSize: 5 }) },
        forward: (b) => model.forward(b.x),
        loss: (out, b) => nn.crossEntropyPerSample(out, b.y),
        metrics: { top1: metrics.accuracy((b) => b.y), top2: metrics.topKAccuracy(2, (b) => b.y) },
      });
      return { model, opt, task };
    };
    const a = build();
    assert.equal(a.task.metric, 'top1');
    const steps: StepRecord[] = [];
    const res = await new Trainer(a.task, a.opt, { epochs: 2, seed: 0, progress: false, outDir: join(dir, 'run'), onStep: (r) => steps.push(r) }).fit();
    // log.csv: the epoch records of log.jsonl as CSV, same columns, same numbers.
    const csv = readFileSync(join(dir, 'run', 'log.csv'), 'utf8').trim().split('\n').map((l) => l.split(','));
    const jsonl = readFileSync(join(dir, 'run', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    assert.deepEqual(csv[0], Object.keys(jsonl[0]!));
    assert.deepEqual(csv.slice(1).map((row) => row.map(Number)), jsonl.map((r) => Object.values(r)));
    assert.equal(steps.length, 6);
    assert.deepEqual(steps.map((s) => [s.epoch, s.step]), [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]);
    assert.deepEqual(steps.map((s) => s.stats?.reused), [0, 0, 0, 1, 1, 1], 'FNGD solved in epoch 0, reused in epoch 1');
    const last = res.epochs.at(-1)!;
    for (const k of ['val_loss', 'val_top1', 'val_top2', 'val_metric']) assert.ok(Number.isFinite(last[k]), k);
    assert.equal(last.val_metric, last.val_top1);
    assert.ok(last.val_top2 >= last.val_top1);

    const path = join(dir, 'mine.safetensors');
    saveCheckpoint(path, a.model, a.opt, { nextEpoch: 2, note: 'mine' });
    const b = build();
    const state = loadCheckpoint<{ nextEpoch: number; note: string }>(path, b.model, b.opt);
    assert.deepEqual(state, { nextEpoch: 2, note: 'mine' });
    assert.deepEqual(b.task.evaluate(b.task.evalLoaders.val!), a.task.evaluate(a.task.evalLoaders.val!));
    // The reloaded FNGD reuses the coefficients it saved.
    const ep = b.task.trainLoader.epoch(2);
    const s = scope(() => {
      const batch = ep.batch(0);
      return b.opt.step({ perSampleLoss: b.task.perSampleLoss(batch), sampleIds: batch.ids, epoch: 2 });
    });
    assert.equal(s.reused, 1);
    assert.equal(s.missing, 0);
    assert.throws(() => supervisedTask<Batch>({ model: a.model, trainLoader: a.task.trainLoader, forward: (x) => x.x, loss: (x) => x, metric: 'f1' }),
      /metric 'f1' is not one of the metrics \(loss\)/);
    for (const x of [a, b]) {
      x.opt.dispose();
      x.model.dispose();
    }
  } finally {
    train.dispose();
    evalSet.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(liveTensors().tensors <= before, `tensors leaked: ${liveTensors().tensors} live, ${before} before`);
});

test('fngd --version prints the package version; --help is the overview; help COMMAND is that command\'s help', () => {
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(run('--version').stdout.trim(), pkg.version);
  const help = run('--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /fngd --version/);
  assert.doesNotMatch(help.stdout, /--batch-size/, 'the overview is not train\'s flag list');
  const train = run('help', 'train');
  assert.equal(train.status, 0);
  assert.match(train.stdout, /--batch-size/);
  assert.match(run('help', 'bench').stdout, /--suite/);
  assert.match(run('demo', '--help').stdout, /usage: fngd demo/);
});
