// `fngd compare`: runs side by side, read from their log.jsonl (one line per epoch, resumed runs
// included): the metric after each epoch, the training time (evaluation excluded) and the time each
// run took to reach a target. A Markdown table on stdout; --svg draws the metric against epochs and
// against training time; --json writes the numbers.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { metricCharts } from '../report/svg.js';
import { readCheckpointInfo } from '../train/checkpoint.js';
import { warn } from '../warnings.js';
import { helpText, parseFlags, UsageError, type FlagSpec } from './args.js';

const COMPARE_FLAGS: Record<string, FlagSpec> = {
  metric: { kind: 'string', help: 'the logged value to compare, e.g. test_bleu, val_accuracy, train_loss (default: test_metric, else val_metric)' },
  target: { kind: 'number', help: 'report when each run first reaches this value of the metric (at least it; at most it for a loss), in the log\'s units' },
  svg: { kind: 'string', help: 'write the metric against epochs and against training time to this SVG file' },
  json: { kind: 'string', help: 'write the table\'s numbers to this JSON file' },
};

const USAGE = `usage: fngd compare DIR [DIR ...] [flags]

Puts runs of fngd train side by side from their log.jsonl: the metric after each epoch, the
cumulative training time (evaluation excluded) and the time to a target. Each run is named by its
folder, its method and its learning rate (from its checkpoint). Times are only comparable between
runs made on one machine under the same load.`;

export function compareHelp(): string {
  return helpText(USAGE, COMPARE_FLAGS);
}

export interface ComparedRun {
  /** The folder's name (with its parent's where two folders share one): the plots' legend. */
  label: string;
  /** The label with the method and learning rate from the run's checkpoint. */
  name: string;
  dir: string;
  /** Per epoch: the metric and the cumulative training seconds at its end. */
  epochs: { epoch: number; value: number; trainSeconds: number }[];
  /** Training seconds and epoch at which the target was first met (null: not met, or no target). */
  reached: { epoch: number; trainSeconds: number } | null;
}

/** A run's epoch lines; errors name the file and line. */
function readLog(dir: string): Record<string, number>[] {
  const path = join(dir, 'log.jsonl');
  if (!existsSync(path)) throw new UsageError(`${dir}: no log.jsonl (a folder made by fngd train --out DIR?)`);
  const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new UsageError(`${path} is empty: the run has not finished an epoch yet`);
  return lines.map((l, i) => {
    let v: unknown;
    try {
      v = JSON.parse(l);
    } catch {
      throw new UsageError(`${path}, line ${i + 1}: not JSON`);
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new UsageError(`${path}, line ${i + 1}: not an epoch record (a JSON object)`);
    return v as Record<string, number>;
  });
}

/** "folder (method, lr X)", with what the checkpoint's saved flags say. */
function runName(dir: string, label: string): string {
  const ckpt = join(dir, 'checkpoint.safetensors');
  if (!existsSync(ckpt)) return label;
  let c: Record<string, unknown>;
  try {
    c = readCheckpointInfo(ckpt).config;
  } catch (e) {
    warn('compare', `${ckpt}: ${(e as Error).message}; the run is named by its folder only`);
    return label;
  }
  const bits = [c.optimizer, c.lr === undefined ? undefined : `lr ${String(c.lr)}`].filter((b) => b !== undefined);
  return bits.length === 0 ? label : `${label} (${bits.join(', ')})`;
}

/** Each folder's name, or its last two path parts where two folders share a name (a/out, b/out). */
function labels(dirs: string[]): string[] {
  const base = dirs.map((d) => basename(d));
  return dirs.map((d, i) => (base.filter((b) => b === base[i]).length > 1 ? `${basename(dirname(d))}/${base[i]}` : base[i]!));
}

/** The runs' curves of `metric` and when each met `target` (lower is better for a `*loss` metric). */
export function compareRuns(dirs: string[], o: { metric?: string; target?: number } = {}): { metric: string; runs: ComparedRun[] } {
  if (dirs.length === 0) throw new UsageError('name at least one run folder (fngd compare DIR [DIR ...])');
  const logs = dirs.map((d) => ({ dir: resolve(d), log: readLog(d) }));
  const metric = o.metric ?? (logs.every(({ log }) => 'test_metric' in log[0]!) ? 'test_metric' : 'val_metric');
  const lowerIsBetter = metric.endsWith('loss');
  const names = labels(logs.map((l) => l.dir));
  const runs = logs.map(({ dir, log }, r) => {
    const epochs = log.map((e, i) => {
      const value = e[metric];
      if (typeof value !== 'number') {
        throw new UsageError(`${join(dir, 'log.jsonl')}, line ${i + 1}: no '${metric}' (it has ${Object.keys(e).join(', ')})`);
      }
      return { epoch: e.epoch ?? i, value, trainSeconds: (e.wall_time ?? NaN) - (e.eval_time ?? 0) };
    });
    const hit = o.target === undefined ? undefined : epochs.find((e) => (lowerIsBetter ? e.value <= o.target! : e.value >= o.target!));
    return { label: names[r]!, name: runName(dir, names[r]!), dir, epochs, reached: hit === undefined ? null : { epoch: hit.epoch, trainSeconds: hit.trainSeconds } };
  });
  return { metric, runs };
}

const fmt = (v: number, digits = 2): string => (Number.isFinite(v) ? v.toFixed(digits) : '-');

/** The Markdown table: one row per run, the metric after each epoch, total training time, time to target. */
export function compareTable(r: { metric: string; runs: ComparedRun[] }, target?: number): string {
  const n = Math.max(...r.runs.map((x) => x.epochs.length));
  const head = ['run', ...Array.from({ length: n }, (_, i) => `epoch ${i + 1}`), 'training time (s)'];
  if (target !== undefined) head.push(`time to ${r.metric} ${target} (s)`);
  const rows = r.runs.map((x) => {
    const cells = [x.name, ...Array.from({ length: n }, (_, i) => (x.epochs[i] === undefined ? '' : x.epochs[i]!.value.toPrecision(4)))];
    cells.push(fmt(x.epochs.at(-1)!.trainSeconds, 0));
    if (target !== undefined) cells.push(x.reached === null ? 'not reached' : `${fmt(x.reached.trainSeconds, 0)} (epoch ${x.reached.epoch + 1})`);
    return cells;
  });
  return [head, head.map(() => '---'), ...rows].map((c) => `| ${c.join(' | ')} |`).join('\n') + '\n';
}

export function compareSvg(r: { metric: string; runs: ComparedRun[] }, target?: number): string {
  const hlines = target === undefined ? [] : [{ y: target, label: `target ${target}` }];
  const runs = r.runs.map((run) => ({ name: run.label, epochs: run.epochs.map((e) => ({ epoch: e.epoch, time: e.trainSeconds, value: e.value })) }));
  return metricCharts(r.metric, runs, { timeLabel: 'training time (s)', hlines });
}

export async function compareCommand(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(compareHelp());
    return;
  }
  const first = argv.findIndex((a) => a.startsWith('--'));
  const dirs = first < 0 ? argv : argv.slice(0, first);
  const f = parseFlags(first < 0 ? [] : argv.slice(first), COMPARE_FLAGS);
  const target = f.target as number | undefined;
  const r = compareRuns(dirs, { metric: f.metric as string | undefined, target });
  process.stdout.write(compareTable(r, target));
  if (f.svg !== undefined) writeFileSync(f.svg as string, compareSvg(r, target));
  if (f.json !== undefined) writeFileSync(f.json as string, `${JSON.stringify({ metric: r.metric, target: target ?? null, runs: r.runs }, null, 1)}\n`);
}
