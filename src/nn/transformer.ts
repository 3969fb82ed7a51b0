// Transformer encoder/decoder layers and stacks, PyTorch's math (batch-first): post-norm by default,
// `normFirst` for pre-norm, ReLU (or GELU) feed-forward, dropout after attention and feed-forward.
// Children and their names follow torch.nn.TransformerEncoderLayer / DecoderLayer (see attention.ts
// for the split q/k/v projections), and so does the order of random draws at init.
import { cat, type Tensor } from '../tensor/index.js';
import { Dropout } from './basic.js';
import type { InitOptions } from './init.js';
import { Linear } from './linear.js';
import { Module, type Layer } from './module.js';
import { MultiheadAttention, type KeysValues } from './attention.js';
import { GELU, ModuleList, ReLU } from './basic.js';
import { LayerNorm } from './norm.js';

export interface TransformerLayerOptions extends InitOptions {
  dimFeedforward?: number;
  dropout?: number;
  activation?: 'relu' | 'gelu';
  layerNormEps?: number;
  normFirst?: boolean;
}

/** linear1 -> activation -> dropout -> linear2, the position-wise feed-forward block. */
class FeedForward {
  readonly linear1: Linear;
  readonly linear2: Linear;
  readonly dropout: Dropout;
  readonly activation: Layer;
  constructor(owner: (name: string, m: Module) => Module, dModel: number, o: TransformerLayerOptions) {
    const ff = o.dimFeedforward ?? 2048;
    this.linear1 = owner('linear1', new Linear(dModel, ff, o)) as Linear;
    this.dropout = owner('dropout', new Dropout(o.dropout ?? 0.1)) as Dropout;
    this.linear2 = owner('linear2', new Linear(ff, dModel, o)) as Linear;
    this.activation = (o.activation ?? 'relu') === 'relu' ? new ReLU() : new GELU();
  }
  forward(x: Tensor): Tensor {
    return this.linear2.forward(this.dropout.forward(this.activation.forward(this.linear1.forward(x))));
  }
}

export interface EncoderLayerMasks {
  /** [S, S] or [B*H, S, S] attention mask (see AttentionMasks.attnMask). */
  srcMask?: Tensor | null;
  /** [B, S] bool, true = padding. */
  srcKeyPaddingMask?: Tensor | null;
}

export class TransformerEncoderLayer extends Module {
  readonly selfAttn: MultiheadAttention;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly normFirst: boolean;
  private readonly ff: FeedForward;
  private readonly dropout1: Dropout;
  private readonly dropout2: Dropout;

  constructor(readonly dModel: number, readonly nhead: number, o: TransformerLayerOptions = {}) {
    super();
    const p = o.dropout ?? 0.1;
    const eps = o.layerNormEps ?? 1e-5;
    this.selfAttn = this.registerModule('self_attn', new MultiheadAttention(dModel, nhead, { ...o, dropout: p }));
    this.ff = new FeedForward((n, m) => this.registerModule(n, m), dModel, o);
    this.normFirst = o.normFirst ?? false;
    this.norm1 = this.registerModule('norm1', new LayerNorm(dModel, { ...o, eps }));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dModel, { ...o, eps }));
    this.dropout1 = this.registerModule('dropout1', new Dropout(p));
    this.dropout2 = this.registerModule('dropout2', new Dropout(p));
  }

  /** src [B, S, E] -> [B, S, E]. */
  forward(src: Tensor, masks: EncoderLayerMasks = {}): Tensor {
    const sa = (x: Tensor) => this.dropout1.forward(this.selfAttn.forward(x, x, x, { attnMask: masks.srcMask, keyPaddingMask: masks.srcKeyPaddingMask }));
    const ff = (x: Tensor) => this.dropout2.forward(this.ff.forward(x));
    let x = src;
    if (this.normFirst) {
      x = x.add(sa(this.norm1.forward(x)));
      x = x.add(ff(this.norm2.forward(x)));
    } else {
      x = this.norm1.forward(x.add(sa(x)));
      x = this.norm2.forward(x.add(ff(x)));
    }
    return x;
  }
}

