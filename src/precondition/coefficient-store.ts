// FNGD's memory: the NGD coefficients alpha computed in the first epoch, kept for reuse.
//
// Keyed by dataset sample id (default; survives reshuffling: sample i gets back the alpha it had
// in its epoch-1 batch) or by batch slot (batch k, position j; only meaningful with a fixed batch
// order). Coefficients are stored per "group": one group per preconditioned layer (layer-wise
// NGD) or a single group (global NGD).
//
// A sample never seen (a sample id first met after the store was filled, or a slot beyond the
// stored ones) gets the MEAN of that group's stored coefficients: the same scale as its
// neighbours, no preference among samples — SGD's uniform weights at the store's step size.
import { noGrad, scope, tensor, type DType, type Tensor } from '../tensor/index.js';

export type CoefficientKey = 'sample' | 'slot';

export interface CoefficientStoreMeta {
  key: CoefficientKey;
  groups: number;
  /** sample: the dataset size; slot: the number of slots (batches x batch size). */
  capacity: number;
  /** slot keying: the batch size the slots were laid out with. */
  batchSize: number;
}

export class CoefficientStore {
  readonly key: CoefficientKey;
  readonly groups: number;
  readonly capacity: number;
  readonly batchSize: number;
  /** float64 [groups, capacity]; `seen` marks filled columns. */
  #values: Float64Array;
  #seen: Uint8Array;
  #sums: Float64Array;
  #count = 0;

  constructor(o: { key: CoefficientKey; groups: number; capacity: number; batchSize: number }) {
    if (o.key !== 'sample' && o.key !== 'slot') throw new TypeError(`CoefficientStore: key must be 'sample' or 'slot', got '${String(o.key)}'`);
    for (const k of ['groups', 'capacity', 'batchSize'] as const) {
      if (!Number.isInteger(o[k]) || o[k] < 1) throw new RangeError(`CoefficientStore: ${k} must be a positive integer, got ${o[k]}`);
    }
    this.key = o.key;
    this.groups = o.groups;
    this.capacity = o.capacity;
    this.batchSize = o.batchSize;
    this.#values = new Float64Array(o.groups * o.capacity);
    this.#seen = new Uint8Array(o.capacity);
    this.#sums = new Float64Array(o.groups);
  }

  /** How many samples (or slots) hold coefficients. */
  get filled(): number {
    return this.#count;
  }

  /** The storage column of each sample of a batch. */
  columns(sampleIds: Int32Array, batchIndex: number): Int32Array {
    if (this.key === 'sample') {
      for (const id of sampleIds) {
        if (!(id >= 0 && id < this.capacity)) {
          throw new RangeError(`CoefficientStore: sample id ${id} outside [0, ${this.capacity}): the store keyed by sample id was sized ` +
            `for numSamples = ${this.capacity}, which must be the dataset's length (dataset.length: the largest sample id + 1), ` +
            'not a loader\'s subset size (loader.numSamples) or the batch size');
        }
      }
      return sampleIds;
    }
    const cols = new Int32Array(sampleIds.length);
    for (let j = 0; j < cols.length; j++) cols[j] = batchIndex * this.batchSize + j;
    return cols;
  }

  /** Stores alpha (float64 [groups, B], any device) for the samples of one batch. */
  put(sampleIds: Int32Array, batchIndex: number, alpha: Tensor): void {
    const b = sampleIds.length;
    if (alpha.dim !== 2 || alpha.size(0) !== this.groups || alpha.size(1) !== b) {
      throw new RangeError(`CoefficientStore.put: alpha must be [${this.groups}, ${b}], got [${alpha.shape}]`);
    }
    const a = noGrad(() => scope(() => alpha.detach().to({ dtype: 'float64', device: 'cpu' }).contiguous().data())) as Float64Array;
    const cols = this.columns(sampleIds, batchIndex);
    for (let j = 0; j < b; j++) {
      const c = cols[j]!;
      if (c >= this.capacity) continue; // a slot beyond the layout: nothing to keep
      if (!this.#seen[c]) {
        this.#seen[c] = 1;
        this.#count += 1;
      } else {
        for (let g = 0; g < this.groups; g++) this.#sums[g]! -= this.#values[g * this.capacity + c]!;
      }
      for (let g = 0; g < this.groups; g++) {
        const v = a[g * b + j]!;
        this.#values[g * this.capacity + c] = v;
        this.#sums[g]! += v;
      }
    }
  }

