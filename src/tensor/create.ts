// Making tensors: from JS data, constants, ranges and seeded random draws.
import { native } from './native.js';
import { defineOp } from './op.js';
import { checkDtype, checkIntegerValue, Generator, show, Tensor, type Device, type DType, type TypedArray } from './tensor.js';

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
}
export interface RandomOptions extends CreateOptions {
  /** A seeded stream; without it the global one (`manualSeed`) is used. */
  generator?: Generator;
}

type Nested = number | boolean | bigint | Nested[];

let defaultDevice: Device = 'cpu';
/** The device new tensors go to when no `device` option is given. */
export function setDefaultDevice(d: Device): void {
  if (!/^(cpu|cuda(:\d+)?)$/.test(d)) throw new TypeError(`setDefaultDevice: unknown device '${d}' (use 'cpu', 'cuda' or 'cuda:N')`);
  if (d.startsWith('cuda') && !native.cudaAvailable()) throw new Error(`setDefaultDevice('${d}'): this libtorch build has no CUDA device`);
  defaultDevice = d;
}
export function getDefaultDevice(): Device {
  return defaultDevice;
}

function opts(o: CreateOptions | undefined, what: string, fallbackDtype: DType | null = 'float32'): [DType | null, Device] {
  const dtype = o?.dtype === undefined ? fallbackDtype : checkDtype(o.dtype, `${what}: dtype option`);
  return [dtype, o?.device ?? defaultDevice];
}

function checkShape(shape: number[], what: string): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new TypeError(`${what}: shape must be an array of non-negative integers, got ${show(shape)}`);
  }
  return shape;
}

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0] as Nested;
  }
  return shape;
}

