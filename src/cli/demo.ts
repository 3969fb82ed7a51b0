// `fngd demo`: the MNIST MLP trained side by side with each available optimizer, a short table.
// (FNGD joins the table when its optimizer lands; see the issues.)
import { manualSeed } from '../tensor/index.js';
import { Trainer } from '../train/trainer.js';
import { createTask } from '../train/tasks.js';
import { parseFlags, UsageError } from './args.js';
import { buildOptimizer, buildSchedule, TASK_DEFAULTS, TRAIN_FLAGS } from './train.js';

export async function demoCommand(argv: string[]): Promise<void> {
  const f = parseFlags(argv, {
    epochs: { kind: 'int', min: 1, default: 2, help: 'epochs per optimizer' },
    seed: { kind: 'int', min: 0, default: 0, help: 'seed' },
    progress: TRAIN_FLAGS.progress!,
  });
  const rows: string[][] = [];
  for (const name of ['sgd', 'adamw'] as const) {
    manualSeed(f.seed as number);
    const d = TASK_DEFAULTS['mnist-mlp'];
    const task = createTask('mnist-mlp', { batchSize: d.batchSize, seed: f.seed as number });
    try {
      const flags = { ...Object.fromEntries(Object.entries(TRAIN_FLAGS).map(([k, s]) => [k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()), s.default])), lr: d.lr[name], weightDecay: d.weightDecay[name], schedule: d.schedule, warmupSteps: 0 };
      const opt = buildOptimizer(name, task.model.parameters(), flags);
      const trainer = new Trainer(task as never, opt, {
        epochs: f.epochs as number, seed: f.seed as number, progress: f.progress as boolean,
        schedule: buildSchedule(flags, task.trainLoader.batchesPerEpoch, f.epochs as number),
      });
      const { epochs } = await trainer.fit();
      const last = epochs.at(-1)!;
      rows.push([name, String(epochs.length), last.train_loss.toFixed(4), `${(100 * last.test_accuracy!).toFixed(2)}%`, `${last.wall_time.toFixed(1)}s`]);
      opt.dispose();
    } finally {
      task.dispose();
    }
  }
  if (rows.length === 0) throw new UsageError('nothing ran');
  const head = ['optimizer', 'epochs', 'train loss', 'test accuracy', 'wall time'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => c.padEnd(w[i]!)).join('  ');
  console.log(`\nMNIST MLP 784-512-256-10, batch ${TASK_DEFAULTS['mnist-mlp'].batchSize}\n${line(head)}\n${line(w.map((n) => '-'.repeat(n)))}\n${rows.map(line).join('\n')}`);
}
