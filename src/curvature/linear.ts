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
  /**
   * Inputs [B T, in] and output gradients [B T, out], a sample's T positions in consecutive rows.
   * One use of a [B, in] layer is taken as it is: the common MLP case makes no tensor at all (each
   * op call costs several microseconds, and a reuse step wants SGD's cost).
   */
  readonly aRows: Tensor;
  readonly dRows: Tensor;
  readonly #a: Tensor | null = null;
  readonly #d: Tensor | null = null;

  constructor(name: string, layer: Linear, uses: Use[], batch: number) {
    super(name, layer, uses, batch);
    const { inFeatures: din, outFeatures: dout } = layer;
    if (uses.length === 1 && uses[0]!.input.dim === 2) {
      this.aRows = uses[0]!.input;
      this.dRows = uses[0]!.delta;
    } else {
      const as = uses.map((u) => u.input.reshape(batch, -1, din));
      const ds = uses.map((u) => u.delta.reshape(batch, -1, dout));
      this.#a = this.own(as.length === 1 ? as[0]! : cat(as, 1));
      this.#d = this.own(ds.length === 1 ? ds[0]! : cat(ds, 1));
      this.aRows = this.own(this.#a.reshape(-1, din));
      this.dRows = this.own(this.#d.reshape(-1, dout));
    }
    this.positions = this.aRows.size(0) / batch;
  }
  // [B, 1, *] views of a 2D use are made per call, in the caller's scope: cached, one made inside a
  // Gram's inner scope would be freed with it.
  /** Inputs [B, T, in], uses concatenated along T. */
  get a(): Tensor {
    return this.#a ?? this.aRows.unsqueeze(1);
  }
  /** Output gradients [B, T, out], uses concatenated along T. */
  get d(): Tensor {
    return this.#d ?? this.dRows.unsqueeze(1);
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
    return pairwiseDense({ a: this.aRows, d: this.dRows, batch: this.batch, positions: this.positions }, start, count, this.lin.bias !== null);
  }

  weighted(alpha: Tensor, o: WeightedOptions = {}): LayerGrads {
    const { inFeatures: din, outFeatures: dout } = this.lin;
    const hasBias = this.lin.bias !== null;
    // sum_i alpha_i D_i^T A_i: scale whichever of D and A is smaller (A never in place: other layers may read it).
    if (this.positions === 1) {
      // One position per sample: the rows as they are. The bias gradient sum_i alpha_i d_i is a
      // matrix-vector product of the unscaled rows (taken before they may be scaled in place): BLAS's
      // gemv, where a column sum of the scaled rows is a strided reduction, about 2.5x slower.
      const av = this.alphaFor(alpha, 1);
      const dT = this.dRows.t();
      const bias = hasBias ? dT.mv(av) : null;
      if (dout <= din && o.overwriteDeltas === true) {
        // In place through the same transposed view [dout, B], alpha broadcast along its samples: no
        // [B, 1] view of alpha, one op call fewer per layer, the same pass over memory.
        scaled(dT, av, o.scratch, true);
        return { weight: gemmTN(this.dRows, this.aRows), bias };
      }
      const al = av.unsqueeze(1);
      if (dout <= din) return { weight: gemmTN(scaled(this.dRows, al, o.scratch), this.aRows), bias };
      return { weight: gemmTN(this.dRows, scaled(this.aRows, al, o.scratch)), bias };
    }
    // T positions: scale [B, T, *] views, flattened after.
    const al = this.alphaFor(alpha, 3);
    if (dout <= din) {
      const d = scaled(this.d, al, o.scratch, o.overwriteDeltas).reshape(-1, dout);
      return { weight: gemmTN(d, this.aRows), bias: hasBias ? d.sum(0) : null };
    }
    const a = scaled(this.a, al, o.scratch).reshape(-1, din);
    return { weight: gemmTN(this.dRows, a), bias: hasBias ? this.d.sum(1).t().matmul(al.view(-1)) : null };
  }

  kfac(): KfacFactors {
    const n = this.batch * this.positions;
    return { A: secondMoment(this.aRows, this.lin.bias !== null, n), G: gemmTN(this.dRows, this.dRows).div(this.batch), aDiagonal: false, positions: this.positions };
  }

  costs(maxBytes: number): { pairwise: MethodCost | null; materialize: MethodCost | null } {
    const { inFeatures: din, outFeatures: dout } = this.lin;
    const psg = this.batch * this.positions * (din + 1) * dout;
    const columns = din + (this.lin.bias === null ? 0 : 1);
    return { pairwise: this.pairwiseCost(din + 1, dout, maxBytes), materialize: this.rowBlockCost(psg, dout, columns, maxBytes) };
  }
}
