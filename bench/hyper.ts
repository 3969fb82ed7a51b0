// The reproduction suite's view of the method registry (src/precondition/registry.ts), which holds
// every method's options, defaults and per-task values: this table is derived from it, so that a
// report can say exactly what each run used and the CLI and the suite never disagree. The runner
// (`runFlags` in src/cli/bench.ts) rejects keys that are not `fngd train` flags, so a renamed flag
// fails loudly before any training.
import { METHODS } from '../src/precondition/registry.js';
import type { TaskName } from '../src/train/tasks.js';

export type HyperValue = number | string | boolean | number[];
export type Hyper = Record<string, HyperValue>;

export interface OptimizerEntry {
  /** What it is and where its values come from (printed in --help). */
  doc: string;
  /** Tasks whose values come from a documented search (bench/search/, docs/RESULTS.md). */
  searched: TaskName[];
  /** Values for every task beyond the registry's defaults; `tasks` overrides them. */
  common: Hyper;
  tasks: Record<TaskName, Hyper>;
}

export const OPTIMIZER_TABLE: Record<string, OptimizerEntry> = Object.fromEntries(
  Object.entries(METHODS).map(([name, e]) => [name, { doc: e.doc, searched: [...e.searched], common: {}, tasks: e.tasks as Record<TaskName, Hyper> }]),
);

/** The flags of `name` on `task` (common values, then the task's). */
export function hyperFor(name: string, task: TaskName): Hyper {
  const e = OPTIMIZER_TABLE[name];
  if (!e) throw new Error(`bench/hyper.ts has no entry for optimizer '${name}'`);
  return { ...e.common, ...e.tasks[task] };
}
