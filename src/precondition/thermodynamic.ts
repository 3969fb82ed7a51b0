// The thermodynamic solver: a digital twin of thermodynamic NGD's analog linear solver (Donatella
// et al. 2024; FNGD.md sections 8 and 9), run in the dual (sample) space. For each group g it
// simulates the Ornstein-Uhlenbeck process
//   dx = -(A x - b) dt + sqrt(2 kappa0 dt) xi,   A = K_g + shift_g I,   b = rhs_g,   x = alpha_g,
// by Euler-Maruyama from time 0 to t with step dt, and returns x(t) (float64 [G, B]). Its equilibrium
// is N(A^-1 b, kappa0 A^-1): the mean is choleskySolver's answer, so this is a solver, not a model.
// Stopping at a finite t interpolates from the warm start (t = 0) to that answer (t -> infinity).
//
// Time unit. Analog hardware holds A in bounded conductances, so each group is rescaled by
// s_g = max_i sum_j |A_ij| (Gershgorin's bound on lambda_max(A)) and we simulate
//   dx = -(A x - b)/s dt + sqrt(2 kappa0 dt / s) xi,
// i.e. x_{n+1} = (I - dt A/s) x_n + dt b/s + sqrt(2 kappa0 dt / s) xi_n, xi_n ~ N(0, I).
// This only changes the unit of time: the equilibrium mean A^-1 b and covariance kappa0 A^-1 are
// unchanged, and since the eigenvalues of A/s lie in [0, 1] (A is positive semi-definite), dt < 2
// keeps the scheme stable whatever K's scale (1e-3 or 1e4). t and dt are in units of the hardware time constant tau, so a group's
// slowest mode decays like exp(-t lambda_min(A) / s): the condition number sets the time to NGD.
// Euler-Maruyama's mean is exact at equilibrium, but its stationary covariance is
// kappa0 A^-1 (I - dt A/(2s))^-1, an O(dt) bias (at most dt/(2 - dt) relatively).
//
// The paper runs these dynamics in parameter space with the GGN, warm-started at the gradient, with
// tau = RC = 1 us and, on MNIST, lr 0.01, lambda 0.01, t = 50 tau, dt = 0.1 tau (our defaults for
// t, dt and tau). Here the system is the B x B dual one of NGD's coefficient solve (FNGD.md
// section 1), so any sample-space rule (NGD, iEF, ...) can use it in place of Cholesky.
//
// Options (thermodynamicSolver(o)):
//   t (50), dt (0.1)  simulated time and step, in units of tau; steps n = ceil(t/dt - 1e-9), t = 0
//                     returns the warm start unchanged. dt must be in (0, 2) (stability, above).
//   kappa0 (0)        noise temperature; 0 is the noise-free (deterministic) limit.
//   seed (0)          call k draws its noise from Generator(mix(seed, k)) on the CPU: the stream is
//                     reproducible and resumable from the call counter alone (no generator state).
//   tau (1e-6 s)      only for the reported analog time, stats.analog_s = t tau (one analog solver
//                     per group, all running in parallel).
//   warmStart         'uniform' (default): x0 = c 1, c = (1^T b)/(1^T A 1), SGD's uniform
//                     coefficients at the scale that best fits the system in A's energy norm
//                     (argmin_c ||c 1 - A^-1 b||_A), so t = 0 is SGD and t -> infinity is NGD.
//                     'previous': the raw alpha this solver returned last time (the hybrid
//                     digital-analog loop, where the delay acts like momentum); uniform when there
//                     is none or its shape differs.
// State (stateDict): the call counter and, for 'previous', the last raw alpha. The settings are
// recorded in the meta but not restored: the solver keeps its own options (a resumed run may
// change t). With the same options, a restored solver returns bitwise what the original would
// have returned on its next call.
import { deriveSeed } from '../data/rng.js';
import { checkChoice, checkOption } from '../optim/optimizer.js';
import { callOp, eye, Generator, keep, noGrad, randn, scope, Tensor } from '../tensor/index.js';
import type { CoefficientSolver, SolveInput, SolveOutput, SolverStateDict } from './solver.js';

export type WarmStart = 'uniform' | 'previous';

export interface ThermodynamicOptions {
  /** Simulated time in units of tau, >= 0 (default 50). */
  t?: number;
  /** Euler-Maruyama step in units of tau, in (0, 2) (default 0.1). */
  dt?: number;
  /** Noise temperature, >= 0 (default 0: noise-free). */
  kappa0?: number;
  /** Seed of the noise, a non-negative safe integer (default 0). */
  seed?: number;
  /** The hardware time constant in seconds, > 0, for the reported analog time (default 1e-6). */
  tau?: number;
  /** Initial state of each call: 'uniform' (default) or 'previous'. */
  warmStart?: WarmStart;
}

