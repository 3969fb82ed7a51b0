// PyTorch's default initializations, drawn from libtorch's random streams (the global one seeded by
// `manualSeed`, or a `Generator`). The formulas and the order of draws follow torch.nn exactly, so a
// layer built after `manualSeed(s)` holds the same numbers as its PyTorch twin after
// `torch.manual_seed(s)` (CPU).
import { empty, Generator, noGrad, scope, type Device, type DType, type Tensor } from '../tensor/index.js';

/** Where and how a layer creates its tensors. */
export interface InitOptions {
  /** Floating dtype of parameters and floating buffers (default float32). */
  dtype?: DType;
  /** Device of parameters and buffers (default cpu). Random draws happen on the CPU, then move. */
  device?: Device;
  /** Seeded stream for the random init; the global stream (`manualSeed`) otherwise. */
  generator?: Generator;
}

/** A new tensor of `shape`, filled in place by `fill` on the CPU, then moved to `o.device`. */
export function initTensor(shape: number[], o: InitOptions, fill: (t: Tensor, g: Generator | null) => void): Tensor {
  return noGrad(() => scope(() => {
    const t = empty(shape, { dtype: o.dtype ?? 'float32', device: 'cpu' });
    fill(t, o.generator ?? null);
    return o.device !== undefined && o.device !== 'cpu' ? t.to({ device: o.device }) : t;
  }));
}

/** fan_in and fan_out of a weight [out, in, k...] as torch.nn.init computes them. */
export function fans(shape: number[]): [number, number] {
  if (shape.length < 2) throw new RangeError(`fans: need at least 2 dimensions, got [${shape}]`);
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return [shape[1]! * receptive, shape[0]! * receptive];
}

/** kaiming_uniform_(a) with leaky_relu gain and fan_in mode: bound = sqrt(3) * gain / sqrt(fan_in). */
export function kaimingUniformBound(fanIn: number, a = Math.sqrt(5)): number {
  const gain = Math.sqrt(2.0 / (1 + a ** 2));
  const std = gain / Math.sqrt(fanIn);
  return Math.sqrt(3.0) * std;
}

/** xavier_uniform_ bound: gain * sqrt(6 / (fan_in + fan_out)). */
export function xavierUniformBound(fanIn: number, fanOut: number, gain = 1): number {
  const std = gain * Math.sqrt(2.0 / (fanIn + fanOut));
  return Math.sqrt(3.0) * std;
}

/** The bias bound PyTorch's Linear and Conv use: 1/sqrt(fan_in) (0 for fan_in 0). */
export function biasBound(fanIn: number): number {
  return fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
}

export function uniformTensor(shape: number[], bound: number, o: InitOptions): Tensor {
  return initTensor(shape, o, (t, g) => t.uniform_(-bound, bound, g));
}

export function constantTensor(shape: number[], value: number, o: InitOptions): Tensor {
  return initTensor(shape, o, (t) => t.fill_(value));
}

/** Redraws a parameter in place (e.g. a model's own init scheme on top of the layer defaults). */
export function uniform_(t: Tensor, bound: number, generator: Generator | null = null): void {
  if (t.device === 'cpu' || generator === null) {
    noGrad(() => t.uniform_(-bound, bound, generator));
  } else {
    // Generators are CPU streams: draw there and copy.
    noGrad(() => scope(() => {
      t.copy_(empty(t.shape, { dtype: t.dtype, device: 'cpu' }).uniform_(-bound, bound, generator));
    }));
  }
}
