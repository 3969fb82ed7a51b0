// Epochs of batches with an order that depends only on (seed, epoch), so that a resumed run can
// jump to batch k of epoch e and see exactly the batches (augmentation included) it would have seen.
//
// Randomness:
//   - epoch order: a Fisher-Yates permutation from the JS PRNG `Rng` seeded with
//     deriveSeed(seed, STREAM.permutation, epoch) (independent of libtorch);
//   - with bucketing, the order of the batches: Rng(deriveSeed(seed, STREAM.bucketOrder, epoch));
//   - batch k's augmentation: a fresh libtorch Generator(deriveSeed(seed, STREAM.augmentation, epoch, k))
//     passed to `dataset.batch`, so batch k's crops/flips do not depend on batches 0..k-1.
//   - `limit` with `subsetSeed`: the subset is fixed for the loader's life:
//     Rng(deriveSeed(subsetSeed, STREAM.subset)).
//
// Lifetime: batches are made lazily, one per `next()` / `batch(k)` call, inside whatever `scope`
// is open at that moment. The CONSUMER disposes them: either create the batch inside the step's
// scope (`scope(() => { const b = ep.batch(k); ... })`, which frees it with everything else), or
// iterate with for...of and call `disposeBatch(b)` when done with it.
import { Generator } from '../tensor/index.js';
import type { BaseBatch, Dataset } from './dataset.js';
import { deriveSeed, permutation, Rng, STREAM } from './rng.js';

export interface DataLoaderOptions {
  batchSize: number;
  /** Training mode, passed to `dataset.batch` (turns augmentation on). Default false. */
  train?: boolean;
  /** Shuffle every epoch (default: same as `train`). */
  shuffle?: boolean;
  /**
   * With `shuffle`: 'epoch' draws a new order every epoch (default); 'once' keeps epoch 0's order,
   * so every epoch has the same batches (FNGD's slot-keyed store needs it).
   */
  reshuffle?: 'epoch' | 'once';
  /** Base seed of every random choice the loader makes (default 0). */
  seed?: number;
  /** Drop the last, smaller batch (default false). */
  dropLast?: boolean;
  /** Use only this many samples: the first ones, or a seeded subset with `subsetSeed`. */
  limit?: number;
  /** With `limit`: take a random subset (fixed for the loader, kept in ascending order) instead of the first samples. */
  subsetSeed?: number;
  /** Use exactly these dataset indices (overrides limit). */
  indices?: Int32Array;
  /**
   * Length bucketing (needs `dataset.sortKeys`): the shuffled samples are cut into pools of
   * `poolBatches` batches, each pool is sorted by key and cut into batches, and the batches of the
   * whole epoch are shuffled. true = { poolBatches: 100 }.
   */
  bucket?: boolean | { poolBatches?: number };
}

/** The batches of one epoch. Iterating makes them lazily, in order, starting at `start`. */
export class Epoch<B extends BaseBatch> implements Iterable<B> {
  readonly epoch: number;
  readonly length: number;
  readonly start: number;
  readonly #loader: DataLoader<B>;
  readonly #order: Int32Array;
  readonly #bounds: Int32Array;

  /** @internal */
  constructor(loader: DataLoader<B>, epoch: number, order: Int32Array, bounds: Int32Array, start: number) {
    this.#loader = loader;
    this.epoch = epoch;
    this.#order = order;
    this.#bounds = bounds;
    this.length = bounds.length - 1;
    this.start = start;
  }

  /** The dataset indices of batch k (a view: do not modify). */
  indices(k: number): Int32Array {
    if (!Number.isInteger(k) || k < 0 || k >= this.length) throw new RangeError(`Epoch ${this.epoch}: batch ${k} is outside [0, ${this.length})`);
    return this.#order.subarray(this.#bounds[k]!, this.#bounds[k + 1]!);
  }

  /** All samples of the epoch in visiting order (a view: do not modify). */
  order(): Int32Array {
    return this.#order.subarray(0, this.#bounds[this.length]!);
  }

  /** Makes batch k (in the current scope; the caller disposes it). */
  batch(k: number): B {
    const idx = this.indices(k);
    const l = this.#loader;
    if (!l.train) return l.dataset.batch(idx, { train: false });
    return l.dataset.batch(idx, { train: true, generator: new Generator(deriveSeed(l.seed, STREAM.augmentation, this.epoch, k)) });
  }

  /** The same epoch, iterating from batch k (for resuming). */
  from(k: number): Epoch<B> {
    if (!Number.isInteger(k) || k < 0 || k > this.length) throw new RangeError(`Epoch ${this.epoch}: cannot start at batch ${k} of ${this.length}`);
    return new Epoch(this.#loader, this.epoch, this.#order, this.#bounds, k);
  }

  *[Symbol.iterator](): Iterator<B> {
    for (let k = this.start; k < this.length; k++) yield this.batch(k);
  }
}

/**
 * Seeded, resumable batches of a dataset. `epoch(e)` gives epoch e's batches (what a training loop
 * that needs the epoch number, such as FNGD's, uses); iterating the loader itself walks one epoch
 * per loop, 0, 1, 2, ..., like a PyTorch DataLoader. Either way the consumer disposes each batch.
 */
export class DataLoader<B extends BaseBatch> implements Iterable<B> {
  readonly dataset: Dataset<B>;
  readonly batchSize: number;
  readonly train: boolean;
  readonly shuffle: boolean;
  readonly reshuffle: 'epoch' | 'once';
  readonly seed: number;
  readonly dropLast: boolean;
  /** Number of samples an epoch draws from (after limit / indices). */
  readonly numSamples: number;
  readonly batchesPerEpoch: number;
  readonly #pool: Int32Array;
  readonly #poolBatches: number;
  #cache: { epoch: number; order: Int32Array; bounds: Int32Array } | null = null;
  #nextEpoch = 0;

