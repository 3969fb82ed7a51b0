// Embedding: a_it is the one-hot row of token x_it, so a_it . a_js = [x_it == x_js]; the pairwise
// Gram is K_ij = sum_{t,s} [x_it == x_js] (delta_it . delta_js), with padding tokens' deltas zeroed
// (their row gets no gradient).
import type { Embedding } from '../nn/linear.js';
import { arange, cat, ones, zeros, type Tensor } from '../tensor/index.js';
import {
  LayerCurvature, pairwiseDense, scaled, type KfacFactors, type LayerGrads, type MethodCost, type PerSampleGrads, type Use, type WeightedOptions,
} from './layers.js';
import { gemmTN } from './gemm.js';

/** Embedding: a_it is the one-hot row of token x_it; padding tokens give no gradient. */
export class EmbeddingCurvature extends LayerCurvature {
  readonly kind = 'embedding' as const;
  readonly positions: number;
  /** Tokens [B, T] (int64) and output gradients [B, T, dim] with padding positions zeroed. */
  readonly x: Tensor;
  readonly d: Tensor;
  /** [B, T] 1 where the token is not padding, in the delta's dtype (null without paddingIdx). */
  readonly #keep: Tensor | null;

  constructor(name: string, layer: Embedding, uses: Use[], batch: number) {
    super(name, layer, uses, batch);
    const xs = uses.map((u) => u.input.reshape(batch, -1));
    const ds = uses.map((u) => u.delta.reshape(batch, -1, layer.embeddingDim));
    const x = xs.length === 1 ? xs[0]! : cat(xs, 1);
    let d = ds.length === 1 ? ds[0]! : cat(ds, 1);
    this.#keep = layer.paddingIdx === null ? null : this.own(x.ne(layer.paddingIdx).to(d.dtype));
    if (this.#keep !== null) d = d.mul(this.#keep.unsqueeze(2));
    this.x = this.own(x.long());
    this.d = this.own(d);
    this.positions = x.size(1);
  }
  get emb(): Embedding {
    return this.layer as Embedding;
  }
  get params(): [Tensor, Tensor | null] {
    return [this.emb.weight, null];
  }

  perSample(start: number, count: number): PerSampleGrads {
    const { numEmbeddings: v, embeddingDim: dim } = this.emb;
    const x = this.x.narrow(0, start, count);
    const rows = arange(0, count, 1, { dtype: 'int64', device: x.device }).unsqueeze(1).mul(v).add(x).reshape(-1);
    const g = zeros([count * v, dim], { dtype: this.d.dtype, device: this.d.device })
      .indexAdd(0, rows, this.d.narrow(0, start, count).reshape(-1, dim));
    return { weight: g.view(count, v, dim), bias: null };
  }

  pairwiseRows(start: number, count: number): Tensor {
    const b = this.batch;
    const t = this.positions;
    const same = (s: number, c: number): Tensor => this.x.narrow(0, s, c).reshape(c * t, 1).eq(this.x.reshape(1, b * t));
    return pairwiseDense({ a: null, d: this.d.reshape(b * t, -1), batch: b, positions: t }, start, count, false, same);
  }

  weighted(alpha: Tensor, o: WeightedOptions = {}): LayerGrads {
    const { numEmbeddings: v, embeddingDim: dim } = this.emb;
    const d = scaled(this.d, this.alphaFor(alpha, 3), o.scratch, o.overwriteDeltas).reshape(-1, dim);
    return { weight: zeros([v, dim], { dtype: d.dtype, device: d.device }).indexAdd(0, this.x.reshape(-1), d), bias: null };
  }

  kfac(): KfacFactors {
    const { numEmbeddings: v, embeddingDim: dim } = this.emb;
    const n = this.batch * this.positions;
    const w = this.#keep === null ? ones([n], { dtype: this.d.dtype, device: this.d.device }) : this.#keep.reshape(-1);
    const counts = zeros([v], { dtype: this.d.dtype, device: this.d.device }).indexAdd(0, this.x.reshape(-1), w);
    const d = this.d.reshape(-1, dim);
    return { A: counts.div(n), G: gemmTN(d, d).div(this.batch), aDiagonal: true, positions: this.positions };
  }

  costs(maxBytes: number): { pairwise: MethodCost | null; materialize: MethodCost | null } {
    const { numEmbeddings: v, embeddingDim: dim } = this.emb;
    const b = this.batch;
    // Materializing touches a zeroed [V, dim] block per sample (first-touch memory: ~4 flop-equivalents per element).
    return { pairwise: this.pairwiseCost(0, dim, maxBytes), materialize: this.materializeCost(b * (this.positions * dim + 4 * v * dim), maxBytes) };
  }
}
