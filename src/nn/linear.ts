// Linear and Embedding: the two "dense" parametric layers, both tappable (see taps.ts).
import { F, type Tensor } from '../tensor/index.js';
import { biasBound, initTensor, kaimingUniformBound, uniformTensor, type InitOptions } from './init.js';
import { Module } from './module.js';
import type { TapSink } from './taps.js';

export interface LinearOptions extends InitOptions {
  bias?: boolean;
  /** false: leave the weights zero, for owners that draw their own init (default true). */
  init?: boolean;
}

/** y = x W^T + b over the last dimension; weight [out, in]. PyTorch's init: kaiming_uniform(a=sqrt 5). */
export class Linear extends Module {
  /** Set by a TapRecorder while enabled; null costs one check per forward. */
  tap: TapSink | null = null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, o: LinearOptions = {}) {
    super();
    const init = o.init ?? true;
    const w = init ? uniformTensor([outFeatures, inFeatures], kaimingUniformBound(inFeatures), o)
      : initTensor([outFeatures, inFeatures], o, (t) => t.zero_());
    this.registerParameter('weight', w);
    const b = (o.bias ?? true)
      ? (init ? uniformTensor([outFeatures], biasBound(inFeatures), o) : initTensor([outFeatures], o, (t) => t.zero_()))
      : null;
    this.registerParameter('bias', b);
  }
  get weight(): Tensor { return this.param('weight'); }
  get bias(): Tensor | null { return this.optionalParam('bias'); }

  forward(x: Tensor): Tensor {
    const y = F.linear(x, this.weight, this.bias);
    if (this.tap !== null) this.tap.record(this, x, y);
    return y;
  }
}

export interface EmbeddingOptions extends InitOptions {
  /** Row that stays zero and gets no gradient (negative counts from the end). */
  paddingIdx?: number;
}

/** A lookup table [num, dim], init N(0, 1) with the padding row zeroed (PyTorch's default). */
export class Embedding extends Module {
  tap: TapSink | null = null;
  readonly paddingIdx: number | null;

  constructor(readonly numEmbeddings: number, readonly embeddingDim: number, o: EmbeddingOptions = {}) {
    super();
    let p = o.paddingIdx ?? null;
    if (p !== null) {
      if (!Number.isInteger(p) || p >= numEmbeddings || p < -numEmbeddings) {
        throw new RangeError(`Embedding: paddingIdx ${p} out of range for ${numEmbeddings} embeddings`);
      }
      if (p < 0) p += numEmbeddings;
    }
    this.paddingIdx = p;
    this.registerParameter('weight', initTensor([numEmbeddings, embeddingDim], o, (t, g) => {
      t.normal_(0, 1, g);
      if (p !== null) t.select(0, p).fill_(0);
    }));
  }
  get weight(): Tensor { return this.param('weight'); }

  /** Integer indices of any shape -> [..., dim]. */
  forward(indices: Tensor): Tensor {
    const y = F.embedding(indices, this.weight, this.paddingIdx ?? -1);
    if (this.tap !== null) this.tap.record(this, indices, y);
    return y;
  }
}
