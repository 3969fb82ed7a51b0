// `fngd train`: flags -> task + optimizer + schedule -> Trainer.fit().
import { AdamW, FNGD, KFAC, NGD, SGD, constantLr, cosineAnnealing, linearWarmup, stepDecay, type Optimizer, type Schedule } from '../optim/index.js';
import type { BaseBatch, DataLoader } from '../data/index.js';
import type { Module } from '../nn/index.js';
import { setNumThreads, type Device } from '../tensor/index.js';
import { Trainer, type EpochRecord } from '../train/trainer.js';
import { TASKS, createTask, resolveDevice, type TaskName } from '../train/tasks.js';
import { helpText, parseFlags, UsageError, type FlagSpec } from './args.js';

export const OPTIMIZERS = ['sgd', 'adamw', 'ngd', 'fngd', 'kfac'] as const;
type OptimizerName = (typeof OPTIMIZERS)[number];

/**
 * Per task: epochs, batch size, and each optimizer's lr / weight decay (and damping where it differs
 * from the optimizer's default), chosen by short searches (docs/RESULTS.md): the MNIST values are the
 * issue-5 search's best at these 3 epochs; CIFAR-10's SGD/AdamW/NGD/FNGD rates are for 10 epochs.
 * NGD and FNGD normalize their coefficients to sum to 1 (SGD's scale), so they start from SGD's
 * learning rate.
 */
export const TASK_DEFAULTS: Record<TaskName, { epochs: number; batchSize: number; schedule: string; warmupSteps?: number; lr: Record<OptimizerName, number>; weightDecay: Record<OptimizerName, number>; damping?: Partial<Record<OptimizerName, number>> }> = {
  'mnist-mlp': { epochs: 3, batchSize: 128, schedule: 'constant', lr: { sgd: 0.02, adamw: 5e-4, ngd: 0.1, fngd: 0.05, kfac: 0.003 }, weightDecay: { sgd: 0, adamw: 0.01, ngd: 0, fngd: 0, kfac: 0 }, damping: { fngd: 30, kfac: 1e-2 } },
  'fashion-cnn': { epochs: 5, batchSize: 128, schedule: 'constant', lr: { sgd: 0.05, adamw: 1e-3, ngd: 0.05, fngd: 0.05, kfac: 0.01 }, weightDecay: { sgd: 0, adamw: 0.01, ngd: 0, fngd: 0, kfac: 0 } },
  'cifar10-resnet': { epochs: 10, batchSize: 128, schedule: 'cosine', lr: { sgd: 0.1, adamw: 2e-3, ngd: 0.1, fngd: 0.1, kfac: 0.01 }, weightDecay: { sgd: 5e-4, adamw: 0.05, ngd: 5e-4, fngd: 5e-4, kfac: 5e-4 } },
  'multi30k-transformer': { epochs: 10, batchSize: 128, schedule: 'cosine', warmupSteps: 200, lr: { sgd: 0.1, adamw: 5e-4, ngd: 0.1, fngd: 0.1, kfac: 0.02 }, weightDecay: { sgd: 0, adamw: 0.01, ngd: 0, fngd: 0, kfac: 0 } },
};

