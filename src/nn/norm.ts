// BatchNorm2d and LayerNorm.
import { F, type Tensor } from '../tensor/index.js';
import { constantTensor, initTensor, type InitOptions } from './init.js';
import { Module } from './module.js';

export interface BatchNormOptions extends InitOptions {
  eps?: number;
  /** Running-average factor (default 0.1); null: cumulative average, factor 1/num_batches_tracked. */
  momentum?: number | null;
  /** Learnable weight (ones) and bias (zeros) (default true). */
  affine?: boolean;
  /** Keep running_mean/running_var/num_batches_tracked and use them in eval mode (default true). */
  trackRunningStats?: boolean;
}

/**
 * Batch normalization over [N, C, H, W], PyTorch semantics: training mode normalizes with the
 * (biased) batch statistics and updates running_mean/running_var in place (the variance with the
 * unbiased estimate) and counts num_batches_tracked; eval mode uses the running statistics.
 */
export class BatchNorm2d extends Module {
  readonly eps: number;
  readonly momentum: number | null;
  readonly trackRunningStats: boolean;

  constructor(readonly numFeatures: number, o: BatchNormOptions = {}) {
    super();
    this.eps = o.eps ?? 1e-5;
    this.momentum = o.momentum === undefined ? 0.1 : o.momentum;
    this.trackRunningStats = o.trackRunningStats ?? true;
    const affine = o.affine ?? true;
    this.registerParameter('weight', affine ? constantTensor([numFeatures], 1, o) : null);
    this.registerParameter('bias', affine ? constantTensor([numFeatures], 0, o) : null);
    if (this.trackRunningStats) {
      this.registerBuffer('running_mean', constantTensor([numFeatures], 0, o));
      this.registerBuffer('running_var', constantTensor([numFeatures], 1, o));
      this.registerBuffer('num_batches_tracked', initTensor([], { ...o, dtype: 'int64' }, (t) => t.zero_()));
    }
  }
  get weight(): Tensor | null { return this.optionalParam('weight'); }
  get bias(): Tensor | null { return this.optionalParam('bias'); }
  get runningMean(): Tensor { return this.buffer('running_mean'); }
  get runningVar(): Tensor { return this.buffer('running_var'); }
  get numBatchesTracked(): Tensor { return this.buffer('num_batches_tracked'); }

  forward(x: Tensor): Tensor {
    if (x.dim !== 4) throw new RangeError(`BatchNorm2d: expected a 4-D input [N, C, H, W], got [${x.shape}]`);
    let factor = this.momentum ?? 0;
    if (this.training) {
      const [n, , h, w] = x.shape as [number, number, number, number];
      if (n * h * w <= 1) throw new RangeError(`BatchNorm2d: expected more than 1 value per channel when training, got input [${x.shape}]`);
      if (this.trackRunningStats) {
        this.numBatchesTracked.add_(1);
        if (this.momentum === null) factor = 1 / this.numBatchesTracked.item();
      }
    }
    const stats = this.trackRunningStats;
    return F.batchNorm(x, stats ? this.runningMean : null, stats ? this.runningVar : null, this.weight, this.bias, {
      training: this.training || !stats, momentum: factor, eps: this.eps,
    });
  }
}

export interface LayerNormOptions extends InitOptions {
  eps?: number;
  /** Learnable weight (ones) and bias (zeros) (default true). */
  elementwiseAffine?: boolean;
}

/** Normalizes over the trailing `normalizedShape` dimensions (biased variance), like PyTorch. */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;

  constructor(normalizedShape: number | number[], o: LayerNormOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.eps = o.eps ?? 1e-5;
    const affine = o.elementwiseAffine ?? true;
    this.registerParameter('weight', affine ? constantTensor(this.normalizedShape, 1, o) : null);
    this.registerParameter('bias', affine ? constantTensor(this.normalizedShape, 0, o) : null);
  }
  get weight(): Tensor | null { return this.optionalParam('weight'); }
  get bias(): Tensor | null { return this.optionalParam('bias'); }

  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