export interface DecoderLayerMasks {
  /** [T, T] or [B*H, T, T], typically `causalMask(T)`. */
  tgtMask?: Tensor | null;
  /** [T, S] or [B*H, T, S]. */
  memoryMask?: Tensor | null;
  /** [B, T] bool, true = padding. */
  tgtKeyPaddingMask?: Tensor | null;
  /** [B, S] bool, true = padding. */
  memoryKeyPaddingMask?: Tensor | null;
}

export class TransformerDecoderLayer extends Module {
  readonly selfAttn: MultiheadAttention;
  readonly crossAttn: MultiheadAttention;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly norm3: LayerNorm;
  readonly normFirst: boolean;
  private readonly ff: FeedForward;
  private readonly dropouts: [Dropout, Dropout, Dropout];

  constructor(readonly dModel: number, readonly nhead: number, o: TransformerLayerOptions = {}) {
    super();
    const p = o.dropout ?? 0.1;
    const eps = o.layerNormEps ?? 1e-5;
    this.selfAttn = this.registerModule('self_attn', new MultiheadAttention(dModel, nhead, { ...o, dropout: p }));
    this.crossAttn = this.registerModule('multihead_attn', new MultiheadAttention(dModel, nhead, { ...o, dropout: p }));
    this.ff = new FeedForward((n, m) => this.registerModule(n, m), dModel, o);
    this.normFirst = o.normFirst ?? false;
    this.norm1 = this.registerModule('norm1', new LayerNorm(dModel, { ...o, eps }));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dModel, { ...o, eps }));
    this.norm3 = this.registerModule('norm3', new LayerNorm(dModel, { ...o, eps }));
    this.dropouts = [
      this.registerModule('dropout1', new Dropout(p)),
      this.registerModule('dropout2', new Dropout(p)),
      this.registerModule('dropout3', new Dropout(p)),
    ];
  }

  /** tgt [B, T, E], memory [B, S, E] -> [B, T, E]. */
  forward(tgt: Tensor, memory: Tensor, masks: DecoderLayerMasks = {}): Tensor {
    const [d1, d2, d3] = this.dropouts;
    const sa = (x: Tensor) => d1.forward(this.selfAttn.forward(x, x, x, { attnMask: masks.tgtMask, keyPaddingMask: masks.tgtKeyPaddingMask }));
    const ca = (x: Tensor) => d2.forward(this.crossAttn.forward(x, memory, memory, { attnMask: masks.memoryMask, keyPaddingMask: masks.memoryKeyPaddingMask }));
    return this.sublayers(tgt, sa, ca, (x: Tensor) => d3.forward(this.ff.forward(x)));
  }

  /** The three residual sublayers around their norms, pre-norm or post-norm (forward and step share it). */
  private sublayers(x: Tensor, sa: (y: Tensor) => Tensor, ca: (y: Tensor) => Tensor, ff: (y: Tensor) => Tensor): Tensor {
    if (this.normFirst) {
      x = x.add(sa(this.norm1.forward(x)));
      x = x.add(ca(this.norm2.forward(x)));
      return x.add(ff(this.norm3.forward(x)));
    }
    x = this.norm1.forward(x.add(sa(x)));
    x = this.norm2.forward(x.add(ca(x)));
    return this.norm3.forward(x.add(ff(x)));
  }

  /**
   * Incremental decoding: `forward`'s output at the newest position t only, from the layer's input
   * there, x [B, 1, E]. `self` holds the self-attention's keys and values of positions < t (null at
   * t = 0); the result extends it with position t's. `memory` is the cross-attention's
   * `keysValues(memory)`; `selfPad` [B, t + 1] marks padding among positions 0..t. Position t sees
   * positions <= t, as under forward's causal mask, so the output equals forward's row t.
   */
  step(x: Tensor, self: KeysValues | null, memory: KeysValues, selfPad: Tensor | null, memoryPad: Tensor | null): { out: Tensor; self: KeysValues } {
    const [d1, d2, d3] = this.dropouts;
    let kv = self;
    const sa = (y: Tensor) => {
      // k and v before q here (attendTo projects the query): decoding runs without autograd, so no
      // curvature engine sees this order.
      const now = this.selfAttn.keysValues(y);
      kv = self === null ? now : { k: cat([self.k, now.k], 2), v: cat([self.v, now.v], 2) };
      return d1.forward(this.selfAttn.attendTo(y, kv, { keyPaddingMask: selfPad }));
    };
    const ca = (y: Tensor) => d2.forward(this.crossAttn.attendTo(y, memory, { keyPaddingMask: memoryPad }));
    const out = this.sublayers(x, sa, ca, (y: Tensor) => d3.forward(this.ff.forward(y)));
    return { out, self: kv! };
  }
}

