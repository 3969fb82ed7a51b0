// Report generation from a fixed input (test/fixtures/report_input.json: synthetic, realistic runs of
// two tasks and five optimizers, one diverged run, one pending optimizer): exact table contents,
// byte-identical re-rendering, and golden files for the Markdown and one SVG.
//
// After an intended change of the report's look, regenerate the golden files and review their diff:
//   npx tsc -p tsconfig.json && FNGD_UPDATE_GOLDEN=1 node --test dist/test/report.test.js
// (`node dist/src/cli/main.js bench --from test/fixtures/report_input.json --out /tmp/r` writes the
// whole report from the same input, to look at.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildReport, renderMarkdown, renderPlots, stringifyReport, type ReportInput } from '../src/report/report.js';
import { formatTick, lineChart, logTicks, niceTicks, sideBySide } from '../src/report/svg.js';

const fixture = (name: string): string => fileURLToPath(new URL(`../../test/fixtures/${name}`, import.meta.url));
const input = JSON.parse(readFileSync(fixture('report_input.json'), 'utf8')) as ReportInput;
const UPDATE = process.env.FNGD_UPDATE_GOLDEN === '1';

function golden(name: string, actual: string): void {
  if (UPDATE) writeFileSync(fixture(name), actual);
  assert.equal(actual, readFileSync(fixture(name), 'utf8'), `${name} differs from the golden file (see this file's header to regenerate)`);
}

test('summary: medians, spreads, targets, ratios and comparisons from the fixed input', () => {
  const r = buildReport(input);
  const mnist = r.summary.find((s) => s.task === 'mnist-mlp')!;
  assert.deepEqual(mnist.optimizers.map((o) => o.optimizer), ['sgd', 'adamw', 'kfac', 'ngd', 'fngd']);
  const sgd = mnist.optimizers[0]!;
  assert.deepEqual(sgd.epochs_to_target, { median: 2, min: 2, max: 2, reached: 2, n: 2 });
  assert.equal(sgd.step_ratio_to_sgd, 1);
  assert.equal(sgd.final_metric!.n, 2);
  // The diverged NGD seed counts as not reaching the target: with 1 of 2, the median is undefined.
  const ngd = mnist.optimizers.find((o) => o.optimizer === 'ngd')!;
  assert.deepEqual(ngd.time_to_target_s, { median: null, min: ngd.time_to_target_s.min, max: null, reached: 1, n: 2 });
  assert.equal(ngd.failed, 1);
  assert.equal(ngd.final_metric!.n, 1);
  const fngd = mnist.optimizers.find((o) => o.optimizer === 'fngd')!;
  const kfac = mnist.optimizers.find((o) => o.optimizer === 'kfac')!;
  assert.equal(mnist.comparisons.fngd_speedup_over_kfac, kfac.time_to_target_s.median! / fngd.time_to_target_s.median!);
  assert.ok(fngd.train_step_ms_first_epoch!.median > 2 * fngd.train_step_ms_later!.median, 'FNGD: first epoch costly, later cheap');
  assert.equal(mnist.paper, null);
  const cifar = r.summary.find((s) => s.task === 'cifar10-resnet')!;
  assert.equal(cifar.paper!.fngd_speedup_over_kfac, 2.07);
  assert.deepEqual(r.skipped.map((s) => s.optimizer), ['ief', 'ief']);
});

