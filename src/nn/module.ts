// Module: the base of every layer and model. Small and explicit, in the spirit of torch.nn.Module:
// subclasses register named parameters, buffers and children in their constructor and read them
// back through getters (so that `to()` can swap tensors). Names follow PyTorch (snake_case, dotted
// paths such as `layers.0.weight`), so state dicts line up with PyTorch's.
//
// Ownership: parameters and buffers are `keep()`-ed, so no scope ever frees them; the module owns
// them until `dispose()`. Parameters are leaf tensors with requiresGrad on.
import { keep, noGrad, type Device, type DType, type Tensor } from '../tensor/index.js';

/** A module with the common one-tensor-in, one-tensor-out forward (what `Sequential` chains). */
export type Layer = Module & { forward(x: Tensor): Tensor };

export interface LoadStateDictOptions {
  /** Throw on missing or unexpected keys (default true). Shape mismatches always throw. */
  strict?: boolean;
}

const FLOATING: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16'];

function checkName(name: string, what: string): void {
  if (name === '' || name.includes('.')) throw new TypeError(`${what}: invalid name '${name}' (non-empty, no dots)`);
}

function normDevice(d: Device): Device {
  return d === 'cuda' ? 'cuda:0' : d;
}

export abstract class Module {
  /** Training mode (dropout active, BatchNorm uses batch statistics). Set by `train()`/`eval()`. */
  training = true;
  readonly #params = new Map<string, Tensor | null>();
  readonly #buffers = new Map<string, { t: Tensor | null; persistent: boolean }>();
  readonly #children = new Map<string, Module>();

