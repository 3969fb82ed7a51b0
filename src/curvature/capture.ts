// One batch's capture: every covered layer's input and per-sample output gradient, plus the summed
// gradient of the parameters the engine does not cover, from ONE backward pass (engine.ts). All the
// per-sample statistics of the batch are read from it:
//   grams()                    exact per-layer Grams K_l (float64 [B, B])
//   writeWeightedGradients(a)  .grad = sum_i a_i g_i for covered parameters (one weight-gradient each;
//                              { consume: true } as the batch's last use: no copies, capture disposed)
//   perSampleGradients(...)    materialized per-sample gradients, a chunk at a time
//   kfacFactors()              KFAC's A and G per layer (conventions in layers.ts)
//
// Coefficient convention: g_i = grad of l_i (the per-sample loss, NOT divided by B). The mean-loss
// gradient, SGD's direction, is alpha_i = 1/B; NGD's is alpha = (K + lambda B I)^-1 1.
// Uncovered parameters (norm affine parameters, grouped convs, anything outside Linear/Conv2d/
// Embedding) get the plain mean-loss gradient (1/B) sum_i g_i, first order, whatever the alpha,
// times `uncoveredScale` (default 1).
//
// Lifetime: the capture's tensors live in the scope that was current when it was made (the step's
// scope, like the forward's tensors); use it inside that scope, or `dispose()` it earlier.
import type { TapKind, TappableLayer } from '../nn/taps.js';
import { noGrad, scope, Tensor } from '../tensor/index.js';
import { layerGram, planGram, type GramMethod, type GramPlan } from './gram.js';
import type { KfacFactors, LayerCurvature, PerSampleGrads, Scratch } from './layers.js';

/** Coefficients: one global alpha [B], or one per layer name (layers left out get no gradient). */
export type Alpha = Tensor | Map<string, Tensor> | Record<string, Tensor>;

export interface UncoveredGrad {
  name: string;
  param: Tensor;
  /** d(sum_i l_i)/d(param); null when the loss does not reach the parameter. */
  gradSum: Tensor | null;
}

export interface CaptureConfig {
  maxBytes: number;
  method: GramMethod | 'auto';
}

export interface CaptureContext extends CaptureConfig {
  /** The engine's reusable memory for scaled temporaries. */
  scratch: Scratch | null;
}

export class Capture {
  readonly batchSize: number;
  /** Covered layers that took part in this forward, in the order they first ran. */
  readonly layers: readonly LayerCurvature[];
  readonly uncovered: readonly UncoveredGrad[];
  /** Covered layers that did not reach the loss in this batch (their parameters get no gradient). */
  readonly unreached: readonly { name: string; kind: TapKind; layer: TappableLayer }[];
  readonly #config: CaptureContext;
  readonly #byName = new Map<string, LayerCurvature>();
  #grams: Map<string, Tensor> | null = null;
  #disposed = false;

  constructor(
    batchSize: number,
    layers: LayerCurvature[],
    uncovered: UncoveredGrad[],
    unreached: { name: string; kind: TapKind; layer: TappableLayer }[],
    config: CaptureContext,
  ) {
    this.batchSize = batchSize;
    this.layers = layers;
    this.uncovered = uncovered;
    this.unreached = unreached;
    this.#config = config;
    for (const l of layers) this.#byName.set(l.name, l);
  }

  /** A captured layer by name. */
  layer(name: string): LayerCurvature {
    this.#check();
    const l = this.#byName.get(name);
    if (l === undefined) throw new Error(`Capture: no captured layer '${name}' (captured: ${[...this.#byName.keys()].join(', ')})`);
    return l;
  }

