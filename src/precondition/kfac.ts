// K-FAC (Martens & Grosse 2015; conv layers: Grosse & Martens 2016) as a preconditioner: the
// Fisher block of each Linear/Conv2d layer is approximated by A (x) G, so its preconditioned gradient
// is V = G^-1 grad_W A^-1 with the bias gradient as the last column of grad_W (A carries the
// homogeneous coordinate). V goes into .grad and the rule it is paired with (SGD with momentum, as in
// the usual K-FAC implementations, or AdamW) takes it from there.
//
// Factors come from the curvature engine (src/curvature, conventions in layers.ts):
//   A = E_{i,t}[a a^T] (trailing 1 for the bias), G = (1/B) sum_{i,t} d d^T with d = d l_i / d z_it,
// so for conv layers A (x) G = T E[a a^T] (x) E[d d^T], the KFC scaling. d is the gradient of the
// actual per-sample loss: this is the empirical-Fisher variant (no sampled targets).
//
// Damping: Tikhonov with the factored pi correction (Martens & Grosse 2015, section 6.3):
//   pi = sqrt((tr A / dim A) / (tr G / dim G)),  invert (A + pi sqrt(lambda) I) and (G + sqrt(lambda)/pi I)
// by Cholesky in float64. Running averages are float64; inverses are stored in the layer's dtype.
//
// Schedule, per step k (counted by this optimizer, saved in its state dict):
//   1. .grad = mean-loss gradient (capture.writeWeightedGradients with alpha = 1/B)
//   2. k % covUpdateEvery == 0: A <- decay A + (1 - decay) A_batch (the first update of a layer
//      takes A_batch as it is: no bias towards zero or I). A layer without factors yet (step 0, or a
//      layer seen for the first time) is updated on any step.
//   3. k % invUpdateEvery == 0, or a layer has no inverses yet: recompute its inverses from the running
//      factors (invUpdateEvery need not be a multiple of covUpdateEvery).
//   4. V = G^-1 grad A^-1 per covered layer, then KL clipping (Ba et al. 2017):
//      nu = min(1, sqrt(klClip / sum_p lr_p^2 <V_p, grad_p>)) over the preconditioned parameters p
//      (each with its group's lr in the rule), every V times nu; fallback parameters are not clipped.
//   5. the rule's update.
// Embeddings (`embeddings: 'kfac'`, the default) are a Linear layer on one-hot inputs: their A is
// diagonal, the tokens' frequencies a_v = (count of v) / (B T), padding left out (curvature/layers.ts),
// so with the embedding table E [V, dim] (E^T is the Linear's weight) the direction is
//   V_E = diag(a + pi sqrt(lambda))^-1 grad_E (G + sqrt(lambda)/pi I)^-1,   pi from mean(a) and tr G,
// a row scaling and one dim x dim product: cheaper than a Linear layer's. Parameters outside
// Linear/Conv2d/Embedding (norm affine parameters, grouped convs, ...), and embeddings under
// `embeddings: 'first-order'` (how KFAC ran before embeddings were covered; state dicts saved then
// restore it), keep their plain mean-loss gradient, first order; `fallbackParams()` names them.
import { CurvatureEngine, LinearCurvature, type LayerCurvature } from '../curvature/index.js';
import { Embedding, type Linear } from '../nn/linear.js';
import type { Conv2d } from '../nn/conv.js';
import type { Module } from '../nn/module.js';
import type { TappableLayer } from '../nn/taps.js';
import { checkChoice, checkOption } from '../optim/optimizer.js';
import type { StepInput, StepStats } from '../optim/step.js';
import { cat, eye, full, keep, linalg, noGrad, ones, scope, type Tensor } from '../tensor/index.js';
import { warn } from '../warnings.js';
import type { Preconditioner, PreconditionerStateDict, RuleContext } from './preconditioner.js';

export interface KfacOptions {
  /** lambda, the Tikhonov damping of the Fisher blocks (default 1e-3). */
  damping?: number;
  /** Running-average decay of A and G (default 0.95). */
  statDecay?: number;
  /** Steps between factor updates (default 10). */
  covUpdateEvery?: number;
  /** Steps between inverse recomputations (default 100). */
  invUpdateEvery?: number;
  /** KL clipping bound (default 1e-3); null or 0 disables it. */
  klClip?: number | null;
  /** Embedding layers: KFAC with their diagonal A (default), or the plain mean-loss gradient. */
  embeddings?: KfacEmbeddings;
}

export type KfacEmbeddings = 'kfac' | 'first-order';
const EMBEDDINGS: readonly KfacEmbeddings[] = ['kfac', 'first-order'];

