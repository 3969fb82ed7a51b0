// Tables of a search or of final runs made by bench/search/queue.sh: one row per run, read from its
// log.jsonl, with the flags from the grid file that named it.
//   node dist/bench/search/summarize.js GRID RUNS_DIR [--target 0.7] [--metric val_accuracy] [--prefix c-]
// Time to target is training time: wall_time - eval_time at the first epoch whose metric reaches the
// target (logs without eval_time count evaluation too, and are marked so).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { flag } from '../timing.js';
import { formatMetric, readLog, trainSeconds, type EpochLog } from './logs.js';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: string): string => flag(argv, name) ?? dflt;
const [gridFile, runsDir] = argv;
if (!gridFile || !runsDir) throw new Error('usage: summarize GRID RUNS_DIR [--target T] [--metric KEY] [--prefix P]');
const target = Number(opt('target', 'NaN'));
const metric = opt('metric', 'val_accuracy');
const prefix = opt('prefix', '');

const flagsOf = (args: string[]): Record<string, string> => {
  const out: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) if (args[i]!.startsWith('--')) out[args[i]!.slice(2)] = args[i + 1] && !args[i + 1]!.startsWith('--') ? args[++i]! : 'true';
  return out;
};
const pct = (v: number | undefined): string => (v === undefined ? '-' : formatMetric(metric, v));

const rows: string[] = [];
for (const line of readFileSync(gridFile, 'utf8').split('\n')) {
  if (!line.trim() || line.startsWith('#')) continue;
  const [name, ...args] = line.trim().split(/\s+/);
  if (!name!.startsWith(prefix)) continue;
  const f = flagsOf(args);
  const logs = readLog(runsDir, name!);
  const done = existsSync(join(runsDir, name!, 'done'));
  const hit = logs.find((l) => (l[metric] ?? -Infinity) >= target);
  const trainTime = (l: EpochLog): string => `${Math.round(trainSeconds(l))}${l.eval_time === undefined ? '*' : ''}`;
  const hyper = [f.lr && `lr ${f.lr}`, f.damping && `damping ${f.damping}`, f.seed && `seed ${f.seed}`].filter(Boolean).join(', ');
  rows.push(`| ${name} | ${f.optimizer ?? 'sgd'} | ${hyper} | ${logs.map((l) => pct(l[metric])).join(' / ')}${done ? '' : logs.length ? ' (running)' : 'not run'} | ${pct(logs.at(-1)?.[metric])} | ${hit ? logs.indexOf(hit) + 1 : '-'} | ${hit ? trainTime(hit) : '-'} | ${logs.length ? trainTime(logs.at(-1)!) : '-'} |`);
}
console.log(`| run | optimizer | hyperparameters | ${metric} per epoch | final | epochs to ${Number.isNaN(target) ? 'target' : pct(target)} | train s to target | train s total |`);
console.log('|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
