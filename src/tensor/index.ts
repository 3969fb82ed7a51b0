// The tensor layer: one import for everything built on libtorch.
import { checkThreads, native, type BlasInfo } from './native.js';

export { Tensor, Generator, convertedTo, type DType, type Device, type Scalar, type TypedArray } from './tensor.js';
export * from './create.js';
export * as F from './functional.js';
export * as linalg from './linalg.js';
export { grad, noGrad, enableGrad, isGradEnabled, registerGradHook, type GradOptions } from './autograd.js';
export { scope, keep, scopeDepth } from './scope.js';
export { callOp, opSchema, defineOp } from './op.js';
export type { BlasInfo } from './native.js';

/** Live tensor handles and the bytes they cover (a view counts its own size). */
export function liveTensors(): { tensors: number; bytes: number } {
  return native.live();
}

// The thread count as last read: read again after each setNumThreads (the only way fngd changes it;
// FNGD_NUM_THREADS is applied when the addon loads). The gemm route key reads it on every product.
let threads: number | null = null;

/**
 * libtorch's intra-op threads. At most the machine's cores (`os.availableParallelism()`): more
 * only oversubscribe (1,000 threads made a run 10x slower; a million hung). `force` (or
 * FNGD_FORCE_THREADS=1) lifts that bound up to the addon's hard ceiling of 1,024.
 */
export function setNumThreads(n: number, o: { force?: boolean } = {}): void {
  threads = null;
  native.setNumThreads(checkThreads(n, 'setNumThreads', o?.force));
}
export function getNumThreads(): number {
  return (threads ??= native.getNumThreads());
}
/** The loaded OpenBLAS's threads (setNumThreads sets them too), kernel set and config; null for another BLAS. */
export function blasInfo(): BlasInfo | null {
  return native.blasInfo();
}

export const cuda = {
  isAvailable: (): boolean => native.cudaAvailable(),
  deviceCount: (): number => native.cudaDeviceCount(),
  /** Waits for queued GPU work (for timing); a no-op without CUDA. */
  synchronize: (): void => native.synchronize(),
};

/** libtorch's version, build configuration and threading. */
export function buildInfo(): { torchVersion: string; config: string; parallel: string } {
  return native.buildInfo();
}
