// Step time of each second-order method over a plain SGD step, same model and batch, in
// interleaved rounds:   npm run bench:optimizers [-- --json] [-- --rounds N] [-- --iters N] [-- --case mlp|resnet]
// Each round runs SGD, then every method for a short block (2 MLP steps, 1 ResNet step) in a shuffled
// order, each followed by SGD again; a method's ratio for the round is its time over the mean of
// the two SGD blocks around it (bench/timing.ts, bracketedRatios), so neither drift nor the order of
// contenders biases it. Reported: the median over rounds, with the interquartile range (`*_iqr`, how
// much rounds differ) and a 95% confidence interval of the median (`*_ci95`, how well it is known).
//   fngd_reuse  an FNGD step of a later epoch (stored coefficients, no Gram, no solve)
//   sgd_engine  SGD's direction through the curvature engine (capture, then weighted gradients with
//               alpha = 1/B): what FNGD's reuse step costs without its coefficients; the engine's
//               weight-gradient products go through oneDNN (src/curvature/gemm.ts), autograd's through
//               BLAS, so fngd_reuse / sgd can fall below 1, and fngd_reuse / sgd_engine is the cost of
//               the coefficients alone
//   ngd         an exact NGD step (capture, Grams, B x B solves, weighted gradients)
//   kfac        a KFAC step with its default cadence: factor updates every 10 steps are inside
//               the timed rounds (whole multiples of 10 steps); the inverses (every 100 steps)
//               fall in the warm-up round, so their amortized cost is not in this ratio; KFAC's
//               block is whole multiples of its `costPeriod` (10 steps: one factor update per
//               block), its time per step as for the others
//   ief, fast_ief_reuse  iEF every step (NGD's work plus the logit-gradient norms), and its
//               coefficients reused through FNGD's store
//   thermo_ngd  thermodynamic NGD simulated at the paper's settings (t = 50 tau, dt = 0.1 tau: 500
//               Euler-Maruyama steps of a batched [G, B, B] product per solve); thermo_ngd_dt05 the
//               same analog time in 100 steps of 0.5 tau
// Every method runs with SGD's rule (momentum 0.9) on the same model and batch.
import { crossEntropyPerSample, mlp, resnetSmall, type Layer } from '../src/nn/index.js';
import { SGD, type Optimizer } from '../src/optim/index.js';
import { engineSgd, fastIef, fngd, ief, kfac, ngd, thermodynamicNgd, type Preconditioner } from '../src/precondition/index.js';
import { getNumThreads, keep, manualSeed, randint, randn, scope, type Tensor } from '../src/tensor/index.js';
import { bracketedRatios, flag, median, positiveFlag, report, summarizeRatios, timeWholePeriods } from './timing.js';

const argv = process.argv.slice(2);
const json = argv.includes('--json');
const roundsFlag = positiveFlag(argv, 'rounds', 'bench:optimizers');
const itersFlag = positiveFlag(argv, 'iters', 'bench:optimizers');
const onlyCase = flag(argv, 'case') ?? null;
const B = 128;
// A tiny learning rate: every method does its full work, but the model cannot memorize the fixed
// batch; a memorized batch drives gradients into denormal floats, which run 10x slower on a CPU.
const LR = 1e-6;

interface Case { name: string; model: () => Layer; shape: number[]; iters: number; rounds: number }
const cases: Case[] = [
  { name: 'mlp', model: () => mlp({ inputSize: 784, hidden: [512, 256], classes: 10 }), shape: [B, 1, 28, 28], iters: 2, rounds: 40 },
  { name: 'resnet', model: () => resnetSmall({ depth: 20, classes: 10 }), shape: [B, 3, 32, 32], iters: 1, rounds: 30 },
];
if (onlyCase !== null && !cases.some((c) => c.name === onlyCase)) {
  throw new RangeError(`bench:optimizers: --case must be one of ${cases.map((c) => c.name).join(', ')}, got '${onlyCase}'`);
}

