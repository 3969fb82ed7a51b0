// Neural-network operators (PyTorch's torch.nn.functional), each one libtorch call.
import { defineOp } from './op.js';
import { Tensor } from './tensor.js';

type Pair = number | [number, number];

const linearOp = defineOp('linear');
const conv2dOp = defineOp('conv2d');
const convBackwardOp = defineOp('convolution_backward');
const maxPool2dOp = defineOp('max_pool2d');
const avgPool2dOp = defineOp('avg_pool2d');
const adaptiveAvgPool2dOp = defineOp('adaptive_avg_pool2d');
const adaptiveMaxPool2dOp = defineOp('adaptive_max_pool2d');
const batchNormOp = defineOp('batch_norm');
const layerNormOp = defineOp('layer_norm');
const embeddingOp = defineOp('embedding');
const dropoutOp = defineOp('dropout');
const im2colOp = defineOp('im2col');
const crossEntropyOp = defineOp('cross_entropy_loss');
const nllLossOp = defineOp('nll_loss_nd');
const mseLossOp = defineOp('mse_loss');
const oneHotOp = defineOp('one_hot');
const padOp = defineOp('constant_pad_nd');

const REDUCTION = { none: 0, mean: 1, sum: 2 } as const;
export type Reduction = keyof typeof REDUCTION;

function reduction(r: string | undefined, what: string): number {
  const v = REDUCTION[(r ?? 'mean') as Reduction];
  if (v === undefined) throw new TypeError(`${what}: reduction must be 'none', 'mean' or 'sum', got '${r}'`);
  return v;
}

function pair(v: Pair): [number, number] {
  return typeof v === 'number' ? [v, v] : v;
}

/** y = x W^T + b over the last dimension. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return linearOp(x, weight, bias) as Tensor;
}

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, o: Conv2dOptions = {}): Tensor {
  return conv2dOp(x, weight, bias, pair(o.stride ?? 1), pair(o.padding ?? 0), pair(o.dilation ?? 1), o.groups ?? 1) as Tensor;
}

/**
 * The gradients of a conv2d with respect to its input and its weight (and bias), given the
 * gradient of its output: libtorch's own backward kernels, for code that needs them directly
 * (per-sample statistics). `need` picks which to compute.
 */
export function conv2dBackward(
  gradOutput: Tensor, input: Tensor, weight: Tensor,
  o: Conv2dOptions & { need?: { input?: boolean; weight?: boolean; bias?: boolean } } = {},
): { input: Tensor | null; weight: Tensor | null; bias: Tensor | null } {
  const need = o.need ?? { input: true, weight: true, bias: false };
  const biasSizes = need.bias ? [weight.size(0)] : null;
  const [gi, gw, gb] = convBackwardOp(
    gradOutput, input, weight, biasSizes, pair(o.stride ?? 1), pair(o.padding ?? 0), pair(o.dilation ?? 1),
    false, [0, 0], o.groups ?? 1, [need.input ?? false, need.weight ?? false, need.bias ?? false],
  ) as [Tensor | null, Tensor | null, Tensor | null];
  return { input: gi, weight: gw, bias: gb };
}

export function maxPool2d(x: Tensor, kernel: Pair, o: { stride?: Pair; padding?: Pair; dilation?: Pair; ceilMode?: boolean } = {}): Tensor {
  return maxPool2dOp(x, pair(kernel), pair(o.stride ?? kernel), pair(o.padding ?? 0), pair(o.dilation ?? 1), o.ceilMode ?? false) as Tensor;
}

export function avgPool2d(x: Tensor, kernel: Pair, o: { stride?: Pair; padding?: Pair; ceilMode?: boolean; countIncludePad?: boolean } = {}): Tensor {
  return avgPool2dOp(x, pair(kernel), pair(o.stride ?? kernel), pair(o.padding ?? 0), o.ceilMode ?? false, o.countIncludePad ?? true) as Tensor;
}

export function adaptiveAvgPool2d(x: Tensor, outputSize: Pair): Tensor {
  return adaptiveAvgPool2dOp(x, pair(outputSize)) as Tensor;
}

