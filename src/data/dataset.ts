// What a dataset is to the rest of fngd: a fixed number of samples held in memory, and one call
// that builds a whole batch from a list of sample indices with tensor operations.
import { Tensor, type Generator } from '../tensor/index.js';

export interface BatchOptions {
  /** Training mode: turns on the dataset's augmentation, if it has any. */
  train: boolean;
  /**
   * The random stream for augmentation. Without it augmentation draws from libtorch's global
   * stream (`manualSeed`), which a resumed run cannot replay; `DataLoader` always passes one.
   */
  generator?: Generator;
}

/** Every batch says which samples it holds. */
export interface BaseBatch {
  /** The dataset index of each sample, in batch order (FNGD keys per-sample state by these). */
  ids: Int32Array;
}

export interface Dataset<B extends BaseBatch = BaseBatch> {
  readonly length: number;
  /**
   * The batch of samples `indices` (each in [0, length)). Tensors are created in the current
   * `scope`; outside any scope the caller owns them (see `disposeBatch`).
   */
  batch(indices: Int32Array, opts: BatchOptions): B;
  /**
   * Optional per-sample sizes for length bucketing (e.g. sentence lengths): samples with close
   * keys are batched together when a `DataLoader` is asked to bucket.
   */
  readonly sortKeys?: ArrayLike<number>;
}

/** Image classification batch. */
export interface ImageBatch extends BaseBatch {
  /** float32 [B, C, H, W], normalized (and augmented in training mode). */
  x: Tensor;
  /** int64 [B], class indices. */
  y: Tensor;
}

/** Translation batch; every tensor is padded with PAD (= 0). */
export interface TranslationBatch extends BaseBatch {
  /** int64 [B, S]: source tokens (followed by EOS when the dataset was loaded with `srcEos`). */
  src: Tensor;
  /** int64 [B, T]: BOS then the target tokens (the decoder's input). */
  tgtIn: Tensor;
  /** int64 [B, T]: the target tokens then EOS (what the decoder must predict). */
  tgtOut: Tensor;
  /** Unpadded length of each `src` row. */
  srcLengths: Int32Array;
  /** Unpadded length of each `tgtIn` / `tgtOut` row (target tokens + 1). */
  tgtLengths: Int32Array;
  /** Number of non-PAD entries of `tgtOut` (the tokens a loss averages over). */
  numTgtTokens: number;
}

/**
 * Disposes every tensor held directly by a batch object. For batches made outside any `scope`;
 * a batch made inside a scope is freed by that scope instead.
 */
export function disposeBatch(batch: object): void {
  for (const v of Object.values(batch)) {
    if (v instanceof Tensor) v.dispose();
  }
}
