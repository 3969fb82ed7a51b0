// The per-sample curvature engine: built once from a model, it taps the model's Linear, Conv2d
// (groups = 1) and Embedding layers and, per training step, turns the step's per-sample losses into a
// `Capture` (capture.ts) with ONE backward pass:
//   grad(sum_i l_i, [every recorded layer output..., every uncovered parameter...])
// Row i of a layer output's gradient is d l_i / d z_i (samples do not interact), which with the
// recorded input gives everything per-sample about that layer (layers.ts).
//
// Covered: weight and bias of every tapped layer. Uncovered: every other parameter that requires
// grad (BatchNorm/LayerNorm affine weights and biases, grouped convs, free parameters): they get the
// plain mean-loss gradient, first order (see capture.ts). Why not exact per-sample statistics for norm
// affine parameters: they are cheap in principle, but need the norm layer's normalized input and
// output gradient, which only a tap inside the norm layer could record; and BatchNorm in training
// mode couples the samples, so even the covered layers' per-sample gradients are those of the
// batch-statistics network (d l_i / d z_i with the batch's mean and variance held as they are), the
// approximation every hook-based method makes. `coverage()` lists both sets.
// Tied weights: a parameter used by two tappable layers (an embedding shared with the output
// projection) has per-sample gradients summed over both uses, which neither layer's own statistics
// give; such layers are left uncovered (`tiedLayers`), so their parameters get the mean-loss
// gradient. A parameter read outside any tappable layer (logits = h emb.weight^T) is not detected:
// its covered layer's statistics would miss that use.
//
// Usage, inside one scope (the trainer's step scope):
//   const engine = new CurvatureEngine(model);            // once; starts recording
//   const loss = task.perSampleLoss(batch);                // forward: covered layers record
//   const cap = engine.capture(loss);                      // one backward
//   const K = cap.grams();                                 // per layer, float64 [B, B]
//   cap.writeWeightedGradients(alpha, { consume: true });  // .grad = sum_i alpha_i g_i; last use
// Forwards run with grad disabled (evaluation) are not recorded. With one global alpha and nothing
// else wanted from the batch (FNGD after epoch 1), `writeGlobalWeightedGradients(loss, alpha)` skips
// the capture: one ordinary backward of sum_i alpha_i l_i.
//
// Cost notes (CPU, measured by bench/curvature.ts): the capture holds every layer's output gradient
// at once (about the activations of one forward), so a capture step peaks higher than a plain step;
// glibc gives that extra memory back to the OS at the end of each step and re-faults it in the next
// one unless MALLOC_TRIM_THRESHOLD_/MALLOC_MMAP_THRESHOLD_ are raised for the process. Temporaries
// of our own (the alpha-scaled gradients) therefore go into a scratch buffer kept by the engine, or,
// when the capture is consumed, over the output gradients themselves: scaling is a memory-bound
// pass over every layer's output gradient, and writing a copy doubles its traffic.
import type { Conv2d } from '../nn/conv.js';
import type { Embedding, Linear } from '../nn/linear.js';
import type { Module } from '../nn/module.js';
import { tapKind, TapRecorder, type TapKind, type TappableLayer, type TapRecord } from '../nn/taps.js';
import { grad, noGrad, registerGradHook, scope, type Tensor } from '../tensor/index.js';
import { alphaOf, Capture, type Alpha, type UncoveredGrad } from './capture.js';
import type { GramMethod } from './gram.js';
import { ConvCurvature } from './conv.js';
import { EmbeddingCurvature } from './embedding.js';
import { Scratch, type LayerCurvature, type LayerGrads, type Use } from './layers.js';
import { LinearCurvature } from './linear.js';

export interface CurvatureOptions {
  /** Which tappable layers to cover (default: all; conv layers with groups != 1 are never covered). */
  filter?: (name: string, layer: TappableLayer) => boolean;
  /** Memory bound in bytes for one layer's Gram work buffers (default 256 MiB). */
  maxBytes?: number;
  /** Gram method for every layer: 'auto' (cost model, default), or force one. */
  method?: GramMethod | 'auto';
}

export interface CoveredLayer {
  name: string;
  kind: TapKind;
  layer: TappableLayer;
}

/** Records only forwards that build a graph (evaluation under noGrad is skipped). */
class GradTapRecorder extends TapRecorder {
  override record(layer: TappableLayer, input: Tensor, output: Tensor): void {
    if (output.requiresGrad) super.record(layer, input, output);
  }
}

