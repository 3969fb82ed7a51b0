// Cross-entropy with a per-sample view, the quantity natural-gradient methods are built on.
//
// Convention: a "sample" is one row of the batch. For classification, logits [B, C] and targets [B]
// give loss_i = CE(logits_i, target_i). For sequences, logits [B, T, V] and targets [B, T] give
// loss_i = the SUM over positions t of sample i whose target is not `ignoreIndex` (e.g. PAD) of
// CE(logits_it, target_it); ignored positions contribute exactly 0. More trailing dimensions work
// the same way (everything between the batch and the class dimension is summed).
import { F, type Tensor } from '../tensor/index.js';

export interface CrossEntropyOptions {
  labelSmoothing?: number;
  /** Targets equal to this contribute zero loss (default -100, as in PyTorch). */
  ignoreIndex?: number;
}

export type LossReduction = 'none' | 'sum' | 'mean' | 'tokenMean';

function flat(logits: Tensor, target: Tensor): { logits: Tensor; target: Tensor; b: number } {
  const ls = logits.shape;
  const ts = target.shape;
  if (ls.length < 2 || ts.length !== ls.length - 1 || ts.some((d, i) => d !== ls[i])) {
    throw new RangeError(`crossEntropy: logits [${ls}] need targets of shape [${ls.slice(0, -1)}] (classes last), got [${ts}]`);
  }
  if (ls.length === 2) return { logits, target, b: ls[0]! };
  const c = ls[ls.length - 1]!;
  return { logits: logits.reshape(-1, c), target: target.reshape(-1), b: ls[0]! };
}

/** The per-sample losses [B] (see the convention above). */
export function crossEntropyPerSample(logits: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor {
  const f = flat(logits, target);
  const l = F.crossEntropy(f.logits, f.target, { reduction: 'none', ignoreIndex: o.ignoreIndex, labelSmoothing: o.labelSmoothing });
  return logits.dim === 2 ? l : l.view(f.b, -1).sum(1);
}

/**
 * Reduced cross-entropy. 'none': the per-sample vector [B]; 'sum': its sum; 'mean' (default): its
 * mean over the B samples, i.e. L = (1/B) sum_i loss_i; 'tokenMean': the sum divided by the number
 * of non-ignored targets (PyTorch's F.cross_entropy 'mean'; equal to 'mean' for [B, C] logits
 * without ignored targets).
 */
export function crossEntropyLoss(logits: Tensor, target: Tensor, o: CrossEntropyOptions & { reduction?: LossReduction } = {}): Tensor {
  const r = o.reduction ?? 'mean';
  switch (r) {
    case 'none': return crossEntropyPerSample(logits, target, o);
    case 'sum': return crossEntropyPerSample(logits, target, o).sum();
    case 'mean': return crossEntropyPerSample(logits, target, o).mean();
    case 'tokenMean': {
      const f = flat(logits, target);
      return F.crossEntropy(f.logits, f.target, { reduction: 'mean', ignoreIndex: o.ignoreIndex, labelSmoothing: o.labelSmoothing });
    }
    default: throw new TypeError(`crossEntropyLoss: unknown reduction '${r as string}'`);
  }
}
