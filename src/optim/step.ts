// What a training step hands to an optimizer and what it reports: shared by the first-order rules
// (optimizer.ts) and the preconditioners that write their directions (src/precondition).
import type { Tensor } from '../tensor/index.js';

/** What one training step hands to the optimizer. */
export interface StepInput {
  /** Per-sample losses, shape [B], still attached to the autograd graph. */
  perSampleLoss: Tensor;
  /** Dataset ids of the B samples (FNGD keys its stored coefficients by them). */
  sampleIds: Int32Array;
  /** The current epoch, counted from 0. */
  epoch: number;
  /** The batch's position in its epoch, from 0 (FNGD's slot-keyed store needs it; default 0). */
  batchIndex?: number;
}

/** What a step reports; `loss` is the mean of the per-sample losses. Methods may add numbers. */
export interface StepStats {
  loss: number;
  [key: string]: number;
}