export function adaptiveMaxPool2d(x: Tensor, outputSize: Pair): Tensor {
  const [values, indices] = adaptiveMaxPool2dOp(x, pair(outputSize)) as [Tensor, Tensor];
  indices.dispose();
  return values;
}

/**
 * Batch normalization. In training mode it normalizes with the batch statistics and updates
 * `runningMean`/`runningVar` in place (momentum as in PyTorch: new = (1-m) old + m batch).
 */
export function batchNorm(
  x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, weight: Tensor | null, bias: Tensor | null,
  o: { training?: boolean; momentum?: number; eps?: number } = {},
): Tensor {
  return batchNormOp(x, weight, bias, runningMean, runningVar, o.training ?? false, o.momentum ?? 0.1, o.eps ?? 1e-5, true) as Tensor;
}

export function layerNorm(x: Tensor, normalizedShape: number[], weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return layerNormOp(x, normalizedShape, weight, bias, eps, true) as Tensor;
}

/** Rows of `weight` picked by integer `indices`; `paddingIdx` rows get no gradient. */
export function embedding(indices: Tensor, weight: Tensor, paddingIdx = -1): Tensor {
  return embeddingOp(weight, indices, paddingIdx, false, false) as Tensor;
}

/** Inverted dropout: zeroes with probability p and scales the rest by 1/(1-p) when `training`. */
export function dropout(x: Tensor, p: number, training: boolean): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  return dropoutOp(x, p, training) as Tensor;
}

/** im2col: [N, C, H, W] -> [N, C*kh*kw, L], the patches a conv2d multiplies with its weight. */
export function unfold(x: Tensor, kernel: Pair, o: { stride?: Pair; padding?: Pair; dilation?: Pair } = {}): Tensor {
  return im2colOp(x, pair(kernel), pair(o.dilation ?? 1), pair(o.padding ?? 0), pair(o.stride ?? 1)) as Tensor;
}

export interface CrossEntropyOptions {
  reduction?: Reduction;
  /** Targets equal to this contribute zero loss (and, with 'mean', are not counted). */
  ignoreIndex?: number;
  labelSmoothing?: number;
  weight?: Tensor | null;
}

/**
 * Cross-entropy of logits [N, C] (or [N, C, d...]) against class indices [N] (or [N, d...]).
 * `reduction: 'none'` gives the per-sample losses.
 */
export function crossEntropy(logits: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor {
  const ls = o.labelSmoothing ?? 0;
  if (!(ls >= 0 && ls <= 1)) throw new RangeError(`crossEntropy: labelSmoothing must be in [0, 1], got ${ls}`);
  return crossEntropyOp(logits, target, o.weight ?? null, reduction(o.reduction, 'crossEntropy'), o.ignoreIndex ?? -100, ls) as Tensor;
}

export function nllLoss(logProbs: Tensor, target: Tensor, o: { reduction?: Reduction; ignoreIndex?: number } = {}): Tensor {
  return nllLossOp(logProbs, target, null, reduction(o.reduction, 'nllLoss'), o.ignoreIndex ?? -100) as Tensor;
}

export function mseLoss(x: Tensor, target: Tensor, o: { reduction?: Reduction } = {}): Tensor {
  return mseLossOp(x, target, reduction(o.reduction, 'mseLoss')) as Tensor;
}

export function oneHot(indices: Tensor, numClasses: number): Tensor {
  return oneHotOp(indices, numClasses) as Tensor;
}

/** Constant padding; `pad` lists (before, after) pairs starting from the last dimension. */
export function pad(x: Tensor, padding: number[], value = 0): Tensor {
  return padOp(x, padding, value) as Tensor;
}

export function relu(x: Tensor): Tensor { return x.relu(); }
export function gelu(x: Tensor): Tensor { return x.gelu(); }
export function softmax(x: Tensor, dim: number): Tensor { return x.softmax(dim); }
export function logSoftmax(x: Tensor, dim: number): Tensor { return x.logSoftmax(dim); }
