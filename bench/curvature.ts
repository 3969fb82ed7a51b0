// Cost of the per-sample curvature engine against plain SGD steps, MNIST-MLP and ResNet-20 at B = 128
// (random inputs of the right shape), all contenders interleaved in one run:
//   plain     forward + mean-loss backward + SGD update (Optimizer.step)
//   ngd       forward + capture + NGD's own solve (per-layer Grams, damping, every layer's Cholesky in
//             one batched call, normalization: SampleSpacePreconditioner.solve) + weighted gradients
//             + update
//   weighted  forward + capture + weighted gradients (stored float64 per-layer alphas, cast to the
//             model's dtype once per step, as FNGD's reuse step does) + update: FNGD's later epochs
//             with layer-wise coefficients
//   global    forward + one backward of sum_i alpha_i l_i (engine.writeGlobalWeightedGradients) + update:
//             FNGD's later epochs with one global alpha
// Reported: medians over rounds of per-round ratios, each contender's block bracketed by plain-step
// blocks (bench/timing.ts, bracketedRatios; the MLP gets 3x the rounds, its steps are short), with
// 95% intervals of the medians (`_ci95`):
//   gram_solve_over_step_{mlp,resnet}   time in NGD's solve (Grams, damping, the batched Cholesky,
//       normalization) per NGD step / plain step
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
import { layerGram, type Capture, type CurvatureEngine } from '../src/curvature/index.js';
import { ngd, type SampleSpacePreconditioner } from '../src/precondition/index.js';
import { alphaByGroup } from '../src/precondition/sample-space.js';
import { getNumThreads, keep, manualSeed, rand, randint, randn, scope, type Tensor } from '../src/tensor/index.js';
import { bracketedRatios, median, positiveFlag, report, summarizeRatios } from './timing.js';

const argv = process.argv.slice(2);
const json = argv.includes('--json');
const quick = argv.includes('--quick');
const B = 128;
const LAMBDA = 1e-3;

type ModelName = 'mlp' | 'resnet';

interface Setup {
  model: Module & { forward(x: Tensor): Tensor };
  /** NGD at absolute damping LAMBDA; its engine serves every contender. */
  pre: SampleSpacePreconditioner;
  engine: CurvatureEngine;
  opt: SGD;
  x: Tensor;
  y: Tensor;
  ids: Int32Array;
  /** Stored per-layer coefficients for the weighted (FNGD) step, float64 [layers, B], and one global alpha. */
  alphas: Tensor;
  globalAlpha: Tensor;
}

