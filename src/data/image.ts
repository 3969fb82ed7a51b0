// In-memory image classification data: uint8 pixels [N, C, H, W] and int64 labels [N] kept as
// libtorch tensors. A batch is one index_select, an optional vectorized augmentation (random crop
// with zero padding and horizontal flip, as a single advanced-indexing gather), and one affine map
// to normalized float32.
import { arange, F, keep, randint, scope, tensor, type Device, type Generator, type Tensor } from '../tensor/index.js';
import type { BatchOptions, Dataset, ImageBatch } from './dataset.js';

export interface Augmentation {
  /**
   * Random crop back to the original size after zero-padding every side by this many pixels
   * (0 = no crop). The padding is black in raw pixel space (value 0 before normalization), as
   * torchvision's RandomCrop(padding=p) applied before Normalize.
   */
  cropPadding?: number;
  /** Random horizontal flip with probability 1/2. */
  hflip?: boolean;
}

export interface ImageDatasetInit {
  name: string;
  /** uint8 [N, C, H, W]; the dataset takes ownership (keeps it out of every scope). */
  images: Tensor;
  /** int64 [N]; the dataset takes ownership. */
  labels: Tensor;
  /** Per-channel mean and std of pixel/255 used for normalization (one value or one per channel). */
  mean: number[];
  std: number[];
  numClasses: number;
  classNames?: string[];
  /** Applied to batches made with `train: true`. */
  augmentation?: Augmentation;
}

export class ImageDataset implements Dataset<ImageBatch> {
  readonly name: string;
  readonly length: number;
  /** [C, H, W] */
  readonly sampleShape: [number, number, number];
  readonly images: Tensor;
  readonly labels: Tensor;
  readonly mean: number[];
  readonly std: number[];
  readonly numClasses: number;
  readonly classNames: string[];
  readonly augmentation: Augmentation | null;
  readonly device: Device;
  #scale: Tensor;
  #shift: Tensor;

  constructor(init: ImageDatasetInit) {
    const { images, labels } = init;
    if (images.dtype !== 'uint8' || images.dim !== 4) throw new TypeError(`ImageDataset ${init.name}: images must be uint8 [N, C, H, W], got ${images}`);
    if (labels.dtype !== 'int64' || labels.dim !== 1 || labels.size(0) !== images.size(0)) {
      throw new TypeError(`ImageDataset ${init.name}: labels must be int64 [${images.size(0)}], got ${labels}`);
    }
    const [n, c, h, w] = images.shape as [number, number, number, number];
    const perChannel = (v: number[], what: string): number[] => {
      if (v.length === 1) return new Array<number>(c).fill(v[0]!);
      if (v.length !== c) throw new RangeError(`ImageDataset ${init.name}: ${what} has ${v.length} values for ${c} channels`);
      return v.slice();
    };
    this.name = init.name;
    this.length = n;
    this.sampleShape = [c, h, w];
    this.images = keep(images);
    this.labels = keep(labels);
    this.mean = perChannel(init.mean, 'mean');
    this.std = perChannel(init.std, 'std');
    this.numClasses = init.numClasses;
    this.classNames = init.classNames ?? Array.from({ length: init.numClasses }, (_, i) => String(i));
    const aug = init.augmentation;
    this.augmentation = aug && ((aug.cropPadding ?? 0) > 0 || aug.hflip) ? { cropPadding: aug.cropPadding ?? 0, hflip: aug.hflip ?? false } : null;
    this.device = images.device;
    // x_norm = (u8 / 255 - mean) / std = u8 * scale + shift
    const device = this.device;
    this.#scale = keep(tensor(new Float32Array(this.std.map((s) => 1 / (255 * s))), { shape: [1, c, 1, 1], device }));
    this.#shift = keep(tensor(new Float32Array(this.mean.map((m, i) => -m / this.std[i]!)), { shape: [1, c, 1, 1], device }));
  }

  batch(indices: Int32Array, opts: BatchOptions): ImageBatch {
    const ids = Int32Array.from(indices);
    return scope(() => {
      const idx = tensor(ids, { dtype: 'int64', device: this.device });
      let u8: Tensor;
      try {
        u8 = this.images.indexSelect(0, idx);
      } catch (e) {
        throw new RangeError(`${this.name}.batch: an index is outside [0, ${this.length}) (${(e as Error).message.split('\n')[0]})`);
      }
      if (opts.train && this.augmentation !== null) u8 = this.augment(u8, opts.generator);
      const x = u8.to('float32').mul(this.#scale).add_(this.#shift);
      const y = this.labels.indexSelect(0, idx);
      return { x, y, ids };
    });
  }

  /**
   * Random crop (after zero padding) and horizontal flip of a uint8 batch [B, C, H, W], for the
   * whole batch at once. Draws, in this order, randint(0, 2p+1, [B, 2]) (row, column offsets
   * oy, ox) and, with hflip, randint(0, 2, [B, 1]) (1 = flip) from `generator`, on the CPU.
   * Crop and flip are one gather from the padded batch:
   *   out[b, c, i, j] = padded[b, c, oy_b + i, ox_b + (flip_b ? W-1-j : j)]
   * done as an index_select on the flattened padded batch with int64 linear indices.
   */
  augment(u8: Tensor, generator?: Generator): Tensor {
    const aug = this.augmentation;
    if (aug === null) return u8;
    return scope(() => {
      const [b, c, h, w] = u8.shape as [number, number, number, number];
      const p = aug.cropPadding ?? 0;
      const hp = h + 2 * p;
      const wp = w + 2 * p;
      const dev = { device: this.device };
      const rnd = { generator, device: 'cpu' };
      const off = randint(0, 2 * p + 1, [b, 2], rnd);
      const flip = aug.hflip ? randint(0, 2, [b, 1], rnd) : null;
      const padded = p > 0 ? F.pad(u8, [p, p, p, p], 0) : u8.contiguous();
      let j = arange(w).unsqueeze(0); // [1, W]
      if (flip !== null) j = j.add(flip.mul(j.mul(-2).add(w - 1))); // flip ? W-1-j : j, [B, W]
      // [B, 1]: start of sample b's plane 0 plus its crop offset.
      const base = arange(b).unsqueeze(1).mul(c * hp * wp).add(off.narrow(1, 0, 1).mul(wp)).add(off.narrow(1, 1, 1));
      const cols = base.add(j).to(dev).view(b, 1, 1, w);
      const planeRow = arange(c, undefined, 1, dev).mul(hp * wp).view(1, c, 1, 1).add(arange(h, undefined, 1, dev).mul(wp).view(1, 1, h, 1));
      const lin = cols.add(planeRow); // [B, C, H, W]
      return padded.view(-1).indexSelect(0, lin.view(-1)).view(b, c, h, w);
    });
  }

  /** The labels as a JS array (a copy). */
  labelArray(): Int32Array {
    return Int32Array.from(this.labels.toArray());
  }

  /** Frees the stored tensors; the dataset is unusable afterwards. */
  dispose(): void {
    this.images.dispose();
    this.labels.dispose();
    this.#scale.dispose();
    this.#shift.dispose();
  }
}