test('step / SGD: the bracketed ratio when the timing has one, else the ratio of medians (older reports)', () => {
  const bracketed: ReportInput = {
    ...input,
    timings: input.timings.map((t) => (t.task === 'mnist-mlp' ? { ...t, over_sgd: t.optimizer === 'sgd' ? 1 : 0.97 } : t)),
  };
  const r = buildReport(bracketed);
  const rows = (task: string): Map<string, number | null> => new Map(r.summary.find((s) => s.task === task)!.optimizers.map((o) => [o.optimizer, o.step_ratio_to_sgd]));
  assert.equal(rows('mnist-mlp').get('fngd'), 0.97);
  assert.equal(rows('mnist-mlp').get('sgd'), 1);
  const cifarMs = new Map(input.timings.filter((t) => t.task === 'cifar10-resnet').map((t) => [t.optimizer, t.step_ms]));
  assert.equal(rows('cifar10-resnet').get('fngd'), cifarMs.get('fngd')! / cifarMs.get('sgd')!);
  assert.match(renderMarkdown(r), /"Step \/ SGD" is the median over rounds of a step's time over the mean of the SGD steps timed\njust before and after it\./);
  assert.match(renderMarkdown(buildReport(input)), /"Step \/ SGD" is the ratio of the two medians\./);
});

test('markdown: untimed warm-up steps are stated for the tasks that had them, and only then', () => {
  const warmed: ReportInput = { ...input, suite: { ...input.suite, tasks: input.suite.tasks.map((t) => (t.task === 'mnist-mlp' ? { ...t, timing: { ...t.timing, warmup: 300 } } : t)) } };
  assert.match(renderMarkdown(buildReport(warmed)), /each optimizer stepped untimed \(mnist-mlp: 300 steps\)/);
  assert.doesNotMatch(renderMarkdown(buildReport(input)), /stepped untimed/);
});

test('markdown: exact table rows and comparison lines', () => {
  const md = renderMarkdown(buildReport(input));
  const lines = md.split('\n');
  for (const want of [
    '| optimizer | reached | epochs to target | time to target (s) | final test accuracy | final train loss | step (ms) | step / SGD | train step (ms): epoch 1 / later |',
    '| sgd | 2/2 | 2 | 5.80 [5.63, 5.98] | 97.87% [97.84%, 97.89%] | 0.0396 [0.0369, 0.0424] | 12.4 | 1.00 | 12.4 [12.0, 12.8] / 12.4 [12.0, 12.8] |',
    '| ngd | 1/2 (1 failed) | — (1/2) | — (1/2) | 98.14% | 0.0212 | 32.2 | 2.60 | 31.3 / 31.3 |',
    '| fngd | 2/2 | 2 | 10.8 | 98.13% | 0.0217 | 13.9 | 1.12 | 32.2 / 13.9 |',
    '| fngd | 1/1 | 1 | 23.5 | 44.65% | 1.2207 | 506 | 1.12 | 1175 / 506 |',
    '- FNGD speedup over KFAC in time to target: 1.13x',
    '- FNGD speedup over KFAC in time to target: 0.81x (paper: 2.07x, ResNet-18 on CIFAR-100)',
    "- FNGD minus AdamW, final val accuracy: 0.61 points, at 1.45x AdamW's training time",
    '- Optimizers: sgd, adamw, kfac, ngd, fngd; not run: ief (see Skipped)',
    '- mnist-mlp / ngd / seed 1: diverged: training diverged: loss NaN at epoch 2, step 17 (logs in `runs/bench-quick/runs/mnist-mlp/ngd/seed1`)',
    "- ief on cifar10-resnet: pending: 'ief' is not in the optimizer factory yet (OPTIMIZERS in src/cli/train.ts)",
    '![mnist-mlp: training loss against time](plots/mnist-mlp-loss-time.svg)',
  ]) {
    assert.ok(lines.includes(want), `report.md lacks the line:\n${want}`);
  }
  golden('report_golden.md', md);
});

test('rendering is deterministic and a report rebuilds from its own report.json', () => {
  const a = buildReport(input);
  const b = buildReport(structuredClone(input));
  assert.equal(stringifyReport(a), stringifyReport(b));
  assert.equal(renderMarkdown(a), renderMarkdown(b));
  assert.deepEqual([...renderPlots(a)], [...renderPlots(b)]);
  // report.json parses back to the same object, and rebuilding from it changes nothing.
  const again = JSON.parse(stringifyReport(a)) as ReportInput;
  assert.deepEqual(again, JSON.parse(JSON.stringify(a)));
  assert.equal(stringifyReport(buildReport(again)), stringifyReport(a));
  const plots = renderPlots(a);
  assert.deepEqual([...plots.keys()], [
    'mnist-mlp-loss-time.svg', 'mnist-mlp-loss-epoch.svg', 'mnist-mlp-metric-time.svg', 'mnist-mlp-metric-epoch.svg',
    'cifar10-resnet-loss-time.svg', 'cifar10-resnet-loss-epoch.svg', 'cifar10-resnet-metric-time.svg', 'cifar10-resnet-metric-epoch.svg',
  ]);
  for (const [name, svg] of plots) {
    assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"') && svg.endsWith('</svg>\n'), name);
    assert.ok(svg.length < 8000, `${name} is small (${svg.length} bytes)`);
    assert.doesNotMatch(svg, /NaN|Infinity|undefined/, name);
  }
  golden('report_golden_mnist-mlp-loss-time.svg', plots.get('mnist-mlp-loss-time.svg')!);
});

test('svg: nice ticks, log ticks, labels, escaping, empty and bad data', () => {
  assert.deepEqual(niceTicks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(-3, 7, 5), [-2, 0, 2, 4, 6]);
  assert.deepEqual(niceTicks(0.96, 1.04, 4), [0.96, 0.98, 1, 1.02, 1.04]);
  assert.deepEqual(niceTicks(0, 0.6, 3), [0, 0.2, 0.4, 0.6], 'no floating-point dust (3 * 0.2 = 0.6000000000000001)');
  assert.deepEqual(logTicks(0.02, 2.3), [0.02, 0.05, 0.1, 0.2, 0.5, 1, 2]);
  assert.deepEqual(logTicks(1e-4, 10), [1e-4, 1e-3, 1e-2, 0.1, 1, 10]);
  assert.deepEqual(logTicks(1.2, 2.3), [1.2, 1.4, 1.6, 1.8, 2, 2.2], 'under one decade: evenly spaced');
  assert.deepEqual([0, 1, 1.02].map((v) => formatTick(v, 0.02)), ['0', '1.00', '1.02']);
  assert.equal(formatTick(250000, 50000), '2.5e5');
  assert.equal(formatTick(5e-5, 1e-5), '5e-5');
  const svg = lineChart([
    { name: 'a<b & "c"', points: [[0, 1], [1, NaN], [2, 0.5], [3, -1]] },
    { name: 'empty', points: [] },
  ], { title: 'x < y', xLabel: 't', yLabel: 'loss', logY: true, hlines: [{ y: 0.7, label: 'goal' }] });
  assert.match(svg, /a&lt;b &amp; &quot;c&quot;/);
  assert.match(svg, /x &lt; y/);
  assert.match(svg, />empty</, 'a series without points keeps its legend entry');
  assert.match(svg, /M\S+ \S+L\S+ \S+"/, 'the two valid points are joined, NaN and y <= 0 dropped on a log axis');
  assert.match(svg, />goal</);
  assert.match(lineChart([], { title: 't', xLabel: 'x', yLabel: 'y' }), /no data/);
  const one = lineChart([{ name: 'sgd', points: [[1, 1]] }], { title: 't', xLabel: 'x', yLabel: 'y' });
  assert.doesNotMatch(one, /NaN|Infinity/, 'a single point gets a non-degenerate range');
  assert.match(one, /stroke="#0072B2"/, 'sgd keeps its colour');
  // A vertical line sits where its x is on the axis: x in [0, 10] padded by 4% each side, plot from 64 to 640 - 16 - 200 px.
  const budget = lineChart([{ name: 'a', points: [[0, 1], [10, 2]] }], { title: 't', xLabel: 'x', yLabel: 'y', legendWidth: 200, vlines: [{ x: 5, label: 'budget' }] });
  const pw = 640 - 64 - 16 - 200;
  assert.match(budget, new RegExp(`<line x1="${(64 + pw / 2).toFixed(1)}" y1="36.0" x2="${(64 + pw / 2).toFixed(1)}" y2="${(360 - 48).toFixed(1)}" stroke="#888" stroke-dasharray="5 4"/>`));
  assert.match(budget, />budget</);
  assert.match(budget, new RegExp(`<line x1="${64 + pw + 14}" `), 'the legend starts right of the narrower plot');
  const both = sideBySide([one, one]);
  assert.match(both, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="1280" height="360"/);
  assert.equal(both.match(/<svg x="640" y="0" /g)?.length, 1);
});
