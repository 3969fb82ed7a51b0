// Linear layers: one position per sample ([B, in]) or many ([B, ..., in], e.g. sequences).
import type { Linear } from '../nn/linear.js';
import { cat, type Tensor } from '../tensor/index.js';
import {
  LayerCurvature, pairwiseDense, scaled, secondMoment, type KfacFactors, type LayerGrads, type MethodCost, type PerSampleGrads, type Use, type WeightedOptions,
} from './layers.js';
import { gemmTN } from './gemm.js';

/** Linear over [B, in] or [B, ..., in] (every middle dimension is a position). */
export class LinearCurvature extends LayerCurvature {
  readonly kind = 'linear' as const;
  readonly positions: number;
  /** [B, T, in] and [B, T, out], uses concatenated along T. */
  readonly a: Tensor;
  readonly d: Tensor;

  constructor(name: string, layer: Linear, uses: Use[], batch: number) {
    super(name, layer, uses, batch);
    const as = uses.map((u) => u.input.reshape(batch, -1, layer.inFeatures));
    const ds = uses.map((u) => u.delta.reshape(batch, -1, layer.outFeatures));
    this.a = this.own(as.length === 1 ? as[0]! : cat(as, 1));
    this.d = this.own(ds.length === 1 ? ds[0]! : cat(ds, 1));
    this.positions = this.a.size(1);
  }
  get lin(): Linear {
    return this.layer as Linear;
  }
  get params(): [Tensor, Tensor | null] {
    return [this.lin.weight, this.lin.bias];
  }

  perSample(start: number, count: number): PerSampleGrads {
    const a = this.a.narrow(0, start, count);
    const d = this.d.narrow(0, start, count);
    return { weight: d.transpose(1, 2).bmm(a), bias: this.lin.bias === null ? null : d.sum(1) };
  }

  override perSampleRows(start: number, count: number): Tensor[] {
    const d = this.d.narrow(2, start, count);
    const w = d.transpose(1, 2).bmm(this.a).reshape(this.batch, -1);
    return this.lin.bias === null ? [w] : [w, d.sum(1)];
  }

  pairwiseRows(start: number, count: number): Tensor {
    return pairwiseDense(this.a, this.d, start, count, this.lin.bias !== null);
  }

  weighted(alpha: Tensor, o: WeightedOptions = {}): LayerGrads {
    const { inFeatures: din, outFeatures: dout } = this.lin;
    // sum_i alpha_i D_i^T A_i: scale whichever of D and A is smaller (A never in place: other layers may read it).
    const al = this.alphaFor(alpha, 3);
    const scaleD = dout <= din;
    const d = (scaleD ? scaled(this.d, al, o.scratch, o.overwriteDeltas) : this.d).reshape(-1, dout);
    const a = (scaleD ? this.a : scaled(this.a, al, o.scratch)).reshape(-1, din);
    const bias = this.lin.bias === null ? null : scaleD ? d.sum(0) : this.d.sum(1).t().matmul(alpha.to(this.dtype));
    return { weight: gemmTN(d, a), bias };
  }

  kfac(): KfacFactors {
    const t = this.positions;
    const n = this.batch * t;
    const a = this.a.reshape(n, this.lin.inFeatures);
    const d = this.d.reshape(n, this.lin.outFeatures);
    return { A: secondMoment(a, this.lin.bias !== null, n), G: gemmTN(d, d).div(this.batch), aDiagonal: false, positions: t };
  }

  costs(maxBytes: number): { pairwise: MethodCost | null; materialize: MethodCost | null } {
    const { inFeatures: din, outFeatures: dout } = this.lin;
    const psg = this.batch * this.positions * (din + 1) * dout;
    const columns = din + (this.lin.bias === null ? 0 : 1);
    return { pairwise: this.pairwiseCost(din + 1, dout, maxBytes), materialize: this.rowBlockCost(psg, dout, columns, maxBytes) };
  }
}