function setup(name: ModelName): Setup {
  manualSeed(0);
  const model = name === 'mlp' ? mlp({ inputSize: 784, hidden: [512, 256], classes: 10 }) : resnetSmall({ depth: 20 });
  const x = keep(randn(name === 'mlp' ? [B, 784] : [B, 3, 32, 32]));
  const y = keep(randint(0, 10, [B]));
  const pre = ngd(model, { damping: LAMBDA, dampingMode: 'absolute' });
  const engine = pre.engine;
  const opt = new SGD(model.parameters(), { lr: 1e-3 });
  // Stored coefficients: their values do not change the cost, so no capture is needed to make them
  // (which would also raise the memory baseline of the child runs).
  const alphas = keep(rand([engine.layers.length, B], { dtype: 'float64' }).div(B));
  const globalAlpha = keep(rand([B], { dtype: 'float64' }).div(B));
  return { model, pre, engine, opt, x, y, ids: Int32Array.from({ length: B }, (_, i) => i), alphas, globalAlpha };
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
    const { stats: _stats, ...coefficients } = s.pre.solve(cap, 0);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    cap.writeWeightedGradients(alphaByGroup(coefficients), { consume: true });
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
    const groups = { kind: 'layerwise' as const, layers: s.engine.layers.map((l) => l.name) };
    cap.writeWeightedGradients(alphaByGroup({ alpha: s.alphas.to('float32'), groups }), { consume: true });
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
// MLP steps take milliseconds: repeat them so each block is long enough to time well.
const mlpReps = quick ? 10 : 25;

interface ModelRatios {
  /** Per round, each contender's time over the two plain blocks around it (bench/timing.ts). */
  ratios: Record<string, number[]>;
  /** Per round, the Gram+solve seconds per NGD step over the same plain blocks. */
  gramSolve: number[];
  plainSecs: number;
  gramSolveSecs: number;
  weightedSecs: number;
}

/**
 * One model's contenders bracketed by plain steps, as bench:optimizers times its methods: a
 * contender's sample is its block over the mean of the plain blocks right before and after it,
 * so that the machine's drift (2x between runs minutes apart here) cancels within the round.
 */
async function modelRatios(name: ModelName, s: Setup, reps: number): Promise<ModelRatios> {
  let blockGram: number[] = [];
  const ngdBlock = (): void => { blockGram.push(ngdStep(s)); };
  const gramPerRound: number[] = [];
  const t = await bracketedRatios({
    plain: timed(`${name}_plain`, s, false, () => plainStep(s), reps),
    ngd: (iters) => {
      blockGram = [];
      const secs = timed(`${name}_ngd`, s, true, ngdBlock, reps)(iters);
      gramPerRound.push(median(blockGram));
      return secs;
    },
    weighted: timed(`${name}_weighted`, s, true, () => weightedStep(s), reps),
    global: timed(`${name}_global`, s, true, () => globalStep(s), reps),
  }, 'plain', { rounds: name === 'mlp' ? 3 * rounds : rounds, iters: quick ? 1 : 2 });
  // The warm-up round's NGD block comes first; the others pair with the NGD ratios, round by round.
  const gram = gramPerRound.slice(1);
  const ngdSecs = t.times.ngd!;
  return {
    ratios: t.ratios,
    gramSolve: gram.map((g, r) => g / (ngdSecs[r]! / t.ratios.ngd![r]!)),
    plainSecs: median(t.reference),
    gramSolveSecs: median(gram),
    weightedSecs: median(t.times.weighted!),
  };
}
const mlpT = await modelRatios('mlp', mlpS, mlpReps);
const resT = await modelRatios('resnet', resS, 1);

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

const ratioOf = (r: ModelRatios, k: string): number => summarizeRatios(r.ratios[k]!).median;
const ci = (v: number[]): number[] => summarizeRatios(v).ci95.map((x) => Number(x.toFixed(3)));
const wMlp = ratioOf(mlpT, 'weighted');
const wRes = ratioOf(resT, 'weighted');
report({
  gram_solve_over_step_mlp: median(mlpT.gramSolve),
  gram_solve_over_step_mlp_ci95: ci(mlpT.gramSolve),
  gram_solve_over_step_resnet: median(resT.gramSolve),
  gram_solve_over_step_resnet_ci95: ci(resT.gramSolve),
  weighted_over_backward: Math.max(wMlp, wRes),
  weighted_over_backward_mlp: wMlp,
  weighted_over_backward_mlp_ci95: ci(mlpT.ratios.weighted!),
  weighted_over_backward_resnet: wRes,
  weighted_over_backward_resnet_ci95: ci(resT.ratios.weighted!),
  weighted_global_over_backward_mlp: ratioOf(mlpT, 'global'),
  weighted_global_over_backward_resnet: ratioOf(resT, 'global'),
  peak_mem_capture_over_plain: Math.max(peaks.peak_mem_capture_over_plain_mlp_step!, peaks.peak_mem_capture_over_plain_resnet_step!),
  ...peaks,
  ngd_step_over_step_mlp: ratioOf(mlpT, 'ngd'),
  ngd_step_over_step_resnet: ratioOf(resT, 'ngd'),
  ms_plain_mlp: mlpT.plainSecs * 1e3,
  ms_plain_resnet: resT.plainSecs * 1e3,
  ms_gram_solve_mlp: mlpT.gramSolveSecs * 1e3,
  ms_gram_solve_resnet: resT.gramSolveSecs * 1e3,
  ms_weighted_mlp: mlpT.weightedSecs * 1e3,
  ms_weighted_resnet: resT.weightedSecs * 1e3,
  page_faults_per_step_resnet: Object.fromEntries(Object.entries(faults).filter(([k]) => k.startsWith('resnet')).map(([k, v]) => [k, Math.round(median(v.slice(1)))])),
  resnet_gram_breakdown: breakdown(resS),
  // glibc returns freed heap tops to the OS (M_TRIM_THRESHOLD), so a step whose peak exceeds the
  // previous steps' pays first-touch page faults for the difference every time; these variables
  // (set before the process starts) turn that off.
  malloc_env: process.env.MALLOC_TRIM_THRESHOLD_ !== undefined || process.env.MALLOC_MMAP_THRESHOLD_ !== undefined
    ? `MALLOC_TRIM_THRESHOLD_=${process.env.MALLOC_TRIM_THRESHOLD_} MALLOC_MMAP_THRESHOLD_=${process.env.MALLOC_MMAP_THRESHOLD_}` : 'default',
  rounds_mlp: 3 * rounds,
  rounds_resnet: rounds,
  batch: B,
  threads: getNumThreads(),
}, json);
