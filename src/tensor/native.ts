// Loads the libtorch addon (build/fngd.node, made by `npm run build:native`) and describes its
// surface. Everything numeric goes through `callOp`; the rest is bookkeeping.
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * A libtorch tensor owned by the addon, named by a BigInt id that is never reused (a stale id is a
 * clear use-after-dispose error, never another tensor).
 */
export type Handle = bigint;
/** An opaque reference to a libtorch random generator. */
export type GeneratorHandle = object & { readonly __generator: unique symbol };

/** The loaded OpenBLAS's own account: its thread pool, the kernel set it chose, its build config. */
export interface BlasInfo {
  library: 'openblas';
  threads: number;
  core: string | null;
  config: string | null;
}

export interface NativeAddon {
  opHandle(name: string, overload: string): number;
  opSchema(id: number): string;
  callOp(id: number, ...args: unknown[]): unknown;
  /** The schema of every registered operator, refused ones included (docs/native-policy.md). */
  opSchemas(): string[];
  newGenerator(seed: number): GeneratorHandle;

  fromTypedArray(data: ArrayBufferView, shape: number[], dtype?: string | null, device?: string | null): Handle;
  toTypedArray(h: Handle): Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;
  item(h: Handle): number | boolean;
  shape(h: Handle): number[];
  dim(h: Handle): number;
  numel(h: Handle): number;
  /** The address of the storage the tensor views (0n without storage) and whether it is contiguous. */
  memoryLayout(h: Handle): { storage: bigint; contiguous: boolean };
  dtype(h: Handle): string;
  device(h: Handle): string;
  isDisposed(h: Handle): boolean;
  /** Frees the tensor; false if it was already freed. */
  dispose(h: Handle): boolean;
  share(h: Handle): Handle;
  /** Frees `h` at an allocation after `owner` is garbage collected (the safety net). */
  arm(owner: object, h: Handle): void;
  /** Frees `h` now with its safety net (as dispose); false if it was already freed. */
  disposeArmed(owner: object, h: Handle): boolean;
  /** Live handles and bytes, after freeing those whose owners the GC has collected. */
  live(): { tensors: number; bytes: number };

  /** Any integer from 1 to 1,024 (no bound by the cores: see checkThreads). */
  setNumThreads(n: number): void;
  getNumThreads(): number;
  blasInfo(): BlasInfo | null;
  checkIntegerValue(value: number, dtype: string, what: string): void;
  manualSeed(seed: number): void;
  cudaAvailable(): boolean;
  cudaDeviceCount(): number;
  synchronize(): void;
  buildInfo(): { torchVersion: string; config: string; parallel: string };

  setRequiresGrad(h: Handle, on: boolean): void;
  requiresGrad(h: Handle): boolean;
  isLeaf(h: Handle): boolean;
  getGrad(h: Handle): Handle | null;
  setGrad(h: Handle, g: Handle | null): void;
  backward(h: Handle, grad: Handle | null, retainGraph: boolean, createGraph: boolean): void;
  grad(outputs: Handle[], inputs: Handle[], gradOutputs: (Handle | null)[] | null, retainGraph: boolean, createGraph: boolean, allowUnused: boolean): (Handle | null)[];
  setGradEnabled(on: boolean): boolean;
  isGradEnabled(): boolean;
  setHookDispatcher(fn: (id: number, grad: Handle) => void): void;
  registerGradHook(t: Handle, id: number): void;
}

const addonPath = fileURLToPath(new URL('../../../build/fngd.node', import.meta.url));
const BUILD_HINT = 'Build it with `npx fngd-build` (in a clone of fngd: `npm run build:native`); it needs g++, ' +
  'Node\'s headers and libtorch: Debian\'s `apt-get install -y libtorch-dev libopenblas0-pthread`, or ' +
  'FNGD_LIBTORCH=/path/to/libtorch (a folder with include/ and lib/).';
if (!existsSync(addonPath)) {
  throw new Error(`fngd: the native addon is not built (${addonPath} is missing). ${BUILD_HINT}`);
}

// libgomp's worker threads spin-wait after every parallel region by default. Beside OpenBLAS's own
// pthreads on a small machine, that spinning starves the BLAS threads: an MNIST-MLP step ran 5-8x
// slower on 2 cores. libgomp reads this when it loads, i.e. with the addon, so set it first.
process.env.OMP_WAIT_POLICY ??= 'PASSIVE';

export const native: NativeAddon = loadAddon();

function loadAddon(): NativeAddon {
  try {
    return createRequire(import.meta.url)(addonPath) as NativeAddon;
  } catch (e) {
    // Typically libtorch was removed or moved after the build (a shared library not found).
    throw new Error(`fngd: the native addon ${addonPath} does not load: ${(e as Error).message.split('\n')[0]}. ` +
      `Is the libtorch it was built against still installed? Rebuild after fixing: ${BUILD_HINT}`);
  }
}

/**
 * A thread count for libtorch: a positive integer, at most the cores unless forced (by `force` or
 * FNGD_FORCE_THREADS=1). More threads than cores only oversubscribe them: --threads 1000 made a run
 * 10x slower, and setNumThreads(1e6) hung.
 */
export function checkThreads(n: unknown, what: string, force = false): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new RangeError(`${what}: expected a positive integer, got ${typeof n === 'number' ? n : typeof n}`);
  const cores = availableParallelism();
  if (n > cores && !force && process.env.FNGD_FORCE_THREADS !== '1') {
    throw new RangeError(`${what}: ${n} threads is more than the ${cores} cores of this machine (os.availableParallelism()); ` +
      'pass { force: true } or set FNGD_FORCE_THREADS=1 to oversubscribe');
  }
  return n;
}

// libtorch's own default on these machines is a single thread; use every core unless told otherwise.
const threadsEnv = process.env.FNGD_NUM_THREADS;
if (threadsEnv && !/^\d+$/.test(threadsEnv)) throw new RangeError(`FNGD_NUM_THREADS must be a positive integer, got '${threadsEnv}'`);
native.setNumThreads(threadsEnv ? checkThreads(Number(threadsEnv), 'FNGD_NUM_THREADS') : Math.min(availableParallelism(), 1024));
