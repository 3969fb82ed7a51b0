// Step time of each second-order method over a plain SGD step (the Transformer: AdamW's), same model
// and batch, in interleaved rounds:
//   npm run bench:optimizers [-- --json] [-- --rounds N] [-- --iters N] [-- --warmup N] [-- --case mlp|resnet|transformer|transformer-kfac]
// Each contender first runs `warmup` untimed steps (MLP: MLP_WARMUP_STEPS, bench/timing.ts; whole cost
// periods; --warmup overrides), so that the ratios are per step in the steady state a training run
// reaches: V8 compiles a step's JavaScript over its first few hundred steps. Compute-bound cases
// (ResNet-20, the Transformer) need no more than the warm-up round.
// Each round runs SGD, then every method for a short block (2 MLP steps, 1 ResNet step) in a shuffled
// order, each followed by SGD again; a method's ratio for the round is its time over the mean of
// the two SGD blocks around it (bench/timing.ts, bracketedRatios), so neither drift nor the order of
// contenders biases it. Reported: the median over rounds, with the interquartile range (`*_iqr`, how
// much rounds differ) and a 95% confidence interval of the median (`*_ci95`, how well it is known).
//   fngd_reuse  an FNGD step of a later epoch (stored coefficients, no Gram, no solve)
//   sgd_engine  SGD's direction through the curvature engine (capture, then weighted gradients with
//               alpha = 1/B): what FNGD's reuse step costs without its coefficients; the engine's
//               weight-gradient products take the route measured fastest (BLAS or oneDNN,
//               src/curvature/gemm.ts), autograd's BLAS, so fngd_reuse / sgd can fall below 1, and
//               fngd_reuse / sgd_engine is the cost of the coefficients alone
//   reuse_floor (MLP) a layer-wise reuse step written by hand: the forward through the Linears, one
//               grad to their outputs, each output gradient scaled in place by fixed coefficients,
//               its weight product and bias sum, SGD's update; fngd_reuse's products without the
//               engine's and the optimizer's bookkeeping, so fngd_reuse / reuse_floor is what that
//               bookkeeping costs
//   ngd         an exact NGD step (capture, Grams, B x B solves, weighted gradients)
//   kfac        a KFAC step with its default cadence: factor updates every 10 steps are inside
//               the timed rounds (KFAC's block is whole multiples of its `costPeriod`, 10 steps:
//               one factor update per block); the inverses (every 100 steps) fall in one timed
//               block in ten, which the median over rounds leaves out, so their amortized cost is
//               not in this ratio; `kfac_over_*_mean`, the mean over rounds (which span whole
//               hundreds of steps), counts them amortized
//   ief, fast_ief_reuse  iEF every step (NGD's work plus the logit-gradient norms), and its
//               coefficients reused through FNGD's store
//   thermo_ngd  thermodynamic NGD simulated at the paper's settings (t = 50 tau, dt = 0.1 tau: 500
//               Euler-Maruyama steps of a batched [G, B, B] product per solve); thermo_ngd_dt05 the
//               same analog time in 100 steps of 0.5 tau
// Every method runs with SGD's rule (momentum 0.9) on the same model and batch.
//
// transformer: the multi30k-transformer task's model at full size (d 256, 4 heads, 3+3 layers, FFN 512,
// the Multi30K vocabularies of 5,977 and 7,857 tokens) on one synthetic batch of the median Multi30K
// training batch's shape (bench/seq-gram.ts: source 12 and target 11-13 tokens for B = 128): random
// tokens, sentence lengths 9-12 words padded with PAD, the task's per-sample loss (label smoothing 0.1).
// Its reference is AdamW's step (the goal: FNGD's reuse step <= 1.05x AdamW's); the methods
// keep their registry rule (SGD with momentum; the rule's own update is under 1% of this step).
// `sgd` (plain autograd SGD) and `ief` (fast iEF's solve epoch) price the remaining rows of issue
// 15's table in AdamW steps; FNGD's solve epoch costs an NGD step.
// Fewer rounds (10) than the image cases: an NGD step here takes seconds. KFAC is left out: its
// 7,857 x 7,857 output-projection factor (a factor update every 10 steps, and an inverse every 100)
// makes one cost period alone longer than this whole case. `--case transformer-kfac` times it alone
// against AdamW (10 rounds of 10 KFAC steps, about 10 minutes): the KFAC row of issue 15's table.
import { BOS, EOS, PAD } from '../src/data/index.js';
import { crossEntropyPerSample, Linear, mlp, resnetSmall, type Layer, type Module, type TransformerSeq2Seq } from '../src/nn/index.js';
import { translationModel } from '../src/train/tasks.js';
import { AdamW, SGD, type Optimizer } from '../src/optim/index.js';
import { engineSgd, fastIef, fngd, ief, kfac, ngd, thermodynamicNgd, type Preconditioner } from '../src/precondition/index.js';
import { F, getNumThreads, grad, keep, manualSeed, noGrad, rand, randint, randn, scope, tensor, type Tensor } from '../src/tensor/index.js';
import { bracketedRatios, flag, median, MLP_WARMUP_STEPS, nonNegativeFlag, positiveFlag, report, summarizeRatios, timeWholePeriods } from './timing.js';

