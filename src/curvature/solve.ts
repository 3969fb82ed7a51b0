// The coefficient solve of NGD and its relatives (FNGD.md sections 1 and 5):
//   alpha = (K + lambda B I)^-1 r,   K a B x B per-sample Gram, r = 1 (NGD) or another right-hand side.
// Policy: always float64; Cholesky first without jitter; if it fails (K + lambda B I not numerically
// positive definite: lambda = 0 with duplicate samples, or roundoff), retry with jitter added to the
// diagonal, starting at 1e-12 times the mean diagonal and growing 100x per try. A non-finite K,
// lambda or rhs is rejected up front; a result that is not finite is treated as a failed try; after
// `maxTries` failures the solve throws. It never returns NaN. (With lambda = 0 and a singular K the
// jittered solve is finite but may be large: alpha ~ 1/jitter along K's null space.)
import { choleskyEx, choleskySolve } from '../tensor/linalg.js';
import { callOp, convertedTo, eye, noGrad, ones, scope, stack, type Tensor } from '../tensor/index.js';

export interface SolveOptions {
  /** Right-hand side [B] or [B, m] (default: ones [B]). */
  rhs?: Tensor;
  /** Cholesky attempts, the first without jitter (default 8). */
  maxTries?: number;
  /** First jitter relative to the mean of diag(K + lambda B I) (default 1e-12); x100 per retry. */
  jitter?: number;
}

export interface SolveResult {
  /** float64, shaped like the right-hand side. */
  alpha: Tensor;
  /** The absolute jitter that was added to the diagonal (0 when the first try succeeded). */
  jitter: number;
  tries: number;
}

/** alpha = (K + lambda B I)^-1 rhs in float64 (B = K's size). See the policy at the top of this file. */
export function solveCoefficients(K: Tensor, lambda: number, o: SolveOptions = {}): Tensor {
  return solveCoefficientsEx(K, lambda, o).alpha;
}

/** `solveCoefficients`, also reporting the jitter that was needed. */
export function solveCoefficientsEx(K: Tensor, lambda: number, o: SolveOptions = {}): SolveResult {
  const maxTries = o.maxTries ?? 8;
  const jitter0 = o.jitter ?? 1e-12;
  if (K.dim !== 2 || K.size(0) !== K.size(1)) throw new RangeError(`solveCoefficients: K must be square [B, B], got [${K.shape}]`);
  if (!Number.isFinite(lambda) || lambda < 0) throw new RangeError(`solveCoefficients: lambda must be a finite number >= 0, got ${lambda}`);
  if (!Number.isInteger(maxTries) || maxTries < 1) throw new RangeError(`solveCoefficients: maxTries must be a positive integer, got ${maxTries}`);
  if (!(jitter0 > 0 && Number.isFinite(jitter0))) throw new RangeError(`solveCoefficients: jitter must be a finite number > 0, got ${jitter0}`);
  const b = K.size(0);
  const dev = K.device;
  return noGrad(() => scope(() => {
    const M = K.detach().to({ dtype: 'float64', device: dev }).add(eye(b, { dtype: 'float64', device: dev }).mul(lambda * b));
    const r = o.rhs === undefined ? ones([b], { dtype: 'float64', device: dev }) : o.rhs.detach().to({ dtype: 'float64', device: dev });
    if (r.size(0) !== b || r.dim > 2) throw new RangeError(`solveCoefficients: rhs must be [${b}] or [${b}, m], got [${r.shape}]`);
    if (!allFinite(M)) throw new Error(`solveCoefficients: K (${b} x ${b}) or lambda has NaN or infinite entries; refusing to solve`);
    if (!allFinite(r)) throw new Error('solveCoefficients: the right-hand side has NaN or infinite entries');
    const r2 = r.dim === 1 ? r.unsqueeze(1) : r;
    const meanDiag = M.diagonal().abs().mean().item();
    const scale = meanDiag > 0 ? meanDiag : 1; // K = 0 with lambda = 0: absolute jitter
    let jitter = 0;
    for (let tries = 1; tries <= maxTries; tries++) {
      if (tries === 2) jitter = jitter0 * scale;
      else if (tries > 2) jitter *= 100;
      const x = scope(() => {
        const { L, info } = choleskyEx(jitter === 0 ? M : M.add(eye(b, { dtype: 'float64', device: dev }).mul(jitter)));
        if (info.item() !== 0) return null;
        const sol = choleskySolve(r2, L);
        return allFinite(sol) ? sol : null;
      });
      if (x !== null) return { alpha: r.dim === 1 ? x.squeeze(1) : x, jitter, tries };
    }
    throw new Error(
      `solveCoefficients: Cholesky of K + lambda B I (B = ${b}, lambda = ${lambda}) failed ${maxTries} times, `
      + `the last with jitter ${jitter.toExponential(2)}; K is far from positive semi-definite`,
    );
  }));
}

