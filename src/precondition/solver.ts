// The solver part of a sample-space rule: given the stacked Grams of a batch, a diagonal shift
// per group and a right-hand side per group, return the coefficients
//   alpha_g = (K_g + shift_g I)^-1 rhs_g          (float64 [G, B])
// Cholesky is exact (solve.ts: batched fast path, jittered robust fallback, never NaN); the
// thermodynamic solver (thermodynamic.ts) reaches the same alpha by simulating an analog
// Ornstein-Uhlenbeck process, and stops early on purpose (its time t interpolates SGD -> NGD).
import { solveCoefficientsBatched } from '../curvature/index.js';
import type { Tensor } from '../tensor/index.js';

export interface SolveInput {
  /** float64 [G, B, B]: one Gram per group (an empty [G, 0, 0] for a solver with `needsGram: false`). */
  K: Tensor;
  /** float64 [G]: the diagonal shift of each group (lambda B, or the relative damping's value). */
  shift: Tensor;
  /** float64 [G, B]: the right-hand side of each group. */
  rhs: Tensor;
}

export interface SolveOutput {
  /** float64 [G, B]. */
  alpha: Tensor;
  /** Numbers for the step's stats (e.g. jitter, simulated analog time). */
  stats: Record<string, number>;
}

/** JSON settings and state of a solver, saved in checkpoints. */
export interface SolverStateDict {
  tensors: Map<string, Tensor>;
  meta: unknown;
}

export interface CoefficientSolver {
  /** 'cholesky', 'thermodynamic', ... (state dicts check it). */
  readonly name: string;
  /** The solver's options as JSON (recorded in state dicts and reports). */
  readonly settings: Record<string, number | string | boolean>;
  /** False when alpha depends on the right-hand side alone: no Gram is built (default true). */
  readonly needsGram?: boolean;
  /**
   * Must throw on a system with NaN or infinite entries, never return a non-finite alpha: the
   * sample-space rule names overflowed gradients only when the solver refuses (sample-space.ts).
   */
  solve(input: SolveInput): SolveOutput;
  /** Copies the caller will own. */
  stateDict(): SolverStateDict;
  /** Restores what stateDict() saved (copy the tensors: the caller frees them). */
  loadStateDict(sd: SolverStateDict): void;
  dispose(): void;
}

/** Exact Cholesky solves, all groups in one batched call (solve.ts states the numerical policy). */
export function choleskySolver(): CoefficientSolver {
  return {
    name: 'cholesky',
    settings: {},
    solve: ({ K, shift, rhs }) => {
      const { alpha, jitter } = solveCoefficientsBatched(K, shift, { rhs });
      return { alpha, stats: { jitter } };
    },
    stateDict: () => ({ tensors: new Map(), meta: null }),
    loadStateDict: () => {},
    dispose: () => {},
  };
}

/** alpha = rhs, no system solved: with the uniform right-hand side, SGD's direction through the engine. */
export function identitySolver(): CoefficientSolver {
  return {
    name: 'identity',
    settings: {},
    needsGram: false,
    solve: ({ rhs }) => ({ alpha: rhs, stats: {} }),
    stateDict: () => ({ tensors: new Map(), meta: null }),
    loadStateDict: () => {},
    dispose: () => {},
  };
}
