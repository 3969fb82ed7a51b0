// ResNets for 32x32 images (CIFAR). Names follow torchvision (conv1, bn1, layerK.i.conv1, ...,
// downsample.0/1, fc). Layers keep PyTorch's default inits (BatchNorm: ones/zeros).
//
// Shortcuts where the shape changes (stride 2 or more channels):
//  'B': a 1x1 convolution with that stride plus BatchNorm ('downsample'), as in torchvision and
//       the CIFAR ResNet-18 of the paper;
//  'A': parameter-free: subsample x[:, :, ::s, ::s] and zero-pad the new channels (half before,
//       half after), as He et al. used for their CIFAR ResNet-20/32/... (0.27M parameters for
//       ResNet-20). resnetSmall defaults to 'A'.
import { F, type Tensor } from '../../tensor/index.js';
import { Sequential } from '../basic.js';
import { AdaptiveAvgPool2d, Conv2d } from '../conv.js';
import type { InitOptions } from '../init.js';
import { Linear } from '../linear.js';
import { Module } from '../module.js';
import { BatchNorm2d } from '../norm.js';

export type ShortcutType = 'A' | 'B';

/** conv3x3 - BN - ReLU - conv3x3 - BN, plus the shortcut, then ReLU. */
export class BasicBlock extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  /** Option B projection (conv1x1 + BN), or null. */
  readonly downsample: Sequential | null;
  /** Option A: subsampling stride and channel zero-padding (before, after), or null. */
  readonly padShortcut: { stride: number; before: number; after: number } | null;

  constructor(readonly inPlanes: number, readonly planes: number, readonly stride = 1, o: InitOptions & { shortcut?: ShortcutType } = {}) {
    super();
    this.conv1 = this.registerModule('conv1', new Conv2d(inPlanes, planes, 3, { ...o, stride, padding: 1, bias: false }));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(planes, o));
    this.conv2 = this.registerModule('conv2', new Conv2d(planes, planes, 3, { ...o, stride: 1, padding: 1, bias: false }));
    this.bn2 = this.registerModule('bn2', new BatchNorm2d(planes, o));
    const reshape = stride !== 1 || inPlanes !== planes;
    const type = o.shortcut ?? 'B';
    this.downsample = reshape && type === 'B'
      ? this.registerModule('downsample', new Sequential(new Conv2d(inPlanes, planes, 1, { ...o, stride, bias: false }), new BatchNorm2d(planes, o)))
      : null;
    if (reshape && type === 'A') {
      if (planes < inPlanes) throw new RangeError(`BasicBlock: option A cannot reduce channels (${inPlanes} -> ${planes})`);
      const extra = planes - inPlanes;
      this.padShortcut = { stride, before: Math.floor(extra / 2), after: extra - Math.floor(extra / 2) };
    } else {
      this.padShortcut = null;
    }
  }

  forward(x: Tensor): Tensor {
    const out = this.bn2.forward(this.conv2.forward(this.bn1.forward(this.conv1.forward(x)).relu()));
    let sc = x;
    if (this.downsample !== null) {
      sc = this.downsample.forward(x);
    } else if (this.padShortcut !== null) {
      const { stride: s, before, after } = this.padShortcut;
      sc = F.pad(s === 1 ? x : x.slice(2, 0, null, s).slice(3, 0, null, s), [0, 0, 0, 0, before, after]);
    }
    return out.add(sc).relu();
  }
}

export interface ResNetOptions extends InitOptions {
  /** Blocks per stage. */
  blocks: number[];
  /** Channels per stage. */
  widths: number[];
  classes: number;
  shortcut?: ShortcutType;
  inChannels?: number;
}

/** conv3x3 stem (no max-pool) - BN - ReLU - stages 'layer1'.. - global average pool - 'fc'. */
export class ResNet extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly stages: Sequential[] = [];
  readonly avgpool: AdaptiveAvgPool2d;
  readonly fc: Linear;

  constructor(o: ResNetOptions) {
    super();
    if (o.blocks.length !== o.widths.length || o.blocks.length === 0) throw new RangeError('ResNet: blocks and widths must be non-empty and of equal length');
    const w0 = o.widths[0]!;
    this.conv1 = this.registerModule('conv1', new Conv2d(o.inChannels ?? 3, w0, 3, { ...o, padding: 1, bias: false }));
    this.bn1 = this.registerModule('bn1', new BatchNorm2d(w0, o));
    let inPlanes = w0;
    o.blocks.forEach((n, s) => {
      const planes = o.widths[s]!;
      const blocks: BasicBlock[] = [];
      for (let i = 0; i < n; i++) {
        blocks.push(new BasicBlock(inPlanes, planes, i === 0 && s > 0 ? 2 : 1, o));
        inPlanes = planes;
      }
      this.stages.push(this.registerModule(`layer${s + 1}`, new Sequential(...blocks)));
    });
    this.avgpool = this.registerModule('avgpool', new AdaptiveAvgPool2d(1));
    this.fc = this.registerModule('fc', new Linear(inPlanes, o.classes, o));
  }

  /** [N, C, H, W] -> logits [N, classes]. */
  forward(x: Tensor): Tensor {
    let y = this.bn1.forward(this.conv1.forward(x)).relu();
    for (const s of this.stages) y = s.forward(y);
    return this.fc.forward(this.avgpool.forward(y).flatten(1));
  }
}

/** The CIFAR ResNet-18: 64-128-256-512 channels, [2, 2, 2, 2] BasicBlocks, option-B shortcuts (11.2M parameters). */
export function resnet18Cifar(o: InitOptions & { classes?: number; shortcut?: ShortcutType } = {}): ResNet {
  return new ResNet({ ...o, blocks: [2, 2, 2, 2], widths: [64, 128, 256, 512], classes: o.classes ?? 10, shortcut: o.shortcut ?? 'B' });
}

export interface ResNetSmallOptions extends InitOptions {
  /** 6n+2: 20 (n=3, He et al.), 8 (n=1, for quick CPU runs), 32, 44, 56, ... (default 20). */
  depth?: number;
  classes?: number;
  /** Channel multiplier on 16-32-64 (default 1; e.g. 0.5 gives 8-16-32). */
  width?: number;
  /** Default 'A' (He et al.); 'B' for 1x1-conv projections. */
  shortcut?: ShortcutType;
}

/** He et al.'s CIFAR ResNet family: 3 stages of n BasicBlocks with 16-32-64 channels (times width). */
export function resnetSmall(o: ResNetSmallOptions = {}): ResNet {
  const depth = o.depth ?? 20;
  if (!Number.isInteger(depth) || depth < 8 || (depth - 2) % 6 !== 0) throw new RangeError(`resnetSmall: depth must be 6n+2 >= 8, got ${depth}`);
  const n = (depth - 2) / 6;
  const width = o.width ?? 1;
  const widths = [16, 32, 64].map((c) => Math.max(1, Math.round(c * width)));
  return new ResNet({ ...o, blocks: [n, n, n], widths, classes: o.classes ?? 10, shortcut: o.shortcut ?? 'A' });
}
