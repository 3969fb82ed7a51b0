// The reproduction suites: per task the data, epochs, batch size, target, seeds and the interleaved
// step-timing budget. `fngd bench --suite NAME` runs one; hyperparameters are in bench/hyper.ts.
//
// Targets are in the metric's units (accuracy in [0, 1], BLEU in [0, 100]); the full suite's are the
// issue's (#6). The quick suite's are what SGD reaches in its second or third epoch on those subsets
// (seed 0, measured: MNIST 95.7/96.3/97.5%, Fashion 79.4/83.4/84.3%, CIFAR 15.3/27.3/30.5% after
// epochs 1/2/3), so that a faster method can show it by reaching them an epoch earlier.
// Time budget of `quick` (<= 20 min on 2 cores): see QUICK_BUDGET below and `estimateSeconds`.
import type { TaskConfig } from '../src/report/report.js';
import type { TaskName } from '../src/train/tasks.js';
import { MLP_WARMUP_STEPS } from './timing.js';

export const SUITES = ['quick', 'full', 'smoke'] as const;
export type SuiteName = (typeof SUITES)[number];

/** The default optimizer order of every suite and report (the table's order). */
export const SUITE_OPTIMIZERS = ['sgd', 'adamw', 'kfac', 'ngd', 'fngd'];

/** Training-set sizes (before trainLimit), for planning. CIFAR-10: 45,000 after the 5,000 held out. */
export const TRAIN_SIZE: Record<TaskName, number> = {
  'mnist-mlp': 60000, 'fashion-cnn': 60000, 'cifar10-resnet': 45000, 'cifar10-mlp': 45000, 'multi30k-transformer': 29000,
};

// The MLP's step timing starts after MLP_WARMUP_STEPS untimed steps unless a config says otherwise.
const mnist = (o: Partial<TaskConfig>): TaskConfig => ({
  task: 'mnist-mlp', title: 'MNIST MLP 784-512-256-10', metric: 'accuracy', split: 'test',
  target: 0.975, epochs: 10, batchSize: 128, seeds: 3, ...o,
  timing: { warmup: MLP_WARMUP_STEPS, ...(o.timing ?? { rounds: 10, iters: 10 }) },
});
const fashion = (o: Partial<TaskConfig>): TaskConfig => ({
  task: 'fashion-cnn', title: 'Fashion-MNIST CNN', metric: 'accuracy', split: 'test',
  target: 0.9, epochs: 10, batchSize: 128, seeds: 3, timing: { rounds: 10, iters: 3 }, ...o,
});
// The shared CIFAR-10 has no test split: the metric is on the 5,000 held-out training images.
const cifar = (o: Partial<TaskConfig>): TaskConfig => ({
  task: 'cifar10-resnet', title: 'CIFAR-10 ResNet-20', metric: 'accuracy', split: 'val', arch: 'small',
  target: 0.75, epochs: 10, batchSize: 128, seeds: 2, timing: { rounds: 5, iters: 2 }, ...o,
});
const multi30k = (o: Partial<TaskConfig>): TaskConfig => ({
  task: 'multi30k-transformer', title: 'Multi30K Transformer (en-de)', metric: 'bleu', split: 'test',
  target: 25, epochs: 10, batchSize: 128, seeds: 2, timing: { rounds: 5, iters: 2 }, ...o,
});

/**
 * quick: an MNIST subset (2 seeds), a Fashion subset and a CIFAR-10 subset (1 seed each); no
 * Transformer (one epoch alone would take most of the budget). 3 epochs each, so that FNGD's reuse
 * of its first-epoch coefficients shows in epochs 2-3. Planned with all five optimizers on 2 idle
 * cores (estimateSeconds: SGD step times and the cost factors below): MNIST ~4.0 min, Fashion
 * ~4.4 min, CIFAR ~6.8 min (KFAC alone about 40% of it), so ~15 min with timing and data loading,
 * leaving ~5 min for noise. `--seeds 2` doubles the Fashion and CIFAR parts (about 26 min in all).
 *
 * full: the whole training sets, 10 epochs, the targets, 3 seeds (2 for CIFAR and the
 * Transformer: a CIFAR ResNet-20 seed of five optimizers is about 5.7 h on 2 cores; ~21 h in all).
 * `resnet18`: the paper's ResNet-18 for CIFAR (when training runs on a CUDA device).
 *
 * smoke: a pipeline check in seconds (tests, `fngd bench --suite smoke`); its numbers mean nothing.
 */