/**
 * One solve per group for a stack of Grams K [G, B, B] (NGD's layers), with per-group shifts
 * `shift` [G] added to the diagonals (lambda B of each group): alpha [G, B] = (K_g + shift_g I)^-1 r_g,
 * r = `rhs` [G, B] (default ones: NGD's).
 * The fast path is one batched Cholesky and one batched triangular solve with a single check at the
 * end (no host round trip per group); a group whose factorization fails or whose result is not
 * finite is solved again by `solveCoefficientsEx`, with its jitter retries and error messages.
 */
export function solveCoefficientsBatched(K: Tensor, shift: Tensor, o: SolveOptions = {}): { alpha: Tensor; jitter: number } {
  if (K.dim !== 3 || K.size(1) !== K.size(2)) throw new RangeError(`solveCoefficientsBatched: K must be [G, B, B], got [${K.shape}]`);
  const [g, b] = [K.size(0), K.size(1)];
  if (shift.dim !== 1 || shift.size(0) !== g) throw new RangeError(`solveCoefficientsBatched: shift must be [${g}], got [${shift.shape}]`);
  const dev = K.device;
  return noGrad(() => scope(() => {
    // Under noGrad nothing records a graph: no detach. Float64 inputs on K's device are used as they
    // are (the Grams are): each cast is an op call, and a step's solve is made of small ones.
    const K64 = convertedTo(K, 'float64', dev);
    const s64 = convertedTo(shift, 'float64', dev);
    // A copy even when K64 is one already: the fallback below solves from the unshifted K64.
    const M = K64.clone();
    M.diagonal(0, 1, 2).add_(s64.unsqueeze(1));
    const r = o.rhs === undefined ? ones([g, b], { dtype: 'float64', device: dev }) : convertedTo(o.rhs, 'float64', dev);
    if (r.dim !== 2 || r.size(0) !== g || r.size(1) !== b) throw new RangeError(`solveCoefficientsBatched: rhs must be [${g}, ${b}], got [${r.shape}]`);
    const { L, info } = choleskyEx(M);
    const x = choleskySolve(r.unsqueeze(2), L).squeeze(2);
    // Per group: a factorization that succeeded, finite coefficients, and every entry of K, the shift
    // and r finite (Cholesky reads one triangle only; a sum is finite iff every entry is, barring
    // overflow; M holds K and the shift).
    const ok = callOp('aten::logical_and', info.eq(0), x.sum(1).add(M.sum([1, 2])).add(r.sum(1)).isfinite()) as Tensor;
    if ((callOp('aten::all', ok) as Tensor).item()) return { alpha: x, jitter: 0 };
    const flags = ok.to({ dtype: 'uint8', device: 'cpu' }).data() as Uint8Array;
    const shifts = s64.to({ device: 'cpu' }).data() as Float64Array;
    let jitter = 0;
    const rows = Array.from({ length: g }, (_, i) => {
      if (flags[i]) return x.select(0, i);
      // shift = lambda B: hand solveCoefficientsEx the lambda that gives it.
      const one = solveCoefficientsEx(K64.select(0, i), shifts[i]! / b, { ...o, rhs: r.select(0, i) });
      jitter = Math.max(jitter, one.jitter);
      return one.alpha;
    });
    return { alpha: stack(rows), jitter };
  }));
}

function allFinite(t: Tensor): boolean {
  return scope(() => (callOp('aten::all', t.isfinite()) as Tensor).item() !== 0);
}
