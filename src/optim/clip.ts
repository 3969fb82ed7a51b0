// Gradient clipping, as torch.nn.utils.clip_grad_norm_: every gradient scaled by one factor so that
// their joint norm is at most maxNorm. Use it in a gradient hook, so that it sees the direction the
// method wrote (NGD's, FNGD's, KFAC's, or the plain gradient) just before the rule applies it:
//   opt.addGradientHook((params) => clipGradNorm(params, 1.0));
import { callOp, noGrad, scope, stack, type Tensor } from '../tensor/index.js';

export interface ClipGradNormOptions {
  /** The p of the p-norm (default 2; Infinity for the largest absolute entry). */
  normType?: number;
  /** Throw when the total norm is NaN or infinite instead of scaling by it (default false, as PyTorch). */
  errorIfNonfinite?: boolean;
}

/**
 * Scales the `.grad` of `params` in place so that their total norm (the norm of all gradients
 * stacked) is at most `maxNorm`: factor maxNorm / (total + 1e-6), applied only when below 1.
 * Parameters without `.grad` are skipped. Returns the total norm before clipping.
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number, o: ClipGradNormOptions = {}): number {
  const normType = o.normType ?? 2;
  if (!(typeof maxNorm === 'number' && maxNorm >= 0 && Number.isFinite(maxNorm))) {
    throw new RangeError(`clipGradNorm: maxNorm must be a finite number >= 0, got ${String(maxNorm)}`);
  }
  if (!(typeof normType === 'number' && normType > 0)) throw new RangeError(`clipGradNorm: normType must be > 0, got ${String(normType)}`);
  return noGrad(() => scope(() => {
    const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
    if (grads.length === 0) return 0;
    // Each gradient's norm is taken in float64 on its device (no float32 rounding of the sum); the
    // stacked norms (on the first gradient's device) give the total with one read back to JS.
    const device = grads[0]!.device;
    const norms = stack(grads.map((g) => (callOp('aten::linalg_vector_norm', g, normType, null, false, 'float64') as Tensor).to({ device })));
    const total = (callOp('aten::linalg_vector_norm', norms, normType) as Tensor).item();
    if (!Number.isFinite(total) && o.errorIfNonfinite) {
      throw new Error(`clipGradNorm: the total ${normType}-norm of the gradients is ${total}`);
    }
    const coef = maxNorm / (total + 1e-6);
    if (coef < 1) for (const g of grads) g.mul_(coef);
    return total;
  }));
}
