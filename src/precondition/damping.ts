// The damping part of a sample-space rule (FNGD.md section 5): the diagonal shift of each group's
// system (K_g + shift_g I) alpha_g = rhs_g.
//   absolute:  shift = lambda B                  (the damped Fisher F + lambda I of section 1)
//   relative:  shift = lambda mean(diag K_g)     (lambda relative to the mean squared per-sample
//              gradient norm, so one value suits every layer and every stage of training)
// lambda decays by `decay` per epoch down to `floor`.
import { full, type Tensor } from '../tensor/index.js';
import { checkChoice, checkOption } from '../optim/optimizer.js';

export type DampingMode = 'absolute' | 'relative';

export interface Damping {
  value: number;
  mode: DampingMode;
  decay: number;
  floor: number;
}

/** Checks each field, naming the option (`damping`, `dampingMode`, `dampingDecay`, `minDamping`). */
export function checkDamping(owner: string, d: Damping): Damping {
  checkOption(owner, 'damping', d.value, { min: 0 });
  checkChoice(owner, 'dampingMode', d.mode, ['absolute', 'relative']);
  checkOption(owner, 'dampingDecay', d.decay, { min: 0, max: 1, minExclusive: true });
  checkOption(owner, 'minDamping', d.floor, { min: 0 });
  return d;
}

/** lambda at an epoch (counted from 0), before the relative scaling. */
export function dampingAt(d: Damping, epoch: number): number {
  return Math.max(d.floor, d.value * d.decay ** epoch);
}

/** The shift of each group, float64 [G], for stacked Grams K [G, B, B]. */
export function diagonalShift(d: Damping, K: Tensor, epoch: number): Tensor {
  const lambda = dampingAt(d, epoch);
  const [g, b] = [K.size(0), K.size(1)];
  return d.mode === 'relative'
    ? K.diagonal(0, 1, 2).mean(1).mul(lambda)
    : full([g], lambda * b, { dtype: 'float64', device: K.device });
}
