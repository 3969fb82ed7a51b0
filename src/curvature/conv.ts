// Conv2d (groups = 1; any stride, padding, dilation). Per-sample weight gradients use the
// grouped-convolution trick (FNGD.md 3): fold the batch into the channels and ask
// convolution_backward for the weight gradient with groups = samples. im2col (`F.unfold`) is only
// used where patches are unavoidable (pairwise Grams, KFAC's A): it costs about 150 flops per patch
// element on this libtorch, which the cost model charges.
import type { Conv2d } from '../nn/conv.js';
import { cat, F, ones, zeros, type Tensor } from '../tensor/index.js';
import {
  LayerCurvature, pairwiseDense, scaled, type KfacFactors, type LayerGrads, type MethodCost, type PerSampleGrads, type Use, type WeightedOptions,
} from './layers.js';
import { gemmNT, gemmTN } from './gemm.js';

/** Flop-equivalents per element of im2col output on this libtorch (measured: ~120 ms for 19M elements). */
const UNFOLD_COST = 150;
/** Samples per grouped-conv call: 32-64 ran fastest on ResNet-20's layers; one call of 128 was slower. */
const CONV_CHUNK = 64;

/** Conv2d with groups = 1, any stride, padding and dilation. */
export class ConvCurvature extends LayerCurvature {
  readonly kind = 'conv2d' as const;
  readonly positions: number;
  override readonly preferredChunk = CONV_CHUNK;
  #patches: Tensor | null = null;
  #deltas: Tensor | null = null;

  constructor(name: string, layer: Conv2d, uses: Use[], batch: number) {
    super(name, layer, uses, batch);
    if (layer.groups !== 1) throw new Error(`curvature: conv '${name}' has groups = ${layer.groups}; only groups = 1 is covered`);
    this.positions = uses.reduce((s, u) => s + u.delta.size(2) * u.delta.size(3), 0);
  }
  get conv(): Conv2d {
    return this.layer as Conv2d;
  }
  get params(): [Tensor, Tensor | null] {
    return [this.conv.weight, this.conv.bias];
  }
  get geometry(): { stride: [number, number]; padding: [number, number]; dilation: [number, number] } {
    const c = this.conv;
    return { stride: c.stride, padding: c.padding, dilation: c.dilation };
  }

  perSample(start: number, count: number): PerSampleGrads {
    const c = this.conv;
    const [kh, kw] = c.kernelSize;
    let w: Tensor | null = null;
    let b: Tensor | null = null;
    for (const u of this.uses) {
      const x = u.input.narrow(0, start, count);
      const d = u.delta.narrow(0, start, count);
      const [, cin, h, wd] = x.shape as [number, number, number, number];
      const [, cout, ho, wo] = d.shape as [number, number, number, number];
      // Only the shape of the grouped weight matters to the weight gradient: an expanded zero.
      const shapeOnly = zeros([1, 1, 1, 1], { dtype: x.dtype, device: x.device }).expand([count * cout, cin, kh, kw]);
      const gw = F.conv2dBackward(d.reshape(1, count * cout, ho, wo), x.reshape(1, count * cin, h, wd), shapeOnly, {
        ...this.geometry, groups: count, need: { weight: true },
      }).weight!.view(count, cout, cin, kh, kw);
      w = w === null ? gw : w.add(gw);
      if (c.bias !== null) {
        const gb = d.sum([2, 3]);
        b = b === null ? gb : b.add(gb);
      }
    }
    return { weight: w!, bias: b };
  }

  override prepare(method: 'pairwise' | 'materialize'): void {
    if (method === 'pairwise') void [this.patches, this.positionDeltas];
  }

  /** im2col patches of every use, [B, T, Cin kh kw], made once (pairwise Grams only; again if their scope freed them). */
  get patches(): Tensor {
    if (this.#patches === null || this.#patches.isDisposed) {
      const c = this.conv;
      const ps = this.uses.map((u) => F.unfold(u.input, c.kernelSize, this.geometry).transpose(1, 2));
      this.#patches = this.own(ps.length === 1 ? ps[0]!.contiguous() : cat(ps, 1));
    }
    return this.#patches;
  }
  /** Output gradients as positions, [B, T, Cout], made once (pairwise Grams only). */
  get positionDeltas(): Tensor {
    if (this.#deltas === null || this.#deltas.isDisposed) {
      const ds = this.uses.map((u) => u.delta.reshape(this.batch, u.delta.size(1), -1).transpose(1, 2));
      this.#deltas = this.own(ds.length === 1 ? ds[0]!.contiguous() : cat(ds, 1));
    }
    return this.#deltas;
  }

