// The one method registry: per method its options (flag, default, check, one-line doc), its default
// first-order rule, how it is built, its step-cost period and its hyperparameters per task. The CLI
// (`fngd train`, its --help), `fngd bench`, the benchmarks and the hyperparameter tables read it;
// nothing else lists methods. A method's option default here is the one its factory uses (a test
// builds every method with no options and compares its settings with these defaults).
//
// Precedence of a run's values: option defaults < the task's table (when the method runs with its
// default rule) < what the user gave.
import type { Module } from '../nn/module.js';
import { AdamW, SGD, type Optimizer } from '../optim/index.js';
import type { TaskName } from '../train/tasks.js';
import { fastIef, fngd, ief, kfac, ngd, thermodynamicNgd } from './methods.js';
import type { KfacEmbeddings } from './kfac.js';
import type { Preconditioner } from './preconditioner.js';

export type OptionKind = 'int' | 'number' | 'string' | 'bool' | 'numbers';
export type OptionValue = number | string | boolean | number[];

/** One option: its flag's kind, check and doc (the CLI's FlagSpec has the same shape). */
export interface OptionSpec {
  kind: OptionKind;
  help: string;
  default?: OptionValue;
  choices?: readonly string[];
  min?: number;
  max?: number;
  /** How many numbers a 'numbers' option takes. */
  length?: number;
}

export type RuleName = 'sgd' | 'adamw';
export const RULES: readonly RuleName[] = ['sgd', 'adamw'];

/** What building a method needs to know of the training run. */
export interface MethodContext {
  model: Module;
  /** The training set's length (FNGD's store keyed by sample id). */
  numSamples: number;
  batchesPerEpoch: number;
  batchSize: number;
  /** The run's seed (the thermodynamic solver's noise). */
  seed: number;
}

/** Option values by camelCase key (`--damping-mode` -> dampingMode). */
export type Values = Record<string, OptionValue | undefined>;

export interface MethodEntry {
  /** One line: what it is and where its task values come from. */
  doc: string;
  /** The rule it pairs with unless --rule says otherwise. */
  rule: RuleName;
  /** Its own options by flag name (the rule's are in RULE_OPTIONS). */
  options: Record<string, OptionSpec>;
  /** The preconditioner (null: the rule alone, on the mean-loss gradient). */
  build(ctx: MethodContext, v: Values): Preconditioner | null;
  /** Steps after which its step cost repeats (KFAC: its factor interval). */
  costPeriod(v: Values): number;
  /** Tasks whose values come from a documented search (bench/search/, docs/RESULTS.md). */
  searched: TaskName[];
  /** Per task: lr, weight decay and any option that differs from the defaults (with the default rule). */
  tasks: Record<TaskName, Values>;
}

/** Options of every rule: lr and weight decay, then the rule's own. */
export const RULE_OPTIONS: Record<RuleName, Record<string, OptionSpec>> = {
  sgd: {
    // The SGD class itself keeps PyTorch's default, 0; every run the registry builds uses 0.9.
    momentum: { kind: 'number', min: 0, max: 0.999999, default: 0.9, help: 'SGD momentum' },
    nesterov: { kind: 'bool', default: false, help: 'SGD Nesterov momentum' },
  },
  adamw: {
    betas: { kind: 'numbers', length: 2, default: [0.9, 0.999], help: 'AdamW betas' },
    eps: { kind: 'number', min: 0, default: 1e-8, help: 'AdamW epsilon' },
  },
};

