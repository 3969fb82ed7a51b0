// FNGD (FNGD.md section 2): NGD in the first epoch, storing each batch's coefficients alpha; later
// epochs look alpha up and step with sum_i alpha_i g_i: no Gram, no solve, one backward.
//
// Options beyond NGD's:
//   key           'sample' (default: by dataset sample id, survives reshuffling) or 'slot' (batch k,
//                 position j; needs a fixed batch order). Unseen ids get the layer's mean alpha.
//   refreshEvery  recompute (run NGD again) every N epochs: epochs 0, N, 2N, ... (0: only epoch 0).
//   probeEvery    in reuse epochs, every N steps also solve NGD on the batch and compare the reused
//                 direction with the fresh one (cosine, from the Grams: d.d' = sum_l a_l^T K_l a'_l);
//                 below `probeThreshold` the next epoch becomes an NGD epoch. The probed step uses
//                 the fresh coefficients.
// The store and the refresh plan are part of the state dict, so a resumed run continues exactly.
import type { Capture } from '../curvature/index.js';
import type { Module } from '../nn/module.js';
import { noGrad, scope, type Tensor } from '../tensor/index.js';
import { CoefficientStore, type CoefficientKey, type CoefficientStoreMeta } from './coefficient-store.js';
import { NGD, type Coefficients, type NGDOptions } from './ngd.js';
import type { StepInput, StepStats } from './optimizer.js';

export interface FNGDOptions extends NGDOptions {
  /** Sample keying: the dataset size (ids are in [0, numSamples)). */
  numSamples?: number;
  /** Slot keying: batches per epoch and the batch size. */
  batchesPerEpoch?: number;
  batchSize?: number;
  key?: CoefficientKey;
  refreshEvery?: number;
  probeEvery?: number;
  probeThreshold?: number;
}

interface FngdMeta {
  store: CoefficientStoreMeta;
  groups: string[];
  extraNgdEpochs: number[];
}

export class FNGD extends NGD {
  override readonly kind: string = 'FNGD';
  readonly key: CoefficientKey;
  readonly refreshEvery: number;
  readonly probeEvery: number;
  readonly probeThreshold: number;
  #store: CoefficientStore | null = null;
  #groups: string[] | null = null;
  /** Epochs turned into NGD epochs by the staleness probe. */
  #extraNgdEpochs = new Set<number>();
  #reuseSteps = 0;
  readonly #capacity: number;
  readonly #batchSize: number;