  pairwiseRows(start: number, count: number): Tensor {
    const [p, d] = [this.patches, this.positionDeltas];
    const f = { a: p.reshape(-1, p.size(2)), d: d.reshape(-1, d.size(2)), batch: this.batch, positions: this.positions };
    return pairwiseDense(f, start, count, this.conv.bias !== null);
  }

  weighted(alpha: Tensor, o: WeightedOptions = {}): LayerGrads {
    const c = this.conv;
    const al = this.alphaFor(alpha, 4);
    let w: Tensor | null = null;
    let b: Tensor | null = null;
    for (const u of this.uses) {
      // The weight gradient is bilinear in (delta, input): scale the smaller one (e.g. the stem's
      // 3-channel input; never in place, other layers may read it).
      const scaleD = u.delta.numel <= u.input.numel;
      const d = scaleD ? scaled(u.delta, al, o.scratch, o.overwriteDeltas) : u.delta;
      const gw = F.conv2dBackward(d, scaleD ? u.input : scaled(u.input, al, o.scratch), c.weight, {
        ...this.geometry, need: { weight: true },
      }).weight!;
      w = w === null ? gw : w.add(gw);
      if (c.bias !== null) {
        // From the scaled delta when there is one (it may have replaced u.delta): sum_i alpha_i sum_t delta_it.
        const gb = scaleD ? d.sum([0, 2, 3]) : u.delta.sum([2, 3]).t().matmul(alpha.to(this.dtype));
        b = b === null ? gb : b.add(gb);
      }
    }
    return { weight: w!, bias: b };
  }

  kfac(): KfacFactors {
    const c = this.conv;
    const n = this.batch * this.positions;
    // A from patches, a few samples at a time (im2col output is T times the input).
    const din = c.inChannels * c.kernelSize[0] * c.kernelSize[1];
    const chunk = Math.max(1, Math.floor((16 << 20) / Math.max(1, (this.positions * din * this.eltBytes))));
    let ata: Tensor | null = null;
    let s: Tensor | null = null;
    for (let i = 0; i < this.batch; i += chunk) {
      const m = Math.min(chunk, this.batch - i);
      for (const u of this.uses) {
        const p = F.unfold(u.input.narrow(0, i, m), c.kernelSize, this.geometry).transpose(1, 2).reshape(-1, din);
        const pp = gemmTN(p, p);
        ata = ata === null ? pp : ata.add(pp);
        if (c.bias !== null) {
          const ps = p.sum(0);
          s = s === null ? ps : s.add(ps);
        }
      }
    }
    let A = ata!;
    if (s !== null) {
      const col = s.unsqueeze(1);
      const corner = ones([1, 1], { dtype: A.dtype, device: A.device }).mul(n);
      A = cat([cat([A, col], 1), cat([col.t(), corner], 1)], 0);
    }
    let G: Tensor | null = null;
    for (const u of this.uses) {
      const d = u.delta.transpose(0, 1).reshape(c.outChannels, -1);
      const dd = gemmNT(d, d);
      G = G === null ? dd : G.add(dd);
    }
    return { A: A.div(n), G: G!.div(this.batch), aDiagonal: false, positions: this.positions };
  }

  costs(maxBytes: number): { pairwise: MethodCost | null; materialize: MethodCost | null } {
    const c = this.conv;
    const din = c.inChannels * c.kernelSize[0] * c.kernelSize[1];
    const b = this.batch;
    const t = this.positions;
    const patchBytes = b * t * din * this.eltBytes;
    return {
      pairwise: this.pairwiseCost(din + 1, c.outChannels, maxBytes, b * t * din * UNFOLD_COST, patchBytes),
      materialize: this.materializeCost(b * t * (din + 1) * c.outChannels, maxBytes),
    };
  }
}