const NAME = 'thermodynamic';
const FORMAT = 'fngd.solver.thermodynamic.v1';
const OWNER = 'thermodynamicSolver';
/** float64 noise entries drawn at once (4 MiB), whatever n G B is. */
const NOISE_CHUNK = 1 << 19;
const f64 = 'float64' as const;

interface Meta {
  format: string;
  name: string;
  calls: number;
  settings: Record<string, number | string>;
}

export function thermodynamicSolver(o: ThermodynamicOptions = {}): CoefficientSolver {
  return new ThermodynamicSolver(o);
}

/** Euler-Maruyama steps covering time t (the 1e-9 keeps t = 50, dt = 0.1 at 500 steps, not 501). */
function stepsFor(t: number, dt: number): number {
  return Math.max(0, Math.ceil(t / dt - 1e-9));
}

/** The generator seed of call k: decorrelated across calls and seeds (data/rng.ts's splitmix64 path). */
function streamSeed(seed: number, call: number): number {
  return deriveSeed(seed, call);
}

class ThermodynamicSolver implements CoefficientSolver {
  readonly name = NAME;
  readonly settings: { t: number; dt: number; kappa0: number; warmStart: WarmStart; seed: number; tau: number };
  #calls = 0;
  #previous: Tensor | null = null;

  constructor(o: ThermodynamicOptions) {
    const t = checkOption(OWNER, 't', o.t ?? 50, { min: 0 });
    const dt = checkOption(OWNER, 'dt', o.dt ?? 0.1, { min: 0, minExclusive: true, max: 2, maxExclusive: true });
    const kappa0 = checkOption(OWNER, 'kappa0', o.kappa0 ?? 0, { min: 0 });
    const tau = checkOption(OWNER, 'tau', o.tau ?? 1e-6, { min: 0, minExclusive: true });
    const seed = o.seed ?? 0;
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`${OWNER}: option 'seed' must be a non-negative safe integer, got ${String(seed)}`);
    const warmStart = o.warmStart ?? 'uniform';
    checkChoice(OWNER, 'warmStart', warmStart, ['uniform', 'previous']);
    this.settings = { t, dt, kappa0, warmStart, seed, tau };
  }

  solve({ K, shift, rhs }: SolveInput): SolveOutput {
    const who = `${OWNER}.solve`;
    if (K.dim !== 3 || K.size(1) !== K.size(2)) throw new RangeError(`${who}: K must be [G, B, B], got [${K.shape}]`);
    const [g, b] = [K.size(0), K.size(1)];
    if (shift.dim !== 1 || shift.size(0) !== g) throw new RangeError(`${who}: shift must be [${g}], got [${shift.shape}]`);
    if (rhs.dim !== 2 || rhs.size(0) !== g || rhs.size(1) !== b) throw new RangeError(`${who}: rhs must be [${g}, ${b}], got [${rhs.shape}]`);
    const { t, dt, kappa0, seed, tau } = this.settings;
    const n = stepsFor(t, dt);
    const dev = K.device;
    const { alpha, previous } = noGrad(() => scope(() => {
      const A = K.detach().to({ dtype: f64, device: dev })
        .add(eye(b, { dtype: f64, device: dev }).mul(shift.detach().to({ dtype: f64, device: dev }).view(g, 1, 1)));
      const r = rhs.detach().to({ dtype: f64, device: dev }).unsqueeze(2); // [G, B, 1]
      // A sum is finite iff every entry is (barring overflow): one host round trip for all groups.
      if (!isFinite(A.sum([1, 2]).add(r.sum([1, 2])))) throw new Error(`${who}: K, shift or rhs has NaN or infinite entries`);
      let x = this.#start(A, r).unsqueeze(2); // [G, B, 1], a fresh tensor
      if (n > 0) x = simulate(A, r, x, n, dt, kappa0, kappa0 > 0 ? new Generator(streamSeed(seed, this.#calls)) : null);
      const a = x.squeeze(2);
      return { alpha: a, previous: this.settings.warmStart === 'previous' ? keep(a.clone()) : null };
    }));
    // Replace the state only once the solve has succeeded.
    this.#previous?.dispose();
    this.#previous = previous;
    this.#calls += 1;
    return { alpha, stats: { analog_s: t * tau, thermo_steps: n } };
  }

  /** x0 [G, B], a tensor the caller may overwrite. */
  #start(A: Tensor, r: Tensor): Tensor {
    const [g, b] = [A.size(0), A.size(1)];
    const prev = this.#previous;
    if (this.settings.warmStart === 'previous' && prev !== null && prev.size(0) === g && prev.size(1) === b) {
      return prev.to({ dtype: f64, device: A.device }).clone();
    }
    // c = (1^T b)/(1^T A 1); 1^T A 1 = 0 (1 in A's null space, e.g. A = 0) has no best scale: c = 0.
    const num = r.sum([1, 2]);
    const den = A.sum([1, 2]);
    const ok = den.gt(0);
    const c = num.div(den.where(ok, 1)).where(ok, 0);
    return c.view(g, 1).expand(g, b).contiguous();
  }

  stateDict(): SolverStateDict {
    const tensors = new Map<string, Tensor>();
    if (this.#previous !== null) tensors.set('previous', noGrad(() => this.#previous!.clone()));
    const meta: Meta = { format: FORMAT, name: NAME, calls: this.#calls, settings: { ...this.settings } };
    return { tensors, meta };
  }

  loadStateDict(sd: SolverStateDict): void {
    const who = `${OWNER}.loadStateDict`;
    const m = sd.meta as Partial<Meta> | null;
    if (m === null || typeof m !== 'object' || m.format !== FORMAT) {
      throw new Error(`${who}: not a thermodynamic solver state dict (format ${String((m as { format?: unknown } | null)?.format)})`);
    }
    if (m.name !== NAME) throw new Error(`${who}: the state dict is from a '${String(m.name)}' solver`);
    if (!Number.isSafeInteger(m.calls) || m.calls! < 0) throw new Error(`${who}: bad call counter ${String(m.calls)}`);
    for (const k of sd.tensors.keys()) if (k !== 'previous') throw new Error(`${who}: unexpected tensor '${k}'`);
    const saved = sd.tensors.get('previous');
    let previous: Tensor | null = null;
    if (saved !== undefined) {
      if (!(saved instanceof Tensor) || saved.dim !== 2) {
        throw new Error(`${who}: 'previous' must be a [G, B] tensor, got ${saved instanceof Tensor ? `[${saved.shape}]` : typeof saved}`);
      }
      if (saved.dtype !== f64) throw new Error(`${who}: 'previous' must be float64 (the raw alpha), got ${saved.dtype}`);
      if (!scope(() => isFinite(saved.sum()))) throw new Error(`${who}: 'previous' has NaN or infinite entries`);
      // A 'uniform' solver never reads it; keeping it anyway would only hold memory.
      if (this.settings.warmStart === 'previous') previous = keep(noGrad(() => saved.detach().clone()));
    }
    this.#previous?.dispose();
    this.#previous = previous;
    this.#calls = m.calls!;
  }

  dispose(): void {
    this.#previous?.dispose();
    this.#previous = null;
  }
}

function isFinite(t: Tensor): boolean {
  return (callOp('aten::all', t.isfinite()) as Tensor).item() !== 0;
}

/**
 * n Euler-Maruyama steps of the rescaled process from x [G, B, 1] (consumed), all groups at once.
 * Noise is drawn in chunks of whole steps (at most NOISE_CHUNK entries, 4 MiB, unless one step is
 * larger), so memory stays bounded for any t / dt. libtorch's CPU normal sampler consumes its stream
 * per draw, so the chunking is part of the stream's definition: it depends only on (n, G, B) and
 * NOISE_CHUNK, which must not change if saved runs are to resume bitwise.
 */
function simulate(A: Tensor, r: Tensor, x0: Tensor, n: number, dt: number, kappa0: number, gen: Generator | null): Tensor {
  const [g, b] = [A.size(0), A.size(1)];
  const dev = A.device;
  const absRowSum = A.abs().sum(2).max(1)[0];
  // A = 0 has no time scale; any positive s leaves it as it is.
  const s = absRowSum.where(absRowSum.gt(0), 1);
  const h = s.reciprocal().mul(dt).view(g, 1, 1); // dt / s
  const M = eye(b, { dtype: f64, device: dev }).sub(A.mul(h)); // I - dt A/s
  const c = r.mul(h); // dt b/s
  const sigma = h.mul(2 * kappa0).sqrt().view(1, g, 1, 1); // sqrt(2 kappa0 dt / s)
  const chunk = gen === null ? n : Math.max(1, Math.floor(NOISE_CHUNK / (g * b)));
  let x = x0;
  for (let start = 0; start < n; start += chunk) {
    const m = Math.min(chunk, n - start);
    const from = x;
    x = scope(() => {
      const noise = gen === null ? null : randn([m, g, b, 1], { dtype: f64, device: 'cpu', generator: gen }).to({ device: dev }).mul_(sigma);
      let y = from;
      for (let j = 0; j < m; j++) {
        const next = M.bmm(y).add_(c);
        if (noise !== null) {
          const e = noise.select(0, j);
          next.add_(e);
          e.dispose();
        }
        if (y !== from) y.dispose();
        y = next;
      }
      return y;
    });
    from.dispose();
  }
  return x;
}