export function getSuite(name: SuiteName, o: { resnet18?: boolean } = {}): TaskConfig[] {
  switch (name) {
    case 'quick':
      return [
        mnist({ target: 0.97, epochs: 3, trainLimit: 30000, seeds: 2, timing: { rounds: 5, iters: 10 } }),
        fashion({ target: 0.83, epochs: 3, trainLimit: 10240, evalLimit: 5000, seeds: 1, timing: { rounds: 5, iters: 3 } }),
        cifar({ target: 0.25, epochs: 3, trainLimit: 2560, evalLimit: 1000, seeds: 1, timing: { rounds: 3, iters: 1 } }),
      ];
    case 'full':
      return [
        mnist({}),
        fashion({}),
        o.resnet18 ? cifar({ title: 'CIFAR-10 ResNet-18', arch: 'resnet18' }) : cifar({}),
        multi30k({}),
      ];
    case 'smoke':
      return [mnist({ target: 0.5, epochs: 2, batchSize: 64, trainLimit: 256, evalLimit: 200, seeds: 1, timing: { rounds: 2, iters: 2, warmup: 0 } })];
    default:
      throw new TypeError(`unknown suite '${String(name)}' (use one of ${SUITES.join(', ')})`);
  }
}

/** The headline demo (`fngd demo`): the MNIST MLP, one seed, about a minute per optimizer on 2 cores. */
export const DEMO: TaskConfig = mnist({ target: 0.97, epochs: 3, seeds: 1, timing: { rounds: 5, iters: 10 } });

// ---- planning ------------------------------------------------------------------------------------

/**
 * Seconds per SGD step at the suite's batch size on 2 idle cores (MNIST and ResNet-20: bench:step
 * and the trainer's logs; Fashion CNN and Transformer: rough).
 */
export const SGD_STEP_S: Record<TaskName, number> = {
  'mnist-mlp': 0.012, 'fashion-cnn': 0.07, 'cifar10-resnet': 0.45, 'cifar10-mlp': 0.08, 'multi30k-transformer': 0.3,
};
/** Seconds per evaluated sample (MNIST forward only; the Transformer decodes greedily). */
export const EVAL_S: Record<TaskName, number> = {
  'mnist-mlp': 2.5e-5, 'fashion-cnn': 3.4e-4, 'cifar10-resnet': 1.3e-3, 'cifar10-mlp': 1e-4, 'multi30k-transformer': 0.02,
};
/** Eval-set sizes (test; CIFAR-10: the 5,000 held-out images). */
const EVAL_SIZE: Record<TaskName, number> = {
  'mnist-mlp': 10000, 'fashion-cnn': 10000, 'cifar10-resnet': 5000, 'cifar10-mlp': 5000, 'multi30k-transformer': 1000,
};
/**
 * Step cost relative to SGD, [first epoch, later epochs], for planning: the interleaved "step / SGD"
 * of the quick suite on an idle 2-core machine (2026-11-26 16:23: adamw 0.97-1.26, kfac 0.92-4.76
 * (MNIST the worst), ngd 1.43-1.83, fngd reusing 0.85-1.22; the 21:02 rerun in docs/bench-quick,
 * bracketed and with KFAC over whole factor periods: adamw 0.91-1.09, kfac 1.82-5.04, ngd 1.48-1.72,
 * fngd 0.89-1.02), rounded up with a margin for a loaded machine; FNGD's first epoch is an NGD
 * epoch. KFAC's factor and inverse updates (every 10 and 100 steps) come on top. Unknown optimizers
 * count as 3.
 */
export const STEP_COST: Record<string, [number, number]> = {
  sgd: [1, 1], adamw: [1.3, 1.3], kfac: [5, 5], ngd: [2, 2], fngd: [2, 1.3],
};

/** Planned seconds of a suite on 2 idle cores: training, evaluation, timing and data loading. */
export function estimateSeconds(tasks: TaskConfig[], optimizers: string[]): number {
  let total = 0;
  for (const t of tasks) {
    const task = t.task as TaskName;
    const steps = Math.floor(Math.min(t.trainLimit ?? Infinity, TRAIN_SIZE[task]) / t.batchSize);
    const step = SGD_STEP_S[task] * (t.batchSize / 128);
    const evalS = EVAL_S[task] * Math.min(t.evalLimit ?? Infinity, EVAL_SIZE[task]);
    const load = task === 'cifar10-resnet' ? 1.5 : 0.3;
    for (const o of optimizers) {
      const [first, later] = STEP_COST[o] ?? [3, 3];
      const run = steps * step * (first + later * (t.epochs - 1)) + evalS * t.epochs + load;
      const timing = ((t.timing.rounds + 1) * t.timing.iters + (t.timing.warmup ?? 0)) * step * later + load;
      total += run * t.seeds + timing;
    }
  }
  return total;
}