  constructor(dataset: Dataset<B>, o: DataLoaderOptions) {
    const n = dataset.length;
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new RangeError(`DataLoader: batchSize must be a positive integer, got ${o.batchSize}`);
    const seed = o.seed ?? 0;
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`DataLoader: seed must be a non-negative integer, got ${seed}`);
    this.dataset = dataset;
    this.batchSize = o.batchSize;
    this.train = o.train ?? false;
    this.shuffle = o.shuffle ?? this.train;
    this.reshuffle = o.reshuffle ?? 'epoch';
    if (this.reshuffle !== 'epoch' && this.reshuffle !== 'once') throw new RangeError(`DataLoader: reshuffle must be 'epoch' or 'once', got '${String(this.reshuffle)}'`);
    this.seed = seed;
    this.dropLast = o.dropLast ?? false;

    let pool: Int32Array;
    if (o.indices !== undefined) {
      for (const i of o.indices) if (!(Number.isInteger(i) && i >= 0 && i < n)) throw new RangeError(`DataLoader: index ${i} is outside [0, ${n})`);
      pool = Int32Array.from(o.indices);
    } else if (o.limit !== undefined && o.limit < n) {
      if (!Number.isInteger(o.limit) || o.limit < 0) throw new RangeError(`DataLoader: limit must be a non-negative integer, got ${o.limit}`);
      if (o.subsetSeed === undefined) {
        pool = Int32Array.from({ length: o.limit }, (_, i) => i);
      } else {
        pool = permutation(n, deriveSeed(o.subsetSeed, STREAM.subset)).slice(0, o.limit).sort();
      }
    } else {
      pool = Int32Array.from({ length: n }, (_, i) => i);
    }
    this.#pool = pool;
    this.numSamples = pool.length;
    this.batchesPerEpoch = this.dropLast ? Math.floor(pool.length / this.batchSize) : Math.ceil(pool.length / this.batchSize);

    if (o.bucket !== undefined && o.bucket !== false) {
      if (dataset.sortKeys === undefined) throw new TypeError('DataLoader: bucket needs a dataset with sortKeys (e.g. a TranslationDataset)');
      const pb = o.bucket === true ? 100 : o.bucket.poolBatches ?? 100;
      if (!Number.isInteger(pb) || pb < 1) throw new RangeError(`DataLoader: bucket.poolBatches must be a positive integer, got ${pb}`);
      this.#poolBatches = pb;
    } else {
      this.#poolBatches = 0;
    }
  }

  /** The batches of epoch e (0-based), optionally starting at batch `start`. */
  epoch(e: number, start = 0): Epoch<B> {
    if (!Number.isSafeInteger(e) || e < 0) throw new RangeError(`DataLoader.epoch: epoch must be a non-negative integer, got ${e}`);
    let c = this.#cache;
    if (c === null || c.epoch !== e) {
      c = { epoch: e, ...this.#schedule(e) };
      this.#cache = c;
    }
    return new Epoch(this, e, c.order, c.bounds, 0).from(start);
  }

  /** The epoch the next `for (const batch of loader)` walks (0 at first; one more per loop started). */
  get nextEpoch(): number {
    return this.#nextEpoch;
  }

  /**
   * `for (const batch of loader)` walks the batches of the next epoch (each loop a new epoch, so a
   * new shuffle). Batches are made when the loop asks for them, in the scope open at that moment:
   * dispose each one (`disposeBatch(batch)`) once done with it.
   */
  [Symbol.iterator](): Iterator<B> {
    const e = this.#nextEpoch;
    this.#nextEpoch += 1;
    return this.epoch(e)[Symbol.iterator]();
  }

  /** Batch k of epoch e (shorthand for epoch(e).batch(k)). */
  batch(e: number, k: number): B {
    return this.epoch(e).batch(k);
  }

  #schedule(e: number): { order: Int32Array; bounds: Int32Array } {
    const bs = this.batchSize;
    const nb = this.batchesPerEpoch;
    let order = this.#pool.slice();
    if (this.shuffle) new Rng(deriveSeed(this.seed, STREAM.permutation, this.reshuffle === 'once' ? 0 : e)).shuffle(order);
    if (this.dropLast) order = order.slice(0, nb * bs);
    const n = order.length;
    const bounds = new Int32Array(nb + 1);
    for (let k = 0; k <= nb; k++) bounds[k] = Math.min(k * bs, n);
    if (this.#poolBatches === 0) return { order, bounds };

    // Bucketing: sort each pool of poolBatches * bs samples by key (stable: ties keep the shuffled
    // order), cut into batches, then shuffle the batch order (when shuffling).
    const keys = this.dataset.sortKeys!;
    const poolSize = this.#poolBatches * bs;
    const sorted = new Int32Array(n);
    for (let p = 0; p < n; p += poolSize) {
      const part = Array.from(order.subarray(p, Math.min(p + poolSize, n)));
      part.sort((a, b) => keys[a]! - keys[b]!);
      sorted.set(part, p);
    }
    const batchOrder = Int32Array.from({ length: nb }, (_, k) => k);
    if (this.shuffle) new Rng(deriveSeed(this.seed, STREAM.bucketOrder, e)).shuffle(batchOrder);
    const out = new Int32Array(n);
    const outBounds = new Int32Array(nb + 1);
    let pos = 0;
    for (let k = 0; k < nb; k++) {
      const b = batchOrder[k]!;
      const part = sorted.subarray(bounds[b]!, bounds[b + 1]!);
      out.set(part, pos);
      pos += part.length;
      outBounds[k + 1] = pos;
    }
    return { order: out, bounds: outBounds };
  }
}