export interface TransformerStackOptions extends TransformerLayerOptions {
  /** A final LayerNorm after the stack (default true, as in torch.nn.Transformer). */
  finalNorm?: boolean;
}

/** `numLayers` encoder layers ('layers.i') and an optional final LayerNorm ('norm'). */
export class TransformerEncoder extends Module {
  readonly layers: ModuleList<TransformerEncoderLayer>;
  readonly norm: LayerNorm | null;
  constructor(dModel: number, nhead: number, numLayers: number, o: TransformerStackOptions = {}) {
    super();
    this.layers = this.registerModule('layers', new ModuleList<TransformerEncoderLayer>());
    for (let i = 0; i < numLayers; i++) this.layers.append(new TransformerEncoderLayer(dModel, nhead, o));
    this.norm = (o.finalNorm ?? true) ? this.registerModule('norm', new LayerNorm(dModel, { ...o, eps: o.layerNormEps ?? 1e-5 })) : null;
  }
  forward(src: Tensor, masks: EncoderLayerMasks = {}): Tensor {
    let x = src;
    for (const l of this.layers) x = l.forward(x, masks);
    return this.norm === null ? x : this.norm.forward(x);
  }
}

/** `numLayers` decoder layers ('layers.i') and an optional final LayerNorm ('norm'). */
export class TransformerDecoder extends Module {
  readonly layers: ModuleList<TransformerDecoderLayer>;
  readonly norm: LayerNorm | null;
  constructor(dModel: number, nhead: number, numLayers: number, o: TransformerStackOptions = {}) {
    super();
    this.layers = this.registerModule('layers', new ModuleList<TransformerDecoderLayer>());
    for (let i = 0; i < numLayers; i++) this.layers.append(new TransformerDecoderLayer(dModel, nhead, o));
    this.norm = (o.finalNorm ?? true) ? this.registerModule('norm', new LayerNorm(dModel, { ...o, eps: o.layerNormEps ?? 1e-5 })) : null;
  }
  forward(tgt: Tensor, memory: Tensor, masks: DecoderLayerMasks = {}): Tensor {
    let x = tgt;
    for (const l of this.layers) x = l.forward(x, memory, masks);
    return this.norm === null ? x : this.norm.forward(x);
  }

  /** Each layer's cross-attention keys and values of `memory` [B, S, E], computed once for `step`. */
  memoryKeysValues(memory: Tensor): KeysValues[] {
    return [...this.layers].map((l) => l.crossAttn.keysValues(memory));
  }

  /**
   * Incremental decoding through the stack (TransformerDecoderLayer.step): the output [B, 1, E] at
   * the newest position and every layer's extended self-attention keys and values.
   */
  step(x: Tensor, selfs: readonly (KeysValues | null)[], memories: readonly KeysValues[], selfPad: Tensor | null, memoryPad: Tensor | null): { out: Tensor; selfs: KeysValues[] } {
    const out: KeysValues[] = [];
    let y = x;
    [...this.layers].forEach((l, i) => {
      const r = l.step(y, selfs[i] ?? null, memories[i]!, selfPad, memoryPad);
      y = r.out;
      out.push(r.self);
    });
    return { out: this.norm === null ? y : this.norm.forward(y), selfs: out };
  }
}