  constructor(model: Module, o: FNGDOptions) {
    const { numSamples, batchesPerEpoch, batchSize = 128, key = 'sample', refreshEvery = 0, probeEvery = 0, probeThreshold = 0.9, ...ngd } = o;
    // Checked before super(): the engine it builds taps the model, and a throw after would leave it tapped.
    const owner = new.target.name;
    if (key !== 'sample' && key !== 'slot') throw new RangeError(`${owner}: option 'key' must be 'sample' or 'slot', got '${String(key)}'`);
    const positive = (k: string, v: unknown): number => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new RangeError(`${owner}: option '${k}' must be a positive integer, got ${String(v)}`);
      return v;
    };
    if (key === 'sample') positive('numSamples', numSamples);
    else positive('batchesPerEpoch', batchesPerEpoch);
    positive('batchSize', batchSize);
    for (const [k, v] of [['refreshEvery', refreshEvery], ['probeEvery', probeEvery]] as const) {
      if (!Number.isInteger(v) || v < 0) throw new RangeError(`${owner}: option '${k}' must be a non-negative integer, got ${String(v)}`);
    }
    if (!(probeThreshold >= -1 && probeThreshold <= 1)) throw new RangeError(`${owner}: option 'probeThreshold' must be in [-1, 1], got ${probeThreshold}`);
    super(model, ngd);
    this.key = key;
    this.refreshEvery = refreshEvery;
    this.probeEvery = probeEvery;
    this.probeThreshold = probeThreshold;
    this.#batchSize = batchSize;
    this.#capacity = key === 'sample' ? numSamples! : batchesPerEpoch! * batchSize;
  }

  /** Whether `epoch` computes (and stores) coefficients rather than reusing them. */
  isNgdEpoch(epoch: number): boolean {
    return epoch === 0 || (this.refreshEvery > 0 && epoch % this.refreshEvery === 0) || this.#extraNgdEpochs.has(epoch) || this.#store === null;
  }

  get store(): CoefficientStore | null {
    return this.#store;
  }

  protected override computeGradients(input: StepInput, loss: number): StepStats {
    if (this.isNgdEpoch(input.epoch)) return { ...super.computeGradients(input, loss), reused: 0 };
    const cap = this.engine.capture(input.perSampleLoss);
    const looked = this.#store!.get(input.sampleIds, input.batchIndex ?? 0, cap.layers[0]?.params[0].device ?? 'cpu');
    // Stored rows summed to 1 within their epoch-1 batch; in a reshuffled batch, restore the sum.
    const alpha = this.normalize === 'sum' ? looked.alpha.div(looked.alpha.sum(1, true)) : looked.alpha;
    const missing = looked.missing;
    const stored: Coefficients = { alpha, groups: this.#groups! };
    this.#reuseSteps += 1;
    if (this.probeEvery > 0 && this.#reuseSteps % this.probeEvery === 0) {
      const fresh = this.solve(cap, input.epoch);
      const cosine = this.#cosine(cap, stored, fresh);
      if (cosine < this.probeThreshold) this.#extraNgdEpochs.add(input.epoch + 1);
      this.writeDirection(cap, fresh);
      return { loss, reused: 1, missing, probeCosine: cosine };
    }
    this.writeDirection(cap, stored);
    return { loss, reused: 1, missing };
  }

  protected override onCoefficients(input: StepInput, c: Coefficients): void {
    if (this.#store === null || this.#groups === null || this.#groups.join('\n') !== c.groups.join('\n')) {
      this.#store = new CoefficientStore({ key: this.key, groups: c.groups.length, capacity: this.#capacity, batchSize: this.#batchSize });
      this.#groups = [...c.groups];
    }
    this.#store.put(input.sampleIds, input.batchIndex ?? 0, c.alpha);
  }

  /** cos(U a, U a') over every covered layer, from the Grams: no per-sample gradient is built. */
  #cosine(cap: Capture, a: Coefficients, b: Coefficients): number {
    return noGrad(() => scope(() => {
      const grams = cap.grams();
      let ab = 0;
      let aa = 0;
      let bb = 0;
      for (const [name, K] of grams) {
        const ra = rowFor(a, name);
        const rb = rowFor(b, name);
        const Kb = K.matmul(rb);
        ab += ra.dot(Kb).item();
        aa += ra.dot(K.matmul(ra)).item();
        bb += rb.dot(Kb).item();
      }
      return ab / Math.sqrt(Math.max(aa * bb, 1e-300));
    }));
  }

  protected override extraStateDict(): { tensors: Map<string, Tensor>; meta: unknown } {
    if (this.#store === null) return { tensors: new Map(), meta: null };
    const sd = this.#store.stateDict();
    const meta: FngdMeta = { store: sd.meta, groups: this.#groups!, extraNgdEpochs: [...this.#extraNgdEpochs].sort((x, y) => x - y) };
    return { tensors: new Map([...sd.tensors].map(([k, v]) => [`store.${k}`, v])), meta: { ...meta, reuseSteps: this.#reuseSteps } };
  }

  protected override loadExtraStateDict(tensors: Map<string, Tensor>, meta: unknown): void {
    if (meta === null || meta === undefined) {
      this.#store = null;
      this.#groups = null;
      this.#extraNgdEpochs = new Set();
      this.#reuseSteps = 0;
      return;
    }
    const m = meta as FngdMeta & { reuseSteps: number };
    const storeTensors = new Map<string, Tensor>();
    for (const [k, v] of tensors) if (k.startsWith('store.')) storeTensors.set(k.slice(6), v);
    if (m.store.key !== this.key) throw new Error(`${this.kind}.loadStateDict: the stored coefficients are keyed by ${m.store.key}, this optimizer by ${this.key}`);
    if (m.store.capacity !== this.#capacity) throw new Error(`${this.kind}.loadStateDict: the store holds ${m.store.capacity} entries, this optimizer expects ${this.#capacity} (another dataset?)`);
    this.#store = CoefficientStore.fromStateDict(storeTensors, m.store);
    this.#groups = [...m.groups];
    this.#extraNgdEpochs = new Set(m.extraNgdEpochs);
    this.#reuseSteps = m.reuseSteps ?? 0;
  }
}

function rowFor(c: Coefficients, name: string): Tensor {
  const g = c.groups.length === 1 && c.groups[0] === '*' ? 0 : c.groups.indexOf(name);
  if (g < 0) throw new Error(`FNGD: no coefficients for layer '${name}'`);
  return c.alpha.select(0, g);
}