const SAMPLE_SPACE: Record<string, OptionSpec> = {
  damping: { kind: 'number', min: 0, default: 10, help: 'lambda of (K + shift I) alpha = r' },
  'damping-mode': { kind: 'string', choices: ['relative', 'absolute'], default: 'relative', help: 'lambda absolute (shift lambda B), or relative to mean(diag K)' },
  'damping-decay': { kind: 'number', min: 0, max: 1, default: 1, help: 'multiply lambda by this every epoch' },
  'min-damping': { kind: 'number', min: 0, default: 0, help: 'the floor of the decayed lambda' },
  'ngd-mode': { kind: 'string', choices: ['layerwise', 'global'], default: 'layerwise', help: 'one alpha per layer (block-diagonal Fisher) or one for all layers' },
  normalize: { kind: 'string', choices: ['sum', 'none'], default: 'sum', help: 'rescale each alpha to sum to 1 (SGD\'s step size), or keep the raw damped solution' },
};
// iEF's right-hand side weighs samples by their logit-gradient norms, which concentrate on the few
// high-loss samples of a batch: normalizing alpha to sum 1 turns that into a step of a few samples at
// SGD's learning rate (MNIST: 92.4% against 97.5% raw, docs/RESULTS.md). iEF keeps the raw solution
// (undamped, g_i^T d = ||d l_i / d z_i||^2: every sample's logits move by one logit-space gradient
// step times lr) with light damping, as in the iEF paper.
const IEF_SPACE: Record<string, OptionSpec> = {
  ...SAMPLE_SPACE,
  damping: { ...SAMPLE_SPACE.damping!, default: 0.1 },
  normalize: { ...SAMPLE_SPACE.normalize!, default: 'none' },
};
const STORE: Record<string, OptionSpec> = {
  key: { kind: 'string', choices: ['sample', 'slot'], default: 'sample', help: 'store coefficients by dataset sample id or by batch slot' },
  'refresh-every': { kind: 'int', min: 0, default: 0, help: 'solve again every N epochs (0: the first epoch only)' },
  'probe-every': { kind: 'int', min: 0, default: 0, help: 'staleness probe every N reuse steps (0: off)' },
  'probe-threshold': { kind: 'number', min: -1, max: 1, default: 0.9, help: 'a probe cosine below this makes the next epoch a solve epoch' },
};
const THERMO: Record<string, OptionSpec> = {
  't-analog': { kind: 'number', min: 0, default: 50, help: 'simulated analog time per solve, in units of the time constant tau (0: SGD\'s direction)' },
  'dt-analog': { kind: 'number', min: 0, max: 1.99, default: 0.1, help: 'Euler-Maruyama step, in units of tau' },
  kappa0: { kind: 'number', min: 0, default: 0, help: 'noise of the analog solver (stationary covariance kappa0 (K + shift I)^-1)' },
  'warm-start': { kind: 'string', choices: ['uniform', 'previous'], default: 'uniform', help: 'start from SGD\'s uniform coefficients, or from the previous step\'s alpha' },
};
const KFAC_OPTIONS: Record<string, OptionSpec> = {
  damping: { kind: 'number', min: 0, default: 1e-3, help: 'Tikhonov damping of the Kronecker factors' },
  'stat-decay': { kind: 'number', min: 0, max: 1, default: 0.95, help: 'running-average decay of the factors' },
  'cov-update-every': { kind: 'int', min: 1, default: 10, help: 'steps between factor updates' },
  'inv-update-every': { kind: 'int', min: 1, default: 100, help: 'steps between inverse updates' },
  'kl-clip': { kind: 'number', min: 0, default: 1e-3, help: 'KL clipping bound (0: off)' },
  embeddings: { kind: 'string', choices: ['kfac', 'first-order'], default: 'kfac', help: 'embedding layers: KFAC with their diagonal A (token frequencies), or the plain mean-loss gradient' },
};

function sampleSpaceValues(v: Values): Parameters<typeof ngd>[1] {
  return {
    damping: v.damping as number, dampingMode: v.dampingMode as 'relative' | 'absolute', dampingDecay: v.dampingDecay as number,
    minDamping: v.minDamping as number, mode: v.ngdMode as 'layerwise' | 'global', normalize: v.normalize as 'sum' | 'none',
  };
}
function storeValues(ctx: MethodContext, v: Values): { key: 'sample'; numSamples: number } & Record<string, unknown> {
  return {
    key: v.key as 'sample', numSamples: ctx.numSamples, batchesPerEpoch: ctx.batchesPerEpoch, batchSize: ctx.batchSize,
    refreshEvery: v.refreshEvery as number, probeEvery: v.probeEvery as number, probeThreshold: v.probeThreshold as number,
  };
}

const one = (): number => 1;
/**
 * lr and weight decay per task (MNIST, Fashion-MNIST, CIFAR-10, Multi30K), for any method. The
 * CIFAR-10 MLP (the iEF paper's setup) takes the MNIST MLP's lr without weight decay: not searched.
 */
const taskValues = (lr: [number, number, number, number], wd: [number, number, number, number]): Record<TaskName, Values> => ({
  'mnist-mlp': { lr: lr[0], weightDecay: wd[0] },
  'fashion-cnn': { lr: lr[1], weightDecay: wd[1] },
  'cifar10-resnet': { lr: lr[2], weightDecay: wd[2] },
  'cifar10-mlp': { lr: lr[0], weightDecay: 0 },
  'multi30k-transformer': { lr: lr[3], weightDecay: wd[3] },
});

