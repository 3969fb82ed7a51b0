// Cost of the per-sample curvature engine against plain SGD steps, MNIST-MLP and ResNet-20 at B = 128
// (random inputs of the right shape), all contenders interleaved in one run:
//   plain     forward + mean-loss backward + SGD update (Optimizer.step)
//   ngd       forward + capture + per-layer Grams + per-layer solves + weighted gradients + update
//   weighted  forward + capture + weighted gradients (stored per-layer alphas) + update: FNGD's later
//             epochs with layer-wise coefficients
//   global    forward + one backward of sum_i alpha_i l_i (engine.writeGlobalWeightedGradients) + update:
//             FNGD's later epochs with one global alpha
// Reported (medians over rounds):
//   gram_solve_over_step_{mlp,resnet}   time in grams() + solves inside the ngd step / plain step
//   weighted_over_backward_{mlp,resnet} weighted (layer-wise) step / plain step; the headline
//       weighted_over_backward is the worse of the two
//   weighted_global_over_backward_*     global step / plain step
//   peak_mem_capture_over_plain_*       peak memory of an ngd step over a plain step: each variant runs
//       alone in a child process (a few steps); we take process.resourceUsage().maxRSS at the end, and
//       the RSS before the first step (model and inputs made, libtorch loaded) as the baseline.
//       `_rss` is the ratio of the whole high-water marks; `_step` the ratio of what the steps add
//       above the baseline (the stricter one).
//   npm run bench:curvature [-- --json] [-- --rounds N] [-- --quick]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { crossEntropyPerSample, mlp, resnetSmall, type Module } from '../src/nn/index.js';
import { SGD } from '../src/optim/sgd.js';
import { CurvatureEngine, layerGram, solveCoefficients, type Capture } from '../src/curvature/index.js';
import { getNumThreads, keep, manualSeed, rand, randint, randn, scope, type Tensor } from '../src/tensor/index.js';
import { interleave, median, positiveFlag, report } from './timing.js';

const argv = process.argv.slice(2);
const json = argv.includes('--json');
const quick = argv.includes('--quick');
const B = 128;
const LAMBDA = 1e-3;

type ModelName = 'mlp' | 'resnet';

interface Setup {
  model: Module & { forward(x: Tensor): Tensor };
  engine: CurvatureEngine;
  opt: SGD;
  x: Tensor;
  y: Tensor;
  ids: Int32Array;
  /** Stored per-layer coefficients for the weighted (FNGD) step, and one global alpha. */
  alphas: Map<string, Tensor>;
  globalAlpha: Tensor;
}

function setup(name: ModelName): Setup {
  manualSeed(0);
  const model = name === 'mlp' ? mlp({ inputSize: 784, hidden: [512, 256], classes: 10 }) : resnetSmall({ depth: 20 });
  const x = keep(randn(name === 'mlp' ? [B, 784] : [B, 3, 32, 32]));
  const y = keep(randint(0, 10, [B]));
  const engine = new CurvatureEngine(model);
  const opt = new SGD(model.parameters(), { lr: 1e-3 });
  // Stored coefficients: their values do not change the cost, so no capture is needed to make them
  // (which would also raise the memory baseline of the child runs).
  const alphas = new Map(engine.layers.map((l) => [l.name, keep(rand([B], { dtype: 'float64' }).div(B))] as const));
  const globalAlpha = keep(rand([B], { dtype: 'float64' }).div(B));
  return { model, engine, opt, x, y, ids: Int32Array.from({ length: B }, (_, i) => i), alphas, globalAlpha };
}

function plainStep(s: Setup): void {
  scope(() => {
    s.opt.step({ perSampleLoss: crossEntropyPerSample(s.model.forward(s.x), s.y), sampleIds: s.ids, epoch: 0 });
  });
}

/** The NGD step; returns the seconds spent in Grams and solves. */
function ngdStep(s: Setup): number {
  return scope(() => {
    const cap = s.engine.capture(crossEntropyPerSample(s.model.forward(s.x), s.y));
    const t0 = process.hrtime.bigint();
    const alphas = new Map<string, Tensor>();
    for (const [n, K] of cap.grams()) alphas.set(n, solveCoefficients(K, LAMBDA));
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    cap.writeWeightedGradients(alphas, { consume: true });
    s.opt.update();
    return secs;
  });
}

