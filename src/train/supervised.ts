// A Task made of your own parts (model, data, loss, metrics), for the Trainer:
//   const task = supervisedTask({
//     model, trainLoader, evalLoaders: { test: testLoader },
//     forward: (b) => model.forward(b.x),
//     loss: (out, b) => nn.crossEntropyPerSample(out, b.y),
//     metrics: { accuracy: accuracy((b) => b.y), top5: topKAccuracy(5, (b) => b.y) },
//   });
import type { BaseBatch, DataLoader } from '../data/index.js';
import type { Module } from '../nn/index.js';
import type { Device, Tensor } from '../tensor/index.js';
import { eachEvalBatch } from './evaluate.js';
import { meanMetric, type Metric } from './metrics.js';
import type { Task } from './task.js';

export interface SupervisedTaskInit<B extends BaseBatch> {
  /** The task's name in logs (default 'custom'). */
  name?: string;
  model: Module;
  trainLoader: DataLoader<B>;
  /** Evaluated after every epoch, by name ('val', 'test'). */
  evalLoaders?: Record<string, DataLoader<B>>;
  /** The model's output for a batch (class scores, say); the batch's tensors are yours to move. */
  forward(batch: B): Tensor;
  /**
   * Per-sample losses [B] from the output, attached to the graph; their mean is what first-order
   * rules descend, and the natural-gradient methods need them one per sample.
   */
  loss(output: Tensor, batch: B): Tensor;
  /** Metrics reported beside `loss` (the mean per-sample loss) by `evaluate`. */
  metrics?: Record<string, Metric<B>>;
  /** The headline metric, reported again as `metric`: a key of `metrics`, or 'loss' (default: the first metric). */
  metric?: string;
  /** Where the model lives (default 'cpu'); informational, `forward` moves the batches. */
  device?: Device;
}

/** A Task from your own model, data, per-sample loss and metrics. `dispose()` frees the model only. */
export function supervisedTask<B extends BaseBatch>(init: SupervisedTaskInit<B>): Task<B> {
  const metrics = init.metrics ?? {};
  if ('loss' in metrics) throw new Error("supervisedTask: 'loss' is reported always; name your metric otherwise");
  const headline = init.metric ?? Object.keys(metrics)[0] ?? 'loss';
  if (headline !== 'loss' && !(headline in metrics)) {
    throw new Error(`supervisedTask: metric '${headline}' is not one of the metrics (${['loss', ...Object.keys(metrics)].join(', ')})`);
  }
  for (const k of ['forward', 'loss'] as const) {
    if (typeof init[k] !== 'function') throw new TypeError(`supervisedTask: '${k}' must be a function`);
  }
  const model = init.model;
  return {
    name: init.name ?? 'custom',
    model,
    device: init.device ?? 'cpu',
    trainLoader: init.trainLoader,
    evalLoaders: init.evalLoaders ?? {},
    metric: headline,
    perSampleLoss: (batch) => init.loss(init.forward(batch), batch),
    evaluate(loader, onBatch) {
      const all: Record<string, Metric<B>> = { loss: meanMetric<B>((out, b) => init.loss(out, b)), ...metrics };
      for (const m of Object.values(all)) m.reset();
      eachEvalBatch(model, loader, (b) => {
        const out = init.forward(b);
        for (const m of Object.values(all)) m.update(out, b);
      }, onBatch);
      const res: Record<string, number> = {};
      for (const [k, m] of Object.entries(all)) res[k] = m.compute();
      res.metric = res[headline]!;
      return res;
    },
    dispose: () => model.dispose(),
  };
}
