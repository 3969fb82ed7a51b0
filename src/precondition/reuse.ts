// The reuse part of a sample-space rule: FNGD's idea (FNGD.md section 2) for any solved rule.
// Solve epochs (epoch 0, every `refreshEvery`-th, and those the probe asks for) solve and store
// each batch's coefficients; the other epochs look them up: no Gram, no solve, one weighted
// backward. With NGD's rule this is FNGD; with iEF's, "fast iEF".
//   key           'sample' (by dataset sample id: survives reshuffling) or 'slot' (batch k,
//                 position j: needs a fixed batch order). Unseen ids get the group's mean.
//   refreshEvery  solve again every N epochs: epochs 0, N, 2N, ... (0: epoch 0 only).
//   probeEvery    in reuse epochs, every N steps also solve on the batch and compare the reused
//                 direction with the fresh one (cosine, from the Grams); below `probeThreshold`
//                 the next epoch becomes a solve epoch. The probed step uses the fresh coefficients.
// The store, the layout and the probe's plan are in the state dict: a resumed run continues exactly.
import { checkChoice } from '../optim/optimizer.js';
import type { StepInput } from '../optim/step.js';
import type { Tensor } from '../tensor/index.js';
import { CoefficientStore, type CoefficientKey, type CoefficientStoreMeta } from './coefficient-store.js';
import type { CoefficientGroups, Coefficients } from './coefficients.js';

export interface ReuseOptions {
  key?: CoefficientKey;
  /** Sample keying: the dataset's length (ids are in [0, numSamples)). */
  numSamples?: number;
  /** Slot keying: batches per epoch and the batch size. */
  batchesPerEpoch?: number;
  batchSize?: number;
  refreshEvery?: number;
  probeEvery?: number;
  probeThreshold?: number;
}

/** The reuse settings as saved in state dicts. */
export interface ReuseSettings {
  key: CoefficientKey;
  capacity: number;
  batchSize: number;
  refreshEvery: number;
  probeEvery: number;
  probeThreshold: number;
}

export interface ReuseMeta {
  store: CoefficientStoreMeta;
  groups: CoefficientGroups;
  extraSolveEpochs: number[];
  reuseSteps: number;
}

/** Checks the options (errors name them) and fills the defaults. */
export function reuseSettings(owner: string, o: ReuseOptions): ReuseSettings {
  const { key = 'sample', numSamples, batchesPerEpoch, batchSize = 128, refreshEvery = 0, probeEvery = 0, probeThreshold = 0.9 } = o;
  checkChoice(owner, 'key', key, ['sample', 'slot']);
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
  const capacity = key === 'sample' ? numSamples! : batchesPerEpoch! * batchSize;
  return { key, capacity, batchSize, refreshEvery, probeEvery, probeThreshold };
}

export class CoefficientReuse {
  readonly settings: ReuseSettings;
  #store: CoefficientStore | null = null;
  /** What the stored rows belong to. */
  #groups: CoefficientGroups | null = null;
  /** Epochs turned into solve epochs by the staleness probe. */
  #extraSolveEpochs = new Set<number>();
  #reuseSteps = 0;

  constructor(settings: ReuseSettings) {
    this.settings = settings;
  }

  get store(): CoefficientStore | null {
    return this.#store;
  }

  /** Whether `epoch` solves (and stores) coefficients rather than reusing them. */
  solvesAt(epoch: number): boolean {
    const { refreshEvery } = this.settings;
    return epoch === 0 || (refreshEvery > 0 && epoch % refreshEvery === 0) || this.#extraSolveEpochs.has(epoch) || this.#store === null;
  }

  /** Keeps a solved batch's coefficients (a new group layout starts a new store). */
  put(input: StepInput, c: Coefficients): void {
    if (this.#store === null || JSON.stringify(this.#groups) !== JSON.stringify(c.groups)) {
      const { key, capacity, batchSize } = this.settings;
      this.#store = new CoefficientStore({ key, groups: c.alpha.size(0), capacity, batchSize });
      this.#groups = structuredClone(c.groups);
    }
    this.#store.put(input.sampleIds, input.batchIndex ?? 0, c.alpha);
  }

  /** The stored coefficients of a batch (CoefficientStore.gather: host float64 [groups, B]), their groups, and how many were unseen. */
  lookup(input: StepInput): { values: Float64Array; missing: number; groups: CoefficientGroups } {
    const got = this.#store!.gather(input.sampleIds, input.batchIndex ?? 0);
    this.#reuseSteps += 1;
    return { ...got, groups: this.#groups! };
  }

  /** Whether the reuse step just looked up is a probe step. */
  probeDue(): boolean {
    return this.settings.probeEvery > 0 && this.#reuseSteps % this.settings.probeEvery === 0;
  }

  /** A probe's verdict: a cosine below the threshold makes the next epoch a solve epoch. */
  noteProbe(cosine: number, epoch: number): void {
    if (cosine < this.settings.probeThreshold) this.#extraSolveEpochs.add(epoch + 1);
  }

  stateDict(): { tensors: Map<string, Tensor>; meta: ReuseMeta | null } {
    if (this.#store === null) return { tensors: new Map(), meta: null };
    const sd = this.#store.stateDict();
    return {
      tensors: new Map([...sd.tensors].map(([k, v]) => [`store.${k}`, v])),
      meta: { store: sd.meta, groups: this.#groups!, extraSolveEpochs: [...this.#extraSolveEpochs].sort((x, y) => x - y), reuseSteps: this.#reuseSteps },
    };
  }

  /** Restores a state dict; `who` names the caller in errors. */
  loadStateDict(tensors: Map<string, Tensor>, meta: unknown, who: string): void {
    if (meta === null || meta === undefined) {
      this.#store = null;
      this.#groups = null;
      this.#extraSolveEpochs = new Set();
      this.#reuseSteps = 0;
      return;
    }
    const m = meta as ReuseMeta;
    const storeTensors = new Map<string, Tensor>();
    for (const [k, v] of tensors) if (k.startsWith('store.')) storeTensors.set(k.slice(6), v);
    if (m.store?.key !== this.settings.key) throw new Error(`${who}: the stored coefficients are keyed by ${m.store?.key}, this optimizer by ${this.settings.key}`);
    if (m.store.capacity !== this.settings.capacity) throw new Error(`${who}: the store holds ${m.store.capacity} entries, this optimizer expects ${this.settings.capacity} (another dataset?)`);
    const store = CoefficientStore.fromStateDict(storeTensors, m.store);
    this.#store = store;
    this.#groups = structuredClone(m.groups);
    this.#extraSolveEpochs = new Set(m.extraSolveEpochs);
    this.#reuseSteps = m.reuseSteps ?? 0;
  }
}
