// Parameter-free layers and containers.
import { F, type Tensor } from '../tensor/index.js';
import { Module, type Layer } from './module.js';

export class ReLU extends Module {
  forward(x: Tensor): Tensor { return x.relu(); }
}

export class GELU extends Module {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') { super(); }
  forward(x: Tensor): Tensor { return x.gelu(this.approximate); }
}

export class Tanh extends Module {
  forward(x: Tensor): Tensor { return x.tanh(); }
}

export class Identity extends Module {
  forward(x: Tensor): Tensor { return x; }
}

/** Flattens dimensions startDim..endDim (default: all but the batch dimension). */
export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) { super(); }
  forward(x: Tensor): Tensor { return x.flatten(this.startDim, this.endDim); }
}

/** Inverted dropout in training mode; the identity (the input itself) in eval mode or with p = 0. */
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new RangeError(`Dropout: p must be in [0, 1], got ${p}`);
  }
  forward(x: Tensor): Tensor {
    return this.training && this.p > 0 ? F.dropout(x, this.p, true) : x;
  }
}

/** A numbered list of modules ('0', '1', ...), for stacks the owner runs itself. */
export class ModuleList<M extends Module = Module> extends Module {
  readonly #items: M[] = [];
  constructor(items: M[] = []) {
    super();
    for (const m of items) this.append(m);
  }
  append(m: M): this {
    this.registerModule(String(this.#items.length), m);
    this.#items.push(m);
    return this;
  }
  get length(): number { return this.#items.length; }
  at(i: number): M {
    const m = this.#items.at(i);
    if (m === undefined) throw new RangeError(`ModuleList: index ${i} out of range (length ${this.#items.length})`);
    return m;
  }
  [Symbol.iterator](): Iterator<M> { return this.#items[Symbol.iterator](); }
}

/** Runs its layers in order; children are named '0', '1', ... like PyTorch's. */
export class Sequential extends ModuleList<Layer> {
  constructor(...layers: Layer[]) {
    super(layers);
  }
  forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this) y = m.forward(y);
    return y;
  }
}
