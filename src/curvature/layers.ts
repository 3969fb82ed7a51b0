// Per-layer per-sample math (FNGD.md sections 3 and 4). A captured layer holds, for each time it ran
// in the forward pass (a "use"), its input and delta = d(sum_i l_i)/d(output), whose row i is
// d l_i / d output_i. Everything below is exact given those two tensors.
//
// Positions. A sample may touch a layer at several positions t (tokens of a sequence, conv output
// pixels, several uses of one layer): g_i = sum_t delta_it a_it^T, with a_it the layer's input at t
// (a conv patch, an embedding one-hot) and a trailing 1 for the bias. Two exact Gram forms:
//   pairwise:     K_ij = sum_{t,s} (a_it . a_js)(delta_it . delta_js)      O(B^2 T^2 (d_in + d_out))
//                 (T = 1 is the Hadamard form K = (A A^T + 1) .* (D D^T))
//   materialize:  K = G G^T over per-sample gradients G, made a chunk of samples at a time, or (Linear)
//                 a block of weight rows at a time for every sample: K = sum over row blocks of
//                 G_r G_r^T, so no chunk is ever made twice        O(B T d_in d_out + B^2 d_in d_out)
// Which one a layer uses is decided in gram.ts from `costs()`. The kinds: linear.ts, conv.ts,
// embedding.ts.
import type { TapKind, TappableLayer } from '../nn/taps.js';
import { callOp, cat, convertedTo, empty, keep, ones, type DType, type Tensor } from '../tensor/index.js';
import { gemmNT, gemmTN } from './gemm.js';

/** One run of a layer in the forward pass. */
export interface Use {
  input: Tensor;
  /** d(sum_i l_i) / d(output), shaped like the output. */
  delta: Tensor;
}

/** Per-sample gradients of a layer's parameters: [count, ...parameter shape]. */
export interface PerSampleGrads {
  weight: Tensor;
  bias: Tensor | null;
}

/** A layer's gradient (no sample dimension). */
export interface LayerGrads {
  weight: Tensor;
  bias: Tensor | null;
}

/**
 * KFAC factors of one layer, positions t counted per sample (T of them):
 *   A = 1/(B T) sum_{i,t} a_it a_it^T    (a with a trailing 1 when the layer has a bias)
 *   G = 1/B     sum_{i,t} d_it d_it^T    (d_it = d l_i / d z_it, the per-sample output gradient)
 * For T = 1 this is the usual KFAC. For conv (T = output pixels) and sequences, A (x) G equals
 * T E[a a^T] (x) E[d d^T] with E over samples and positions: the KFC scaling of Grosse & Martens
 * (2016), Omega (x) Gamma ("KFAC-expand" for sequences).
 * Embedding: a_it is the one-hot row of token x_it; A is diagonal and returned as its diagonal [V]
 * (`aDiagonal`). Padding tokens (paddingIdx) are left out of both sums: they give no gradient.
 */
export interface KfacFactors {
  A: Tensor;
  G: Tensor;
  aDiagonal: boolean;
  /** T, positions per sample. */
  positions: number;
}

export interface MethodCost {
  /** Estimated multiply-adds (flop-equivalents for memory-bound work). */
  flops: number;
  /** Peak bytes of the method's work buffers. */
  bytes: number;
  /** Pairwise: samples per row block; materialize: samples per chunk, or weight rows per block (`split` 'rows'). */
  block: number;
  /** Materialize: per-sample gradients made a chunk of samples at a time, or a block of weight rows for every sample. */
  split?: 'samples' | 'rows';
}

const ELT: Record<string, number> = { float64: 8, float32: 4, float16: 2, bfloat16: 2 };
/** Preferred size of one block of materialized weight rows (see `rowBlockCost`). */
const ROW_BLOCK_BYTES = 16 * 2 ** 20;

/**
 * Reusable memory for per-layer temporaries (the alpha-scaled copy of an output gradient), kept
 * across steps. Why: on this machine a fresh multi-megabyte allocation costs more in first-touch
 * page faults (about 1 ms per MB) than the arithmetic that fills it.
 */
export class Scratch {
  #buf: Tensor | null = null;
  /** A tensor of `shape` over the scratch memory (valid until the next `get`). */
  get(shape: number[], dtype: DType, device: string): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    const b = this.#buf;
    if (b === null || b.isDisposed || b.numel < n || b.dtype !== dtype || b.device !== device) {
      b?.dispose();
      this.#buf = keep(empty([n], { dtype, device }));
    }
    return this.#buf!.narrow(0, 0, n).view(shape);
  }
  dispose(): void {
    this.#buf?.dispose();
    this.#buf = null;
  }
}