/** KFAC's settings, as saved in state dicts (restored from them, like group hyperparameters). */
export interface KfacSettings {
  [k: string]: number | string | null;
  damping: number;
  statDecay: number;
  covUpdateEvery: number;
  invUpdateEvery: number;
  klClip: number | null;
  embeddings: KfacEmbeddings;
}

/**
 * One covered layer's state: running factors (float64) and damped inverses (layer dtype). An
 * embedding's A and A^-1 are their diagonals, [V].
 */
interface Factors {
  A: Tensor;
  G: Tensor;
  Ainv: Tensor | null;
  Ginv: Tensor | null;
}

interface KfacMeta {
  steps: number;
  layers: { name: string; inverses: boolean }[];
}

export class KfacPreconditioner implements Preconditioner {
  readonly name = 'kfac';
  readonly label = 'KFAC';
  #settings: KfacSettings;
  readonly #model: Module;
  /** Built when the optimizer attaches: which layers are covered depends on the parameters it owns. */
  #engine: CurvatureEngine | null = null;
  /** Steps taken by computeGradients (the factor and inverse schedules count these). */
  #steps = 0;
  readonly #factors = new Map<string, Factors>();
  #fallback: string[] = [];
  /** The optimizer's parameters. */
  #owned = new Set<Tensor>();
  /** The fallback was reported (at the first step: a loaded state dict may change it before). */
  #fallbackReported = false;

