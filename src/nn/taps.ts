// Taps: what second-order methods need from a forward pass. While a TapRecorder is enabled, every
// Linear, Conv2d and Embedding layer it covers appends { name, layer, kind, input, output } to
// `records`, in forward order (a layer run twice records twice). `output` is the very tensor the
// rest of the network consumed, so it is part of the autograd graph:
//   grad(perSampleLoss.sum(), records.map(r => r.output))
// gives every sample's d loss_i / d output_i in one backward pass (samples do not interact, except
// through BatchNorm in training mode). Disabled, a layer pays one `tap !== null` check per forward.
//
// Scope rule. The record holds its own handles onto the input and output (same tensors, not
// copies), created in the scope that is current during the forward. The supported pattern is
//   scope(() => { rec.clear(); const out = model.forward(x); ...use rec.records...; })
// i.e. forward and use in the same scope; the scope frees the handles at its end (and so does
// `clear()`, at once). To use records after the scope, return them from it (`return rec.records`
// or an object holding them): scope() then moves their tensors to the enclosing scope like any
// returned tensor. Records left in `records` after their scope ended hold disposed tensors: call
// `clear()` before each new forward.
import { Tensor } from '../tensor/index.js';
import { native } from '../tensor/native.js';
import { Conv2d } from './conv.js';
import { Embedding, Linear } from './linear.js';
import type { Module } from './module.js';

export type TapKind = 'linear' | 'conv2d' | 'embedding';
export type TappableLayer = Linear | Conv2d | Embedding;

/** What a tapped layer calls during forward. */
export interface TapSink {
  record(layer: TappableLayer, input: Tensor, output: Tensor): void;
}

export interface TapRecord {
  /** Dotted module name within the tapped model (e.g. 'layer1.0.conv1'). */
  name: string;
  layer: TappableLayer;
  kind: TapKind;
  /** Linear: [..., in]; Conv2d: [N, Cin, H, W] (before padding); Embedding: the integer indices. */
  input: Tensor;
  /** The layer's output (before any activation), part of the autograd graph. */
  output: Tensor;
}

export function tapKind(m: Module): TapKind | null {
  if (m instanceof Linear) return 'linear';
  if (m instanceof Conv2d) return 'conv2d';
  if (m instanceof Embedding) return 'embedding';
  return null;
}

export class TapRecorder implements TapSink {
  /** This forward's records, in forward order. */
  readonly records: TapRecord[] = [];
  /** The layers covered, in module order. */
  readonly layers: ReadonlyArray<{ name: string; layer: TappableLayer; kind: TapKind }>;
  readonly #names = new Map<TappableLayer, { name: string; kind: TapKind }>();
  #enabled = false;

  constructor(layers: { name: string; layer: TappableLayer; kind: TapKind }[]) {
    this.layers = layers;
    for (const l of layers) this.#names.set(l.layer, { name: l.name, kind: l.kind });
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  /** Starts recording. Throws if another recorder holds one of the layers. */
  enable(): this {
    for (const { layer, name } of this.layers) {
      if (layer.tap !== null && layer.tap !== this) throw new Error(`TapRecorder.enable: layer '${name}' is tapped by another recorder`);
    }
    for (const { layer } of this.layers) layer.tap = this;
    this.#enabled = true;
    return this;
  }

  /** Stops recording (records stay until `clear()`). */
  disable(): this {
    for (const { layer } of this.layers) if (layer.tap === this) layer.tap = null;
    this.#enabled = false;
    return this;
  }

  record(layer: TappableLayer, input: Tensor, output: Tensor): void {
    const info = this.#names.get(layer);
    if (info === undefined) return;
    this.records.push({
      name: info.name, layer, kind: info.kind,
      input: new Tensor(native.share(input.handle)),
      output: new Tensor(native.share(output.handle)),
    });
  }

  /** Frees this recorder's handles (the tensors live on wherever else they are used) and forgets them. */
  clear(): void {
    for (const r of this.records) {
      r.input.dispose();
      r.output.dispose();
    }
    this.records.length = 0;
  }
}

/**
 * A recorder over every Linear, Conv2d and Embedding inside `model` (optionally filtered), disabled
 * until `enable()`.
 */
export function tapLayers(model: Module, o: { filter?: (name: string, layer: TappableLayer) => boolean } = {}): TapRecorder {
  const layers: { name: string; layer: TappableLayer; kind: TapKind }[] = [];
  for (const [name, m] of model.namedModules()) {
    const kind = tapKind(m);
    if (kind === null) continue;
    const layer = m as TappableLayer;
    if (o.filter === undefined || o.filter(name, layer)) layers.push({ name, layer, kind });
  }
  return new TapRecorder(layers);
}