/** Where `weighted` puts the alpha-scaled copy of an output gradient or input. */
export interface WeightedOptions {
  /** The engine's reusable memory (a fresh tensor when null). */
  scratch?: Scratch | null;
  /**
   * The layer's output gradients may be scaled in place: the capture is being consumed, and no other
   * captured tensor shares their memory (capture.ts checks). Saves writing a copy: at B = 128 on
   * ResNet-20 the copies are 90 MB per step, memory-bound, about 3% of a step.
   */
  overwriteDeltas?: boolean;
}

/** t * alpha (broadcast): in place when `overwrite`, else into `scratch` when given, else fresh. */
export function scaled(t: Tensor, alpha: Tensor, scratch: Scratch | null | undefined, overwrite = false): Tensor {
  if (overwrite) return t.mul_(alpha);
  if (scratch === null || scratch === undefined) return t.mul(alpha);
  return callOp('aten::mul.out', t, alpha, scratch.get(t.shape, t.dtype, t.device)) as Tensor;
}

export abstract class LayerCurvature {
  abstract readonly kind: TapKind;
  /** T: positions per sample, summed over uses. */
  abstract readonly positions: number;
  /** Samples per per-sample chunk this kind prefers (speed), before the memory bound. */
  readonly preferredChunk: number = Number.POSITIVE_INFINITY;

  constructor(readonly name: string, readonly layer: TappableLayer, readonly uses: Use[], readonly batch: number) {}

  get dtype(): DType {
    return this.uses[0]!.delta.dtype;
  }
  get eltBytes(): number {
    return ELT[this.dtype] ?? 4;
  }
  /** Parameters as [weight, bias] (bias null when absent). */
  abstract get params(): [Tensor, Tensor | null];
  /** Per-sample parameter count (weight plus bias). */
  get paramCount(): number {
    const [w, b] = this.params;
    return w.numel + (b?.numel ?? 0);
  }

  /** Per-sample gradients of samples start .. start+count-1. */
  abstract perSample(start: number, count: number): PerSampleGrads;
  /**
   * Per-sample gradients of weight rows start .. start+count-1 for every sample, as matrices [B, *]
   * (weight rows, then their bias entries if any): the kinds whose materialize cost says `split: 'rows'`.
   */
  perSampleRows(_start: number, _count: number): Tensor[] {
    throw new Error(`curvature: layer '${this.name}' (${this.kind}) makes per-sample gradients by samples, not by weight rows`);
  }
  /**
   * Makes the derived tensors `method` reads and keeps for later calls (conv patches), in the
   * caller's scope: the Gram code then works in inner scopes without freeing them.
   */
  prepare(_method: 'pairwise' | 'materialize'): void {}
  /** Rows start .. start+count-1 of K by the pairwise form, float64 [count, B]. */
  abstract pairwiseRows(start: number, count: number): Tensor;
  /** sum_i alpha_i g_i (alpha [B], any float dtype); `o` says where the scaled temporaries go. */
  abstract weighted(alpha: Tensor, o?: WeightedOptions): LayerGrads;
  abstract kfac(): KfacFactors;
  /** Cost of each Gram method under a memory bound (null: impossible within it). */
  abstract costs(maxBytes: number): { pairwise: MethodCost | null; materialize: MethodCost | null };

  /** Tensors derived from the uses (concatenations, masked copies, patches), freed by `dispose()`. */
  protected readonly owned: Tensor[] = [];
  protected own<T extends Tensor>(t: T): T {
    this.owned.push(t);
    return t;
  }
  /** Frees the uses and everything derived from them. */
  dispose(): void {
    for (const t of this.owned) t.dispose();
    for (const u of this.uses) {
      u.input.dispose();
      u.delta.dispose();
    }
  }

  /** sum_t ||delta_it||^2 per sample, [B] (e.g. iEF's right-hand side on the output layer). */
  deltaSqNorms(): Tensor {
    let s: Tensor | null = null;
    for (const u of this.uses) {
      const v = u.delta.reshape(this.batch, -1).square().sum(1);
      s = s === null ? v : s.add(v);
    }
    return s!;
  }

  /** alpha [B] -> a view that broadcasts against a [B, ...] tensor of `dims` dimensions. */
  protected alphaFor(alpha: Tensor, dims: number): Tensor {
    const dtype = this.dtype;
    const a = convertedTo(alpha, dtype);
    return dims === 1 ? a : a.reshape([this.batch, ...new Array<number>(dims - 1).fill(1)]);
  }

