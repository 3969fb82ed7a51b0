// What the bench/search tools read from a run: its log.jsonl, and its training time.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** One line of a run's log.jsonl (src/train/trainer.ts). */
export interface EpochLog { epoch: number; wall_time: number; eval_time?: number; [k: string]: number | undefined }

/** The epochs logged so far under RUNS_DIR/name ([] when the run has not started). */
export function readLog(runsDir: string, name: string): EpochLog[] {
  const f = join(runsDir, name, 'log.jsonl');
  return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as EpochLog) : [];
}

/** Seconds of training up to this epoch (evaluation excluded when the log has eval_time). */
export const trainSeconds = (l: EpochLog): number => l.wall_time - (l.eval_time ?? 0);

/** A metric as printed: accuracies in percent, others (BLEU) as they are. */
export const formatMetric = (metric: string, v: number): string => (metric.endsWith('accuracy') ? (100 * v).toFixed(2) : v.toFixed(2));
