// What the trainer trains: a model, its data, its per-sample loss and its evaluation metric.
import type { BaseBatch, DataLoader } from '../data/index.js';
import type { Module } from '../nn/index.js';
import type { Device, Tensor } from '../tensor/index.js';
import type { OnEvalBatch } from './evaluate.js';

export interface Task<B extends BaseBatch = BaseBatch> {
  /** e.g. 'mnist-mlp'. */
  readonly name: string;
  readonly model: Module;
  /** Where the model lives; the task moves each batch there. */
  readonly device: Device;
  readonly trainLoader: DataLoader<B>;
  /** Evaluation sets by name ('val', 'test'); evaluated after every epoch. */
  readonly evalLoaders: Record<string, DataLoader<B>>;
  /**
   * The headline metric `evaluate` reports (also as `metric`) and targets refer to: 'accuracy' in
   * [0,1] and 'bleu' in [0,100] for the built-in tasks, any name for yours (`supervisedTask`).
   */
  readonly metric: string;
  /**
   * What turns raw data into the model's inputs and its outputs into results, where the data made
   * it (the Transformer's vocabularies): JSON saved in every checkpoint, so the model can be used
   * without its training data (`fngd eval`, `fngd translate`).
   */
  readonly preprocessing?: Record<string, unknown>;
  /**
   * The forward pass in training mode: per-sample losses [B], attached to the graph. Their mean is
   * the loss a first-order optimizer descends.
   */
  perSampleLoss(batch: B): Tensor;
  /**
   * Metrics over a whole loader, in eval mode without autograd; always includes `loss` and `metric`.
   * `onBatch`, when given, is told the batches done after each (the trainer's and `fngd eval`'s progress bars).
   */
  evaluate(loader: DataLoader<B>, onBatch?: OnEvalBatch): Record<string, number>;
  /** Frees the model and the data. */
  dispose(): void;
}
