// How close an update direction comes to exact natural gradient: the iEF paper's approximation-
// quality measure (Wu et al. 2024; FNGD.md section 9). For a direction d (the step is -lr d) and the
// mean-loss gradient g = grad L, L = (1/B) sum_i l_i,
//
//   gamma(d) = sqrt(d^T F d) / |d^T g|
//
// with F the exact Fisher. For softmax cross-entropy it equals the generalized Gauss-Newton
//
//   F = (1/B) sum_i sum_t w_it J_it^T H_it J_it,   H = diag(p) - p p^T,   p = softmax(z_it),
//
// z_it the logits of sample i at position t (one position for classification, every token for a
// sequence model), J_it = dz_it/dtheta and w_it a row weight (1, or 0 for padding). H is the Hessian
// of cross-entropy in the logits whatever the target, so label smoothing changes nothing here.
// gamma is scale-free, and exact NGD, d = F^+ g, minimizes it: by Cauchy-Schwarz in F's inner
// product, (d^T g)^2 = (d^T F F^+ g)^2 <= (d^T F d)(g^T F^+ g), and g lies in F's range for
// cross-entropy (p - y sums to zero, so it lies in H's range). Damped NGD, (F + lambda I)^-1 g, moves
// monotonically from SGD's gamma (lambda -> inf) to that minimum (lambda -> 0). We report
// gamma(d) / gamma(g): below 1 is closer to NGD than SGD is.
//
// Method: never a dense F. d^T F d = (1/B) sum_rows w_r (J_r d)^T H_r (J_r d), and J d, a
// Jacobian-vector product over the whole parameter list, comes from the double-backward trick: with a
// dummy u shaped like the logits, v(u) = grad(z, params, gradOutputs u, createGraph) = J^T u is linear
// in u, so J d = grad(sum_p <v_p(u), d_p>, u). Cost: one backward with createGraph (J^T u, recorded
// as a graph; shared by every direction of a call), then one backward through that graph per
// direction (the JVP): two extra backward passes for one direction, three for approximationQuality
// (d and g), plus O(rows x classes) for the quadratic form. Memory: the recorded backward graph,
// comparable to the forward's, freed when the call returns. The quadratic form is accumulated in
// float64 in its centred form, sum_c p_c (Jd_c - <p, Jd>)^2, which, unlike sum p Jd^2 - <p, Jd>^2,
// cannot come out negative.
//
// Graph lifetime: the caller's logits graph is kept (every backward here retains it), so the loss
// can still be backpropagated afterwards; it is freed with its tensors, as usual. Nothing here
// touches `.grad`. Works inside `noGrad` (grad mode is switched on for the call).
import { enableGrad, grad, noGrad, scope, zerosLike, type Tensor } from '../tensor/index.js';

export interface FisherQuadraticOptions {
  /** Logits [N, C] or [B, T, C] (classes last), still attached to the graph that made them from `params`. */
  logits: Tensor;
  /** The parameters the Fisher is taken over, in the order of the direction's entries. */
  params: Tensor[];
  /** One entry per parameter, shaped like it; null means zero along that parameter. */
  direction: (Tensor | null)[];
  /** B in F's 1/B: the number of samples of the mean loss (default logits.size(0)). */
  batchSize?: number;
  /** Row weights, the logits' shape without the class dimension: 0 for padding (default all 1); a bool mask works. */
  rowWeights?: Tensor;
}

export interface QualityOptions extends FisherQuadraticOptions {
  /** The mean-loss gradient grad L, one entry per parameter (null: zero). */
  gradient: (Tensor | null)[];
}

export interface Quality {
  /** gamma(d) = sqrt(d^T F d) / |d^T g|; Infinity when d^T g = 0 (no first-order decrease at all). */
  gamma: number;
  /** gamma of the gradient itself, SGD's direction. */
  gammaGradient: number;
  /** gamma / gammaGradient: below 1 is better than SGD, its minimum is exact NGD's. */
  ratio: number;
  /** d^T F d. */
  dFd: number;
  /** d^T g, signed: positive for a descent direction under the step -lr d. */
  dDotGrad: number;
}

/** d^T F d for the cross-entropy Fisher over `params` (see the top of this file). */
export function fisherQuadratic(o: FisherQuadraticOptions): number {
  const c = check(o, 'fisherQuadratic');
  checkVector(o.direction, o.params, 'fisherQuadratic', 'direction');
  return quadratics(c, [o.direction])[0]!;
}

/**
 * gamma(d), gamma(g) and their ratio, with d^T F d and d^T g. Three extra backward passes (one
 * builds J^T u, one JVP each for d and g). Throws when gamma(g) is undefined: a zero gradient, or a
 * Fisher that vanishes along it (saturated softmax, or row weights that disagree with the loss).
 */
