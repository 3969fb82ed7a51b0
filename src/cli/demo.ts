// `fngd demo`: the headline demo. The MNIST MLP trained with SGD and with FNGD (AdamW stands in until
// FNGD is in the optimizer factory), same seed, same data order, one after the other; then a
// comparison table and one SVG of training loss and test accuracy against training time.
// About a minute per optimizer on 2 cores (bench/suites.ts DEMO); the machinery is `fngd bench`'s.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEMO } from '../../bench/suites.js';
import { buildReport, plotName, renderPlots, type TaskConfig } from '../report/report.js';
import { sideBySide } from '../report/svg.js';
import { setNumThreads } from '../tensor/index.js';
import { helpText, parseFlags, UsageError, type FlagSpec } from './args.js';
import { machineInfo, splitOptimizers, timeSteps, trainRun, writeReport } from './bench.js';
import { OPTIMIZERS, TRAIN_FLAGS } from './train.js';

/** SGD against FNGD once the factory has it; until then against AdamW. */
export function demoOptimizers(): string[] {
  return (OPTIMIZERS as readonly string[]).includes('fngd') ? ['sgd', 'fngd'] : ['sgd', 'adamw'];
}

const DEMO_FLAGS: Record<string, FlagSpec> = {
  epochs: { kind: 'int', min: 1, default: DEMO.epochs, help: 'epochs per optimizer' },
  seed: { kind: 'int', min: 0, default: 0, help: 'seed of initialization and data order (the same for every optimizer)' },
  optimizers: { kind: 'string', help: `comma-separated optimizers (default: ${demoOptimizers().join(',')})` },
  out: { kind: 'string', default: 'runs/demo', help: 'output folder: demo.svg, report.json, report.md, plots/, runs/' },
  'train-limit': { kind: 'int', min: 1, help: 'train on the first N samples only' },
  'eval-limit': { kind: 'int', min: 1, help: 'evaluate on the first N test samples only' },
  threads: { kind: 'int', min: 1, help: 'libtorch threads (default: all cores)' },
  progress: TRAIN_FLAGS.progress!,
};

export async function demoCommand(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText(`usage: fngd demo [flags]\n\nThe MNIST MLP trained with ${demoOptimizers().join(' and ')} side by side.`, DEMO_FLAGS));
    return;
  }
  const f = parseFlags(argv, DEMO_FLAGS);
  if (f.threads !== undefined) setNumThreads(f.threads as number);
  const out = f.out as string;
  const seed = f.seed as number;
  const cfg: TaskConfig = {
    ...DEMO, epochs: f.epochs as number, seeds: 1,
    ...(f.trainLimit === undefined ? {} : { trainLimit: f.trainLimit as number }),
    ...(f.evalLimit === undefined ? {} : { evalLimit: f.evalLimit as number }),
  };
  const requested = f.optimizers === undefined ? demoOptimizers() : (f.optimizers as string).split(',').map((s) => s.trim()).filter(Boolean);
  const { runnable, pending } = splitOptimizers(requested);
  for (const p of pending) process.stderr.write(`demo: skipping ${p.name} (${p.reason})\n`);
  if (runnable.length === 0) throw new UsageError(`no optimizer to run (available: ${OPTIMIZERS.join(', ')})`);

  const machine = machineInfo();
  console.log(`${cfg.title}, batch ${cfg.batchSize}, ${cfg.epochs} epochs, seed ${seed}: ${runnable.join(' vs ')} (${machine.threads} threads)`);
  const timings = await timeSteps(cfg, runnable, { seed });
  const runs = [];
  for (const name of runnable) {
    const { interrupted, ...run } = await trainRun(cfg, name, seed, { out, progress: f.progress as boolean });
    runs.push(run);
    if (interrupted) {
      process.exitCode = 130;
      break;
    }
  }
  const report = buildReport({
    suite: { name: 'demo', command: `fngd demo ${argv.join(' ')}`.trim(), optimizers: runnable, tasks: [cfg] },
    machine, runs, timings, skipped: pending.map((p) => ({ task: cfg.task, optimizer: p.name, reason: p.reason })),
  });
  writeReport(out, report);
  const plots = renderPlots(report);
  const svgPath = join(out, 'demo.svg');
  writeFileSync(svgPath, sideBySide([plots.get(plotName(cfg.task, 'loss-time'))!, plots.get(plotName(cfg.task, 'metric-time'))!]));

  const s = report.summary[0]!;
  const pct = (v: number | undefined | null): string => (v == null ? '—' : `${(100 * v).toFixed(2)}%`);
  const sec = (v: number | null | undefined): string => (v == null ? '—' : `${v.toFixed(1)} s`);
  const head = ['optimizer', 'test accuracy', 'train loss', `time to ${pct(cfg.target)}`, 'training time', 'step (ms)', 'step / SGD'];
  const rows = s.optimizers.map((o) => [
    o.optimizer, pct(o.final_metric?.median), o.final_train_loss?.median.toFixed(4) ?? '—', sec(o.time_to_target_s.median),
    sec(o.train_time_s?.median), o.step_ms?.toFixed(1) ?? '—', o.step_ratio_to_sgd?.toFixed(2) ?? '—',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd();
  console.log(`\n${line(head)}\n${line(w.map((n) => '-'.repeat(n)))}\n${rows.map(line).join('\n')}`);
  console.log(`\ntimes count training only; step: median of interleaved steps on one batch\nplot: ${svgPath}\nreport: ${join(out, 'report.md')}`);
}
