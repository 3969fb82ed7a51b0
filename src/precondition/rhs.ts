// The right-hand side part of a sample-space rule: alpha_g = (K_g + shift_g I)^-1 r.
//   ones     the empirical Fisher's natural gradient (NGD, FNGD.md section 1)
//   ief      iEF (Wu, Yu, Zhang, Woodland 2024, Eq. 8): r_i = ||d l_i / d z_i||^2 over all of sample
//            i's logits (every token of a sequence). The empirical Fisher weighs sample i by the
//            inverse of its gradient's scale ("inversely-scaled projection"); this right-hand side
//            undoes it: undamped, d is the minimum-norm solution of U diag(r)^-1 U^T d = U 1.
//   uniform  SGD's 1/B: with the identity solver, alpha is exactly SGD's (the engine's own SGD).
// The logits are the output of the model's output layer: the last covered layer to run in the
// forward, unless `outputLayer` names another. Its per-sample output gradients are in the capture
// already, so iEF's right-hand side costs one pass over them. For a sequence model the output layer
// runs at every position, and the sum covers all of sample i's token logits (the seq2seq Transformer:
// 'generator', which runs last); positions whose loss is ignored (PAD targets, ignore_index) have an
// output gradient of exactly 0 and add nothing (test/sequence.test.ts checks both against brute force).
import type { Capture } from '../curvature/index.js';
import { full, type Tensor } from '../tensor/index.js';

export type RightHandSide = 'ones' | 'ief' | 'uniform';
export const RIGHT_HAND_SIDES: readonly RightHandSide[] = ['ones', 'ief', 'uniform'];

/** The right-hand side, float64 [groups, B] (the same row for every group). */
export function rightHandSide(kind: RightHandSide, cap: Capture, groups: number, outputLayer: string | null): Tensor {
  const b = cap.batchSize;
  const device = cap.layers[0]?.params[0].device ?? 'cpu';
  switch (kind) {
    case 'ones':
      return full([groups, b], 1, { dtype: 'float64', device });
    case 'uniform':
      return full([groups, b], 1 / b, { dtype: 'float64', device });
    case 'ief': {
      const name = outputLayer ?? cap.layers[cap.layers.length - 1]?.name;
      if (name === undefined) throw new Error('iEF: no covered layer took part in this batch (its logits give the right-hand side)');
      return cap.outputGradSqNorms(name).to({ dtype: 'float64' }).unsqueeze(0).expand(groups, b);
    }
    default:
      throw new RangeError(`unknown right-hand side '${String(kind)}' (use one of ${RIGHT_HAND_SIDES.join(', ')})`);
  }
}
