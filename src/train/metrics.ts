// Evaluation metrics beyond a task's built-in ones: accumulated batch by batch over an evaluation
// set, then computed once. A metric sees the model's output for a batch and the batch itself, so
// any batch type works; the built-ins are means over samples (accuracy, top-k accuracy, the loss,
// any per-sample value of yours).
import type { BaseBatch } from '../data/index.js';
import { noGrad, scope, type Tensor } from '../tensor/index.js';

/** A metric over a whole evaluation set. */
export interface Metric<B extends BaseBatch = BaseBatch> {
  /** Adds one batch (called under noGrad, inside a scope that frees `output` afterwards). */
  update(output: Tensor, batch: B): void;
  /** The value over every batch since the last `reset()`. */
  compute(): number;
  /** Forgets every batch (called before each evaluation). */
  reset(): void;
}

/**
 * The mean over samples of a per-sample value: `perSample(output, batch)` returns a tensor of
 * shape [B] (a correctness indicator, a loss, a distance, ...).
 */
export function meanMetric<B extends BaseBatch = BaseBatch>(perSample: (output: Tensor, batch: B) => Tensor): Metric<B> {
  let sum = 0;
  let count = 0;
  return {
    update(output, batch) {
      noGrad(() => scope(() => {
        const v = perSample(output, batch);
        if (v.dim !== 1) throw new Error(`meanMetric: the per-sample value must have shape [B], got [${v.shape}]`);
        sum += v.to('float64').sum().item();
        count += v.shape[0]!;
      }));
    },
    compute() {
      if (count === 0) throw new Error('meanMetric: no sample seen (an empty evaluation set?)');
      return sum / count;
    },
    reset() {
      sum = 0;
      count = 0;
    },
  };
}

/**
 * Top-k accuracy in [0, 1] of class scores [B, C] against integer labels [B] (`target` picks them
 * from the batch): the share of samples whose label is among the k highest scores.
 */
export function topKAccuracy<B extends BaseBatch = BaseBatch>(k: number, target: (batch: B) => Tensor): Metric<B> {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`topKAccuracy: k must be a positive integer, got ${k}`);
  return meanMetric<B>((output, batch) => {
    if (output.dim !== 2) throw new Error(`topKAccuracy: the output must be class scores [B, C], got [${output.shape}]`);
    if (k > output.shape[1]!) throw new RangeError(`topKAccuracy: k = ${k} is more than the ${output.shape[1]} classes`);
    const y = target(batch);
    const [, idx] = output.topk(k, 1);
    return idx.eq(y.to({ device: idx.device }).reshape([-1, 1])).to('float64').sum(1);
  });
}

/** Accuracy in [0, 1] of class scores [B, C] against integer labels [B] (top-1). */
export function accuracy<B extends BaseBatch = BaseBatch>(target: (batch: B) => Tensor): Metric<B> {
  return topKAccuracy(1, target);
}

/** The mean of per-sample losses [B] computed from the output (the task's loss, or another). */
export function lossMetric<B extends BaseBatch = BaseBatch>(perSampleLoss: (output: Tensor, batch: B) => Tensor): Metric<B> {
  return meanMetric(perSampleLoss);
}
