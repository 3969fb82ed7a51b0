// `fngd train`: flags -> task + method (the registry: src/precondition/registry.ts) + schedule ->
// Trainer.fit().
import { constantLr, cosineAnnealing, linearWarmup, stepDecay, type Optimizer, type Schedule } from '../optim/index.js';
import type { BaseBatch, DataLoader } from '../data/index.js';
import type { Module } from '../nn/index.js';
import {
  COMMON_OPTIONS, METHODS, METHOD_NAMES, RULE_OPTIONS, buildMethod, camel, kebab, methodEntry, resolveValues, type OptionSpec, type Values,
} from '../precondition/registry.js';
import { setNumThreads, type Device } from '../tensor/index.js';
import { readCheckpointInfo } from '../train/checkpoint.js';
import { RunDir } from '../train/run-dir.js';
import { Trainer, type EpochRecord } from '../train/trainer.js';
import { TASKS, createTask, resolveDevice, type TaskName } from '../train/tasks.js';
import { helpText, parseFlags, UsageError, type FlagSpec, type FlagValues } from './args.js';

/** Every method the registry knows (`--optimizer`). */
export const OPTIMIZERS: readonly string[] = METHOD_NAMES();

/** Per task: epochs, batch size and schedule; each method's lr, weight decay, ... are in the registry. */
export const TASK_DEFAULTS: Record<TaskName, { epochs: number; batchSize: number; schedule: string; warmupSteps?: number }> = {
  'mnist-mlp': { epochs: 3, batchSize: 128, schedule: 'constant' },
  'fashion-cnn': { epochs: 5, batchSize: 128, schedule: 'constant' },
  'cifar10-resnet': { epochs: 10, batchSize: 128, schedule: 'cosine' },
  'cifar10-mlp': { epochs: 60, batchSize: 64, schedule: 'constant' },
  'multi30k-transformer': { epochs: 10, batchSize: 128, schedule: 'cosine', warmupSteps: 200 },
};

/**
 * The method and rule options as flags: one flag per option name, without a default (the chosen
 * method's applies), its help listing which methods take it and their defaults.
 */
function methodFlags(): Record<string, FlagSpec> {
  const users = new Map<string, { spec: OptionSpec; who: string[] }[]>();
  const add = (flag: string, spec: OptionSpec, who: string): void => {
    const list = users.get(flag) ?? [];
    const same = list.find((u) => u.spec.help === spec.help && String(u.spec.default) === String(spec.default));
    if (same) same.who.push(who);
    else list.push({ spec, who: [who] });
    users.set(flag, list);
  };
  for (const [rule, opts] of Object.entries(RULE_OPTIONS)) for (const [flag, spec] of Object.entries(opts)) add(flag, spec, `rule ${rule}`);
  for (const [name, e] of Object.entries(METHODS)) for (const [flag, spec] of Object.entries(e.options)) add(flag, spec, name);
  const out: Record<string, FlagSpec> = {};
  for (const [flag, list] of users) {
    const first = list[0]!.spec;
    const one = list.length === 1;
    const prefix = (who: string[]): string => (who.every((w) => w.startsWith('rule ')) ? '' : `${who.join(', ')}: `);
    const help = one
      ? `${prefix(list[0]!.who)}${first.help}`
      : list.map((u) => `${prefix(u.who)}${u.spec.help}${u.spec.default === undefined ? '' : ` (default ${Array.isArray(u.spec.default) ? u.spec.default.join(',') : String(u.spec.default)})`}`).join('; ');
    const spec: FlagSpec = { kind: first.kind, help, choices: first.choices };
    if (one && first.default !== undefined) spec.shownDefault = first.default;
    const mins = list.map((u) => u.spec.min);
    const maxs = list.map((u) => u.spec.max);
    if (mins.every((m) => m !== undefined)) spec.min = Math.min(...(mins as number[]));
    if (maxs.every((m) => m !== undefined)) spec.max = Math.max(...(maxs as number[]));
    out[flag] = spec;
  }
  return out;
}

