// Sample-space preconditioners (FNGD.md sections 1, 2, 8): the direction is a weighted sum of the
// batch's per-sample gradients, d_g = U_g alpha_g per group g, with coefficients from a small
// B x B system over the per-sample engine's Grams:
//   alpha_g = normalize( solve( K_g + shift_g I, rhs_g ) )
// Each concern is one part, and a method is a configuration of them (methods.ts):
//   groups     layer-wise (one K_l, alpha_l per covered layer: block-diagonal F) or global
//              (K = sum_l K_l, one alpha for every layer)
//   damping    damping.ts: absolute or relative, decay, floor
//   rhs        rhs.ts: ones (empirical Fisher), iEF's logit-gradient norms, uniform (SGD's 1/B)
//   solver     solver.ts: Cholesky, or the thermodynamic simulation (thermodynamic.ts)
//   normalize  normalize.ts: 'sum' (each alpha_g sums to 1: SGD's step size) or 'none'
//   reuse      reuse.ts: FNGD's store around any of the above
// Parameters the engine does not cover (norm affine parameters, ...) get the plain mean-loss
// gradient; `coverage()` says which.
import { CurvatureEngine, type Alpha, type Capture, type CurvatureOptions } from '../curvature/index.js';
import type { Module } from '../nn/module.js';
import { checkChoice } from '../optim/optimizer.js';
import type { StepInput, StepStats } from '../optim/step.js';
import { convertedTo, empty, noGrad, scope, stack, tensor, zeros, type Tensor } from '../tensor/index.js';
import { warn } from '../warnings.js';
import { groupCount, type CoefficientGroups, type Coefficients } from './coefficients.js';
import { checkDamping, diagonalShift, type Damping, type DampingMode } from './damping.js';
import { NORMALIZATIONS, normalizeSolved, normalizeStored, type Normalize } from './normalize.js';
import type { JsonValue, Preconditioner, PreconditionerStateDict } from './preconditioner.js';
import { CoefficientReuse, reuseSettings, type ReuseOptions } from './reuse.js';
import { RIGHT_HAND_SIDES, rightHandSide, type RightHandSide } from './rhs.js';
import { choleskySolver, type CoefficientSolver } from './solver.js';

export type GroupMode = 'layerwise' | 'global';

export interface SampleSpaceOptions {
  /** lambda (default 10, relative: the searched value on MNIST and CIFAR-10). */
  damping?: number;
  /** default 'relative'. */
  dampingMode?: DampingMode;
  /** Multiply lambda by this after every epoch (default 1: constant). */
  dampingDecay?: number;
  /** The floor of the decayed lambda (default 0). */
  minDamping?: number;
  /** default 'layerwise'. */
  mode?: GroupMode;
  /** default 'sum'. */
  normalize?: Normalize;
  /** default 'ones' (the empirical Fisher). */
  rhs?: RightHandSide;
  /** default Cholesky. */
  solver?: CoefficientSolver;
  /** iEF: the layer whose output is the logits (default: the last covered layer to run). */
  outputLayer?: string;
  /** Store and reuse coefficients across epochs (FNGD); null: solve every step. */
  reuse?: ReuseOptions | null;
  /** Curvature engine options (memory bound, Gram method, which layers). */
  curvature?: CurvatureOptions;
}

/** What a sample-space rule is, as JSON (state dicts, reports). */
export interface SampleSpaceSettings {
  [k: string]: JsonValue;
  mode: GroupMode;
  damping: number;
  dampingMode: DampingMode;
  dampingDecay: number;
  minDamping: number;
  normalize: Normalize;
  rhs: RightHandSide;
  outputLayer: string | null;
  solver: { [k: string]: JsonValue };
  reuse: { [k: string]: JsonValue } | null;
}

export class SampleSpacePreconditioner implements Preconditioner {
  readonly name: string;
  readonly label: string;
  readonly engine: CurvatureEngine;
  readonly solver: CoefficientSolver;
  readonly reuse: CoefficientReuse | null;
  readonly costPeriod = 1;
  #damping: Damping;
  readonly #mode: GroupMode;
  readonly #normalize: Normalize;
  readonly #rhs: RightHandSide;
  readonly #outputLayer: string | null;
  #warnedB1 = false;
  #warnedUniform = false;