export const TRAIN_FLAGS: Record<string, FlagSpec> = {
  task: { kind: 'string', choices: TASKS, help: 'what to train' },
  optimizer: { kind: 'string', choices: OPTIMIZERS, default: 'sgd', help: 'the optimizer' },
  epochs: { kind: 'int', min: 1, help: 'epochs (default: per task, see docs/RESULTS.md)' },
  'batch-size': { kind: 'int', min: 1, help: 'training batch size (default: per task)' },
  lr: { kind: 'number', min: 0, help: 'learning rate (default: per task and optimizer)' },
  'weight-decay': { kind: 'number', min: 0, help: 'weight decay (default: per task and optimizer)' },
  momentum: { kind: 'number', min: 0, max: 0.999999, default: 0.9, help: 'SGD momentum' },
  nesterov: { kind: 'bool', default: false, help: 'SGD Nesterov momentum' },
  betas: { kind: 'numbers', default: [0.9, 0.999], help: 'AdamW betas' },
  eps: { kind: 'number', min: 0, default: 1e-8, help: 'AdamW epsilon' },
  damping: { kind: 'number', min: 0, help: 'NGD/FNGD: lambda (default 10, relative; mnist-mlp FNGD 30); KFAC: Tikhonov damping (default 1e-3; mnist-mlp 1e-2); searches in docs/RESULTS.md' },
  'damping-mode': { kind: 'string', choices: ['relative', 'absolute'], default: 'relative', help: 'NGD/FNGD: lambda absolute, or relative to mean(diag K)/B' },
  'damping-decay': { kind: 'number', min: 0, max: 1, default: 1, help: 'NGD/FNGD: multiply lambda by this every epoch' },
  'ngd-mode': { kind: 'string', choices: ['layerwise', 'global'], default: 'layerwise', help: 'NGD/FNGD: block-diagonal (per layer) or global Fisher' },
  normalize: { kind: 'string', choices: ['sum', 'none'], default: 'sum', help: 'NGD/FNGD: rescale coefficients to sum to 1 (SGD step size), or keep the raw damped NGD step' },
  key: { kind: 'string', choices: ['sample', 'slot'], default: 'sample', help: 'FNGD: store coefficients by dataset sample id or by batch slot' },
  'refresh-every': { kind: 'int', min: 0, default: 0, help: 'FNGD: recompute coefficients every N epochs (0: first epoch only)' },
  'probe-every': { kind: 'int', min: 0, default: 0, help: 'FNGD: staleness probe every N reuse steps (0: off)' },
  'probe-threshold': { kind: 'number', min: -1, max: 1, default: 0.9, help: 'FNGD: a probe cosine below this makes the next epoch an NGD epoch' },
  'stat-decay': { kind: 'number', min: 0, max: 1, default: 0.95, help: 'KFAC: running-average decay of the factors' },
  'cov-update-every': { kind: 'int', min: 1, default: 10, help: 'KFAC: steps between factor updates' },
  'inv-update-every': { kind: 'int', min: 1, default: 100, help: 'KFAC: steps between inverse updates' },
  'kl-clip': { kind: 'number', min: 0, default: 1e-3, help: 'KFAC: KL clipping bound (0: off)' },
  schedule: { kind: 'string', choices: ['constant', 'step', 'cosine'], help: 'lr schedule over steps (default: per task)' },
  'warmup-steps': { kind: 'int', min: 0, help: 'linear lr warm-up steps (default: per task, 0 but for the Transformer)' },
  'step-size': { kind: 'int', min: 1, help: 'step schedule: decay every N epochs (default: a third of the epochs)' },
  gamma: { kind: 'number', min: 0, default: 0.1, help: 'step schedule: decay factor' },
  'label-smoothing': { kind: 'number', min: 0, max: 1, default: 0.1, help: 'multi30k-transformer: label smoothing' },
  arch: { kind: 'string', choices: ['small', 'resnet18'], default: 'small', help: 'cifar10-resnet: ResNet-20 or the paper\'s ResNet-18' },
  seed: { kind: 'int', min: 0, default: 0, help: 'seed of initialization, shuffling, augmentation and dropout' },
  'data-dir': { kind: 'string', help: 'folder with the datasets (default: $FNGD_DATA_DIR, else ../shared/data)' },
  out: { kind: 'string', help: 'output folder for log.jsonl, steps.jsonl and checkpoint.safetensors' },
  resume: { kind: 'bool', default: false, help: 'continue the run whose checkpoint is in --out' },
  'checkpoint-every': { kind: 'int', min: 0, default: 0, help: 'also checkpoint every N steps (0: after each epoch and on Ctrl-C)' },
  'train-limit': { kind: 'int', min: 1, help: 'train on the first N samples only' },
  'eval-limit': { kind: 'int', min: 1, help: 'evaluate on the first N samples only' },
  threads: { kind: 'int', min: 1, help: 'libtorch threads (default: all cores)' },
  device: { kind: 'string', default: 'auto', help: 'auto (CUDA when this libtorch has a device, else cpu), cpu, cuda or cuda:N' },
  progress: { kind: 'bool', default: true, help: 'progress bar (--no-progress to hide)' },
};

/** The --device flag resolved ('auto' -> cuda:0 or cpu), its errors as usage errors naming the flag. */
export function deviceFlag(value: string): Device {
  try {
    return resolveDevice(value);
  } catch (e) {
    throw new UsageError(`--device: ${(e as Error).message}`);
  }
}

export const TRAIN_USAGE = `usage: fngd train --task ${TASKS.join('|')} [flags]

Trains a model and writes, under --out, log.jsonl (one line per epoch: epoch, wall_time,
train_loss, metrics), steps.jsonl (one line per step) and an atomic checkpoint.safetensors.
Ctrl-C checkpoints and stops; --resume continues the same run exactly.`;

export function trainHelp(): string {
  return helpText(TRAIN_USAGE, TRAIN_FLAGS);
}

/** What an optimizer needs to know of the task: the model, and the training data's size and batching. */
export interface OptimizerContext {
  model: Module;
  trainLoader: DataLoader<BaseBatch>;
}