/**
 * Task values: MNIST and CIFAR-10 from the issue-5 searches (bench/search/grid-issue5.txt; iEF and
 * thermodynamic NGD on MNIST from the issue-12 search, bench/search/grid-issue12.txt; every
 * result in docs/RESULTS.md: MNIST on the whole training set for 3 epochs, CIFAR-10 on a
 * 10,240-image subset for 3 epochs; short horizons favour small learning rates). Fashion-MNIST and
 * the Transformer: unsearched starting points. iEF and fast iEF start from NGD's and FNGD's values
 * (normalized coefficients, so SGD-scale learning rates) until their own search.
 * The Transformer's second-order values are NOT searched either, only sanity-checked (issue 15,
 * docs/RESULTS.md): 30 steps of batch 128 at a constant lr without warm-up (harsher than the task's
 * 200 warm-up steps): NGD at 0.1 oscillated (loss 6.2 -> 8.6 after step 17), at 0.03 it fell below
 * AdamW's (mean 6.89 against 7.15), so NGD, FNGD and thermodynamic NGD (not run; its direction lies
 * between SGD's and NGD's) take 0.03; iEF at 0.3 reached NaN at step 14, at 0.1 it was slow but
 * stable (kept). KFAC: lr 0.003 (the proxy: 0.003 6.663, 0.01 6.685, 0.03 6.880 mean loss) at
 * damping 0.01, from the full schedule's first 100-150 steps at damping 1e-3, 0.01, 0.03 and 0.1
 * (mean step loss over steps 80-99: 6.16, 5.48, 5.73, 6.23; AdamW 6.33, NGD 5.93): at 1e-3 the loss
 * stays at 5.9-6.2 from step 40 to 480 (the unigram level, BLEU 0.01 after 2 epochs). Over the
 * full schedule damping 0.03 reached greedy BLEU 20.24 after 5 epochs (issue 15's table); 0.01 was
 * ahead in every 20-step window of the 306 steps both ran (mean step loss 0.13-0.74 lower) and,
 * stopped after 3 epochs for machine time, led there too (greedy BLEU 14.77 against 13.49).
 */