export class CurvatureEngine {
  readonly layers: readonly CoveredLayer[];
  /** Tappable layers left uncovered because they share a parameter with another one (tied weights). */
  readonly tiedLayers: readonly string[];
  /** Parameters with exact per-sample statistics (weights and biases of `layers`). */
  readonly coveredParams: readonly { name: string; param: Tensor }[];
  /** Parameters that get the first-order mean-loss gradient. */
  readonly uncoveredParams: readonly { name: string; param: Tensor }[];
  readonly maxBytes: number;
  readonly method: GramMethod | 'auto';
  readonly #recorder: GradTapRecorder;
  readonly #scratch = new Scratch();

  constructor(model: Module, o: CurvatureOptions = {}) {
    this.maxBytes = o.maxBytes ?? 256 * 2 ** 20;
    this.method = o.method ?? 'auto';
    if (!(this.maxBytes > 0)) throw new RangeError(`CurvatureEngine: maxBytes must be > 0, got ${this.maxBytes}`);
    if (!['auto', 'pairwise', 'materialize'].includes(this.method)) throw new RangeError(`CurvatureEngine: unknown method '${this.method}'`);
    const candidates: CoveredLayer[] = [];
    // Users of each parameter among ALL tappable layers (filtered out or not: a use is a use).
    const owners = new Map<Tensor, number>();
    for (const [name, m] of model.namedModules()) {
      const kind = tapKind(m);
      if (kind === null) continue;
      const layer = m as TappableLayer;
      for (const p of layerParams(layer)) owners.set(p, (owners.get(p) ?? 0) + 1);
      if (kind === 'conv2d' && (layer as Conv2d).groups !== 1) continue;
      if (o.filter === undefined || o.filter(name, layer)) candidates.push({ name, kind, layer });
    }
    const tied = (l: CoveredLayer): boolean => layerParams(l.layer).some((p) => owners.get(p)! > 1);
    const layers = candidates.filter((l) => !tied(l));
    this.tiedLayers = candidates.filter(tied).map((l) => l.name);
    this.layers = layers;
    const covered = new Set<Tensor>();
    for (const { layer } of layers) for (const p of layerParams(layer)) covered.add(p);
    const named = model.namedParameters();
    this.coveredParams = named.filter(([, p]) => covered.has(p)).map(([name, param]) => ({ name, param }));
    this.uncoveredParams = named.filter(([, p]) => !covered.has(p)).map(([name, param]) => ({ name, param }));
    this.#recorder = new GradTapRecorder(layers.map((l) => ({ ...l })));
    this.#recorder.enable();
  }

  /** Names of covered and uncovered parameters. */
  coverage(): { covered: string[]; uncovered: string[] } {
    return { covered: this.coveredParams.map((p) => p.name), uncovered: this.uncoveredParams.map((p) => p.name) };
  }

  get enabled(): boolean {
    return this.#recorder.enabled;
  }
  /** Resumes recording (the engine records from construction on). */
  enable(): this {
    this.#recorder.enable();
    return this;
  }
  /** Stops recording and drops pending records. */
  disable(): this {
    this.#recorder.disable();
    this.#recorder.clear();
    return this;
  }
  /** Drops records of a forward that will not be captured (the next capture ignores stale ones anyway). */
  clear(): void {
    this.#recorder.clear();
  }

