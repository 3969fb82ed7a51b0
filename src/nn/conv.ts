// Conv2d (tappable) and the 2-D pooling layers.
import { F, type Tensor } from '../tensor/index.js';
import { biasBound, kaimingUniformBound, uniformTensor, type InitOptions } from './init.js';
import { Module } from './module.js';
import type { TapSink } from './taps.js';

/** A size per spatial dimension, or one for both. */
export type Pair = number | [number, number];
function pair(v: Pair, what: string): [number, number] {
  const p: [number, number] = typeof v === 'number' ? [v, v] : [v[0], v[1]];
  if (!p.every((x) => Number.isInteger(x) && x >= 0)) throw new RangeError(`${what}: expected non-negative integers, got ${JSON.stringify(v)}`);
  return p;
}

export interface Conv2dOptions extends InitOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

/** 2-D convolution, zero padding; weight [out, in/groups, kh, kw], PyTorch's default init. */
export class Conv2d extends Module {
  tap: TapSink | null = null;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;

  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: Pair, o: Conv2dOptions = {}) {
    super();
    this.kernelSize = pair(kernelSize, 'Conv2d kernelSize');
    this.stride = pair(o.stride ?? 1, 'Conv2d stride');
    this.padding = pair(o.padding ?? 0, 'Conv2d padding');
    this.dilation = pair(o.dilation ?? 1, 'Conv2d dilation');
    this.groups = o.groups ?? 1;
    if (inChannels % this.groups !== 0 || outChannels % this.groups !== 0) {
      throw new RangeError(`Conv2d: channels ${inChannels}->${outChannels} not divisible by groups ${this.groups}`);
    }
    const fanIn = (inChannels / this.groups) * this.kernelSize[0] * this.kernelSize[1];
    this.registerParameter('weight', uniformTensor([outChannels, inChannels / this.groups, ...this.kernelSize], kaimingUniformBound(fanIn), o));
    this.registerParameter('bias', (o.bias ?? true) ? uniformTensor([outChannels], biasBound(fanIn), o) : null);
  }
  get weight(): Tensor { return this.param('weight'); }
  get bias(): Tensor | null { return this.optionalParam('bias'); }

  /** [N, Cin, H, W] -> [N, Cout, Ho, Wo]. */
  forward(x: Tensor): Tensor {
    const y = F.conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
    if (this.tap !== null) this.tap.record(this, x, y);
    return y;
  }
}

export class MaxPool2d extends Module {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly ceilMode: boolean;
  constructor(kernelSize: Pair, o: { stride?: Pair; padding?: Pair; dilation?: Pair; ceilMode?: boolean } = {}) {
    super();
    this.kernelSize = pair(kernelSize, 'MaxPool2d kernelSize');
    this.stride = pair(o.stride ?? kernelSize, 'MaxPool2d stride');
    this.padding = pair(o.padding ?? 0, 'MaxPool2d padding');
    this.dilation = pair(o.dilation ?? 1, 'MaxPool2d dilation');
    this.ceilMode = o.ceilMode ?? false;
  }
  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, this.kernelSize, { stride: this.stride, padding: this.padding, dilation: this.dilation, ceilMode: this.ceilMode });
  }
}

export class AvgPool2d extends Module {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly ceilMode: boolean;
  readonly countIncludePad: boolean;
  constructor(kernelSize: Pair, o: { stride?: Pair; padding?: Pair; ceilMode?: boolean; countIncludePad?: boolean } = {}) {
    super();
    this.kernelSize = pair(kernelSize, 'AvgPool2d kernelSize');
    this.stride = pair(o.stride ?? kernelSize, 'AvgPool2d stride');
    this.padding = pair(o.padding ?? 0, 'AvgPool2d padding');
    this.ceilMode = o.ceilMode ?? false;
    this.countIncludePad = o.countIncludePad ?? true;
  }
  forward(x: Tensor): Tensor {
    return F.avgPool2d(x, this.kernelSize, { stride: this.stride, padding: this.padding, ceilMode: this.ceilMode, countIncludePad: this.countIncludePad });
  }
}

export class AdaptiveAvgPool2d extends Module {
  readonly outputSize: [number, number];
  constructor(outputSize: Pair) {
    super();
    this.outputSize = pair(outputSize, 'AdaptiveAvgPool2d outputSize');
  }
  forward(x: Tensor): Tensor {
    return F.adaptiveAvgPool2d(x, this.outputSize);
  }
}
