// Resident memory over a 1,000-step training run (issue 14: long runs keep a flat RSS):
//   npm run bench:rss -- [method]      (default fngd: capture, Grams, solves, the coefficient store)
// MNIST MLP, batch 32, 3,200 training images, 10 epochs = 1,000 steps; RSS every 100 steps, and
// its growth after the first 100 (allocator warm-up and the store's first fill excluded).
import { buildMethod, resolveValues } from '../src/precondition/registry.js';
import { createTask } from '../src/train/tasks.js';
import { Trainer } from '../src/train/trainer.js';

const method = process.argv[2] ?? 'fngd';
const task = createTask('mnist-mlp', { batchSize: 32, seed: 0, trainLimit: 3200, evalLimit: 500 });
const ctx = { model: task.model, numSamples: task.trainLoader.dataset.length, batchesPerEpoch: task.trainLoader.batchesPerEpoch, batchSize: 32, seed: 0 };
const opt = buildMethod(method, ctx, resolveValues(method, 'mnist-mlp', {}));
const rss: number[] = [];
const trainer = new Trainer(task as never, opt, {
  epochs: 10, seed: 0, progress: false,
  onStep: (r) => {
    if ((r.epoch * task.trainLoader.batchesPerEpoch + r.step + 1) % 100 === 0) rss.push(Math.round(process.memoryUsage().rss / 2 ** 20));
  },
});
await trainer.fit();
console.log(JSON.stringify({ method, steps: rss.length * 100, rss_mb_every_100_steps: rss, growth_after_step_100_mb: rss[rss.length - 1]! - rss[0]! }));
opt.dispose();
task.dispose();