function flatten(data: Nested, shape: number[], depth: number, out: (number | bigint | boolean)[]): void {
  if (depth === shape.length) {
    if (Array.isArray(data)) throw new TypeError('tensor(): ragged nested array');
    out.push(data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) throw new TypeError(`tensor(): ragged nested array at depth ${depth}`);
  for (const d of data) flatten(d, shape, depth + 1, out);
}

/**
 * A tensor from JS data: a (nested) array of numbers / booleans / bigints, or a typed array (with
 * `shape`, else 1-D). Numbers default to float32, bigints to int64, booleans to bool. Into an
 * integer dtype every value must fit exactly (1.5, NaN, 300 for uint8 throw, naming the value).
 */
export function tensor(data: Nested | TypedArray, o: CreateOptions & { shape?: number[] } = {}): Tensor {
  const device = o?.device ?? defaultDevice;
  const dtype = o?.dtype === undefined ? undefined : checkDtype(o.dtype, 'tensor(): dtype');
  if (ArrayBuffer.isView(data)) {
    const shape = checkShape(o?.shape ?? [(data as TypedArray).length], 'tensor()');
    return new Tensor(native.fromTypedArray(data, shape, dtype ?? null, device === 'cpu' ? null : device));
  }
  const shape = o?.shape ?? inferShape(data);
  const flat: (number | bigint | boolean)[] = [];
  flatten(data, inferShape(data), 0, flat);
  checkShape(shape, 'tensor()');
  let typed: TypedArray;
  let target: DType | undefined = dtype;
  const first = flat[0];
  if (typeof first === 'bigint') {
    typed = BigInt64Array.from(flat as bigint[]);
  } else if (typeof first === 'boolean') {
    typed = Uint8Array.from(flat as boolean[], (b) => (b ? 1 : 0));
    target ??= 'bool';
  } else if (dtype === 'float64' || dtype === 'int64' || dtype === 'int32' || dtype === 'int16' || dtype === 'int8' || dtype === 'uint8') {
    // float64 carries every int32 and every float64 exactly (so the addon can refuse 1.5 or 300 for
    // an integer dtype instead of seeing float32's rounding); int64 beyond 2^53 needs bigints.
    for (const v of flat) if (typeof v !== 'number') throw new TypeError('tensor(): mixed element types');
    typed = Float64Array.from(flat as number[]);
  } else {
    for (const v of flat) if (typeof v !== 'number') throw new TypeError('tensor(): mixed element types');
    typed = Float32Array.from(flat as number[]);
  }
  return new Tensor(native.fromTypedArray(typed, shape, target ?? null, device === 'cpu' ? null : device));
}

/** A 0-d tensor holding one number. */
export function scalar(value: number, o: CreateOptions = {}): Tensor {
  return tensor([value], { ...o, shape: [] });
}

const zerosOp = defineOp('zeros');
const onesOp = defineOp('ones');
const fullOp = defineOp('full');
const emptyOp = defineOp('empty', 'memory_format');
const arangeOp = defineOp('arange', 'start_step');
const linspaceOp = defineOp('linspace');
const eyeOp = defineOp('eye');
const randnOp = defineOp('randn', 'generator');
const randOp = defineOp('rand', 'generator');
const randintOp = defineOp('randint', 'low_generator');
const randpermOp = defineOp('randperm', 'generator');
const zerosLikeOp = defineOp('zeros_like');
const onesLikeOp = defineOp('ones_like');
const catOp = defineOp('cat');
const stackOp = defineOp('stack');
const einsumOp = defineOp('einsum');
const whereOp = defineOp('where', 'self');

export function zeros(shape: number[], o?: CreateOptions): Tensor {
  const [dtype, device] = opts(o, 'zeros');
  return zerosOp(checkShape(shape, 'zeros'), dtype, null, device) as Tensor;
}
export function ones(shape: number[], o?: CreateOptions): Tensor {
  const [dtype, device] = opts(o, 'ones');
  return onesOp(checkShape(shape, 'ones'), dtype, null, device) as Tensor;
}
export function full(shape: number[], value: number | boolean, o?: CreateOptions): Tensor {
  const [dtype, device] = opts(o, 'full');
  if (dtype !== null) checkIntegerValue(value, dtype, 'full');
  return fullOp(checkShape(shape, 'full'), value, dtype, null, device) as Tensor;
}
export function empty(shape: number[], o?: CreateOptions): Tensor {
  const [dtype, device] = opts(o, 'empty');
  return emptyOp(checkShape(shape, 'empty'), dtype, null, device) as Tensor;
}
export function zerosLike(t: Tensor): Tensor {
  return zerosLikeOp(t) as Tensor;
}
export function onesLike(t: Tensor): Tensor {
  return onesLikeOp(t) as Tensor;
}
/** start, start+step, ... below end. Integer arguments give int64 unless a dtype is given. */
export function arange(start: number, end?: number, step = 1, o: CreateOptions = {}): Tensor {
  const [s, e] = end === undefined ? [0, start] : [start, end];
  const [dtype, device] = opts(o, 'arange', null);
  return arangeOp(s, e, step, dtype, null, device) as Tensor;
}
export function linspace(start: number, end: number, steps: number, o?: CreateOptions): Tensor {
  const [dtype, device] = opts(o, 'linspace');
  return linspaceOp(start, end, steps, dtype, null, device) as Tensor;
}
export function eye(n: number, o?: CreateOptions): Tensor {
  const [dtype, device] = opts(o, 'eye');
  return eyeOp(n, dtype, null, device) as Tensor;
}
export function randn(shape: number[], o: RandomOptions = {}): Tensor {
  const [dtype, device] = opts(o, 'randn');
  return randnOp(checkShape(shape, 'randn'), o?.generator ?? null, dtype, null, device) as Tensor;
}
/** Uniform on [0, 1). */
export function rand(shape: number[], o: RandomOptions = {}): Tensor {
  const [dtype, device] = opts(o, 'rand');
  return randOp(checkShape(shape, 'rand'), o?.generator ?? null, dtype, null, device) as Tensor;
}
/** Integers in [low, high), int64 by default. */
export function randint(low: number, high: number, shape: number[], o: RandomOptions = {}): Tensor {
  const [dtype, device] = opts(o, 'randint', 'int64');
  return randintOp(low, high, checkShape(shape, 'randint'), o?.generator ?? null, dtype, null, device) as Tensor;
}
/** A random permutation of 0..n-1 (int64). */
export function randperm(n: number, o: RandomOptions = {}): Tensor {
  const [dtype, device] = opts(o, 'randperm', 'int64');
  return randpermOp(n, o?.generator ?? null, dtype, null, device) as Tensor;
}
export function cat(tensors: Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new RangeError('cat: needs an array of at least one tensor');
  return catOp(tensors, dim) as Tensor;
}
export function stack(tensors: Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new RangeError('stack: needs an array of at least one tensor');
  return stackOp(tensors, dim) as Tensor;
}
/** Einstein summation, e.g. einsum('bi,bj->ij', a, b). */
export function einsum(equation: string, ...tensors: Tensor[]): Tensor {
  return einsumOp(equation, tensors) as Tensor;
}
/** Elementwise cond ? a : b. */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  return whereOp(cond, a, b) as Tensor;
}
/** Seeds libtorch's global random streams (CPU and CUDA). */
export function manualSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0) throw new TypeError(`manualSeed: seed must be a non-negative integer, got ${show(seed)}`);
  native.manualSeed(seed);
}