  constructor(model: Module, o: SampleSpaceOptions & { name: string; label: string }) {
    const owner = o.label;
    const { damping = 10, dampingMode = 'relative', dampingDecay = 1, minDamping = 0, mode = 'layerwise', normalize = 'sum', rhs = 'ones' } = o;
    this.#damping = checkDamping(owner, { value: damping, mode: dampingMode, decay: dampingDecay, floor: minDamping });
    checkChoice(owner, 'mode', mode, ['layerwise', 'global']);
    checkChoice(owner, 'normalize', normalize, NORMALIZATIONS);
    checkChoice(owner, 'rhs', rhs, RIGHT_HAND_SIDES);
    // Checked before the engine taps the model: a throw after would leave it tapped.
    const reuse = o.reuse === undefined || o.reuse === null ? null : reuseSettings(owner, o.reuse);
    this.name = o.name;
    this.label = o.label;
    this.#mode = mode;
    this.#normalize = normalize;
    this.#rhs = rhs;
    this.#outputLayer = o.outputLayer ?? null;
    this.solver = o.solver ?? choleskySolver();
    this.reuse = reuse === null ? null : new CoefficientReuse(reuse);
    this.engine = new CurvatureEngine(model, o.curvature);
    if (this.engine.layers.length === 0) {
      this.engine.dispose();
      throw new Error(`${owner}: the model has no Linear, Conv2d or Embedding layer to precondition`);
    }
  }

  get settings(): SampleSpaceSettings {
    const d = this.#damping;
    return {
      mode: this.#mode, damping: d.value, dampingMode: d.mode, dampingDecay: d.decay, minDamping: d.floor,
      normalize: this.#normalize, rhs: this.#rhs, outputLayer: this.#outputLayer,
      solver: { name: this.solver.name, ...this.solver.settings },
      reuse: this.reuse === null ? null : { ...this.reuse.settings },
    };
  }

  /** Which parameters get the preconditioned direction and which the first-order fallback. */
  coverage(): { covered: string[]; uncovered: string[] } {
    return this.engine.coverage();
  }

  /** FNGD's store (null without reuse, or before the first solve). */
  get store(): CoefficientReuse['store'] {
    return this.reuse?.store ?? null;
  }

  clear(): void {
    this.engine.clear();
  }