const argv = process.argv.slice(2);
const json = argv.includes('--json');
const roundsFlag = positiveFlag(argv, 'rounds', 'bench:optimizers');
const itersFlag = positiveFlag(argv, 'iters', 'bench:optimizers');
const warmupFlag = nonNegativeFlag(argv, 'warmup', 'bench:optimizers');
const onlyCase = flag(argv, 'case') ?? null;
const B = 128;
// A tiny learning rate: every method does its full work, but the model cannot memorize the fixed
// batch; a memorized batch drives gradients into denormal floats, which run 10x slower on a CPU.
const LR = 1e-6;

/** A model, its per-sample loss on the case's fixed batch, and the batch's tensors (freed after the case). */
interface Setup { model: () => Module; loss: (m: Module) => Tensor; inputs: Tensor[] }
interface Case {
  name: string;
  setup: () => Setup;
  /** Time the hand-written reuse floor too (a plain stack of Linears and ReLUs). */
  floor?: boolean;
  /** The first-order rule every ratio is over. */
  reference: 'sgd' | 'adamw';
  /** Contenders beside the reference, by result key. */
  methods: Record<string, ((m: Module) => Preconditioner) | null>;
  iters: number;
  rounds: number;
  /** Untimed steps of every contender before the rounds (see the header). */
  warmup: number;
  /** Left out of a run without --case (too long to run by default). */
  onlyWhenNamed?: boolean;
}

function imageSetup(model: () => Layer, shape: number[]): () => Setup {
  return () => {
    const x = keep(randn(shape));
    const y = keep(randint(0, 10, [B]));
    return { model, loss: (m) => crossEntropyPerSample((m as Layer).forward(x), y), inputs: [x, y] };
  };
}

/** Multi30K's vocabulary sizes (min frequency 2, lower-cased). */
const SRC_VOCAB = 5977;
const TGT_VOCAB = 7857;

/** The median Multi30K batch's shape: sentences of 9-12 words, PAD after, the task's loss (tasks.ts). */
function transformerSetup(): Setup {
  const lengths = (): number[] => Array.from({ length: B }, (_, i) => 9 + ((i * 7) % 4));
  const padded = (rows: number[][], n: number): Tensor => keep(tensor(BigInt64Array.from(rows.flatMap((r) => [...r, ...new Array<number>(n - r.length).fill(PAD)].map(BigInt))), { shape: [rows.length, n] }));
  const words = (v: number, ls: number[]): number[][] => scope(() => ls.map((l) => randint(4, v, [l]).toArray().map(Number)));
  const src = words(SRC_VOCAB, lengths());
  const tgt = words(TGT_VOCAB, lengths().reverse());
  const s = padded(src, 12);
  const tgtIn = padded(tgt.map((w) => [BOS, ...w]), 13);
  const tgtOut = padded(tgt.map((w) => [...w, EOS]), 13);
  const tokens = tgt.reduce((n, w) => n + w.length + 1, 0);
  return {
    model: () => translationModel(SRC_VOCAB, TGT_VOCAB),
    loss: (m) => crossEntropyPerSample((m as TransformerSeq2Seq).forward(s, tgtIn), tgtOut, { ignoreIndex: PAD, labelSmoothing: 0.1 }).mul(B / tokens),
    inputs: [s, tgtIn, tgtOut],
  };
}

