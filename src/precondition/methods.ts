// The methods, each a configuration of parts (sample-space.ts, kfac.ts). A method returns a
// preconditioner; give it to any first-order rule:
//   new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, preconditioner: fngd(model, { numSamples: 60000 }) })
//   new AdamW(model.parameters(), { lr: 1e-3, preconditioner: ief(model) })
//
//   ngd        alpha = (K + lambda B I)^-1 1, every step                 (empirical-Fisher NGD)
//   fngd       ngd's coefficients solved in epoch 0, stored, reused      (the paper's FNGD)
//   ief        alpha = (K + lambda B I)^-1 s, s_i = ||d l_i / d z_i||^2   (Wu et al. 2024)
//   fast-ief   ief's coefficients through FNGD's store                   (no public code has this)
//   thermo-ngd ngd's system solved by a simulated analog OU process       (Donatella et al. 2024)
//   kfac       Kronecker factors from the same capture                   (Martens & Grosse 2015)
import type { Module } from '../nn/module.js';
import { definedOnly } from '../optim/optimizer.js';
import { KfacPreconditioner, type KfacOptions } from './kfac.js';
import type { ReuseOptions } from './reuse.js';
import { SampleSpacePreconditioner, type SampleSpaceOptions } from './sample-space.js';
import { identitySolver } from './solver.js';
import { thermodynamicSolver, type ThermodynamicOptions } from './thermodynamic.js';

/** The options every sample-space method shares (damping, groups, normalization, engine). */
export type SampleSpaceMethodOptions = Omit<SampleSpaceOptions, 'rhs' | 'solver' | 'reuse' | 'outputLayer'>;
/** FNGD's store options, flat beside the rest; sample keying needs the dataset's length. */
export type StoreOptions = ReuseOptions & ({ key?: 'sample'; numSamples: number } | { key: 'slot'; batchesPerEpoch: number });

const REUSE_KEYS = ['key', 'numSamples', 'batchesPerEpoch', 'batchSize', 'refreshEvery', 'probeEvery', 'probeThreshold'] as const;

/** Splits the store's options from the rest. */
function withStore<T extends object>(o: T & ReuseOptions): { rest: Omit<T, keyof ReuseOptions>; reuse: ReuseOptions } {
  const reuse: Record<string, unknown> = {};
  const rest: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) ((REUSE_KEYS as readonly string[]).includes(k) ? reuse : rest)[k] = v;
  return { rest: rest as Omit<T, keyof ReuseOptions>, reuse: reuse as ReuseOptions };
}

/** Exact damped empirical-Fisher NGD every step. */
export function ngd(model: Module, o: SampleSpaceMethodOptions = {}): SampleSpacePreconditioner {
  return new SampleSpacePreconditioner(model, { ...o, rhs: 'ones', name: 'ngd', label: 'NGD' });
}

/** FNGD: NGD in solve epochs (epoch 0, refreshes), its stored coefficients reused in the others. */
export function fngd(model: Module, o: SampleSpaceMethodOptions & StoreOptions): SampleSpacePreconditioner {
  const { rest, reuse } = withStore(o);
  return new SampleSpacePreconditioner(model, { ...rest, rhs: 'ones', reuse, name: 'fngd', label: 'FNGD' });
}

/** iEF's own defaults: light damping and the raw solution (registry.ts says why). */
const IEF_DEFAULTS = { damping: 0.1, normalize: 'none' as const };

/** iEF every step; `outputLayer` names the logits' layer (default: the last covered layer to run). */
export function ief(model: Module, o: SampleSpaceMethodOptions & { outputLayer?: string } = {}): SampleSpacePreconditioner {
  return new SampleSpacePreconditioner(model, { ...IEF_DEFAULTS, ...definedOnly(o), rhs: 'ief', name: 'ief', label: 'iEF' });
}

/** Fast iEF: iEF's coefficients solved in solve epochs and reused, as FNGD reuses NGD's. */
export function fastIef(model: Module, o: SampleSpaceMethodOptions & { outputLayer?: string } & StoreOptions): SampleSpacePreconditioner {
  const { rest, reuse } = withStore(o);
  return new SampleSpacePreconditioner(model, { ...IEF_DEFAULTS, ...definedOnly(rest), rhs: 'ief', reuse, name: 'fast-ief', label: 'fast iEF' });
}

/**
 * Thermodynamic NGD, simulated: NGD's system solved by the analog solver's digital twin
 * (thermodynamic.ts: t, dt, kappa0, warm start, seed). t = 0 is SGD's direction, t -> infinity NGD's.
 */
export function thermodynamicNgd(model: Module, o: SampleSpaceMethodOptions & ThermodynamicOptions = {}): SampleSpacePreconditioner {
  const { t, dt, kappa0, seed, tau, warmStart, ...rest } = o;
  return new SampleSpacePreconditioner(model, { ...rest, rhs: 'ones', solver: thermodynamicSolver({ t, dt, kappa0, seed, tau, warmStart }), name: 'thermo-ngd', label: 'thermodynamic NGD' });
}

/** SGD's direction through the per-sample engine (alpha = 1/B): what a reuse step costs without its coefficients. */
export function engineSgd(model: Module, o: Pick<SampleSpaceOptions, 'curvature'> = {}): SampleSpacePreconditioner {
  return new SampleSpacePreconditioner(model, { ...o, rhs: 'uniform', solver: identitySolver(), normalize: 'none', name: 'engine-sgd', label: 'engine SGD' });
}

/** K-FAC from the same per-sample capture. */
export function kfac(model: Module, o: KfacOptions = {}): KfacPreconditioner {
  return new KfacPreconditioner(model, o);
}
