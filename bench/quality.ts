// Approximation quality along one training run (the iEF paper's measure, Wu et al. 2024):
//   gamma(d) = sqrt(d^T F d) / |d^T grad L|,  F the exact Fisher (the GGN for softmax cross-entropy),
// reported as gamma(d) / gamma(grad L): below 1 is closer to the exact natural gradient than SGD.
//   npm run bench:quality -- [--task mnist-mlp|cifar10-resnet] [--optimizer sgd] [--epochs 3]
//                            [--train-limit N] [--probes-per-epoch 2] [--out DIR] [--json]
//
// One trajectory, trained by --optimizer; every other method follows it in the shadows: each has
// its own copy of the model (a model carries one curvature tap), synchronized to the trajectory's
// weights before every step, and steps its preconditioner on every training batch, so that FNGD's
// and fast iEF's stores fill in epoch 0 and KFAC's factors keep their running averages, as in a
// real run of each. At each probe, on one fixed training batch (seen in epoch 0, so the stores
// hold its coefficients), every method writes its direction at the current weights; its state is
// saved before and restored after, so probing changes nothing. gamma is computed on the
// trajectory's model by Fisher-vector products (src/curvature/quality.ts), never a dense F.
// Directions: SGD (grad L), EF-NGD (ngd), FNGD (reuse from epoch 1 on), iEF, fast iEF (reuse from
// epoch 1 on), thermodynamic NGD (t = 50 tau, dt = 0.1 tau), KFAC; each with its registry defaults
// and its task's damping. BatchNorm (ResNet) is in training mode for every direction and for F.
// Writes DIR/quality.jsonl (one line per probe and method), DIR/quality.json and DIR/quality.svg.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { approximationQuality } from '../src/curvature/quality.js';
import { crossEntropyPerSample, mlp, resnetSmall, type Module } from '../src/nn/index.js';
import { buildMethod, resolveValues } from '../src/precondition/registry.js';
import type { Preconditioner } from '../src/precondition/preconditioner.js';
import { lineChart } from '../src/report/svg.js';
import { grad, manualSeed, noGrad, scope, type Tensor } from '../src/tensor/index.js';
import { createTask, type TaskName } from '../src/train/tasks.js';
import { disposeBatch, type ImageBatch } from '../src/data/index.js';
import type { Task } from '../src/train/task.js';
import { flag, positiveFlag } from './timing.js';

const argv = process.argv.slice(2);
const task = (flag(argv, 'task') ?? 'mnist-mlp') as TaskName;
if (task !== 'mnist-mlp' && task !== 'cifar10-resnet') throw new RangeError(`bench:quality: --task must be mnist-mlp or cifar10-resnet, got '${task}'`);
const trajectory = flag(argv, 'optimizer') ?? 'sgd';
const epochs = positiveFlag(argv, 'epochs', 'bench:quality') ?? 3;
const trainLimit = positiveFlag(argv, 'train-limit', 'bench:quality') ?? (task === 'mnist-mlp' ? 10240 : 2560);
const probesPerEpoch = positiveFlag(argv, 'probes-per-epoch', 'bench:quality') ?? 2;
const out = flag(argv, 'out') ?? `runs/quality-${task}`;
const seed = 0;
const METHODS = ['ngd', 'fngd', 'ief', 'fast-ief', 'thermo-ngd', 'kfac'] as const;
const LABEL: Record<string, string> = { sgd: 'SGD', ngd: 'EF-NGD', fngd: 'FNGD', ief: 'iEF', 'fast-ief': 'fast iEF', 'thermo-ngd': 'thermo NGD', kfac: 'KFAC' };

const newModel = (): Module & { forward(x: Tensor): Tensor } => (task === 'mnist-mlp' ? mlp({ inputSize: 784, hidden: [512, 256], classes: 10 }) : resnetSmall({ depth: 20, classes: 10 }));

manualSeed(seed);
const t = createTask(task, { batchSize: 128, seed, trainLimit, evalLimit: 1000 }) as unknown as Task<ImageBatch>;
const ctxOf = (model: Module): Parameters<typeof buildMethod>[1] => ({
  model, numSamples: t.trainLoader.dataset.length, batchesPerEpoch: t.trainLoader.batchesPerEpoch, batchSize: t.trainLoader.batchSize, seed,
});
const main = t.model as Module & { forward(x: Tensor): Tensor };
const params = main.parameters();
const opt = buildMethod(trajectory, ctxOf(main), resolveValues(trajectory, task, {}));
const lr = opt.getLr();

interface Shadow { name: string; model: Module & { forward(x: Tensor): Tensor }; pre: Preconditioner }
const shadows: Shadow[] = METHODS.map((name) => {
  const model = newModel();
  const shapes = model.parameters().map((p) => p.shape.join('x')).join(',');
  if (shapes !== params.map((p) => p.shape.join('x')).join(',')) throw new Error(`bench:quality: the shadow model of ${name} differs from the task's`);
  const pre = buildMethod(name, ctxOf(model), resolveValues(name, task, {})).preconditioner!;
  return { name, model, pre };
});
const rule = { lrOf: (): number => lr };

function sync(s: Shadow): void {
  noGrad(() => s.model.parameters().forEach((p, i) => p.copy_(params[i]!)));
}