/** --eval-beam's length penalty unless given (GNMT's usual alpha). */
const EVAL_LENGTH_PENALTY = 0.6;

/** Flags of the run itself (not of a method). */
const RUN_FLAGS: Record<string, FlagSpec> = {
  task: { kind: 'string', choices: TASKS, help: 'what to train' },
  optimizer: { kind: 'string', choices: OPTIMIZERS, default: 'sgd', help: 'the method (see the list below)' },
  epochs: { kind: 'int', min: 1, help: 'epochs (default: per task, see docs/RESULTS.md)' },
  'batch-size': { kind: 'int', min: 1, help: 'training batch size (default: per task)' },
  schedule: { kind: 'string', choices: ['constant', 'step', 'cosine'], help: 'lr schedule over steps (default: per task)' },
  'warmup-steps': { kind: 'int', min: 0, help: 'linear lr warm-up steps (default: per task, 0 but for the Transformer)' },
  'step-size': { kind: 'int', min: 1, help: 'step schedule: decay every N epochs (default: a third of the epochs)' },
  gamma: { kind: 'number', min: 0, default: 0.1, help: 'step schedule: decay factor' },
  'label-smoothing': { kind: 'number', min: 0, max: 1, default: 0.1, help: 'multi30k-transformer: label smoothing' },
  'eval-beam': { kind: 'int', min: 2, max: 1000, help: 'multi30k-transformer: also evaluate a beam search of N every epoch (logged as *_bleu_beamN beside greedy BLEU, the metric)' },
  'eval-length-penalty': { kind: 'number', min: 0, shownDefault: EVAL_LENGTH_PENALTY, help: 'multi30k-transformer: the --eval-beam search\'s GNMT length penalty' },
  arch: { kind: 'string', choices: ['small', 'resnet18'], default: 'small', help: 'cifar10-resnet: ResNet-20 or the paper\'s ResNet-18' },
  seed: { kind: 'int', min: 0, default: 0, help: 'seed of initialization, shuffling, augmentation and dropout' },
  reshuffle: { kind: 'string', choices: ['epoch', 'once'], default: 'epoch', help: 'a new training order every epoch, or epoch 0\'s kept (same batches every epoch: FNGD\'s --key slot)' },
  'data-dir': { kind: 'string', help: 'folder with the datasets (default: $FNGD_DATA_DIR, else ../shared/data)' },
  out: { kind: 'string', help: 'output folder for log.jsonl, steps.jsonl and checkpoint.safetensors' },
  resume: { kind: 'bool', default: false, help: 'continue the run whose checkpoint is in --out, with its saved flags (given ones must match)' },
  overwrite: { kind: 'bool', default: false, help: 'start a fresh run even though --out holds a checkpoint (deleting it)' },
  'checkpoint-every': { kind: 'int', min: 0, default: 0, help: 'also checkpoint every N steps (0: after each epoch and on Ctrl-C)' },
  'train-limit': { kind: 'int', min: 1, help: 'train on the first N samples only' },
  'eval-limit': { kind: 'int', min: 1, help: 'evaluate on the first N samples only' },
  threads: { kind: 'int', min: 1, help: 'libtorch threads (default: all cores)' },
  device: { kind: 'string', default: 'auto', help: 'auto (CUDA when this libtorch has a device, else cpu), cpu, cuda or cuda:N' },
  progress: { kind: 'bool', default: true, help: 'progress bar (--no-progress to hide)' },
};

export const TRAIN_FLAGS: Record<string, FlagSpec> = { ...RUN_FLAGS, ...COMMON_OPTIONS, ...methodFlags() };

/** The camelCase keys of method and rule options (everything `resolveValues` reads). */
const METHOD_KEYS = new Set(Object.keys({ ...COMMON_OPTIONS, ...methodFlags() }).map(camel));

/**
 * A run's method values from parsed flags: the method's defaults, the task's table, then the flags
 * given. A flag the method does not take is a usage error naming it.
 */
