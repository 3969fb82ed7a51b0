// Exact empirical-Fisher natural gradient (FNGD.md section 1), every step:
//   d = (F + lambda I)^-1 gbar = U alpha,   alpha = (K + lambda B I)^-1 1,   K = U^T U  (B x B)
// layer-wise (block-diagonal F: one K_l and alpha_l per layer; default) or global (K = sum_l K_l).
// The direction goes into .grad and SGD's rule (momentum, Nesterov, weight decay) takes it from
// there. Parameters the curvature engine does not cover (norm affine parameters, ...) get the plain
// mean-loss gradient; `coverage()` says which.
//
// Damping: 'absolute' uses lambda as given; 'relative' uses lambda * mean(diag K) / B, i.e. lambda
// relative to the average squared per-sample gradient norm, so one value suits every layer and
// every stage of training. Either decays by `dampingDecay` per epoch, down to `minDamping`.
// Scale: alpha ~ 1/(lambda B) for large lambda, so the raw NGD step has no SGD-like size.
// `normalize: 'sum'` (default) rescales each alpha to sum to 1 (SGD's alpha_i = 1/B sums to 1):
// the natural-gradient direction at SGD's step size, so SGD's learning rates carry over.
// 'none' keeps the exact damped NGD direction (F + lambda I)^-1 gbar.
import { CurvatureEngine, solveCoefficientsBatched, type Capture, type CurvatureOptions } from '../curvature/index.js';
import type { Module } from '../nn/module.js';
import { full, noGrad, scope, stack, type Tensor } from '../tensor/index.js';
import { checkOption, type StepInput, type StepStats } from './optimizer.js';
import { SGD, type SGDOptions } from './sgd.js';

export type NgdMode = 'layerwise' | 'global';
export type DampingMode = 'absolute' | 'relative';
export type Normalize = 'sum' | 'none';

export interface NGDOptions extends SGDOptions {
  /** lambda (default 1, relative). */
  damping?: number;
  dampingMode?: DampingMode;
  /** Multiply lambda by this after every epoch (default 1: constant). */
  dampingDecay?: number;
  /** The floor of the decayed lambda (default 0). */
  minDamping?: number;
  mode?: NgdMode;
  normalize?: Normalize;
  /** Curvature engine options (memory bound, Gram method, which layers). */
  curvature?: CurvatureOptions;
  /** Parameters to optimize (default: all of the model's). */
  params?: Tensor[];
}

/** One solve's coefficients: float64 [groups, B], groups = covered layers (layer-wise) or 1 (global). */
export interface Coefficients {
  alpha: Tensor;
  /** The layer each row belongs to (layer-wise), or ['*'] (global). */
  groups: string[];
}

export class NGD extends SGD {
  override readonly kind: string = 'NGD';
  readonly engine: CurvatureEngine;
  readonly damping: number;
  readonly dampingMode: DampingMode;
  readonly dampingDecay: number;
  readonly minDamping: number;
  readonly mode: NgdMode;
  readonly normalize: Normalize;
  #warnedB1 = false;

  constructor(model: Module, o: NGDOptions) {
    const { damping = 1, dampingMode = 'relative', dampingDecay = 1, minDamping = 0, mode = 'layerwise', normalize = 'sum', curvature, params, ...sgd } = o;
    super(params ?? model.parameters(), sgd);
    const owner = new.target.name;
    this.damping = checkOption(owner, 'damping', damping, { min: 0 });
    this.dampingDecay = checkOption(owner, 'dampingDecay', dampingDecay, { min: 0, max: 1, minExclusive: true });
    this.minDamping = checkOption(owner, 'minDamping', minDamping, { min: 0 });
    if (dampingMode !== 'absolute' && dampingMode !== 'relative') throw new RangeError(`${owner}: option 'dampingMode' must be 'absolute' or 'relative', got '${String(dampingMode)}'`);
    if (mode !== 'layerwise' && mode !== 'global') throw new RangeError(`${owner}: option 'mode' must be 'layerwise' or 'global', got '${String(mode)}'`);
    if (normalize !== 'sum' && normalize !== 'none') throw new RangeError(`${owner}: option 'normalize' must be 'sum' or 'none', got '${String(normalize)}'`);
    this.dampingMode = dampingMode;
    this.mode = mode;
    this.normalize = normalize;
    this.engine = new CurvatureEngine(model, curvature);
    if (this.engine.layers.length === 0) throw new Error(`${owner}: the model has no Linear, Conv2d or Embedding layer to precondition`);
  }