  /**
   * One backward pass of sum_i perSampleLoss_i: captures every covered layer recorded since the last
   * capture (or `clear()`), and the summed gradients of the uncovered parameters. Call it in the scope
   * of the forward. `retainGraph` keeps the graph for another backward (tests, diagnostics).
   */
  capture(perSampleLoss: Tensor, o: { retainGraph?: boolean } = {}): Capture {
    if (perSampleLoss.dim !== 1) throw new RangeError(`CurvatureEngine.capture: perSampleLoss must have shape [B], got [${perSampleLoss.shape}]`);
    if (!perSampleLoss.requiresGrad) throw new Error('CurvatureEngine.capture: perSampleLoss is not attached to the autograd graph');
    const b = perSampleLoss.size(0);
    const records = this.#takeRecords(b, 'capture');
    const uncovered = this.uncoveredParams.filter((p) => p.param.requiresGrad);
    const grads = this.#backward(perSampleLoss, records, uncovered, 'capture', o.retainGraph ?? false);
    const uses = new Map<TappableLayer, Use[]>();
    records.forEach((r, i) => {
      r.output.dispose();
      const delta = grads[i] ?? null;
      if (delta === null) {
        r.input.dispose();
        return;
      }
      const list = uses.get(r.layer) ?? [];
      list.push({ input: r.input, delta });
      uses.set(r.layer, list);
    });
    const layers: LayerCurvature[] = [];
    const byLayer = new Map(this.layers.map((l) => [l.layer, l] as const));
    for (const [layer, us] of uses) layers.push(makeLayer(byLayer.get(layer)!, us, b));
    const unreached = this.layers.filter((l) => !uses.has(l.layer));
    const unc: UncoveredGrad[] = uncovered.map((p, i) => ({ name: p.name, param: p.param, gradSum: grads[records.length + i] ?? null }));
    return new Capture(b, layers, unc, unreached, { maxBytes: this.maxBytes, method: this.method, scratch: this.#scratch });
  }

  /**
   * `capture(l).writeWeightedGradients(alpha, { consume: true })` without waiting for the whole
   * backward: a gradient hook on each covered layer's output computes that layer's sum_i alpha_i g_i
   * the moment its output gradient exists, while it (and the layer's input, read a moment earlier by
   * the backward itself) is still in cache; FNGD's step in later epochs, when the coefficients are
   * known before the backward. The same `.grad` as the capture path: the same products, on the same
   * tensors (tested to float rounding). Where a hook cannot run (the backward does not pass through
   * the node that made the first layer's output, or a CUDA graph whose backward runs on libtorch's
   * own threads) the layer is done from the gradient the backward returns, after it, as the capture
   * does. Uncovered parameters get the mean-loss gradient times `uncoveredScale`. Returns which layers
   * were done inside the backward and which after it.
   */
  weightedBackward(perSampleLoss: Tensor, alpha: Alpha, o: { uncoveredScale?: number } = {}): { inBackward: string[]; afterBackward: string[] } {
    if (perSampleLoss.dim !== 1) throw new RangeError(`CurvatureEngine.weightedBackward: perSampleLoss must have shape [B], got [${perSampleLoss.shape}]`);
    if (!perSampleLoss.requiresGrad) throw new Error('CurvatureEngine.weightedBackward: perSampleLoss is not attached to the autograd graph');
    const b = perSampleLoss.size(0);
    const records = this.#takeRecords(b, 'weightedBackward');
    const uncovered = this.uncoveredParams.filter((p) => p.param.requiresGrad);
    const byLayer = new Map(this.layers.map((l) => [l.layer, l] as const));
    const sums = new Map<TappableLayer, LayerGrads>();
    const done = new Array<boolean>(records.length).fill(false);
    const inBackward = new Set<string>();
    const afterBackward = new Set<string>();
    const accumulate = (i: number, delta: Tensor, where: Set<string>): void => {
      done[i] = true;
      where.add(records[i]!.name);
      const r = records[i]!;
      const l = byLayer.get(r.layer)!;
      const a = alphaOf(alpha, l.name, b, 'CurvatureEngine.weightedBackward');
      if (a === null) return;
      // Its own scope: the layer's temporaries go at once; the gradient (returned) moves out of it.
      const g = scope(() => noGrad(() => makeLayer(l, [{ input: r.input, delta }], b).weighted(a, { scratch: this.#scratch })));
      const prev = sums.get(r.layer);
      sums.set(r.layer, prev === undefined ? g : { weight: prev.weight.add(g.weight), bias: prev.bias === null || g.bias === null ? null : prev.bias.add(g.bias) });
    };
    scope(() => {
      const removers = records.map((r, i) => registerGradHook(r.output, (delta) => accumulate(i, delta, inBackward)));
      let grads: (Tensor | null)[];
      try {
        grads = this.#backward(perSampleLoss, records, uncovered, 'weightedBackward', false);
      } finally {
        for (const remove of removers) remove();
      }
      records.forEach((r, i) => {
        const delta = grads[i] ?? null;
        if (!done[i] && delta !== null) accumulate(i, delta, afterBackward);
      });
      noGrad(() => {
        for (const l of this.layers) {
          const [w, bias] = [l.layer.weight, (l.layer as { bias?: Tensor | null }).bias ?? null];
          const g = sums.get(l.layer);
          w.grad = g !== undefined && w.requiresGrad ? g.weight : null;
          if (bias !== null) bias.grad = g !== undefined && g.bias !== null && bias.requiresGrad ? g.bias : null;
        }
        const scale = o.uncoveredScale ?? 1;
        uncovered.forEach((u, i) => {
          const gs = grads[records.length + i] ?? null;
          u.param.grad = gs === null ? null : gs.mul(scale / b);
        });
      });
      disposeRecords(records);
    });
    return { inBackward: [...inBackward], afterBackward: [...afterBackward] };
  }

  /** Takes this forward's records over (they stay in its scope), skipping those whose scope ended. */
  #takeRecords(b: number, what: string): TapRecord[] {
    const taken = this.#recorder.records.splice(0);
    const records = taken.filter((r) => !r.output.isDisposed && !r.input.isDisposed);
    disposeRecords(taken.filter((r) => !records.includes(r)));
    for (const r of records) {
      if (r.output.dim < 1 || r.output.size(0) !== b) {
        const e = new Error(`CurvatureEngine.${what}: layer '${r.name}' ran on a batch of ${r.output.size(0)} in this forward, the loss has ${b} samples (batch must be dimension 0)`);
        disposeRecords(records);
        throw e;
      }
    }
    return records;
  }

  /** ONE backward of sum_i l_i to every recorded layer output and uncovered parameter. */
  #backward(perSampleLoss: Tensor, records: TapRecord[], uncovered: { param: Tensor }[], what: string, retainGraph: boolean): (Tensor | null)[] {
    try {
      if (records.length === 0 && uncovered.length === 0) throw new Error(`CurvatureEngine.${what}: nothing recorded (was the forward run with the engine enabled, with grad on?)`);
      return grad(perSampleLoss.sum(), [...records.map((r) => r.output), ...uncovered.map((p) => p.param)], { allowUnused: true, retainGraph });
    } catch (e) {
      disposeRecords(records);
      throw e;
    }
  }

  /**
   * FNGD's step with ONE global alpha, without a capture: one ordinary backward of sum_i alpha_i l_i
   * sets `.grad` = sum_i alpha_i g_i of EVERY parameter that requires grad (covered or not: this
   * backward has no per-layer split, so uncovered parameters follow the same alpha here, unlike a
   * capture's writeWeightedGradients). Costs what a plain backward costs. Drops the forward's records.
   */
  writeGlobalWeightedGradients(perSampleLoss: Tensor, alpha: Tensor): void {
    const b = perSampleLoss.size(0);
    if (alpha.dim !== 1 || alpha.size(0) !== b) throw new RangeError(`CurvatureEngine.writeGlobalWeightedGradients: alpha must have shape [${b}], got [${alpha.shape}]`);
    this.#recorder.clear();
    const params = [...this.coveredParams, ...this.uncoveredParams].map((p) => p.param).filter((p) => p.requiresGrad);
    scope(() => {
      const objective = perSampleLoss.mul(alpha.detach().to(perSampleLoss.dtype)).sum();
      const g = grad(objective, params, { allowUnused: true });
      params.forEach((p, i) => {
        p.grad = g[i] ?? null;
      });
    });
  }

  /** Stops recording, forgets pending records and frees the engine's scratch memory. */
  dispose(): void {
    this.disable();
    this.#scratch.dispose();
  }
}

/** Frees the engine's handles onto recorded inputs and outputs (the tensors live on where else used). */
function disposeRecords(records: readonly TapRecord[]): void {
  for (const r of records) {
    r.input.dispose();
    r.output.dispose();
  }
}

function layerParams(layer: TappableLayer): Tensor[] {
  const b = (layer as Linear | Conv2d).bias ?? null;
  return b === null || b === undefined ? [layer.weight] : [layer.weight, b];
}

function makeLayer(l: CoveredLayer, uses: Use[], b: number): LayerCurvature {
  switch (l.kind) {
    case 'linear': return new LinearCurvature(l.name, l.layer as Linear, uses, b);
    case 'conv2d': return new ConvCurvature(l.name, l.layer as Conv2d, uses, b);
    case 'embedding': return new EmbeddingCurvature(l.name, l.layer as Embedding, uses, b);
  }
}
