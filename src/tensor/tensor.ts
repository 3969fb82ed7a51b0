// The Tensor type: a thin, typed view over a libtorch tensor. Methods are one `defineOp` call each;
// shapes, dtypes and broadcasting are libtorch's. Every tensor joins the innermost `scope`.
import { inspect } from 'node:util';
import { native, type GeneratorHandle, type Handle } from './native.js';
import { rethrowingHookErrors } from './hook-errors.js';
import { defineInPlaceOp, defineOp, setTensorBridge } from './op.js';
import { setTensorCheck, track } from './scope.js';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';
/** 'cpu', 'cuda' or 'cuda:N'. */
export type Device = string;
export type Scalar = number | boolean;
export type TypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

const DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'];

/**
 * A JS number stored into an integer dtype must fit exactly: libtorch truncates 1.5 to 1 and wraps
 * or saturates what is out of range, silently. Booleans and non-integer dtypes pass. The ranges
 * live in the addon, shared with typed-array input (native/addon.cc).
 */
export function checkIntegerValue(value: unknown, dtype: DType, what: string): void {
  if (typeof value === 'number') native.checkIntegerValue(value, dtype, what);
}

/** A value for an error message: JSON where it can be (bigints and cycles cannot). */
export function show(v: unknown): string {
  try {
    return v instanceof Tensor ? String(v) : JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

export function checkDtype(d: unknown, what = 'dtype'): DType {
  if (typeof d !== 'string' || !DTYPES.includes(d as DType)) {
    throw new TypeError(`${what}: unknown dtype ${show(d)} (use one of ${DTYPES.join(', ')})`);
  }
  return d as DType;
}

export class Tensor {
  /** Set by `keep()`: no scope disposes this tensor. */
  kept = false;
  #handle: Handle;
  /** The garbage-collection safety net is set for this tensor (see armSafetyNet). */
  #armed = false;

  constructor(handle: Handle) {
    this.#handle = handle;
    if (!track(this)) this.armSafetyNet();
  }

  /**
   * Arms the safety net for a tensor no scope owns: freed at an allocation after this object is
   * garbage collected, also inside a synchronous loop (native/addon.cc, sweepCollected). A weak
   * reference in the addon, not a FinalizationRegistry, whose callbacks wait for the event loop.
   * @internal called by the scopes (scope.ts)
   */
  armSafetyNet(): void {
    if (this.#armed) return;
    this.#armed = true;
    native.arm(this, this.#handle);
  }

  /** The addon's handle (for code that calls `native` directly). */
  get handle(): Handle {
    return this.#handle;
  }

  // ---- metadata -------------------------------------------------------------------------------
  get shape(): number[] {
    return native.shape(this.#handle);
  }
  get dim(): number {
    return native.dim(this.#handle);
  }
  get numel(): number {
    return native.numel(this.#handle);
  }
  /**
   * The storage this tensor views (an opaque key: equal keys, same memory) and whether it is
   * contiguous. For deciding when an in-place write is safe.
   */
  get memoryLayout(): { storage: bigint; contiguous: boolean } {
    return native.memoryLayout(this.#handle);
  }
  get dtype(): DType {
    return native.dtype(this.#handle) as DType;
  }
  get device(): Device {
    return native.device(this.#handle);
  }
  get isDisposed(): boolean {
    return native.isDisposed(this.#handle);
  }
  size(dim: number): number {
    if (!Number.isInteger(dim)) throw new TypeError(`size: argument 'dim' must be an integer, got ${show(dim)}`);
    const s = this.shape;
    const d = dim < 0 ? s.length + dim : dim;
    if (d < 0 || d >= s.length) throw new RangeError(`size(${dim}): tensor has ${s.length} dimensions`);
    return s[d]!;
  }

  // ---- memory ---------------------------------------------------------------------------------
  /** Frees the tensor now. Safe to call twice; any later use throws. */
  dispose(): void {
    native.disposeArmed(this, this.#handle);
  }

  /**
   * Makes this object hold `source`'s tensor, freeing its own; `source` is consumed (disposed).
   * Module.to() moves parameters this way, so that a moved parameter is the same object: what holds
   * it (an optimizer, a map) still holds it, as with PyTorch's `param.data = ...`.
   * @internal
   */
  replaceWith_(source: Tensor): this {
    if (source === this) return this;
    const h = native.share(source.handle);
    source.dispose();
    native.disposeArmed(this, this.#handle);
    this.#handle = h;
    if (this.#armed) native.arm(this, h);
    return this;
  }

  // ---- data out -------------------------------------------------------------------------------
  /** A copy of the data as a flat typed array (float16/bfloat16 come back as float32, bool as uint8). */
  data(): TypedArray {
    return native.toTypedArray(this.#handle);
  }
  /** The data as a flat array of JS numbers (int64 converted; exact below 2^53). */
  toArray(): number[] {
    const d = this.data();
    return d instanceof BigInt64Array ? Array.from(d, Number) : Array.from(d as ArrayLike<number>);
  }
  /** The value of a one-element tensor. */
  item(): number {
    return Number(native.item(this.#handle));
  }
  toString(): string {
    if (this.isDisposed) return 'Tensor(disposed)';
    return `Tensor(shape=[${this.shape}], dtype=${this.dtype}, device=${this.device})`;
  }
  [inspect.custom](): string {
    if (this.isDisposed) return 'Tensor(disposed)';
    const n = this.numel;
    const vals = n <= 16 ? ` ${JSON.stringify(this.toArray().map((v) => Math.round(v * 1e6) / 1e6))}` : '';
    return `Tensor(shape=[${this.shape}], dtype=${this.dtype}, device=${this.device})${vals}`;
  }

  // ---- conversion -----------------------------------------------------------------------------
  /** A tensor of another dtype and/or on another device (the same tensor if nothing changes). */
  to(target: DType | Device | { dtype?: DType; device?: Device }): Tensor {
    if (typeof target !== 'string' && (target === null || typeof target !== 'object')) {
      throw new TypeError(`to: expected a dtype, a device or { dtype, device }, got ${show(target)}`);
    }
    const t = typeof target === 'string'
      ? (DTYPES.includes(target as DType) ? { dtype: target as DType } : { device: target })
      : target;
    return ops.toDtypeLayout(this, t.dtype ?? null, null, t.device ?? null) as Tensor;
  }
  float(): Tensor { return this.to('float32'); }
  double(): Tensor { return this.to('float64'); }
  long(): Tensor { return this.to('int64'); }
  bool(): Tensor { return this.to('bool'); }
  cpu(): Tensor { return this.to({ device: 'cpu' }); }
  clone(): Tensor { return ops.clone(this) as Tensor; }
  contiguous(): Tensor { return ops.contiguous(this) as Tensor; }
  /** A tensor sharing data with this one but cut from the autograd graph. */
  detach(): Tensor { return ops.detach(this) as Tensor; }

  // ---- autograd -------------------------------------------------------------------------------
  get requiresGrad(): boolean {
    return native.requiresGrad(this.#handle);
  }
  set requiresGrad(on: boolean) {
    native.setRequiresGrad(this.#handle, on);
  }
  /** Sets requiresGrad and returns this tensor, for chaining. */
  requiresGrad_(on = true): this {
    native.setRequiresGrad(this.#handle, on);
    return this;
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.#handle);
  }
  /** The accumulated gradient (a new handle onto it each time), or null. */
  get grad(): Tensor | null {
    const g = native.getGrad(this.#handle);
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) {
    native.setGrad(this.#handle, g === null ? null : g.handle);
  }
  /** Drops the gradient (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    native.setGrad(this.#handle, null);
  }
  backward(gradient?: Tensor | null, opts: { retainGraph?: boolean; createGraph?: boolean } = {}): void {
    rethrowingHookErrors(() => native.backward(this.#handle, gradient ? gradient.handle : null, opts.retainGraph ?? false, opts.createGraph ?? false));
  }

  // ---- elementwise arithmetic (broadcasting) --------------------------------------------------
  add(other: Tensor | Scalar, alpha: number = 1): Tensor {
    return (other instanceof Tensor ? ops.add(this, other, alpha) : ops.addScalar(this, other, alpha)) as Tensor;
  }
  sub(other: Tensor | Scalar, alpha: number = 1): Tensor {
    return (other instanceof Tensor ? ops.sub(this, other, alpha) : ops.subScalar(this, other, alpha)) as Tensor;
  }
  mul(other: Tensor | Scalar): Tensor {
    return (other instanceof Tensor ? ops.mul(this, other) : ops.mulScalar(this, other)) as Tensor;
  }
  div(other: Tensor | Scalar): Tensor {
    return (other instanceof Tensor ? ops.div(this, other) : ops.divScalar(this, other)) as Tensor;
  }
  pow(exponent: Tensor | number): Tensor {
    return (exponent instanceof Tensor ? ops.powTensor(this, exponent) : ops.pow(this, exponent)) as Tensor;
  }
  remainder(other: number): Tensor { return ops.remainder(this, other) as Tensor; }
  neg(): Tensor { return ops.neg(this) as Tensor; }
  abs(): Tensor { return ops.abs(this) as Tensor; }
  sign(): Tensor { return ops.sign(this) as Tensor; }
  exp(): Tensor { return ops.exp(this) as Tensor; }
  log(): Tensor { return ops.log(this) as Tensor; }
  log1p(): Tensor { return ops.log1p(this) as Tensor; }
  sqrt(): Tensor { return ops.sqrt(this) as Tensor; }
  rsqrt(): Tensor { return ops.rsqrt(this) as Tensor; }
  square(): Tensor { return ops.square(this) as Tensor; }
  reciprocal(): Tensor { return ops.reciprocal(this) as Tensor; }
  sin(): Tensor { return ops.sin(this) as Tensor; }
  cos(): Tensor { return ops.cos(this) as Tensor; }
  floor(): Tensor { return ops.floor(this) as Tensor; }
  round(): Tensor { return ops.round(this) as Tensor; }
  clamp(min: number | null, max: number | null = null): Tensor { return ops.clamp(this, min, max) as Tensor; }
  maximum(other: Tensor): Tensor { return ops.maximum(this, other) as Tensor; }
  minimum(other: Tensor): Tensor { return ops.minimum(this, other) as Tensor; }
  /** Returns where(cond, this, other). */
  where(cond: Tensor, other: Tensor | Scalar): Tensor {
    return (other instanceof Tensor ? ops.where(cond, this, other) : ops.whereScalarOther(cond, this, other)) as Tensor;
  }
  maskedFill(mask: Tensor, value: Scalar): Tensor {
    checkIntegerValue(value, this.dtype, 'maskedFill');
    return ops.maskedFill(this, mask, value) as Tensor;
  }

  // ---- activations ----------------------------------------------------------------------------
  relu(): Tensor { return ops.relu(this) as Tensor; }
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return ops.gelu(this, approximate) as Tensor; }
  tanh(): Tensor { return ops.tanh(this) as Tensor; }
  sigmoid(): Tensor { return ops.sigmoid(this) as Tensor; }
  silu(): Tensor { return ops.silu(this) as Tensor; }
  softmax(dim: number): Tensor { return ops.softmax(this, dim) as Tensor; }
  logSoftmax(dim: number): Tensor { return ops.logSoftmax(this, dim) as Tensor; }

  // ---- comparison -----------------------------------------------------------------------------
  eq(other: Tensor | Scalar): Tensor { return (other instanceof Tensor ? ops.eq(this, other) : ops.eqScalar(this, other)) as Tensor; }
  ne(other: Tensor | Scalar): Tensor { return (other instanceof Tensor ? ops.ne(this, other) : ops.neScalar(this, other)) as Tensor; }
  lt(other: Tensor | Scalar): Tensor { return (other instanceof Tensor ? ops.lt(this, other) : ops.ltScalar(this, other)) as Tensor; }
  le(other: Tensor | Scalar): Tensor { return (other instanceof Tensor ? ops.le(this, other) : ops.leScalar(this, other)) as Tensor; }
  gt(other: Tensor | Scalar): Tensor { return (other instanceof Tensor ? ops.gt(this, other) : ops.gtScalar(this, other)) as Tensor; }
  ge(other: Tensor | Scalar): Tensor { return (other instanceof Tensor ? ops.ge(this, other) : ops.geScalar(this, other)) as Tensor; }
  isnan(): Tensor { return ops.isnan(this) as Tensor; }
  /** True (a bool 0-d tensor) when every element is non-zero. */
  all(): Tensor { return ops.all(this) as Tensor; }
  any(): Tensor { return ops.any(this) as Tensor; }
  isfinite(): Tensor { return ops.isfinite(this) as Tensor; }

  // ---- products -------------------------------------------------------------------------------
  matmul(other: Tensor): Tensor { return ops.matmul(this, other) as Tensor; }
  mm(other: Tensor): Tensor { return ops.mm(this, other) as Tensor; }
  /** Matrix [n, m] times vector [m]. */
  mv(vec: Tensor): Tensor { return ops.mv(this, vec) as Tensor; }
  bmm(other: Tensor): Tensor { return ops.bmm(this, other) as Tensor; }
  dot(other: Tensor): Tensor { return ops.dot(this, other) as Tensor; }
  outer(other: Tensor): Tensor { return ops.outer(this, other) as Tensor; }

  // ---- reductions -----------------------------------------------------------------------------
  sum(dim?: number | number[], keepdim = false): Tensor {
    return (dim === undefined ? ops.sumAll(this) : ops.sum(this, typeof dim === 'number' ? [dim] : dim, keepdim)) as Tensor;
  }
  mean(dim?: number | number[], keepdim = false): Tensor {
    return (dim === undefined ? ops.meanAll(this) : ops.mean(this, typeof dim === 'number' ? [dim] : dim, keepdim)) as Tensor;
  }
  /** Variance; `correction` 1 is the unbiased estimator (PyTorch's default), 0 the biased one. */
  var(dim?: number | number[], opts: { correction?: number; keepdim?: boolean } = {}): Tensor {
    const d = dim === undefined ? null : typeof dim === 'number' ? [dim] : dim;
    return ops.var(this, d, opts.correction ?? 1, opts.keepdim ?? false) as Tensor;
  }
  std(dim?: number | number[], opts: { correction?: number; keepdim?: boolean } = {}): Tensor {
    const d = dim === undefined ? null : typeof dim === 'number' ? [dim] : dim;
    return ops.std(this, d, opts.correction ?? 1, opts.keepdim ?? false) as Tensor;
  }
  /** The p-norm over `dim` (all elements when omitted). */
  norm(p = 2, dim?: number | number[], keepdim = false): Tensor {
    return (dim === undefined ? ops.normAll(this, p) : ops.norm(this, p, typeof dim === 'number' ? [dim] : dim, keepdim)) as Tensor;
  }
  /** The maximum of all elements, or [values, indices] along `dim`. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): [Tensor, Tensor];
  max(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    return (dim === undefined ? ops.maxAll(this) : ops.max(this, dim, keepdim)) as Tensor | [Tensor, Tensor];
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): [Tensor, Tensor];
  min(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    return (dim === undefined ? ops.minAll(this) : ops.min(this, dim, keepdim)) as Tensor | [Tensor, Tensor];
  }
  argmax(dim?: number, keepdim = false): Tensor { return ops.argmax(this, dim ?? null, keepdim) as Tensor; }
  logsumexp(dim: number | number[], keepdim = false): Tensor {
    return ops.logsumexp(this, typeof dim === 'number' ? [dim] : dim, keepdim) as Tensor;
  }
  cumsum(dim: number): Tensor { return ops.cumsum(this, dim) as Tensor; }
  sort(dim = -1, descending = false): [Tensor, Tensor] { return ops.sort(this, dim, descending) as [Tensor, Tensor]; }
  topk(k: number, dim = -1, largest = true): [Tensor, Tensor] { return ops.topk(this, k, dim, largest) as [Tensor, Tensor]; }

  // ---- shape ----------------------------------------------------------------------------------
  reshape(...shape: number[] | [number[]]): Tensor { return ops.reshape(this, flatShape(shape)) as Tensor; }
  view(...shape: number[] | [number[]]): Tensor { return ops.view(this, flatShape(shape)) as Tensor; }
  flatten(startDim = 0, endDim = -1): Tensor { return ops.flatten(this, startDim, endDim) as Tensor; }
  permute(...dims: number[] | [number[]]): Tensor { return ops.permute(this, flatShape(dims)) as Tensor; }
  transpose(dim0: number, dim1: number): Tensor { return ops.transpose(this, dim0, dim1) as Tensor; }
  /** The matrix transpose of a 2-D tensor. */
  t(): Tensor { return ops.t(this) as Tensor; }
  unsqueeze(dim: number): Tensor { return ops.unsqueeze(this, dim) as Tensor; }
  squeeze(dim?: number): Tensor { return (dim === undefined ? ops.squeezeAll(this) : ops.squeeze(this, dim)) as Tensor; }
  expand(...shape: number[] | [number[]]): Tensor { return ops.expand(this, flatShape(shape)) as Tensor; }
  expandAs(other: Tensor): Tensor { return ops.expand(this, other.shape) as Tensor; }
  repeat(...times: number[] | [number[]]): Tensor { return ops.repeat(this, flatShape(times)) as Tensor; }
  /** Elements start..end (exclusive) with `step` along `dim`; a view. */
  slice(dim: number, start: number | null, end: number | null = null, step = 1): Tensor {
    return ops.slice(this, dim, start, end, step) as Tensor;
  }
  narrow(dim: number, start: number, length: number): Tensor { return ops.narrow(this, dim, start, length) as Tensor; }
  /** The sub-tensor at `index` along `dim` (that dimension removed); a view. */
  select(dim: number, index: number): Tensor { return ops.select(this, dim, index) as Tensor; }
  split(size: number, dim = 0): Tensor[] { return ops.split(this, size, dim) as Tensor[]; }
  chunk(chunks: number, dim = 0): Tensor[] { return ops.chunk(this, chunks, dim) as Tensor[]; }
  unbind(dim = 0): Tensor[] { return ops.unbind(this, dim) as Tensor[]; }
  diagonal(offset = 0, dim1 = 0, dim2 = 1): Tensor { return ops.diagonal(this, offset, dim1, dim2) as Tensor; }
  tril(diagonal = 0): Tensor { return ops.tril(this, diagonal) as Tensor; }
  triu(diagonal = 0): Tensor { return ops.triu(this, diagonal) as Tensor; }

  // ---- indexing -------------------------------------------------------------------------------
  indexSelect(dim: number, index: Tensor): Tensor { return ops.indexSelect(this, dim, index) as Tensor; }
  /** Advanced indexing, like `x[i0, i1, ...]` with tensors (null keeps a dimension whole). */
  index(indices: (Tensor | null)[]): Tensor { return ops.index(this, indices) as Tensor; }
  gather(dim: number, index: Tensor): Tensor { return ops.gather(this, dim, index) as Tensor; }
  scatter(dim: number, index: Tensor, src: Tensor): Tensor { return ops.scatter(this, dim, index, src) as Tensor; }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor { return ops.scatterAdd(this, dim, index, src) as Tensor; }
  indexAdd(dim: number, index: Tensor, src: Tensor): Tensor { return ops.indexAdd(this, dim, index, src) as Tensor; }

  // ---- in place (for optimizers and buffers; they bypass autograd history rules like PyTorch) --
  copy_(src: Tensor): this { ops.copy_(this, src); return this; }
  zero_(): this { ops.zero_(this); return this; }
  fill_(value: Scalar): this {
    checkIntegerValue(value, this.dtype, 'fill_');
    ops.fill_(this, value);
    return this;
  }
  add_(other: Tensor | Scalar, alpha = 1): this {
    if (other instanceof Tensor) ops.add_(this, other, alpha);
    else ops.addScalar_(this, other, alpha);
    return this;
  }
  sub_(other: Tensor | Scalar, alpha = 1): this {
    if (other instanceof Tensor) ops.sub_(this, other, alpha);
    else ops.subScalar_(this, other, alpha);
    return this;
  }
  mul_(other: Tensor | Scalar): this {
    if (other instanceof Tensor) ops.mul_(this, other);
    else ops.mulScalar_(this, other);
    return this;
  }
  div_(other: Tensor | Scalar): this {
    if (other instanceof Tensor) ops.div_(this, other);
    else ops.divScalar_(this, other);
    return this;
  }
  addcmul_(t1: Tensor, t2: Tensor, value = 1): this { ops.addcmul_(this, t1, t2, value); return this; }
  addcdiv_(t1: Tensor, t2: Tensor, value = 1): this { ops.addcdiv_(this, t1, t2, value); return this; }
  lerp_(end: Tensor, weight: number): this { ops.lerp_(this, end, weight); return this; }
  sqrt_(): this { ops.sqrt_(this); return this; }
  clamp_(min: number | null, max: number | null = null): this { ops.clamp_(this, min, max); return this; }
  /** Fills with Bernoulli(p) samples (from `generator` if given). */
  bernoulli_(p: number, generator: Generator | null = null): this { ops.bernoulli_(this, p, generator?.handle ?? null); return this; }
  uniform_(from = 0, to = 1, generator: Generator | null = null): this { ops.uniform_(this, from, to, generator?.handle ?? null); return this; }
  normal_(mean = 0, std = 1, generator: Generator | null = null): this { ops.normal_(this, mean, std, generator?.handle ?? null); return this; }
}

function flatShape(args: number[] | [number[]]): number[] {
  return (args.length === 1 && Array.isArray(args[0]) ? args[0] : args) as number[];
}

setTensorBridge(
  (h) => new Tensor(h),
  (v) => (v instanceof Tensor ? v.handle : v instanceof Generator ? v.handle : v),
);
setTensorCheck((v): v is Tensor => v instanceof Tensor);

/** A seeded random stream, independent of the global one (`manualSeed`). CPU only. */
export class Generator {
  readonly handle: GeneratorHandle;
  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0) throw new TypeError(`Generator: seed must be a non-negative integer, got ${seed}`);
    this.handle = native.newGenerator(seed);
  }
}

/**
 * `t` itself when it already has `dtype` (and `device`, when given), else `t.to(...)`: on hot paths
 * the no-op `to` is still an op call. The result may be `t`: dispose only one of them.
 */
export function convertedTo(t: Tensor, dtype: DType, device?: Device): Tensor {
  return t.dtype === dtype && (device === undefined || t.device === device) ? t : t.to(device === undefined ? { dtype } : { dtype, device });
}

// Every operator the Tensor class uses, resolved once on first call.
export const ops = {
  toDtypeLayout: defineOp('to', 'dtype_layout'),
  clone: defineOp('clone'),
  contiguous: defineOp('contiguous'),
  detach: defineOp('detach'),
  add: defineOp('add', 'Tensor'),
  addScalar: defineOp('add', 'Scalar'),
  sub: defineOp('sub', 'Tensor'),
  subScalar: defineOp('sub', 'Scalar'),
  mul: defineOp('mul', 'Tensor'),
  mulScalar: defineOp('mul', 'Scalar'),
  div: defineOp('div', 'Tensor'),
  divScalar: defineOp('div', 'Scalar'),
  pow: defineOp('pow', 'Tensor_Scalar'),
  powTensor: defineOp('pow', 'Tensor_Tensor'),
  remainder: defineOp('remainder', 'Scalar'),
  neg: defineOp('neg'),
  abs: defineOp('abs'),
  sign: defineOp('sign'),
  exp: defineOp('exp'),
  log: defineOp('log'),
  log1p: defineOp('log1p'),
  sqrt: defineOp('sqrt'),
  rsqrt: defineOp('rsqrt'),
  square: defineOp('square'),
  reciprocal: defineOp('reciprocal'),
  sin: defineOp('sin'),
  cos: defineOp('cos'),
  floor: defineOp('floor'),
  round: defineOp('round'),
  clamp: defineOp('clamp'),
  maximum: defineOp('maximum'),
  minimum: defineOp('minimum'),
  where: defineOp('where', 'self'),
  whereScalarOther: defineOp('where', 'ScalarOther'),
  maskedFill: defineOp('masked_fill', 'Scalar'),
  relu: defineOp('relu'),
  gelu: defineOp('gelu'),
  tanh: defineOp('tanh'),
  sigmoid: defineOp('sigmoid'),
  silu: defineOp('silu'),
  softmax: defineOp('softmax', 'int'),
  logSoftmax: defineOp('log_softmax', 'int'),
  eq: defineOp('eq', 'Tensor'),
  eqScalar: defineOp('eq', 'Scalar'),
  ne: defineOp('ne', 'Tensor'),
  neScalar: defineOp('ne', 'Scalar'),
  lt: defineOp('lt', 'Tensor'),
  ltScalar: defineOp('lt', 'Scalar'),
  le: defineOp('le', 'Tensor'),
  leScalar: defineOp('le', 'Scalar'),
  gt: defineOp('gt', 'Tensor'),
  gtScalar: defineOp('gt', 'Scalar'),
  ge: defineOp('ge', 'Tensor'),
  geScalar: defineOp('ge', 'Scalar'),
  isnan: defineOp('isnan'),
  all: defineOp('all'),
  any: defineOp('any'),
  isfinite: defineOp('isfinite'),
  matmul: defineOp('matmul'),
  mm: defineOp('mm'),
  mv: defineOp('mv'),
  bmm: defineOp('bmm'),
  dot: defineOp('dot'),
  outer: defineOp('outer'),
  sumAll: defineOp('sum'),
  sum: defineOp('sum', 'dim_IntList'),
  meanAll: defineOp('mean'),
  mean: defineOp('mean', 'dim'),
  var: defineOp('var', 'correction'),
  std: defineOp('std', 'correction'),
  normAll: defineOp('norm', 'Scalar'),
  norm: defineOp('norm', 'ScalarOpt_dim'),
  maxAll: defineOp('max'),
  max: defineOp('max', 'dim'),
  minAll: defineOp('min'),
  min: defineOp('min', 'dim'),
  argmax: defineOp('argmax'),
  logsumexp: defineOp('logsumexp'),
  cumsum: defineOp('cumsum'),
  sort: defineOp('sort'),
  topk: defineOp('topk'),
  reshape: defineOp('reshape'),
  view: defineOp('view'),
  flatten: defineOp('flatten', 'using_ints'),
  permute: defineOp('permute'),
  transpose: defineOp('transpose', 'int'),
  t: defineOp('t'),
  unsqueeze: defineOp('unsqueeze'),
  squeezeAll: defineOp('squeeze'),
  squeeze: defineOp('squeeze', 'dim'),
  expand: defineOp('expand'),
  repeat: defineOp('repeat'),
  slice: defineOp('slice', 'Tensor'),
  narrow: defineOp('narrow'),
  select: defineOp('select', 'int'),
  split: defineOp('split', 'Tensor'),
  chunk: defineOp('chunk'),
  unbind: defineOp('unbind', 'int'),
  diagonal: defineOp('diagonal'),
  tril: defineOp('tril'),
  triu: defineOp('triu'),
  indexSelect: defineOp('index_select'),
  index: defineOp('index', 'Tensor'),
  gather: defineOp('gather'),
  scatter: defineOp('scatter', 'src'),
  scatterAdd: defineOp('scatter_add'),
  indexAdd: defineOp('index_add'),
  copy_: defineInPlaceOp('copy_'),
  zero_: defineInPlaceOp('zero_'),
  fill_: defineInPlaceOp('fill_', 'Scalar'),
  add_: defineInPlaceOp('add_', 'Tensor'),
  addScalar_: defineInPlaceOp('add_', 'Scalar'),
  sub_: defineInPlaceOp('sub_', 'Tensor'),
  subScalar_: defineInPlaceOp('sub_', 'Scalar'),
  mul_: defineInPlaceOp('mul_', 'Tensor'),
  mulScalar_: defineInPlaceOp('mul_', 'Scalar'),
  div_: defineInPlaceOp('div_', 'Tensor'),
  divScalar_: defineInPlaceOp('div_', 'Scalar'),
  addcmul_: defineInPlaceOp('addcmul_'),
  addcdiv_: defineInPlaceOp('addcdiv_'),
  lerp_: defineInPlaceOp('lerp_', 'Scalar'),
  sqrt_: defineInPlaceOp('sqrt_'),
  clamp_: defineInPlaceOp('clamp_'),
  bernoulli_: defineInPlaceOp('bernoulli_', 'float'),
  uniform_: defineInPlaceOp('uniform_'),
  normal_: defineInPlaceOp('normal_'),
};