/** One shadow's preconditioner on a batch at the trajectory's weights; returns its direction (copies). */
function shadowStep(s: Shadow, x: Tensor, y: Tensor, ids: Int32Array, epoch: number, batchIndex: number): Tensor[] {
  sync(s);
  const loss = crossEntropyPerSample(s.model.forward(x), y);
  const mean = scope(() => loss.detach().mean().item());
  s.pre.computeGradients({ perSampleLoss: loss, sampleIds: ids, epoch, batchIndex }, mean, rule);
  return s.model.parameters().map((p) => p.grad === null ? p.detach().mul(0) : p.grad.clone());
}

const probeBatch = t.trainLoader.epoch(0).batch(0);
const rows: { step: number; epoch: number; method: string; gamma: number; ratio: number; reused: boolean }[] = [];
mkdirSync(out, { recursive: true });
const jsonl: string[] = [];

function probe(step: number, epoch: number): void {
  scope(() => {
    const { x, y } = probeBatch;
    const dirs = new Map<string, Tensor[]>();
    for (const s of shadows) {
      const saved = s.pre.stateDict();
      const settings = structuredClone(s.pre.settings);
      dirs.set(s.name, shadowStep(s, x, y, probeBatch.ids, epoch, 0));
      s.pre.loadStateDict(saved, settings);
      for (const v of saved.tensors.values()) v.dispose();
    }
    const logits = main.forward(x);
    const loss = crossEntropyPerSample(logits, y).mean();
    const g = grad(loss, params, { retainGraph: true }).map((v) => v!);
    const gammaOf = (d: Tensor[]): { gamma: number; ratio: number } => {
      const q = approximationQuality({ logits, params, direction: d, gradient: g, batchSize: y.size(0) });
      return { gamma: q.gamma, ratio: q.ratio };
    };
    const put = (method: string, d: Tensor[], reused: boolean): void => {
      const q = gammaOf(d);
      rows.push({ step, epoch, method, ...q, reused });
      jsonl.push(JSON.stringify({ step, epoch, method, gamma: q.gamma, ratio: q.ratio, reused }));
    };
    put('sgd', g, false);
    for (const s of shadows) put(s.name, dirs.get(s.name)!, epoch > 0 && (s.name === 'fngd' || s.name === 'fast-ief'));
  });
  writeOutputs(null);
  const last = rows.filter((r) => r.step === step);
  console.error(`step ${step} (epoch ${epoch}): ${last.map((r) => `${r.method} ${r.ratio.toFixed(3)}`).join(', ')}`);
}

/** Writes the JSONL, JSON and SVG from the probes so far (after every probe: a long run leaves its data). */
function writeOutputs(finalMetric: number | null) {
  writeFileSync(join(out, 'quality.jsonl'), `${jsonl.join('\n')}\n`);
  const median = (v: number[]): number => { const s = [...v].sort((a, b) => a - b); return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!; };
  const summary = {
    task, trajectory, epochs, trainLimit, batch: 128, lr, final_metric: finalMetric,
    methods: ['sgd', ...METHODS].map((m) => {
      const r = rows.filter((x) => x.method === m);
      const later = r.filter((x) => x.epoch >= 1);
      return { method: m, label: LABEL[m], median_ratio: median(r.map((x) => x.ratio)), median_ratio_epoch1_on: median(later.map((x) => x.ratio)), points: r.map((x) => [x.step, x.ratio] as [number, number]) };
    }),
  };
  writeFileSync(join(out, 'quality.json'), `${JSON.stringify(summary, null, 1)}\n`);
  writeFileSync(join(out, 'quality.svg'), lineChart(
    summary.methods.map((m) => ({ name: m.method, points: m.points })),
    { title: `gamma / gamma_SGD along a ${trajectory} run (${task}, ${trainLimit} samples)`, xLabel: 'training step', yLabel: 'gamma / gamma_SGD (lower: closer to NGD)', logY: true, xMin: 0, hlines: [{ y: 1, label: 'SGD' }] },
  ));
  return summary;
}

let step = 0;
const every = Math.max(1, Math.floor(t.trainLoader.batchesPerEpoch / probesPerEpoch));
for (let epoch = 0; epoch < epochs; epoch++) {
  const ep = t.trainLoader.epoch(epoch);
  for (let k = 0; k < ep.length; k++) {
    // Probes at the start of every reuse epoch's stretch, and `probesPerEpoch` times an epoch.
    if (k % every === 0 && !(epoch === 0 && k === 0)) probe(step, epoch);
    scope(() => {
      const b = ep.batch(k);
      for (const s of shadows) scope(() => shadowStep(s, b.x, b.y, b.ids, epoch, k));
      opt.step({ perSampleLoss: t.perSampleLoss(b), sampleIds: b.ids, epoch, batchIndex: k });
    });
    step += 1;
  }
}
probe(step, epochs);

const evalNow = t.evaluate(Object.values(t.evalLoaders)[0]!);
const summary = writeOutputs(evalNow.metric);
if (argv.includes('--json')) console.log(JSON.stringify({ ...summary, methods: summary.methods.map(({ points: _p, ...m }) => m) }));
else for (const m of summary.methods) console.log(`${m.label!.padEnd(11)} median gamma/gamma_SGD ${m.median_ratio.toFixed(3)}  (epoch 1 on: ${m.median_ratio_epoch1_on.toFixed(3)})`);

for (const s of shadows) {
  s.pre.dispose();
  s.model.dispose();
}
opt.dispose();
disposeBatch(probeBatch);
t.dispose();