  computeGradients(input: StepInput, loss: number): StepStats {
    const reuse = this.reuse;
    if (reuse === null || reuse.solvesAt(input.epoch)) {
      const cap = this.engine.capture(input.perSampleLoss);
      const { stats, ...c } = this.solve(cap, input.epoch);
      this.#write(cap, c);
      reuse?.put(input, c);
      this.#noteUniform(stats.uniformRows ?? 0, input.epoch, 'solved');
      return reuse === null ? { loss, ...stats } : { loss, ...stats, reused: 0 };
    }
    // Normalized again over this batch's samples while still host numbers, then made in the
    // model's dtype and device.
    const looked = reuse.lookup(input);
    const g = groupCount(looked.groups);
    const uniformRows = normalizeStored(looked.values, g, this.#normalize);
    const { device, dtype } = this.engine.layers[0]!.layer.weight;
    const alpha = tensor(looked.values, { shape: [g, input.sampleIds.length], device, dtype });
    const stored: Coefficients = { alpha, groups: looked.groups };
    const uniform: Record<string, number> = uniformRows > 0 ? { uniformRows } : {};
    this.#noteUniform(uniformRows, input.epoch, 'stored');
    if (reuse.probeDue()) {
      const cap = this.engine.capture(input.perSampleLoss);
      const { stats: _stats, ...fresh } = this.solve(cap, input.epoch);
      const cosine = directionCosine(cap, stored, fresh);
      reuse.noteProbe(cosine, input.epoch);
      this.#write(cap, fresh);
      return { loss, reused: 1, missing: looked.missing, ...uniform, probeCosine: cosine };
    }
    // The coefficients are known before the backward, so engine.weightedBackward could make each
    // layer's weighted gradient inside the backward (a gradient hook), while its output gradient is
    // in cache. Measured on the AMD EPYC of issue 13 it gives the same gradients 2-4% slower than the
    // capture's after-backward pass (a hook's output gradient feeds the rest of the backward, so it
    // must be scaled into a copy, where the consumed capture scales in place), so not here.
    this.#write(this.engine.capture(input.perSampleLoss), stored);
    return { loss, reused: 1, missing: looked.missing, ...uniform };
  }

  /** The coefficients of a captured batch: Grams, damping, right-hand side, solver, normalization. */
  solve(cap: Capture, epoch: number): Coefficients & { stats: Record<string, number> } {
    const b = cap.batchSize;
    // B = 1: the system is the 1 x 1 (|g|^2 + shift) alpha = r. 'none' keeps alpha = r/(|g|^2 + shift),
    // a step of length r/(|g| + shift/|g|): bounded for absolute damping (<= r/(2 sqrt(shift))). 'sum'
    // divides alpha by itself: alpha = 1 whatever K and the damping, so the step is exactly SGD's
    // on that one sample, at a learning rate meant for a whole batch's direction (with r = 1, the
    // 'sum'-normalized direction U a minimizes |U a|^2 + shift |a|^2 subject to sum(a) = 1: a
    // damped min-norm point of the batch's gradients, which shrinks as B grows). A lone last batch
    // of 1 is one such SGD step; batches of 1 throughout diverge as SGD at that rate does (MNIST MLP,
    // lr 0.05, B = 1: fngd's and sgd's losses are bitwise the same, up to NaN at step 82), so the
    // CLI refuses --batch-size 1 with 'sum'.
    if (b === 1 && !this.#warnedB1) {
      this.#warnedB1 = true;
      warn(this.label, this.#normalize === 'sum'
        ? `${this.label}: batch of 1 sample: 'sum' normalization makes alpha = 1, so this step is plain SGD on that sample`
        : `${this.label}: batch of 1 sample: alpha = r/(|g|^2 + shift), the gradient rescaled`);
    }
    const groups: CoefficientGroups = this.#mode === 'global' ? { kind: 'global' } : { kind: 'layerwise', layers: cap.layers.map((l) => l.name) };
    const g = groupCount(groups);
    // The Grams are cached by the capture (a probe reads them again): made outside the scope.
    const needsGram = this.solver.needsGram !== false;
    const grams = !needsGram ? [] : noGrad(() => (groups.kind === 'global' ? [cap.globalGram()] : groups.layers.map((name) => cap.gram(name))));
    return noGrad(() => scope(() => {
      const K = needsGram ? stack(grams) : empty([g, 0, 0], { dtype: 'float64' });
      const shift = needsGram ? diagonalShift(this.#damping, K, epoch) : zeros([g], { dtype: 'float64' });
      const rhs = rightHandSide(this.#rhs, cap, g, this.#outputLayer);
      let solved: ReturnType<typeof this.solver.solve>;
      try {
        solved = this.solver.solve({ K, shift, rhs });
      } catch (e) {
        // Every solver refuses a non-finite system. Overflowed per-sample gradients are the usual
        // cause: name it (checked only here, so a healthy step pays no extra host round trip).
        if (needsGram && !K.sum().add(shift.sum()).isfinite().item()) {
          throw new Error(`${this.label}: the per-sample gradients overflowed at epoch ${epoch} (their Gram has NaN or infinite entries): `
            + 'the training has diverged; lower the learning rate', { cause: e });
        }
        throw e;
      }
      const { alpha, uniformRows } = normalizeSolved(solved.alpha, this.#normalize);
      return { alpha, groups, stats: uniformRows > 0 ? { ...solved.stats, uniformRows } : solved.stats };
    }));
  }

  /** Rows of coefficients that summed to <= 0 took SGD's 1/B (normalize.ts): warned once, counted in stats.uniformRows. */
  #noteUniform(rows: number, epoch: number, which: 'solved' | 'stored'): void {
    if (rows === 0 || this.#warnedUniform) return;
    this.#warnedUniform = true;
    const why = which === 'stored' ? 'stored coefficients summed to <= 0 over a reshuffled batch' : 'solved coefficients summed to <= 0 (solver noise?)';
    warn(this.label, `${this.label}: at epoch ${epoch}, ${rows} group(s) of ${why} and cannot be rescaled to sum 1 in their own direction: `
      + 'those groups took SGD\'s uniform 1/B (stats.uniformRows counts them per step; more damping keeps coefficients positive)');
  }

  /** .grad = sum_i alpha_i g_i per group; the batch's last use of the capture (consumed). */
  #write(cap: Capture, c: Coefficients): void {
    // Global coefficients also go through the capture, although one backward of sum_i alpha_i l_i
    // (engine.writeGlobalWeightedGradients) gives the covered layers the same sum (up to BatchNorm's
    // coupling of samples): it would weight the uncovered parameters' gradients by alpha too, and a
    // reuse step would then no longer equal the solve step it replays.
    // Converted to the model's dtype once here, not once per layer (each op call costs microseconds).
    const dtype = cap.layers[0]?.dtype ?? c.alpha.dtype;
    const alpha = convertedTo(c.alpha, dtype);
    cap.writeWeightedGradients(alphaByGroup({ ...c, alpha }), { consume: true });
  }

  stateDict(): PreconditionerStateDict {
    const tensors = new Map<string, Tensor>();
    const solver = this.solver.stateDict();
    for (const [k, t] of solver.tensors) tensors.set(`solver.${k}`, t);
    const reuse = this.reuse?.stateDict() ?? { tensors: new Map(), meta: null };
    for (const [k, t] of reuse.tensors) tensors.set(`reuse.${k}`, t);
    return { tensors, meta: { solver: solver.meta as JsonValue, reuse: reuse.meta as unknown as JsonValue } };
  }

  loadStateDict(sd: PreconditionerStateDict, settings: unknown): void {
    const who = `${this.label}.loadStateDict`;
    const saved = settings as SampleSpaceSettings | null;
    const now = this.settings;
    if (saved === null || typeof saved !== 'object') throw new Error(`${who}: the state dict has no ${this.label} settings`);
    // What shapes the stored state must match; the damping schedule is restored from the dict.
    for (const k of ['mode', 'normalize', 'rhs', 'outputLayer', 'solver', 'reuse'] as const) {
      if (JSON.stringify(saved[k]) !== JSON.stringify(now[k])) {
        throw new Error(`${who}: setting '${k}' is ${JSON.stringify(saved[k])} in the state dict, ${JSON.stringify(now[k])} here`);
      }
    }
    const damping = checkDamping(who, { value: saved.damping, mode: saved.dampingMode, decay: saved.dampingDecay, floor: saved.minDamping });
    const meta = (sd.meta ?? {}) as { solver?: unknown; reuse?: unknown };
    const part = (prefix: string): Map<string, Tensor> => {
      const out = new Map<string, Tensor>();
      for (const [k, t] of sd.tensors) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), t);
      return out;
    };
    this.reuse?.loadStateDict(part('reuse.'), meta.reuse ?? null, who);
    this.solver.loadStateDict({ tensors: part('solver.'), meta: meta.solver ?? null });
    this.#damping = damping;
  }

  dispose(): void {
    this.engine.dispose();
    this.solver.dispose();
  }
}

/** cos(U a, U a') over every covered layer, from the Grams: no per-sample gradient is built. */
export function directionCosine(cap: Capture, a: Coefficients, b: Coefficients): number {
  return noGrad(() => scope(() => {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (const [name, K] of cap.grams()) {
      // Reused coefficients come in the model's dtype, K in float64.
      const ra = convertedTo(rowFor(a, name), K.dtype);
      const rb = convertedTo(rowFor(b, name), K.dtype);
      const Kb = K.matmul(rb);
      ab += ra.dot(Kb).item();
      aa += ra.dot(K.matmul(ra)).item();
      bb += rb.dot(Kb).item();
    }
    return ab / Math.sqrt(Math.max(aa * bb, 1e-300));
  }));
}

function rowFor(c: Coefficients, name: string): Tensor {
  if (c.groups.kind === 'global') return c.alpha.select(0, 0);
  const g = c.groups.layers.indexOf(name);
  if (g < 0) throw new Error(`no coefficients for layer '${name}'`);
  return c.alpha.select(0, g);
}

/**
 * One alpha [B] for every layer (global), or one per layer name (layer-wise).
 * @internal exported for bench:curvature
 */
export function alphaByGroup(c: Coefficients): Alpha {
  if (c.groups.kind === 'global') return c.alpha.select(0, 0);
  // One unbind for all rows (G selects would be G op calls).
  const rows = c.alpha.unbind(0);
  return new Map(c.groups.layers.map((name, g) => [name, rows[g]!] as const));
}
