// The first error a gradient hook (autograd.ts registerGradHook) threw during a backward pass. The
// native side can only pass a message through libtorch's engine; this keeps the error itself, so
// the backward call rethrows what the hook threw. Kept apart from autograd.ts because tensor.ts
// (Tensor.backward) needs it and autograd.ts imports tensor.ts.
let hookError: { error: unknown } | null = null;

/** Notes a hook's error (the first one of a backward wins). */
export function noteHookError(e: unknown): void {
  hookError ??= { error: e };
}

/** Runs a backward pass; if a hook failed in it, throws the hook's own error. */
export function rethrowingHookErrors<T>(run: () => T): T {
  hookError = null;
  try {
    return run();
  } catch (e) {
    const failed = hookError as { error: unknown } | null; // set by hooks during run()
    if (failed !== null) throw failed.error;
    throw e;
  } finally {
    hookError = null;
  }
}