  constructor(model: Module, o: KfacOptions = {}) {
    this.#model = model;
    this.#settings = checkSettings('KFAC', {
      damping: o.damping ?? 1e-3, statDecay: o.statDecay ?? 0.95, covUpdateEvery: o.covUpdateEvery ?? 10,
      invUpdateEvery: o.invUpdateEvery ?? 100, klClip: o.klClip === 0 ? null : o.klClip === undefined ? 1e-3 : o.klClip,
      embeddings: o.embeddings ?? 'kfac',
    });
  }

  get settings(): KfacSettings {
    return { ...this.#settings };
  }

  /** The curvature engine (after the optimizer attached). */
  get engine(): CurvatureEngine {
    if (this.#engine === null) throw new Error('KFAC: not attached to an optimizer yet (pass it as the `preconditioner` option of a rule)');
    return this.#engine;
  }

  attach(params: readonly Tensor[]): void {
    if (this.#engine !== null) throw new Error('KFAC: this preconditioner is already attached to an optimizer');
    const named = this.#model.namedParameters();
    const inModel = new Set(named.map(([, p]) => p));
    const stray = params.findIndex((p) => !inModel.has(p));
    if (stray >= 0) throw new Error(`KFAC: parameter ${stray} is not a parameter of the model (the curvature engine could not give it a gradient)`);
    // Tap a layer only when the optimizer owns all of its parameters. Embeddings are tapped under
    // either `embeddings` setting (a state dict may restore the other): first order, they take the
    // engine's mean-loss gradient as it is.
    const owned = new Set(params);
    this.#owned = owned;
    const ownsAll = (layer: TappableLayer): boolean => layerParams(layer).every((p) => owned.has(p) && p.requiresGrad);
    this.#engine = new CurvatureEngine(this.#model, { filter: (_name, layer) => ownsAll(layer) });
    this.#listFallback();
  }

  /** Whether this layer's gradient is preconditioned (every tapped layer but first-order embeddings). */
  #isPreconditioned(l: { layer: TappableLayer }): boolean {
    return !(l.layer instanceof Embedding && this.#settings.embeddings === 'first-order');
  }

  /** Names the optimized parameters left first order. */
  #listFallback(): void {
    const preconditioned = new Set(this.engine.layers.filter((l) => this.#isPreconditioned(l)).flatMap((l) => layerParams(l.layer)));
    this.#fallback = this.#model.namedParameters().filter(([, p]) => this.#owned.has(p) && !preconditioned.has(p)).map(([n]) => n);
  }

  /** Names of the optimized parameters that get the plain mean-loss gradient (not preconditioned). */
  fallbackParams(): string[] {
    return [...this.#fallback];
  }

  /** The factor update every covUpdateEvery steps; the rarer inverses (invUpdateEvery) are left out. */
  get costPeriod(): number {
    return this.#settings.covUpdateEvery;
  }

  clear(): void {
    this.#engine?.clear();
  }

  computeGradients(input: StepInput, loss: number, rule: RuleContext): StepStats {
    const { covUpdateEvery, invUpdateEvery } = this.#settings;
    if (!this.#fallbackReported && this.#fallback.length > 0) warn('KFAC', `KFAC: first-order fallback for ${this.#fallback.length} parameters: ${this.#fallback.join(', ')}`);
    this.#fallbackReported = true;
    const k = this.#steps;
    const cap = this.engine.capture(input.perSampleLoss);
    let nu = 1;
    try {
      const b = cap.batchSize;
      const covered = cap.layers.filter((l) => this.#isPreconditioned(l));
      const layers = covered.map((l) => ({ name: l.name, params: l.params }));
      noGrad(() => {
        for (const l of covered) {
          const f = this.#factors.get(l.name);
          if (f === undefined || k % covUpdateEvery === 0) this.#updateFactors(l, f);
          const g = this.#factors.get(l.name)!;
          if (g.Ainv === null || k % invUpdateEvery === 0) this.#invert(l.name, g, l.params[0].dtype);
        }
      });
      scope(() => {
        const lowRank = noGrad(() => lowRankFactors(covered, this.#factors));
        // The factors have read the capture: the gradient may consume it.
        cap.writeWeightedGradients(full([b], 1 / b, { dtype: input.perSampleLoss.dtype, device: input.perSampleLoss.device }), { consume: true });
        noGrad(() => {
          nu = this.#precondition(layers, rule, lowRank);
        });
      });
    } finally {
      cap.dispose();
    }
    this.#steps = k + 1;
    return { loss, nu };
  }

  /** Running averages in float64; a layer's first update takes the batch factors as they are. */
  #updateFactors(l: LayerCurvature, f: Factors | undefined): void {
    scope(() => {
      const { A, G } = l.kfac();
      const { statDecay } = this.#settings;
      if (f === undefined) {
        this.#factors.set(l.name, { A: keep(A.double().clone()), G: keep(G.double().clone()), Ainv: null, Ginv: null });
      } else {
        f.A.mul_(statDecay).add_(A.double(), 1 - statDecay);
        f.G.mul_(statDecay).add_(G.double(), 1 - statDecay);
      }
    });
  }

  /**
   * (A + pi sqrt(lambda) I)^-1 and (G + sqrt(lambda)/pi I)^-1 by Cholesky in float64 (a diagonal A:
   * its reciprocal).
   */
  #invert(name: string, f: Factors, dtype: Tensor['dtype']): void {
    const diagonal = f.A.dim === 1;
    const [Ainv, Ginv] = scope(() => {
      const dA = f.A.size(0);
      const dG = f.G.size(0);
      const trA = (diagonal ? f.A : f.A.diagonal()).sum().item() / dA;
      const trG = f.G.diagonal().sum().item() / dG;
      // A zero G (no gradient reached the layer yet) would make pi infinite: split the damping evenly.
      let pi = Math.sqrt(trA / trG);
      if (!Number.isFinite(pi) || pi <= 0) pi = 1;
      const s = Math.sqrt(this.#settings.damping);
      const o = { dtype: 'float64' as const, device: f.A.device };
      return [
        diagonal ? f.A.add(pi * s).reciprocal().to(dtype) : spdInverse(f.A.add(eye(dA, o).mul(pi * s)), `${this.label}: A of layer '${name}'`).to(dtype),
        spdInverse(f.G.add(eye(dG, o).mul(s / pi)), `${this.label}: G of layer '${name}'`).to(dtype),
      ];
    });
    f.Ainv?.dispose();
    f.Ginv?.dispose();
    f.Ainv = keep(Ainv);
    f.Ginv = keep(Ginv);
  }

  /**
   * .grad <- nu G^-1 [grad_W, grad_b] A^-1 for every covered layer (embeddings: nu diag(A^-1)
   * grad_E G^-1); returns nu.
   */
  #precondition(layers: { name: string; params: [Tensor, Tensor | null] }[], rule: RuleContext, lowRank: Map<string, LowRank>): number {
    return scope(() => {
      const work: { w: Tensor; b: Tensor | null; V: Tensor }[] = [];
      let vg: Tensor | null = null;
      for (const { name, params: [w, b] } of layers) {
        const f = this.#factors.get(name)!;
        const gw = w.grad;
        const gb = b === null ? null : b.grad;
        if (gw === null || (b !== null && gb === null)) continue; // the loss did not reach it
        // An embedding's table is E = W^T [V, dim]: V_E = diag(A^-1) grad_E G^-1 (G^-1 symmetric),
        // shaped like the table, so the rest treats it as a bias-free layer.
        const table = f.Ainv!.dim === 1;
        const flat = table ? gw : gw.reshape(gw.size(0), -1);
        const X = gb === null ? flat : cat([flat, gb.unsqueeze(1)], 1);
        const lr = lowRank.get(name);
        const V = table ? gw.mul(f.Ainv!.unsqueeze(1)).mm(f.Ginv!) : lr === undefined ? f.Ginv!.mm(X).mm(f.Ainv!) : lr.left.mm(lr.right);
        // lr^2 <V, grad>, each parameter with its group's lr (biases often sit in another group).
        const lrW = rule.lrOf(w);
        const vx = V.mul(X).double();
        const din = flat.size(1);
        let term = vx.narrow(1, 0, din).sum().mul(lrW * lrW);
        if (b !== null) term = term.add(vx.select(1, din).sum(), rule.lrOf(b) ** 2);
        vg = vg === null ? term : vg.add(term);
        work.push({ w, b, V });
      }
      let nu = 1;
      const { klClip } = this.#settings;
      if (klClip !== null && vg !== null) {
        const s = vg.item();
        if (s > 0) nu = Math.min(1, Math.sqrt(klClip / s));
      }
      for (const { w, b, V } of work) {
        const Vs = nu === 1 ? V : V.mul(nu);
        const din = V.size(1) - (b === null ? 0 : 1);
        w.grad = Vs.narrow(1, 0, din).reshape(w.shape);
        if (b !== null) b.grad = Vs.select(1, din).contiguous();
      }
      return nu;
    });
  }

  stateDict(): PreconditionerStateDict {
    const tensors = new Map<string, Tensor>();
    const layers: KfacMeta['layers'] = [];
    noGrad(() => {
      for (const [name, f] of this.#factors) {
        tensors.set(`${name}.A`, f.A.clone());
        tensors.set(`${name}.G`, f.G.clone());
        if (f.Ainv !== null && f.Ginv !== null) {
          tensors.set(`${name}.Ainv`, f.Ainv.clone());
          tensors.set(`${name}.Ginv`, f.Ginv.clone());
        }
        layers.push({ name, inverses: f.Ainv !== null });
      }
    });
    return { tensors, meta: { steps: this.#steps, layers } };
  }

  loadStateDict(sd: PreconditionerStateDict, settings: unknown): void {
    const who = 'KFAC.loadStateDict';
    const tensors = sd.tensors;
    const m = sd.meta as unknown as KfacMeta | null;
    if (m === null || typeof m !== 'object' || !Number.isInteger(m.steps) || m.steps < 0 || !Array.isArray(m.layers)) {
      throw new Error(`${who}: missing or malformed KFAC state (steps, layers)`);
    }
    if (settings === null || typeof settings !== 'object') throw new Error(`${who}: the state dict has no KFAC settings`);
    // State saved before embeddings were covered has no `embeddings`: it ran them first order.
    const saved = settings as Partial<KfacSettings>;
    const restored = checkSettings(who, { ...saved, embeddings: saved.embeddings ?? 'first-order' } as KfacSettings);
    const layers = new Map(this.engine.layers.map((l) => [l.name, l.layer] as const));
    const loaded = new Map<string, Factors>();
    /** A [n, n] factor, or with `diagonal` its diagonal [n]. */
    const take = (key: string, n: number, dtype: Tensor['dtype'], device: Tensor['device'], diagonal = false): Tensor => {
      const t = tensors.get(key);
      if (t === undefined) throw new Error(`${who}: missing tensor 'extra.${key}'`);
      const ok = diagonal ? t.dim === 1 && t.size(0) === n : t.dim === 2 && t.size(0) === n && t.size(1) === n;
      if (!ok) throw new Error(`${who}: 'extra.${key}' has shape [${t.shape}], expected [${diagonal ? n : `${n}, ${n}`}]`);
      return keep(scope(() => t.to({ dtype, device }).clone()));
    };
    try {
      noGrad(() => {
        for (const { name, inverses } of m.layers) {
          const layer = layers.get(name);
          if (layer === undefined || (layer instanceof Embedding && restored.embeddings === 'first-order')) {
            throw new Error(`${who}: factors for '${name}', which is not a layer this KFAC preconditions`);
          }
          const [w, b] = layerParams(layer);
          // An embedding's table [V, dim] is W^T: A over the V tokens (diagonal), G over dim.
          const table = layer instanceof Embedding;
          const dA = table ? w.size(0) : w.numel / w.size(0) + (b === undefined ? 0 : 1);
          const dG = table ? w.size(1) : w.size(0);
          const f: Factors = { A: take(`${name}.A`, dA, 'float64', w.device, table), G: take(`${name}.G`, dG, 'float64', w.device), Ainv: null, Ginv: null };
          loaded.set(name, f);
          if (inverses) {
            f.Ainv = take(`${name}.Ainv`, dA, w.dtype, w.device, table);
            f.Ginv = take(`${name}.Ginv`, dG, w.dtype, w.device);
          }
        }
      });
    } catch (e) {
      disposeFactors(loaded);
      throw e;
    }
    disposeFactors(this.#factors);
    this.#factors.clear();
    for (const [n, f] of loaded) this.#factors.set(n, f);
    this.#steps = m.steps;
    const embeddingsBefore = this.#settings.embeddings;
    this.#settings = restored;
    if (restored.embeddings !== embeddingsBefore) this.#listFallback();
  }

  /** Frees factors and inverses and stops the engine's recording. */
  dispose(): void {
    disposeFactors(this.#factors);
    this.#factors.clear();
    this.#engine?.dispose();
  }
}

function checkSettings(owner: string, s: KfacSettings): KfacSettings {
  return {
    damping: checkOption(owner, 'damping', s.damping, { min: 0, minExclusive: true }),
    statDecay: checkOption(owner, 'statDecay', s.statDecay, { min: 0, max: 1, maxExclusive: true }),
    covUpdateEvery: checkInt(owner, 'covUpdateEvery', s.covUpdateEvery),
    invUpdateEvery: checkInt(owner, 'invUpdateEvery', s.invUpdateEvery),
    klClip: s.klClip === null ? null : checkOption(owner, 'klClip', s.klClip, { min: 0, minExclusive: true }),
    embeddings: checkChoice(owner, 'embeddings', s.embeddings, EMBEDDINGS),
  };
}

function layerParams(layer: TappableLayer): Tensor[] {
  const b = (layer as Linear | Conv2d).bias ?? null;
  return b === null ? [layer.weight] : [layer.weight, b];
}

/** The inverse of a symmetric positive definite matrix, float64, by Cholesky. */
function spdInverse(m: Tensor, what: string): Tensor {
  const { L, info } = linalg.choleskyEx(m);
  if (info.item() !== 0) throw new Error(`${what}: damped factor is not positive definite (Cholesky failed); raise 'damping'`);
  return linalg.choleskySolve(eye(m.size(0), { dtype: m.dtype, device: m.device }), L);
}

function disposeFactors(factors: Map<string, Factors>): void {
  for (const f of factors.values()) for (const t of [f.A, f.G, f.Ainv, f.Ginv]) t?.dispose();
}

function checkInt(owner: string, name: string, v: unknown): number {
  if (!Number.isInteger(v) || (v as number) < 1) throw new RangeError(`${owner}: option '${name}' must be a positive integer, got ${String(v)}`);
  return v as number;
}

/** V = left right for a layer whose gradient has low rank (see lowRankFactors). */
interface LowRank {
  left: Tensor;
  right: Tensor;
}

/**
 * The low-rank route to V = G^-1 X A^-1. A Linear layer's mean-loss gradient is X = (1/B) D^T [a, 1]
 * over its n = B T rows (output gradients D [n, dout], inputs a [n, din]), so
 *   V = ((1/B) G^-1 D^T) ([a, 1] A^-1)        n (dout^2 + dA^2 + dout dA) multiply-adds
 * instead of dout dA (dout + dA) for the dense products. On the MNIST MLP (B = 128, 784-512-256-10)
 * that is 0.3 of the dense work: the preconditioning products were three times a whole SGD step.
 * Read from the capture before the weighted gradient consumes it; other layers (conv: rows are B x
 * pixels) take the dense route.
 */
function lowRankFactors(layers: readonly LayerCurvature[], factors: Map<string, Factors>): Map<string, LowRank> {
  const out = new Map<string, LowRank>();
  for (const l of layers) {
    if (!(l instanceof LinearCurvature)) continue;
    const f = factors.get(l.name);
    if (f === undefined || f.Ainv === null || f.Ginv === null) continue;
    const n = l.batch * l.positions;
    const dG = f.Ginv.size(0);
    const dA = f.Ainv.size(0);
    if (n * (dG * dG + dA * dA + dG * dA) >= dG * dA * (dG + dA)) continue;
    const d = l.dRows;
    const a = l.aRows;
    const abar = dA === a.size(1) ? a : cat([a, ones([n, 1], { dtype: a.dtype, device: a.device })], 1);
    out.set(l.name, { left: f.Ginv.mm(d.t()).div(l.batch), right: abar.mm(f.Ainv) });
  }
  return out;
}
