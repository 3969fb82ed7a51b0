// The normalization part of a sample-space rule, on the coefficients [G, B] of one batch.
//   sum   each group's row rescaled to sum to 1. SGD's alpha_i = 1/B sums to 1: the direction comes
//         at SGD's step size, so SGD's learning rates carry over.
//   none  the exact damped solution ((F + lambda I)^-1 gbar for NGD).
// A row summing to <= 0 has no rescaling in its own direction (dividing would flip it or blow it
// up): it takes SGD's uniform 1/B, and the caller counts it. Solved rows of a positive definite
// system with a positive right-hand side always sum to > 0; the thermodynamic solver's noise and
// reused rows need the fallback: a reshuffled batch mixes samples of several solve batches, so its
// stored coefficients (mixed in sign at small damping) no longer sum to 1, or even to > 0.
// Two forms of the one rule: on a solved tensor (device ops), and on stored coefficients while
// they are still host numbers (FNGD's reuse step gathers them on the host: no op calls).
import type { Tensor } from '../tensor/index.js';

export type Normalize = 'sum' | 'none';
export const NORMALIZATIONS: readonly Normalize[] = ['sum', 'none'];

/** Solved coefficients [G, B] normalized; `uniformRows`: rows that took 1/B. */
export function normalizeSolved(alpha: Tensor, how: Normalize): { alpha: Tensor; uniformRows: number } {
  if (how === 'none') return { alpha, uniformRows: 0 };
  const sums = alpha.sum(1, true);
  const positive = sums.gt(0);
  const uniformRows = alpha.size(0) - positive.sum().item();
  if (uniformRows === 0) return { alpha: alpha.div(sums), uniformRows };
  return { alpha: alpha.div(sums).where(positive, 1 / alpha.size(1)), uniformRows };
}

/** Host coefficients (row-major [groups, B]) normalized in place; returns the rows that took 1/B. */
export function normalizeStored(values: Float64Array, groups: number, how: Normalize): number {
  if (how === 'none') return 0;
  const b = values.length / groups;
  let uniformRows = 0;
  for (let g = 0; g < groups; g++) {
    const row = values.subarray(g * b, (g + 1) * b);
    let s = 0;
    for (const v of row) s += v;
    if (!(s > 0)) uniformRows += 1;
    for (let j = 0; j < b; j++) row[j] = s > 0 ? row[j]! / s : 1 / b;
  }
  return uniformRows;
}
