// The one bridge from TypeScript to libtorch's operators. `defineOp` resolves an operator's handle
// on first use and caches it; arguments are Tensors, numbers, booleans, strings, arrays or null and
// are checked against the operator's schema in native code.
import { native, type Handle } from './native.js';

/** Converts handles coming back from the addon into the caller's tensor type. */
let wrap: (h: Handle) => unknown = () => {
  throw new Error('tensor module not initialised');
};
let unwrap: (v: unknown) => unknown = (v) => v;

export function setTensorBridge(w: (h: Handle) => unknown, u: (v: unknown) => unknown): void {
  wrap = w;
  unwrap = u;
}

function fromNative(r: unknown): unknown {
  if (typeof r === 'bigint') return wrap(r);
  if (Array.isArray(r)) return r.map(fromNative);
  return r;
}

function toNative(a: unknown): unknown {
  if (Array.isArray(a)) return a.map(unwrap);
  return unwrap(a);
}

export type OpFn = (...args: unknown[]) => unknown;

/** A cached caller of `aten::name.overload`. */
export function defineOp(name: string, overload = ''): OpFn {
  let id = -1;
  return (...args: unknown[]): unknown => {
    if (id < 0) id = native.opHandle(name, overload);
    switch (args.length) {
      // The common arities avoid allocating a mapped array.
      case 1: return fromNative(native.callOp(id, toNative(args[0])));
      case 2: return fromNative(native.callOp(id, toNative(args[0]), toNative(args[1])));
      case 3: return fromNative(native.callOp(id, toNative(args[0]), toNative(args[1]), toNative(args[2])));
      default: return fromNative(native.callOp(id, ...args.map(toNative)));
    }
  };
}

/**
 * A cached caller of an in-place operator (`add_`, `copy_`, ...). libtorch returns `self` again;
 * that extra handle is released at once instead of becoming a tracked tensor.
 */
export function defineInPlaceOp(name: string, overload = ''): (...args: unknown[]) => void {
  let id = -1;
  return (...args: unknown[]): void => {
    if (id < 0) id = native.opHandle(name, overload);
    const r = native.callOp(id, ...args.map(toNative));
    if (typeof r === 'bigint') native.dispose(r);
  };
}

const userOps = new Map<string, OpFn>();

/**
 * Any ATen operator by its full name, e.g. `callOp('aten::convolution_backward', ...)` or
 * `callOp('add.Tensor', a, b)`. Arguments follow the operator's schema (see `opSchema`);
 * trailing arguments may be left out to take their defaults.
 */
export function callOp(fullName: string, ...args: unknown[]): unknown {
  let f = userOps.get(fullName);
  if (f === undefined) {
    const bare = fullName.startsWith('aten::') ? fullName.slice(6) : fullName;
    const dot = bare.indexOf('.');
    f = dot < 0 ? defineOp(bare) : defineOp(bare.slice(0, dot), bare.slice(dot + 1));
    userOps.set(fullName, f);
  }
  return f(...args);
}

/** The schema string of an operator, e.g. for error messages and exploration. */
export function opSchema(fullName: string): string {
  const bare = fullName.startsWith('aten::') ? fullName.slice(6) : fullName;
  const dot = bare.indexOf('.');
  return native.opSchema(dot < 0 ? native.opHandle(bare, '') : native.opHandle(bare.slice(0, dot), bare.slice(dot + 1)));
}