const IMAGE_METHODS: Case['methods'] = {
  fngd_reuse: (m) => fngd(m, { numSamples: B }),
  sgd_engine: (m) => engineSgd(m),
  ngd: (m) => ngd(m),
  kfac: (m) => kfac(m),
  ief: (m) => ief(m),
  fast_ief_reuse: (m) => fastIef(m, { numSamples: B }),
  thermo_ngd: (m) => thermodynamicNgd(m),
  thermo_ngd_dt05: (m) => thermodynamicNgd(m, { dt: 0.5 }),
};
const cases: Case[] = [
  { name: 'mlp', setup: imageSetup(() => mlp({ inputSize: 784, hidden: [512, 256], classes: 10 }), [B, 1, 28, 28]), reference: 'sgd', methods: IMAGE_METHODS, iters: 2, rounds: 40, warmup: MLP_WARMUP_STEPS, floor: true },
  { name: 'resnet', setup: imageSetup(() => resnetSmall({ depth: 20, classes: 10 }), [B, 3, 32, 32]), reference: 'sgd', methods: IMAGE_METHODS, iters: 1, rounds: 30, warmup: 0 },
  {
    name: 'transformer', setup: transformerSetup, reference: 'adamw', iters: 1, rounds: 10, warmup: 0,
    methods: {
      sgd: null,
      ngd: (m) => ngd(m),
      ief: (m) => ief(m),
      fngd_reuse: (m) => fngd(m, { numSamples: B }),
      fast_ief_reuse: (m) => fastIef(m, { numSamples: B }),
      sgd_engine: (m) => engineSgd(m),
    },
  },
  // Only when asked for (--case transformer-kfac): 10 rounds of whole 10-step cost periods.
  { name: 'transformer-kfac', setup: transformerSetup, reference: 'adamw', iters: 1, rounds: 10, warmup: 0, methods: { kfac: (m) => kfac(m) }, onlyWhenNamed: true },
];
if (onlyCase !== null && !cases.some((c) => c.name === onlyCase)) {
  throw new RangeError(`bench:optimizers: --case must be one of ${cases.map((c) => c.name).join(', ')}, got '${onlyCase}'`);
}

/**
 * The reuse_floor step on an MLP (flatten, then Linears with ReLU between): see the header. Its
 * coefficients are fixed positive rows summing to 1, as FNGD's normalized ones do.
 */
function reuseFloor(model: Module, opt: Optimizer, x: Tensor, y: Tensor): { step: () => void; alpha: Tensor } {
  const linears = model.namedModules().map(([, m]) => m).filter((m): m is Linear => m instanceof Linear);
  const alpha = keep(rand([linears.length, B, 1]).add(0.5));
  alpha.div_(alpha.sum(1, true));
  const step = (): void => scope(() => {
    const inputs: Tensor[] = [];
    const outputs: Tensor[] = [];
    let h = x.flatten(1);
    linears.forEach((l, i) => {
      inputs.push(h);
      const z = F.linear(h, l.weight, l.bias);
      outputs.push(z);
      h = i < linears.length - 1 ? z.relu() : z;
    });
    const deltas = grad(F.crossEntropy(h, y, { reduction: 'none' }).sum(), outputs);
    noGrad(() => linears.forEach((l, i) => {
      const d = deltas[i]!.mul_(alpha.select(0, i));
      l.weight.grad = d.t().mm(inputs[i]!);
      l.bias!.grad = d.sum(0);
    }));
    opt.update();
  });
  return { step, alpha };
}

