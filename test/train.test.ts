// The trainer: an interrupted and resumed run continues exactly; logs and checkpoints are complete.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdamW, SGD, cosineAnnealing, type Optimizer } from '../src/optim/index.js';
import { liveTensors, manualSeed } from '../src/tensor/index.js';
import { Trainer, type TrainResult } from '../src/train/trainer.js';
import { createTask, type TaskName } from '../src/train/tasks.js';

interface RunSpec {
  task: TaskName;
  optimizer: 'sgd' | 'adamw';
  stopAfter?: number;
  resume?: boolean;
  outDir: string;
}

async function run(s: RunSpec): Promise<TrainResult> {
  manualSeed(1); // initialization
  const task = createTask(s.task, { batchSize: 32, seed: 3, trainLimit: 160, evalLimit: 64, evalBatchSize: 64 });
  const params = task.model.parameters();
  const opt: Optimizer = s.optimizer === 'sgd'
    ? new SGD(params, { lr: 0.05, momentum: 0.9, weightDecay: 1e-4 })
    : new AdamW(params, { lr: 1e-3 });
  try {
    const trainer = new Trainer(task as never, opt, {
      epochs: 2, seed: 3, outDir: s.outDir, resume: s.resume, stopAfterSteps: s.stopAfter, progress: false,
      schedule: cosineAnnealing({ tMax: 10 }),
    });
    return await trainer.fit();
  } finally {
    opt.dispose();
    task.dispose();
  }
}

for (const [taskName, optimizer] of [['mnist-mlp', 'adamw'], ['cifar10-resnet', 'sgd']] as const) {
  test(`${taskName} with ${optimizer}: a run stopped mid-epoch and resumed reproduces the uninterrupted run`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fngd-train-'));
    try {
      const base = liveTensors().tensors;
      const full = await run({ task: taskName, optimizer, outDir: join(dir, 'a') });
      assert.equal(full.status, 'done');
      assert.equal(full.steps.length, 10, '2 epochs of 5 batches');
      assert.equal(liveTensors().tensors, base, 'a whole run leaves no tensor behind');

      const first = await run({ task: taskName, optimizer, outDir: join(dir, 'b'), stopAfter: 3 });
      assert.equal(first.status, 'stopped');
      assert.ok(existsSync(join(dir, 'b', 'checkpoint.safetensors')));
      const second = await run({ task: taskName, optimizer, outDir: join(dir, 'b'), stopAfter: 4, resume: true });
      assert.equal(second.status, 'stopped', 'stopped again inside epoch 2');
      const rest = await run({ task: taskName, optimizer, outDir: join(dir, 'b'), resume: true });
      assert.equal(rest.status, 'done');

      // Bitwise: same batches, same augmentation, same lr, same optimizer state.
      assert.deepEqual(rest.steps.map((s) => s.loss), full.steps.map((s) => s.loss));
      assert.deepEqual(rest.steps.map((s) => s.lr), full.steps.map((s) => s.lr));
      const metrics = (r: TrainResult): unknown => r.epochs.map(({ wall_time: _w, eval_time: _e, samples_per_s: _s, ...m }) => m);
      assert.deepEqual(metrics(rest), metrics(full));

      const log = readFileSync(join(dir, 'b', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
      assert.equal(log.length, 2);
      for (const [i, rec] of log.entries()) {
        assert.equal(rec.epoch, i, 'epochs counted from 0, as in steps.jsonl');
        for (const k of ['wall_time', 'eval_time', 'train_loss', 'lr', 'test_accuracy']) {
          if (taskName === 'cifar10-resnet' && k === 'test_accuracy') continue;
          assert.equal(typeof rec[k], 'number', `log has ${k}`);
        }
      }
      assert.ok(log[1]!.wall_time >= log[0]!.wall_time, 'wall time accumulates across resumes');
      assert.ok(log[1]!.eval_time > log[0]!.eval_time && log[0]!.eval_time > 0, 'evaluation time accumulates');
      assert.ok(log[1]!.eval_time < log[1]!.wall_time, 'evaluation is part of the wall time');
      const steps = readFileSync(join(dir, 'b', 'steps.jsonl'), 'utf8').trim().split('\n');
      assert.equal(steps.length, 10, 'steps.jsonl holds each step once across the three calls');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('a checkpoint from another optimizer or a corrupt file is refused with a clear error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fngd-train-'));
  try {
    await run({ task: 'mnist-mlp', optimizer: 'sgd', outDir: dir, stopAfter: 1 });
    await assert.rejects(run({ task: 'mnist-mlp', optimizer: 'adamw', outDir: dir, resume: true }), /the state dict is from a SGD optimizer/);
    const path = join(dir, 'checkpoint.safetensors');
    const bytes = readFileSync(path);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path, bytes.subarray(0, bytes.length >> 1));
    await assert.rejects(run({ task: 'mnist-mlp', optimizer: 'sgd', outDir: dir, resume: true }), /checkpoint\.safetensors/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
