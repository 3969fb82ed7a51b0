// The tensor layer: one import for everything built on libtorch.
import { native } from './native.js';

export { Tensor, Generator, type DType, type Device, type Scalar, type TypedArray } from './tensor.js';
export * from './create.js';
export * as F from './functional.js';
export * as linalg from './linalg.js';
export { grad, noGrad, enableGrad, isGradEnabled, type GradOptions } from './autograd.js';
export { scope, keep, scopeDepth } from './scope.js';
export { callOp, opSchema, defineOp } from './op.js';

/** Live tensor handles and the bytes they cover (a view counts its own size). */
export function liveTensors(): { tensors: number; bytes: number } {
  return native.live();
}

export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setNumThreads: expected a positive integer, got ${n}`);
  native.setNumThreads(n);
}
export function getNumThreads(): number {
  return native.getNumThreads();
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
