// The reproduction suite's runner on a tiny configuration (`--suite smoke`: MNIST MLP on 256 samples,
// 2 epochs), the demo on a tiny one, pending optimizers skipped with a notice, flag errors, and the
// quick suite's planned time; the timing helpers' schedule and paired ratios.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OPTIMIZER_TABLE } from '../bench/hyper.js';
import { SUITE_OPTIMIZERS, estimateSeconds, getSuite } from '../bench/suites.js';
import { lossCurve, machineInfo, runFlags, splitOptimizers } from '../src/cli/bench.js';
import { resolveDevice } from '../src/train/tasks.js';
import { cuda } from '../src/tensor/index.js';
import { demoOptimizers } from '../src/cli/demo.js';
import { OPTIMIZERS } from '../src/cli/train.js';
import type { Report } from '../src/report/report.js';
import { bracketedRatios, interleaveRounds, positiveFlag, summarizeRatios, timeWholePeriods } from '../bench/timing.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const factory = new Set<string>(OPTIMIZERS);

function fngd(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, FNGD_NUM_THREADS: '1' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('bench --suite smoke writes report.json, report.md, plots and run logs; --from rebuilds the same report', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fngd-bench-'));
  try {
    const t0 = Date.now();
    const r = fngd('bench', '--suite', 'smoke', '--out', dir, '--no-progress');
    assert.equal(r.code, 0, r.err);
    const runnable = SUITE_OPTIMIZERS.filter((o) => factory.has(o));
    // Every optimizer of the table the factory lacks is skipped out loud, never silently.
    for (const o of SUITE_OPTIMIZERS.filter((n) => !factory.has(n))) {
      assert.match(r.err, new RegExp(`skipping ${o} on every task \\(pending: '${o}' is not in the optimizer factory yet`));
    }
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as Report;
    assert.equal(report.format, 'fngd.bench.v1');
    assert.equal(report.machine.threads, 1);
    assert.ok(report.machine.cpus >= 1 && report.machine.torch.length > 0 && report.machine.date.length > 0);
    assert.deepEqual(report.runs.map((x) => x.optimizer), runnable);
    assert.deepEqual(report.timings.map((x) => x.optimizer), runnable);
    // SGD is timed too, so every other step is bracketed by SGD steps.
    for (const t of report.timings) assert.ok(t.over_sgd !== undefined && t.over_sgd > 0 && (t.optimizer !== 'sgd' || t.over_sgd === 1), `${t.optimizer}: ${t.over_sgd}`);
    for (const run of report.runs) {
      assert.equal(run.status, 'done', run.error);
      assert.equal(run.epochs.length, 2);
      assert.equal(run.steps_per_epoch, 4);
      assert.ok(run.epochs.every((e) => e.train_time > 0 && e.train_time <= e.wall_time && e.metric >= 0 && e.metric <= 1));
      assert.equal(run.loss_curve.length, 8, 'one point per step when epochs are this short');
      const logs = join(dir, 'runs', 'mnist-mlp', run.optimizer, 'seed0');
      assert.equal(readFileSync(join(logs, 'log.jsonl'), 'utf8').trim().split('\n').length, 2);
      assert.ok(!existsSync(join(logs, 'checkpoint.safetensors')), 'checkpoints of finished runs are removed');
    }
    const sgd = report.summary[0]!.optimizers.find((o) => o.optimizer === 'sgd')!;
    assert.equal(sgd.step_ratio_to_sgd, 1);
    const fngdRow = report.summary[0]!.optimizers.find((o) => o.optimizer === 'fngd')!;
    assert.equal(fngdRow.step_ratio_to_sgd, report.timings.find((t) => t.optimizer === 'fngd')!.over_sgd);
    assert.ok(sgd.train_step_ms_first_epoch && sgd.train_step_ms_later);
    const md = readFileSync(join(dir, 'report.md'), 'utf8');
    assert.match(md, /^# fngd benchmark report: smoke suite/);
    assert.match(md, /## MNIST MLP 784-512-256-10 \(`mnist-mlp`\)/);
    assert.match(r.out, /\| sgd \| \d\/1 \|/, 'the tables are printed too');
    const plots = readdirSync(join(dir, 'plots')).sort();
    assert.deepEqual(plots, ['mnist-mlp-loss-epoch.svg', 'mnist-mlp-loss-time.svg', 'mnist-mlp-metric-epoch.svg', 'mnist-mlp-metric-time.svg']);
    const elapsed = (Date.now() - t0) / 1000;
    assert.ok(elapsed < 60, `the smoke suite took ${elapsed} s`);

    const again = join(dir, 'again');
    const rebuilt = fngd('bench', '--from', join(dir, 'report.json'), '--out', again);
    assert.equal(rebuilt.code, 0, rebuilt.err);
    assert.equal(readFileSync(join(again, 'report.md'), 'utf8'), md);
    assert.equal(readFileSync(join(again, 'report.json'), 'utf8'), readFileSync(join(dir, 'report.json'), 'utf8'));
    for (const p of plots) assert.equal(readFileSync(join(again, 'plots', p), 'utf8'), readFileSync(join(dir, 'plots', p), 'utf8'), p);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('demo on a tiny configuration prints the comparison table and writes the plot', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fngd-demo-'));
  try {
    const r = fngd('demo', '--train-limit', '256', '--eval-limit', '200', '--epochs', '1', '--out', dir, '--no-progress');
    assert.equal(r.code, 0, r.err);
    const [a, b] = demoOptimizers();
    assert.match(r.out, /optimizer\s+test accuracy\s+train loss\s+time to 97\.00%\s+training time\s+step \(ms\)\s+step \/ SGD/);
    assert.match(r.out, new RegExp(`\\n${a}\\s+\\d+\\.\\d\\d%`));
    assert.match(r.out, new RegExp(`\\n${b}\\s+\\d+\\.\\d\\d%`));
    assert.match(r.out, new RegExp(`plot: ${join(dir, 'demo.svg').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    const svg = readFileSync(join(dir, 'demo.svg'), 'utf8');
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="1280"/);
    assert.match(svg, /training loss/);
    assert.match(svg, /test accuracy/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a task without its data is reported as not run, the suite goes on, and the exit status says so', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fngd-bench-nodata-'));
  try {
    const r = fngd('bench', '--suite', 'quick', '--only', 'cifar10-resnet', '--optimizers', 'sgd', '--data-dir', join(dir, 'none'), '--out', dir, '--no-progress');
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /cifar10-resnet: not run: .*data_batch_1\.bin/);
    const md = readFileSync(join(dir, 'report.md'), 'utf8');
    assert.match(md, /- sgd on cifar10-resnet: task not run: .*data_batch_1\.bin/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the demo compares SGD with FNGD once the factory has it, AdamW until then', () => {
  assert.deepEqual(demoOptimizers(), factory.has('fngd') ? ['sgd', 'fngd'] : ['sgd', 'adamw']);
});

test('optimizer table: entries for the five methods; pending ones are named with the reason', () => {
  for (const o of ['sgd', 'adamw', 'kfac', 'ngd', 'fngd']) {
    assert.ok(OPTIMIZER_TABLE[o], `bench/hyper.ts has ${o}`);
    for (const t of ['mnist-mlp', 'fashion-cnn', 'cifar10-resnet', 'multi30k-transformer'] as const) {
      assert.equal(typeof OPTIMIZER_TABLE[o]!.tasks[t].lr, 'number', `${o} has an lr for ${t}`);
    }
  }
  const { runnable, pending } = splitOptimizers(SUITE_OPTIMIZERS);
  assert.deepEqual(runnable, SUITE_OPTIMIZERS.filter((o) => factory.has(o)));
  for (const p of pending) assert.match(p.reason, /^pending: '\w+' is not in the optimizer factory yet/);
  // Every runnable entry's keys are `fngd train` flags (a misnamed one fails before any training).
  for (const cfg of getSuite('full')) for (const o of runnable) runFlags(cfg, o);
  OPTIMIZER_TABLE.bogus = { doc: '', searched: [], common: { dampening: 1 }, tasks: OPTIMIZER_TABLE.sgd!.tasks };
  try {
    assert.throws(() => runFlags(getSuite('smoke')[0]!, 'bogus'), /'bogus' sets dampening, not a flag of `fngd train`/);
  } finally {
    delete OPTIMIZER_TABLE.bogus;
  }
});

test('bench flag errors are named', () => {
  const cases: [string[], RegExp][] = [
    [['bench', '--suite', 'quick'], /--out is required/],
    [['bench', '--suite', 'huge', '--out', 'x'], /--suite must be one of quick, full, smoke; got 'huge'/],
    [['bench', '--only', 'imagenet', '--out', 'x'], /--only: imagenet is not in the quick suite \(it has mnist-mlp, fashion-cnn, cifar10-resnet\)/],
    [['bench', '--optimizers', 'sgd,lbfgs', '--out', 'x'], /--optimizers: unknown lbfgs/],
    [['bench', '--seeds', '0', '--out', 'x'], /--seeds must be at least 1/],
    [['bench', '--device', 'tpu', '--out', 'x'], /--device: device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'/],
    [['train', '--task', 'mnist-mlp', '--device', 'gpu0'], /--device: device must be/],
    // Past the last CUDA device (on a CPU-only libtorch: any), named as such.
    [['train', '--task', 'mnist-mlp', '--device', 'cuda:7'], cuda.isAvailable() && cuda.deviceCount() > 7 ? /^$/ : /--device: device 'cuda:7': (this libtorch has no CUDA device|only \d+ CUDA device)/],
  ];
  for (const [args, re] of cases) {
    const r = fngd(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err, re);
  }
  const help = fngd('bench', '--help');
  assert.equal(help.code, 0);
  for (const o of SUITE_OPTIMIZERS) assert.match(help.out, new RegExp(`^  ${o} `, 'm'));
  if (!factory.has('fngd')) assert.match(help.out, /fngd\s+\[pending\]/);
});

test('device selection: auto is CUDA exactly when libtorch has a device; the full suite then trains ResNet-18 on CIFAR-10', () => {
  assert.equal(resolveDevice('auto'), cuda.isAvailable() ? 'cuda:0' : 'cpu');
  assert.equal(resolveDevice(undefined), 'cpu');
  assert.equal(resolveDevice('cpu'), 'cpu');
  if (cuda.isAvailable()) assert.equal(resolveDevice('cuda'), 'cuda:0');
  else assert.throws(() => resolveDevice('cuda'), /this libtorch has no CUDA device \(build against a CUDA libtorch with FNGD_LIBTORCH/);
  const cifar = (resnet18: boolean) => getSuite('full', { resnet18 }).find((t) => t.task === 'cifar10-resnet')!;
  assert.equal(cifar(true).arch, 'resnet18');
  assert.match(cifar(true).title, /ResNet-18/);
  assert.equal(cifar(false).arch, 'small');
  // The report says where it ran.
  assert.equal(machineInfo('cuda:0').device, 'cuda:0');
  assert.equal(machineInfo().device, 'cpu');
});

test('the quick suite is planned to fit 20 minutes on 2 cores with all five optimizers', () => {
  const quick = getSuite('quick');
  const s = estimateSeconds(quick, SUITE_OPTIMIZERS);
  assert.ok(s <= 20 * 60, `planned ${(s / 60).toFixed(1)} min`);
  assert.ok(quick.every((t) => t.epochs >= 2), 'FNGD needs a second epoch to reuse its coefficients');
  assert.ok(!quick.some((t) => t.task === 'multi30k-transformer'));
});

test('loss curve: per-stretch means, times interpolated inside each epoch', () => {
  const steps = [0, 1, 2, 3].flatMap((k) => [0, 1].map((e) => ({ epoch: e, step: k, loss: 4 - k - 2 * e })));
  const epochs = [1, 2].map((e) => ({ epoch: e, wall_time: 10 * e + 1, train_time: 10 * e, train_loss: 0, eval_loss: 0, metric: 0 }));
  // 4 steps per epoch, 20 points allowed per epoch: one point per step.
  assert.deepEqual(lossCurve(steps, epochs, 4), [
    [0.25, 2.5, 4], [0.5, 5, 3], [0.75, 7.5, 2], [1, 10, 1],
    [1.25, 12.5, 2], [1.5, 15, 1], [1.75, 17.5, 0], [2, 20, -1],
  ]);
  const long = Array.from({ length: 100 }, (_, k) => ({ epoch: 0, step: k, loss: k }));
  const one = lossCurve(long, [epochs[0]!], 100);
  assert.equal(one.length, 20);
  assert.deepEqual(one[0], [0.05, 0.5, 2], 'the mean of steps 0-4');
});

test('timing: every round runs each contender once, in a seeded shuffled order', async () => {
  const schedule = async (seed: number): Promise<string[][]> => {
    const rounds: string[][] = [[]];
    const names = ['a', 'b', 'c', 'd'];
    const contenders = Object.fromEntries(names.map((k) => [k, (n: number): number => {
      if (rounds.at(-1)!.length === names.length) rounds.push([]);
      rounds.at(-1)!.push(k);
      return n;
    }]));
    const samples = await interleaveRounds(contenders, { rounds: 12, iters: 3, seed });
    for (const k of names) assert.deepEqual(samples[k], new Array(12).fill(1), `${k}: 12 timed rounds of 3 iterations, per call`);
    assert.equal(rounds.length, 13, 'one warm-up round and 12 timed ones');
    for (const r of rounds) assert.deepEqual([...r].sort(), names, 'each contender once per round');
    return rounds;
  };
  const s1 = await schedule(7);
  assert.deepEqual(await schedule(7), s1, 'the same seed gives the same schedule');
  // Shuffled: every contender runs first in some round, and not always the same order.
  for (const k of ['a', 'b', 'c', 'd']) assert.ok(s1.some((r) => r[0] === k), `${k} runs first in some round`);
  assert.ok(new Set(s1.map((r) => r.join(''))).size > 3);
});

test('timing: bracketed ratios cancel a linear drift; each round alternates the reference with shuffled contenders', async () => {
  // A fake machine whose speed drifts: call c takes (1 + 0.05 c) units, times a per-contender factor.
  const factor: Record<string, number> = { ref: 1, a: 1.2, b: 0.9, c: 1.5 };
  const calls: string[] = [];
  const contenders = Object.fromEntries(Object.keys(factor).map((k) => [k, (n: number): number => {
    calls.push(k);
    return n * factor[k]! * (1 + 0.05 * calls.length);
  }]));
  const t = await bracketedRatios(contenders, 'ref', { rounds: 6, iters: 2, seed: 3 });
  for (const k of ['a', 'b', 'c']) {
    assert.equal(t.ratios[k]!.length, 6);
    for (const r of t.ratios[k]!) assert.ok(Math.abs(r - factor[k]!) < 1e-12, `${k}: ${r} against ${factor[k]}`);
  }
  assert.equal(t.reference.length, 6 * 4, 'a reference block before the first contender and after each');
  for (const k of ['a', 'b', 'c']) assert.equal(t.times[k]!.length, 6);
  // The schedule: ref x ref y ref z ref per round, a warm-up round first, orders shuffled.
  const rounds = Array.from({ length: 7 }, (_, r) => calls.slice(r * 7, r * 7 + 7));
  assert.equal(calls.length, 7 * 7);
  for (const r of rounds) {
    assert.deepEqual(r.filter((_, i) => i % 2 === 0), ['ref', 'ref', 'ref', 'ref']);
    assert.deepEqual(r.filter((_, i) => i % 2 === 1).sort(), ['a', 'b', 'c']);
  }
  assert.ok(new Set(rounds.map((r) => r.join(' '))).size > 2, 'the order changes between rounds');
  // What bracketing buys: against only the round's first reference block the drift biases the ratio.
  const firstRef = (r: number, k: string): number => {
    const start = (r + 1) * 7;
    const i = calls.indexOf(k, start);
    return (factor[k]! * (1 + 0.05 * (i + 1))) / (1 + 0.05 * (start + 1));
  };
  assert.ok(Math.abs(firstRef(0, 'c') - 1.5) > 0.01);
  await assert.rejects(bracketedRatios(contenders, 'none', { rounds: 1, iters: 1 }), /no contender named 'none'/);
});

test('timing: ratio summaries give the median, quartiles and a 95% order-statistic interval of the median', () => {
  const r = summarizeRatios([1.3, 1.1, 1.2, 1.2, 1.1, 1.3, 1.2]);
  assert.ok(Math.abs(r.median - 1.2) < 1e-12, `median: ${r.median}`);
  assert.ok(Math.abs(r.q1 - 1.15) < 1e-12 && Math.abs(r.q3 - 1.25) < 1e-12, `interquartile range: ${r.q1}, ${r.q3}`);
  // The large-sample ranks for n = 100: from the 40th to the 61st smallest.
  const hundred = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) + 1);
  assert.deepEqual(summarizeRatios(hundred).ci95, [40, 61]);
  // Coverage, from the binomial law: the median lies between the r-th and s-th smallest of n unless
  // fewer than r or at least s samples fall below it, X ~ Binomial(n, 1/2).
  const binom = (n: number, k: number): number => {
    let c = 1;
    for (let i = 1; i <= k; i++) c = (c * (n - k + i)) / i;
    return c / 2 ** n;
  };
  for (const n of [10, 20, 30, 41, 60]) {
    const xs = Array.from({ length: n }, (_, i) => i + 1);
    const [lo, hi] = summarizeRatios(xs).ci95;
    let cover = 0;
    for (let k = lo; k <= hi - 1; k++) cover += binom(n, k);
    assert.ok(cover >= 0.94 && cover < 0.995, `n = ${n}: ranks ${lo}..${hi} cover ${cover.toFixed(4)}`);
  }
  assert.deepEqual(summarizeRatios([2]).ci95, [2, 2]);
  assert.throws(() => summarizeRatios([]), /no ratios/);
});

test('timing: benchmark flags are read as positive integers, and a bad value names the flag', () => {
  assert.equal(positiveFlag(['--json'], 'rounds', 'bench:x'), undefined);
  assert.equal(positiveFlag(['--rounds', '12', '--json'], 'rounds', 'bench:x'), 12);
  for (const bad of ['0', '-2', '1.5', 'many']) {
    assert.throws(() => positiveFlag(['--rounds', bad], 'rounds', 'bench:x'), new RegExp(`bench:x: --rounds must be a positive integer, got '${bad}'`));
  }
  assert.throws(() => positiveFlag(['--rounds'], 'rounds', 'bench:x'), /--rounds needs a value/);
  assert.throws(() => positiveFlag(['--rounds', '--json'], 'rounds', 'bench:x'), /--rounds needs a value/);
});

test('timing: whole cost periods: a short block still covers one full period, scaled back to its steps', () => {
  for (const [iters, period, runs] of [[1, 10, 10], [2, 10, 10], [15, 10, 20], [3, 1, 3]] as const) {
    let n = 0;
    const secs = timeWholePeriods(iters, period, () => { n++; });
    assert.equal(n, runs, `${iters} steps with period ${period}`);
    assert.ok(secs >= 0 && Number.isFinite(secs));
  }
});

test('bench/search/costed: time to a target and in all, in reference epochs from per-epoch step costs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fngd-costed-'));
  try {
    const write = (run: string, metrics: number[]): void => {
      mkdirSync(join(dir, run));
      writeFileSync(join(dir, run, 'log.jsonl'), metrics.map((m, epoch) => JSON.stringify({ epoch, wall_time: 100 * (epoch + 1), eval_time: 0, test_bleu: m })).join('\n') + '\n');
    };
    write('a', [1, 12, 22, 26]);
    write('b', [2, 7, 13, 21, 25]);
    writeFileSync(join(dir, 'bench.json'), JSON.stringify({ solve_over_ref: 3.25, reuse_over_ref: 1.02 }));
    writeFileSync(join(dir, 'table.txt'), '# rows\nRef | a | 1 | 1\nTwo-phase | b | solve_over_ref | reuse_over_ref\nNone yet | c | 1 | 1\n');
    const script = fileURLToPath(new URL('../bench/search/costed.js', import.meta.url));
    const r = spawnSync(process.execPath, [script, join(dir, 'table.txt'), dir, join(dir, 'bench.json'), '--metric', 'test_bleu', '--target', '20'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const rows = r.stdout.trim().split('\n').slice(2).map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
    // Reference epochs to the target: the first epoch's cost, then the later epochs' (reference formula).
    assert.deepEqual(rows[0], ['Ref', '1.00, 1.00', '1.00 / 12.00 / 22.00 / 26.00', '26.00', '26.00', '3', '3.0', '4.0']);
    assert.deepEqual(rows[1], ['Two-phase', '3.25, 1.02', '2.00 / 7.00 / 13.00 / 21.00 / 25.00', '25.00', '25.00', '4', (3.25 + 3 * 1.02).toFixed(1), (3.25 + 4 * 1.02).toFixed(1)]);
    assert.deepEqual(rows[2], ['None yet', '1.00, 1.00', 'no epoch yet', '-', '-', 'not reached', '-', '0.0']);
    // --budget: the metric at the last epoch ending within the budget (b: 3.25 + 2 * 1.02 = 5.29 <= 6 < 6.31).
    const withBudget = spawnSync(process.execPath, [script, join(dir, 'table.txt'), dir, join(dir, 'bench.json'), '--metric', 'test_bleu', '--budget', '6'], { encoding: 'utf8' });
    assert.equal(withBudget.status, 0, withBudget.stderr);
    const budgetCells = withBudget.stdout.trim().split('\n').slice(2).map((l) => l.split('|').slice(1, -1).map((c) => c.trim()).at(-1));
    assert.deepEqual(budgetCells, ['26.00 (4) (stopped before the budget)', '13.00 (3)', '-']);
    // --svg: per epoch and against reference epochs; b's last point sits at x = 3.25 + 4 * 1.02 on the time chart.
    writeFileSync(join(dir, 'table2.txt'), 'Ref (whole schedule) | a | 1 | 1\nTwo-phase | b | solve_over_ref | reuse_over_ref\n');
    const svgFile = join(dir, 'm.svg');
    const drawn = spawnSync(process.execPath, [script, join(dir, 'table2.txt'), dir, join(dir, 'bench.json'), '--metric', 'test_bleu', '--budget', '6', '--svg', svgFile], { encoding: 'utf8' });
    assert.equal(drawn.status, 0, drawn.stderr);
    const svg = readFileSync(svgFile, 'utf8');
    assert.equal(svg.match(/>Ref</g)?.length, 2, 'legend names drop the parenthesized remark, one per chart');
    assert.match(svg, />test_bleu against training time</);
    assert.match(svg, />budget 6</);
    assert.equal(svg.match(/<circle /g)?.length, 2 * (4 + 5), 'every epoch a point, in both charts');
    // The time axis runs from 0 to the largest cost plus 4%: b's last point at 64 + plot width / 1.04 px
    // (plot width: 560 px less the margins, the legend 40 + 6 px per character of 'Two-phase').
    assert.match(svg, new RegExp(`<circle cx="${(64 + (560 - 64 - 16) / 1.04).toFixed(1)}" `));
    // A cost that is neither a number nor in the bench files is an error that names it.
    writeFileSync(join(dir, 'bad.txt'), 'X | a | nope_over_ref | 1\n');
    const bad = spawnSync(process.execPath, [script, join(dir, 'bad.txt'), dir, join(dir, 'bench.json'), '--metric', 'test_bleu'], { encoding: 'utf8' });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /step cost 'nope_over_ref' is neither a positive number nor a number in the bench files/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