  // ---- registration (constructors) ------------------------------------------------------------
  #checkFree(name: string, what: string): void {
    checkName(name, what);
    if (this.#params.has(name) || this.#buffers.has(name) || this.#children.has(name)) {
      throw new Error(`${what}: '${name}' is already registered on ${this.constructor.name}`);
    }
  }

  /** Registers a parameter (or an absent one, null). The tensor becomes a kept leaf with requiresGrad. */
  protected registerParameter(name: string, t: Tensor | null): void {
    this.#checkFree(name, 'registerParameter');
    if (t !== null) keep(t).requiresGrad_(true);
    this.#params.set(name, t);
  }

  /** Registers a buffer; non-persistent buffers move with `to()` but stay out of `stateDict()`. */
  protected registerBuffer(name: string, t: Tensor | null, o: { persistent?: boolean } = {}): void {
    this.#checkFree(name, 'registerBuffer');
    if (t !== null) keep(t);
    this.#buffers.set(name, { t, persistent: o.persistent ?? true });
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    this.#checkFree(name, 'registerModule');
    if (!(m instanceof Module)) throw new TypeError(`registerModule: '${name}' is not a Module`);
    this.#children.set(name, m);
    return m;
  }

  /** A registered, present parameter. */
  protected param(name: string): Tensor {
    const t = this.#params.get(name);
    if (t == null) throw new Error(`${this.constructor.name}: no parameter '${name}'`);
    return t;
  }
  protected optionalParam(name: string): Tensor | null {
    return this.#params.get(name) ?? null;
  }
  protected buffer(name: string): Tensor {
    const b = this.#buffers.get(name);
    if (b === undefined || b.t === null) throw new Error(`${this.constructor.name}: no buffer '${name}'`);
    return b.t;
  }

  // ---- traversal ------------------------------------------------------------------------------
  namedChildren(): [string, Module][] {
    return [...this.#children];
  }
  children(): Module[] {
    return [...this.#children.values()];
  }
  /** This module ('' ) and every descendant, depth first, with dotted names. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, c] of this.#children) out.push(...c.namedModules(prefix === '' ? n : `${prefix}.${n}`));
    return out;
  }
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** Parameters with dotted names, own first then children's; a tensor shared by two modules appears once. */
  namedParameters(): [string, Tensor][] {
    const seen = new Set<Tensor>();
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [n, t] of m.#params) {
        if (t === null || seen.has(t)) continue;
        seen.add(t);
        out.push([prefix === '' ? n : `${prefix}.${n}`, t]);
      }
    }
    return out;
  }
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }
  /** Every buffer (persistent or not) with dotted names. */
  namedBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [n, b] of m.#buffers) if (b.t !== null) out.push([prefix === '' ? n : `${prefix}.${n}`, b.t]);
    }
    return out;
  }
  buffers(): Tensor[] {
    return this.namedBuffers().map(([, t]) => t);
  }
  /** Number of scalar parameters. */
  parameterCount(): number {
    return this.parameters().reduce((s, t) => s + t.numel, 0);
  }

  // ---- modes ----------------------------------------------------------------------------------
  train(on = true): this {
    for (const m of this.modules()) m.training = on;
    return this;
  }
  eval(): this {
    return this.train(false);
  }
  requiresGrad_(on = true): this {
    for (const t of this.parameters()) t.requiresGrad_(on);
    return this;
  }
  /** Drops every parameter's `.grad`. */
  zeroGrad(): void {
    for (const t of this.parameters()) t.zeroGrad();
  }

  // ---- state ----------------------------------------------------------------------------------
  /**
   * Parameters and persistent buffers by dotted name, in registration order (own, then children).
   * The values are the module's live tensors, not copies: do not dispose them, `clone()` to snapshot.
   */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [prefix, m] of this.namedModules()) {
      const p = prefix === '' ? '' : `${prefix}.`;
      for (const [n, t] of m.#params) if (t !== null) out.set(p + n, t);
      for (const [n, b] of m.#buffers) if (b.t !== null && b.persistent) out.set(p + n, b.t);
    }
    return out;
  }

  /**
   * Copies values into the module's tensors in place (converting dtype/device as needed). Checks
   * everything first and changes nothing on error; the error names every missing and unexpected
   * key (when `strict`) and every shape mismatch. Returns the keys it skipped.
   */
  loadStateDict(sd: Map<string, Tensor>, o: LoadStateDictOptions = {}): { missing: string[]; unexpected: string[] } {
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !sd.has(k));
    const unexpected = [...sd.keys()].filter((k) => !own.has(k));
    const mismatched: string[] = [];
    for (const [k, src] of sd) {
      const dst = own.get(k);
      if (dst === undefined) continue;
      const a = src.shape;
      const b = dst.shape;
      if (a.length !== b.length || a.some((d, i) => d !== b[i])) mismatched.push(`${k}: checkpoint [${a}], model [${b}]`);
    }
    const problems: string[] = [];
    if ((o.strict ?? true) && missing.length > 0) problems.push(`missing keys: ${missing.join(', ')}`);
    if ((o.strict ?? true) && unexpected.length > 0) problems.push(`unexpected keys: ${unexpected.join(', ')}`);
    if (mismatched.length > 0) problems.push(`shape mismatch: ${mismatched.join('; ')}`);
    if (problems.length > 0) {
      throw new Error(`loadStateDict(${this.constructor.name}): ${problems.join('\n  ')}`);
    }
    noGrad(() => {
      for (const [k, dst] of own) {
        const src = sd.get(k);
        if (src !== undefined) dst.copy_(src);
      }
    });
    return { missing, unexpected };
  }

  /**
   * Moves parameters and buffers to a device and/or casts the floating ones to a dtype (integer
   * buffers such as BatchNorm's step count keep their dtype), in place as PyTorch does: each
   * parameter stays the same Tensor object (now holding the moved data; its `.grad` is dropped), so
   * an optimizer built before still holds the model's parameters. Its own state (momentum, moments)
   * is not moved: build optimizers after `to()`, as in PyTorch.
   */
  to(target: Device | DType | { device?: Device; dtype?: DType }): this {
    const t = typeof target !== 'string' ? target
      : /^(cpu|cuda|cuda:\d+)$/.test(target) ? { device: target } : { dtype: target as DType };
    if (t.dtype !== undefined && !FLOATING.includes(t.dtype)) throw new TypeError(`Module.to: dtype must be floating, got ${t.dtype}`);
    const moved = new Map<Tensor, Tensor>();
    const move = (x: Tensor, isParam: boolean): Tensor => {
      const done = moved.get(x);
      if (done !== undefined) return done;
      const dtype = t.dtype !== undefined && FLOATING.includes(x.dtype) && x.dtype !== t.dtype ? t.dtype : undefined;
      const device = t.device !== undefined && normDevice(t.device) !== x.device ? t.device : undefined;
      if (dtype !== undefined || device !== undefined) {
        const y = noGrad(() => x.to({ dtype, device }));
        if (isParam) y.requiresGrad_(x.requiresGrad);
        x.replaceWith_(y);
      }
      moved.set(x, x);
      return x;
    };
    for (const m of this.modules()) {
      for (const [n, x] of m.#params) if (x !== null) m.#params.set(n, move(x, true));
      for (const b of m.#buffers.values()) if (b.t !== null) b.t = move(b.t, false);
    }
    return this;
  }
  double(): this { return this.to('float64'); }
  float(): this { return this.to('float32'); }

  /** Frees every parameter and buffer of this module and its children. */
  dispose(): void {
    for (const m of this.modules()) {
      for (const t of m.#params.values()) t?.dispose();
      for (const b of m.#buffers.values()) b.t?.dispose();
    }
  }
}
