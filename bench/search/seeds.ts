// Median and spread over seeds of runs made by bench/search/queue.sh.
//   node dist/bench/search/seeds.js GROUPS RUNS_DIR --metric test_accuracy --target 0.975 [--target2 0.97]
// GROUPS: one line per configuration, "LABEL: RUN RUN ...". Per group: final metric (median, min-max),
// epochs to each target (median; '-' when fewer than half the seeds reached it), training seconds to
// each target (wall_time - eval_time, median over the seeds that reached it) and in all.
import { readFileSync } from 'node:fs';
import { flag, median } from '../timing.js';
import { formatMetric, readLog, trainSeconds, type EpochLog } from './logs.js';

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => flag(argv, name);
const [groupsFile, runsDir] = argv;
if (!groupsFile || !runsDir) throw new Error('usage: seeds GROUPS RUNS_DIR --metric KEY --target T [--target2 T2]');
const metric = opt('metric') ?? 'test_accuracy';
const targets = [opt('target'), opt('target2')].filter((t): t is string => t !== undefined).map(Number);
const fmt = (v: number): string => formatMetric(metric, v);

console.log(`| configuration | seeds | final ${metric} (median, min-max) | ${targets.map((t) => `epochs to ${fmt(t)} | train s to ${fmt(t)}`).join(' | ')} | train s total |`);
console.log(`|---|---|---|${targets.map(() => '---|---|').join('')}---|`);
for (const line of readFileSync(groupsFile, 'utf8').split('\n')) {
  if (!line.trim() || line.startsWith('#')) continue;
  const [label, rest] = line.split(':');
  const runs = rest!.trim().split(/\s+/).map((name) => readLog(runsDir, name)).filter((logs) => logs.length > 0);
  if (runs.length === 0) {
    console.log(`| ${label} | 0 | not run |${targets.map(() => ' - | - |').join('')} - |`);
    continue;
  }
  const finals = runs.map((logs) => logs.at(-1)![metric]!);
  const cells = targets.map((t) => {
    const hits = runs.map((logs) => logs.find((l) => (l[metric] ?? -Infinity) >= t)).filter((h): h is EpochLog => h !== undefined);
    if (hits.length * 2 <= runs.length) return `- (${hits.length}/${runs.length}) | -`;
    // Epochs trained to the target: the record's position (logs before and after the switch of
    // log.jsonl's epoch to counting from 0 read the same).
    const trained = runs.flatMap((logs) => {
      const i = logs.findIndex((l) => (l[metric] ?? -Infinity) >= t);
      return i < 0 ? [] : [i + 1];
    });
    return `${median(trained)} (${hits.length}/${runs.length}) | ${Math.round(median(hits.map(trainSeconds)))}`;
  });
  console.log(`| ${label} | ${runs.length} | ${fmt(median(finals))} (${fmt(Math.min(...finals))}-${fmt(Math.max(...finals))}) | ${cells.join(' | ')} | ${Math.round(median(runs.map((logs) => trainSeconds(logs.at(-1)!))))} |`);
}