  /** How each layer's Gram would be built (method, block size, estimated cost and memory). */
  plan(o: Partial<CaptureConfig> = {}): GramPlan[] {
    this.#check();
    return this.layers.map((l) => planGram(l, o.maxBytes ?? this.#config.maxBytes, o.method ?? this.#config.method));
  }

  /**
   * Exact per-layer Grams K_l = U_l^T U_l (bias included), float64 [B, B], by layer name. Cached
   * when computed with the engine's settings; `o` overrides them for this call (not cached).
   */
  grams(o: Partial<CaptureConfig> = {}): Map<string, Tensor> {
    this.#check();
    const custom = o.maxBytes !== undefined || o.method !== undefined;
    if (this.#grams !== null && !custom) return this.#grams;
    const out = new Map<string, Tensor>();
    for (const p of this.plan(o)) out.set(p.name, layerGram(this.#byName.get(p.name)!, p));
    if (!custom) this.#grams = out;
    return out;
  }

  /** One layer's Gram (computed alone when `grams()` was not called). */
  gram(name: string): Tensor {
    const l = this.layer(name);
    const cached = this.#grams?.get(name);
    if (cached !== undefined) return cached;
    return layerGram(l, planGram(l, this.#config.maxBytes, this.#config.method));
  }

  /** K = sum_l K_l over every captured layer (the "global" Gram). */
  globalGram(): Tensor {
    let k: Tensor | null = null;
    for (const g of this.grams().values()) k = k === null ? g : k.add(g);
    if (k === null) throw new Error('Capture.globalGram: no covered layer took part in this batch');
    return k;
  }

  /**
   * Sets `.grad` of every covered parameter that requires grad to sum_i alpha_i g_i (g_i the gradient
   * of l_i; alpha_i = 1/B gives the mean-loss gradient), and of every uncovered one to the mean-loss
   * gradient times `uncoveredScale`. Parameters the loss does not reach get `.grad = null`.
   * `consume: true` says this is the batch's last use of the capture: output gradients are scaled in
   * place instead of copied (where no other captured tensor shares their memory), and the capture
   * is disposed afterwards.
   */
  writeWeightedGradients(alpha: Alpha, o: { uncoveredScale?: number; consume?: boolean } = {}): void {
    this.#check();
    const scale = o.uncoveredScale ?? 1;
    const overwritable = o.consume === true ? this.#exclusiveDeltaLayers() : new Set<LayerCurvature>();
    try {
      noGrad(() => scope(() => {
        for (const l of this.layers) {
          const a = alphaOf(alpha, l.name, this.batchSize);
          const [w, b] = l.params;
          // One scope per layer: its scaled output gradients are freed (and their memory reused) at once.
          scope(() => {
            const g = a === null ? null : l.weighted(a, { scratch: this.#config.scratch, overwriteDeltas: overwritable.has(l) });
            w.grad = g !== null && w.requiresGrad ? g.weight : null;
            if (b !== null) b.grad = g !== null && b.requiresGrad ? g.bias : null;
          });
        }
        for (const u of this.unreached) for (const p of [u.layer.weight, (u.layer as { bias?: Tensor | null }).bias ?? null]) if (p !== null) p.grad = null;
        for (const u of this.uncovered) u.param.grad = u.gradSum === null ? null : u.gradSum.mul(scale / this.batchSize);
      }));
    } finally {
      if (o.consume === true) this.dispose();
    }
  }

  /**
   * Layers whose output gradients may be overwritten: each is contiguous and the only captured
   * tensor (input, output gradient, uncovered gradient) on its storage. Autograd hands one tensor
   * to several outputs when they meet in a sum (z1 + z2 gives both the same gradient), and scaling
   * it in place for one layer would scale it for the other too.
   */
  #exclusiveDeltaLayers(): Set<LayerCurvature> {
    const users = new Map<bigint, number>();
    const layouts = new Map<Tensor, { storage: bigint; contiguous: boolean }>();
    const count = (t: Tensor): void => {
      const m = t.memoryLayout;
      layouts.set(t, m);
      users.set(m.storage, (users.get(m.storage) ?? 0) + 1);
    };
    for (const l of this.layers) for (const u of l.uses) [u.delta, u.input].forEach(count);
    // An uncovered parameter's gradient is read after the layers: it must not be a scaled delta.
    for (const u of this.uncovered) if (u.gradSum !== null) count(u.gradSum);
    const out = new Set<LayerCurvature>();
    for (const l of this.layers) {
      const ok = l.uses.every((u) => {
        const m = layouts.get(u.delta)!;
        return m.contiguous && m.storage !== 0n && users.get(m.storage) === 1;
      });
      if (ok) out.add(l);
    }
    return out;
  }

  /** Per-sample gradients of one layer for samples start .. start+count-1: [count, ...param shape]. */
  perSampleGradients(name: string, o: { start?: number; count?: number } = {}): PerSampleGrads {
    const l = this.layer(name);
    const start = o.start ?? 0;
    const count = o.count ?? this.batchSize - start;
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 1 || start + count > this.batchSize) {
      throw new RangeError(`Capture.perSampleGradients: samples ${start}..${start + count - 1} outside the batch of ${this.batchSize}`);
    }
    return noGrad(() => l.perSample(start, count));
  }

  /**
   * The per-sample gradients of one layer in chunks of `chunk` samples. Each chunk's tensors join the
   * scope current when the iterator advances: wrap the loop body in `scope()` to free them per chunk.
   */
  *perSampleGradientChunks(name: string, chunk: number): Generator<PerSampleGrads & { start: number; count: number }> {
    if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`Capture.perSampleGradientChunks: chunk must be a positive integer, got ${chunk}`);
    for (let start = 0; start < this.batchSize; start += chunk) {
      const count = Math.min(chunk, this.batchSize - start);
      yield { ...this.perSampleGradients(name, { start, count }), start, count };
    }
  }

  /** KFAC factors per layer name (conventions in layers.ts), in the layers' dtype. */
  kfacFactors(): Map<string, KfacFactors> {
    this.#check();
    return noGrad(() => new Map(this.layers.map((l) => [l.name, l.kfac()] as const)));
  }

  /** sum_t ||d l_i / d z_it||^2 per sample for one layer's output z, [B] (iEF's right-hand side on the last layer). */
  outputGradSqNorms(name: string): Tensor {
    const l = this.layer(name);
    return noGrad(() => l.deltaSqNorms());
  }

  /** Frees the captured tensors now (they are freed with their scope anyway). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const l of this.layers) l.dispose();
    for (const u of this.uncovered) u.gradSum?.dispose();
    if (this.#grams !== null) for (const g of this.#grams.values()) g.dispose();
  }

  #check(): void {
    if (this.#disposed) throw new Error('Capture: used after dispose()');
  }
}

/** The coefficients for layer `name` (null: the layer gets no gradient), checked against the batch. */
export function alphaOf(alpha: Alpha, name: string, b: number, what = 'Capture.writeWeightedGradients'): Tensor | null {
  let a: Tensor | null | undefined;
  if (alpha instanceof Map) a = alpha.get(name) ?? null;
  else if (alpha instanceof Tensor) a = alpha;
  else a = (alpha as Record<string, Tensor>)[name] ?? null;
  if (a === null) return null;
  if (a.dim !== 1 || a.size(0) !== b) throw new RangeError(`${what}: alpha for '${name}' must have shape [${b}], got [${a.shape}]`);
  // No detach: the weighted gradients are made under noGrad, so alpha never joins a graph.
  return a;
}