function globalStep(s: Setup): void {
  scope(() => {
    s.engine.writeGlobalWeightedGradients(crossEntropyPerSample(s.model.forward(s.x), s.y), s.globalAlpha);
    s.opt.update();
  });
}

function weightedStep(s: Setup): void {
  scope(() => {
    const cap = s.engine.capture(crossEntropyPerSample(s.model.forward(s.x), s.y));
    cap.writeWeightedGradients(s.alphas, { consume: true });
    s.opt.update();
  });
}

/** Minor page faults per step, per contender (first-touch of fresh memory; see the note at the end). */
const faults: Record<string, number[]> = {};

/** The engine records only while enabled; plain steps run with it off, as an SGD run would. */
function timed(name: string, s: Setup, engineOn: boolean, step: () => void, reps: number): (iters: number) => number {
  return (iters) => {
    if (engineOn) s.engine.enable();
    else s.engine.disable();
    const f0 = process.resourceUsage().minorPageFault;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters * reps; i++) step();
    const secs = Number(process.hrtime.bigint() - t0) / 1e9 / reps;
    (faults[name] ??= []).push((process.resourceUsage().minorPageFault - f0) / (iters * reps));
    return secs;
  };
}

/** Per-layer Gram times (ms) and plans, for the breakdown. */
function breakdown(s: Setup): Record<string, string> {
  s.engine.enable();
  const out: Record<string, string> = {};
  scope(() => {
    const cap: Capture = s.engine.capture(crossEntropyPerSample(s.model.forward(s.x), s.y));
    for (const p of cap.plan()) {
      const ts: number[] = [];
      for (let r = 0; r < 3; r++) {
        const t0 = process.hrtime.bigint();
        scope(() => { layerGram(cap.layer(p.name), p); });
        ts.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      out[p.name] = `${median(ts).toFixed(1)} ms ${p.method} T=${p.positions} P=${p.params} block=${p.block}`;
    }
  });
  return out;
}

// ---- child mode: peak memory of one variant ---------------------------------------------------
if (argv[0] === '--child') {
  const name = argv[1] as ModelName;
  const variant = argv[2]!;
  const s = setup(name);
  if (variant === 'plain') s.engine.disable();
  const base = process.memoryUsage().rss;
  for (let i = 0; i < 4; i++) {
    if (variant === 'plain') plainStep(s);
    else if (variant === 'ngd') ngdStep(s);
    else weightedStep(s);
  }
  console.log(JSON.stringify({ baseKb: base / 1024, maxKb: process.resourceUsage().maxRSS }));
  process.exit(0);
}

function childPeak(name: ModelName, variant: string): { baseKb: number; maxKb: number } {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, [self, '--child', name, variant], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bench child ${name}/${variant} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { baseKb: number; maxKb: number };
}

// ---- main ---------------------------------------------------------------------------------------
const rounds = positiveFlag(argv, 'rounds', 'bench:curvature') ?? (quick ? 3 : 7);
const mlpS = setup('mlp');
const resS = setup('resnet');
const gramSecs: Record<ModelName, number[]> = { mlp: [], resnet: [] };
const ngd = (s: Setup, name: ModelName): (() => void) => () => { gramSecs[name].push(ngdStep(s)); };
// MLP steps take milliseconds: repeat them so each sample is comparable in length to a ResNet step.
const mlpReps = quick ? 10 : 25;
const t = await interleave({
  mlp_plain: timed('mlp_plain', mlpS, false, () => plainStep(mlpS), mlpReps),
  mlp_ngd: timed('mlp_ngd', mlpS, true, ngd(mlpS, 'mlp'), mlpReps),
  mlp_weighted: timed('mlp_weighted', mlpS, true, () => weightedStep(mlpS), mlpReps),
  mlp_global: timed('mlp_global', mlpS, true, () => globalStep(mlpS), mlpReps),
  resnet_plain: timed('resnet_plain', resS, false, () => plainStep(resS), 1),
  resnet_ngd: timed('resnet_ngd', resS, true, ngd(resS, 'resnet'), 1),
  resnet_weighted: timed('resnet_weighted', resS, true, () => weightedStep(resS), 1),
  resnet_global: timed('resnet_global', resS, true, () => globalStep(resS), 1),
}, { rounds, iters: quick ? 1 : 2 });
// Gram+solve seconds per step: median over all timed steps (the warm-up round's steps dropped).
const gramMedian = (name: ModelName, perRound: number): number => median(gramSecs[name].slice(perRound));
const gsMlp = gramMedian('mlp', mlpReps * (quick ? 1 : 2));
const gsRes = gramMedian('resnet', quick ? 1 : 2);

const peaks: Record<string, number> = {};
for (const name of ['mlp', 'resnet'] as const) {
  const plain = childPeak(name, 'plain');
  const capture = childPeak(name, 'ngd');
  const weighted = childPeak(name, 'weighted');
  peaks[`peak_mem_capture_over_plain_${name}_rss`] = capture.maxKb / plain.maxKb;
  peaks[`peak_mem_capture_over_plain_${name}_step`] = (capture.maxKb - capture.baseKb) / (plain.maxKb - plain.baseKb);
  peaks[`peak_mem_weighted_over_plain_${name}_step`] = (weighted.maxKb - weighted.baseKb) / (plain.maxKb - plain.baseKb);
  peaks[`peak_rss_mb_${name}_plain`] = plain.maxKb / 1024;
  peaks[`peak_rss_mb_${name}_capture`] = capture.maxKb / 1024;
}

const wMlp = t.mlp_weighted! / t.mlp_plain!;
const wRes = t.resnet_weighted! / t.resnet_plain!;
report({
  gram_solve_over_step_mlp: gsMlp / t.mlp_plain!,
  gram_solve_over_step_resnet: gsRes / t.resnet_plain!,
  weighted_over_backward: Math.max(wMlp, wRes),
  weighted_over_backward_mlp: wMlp,
  weighted_over_backward_resnet: wRes,
  weighted_global_over_backward_mlp: t.mlp_global! / t.mlp_plain!,
  weighted_global_over_backward_resnet: t.resnet_global! / t.resnet_plain!,
  peak_mem_capture_over_plain: Math.max(peaks.peak_mem_capture_over_plain_mlp_step!, peaks.peak_mem_capture_over_plain_resnet_step!),
  ...peaks,
  ngd_step_over_step_mlp: t.mlp_ngd! / t.mlp_plain!,
  ngd_step_over_step_resnet: t.resnet_ngd! / t.resnet_plain!,
  ms_plain_mlp: t.mlp_plain! * 1e3,
  ms_plain_resnet: t.resnet_plain! * 1e3,
  ms_gram_solve_mlp: gsMlp * 1e3,
  ms_gram_solve_resnet: gsRes * 1e3,
  ms_weighted_mlp: t.mlp_weighted! * 1e3,
  ms_weighted_resnet: t.resnet_weighted! * 1e3,
  page_faults_per_step_resnet: Object.fromEntries(Object.entries(faults).filter(([k]) => k.startsWith('resnet')).map(([k, v]) => [k, Math.round(median(v.slice(1)))])),
  resnet_gram_breakdown: breakdown(resS),
  // glibc returns freed heap tops to the OS (M_TRIM_THRESHOLD), so a step whose peak exceeds the
  // previous steps' pays first-touch page faults for the difference every time; these variables
  // (set before the process starts) turn that off.
  malloc_env: process.env.MALLOC_TRIM_THRESHOLD_ !== undefined || process.env.MALLOC_MMAP_THRESHOLD_ !== undefined
    ? `MALLOC_TRIM_THRESHOLD_=${process.env.MALLOC_TRIM_THRESHOLD_} MALLOC_MMAP_THRESHOLD_=${process.env.MALLOC_MMAP_THRESHOLD_}` : 'default',
  rounds,
  batch: B,
  threads: getNumThreads(),
}, json);