export const METHODS: Record<string, MethodEntry> = {
  sgd: {
    doc: 'SGD with momentum (PyTorch semantics) on the mean-loss gradient',
    rule: 'sgd', options: {}, build: () => null, costPeriod: one,
    searched: ['mnist-mlp', 'cifar10-resnet'],
    tasks: taskValues([0.02, 0.05, 0.02, 0.1], [0, 0, 5e-4, 0]),
  },
  adamw: {
    doc: 'AdamW (PyTorch semantics) on the mean-loss gradient',
    rule: 'adamw', options: {}, build: () => null, costPeriod: one,
    searched: ['mnist-mlp', 'cifar10-resnet'],
    tasks: taskValues([5e-4, 1e-3, 2e-3, 5e-4], [0.01, 0.01, 0.05, 0.01]),
  },
  ngd: {
    doc: 'exact damped empirical-Fisher NGD through the B x B Gram, coefficients solved every step (FNGD.md sec. 1)',
    rule: 'sgd', options: SAMPLE_SPACE,
    build: (ctx, v) => ngd(ctx.model, sampleSpaceValues(v)), costPeriod: one,
    searched: ['mnist-mlp', 'cifar10-resnet'],
    tasks: { ...taskValues([0.1, 0.05, 0.02, 0.03], [0, 0, 5e-4, 0]) },
  },
  fngd: {
    doc: 'FNGD: NGD\'s coefficients solved in the first epoch, stored by sample id and reused after (FNGD.md sec. 2)',
    rule: 'sgd', options: { ...SAMPLE_SPACE, ...STORE },
    build: (ctx, v) => fngd(ctx.model, { ...sampleSpaceValues(v), ...storeValues(ctx, v) }), costPeriod: one,
    searched: ['mnist-mlp', 'cifar10-resnet'],
    tasks: { ...taskValues([0.05, 0.05, 0.02, 0.03], [0, 0, 5e-4, 0]), 'mnist-mlp': { lr: 0.05, weightDecay: 0, damping: 30 } },
  },
  ief: {
    doc: 'iEF (Wu et al. 2024): the Gram solve with right-hand side ||d l_i / d z_i||^2 (logit-gradient norms), every step',
    rule: 'sgd', options: IEF_SPACE,
    build: (ctx, v) => ief(ctx.model, sampleSpaceValues(v)), costPeriod: one,
    searched: ['mnist-mlp'],
    tasks: { ...taskValues([0.1, 0.05, 0.02, 0.1], [0, 0, 5e-4, 0]), 'mnist-mlp': { lr: 0.1, weightDecay: 0, damping: 1 } },
  },
  'fast-ief': {
    doc: 'fast iEF: iEF\'s coefficients solved in the first epoch and reused through FNGD\'s store',
    rule: 'sgd', options: { ...IEF_SPACE, ...STORE },
    build: (ctx, v) => fastIef(ctx.model, { ...sampleSpaceValues(v), ...storeValues(ctx, v) }), costPeriod: one,
    searched: [],
    tasks: { ...taskValues([0.1, 0.05, 0.02, 0.1], [0, 0, 5e-4, 0]) },
  },
  'thermo-ngd': {
    doc: 'thermodynamic NGD (Donatella et al. 2024), simulated: NGD\'s B x B system solved by an Ornstein-Uhlenbeck process run for time t (t = 0: SGD, t -> infinity: NGD)',
    rule: 'sgd', options: { ...SAMPLE_SPACE, ...THERMO },
    build: (ctx, v) => thermodynamicNgd(ctx.model, {
      ...sampleSpaceValues(v), t: v.tAnalog as number, dt: v.dtAnalog as number, kappa0: v.kappa0 as number,
      warmStart: v.warmStart as 'uniform' | 'previous', seed: ctx.seed,
    }),
    costPeriod: one,
    searched: ['mnist-mlp'],
    tasks: { ...taskValues([0.1, 0.05, 0.02, 0.03], [0, 0, 5e-4, 0]), 'mnist-mlp': { lr: 0.1, weightDecay: 0, tAnalog: 10 } },
  },
  kfac: {
    doc: 'K-FAC (Martens & Grosse 2015; conv: Grosse & Martens 2016) from the same capture, KL clipping',
    rule: 'sgd', options: KFAC_OPTIONS,
    build: (ctx, v) => kfac(ctx.model, {
      damping: v.damping as number, statDecay: v.statDecay as number, covUpdateEvery: v.covUpdateEvery as number,
      invUpdateEvery: v.invUpdateEvery as number, klClip: (v.klClip as number) || null, embeddings: v.embeddings as KfacEmbeddings,
    }),
    costPeriod: (v) => v.covUpdateEvery as number,
    searched: ['mnist-mlp', 'cifar10-resnet'],
    tasks: {
      ...taskValues([0.003, 0.01, 0.01, 0.003], [0, 0, 5e-4, 0]),
      'mnist-mlp': { lr: 0.003, weightDecay: 0, damping: 1e-2 },
      'multi30k-transformer': { lr: 0.003, weightDecay: 0, damping: 0.01 },
    },
  },
};

export const METHOD_NAMES = (): string[] => Object.keys(METHODS);

/** Options every method has: the rule, lr, weight decay. */
export const COMMON_OPTIONS: Record<string, OptionSpec> = {
  rule: { kind: 'string', choices: RULES, help: 'the first-order rule that applies the direction (default: the method\'s, sgd; adamw gives NGD+AdamW, ...)' },
  lr: { kind: 'number', min: 0, help: 'learning rate (default: per task and method, docs/RESULTS.md)' },
  'weight-decay': { kind: 'number', min: 0, help: 'weight decay (default: per task and method)' },
};

export const camel = (flag: string): string => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
/** camel's inverse: an option name as its flag name (`lengthPenalty` -> `length-penalty`). */
export const kebab = (k: string): string => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

export function methodEntry(name: string): MethodEntry {
  const e = METHODS[name];
  if (e === undefined) throw new RangeError(`unknown method '${name}' (use one of ${METHOD_NAMES().join(', ')})`);
  return e;
}

/** The option flags a method takes with a rule: its own, the rule's and the common ones. */
export function methodOptions(name: string, rule?: RuleName): Record<string, OptionSpec> {
  const e = methodEntry(name);
  return { ...COMMON_OPTIONS, ...RULE_OPTIONS[rule ?? e.rule], ...e.options };
}