  /**
   * The stored coefficients of a batch, row-major [groups, B] float64 on the host (a fresh array
   * the caller may change); unseen samples get the group mean. Returns `missing`, the number of
   * unseen samples, so callers can log it.
   */
  gather(sampleIds: Int32Array, batchIndex: number): { values: Float64Array; missing: number } {
    if (this.#count === 0) throw new Error('CoefficientStore: the store is empty (no NGD epoch has filled it)');
    const b = sampleIds.length;
    const cols = this.columns(sampleIds, batchIndex);
    const values = new Float64Array(this.groups * b);
    let missing = 0;
    for (let j = 0; j < b; j++) {
      const c = cols[j]!;
      const known = c < this.capacity && this.#seen[c] === 1;
      if (!known) missing += 1;
      for (let g = 0; g < this.groups; g++) {
        values[g * b + j] = known ? this.#values[g * this.capacity + c]! : this.#sums[g]! / this.#count;
      }
    }
    return { values, missing };
  }

  /** `gather` as a [groups, B] tensor on `device` in `dtype` (default: float64 on the CPU). */
  get(sampleIds: Int32Array, batchIndex: number, o: { device?: string; dtype?: DType } = {}): { alpha: Tensor; missing: number } {
    if (o === null || typeof o !== 'object') throw new TypeError(`CoefficientStore.get: options must be { device, dtype }, got ${String(o)}`);
    const { values, missing } = this.gather(sampleIds, batchIndex);
    return { alpha: tensor(values, { shape: [this.groups, sampleIds.length], device: o.device ?? 'cpu', dtype: o.dtype ?? 'float64' }), missing };
  }

  clear(): void {
    this.#values.fill(0);
    this.#seen.fill(0);
    this.#sums.fill(0);
    this.#count = 0;
  }

  /** Tensors to save (float64 values [groups, capacity], uint8 seen [capacity]) and JSON meta. */
  stateDict(): { tensors: Map<string, Tensor>; meta: CoefficientStoreMeta } {
    return {
      tensors: new Map([
        ['values', tensor(this.#values, { shape: [this.groups, this.capacity] })],
        ['seen', tensor(this.#seen, { shape: [this.capacity] })],
      ]),
      meta: { key: this.key, groups: this.groups, capacity: this.capacity, batchSize: this.batchSize },
    };
  }

  static fromStateDict(tensors: Map<string, Tensor>, meta: CoefficientStoreMeta): CoefficientStore {
    const store = new CoefficientStore(meta);
    const values = tensors.get('values');
    const seen = tensors.get('seen');
    if (!values || !seen) throw new Error('CoefficientStore: state dict lacks values or seen');
    if (values.numel !== meta.groups * meta.capacity || seen.numel !== meta.capacity) {
      throw new Error(`CoefficientStore: state dict shapes [${values.shape}] / [${seen.shape}] do not match groups ${meta.groups} x capacity ${meta.capacity}`);
    }
    store.#values = scope(() => values.to({ dtype: 'float64', device: 'cpu' }).contiguous().data()) as Float64Array;
    store.#seen = scope(() => seen.to({ dtype: 'uint8', device: 'cpu' }).contiguous().data()) as Uint8Array;
    store.#count = 0;
    for (let c = 0; c < meta.capacity; c++) if (store.#seen[c]) store.#count += 1;
    for (let g = 0; g < meta.groups; g++) {
      let s = 0;
      for (let c = 0; c < meta.capacity; c++) if (store.#seen[c]) s += store.#values[g * meta.capacity + c]!;
      store.#sums[g] = s;
    }
    return store;
  }
}