export function approximationQuality(o: QualityOptions): Quality {
  const c = check(o, 'approximationQuality');
  checkVector(o.direction, o.params, 'approximationQuality', 'direction');
  checkVector(o.gradient, o.params, 'approximationQuality', 'gradient');
  const gg = dot(o.gradient, o.gradient);
  if (!(gg > 0)) throw new RangeError('approximationQuality: gradient is zero, so gamma is undefined (a stationary batch)');
  const dDotGrad = dot(o.direction, o.gradient);
  const [dFd, gFg] = quadratics(c, [o.direction, o.gradient]) as [number, number];
  if (!(gFg > 0)) {
    throw new RangeError('approximationQuality: the Fisher vanishes along the gradient (saturated softmax, or rowWeights that zero rows the loss counts), so gamma is undefined');
  }
  const gammaGradient = Math.sqrt(gFg) / gg;
  const gamma = dDotGrad === 0 ? Infinity : Math.sqrt(dFd) / Math.abs(dDotGrad);
  return { gamma, gammaGradient, ratio: gamma / gammaGradient, dFd, dDotGrad };
}

interface Checked {
  fn: string;
  logits: Tensor;
  params: Tensor[];
  batchSize: number;
  rowWeights: Tensor | null;
}

function check(o: FisherQuadraticOptions, fn: string): Checked {
  const z = o.logits;
  if (z.dim < 2) throw new RangeError(`${fn}: logits must be [N, C] or [B, T, C] (classes last), got [${z.shape}]`);
  if (!z.requiresGrad || z.isLeaf) {
    throw new Error(`${fn}: logits are not attached to an autograd graph (made under noGrad, detached, or a leaf); pass the forward's output`);
  }
  if (!Array.isArray(o.params) || o.params.length === 0) throw new RangeError(`${fn}: params must be a non-empty array`);
  o.params.forEach((p, k) => {
    if (!p.requiresGrad) throw new Error(`${fn}: params[${k}] does not require grad`);
  });
  const batchSize = o.batchSize ?? z.size(0);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`${fn}: batchSize must be a positive integer, got ${batchSize}`);
  const w = o.rowWeights ?? null;
  if (w !== null) {
    const want = z.shape.slice(0, -1);
    const got = w.shape;
    if (got.length !== want.length || got.some((d, i) => d !== want[i])) {
      throw new RangeError(`${fn}: rowWeights must have the logits' shape without the class dimension, [${want}], got [${got}]`);
    }
    // Negative weights would make F indefinite and gamma NaN.
    const ok = noGrad(() => scope(() => {
      const wd = w.double();
      return wd.isfinite().all().item() !== 0 && (wd.numel === 0 || wd.min().item() >= 0);
    }));
    if (!ok) throw new RangeError(`${fn}: rowWeights must be finite and >= 0`);
  }
  return { fn, logits: z, params: o.params, batchSize, rowWeights: w };
}

function checkVector(v: (Tensor | null)[], params: Tensor[], fn: string, what: string): void {
  if (!Array.isArray(v) || v.length !== params.length) {
    throw new RangeError(`${fn}: ${what} has ${Array.isArray(v) ? v.length : 'no'} entries for ${params.length} params (one per parameter, null for zero)`);
  }
  v.forEach((t, k) => {
    if (t === null) return;
    const ps = params[k]!.shape;
    if (t.shape.length !== ps.length || t.shape.some((d, i) => d !== ps[i])) {
      throw new RangeError(`${fn}: ${what}[${k}] has shape [${t.shape}], params[${k}] has [${ps}]`);
    }
  });
}

/** sum_p <a_p, b_p> in float64 (null entries are zero). */
function dot(a: (Tensor | null)[], b: (Tensor | null)[]): number {
  return noGrad(() => scope(() => {
    let s = 0;
    a.forEach((x, k) => {
      const y = b[k];
      if (x !== null && y != null) s += x.double().mul(y.double()).sum().item();
    });
    return s;
  }));
}

/** d^T F d for each direction, sharing one J^T u graph. */
function quadratics(c: Checked, directions: (Tensor | null)[][]): number[] {
  if (directions.every((d) => d.every((t) => t === null))) return directions.map(() => 0);
  return enableGrad(() => scope(() => {
    const z = c.logits;
    const u = zerosLike(z).requiresGrad_();
    // retainGraph: the caller's forward graph must survive for their own backward.
    const v = grad(z, c.params, { gradOutputs: [u], createGraph: true, retainGraph: true, allowUnused: true });
    if (v.every((t) => t === null)) throw new Error(`${c.fn}: the logits depend on none of params`);
    const p = noGrad(() => z.detach().double().softmax(-1));
    const w = c.rowWeights === null ? null : c.rowWeights.double();
    return directions.map((d) => scope(() => {
      let s: Tensor | null = null;
      for (let k = 0; k < d.length; k++) {
        const dp = d[k];
        const vp = v[k];
        if (dp == null || vp == null) continue;
        // In v's dtype: a float64 direction against float32 parameters would promote the graph.
        const term = vp.mul(dp.detach().to(vp.dtype)).sum();
        s = s === null ? term : s.add(term);
      }
      if (s === null) return 0;
      const [jd] = grad(s, [u], { retainGraph: true, allowUnused: true });
      if (jd == null) return 0;
      return noGrad(() => {
        const j = jd.double();
        const centred = j.sub(p.mul(j).sum(-1, true));
        const q = p.mul(centred.square()).sum(-1);
        return (w === null ? q : q.mul(w)).sum().item() / c.batchSize;
      });
    }));
  }));
}