  /** Materialize cost: per-sample flops `psg` and the Gram over P columns, chunked to fit. */
  protected materializeCost(psg: number, maxBytes: number): MethodCost | null {
    const b = this.batch;
    const rowBytes = this.paramCount * this.eltBytes;
    const gram = b * b * this.paramCount;
    if (b * rowBytes <= maxBytes) return { flops: psg + gram, bytes: b * rowBytes, block: Math.min(b, this.preferredChunk), split: 'samples' };
    const c = Math.min(Math.floor(maxBytes / (2 * rowBytes)), this.preferredChunk);
    if (c < 1) return null;
    const n = Math.ceil(b / c);
    // Chunk pairs (I, J >= I): chunk J's gradients are recomputed for every I.
    return { flops: (psg * (n + 1)) / 2 + gram, bytes: 2 * c * rowBytes, block: c, split: 'samples' };
  }

  /**
   * Materialize cost by blocks of weight rows (`perSampleRows`): `rows` rows of `columns` entries
   * each; every block is made once, so nothing is recomputed whatever the bound. Blocks stay under
   * ROW_BLOCK_BYTES even when the bound allows more: a block that size is reused from the heap, a
   * bigger one is mapped fresh and faulted in page by page every time (Multi30K output projection,
   * T = 14, B = 128, one thread: 16 MiB blocks 2.8 s and no page faults, 256 MiB blocks 3.4-3.8 s and
   * 300k faults per Gram; FFN Linears 175 ms against 206-224 ms).
   */
  protected rowBlockCost(psg: number, rows: number, columns: number, maxBytes: number): MethodCost | null {
    const b = this.batch;
    const rowBytes = b * columns * this.eltBytes;
    // One row at least whenever the bound allows it, even a row over ROW_BLOCK_BYTES.
    const r = Math.min(rows, Math.floor(Math.min(maxBytes, ROW_BLOCK_BYTES) / rowBytes) || Math.floor(maxBytes / rowBytes));
    if (r < 1) return null;
    return { flops: psg + b * b * this.paramCount, bytes: r * rowBytes, block: r, split: 'rows' };
  }

  /** Pairwise cost over T positions with inner sizes din (+1 bias) and dout; `upfront` bytes held throughout. */
  protected pairwiseCost(din: number, dout: number, maxBytes: number, extraFlops = 0, upfront = 0): MethodCost | null {
    const b = this.batch;
    const t = this.positions;
    // Per row-sample: a [T, B T] block of a.a and of d.d in the model's dtype, and float64 copies.
    const rowBytes = t * b * t * (2 * this.eltBytes + 3 * 8);
    const r = Math.min(b, Math.floor((maxBytes - upfront) / rowBytes));
    if (r < 1) return null;
    return { flops: b * b * t * t * (din + dout + 3) + extraFlops, bytes: upfront + r * rowBytes, block: r };
  }
}

const HALF = new Set<string>(['float16', 'bfloat16']);

/** Position features as rows: a sample's T positions in consecutive rows of a [B T, din] and d [B T, dout]. */
export interface PositionRows {
  /** Inputs (null: embeddings, whose one-hot a.a is token equality). */
  a: Tensor | null;
  d: Tensor;
  batch: number;
  positions: number;
}

/**
 * Rows start .. start+count-1 of the pairwise Gram from position rows. `bias` adds 1 to every a.a
 * (the trailing 1 of a); `mask(start, count)` [count T, B T] multiplies the d.d term (embeddings).
 * The Hadamard product is taken in the products' dtype (float32 at least: half-precision entries
 * overflow at a few hundred times a few hundred) and cast to float64 once, before the sum over
 * positions: one more rounding of entries whose factors are already rounded to that dtype, and half
 * the casts.
 */
export function pairwiseDense(f: PositionRows, start: number, count: number, bias: boolean, mask?: (s: number, c: number) => Tensor): Tensor {
  const { a, d, batch: b, positions: t } = f;
  const rows = (x: Tensor): Tensor => (start === 0 && count === b ? x : x.narrow(0, start * t, count * t));
  const wide = (x: Tensor): Tensor => (HALF.has(x.dtype) ? x.float() : x);
  const k = wide(gemmNT(rows(d), d));
  if (a !== null) {
    const aa = wide(gemmNT(rows(a), a));
    if (bias) aa.add_(1);
    k.mul_(aa);
  }
  if (mask !== undefined) k.mul_(mask(start, count));
  const k64 = k.double();
  return t === 1 ? k64 : k64.view(count, t, b, t).sum([1, 3]);
}

/** sum_n [a_n, 1][a_n, 1]^T / n (the trailing-1 row and column only when `bias`), from a [n, din]. */
export function secondMoment(a: Tensor, bias: boolean, n: number): Tensor {
  const ata = gemmTN(a, a);
  if (!bias) return ata.div(n);
  const s = a.sum(0).unsqueeze(1);
  const corner = ones([1, 1], { dtype: a.dtype, device: a.device }).mul(n);
  return cat([cat([ata, s], 1), cat([s.t(), corner], 1)], 0).div(n);
}

