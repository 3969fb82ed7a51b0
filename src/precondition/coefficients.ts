// What a sample-space rule produces and its reuse part stores: one batch's coefficients, and which
// parameters share each row.
import type { Tensor } from '../tensor/index.js';

/** Which parameters share one alpha: every covered layer (global), or one row per named layer. */
export type CoefficientGroups = { kind: 'global' } | { kind: 'layerwise'; layers: string[] };

/** One batch's coefficients: [G, B] (float64 from a solve), G = groupCount(groups). */
export interface Coefficients {
  alpha: Tensor;
  groups: CoefficientGroups;
}

/** G, the rows of alpha: 1 (global) or the number of layers. */
export function groupCount(groups: CoefficientGroups): number {
  return groups.kind === 'global' ? 1 : groups.layers.length;
}