/**
 * Every value a method's run uses: defaults, then the task's table (with the method's own rule; with
 * another rule, that rule's first-order entry gives lr and weight decay), then `given` (camelCase;
 * undefined entries are not given). Throws a RangeError naming any given option the method does
 * not take.
 */
export function resolveValues(name: string, task: TaskName, given: Values): Values & { rule: RuleName; lr: number; weightDecay: number } {
  const e = methodEntry(name);
  const rule = (given.rule ?? e.rule) as RuleName;
  if (!RULES.includes(rule)) throw new RangeError(`unknown rule '${String(rule)}' (use one of ${RULES.join(', ')})`);
  const specs = methodOptions(name, rule);
  const known = new Set(Object.keys(specs).map(camel));
  const stray = Object.entries(given).filter(([k, v]) => v !== undefined && !known.has(k)).map(([k]) => k);
  if (stray.length > 0) {
    const flags = stray.map((k) => `--${kebab(k)}`);
    throw new RangeError(`${flags.join(', ')} ${stray.length > 1 ? 'are not options' : 'is not an option'} of ${name} with ${rule} (its options: ${Object.keys(specs).map((f) => `--${f}`).join(' ')})`);
  }
  for (const [flag, s] of Object.entries(specs)) {
    const v = given[camel(flag)];
    if (v !== undefined) checkValue(flag, s, v);
  }
  const defaults: Values = {};
  for (const [flag, s] of Object.entries(specs)) if (s.default !== undefined) defaults[camel(flag)] = s.default;
  const table = rule === e.rule ? e.tasks[task] : METHODS[rule]!.tasks[task];
  const out: Values = { ...defaults, ...table, rule };
  for (const [k, v] of Object.entries(given)) if (v !== undefined) out[k] = v;
  return out as Values & { rule: RuleName; lr: number; weightDecay: number };
}

const COUNT = ['no', 'one', 'two', 'three', 'four'];

/** Throws a RangeError naming `--flag` unless `v` fits the option's kind, bounds and choices. */
export function checkValue(flag: string, s: OptionSpec, v: OptionValue): void {
  const nums = s.kind === 'numbers' ? (Array.isArray(v) ? v : [v]) : s.kind === 'int' || s.kind === 'number' ? [v] : [];
  if (s.kind === 'numbers' && s.length !== undefined && (!Array.isArray(v) || v.length !== s.length)) {
    throw new RangeError(`--${flag} needs ${COUNT[s.length] ?? s.length} numbers like ${String(s.default ?? '')}; got ${Array.isArray(v) ? v.join(',') : String(v)}`);
  }
  for (const x of nums) {
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new RangeError(`--${flag} must be a finite number, got ${String(x)}`);
    if (s.kind === 'int' && !Number.isInteger(x)) throw new RangeError(`--${flag} must be an integer, got ${x}`);
    if (s.min !== undefined && x < s.min) throw new RangeError(`--${flag} must be at least ${s.min}, got ${x}`);
    if (s.max !== undefined && x > s.max) throw new RangeError(`--${flag} must be at most ${s.max}, got ${x}`);
  }
  if (s.kind === 'string' && (typeof v !== 'string' || (s.choices !== undefined && !s.choices.includes(v)))) {
    throw new RangeError(`--${flag} must be one of ${(s.choices ?? []).join(', ')}; got '${String(v)}'`);
  }
  if (s.kind === 'bool' && typeof v !== 'boolean') throw new RangeError(`--${flag} must be true or false, got ${String(v)}`);
}

/** Builds the method's preconditioner and its rule from resolved values (`resolveValues`). */
export function buildMethod(name: string, ctx: MethodContext, v: Values): Optimizer {
  const e = methodEntry(name);
  const rule = (v.rule ?? e.rule) as RuleName;
  const pre = e.build(ctx, v);
  const params = ctx.model.parameters();
  try {
    if (rule === 'adamw') {
      const betas = v.betas as number[];
      if (!Array.isArray(betas) || betas.length !== 2) throw new RangeError(`betas needs two numbers like 0.9,0.999; got ${String(betas)}`);
      return new AdamW(params, { lr: v.lr as number, betas: [betas[0]!, betas[1]!], eps: v.eps as number, weightDecay: v.weightDecay as number, preconditioner: pre });
    }
    return new SGD(params, { lr: v.lr as number, momentum: v.momentum as number, nesterov: v.nesterov as boolean, weightDecay: v.weightDecay as number, preconditioner: pre });
  } catch (err) {
    pre?.dispose();
    throw err;
  }
}