export function buildOptimizer(name: OptimizerName, ctx: OptimizerContext, f: Record<string, unknown>): Optimizer {
  const params = ctx.model.parameters();
  const sgd = { lr: f.lr as number, momentum: f.momentum as number, nesterov: f.nesterov as boolean, weightDecay: f.weightDecay as number };
  const ngd = {
    ...sgd, damping: (f.damping as number | undefined) ?? 10, dampingMode: f.dampingMode as 'relative' | 'absolute',
    dampingDecay: f.dampingDecay as number, mode: f.ngdMode as 'layerwise' | 'global', normalize: f.normalize as 'sum' | 'none',
  };
  switch (name) {
    case 'sgd':
      return new SGD(params, sgd);
    case 'adamw': {
      const betas = f.betas as number[];
      if (betas.length !== 2) throw new UsageError(`--betas needs two numbers like 0.9,0.999; got ${betas.join(',')}`);
      return new AdamW(params, { lr: sgd.lr, betas: [betas[0]!, betas[1]!], eps: f.eps as number, weightDecay: sgd.weightDecay });
    }
    case 'ngd':
      return new NGD(ctx.model, ngd);
    case 'fngd':
      return new FNGD(ctx.model, {
        ...ngd, key: f.key as 'sample' | 'slot', numSamples: ctx.trainLoader.dataset.length,
        batchesPerEpoch: ctx.trainLoader.batchesPerEpoch, batchSize: ctx.trainLoader.batchSize,
        refreshEvery: f.refreshEvery as number, probeEvery: f.probeEvery as number, probeThreshold: f.probeThreshold as number,
      });
    case 'kfac':
      return new KFAC(ctx.model, {
        ...sgd, damping: (f.damping as number | undefined) ?? 1e-3, statDecay: f.statDecay as number,
        covUpdateEvery: f.covUpdateEvery as number, invUpdateEvery: f.invUpdateEvery as number, klClip: (f.klClip as number) || null,
      });
    default:
      throw new UsageError(`unknown optimizer '${String(name)}' (use one of ${OPTIMIZERS.join(', ')})`);
  }
}

export function buildSchedule(f: Record<string, unknown>, stepsPerEpoch: number, epochs: number): Schedule {
  const total = stepsPerEpoch * epochs;
  let s: Schedule;
  switch (f.schedule) {
    case 'cosine':
      s = cosineAnnealing({ tMax: Math.max(1, total - (f.warmupSteps as number)) });
      break;
    case 'step':
      s = stepDecay({ stepSize: stepsPerEpoch * ((f.stepSize as number | undefined) ?? Math.max(1, Math.floor(epochs / 3))), gamma: f.gamma as number });
      break;
    default:
      s = constantLr();
  }
  const warm = f.warmupSteps as number;
  return warm > 0 ? linearWarmup({ warmupSteps: warm, after: s }) : s;
}

export async function trainCommand(argv: string[]): Promise<EpochRecord[]> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(trainHelp());
    return [];
  }
  const f = parseFlags(argv, TRAIN_FLAGS);
  if (f.task === undefined) throw new UsageError(`--task is required (one of ${TASKS.join(', ')})`);
  const task = f.task as TaskName;
  const optimizerName = f.optimizer as OptimizerName;
  const d = TASK_DEFAULTS[task];
  f.epochs ??= d.epochs;
  f.batchSize ??= d.batchSize;
  f.lr ??= d.lr[optimizerName];
  f.weightDecay ??= d.weightDecay[optimizerName];
  f.damping ??= d.damping?.[optimizerName];
  f.schedule ??= d.schedule;
  f.warmupSteps ??= d.warmupSteps ?? 0;
  if (f.resume && !f.out) throw new UsageError('--resume needs --out (the folder of the run to continue)');
  if (f.threads !== undefined) setNumThreads(f.threads as number);

  const device = deviceFlag(f.device as string);
  const t = createTask(task, {
    batchSize: f.batchSize as number, seed: f.seed as number, dataDir: f.dataDir as string | undefined,
    trainLimit: f.trainLimit as number | undefined, evalLimit: f.evalLimit as number | undefined,
    arch: f.arch as 'small' | 'resnet18', labelSmoothing: f.labelSmoothing as number, device,
  });
  if (device !== 'cpu') console.log(`training on ${device}`);
  try {
    const optimizer = buildOptimizer(optimizerName, t as OptimizerContext, f);
    const schedule = buildSchedule(f, t.trainLoader.batchesPerEpoch, f.epochs as number);
    const trainer = new Trainer(t as never, optimizer, {
      epochs: f.epochs as number, seed: f.seed as number, outDir: (f.out as string | undefined) ?? null,
      resume: f.resume as boolean, schedule, checkpointEvery: f.checkpointEvery as number,
      progress: f.progress as boolean, config: { command: 'train', ...f },
      onEpoch: (r) => {
        const metrics = Object.entries(r).filter(([k]) => k.endsWith('_metric')).map(([k, v]) => `${k.replace('_metric', '')} ${t.metric} ${t.metric === 'accuracy' ? (100 * v).toFixed(2) + '%' : v.toFixed(2)}`);
        console.log(`epoch ${r.epoch}: train loss ${r.train_loss.toFixed(4)}, ${metrics.join(', ')}, ${r.wall_time.toFixed(1)}s`);
      },
    });
    const result = await trainer.fit();
    if (result.status === 'stopped') process.exitCode = 130;
    optimizer.dispose();
    return result.epochs;
  } finally {
    t.dispose();
  }
}
