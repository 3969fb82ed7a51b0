// Runs side by side with their time counted in quiet-machine steps of a reference method, for runs
// made on a loaded machine (several at once, under other work) whose wall times do not compare.
//   node dist/bench/search/costed.js TABLE RUNS_DIR BENCH.json [BENCH.json ...] --metric test_bleu [--also test_bleu_beam4] [--target 20] [--budget 10] [--svg FILE]
// TABLE: one line per run, "LABEL | RUN | FIRST | LATER": FIRST and LATER are the step cost of the
// first epoch and of later ones over the reference's step, each a number or a key of the bench JSON
// files (bench:optimizers --json, e.g. ngd_over_adamw_transformer; FNGD's first epoch is an NGD
// step, its later ones fngd_reuse). Reported per run: the metric after each epoch, the last and the
// best, the first epoch reaching the target, and the time to it and in all in reference epochs
// (sum over the epochs trained of their step cost; every epoch has the same number of steps).
// --budget B adds the metric at the last epoch that ends within B reference epochs: the methods
// compared at one training time (the reference's whole schedule, say), as a paper's "same time" claim reads.
// --svg FILE draws the metric per epoch and against reference epochs (the budget a dashed line).
import { readFileSync, writeFileSync } from 'node:fs';
import { metricCharts } from '../../src/report/svg.js';
import { flag } from '../timing.js';
import { formatMetric, readLog } from './logs.js';

const argv = process.argv.slice(2);
const positional = argv.filter((a, i) => !a.startsWith('--') && !(i > 0 && argv[i - 1]!.startsWith('--')));
const [tableFile, runsDir, ...benchFiles] = positional;
if (!tableFile || !runsDir || benchFiles.length === 0) throw new Error('usage: costed TABLE RUNS_DIR BENCH.json [...] --metric KEY [--also KEY] [--target T] [--budget B] [--svg FILE]');
const metric = flag(argv, 'metric') ?? 'test_metric';
const also = flag(argv, 'also');
const target = Number(flag(argv, 'target') ?? 'NaN');
const budgetFlag = flag(argv, 'budget');
const budget = budgetFlag === undefined ? undefined : Number(budgetFlag);
if (budget !== undefined && !(budget > 0)) throw new Error(`costed: --budget must be a positive number of reference epochs, got '${budgetFlag}'`);
const bench: Record<string, unknown> = Object.assign({}, ...benchFiles.map((f) => JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>));

const cost = (spec: string): number => {
  const v = Number.isNaN(Number(spec)) ? bench[spec] : Number(spec);
  if (typeof v !== 'number' || !(v > 0)) throw new Error(`costed: step cost '${spec}' is neither a positive number nor a number in the bench files`);
  return v;
};
const fmt = (v: number | undefined): string => (v === undefined ? '-' : formatMetric(metric, v));

console.log(`| run | step cost (first epoch, later) | ${metric} per epoch | last | best |${also ? ` ${also} last | best |` : ''} epoch reaching ${Number.isNaN(target) ? 'target' : fmt(target)} | reference epochs to it | reference epochs in all |`
  + `${budget === undefined ? '' : ` ${metric}${also ? ` / ${also}` : ''} within ${budget} reference epochs (epoch) |`}`);
console.log(`|---|---|---|---|---|${also ? '---|---|' : ''}---|---|---|${budget === undefined ? '' : '---|'}`);
const charted: { name: string; epochs: { epoch: number; time: number; value: number }[] }[] = [];
for (const line of readFileSync(tableFile, 'utf8').split('\n')) {
  if (!line.trim() || line.startsWith('#')) continue;
  const [label, run, first, later] = line.split('|').map((c) => c.trim());
  if (!label || !run || !first || !later) throw new Error(`costed: '${line}' is not LABEL | RUN | FIRST | LATER`);
  const logs = readLog(runsDir, run);
  const c1 = cost(first);
  const c2 = cost(later);
  const epochsCost = (n: number): number => (n === 0 ? 0 : c1 + (n - 1) * c2);
  const values = logs.map((l) => l[metric]);
  const hit = values.findIndex((v) => v !== undefined && v >= target);
  const best = (key: string): number | undefined => (logs.some((l) => l[key] !== undefined) ? Math.max(...logs.map((l) => l[key] ?? -Infinity)) : undefined);
  const cells = [
    label, `${c1.toFixed(2)}, ${c2.toFixed(2)}`, values.map(fmt).join(' / ') || 'no epoch yet', fmt(values.at(-1)), fmt(best(metric)),
    ...(also ? [fmt(logs.at(-1)?.[also]), fmt(best(also))] : []),
    hit < 0 ? 'not reached' : String(hit + 1), hit < 0 ? '-' : epochsCost(hit + 1).toFixed(1), epochsCost(logs.length).toFixed(1),
  ];
  if (budget !== undefined) {
    // Epochs are whole: the last one ending within the budget (a run stopped earlier has not spent it).
    const fits = (epochs: number): boolean => epochsCost(epochs) <= budget + 1e-9;
    let n = 0;
    while (n < logs.length && fits(n + 1)) n++;
    const spent = n === logs.length && fits(n + 1) ? ' (stopped before the budget)' : '';
    cells.push(n === 0 ? '-' : `${fmt(logs[n - 1]![metric])}${also ? ` / ${fmt(logs[n - 1]![also])}` : ''} (${n})${spent}`);
  }
  console.log(`| ${cells.join(' | ')} |`);
  // Legends keep the label without its parenthesized remarks.
  const name = label.replace(/\s*\([^)]*\)/g, '');
  charted.push({ name, epochs: values.map((v, epoch) => ({ epoch, time: epochsCost(epoch + 1), value: v ?? NaN })) });
}
const svgFile = flag(argv, 'svg');
if (svgFile !== undefined) {
  const hlines = Number.isNaN(target) ? [] : [{ y: target, label: `target ${fmt(target)}` }];
  const vlines = budget === undefined ? [] : [{ x: budget, label: `budget ${budget}` }];
  const legendWidth = 40 + 6 * Math.max(...charted.map((s) => s.name.length));
  writeFileSync(svgFile, metricCharts(metric, charted, {
    timeLabel: 'training time (quiet-machine reference epochs)', hlines, vlines,
    width: 560 + legendWidth, height: Math.max(360, 100 + 18 * charted.length), legendWidth,
  }));
}