const result: Record<string, unknown> = {};
for (const c of cases) {
  if (onlyCase !== null && c.name !== onlyCase) continue;
  manualSeed(0);
  const x = keep(randn(c.shape));
  const y = keep(randint(0, 10, [B]));
  const ids = Int32Array.from({ length: B }, (_, i) => i);
  // One model per optimizer: each method taps its own model.
  // Every method with SGD's rule (momentum 0.9), the pairing its step cost is quoted for.
  const make = (pre: ((m: Layer) => Preconditioner) | null): { model: Layer; opt: Optimizer } => {
    manualSeed(0);
    const model = c.model();
    return { model, opt: new SGD(model.parameters(), { lr: LR, momentum: 0.9, preconditioner: pre === null ? null : pre(model) }) };
  };
  const runs = {
    sgd: make(null),
    fngd_reuse: make((m) => fngd(m, { numSamples: B })),
    sgd_engine: make((m) => engineSgd(m)),
    ngd: make((m) => ngd(m)),
    kfac: make((m) => kfac(m)),
    ief: make((m) => ief(m)),
    fast_ief_reuse: make((m) => fastIef(m, { numSamples: B })),
    thermo_ngd: make((m) => thermodynamicNgd(m)),
    thermo_ngd_dt05: make((m) => thermodynamicNgd(m, { dt: 0.5 })),
  };
  const reuses = new Set(['fngd_reuse', 'fast_ief_reuse']);
  const step = (r: { model: Layer; opt: Optimizer }, epoch: number): void => {
    scope(() => { r.opt.step({ perSampleLoss: crossEntropyPerSample(r.model.forward(x), y) as Tensor, sampleIds: ids, epoch, batchIndex: 0 }); });
  };
  for (const k of reuses) step(runs[k as keyof typeof runs], 0); // fills the store: every later call is a reuse step
  const contenders: Record<string, (n: number) => number> = {};
  for (const [k, r] of Object.entries(runs)) {
    contenders[k] = (n) => timeWholePeriods(n, r.opt.costPeriod, () => step(r, reuses.has(k) ? 1 : 0));
  }
  const rounds = roundsFlag ?? c.rounds;
  const t = await bracketedRatios(contenders, 'sgd', { rounds, iters: itersFlag ?? c.iters });
  result[`sgd_step_ms_${c.name}`] = median(t.reference) * 1e3;
  const put = (name: string, ratios: number[]): void => {
    const r = summarizeRatios(ratios);
    const round3 = (v: number): number => Number(v.toFixed(3));
    result[`${name}_${c.name}`] = r.median;
    result[`${name}_${c.name}_iqr`] = [round3(r.q1), round3(r.q3)];
    result[`${name}_${c.name}_ci95`] = r.ci95.map(round3);
  };
  for (const k of Object.keys(runs)) if (k !== 'sgd') put(`${k}_over_sgd`, t.ratios[k]!);
  // Both bracketed by the same round's SGD blocks: their quotient is the coefficients' own cost.
  put('fngd_reuse_over_sgd_engine', t.ratios.fngd_reuse!.map((x, i) => x / t.ratios.sgd_engine![i]!));
  result[`rounds_${c.name}`] = rounds;
  // The analog solver's time per step (t tau, all groups in parallel) beside the simulation's.
  const thermo = runs.thermo_ngd.opt.preconditioner!.settings.solver as { t: number; tau: number };
  result[`thermo_ngd_analog_s_per_step_${c.name}`] = thermo.t * thermo.tau;
  result[`thermo_ngd_digital_s_per_step_${c.name}`] = (median(t.reference) * (result[`thermo_ngd_over_sgd_${c.name}`] as number));
  for (const r of Object.values(runs)) {
    r.opt.dispose();
    r.model.dispose();
  }
  x.dispose();
  y.dispose();
}
report({ ...result, batch: B, threads: getNumThreads() }, json);