export function methodValues(name: string, task: TaskName, f: Record<string, unknown>): Values {
  const given: Values = {};
  for (const [k, v] of Object.entries(f)) if (METHOD_KEYS.has(k)) given[k] = v as Values[string];
  try {
    return resolveValues(name, task, given);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** The --device flag resolved ('auto' -> cuda:0 or cpu), its errors as usage errors naming the flag. */
export function deviceFlag(value: string): Device {
  try {
    return resolveDevice(value);
  } catch (e) {
    throw new UsageError(`--device: ${(e as Error).message}`);
  }
}

export const TRAIN_USAGE = `usage: fngd train --task ${TASKS.join('|')} [flags]
       fngd train --out DIR --resume [flags that do not change the run]

Trains a model and writes, under --out, log.jsonl (one line per epoch: epoch, wall_time,
train_loss, metrics), steps.jsonl (one line per step) and an atomic checkpoint.safetensors.
One run at a time per --out (a lock); a fresh run does not replace a checkpoint without
--overwrite. Ctrl-C checkpoints and stops; --resume continues the same run exactly, with the flags
saved in its checkpoint (only --progress, --threads, --device, --data-dir and --checkpoint-every
may differ).`;

export function trainHelp(): string {
  const methods = Object.entries(METHODS).map(([name, e]) => {
    const opts = Object.keys(e.options).map((f) => `--${f}`).join(' ');
    return `  ${name.padEnd(10)} ${e.doc}${opts ? `\n            options: ${opts}` : ''}\n            rule: ${e.rule}${e.searched.length ? `; task values searched on ${e.searched.join(', ')}` : '; task values not searched yet'}`;
  });
  return `${helpText(TRAIN_USAGE, TRAIN_FLAGS)}\nmethods (--optimizer; any pairs with --rule sgd|adamw):\n${methods.join('\n')}\n`;
}

/** What an optimizer needs to know of the task: the model, and the training data's size and batching. */
export interface OptimizerContext {
  model: Module;
  trainLoader: DataLoader<BaseBatch>;
}

/** Builds the method `name` (with its rule) for a task from resolved values (`methodValues`). */
export function buildOptimizer(name: string, ctx: OptimizerContext, v: Values, seed = 0): Optimizer {
  methodEntry(name);
  return buildMethod(name, {
    model: ctx.model, numSamples: ctx.trainLoader.dataset.length,
    batchesPerEpoch: ctx.trainLoader.batchesPerEpoch, batchSize: ctx.trainLoader.batchSize, seed,
  }, v);
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

/** Flags a resumed run may change: where and how it runs, never what it computes. */
const RESUMABLE = new Set(['resume', 'overwrite', 'out', 'progress', 'threads', 'device', 'dataDir', 'checkpointEvery']);

const shown = (v: unknown): string => (Array.isArray(v) ? v.join(',') : String(v));

/**
 * --resume: the run continues with the flags saved in its checkpoint. A flag given now must equal
 * the saved one (else a usage error naming each, rather than silently ignoring it), unless it is
 * one of RESUMABLE. Fills `f` with the saved values.
 */
function adoptSavedFlags(f: FlagValues, argv: string[], saved: Record<string, unknown>, ckpt: string): void {
  const noDefaults = Object.fromEntries(Object.entries(TRAIN_FLAGS).map(([k, s]) => [k, { ...s, default: undefined }]));
  const given = parseFlags(argv, noDefaults);
  const differ = Object.entries(given).filter(([k, v]) => !RESUMABLE.has(k) && JSON.stringify(v) !== JSON.stringify(saved[k]));
  if (differ.length > 0) {
    const list = differ.map(([k, v]) => `--${kebab(k)} ${shown(v)} (the run has ${saved[k] === undefined ? 'none' : shown(saved[k])})`);
    throw new UsageError(`--resume continues the run in ${ckpt} with its own flags; ${list.join(', ')} cannot change `
      + `(drop ${differ.length > 1 ? 'them' : 'it'}, or start a new run in another --out)`);
  }
  for (const [k, v] of Object.entries(saved)) if (k !== 'command' && !RESUMABLE.has(k)) f[k] = v as FlagValues[string];
}

export async function trainCommand(argv: string[]): Promise<EpochRecord[]> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(trainHelp());
    return [];
  }
  const f = parseFlags(argv, TRAIN_FLAGS);
  if (f.resume && !f.out) throw new UsageError('--resume needs --out (the folder of the run to continue)');
  if (f.resume && f.overwrite) throw new UsageError('--resume and --overwrite contradict each other (continue the run, or replace it)');
  // The run folder before any data: a busy, unusable or checkpoint-less folder fails at once. A
  // resumed run takes its flags from the checkpoint; a fresh one opens (and empties) its folder
  // only once every flag has been checked.
  let runDir: RunDir | null = f.resume ? RunDir.open(f.out as string, { resume: true }) : null;
  try {
    if (runDir !== null) adoptSavedFlags(f, argv, readCheckpointInfo(runDir.checkpointPath).config, runDir.checkpointPath);
    return await trainWith(f, () => {
      runDir ??= f.out === undefined ? null : RunDir.open(f.out as string, { overwrite: f.overwrite as boolean });
      return runDir;
    });
  } finally {
    runDir?.close();
  }
}

async function trainWith(f: FlagValues, openRunDir: () => RunDir | null): Promise<EpochRecord[]> {
  if (f.task === undefined) throw new UsageError(`--task is required (one of ${TASKS.join(', ')})`);
  const task = f.task as TaskName;
  const optimizerName = f.optimizer as string;
  const d = TASK_DEFAULTS[task];
  const values = methodValues(optimizerName, task, f);
  Object.assign(f, values);
  f.epochs ??= d.epochs;
  f.batchSize ??= d.batchSize;
  f.schedule ??= d.schedule;
  f.warmupSteps ??= d.warmupSteps ?? 0;
  if (f.batchSize === 1 && values.normalize === 'sum') {
    // With one sample the 1 x 1 system normalizes to alpha = 1: plain SGD, at an lr meant for a
    // batch's min-norm direction (sample-space.ts). It diverges; refuse before any data is loaded.
    throw new UsageError(`--batch-size 1 with ${optimizerName}: 'sum' normalization turns the 1 x 1 coefficient system into alpha = 1, `
      + `so every step would be plain SGD on one sample at ${optimizerName}'s batch learning rate (it diverges). `
      + 'Use a batch of 2 or more, --normalize none (the exact damped step g/(|g|^2 + shift)), or --optimizer sgd with a smaller --lr');
  }
  if (f.evalBeam !== undefined && task !== 'multi30k-transformer') throw new UsageError(`--eval-beam is for multi30k-transformer runs, not ${task}`);
  if (f.evalLengthPenalty !== undefined && f.evalBeam === undefined) throw new UsageError('--eval-length-penalty needs --eval-beam N (greedy decoding has no length penalty)');
  if (f.threads !== undefined) setNumThreads(f.threads as number);
  const device = deviceFlag(f.device as string);
  const runDir = openRunDir();
  const t = createTask(task, {
    batchSize: f.batchSize as number, seed: f.seed as number, dataDir: f.dataDir as string | undefined,
    trainLimit: f.trainLimit as number | undefined, evalLimit: f.evalLimit as number | undefined, reshuffle: f.reshuffle as 'epoch' | 'once',
    arch: f.arch as 'small' | 'resnet18', labelSmoothing: f.labelSmoothing as number, device,
    beamEval: f.evalBeam === undefined ? undefined : { beam: f.evalBeam as number, lengthPenalty: (f.evalLengthPenalty as number | undefined) ?? EVAL_LENGTH_PENALTY },
  });
  if (device !== 'cpu') console.log(`training on ${device}`);
  try {
    const optimizer = buildOptimizer(optimizerName, t as OptimizerContext, values, f.seed as number);
    const schedule = buildSchedule(f, t.trainLoader.batchesPerEpoch, f.epochs as number);
    const trainer = new Trainer(t as never, optimizer, {
      epochs: f.epochs as number, seed: f.seed as number, outDir: runDir,
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