const result: Record<string, unknown> = {};
for (const c of cases) {
  if (onlyCase === null ? c.onlyWhenNamed === true : c.name !== onlyCase) continue;
  manualSeed(0);
  const setup = c.setup();
  const ids = Int32Array.from({ length: B }, (_, i) => i);
  // One model per optimizer: each method taps its own model.
  // Every method with SGD's rule (momentum 0.9), the pairing its step cost is quoted for.
  const make = (pre: ((m: Module) => Preconditioner) | null, rule: 'sgd' | 'adamw' = 'sgd'): { model: Module; opt: Optimizer } => {
    manualSeed(0);
    const model = setup.model();
    const p = pre === null ? null : pre(model);
    const opt = rule === 'adamw'
      ? new AdamW(model.parameters(), { lr: LR, preconditioner: p })
      : new SGD(model.parameters(), { lr: LR, momentum: 0.9, preconditioner: p });
    return { model, opt };
  };
  const ref = c.reference;
  const runs: Record<string, { model: Module; opt: Optimizer }> = { [ref]: make(null, ref) };
  for (const [k, pre] of Object.entries(c.methods)) runs[k] = make(pre);
  const reuses = new Set(['fngd_reuse', 'fast_ief_reuse']);
  const step = (r: { model: Module; opt: Optimizer }, epoch: number): void => {
    scope(() => { r.opt.step({ perSampleLoss: setup.loss(r.model), sampleIds: ids, epoch, batchIndex: 0 }); });
  };
  for (const k of reuses) if (runs[k] !== undefined) step(runs[k], 0); // fills the store: every later call is a reuse step
  const contenders: Record<string, (n: number) => number> = {};
  for (const [k, r] of Object.entries(runs)) {
    contenders[k] = (n) => timeWholePeriods(n, r.opt.costPeriod, () => step(r, reuses.has(k) ? 1 : 0));
  }
  const floorRun = c.floor === true ? make(null) : null;
  if (floorRun !== null) {
    const floor = reuseFloor(floorRun.model, floorRun.opt, setup.inputs[0]!, setup.inputs[1]!);
    contenders.reuse_floor = (n) => timeWholePeriods(n, 1, floor.step);
    setup.inputs.push(floor.alpha); // freed with the case's inputs
  }
  const rounds = roundsFlag ?? c.rounds;
  const warmup = warmupFlag ?? c.warmup;
  if (warmup > 0) for (const run of Object.values(contenders)) run(warmup);
  const t = await bracketedRatios(contenders, ref, { rounds, iters: itersFlag ?? c.iters });
  result[`${ref}_step_ms_${c.name}`] = median(t.reference) * 1e3;
  const put = (name: string, ratios: number[]): void => {
    const r = summarizeRatios(ratios);
    const round3 = (v: number): number => Number(v.toFixed(3));
    result[`${name}_${c.name}`] = r.median;
    result[`${name}_${c.name}_iqr`] = [round3(r.q1), round3(r.q3)];
    result[`${name}_${c.name}_ci95`] = r.ci95.map(round3);
  };
  for (const k of Object.keys(runs)) if (k !== ref) put(`${k}_over_${ref}`, t.ratios[k]!);
  // Both bracketed by the same round's reference blocks: their quotient is the coefficients' own cost.
  if (runs.fngd_reuse !== undefined && runs.sgd_engine !== undefined) put('fngd_reuse_over_sgd_engine', t.ratios.fngd_reuse!.map((x, i) => x / t.ratios.sgd_engine![i]!));
  if (floorRun !== null) {
    put(`reuse_floor_over_${ref}`, t.ratios.reuse_floor!);
    put('fngd_reuse_over_reuse_floor', t.ratios.fngd_reuse!.map((x, i) => x / t.ratios.reuse_floor![i]!));
  }
  if (runs.kfac !== undefined) {
    // KFAC's inverses (every invUpdateEvery = 100 steps) are left out of its cost period, so the
    // median round holds none. The timed rounds span a whole number of hundreds of steps (after a
    // warm-up of whole periods), so the mean over rounds counts them, amortized.
    result[`kfac_over_${ref}_${c.name}_mean`] = t.ratios.kfac!.reduce((a, x) => a + x, 0) / t.ratios.kfac!.length;
  }
  result[`rounds_${c.name}`] = rounds;
  result[`warmup_steps_${c.name}`] = warmup;
  if (runs.thermo_ngd !== undefined) {
    // The analog solver's time per step (t tau, all groups in parallel) beside the simulation's.
    const thermo = runs.thermo_ngd.opt.preconditioner!.settings.solver as { t: number; tau: number };
    result[`thermo_ngd_analog_s_per_step_${c.name}`] = thermo.t * thermo.tau;
    result[`thermo_ngd_digital_s_per_step_${c.name}`] = (median(t.reference) * (result[`thermo_ngd_over_sgd_${c.name}`] as number));
  }
  for (const r of [...Object.values(runs), ...(floorRun === null ? [] : [floorRun])]) {
    r.opt.dispose();
    r.model.dispose();
  }
  for (const x of setup.inputs) x.dispose();
}
report({ ...result, batch: B, threads: getNumThreads() }, json);