  /** Which parameters get the natural gradient and which the first-order fallback. */
  coverage(): { covered: string[]; uncovered: string[] } {
    return this.engine.coverage();
  }

  /** lambda at an epoch, before the relative scaling. */
  dampingAt(epoch: number): number {
    return Math.max(this.minDamping, this.damping * this.dampingDecay ** epoch);
  }

  protected override computeGradients(input: StepInput, loss: number): StepStats {
    const cap = this.engine.capture(input.perSampleLoss);
    const { alpha, groups, jitter } = this.solve(cap, input.epoch);
    this.writeDirection(cap, { alpha, groups });
    this.onCoefficients(input, { alpha, groups });
    return { loss, jitter };
  }

  /** NGD's coefficients for a captured batch: Grams, damping, Cholesky solves, normalization. */
  protected solve(cap: Capture, epoch: number): Coefficients & { jitter: number } {
    const b = cap.batchSize;
    if (b === 1 && !this.#warnedB1) {
      this.#warnedB1 = true;
      process.stderr.write(`${this.kind}: batch of 1 sample: the natural gradient is the plain gradient rescaled (alpha = 1/(K + lambda))\n`);
    }
    // The Grams are cached by the capture (the probe reads them again): made outside the scope.
    const grams = noGrad(() => (this.mode === 'global' ? [['*', cap.globalGram()] as const] : [...cap.grams()]));
    return noGrad(() => scope(() => {
      const lambda = this.dampingAt(epoch);
      const K = stack(grams.map(([, k]) => k));
      // The diagonal shift lambda B per group; relative damping scales lambda by mean(diag K_g) / B.
      const shift = this.dampingMode === 'relative'
        ? K.diagonal(0, 1, 2).mean(1).mul(lambda)
        : full([grams.length], lambda * b, { dtype: 'float64', device: K.device });
      const { alpha, jitter } = solveCoefficientsBatched(K, shift);
      const rows = this.normalize === 'sum' ? alpha.div(alpha.sum(1, true)) : alpha;
      return { alpha: rows, groups: grams.map(([name]) => name), jitter };
    }));
  }

  /**
   * .grad = sum_i alpha_i g_i: one alpha row per layer, or one row for every layer (global). The
   * batch's last use of the capture: it is consumed (output gradients scaled in place, then freed).
   */
  protected writeDirection(cap: Capture, c: Coefficients): void {
    // Global coefficients also go through the capture, although one backward of sum_i alpha_i l_i
    // (engine.writeGlobalWeightedGradients) gives the covered layers the same sum (up to BatchNorm's
    // coupling of samples): it would weight the uncovered parameters' gradients by alpha too, and an
    // FNGD reuse step would then no longer equal the NGD step it replays.
    if (c.groups.length === 1 && c.groups[0] === '*') {
      cap.writeWeightedGradients(c.alpha.select(0, 0), { consume: true });
    } else {
      const perLayer = new Map<string, Tensor>();
      c.groups.forEach((name, g) => perLayer.set(name, c.alpha.select(0, g)));
      cap.writeWeightedGradients(perLayer, { consume: true });
    }
  }

  /** Called with every freshly solved batch (FNGD stores them). */
  protected onCoefficients(_input: StepInput, _c: Coefficients): void {}

  override dispose(): void {
    this.engine.dispose();
    super.dispose();
  }
}
