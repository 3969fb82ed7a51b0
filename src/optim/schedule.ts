// Learning-rate schedules as pure functions of a counter t (the step or the epoch: the caller
// chooses) and of a group's initial lr. Nothing is stateful, so resuming at step t is exact.

/** The lr at counter t (t = 0, 1, ...) of a group that started with `baseLr`. */
export type Schedule = (t: number, baseLr: number) => number;

function checkT(t: number, what: string): void {
  if (!Number.isInteger(t) || t < 0) throw new RangeError(`${what}: t must be a non-negative integer, got ${t}`);
}
function positiveInt(v: unknown, owner: string, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new RangeError(`${owner}: option '${name}' must be a positive integer, got ${String(v)}`);
  return v;
}
function finiteAtLeast(v: unknown, min: number, owner: string, name: string, exclusive = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || (exclusive ? v <= min : v < min)) {
    throw new RangeError(`${owner}: option '${name}' must be a finite number ${exclusive ? '>' : '>='} ${min}, got ${String(v)}`);
  }
  return v;
}

/** The initial lr, unchanged. */
export function constantLr(): Schedule {
  return (t, baseLr) => {
    checkT(t, 'constantLr');
    return baseLr;
  };
}

/** PyTorch's StepLR: baseLr * gamma^floor(t / stepSize). */
export function stepDecay(o: { stepSize: number; gamma?: number }): Schedule {
  const stepSize = positiveInt(o?.stepSize, 'stepDecay', 'stepSize');
  const gamma = finiteAtLeast(o.gamma ?? 0.1, 0, 'stepDecay', 'gamma', true);
  return (t, baseLr) => {
    checkT(t, 'stepDecay');
    return baseLr * gamma ** Math.floor(t / stepSize);
  };
}

/**
 * PyTorch's CosineAnnealingLR in closed form: etaMin + (baseLr - etaMin) (1 + cos(pi t / tMax)) / 2.
 * As in PyTorch, past tMax the curve goes on (rises again after t = tMax): stop at tMax or restart.
 */
export function cosineAnnealing(o: { tMax: number; etaMin?: number }): Schedule {
  const tMax = positiveInt(o?.tMax, 'cosineAnnealing', 'tMax');
  const etaMin = finiteAtLeast(o.etaMin ?? 0, 0, 'cosineAnnealing', 'etaMin');
  return (t, baseLr) => {
    checkT(t, 'cosineAnnealing');
    return etaMin + ((baseLr - etaMin) * (1 + Math.cos((Math.PI * t) / tMax))) / 2;
  };
}

/**
 * Linear warm-up over `warmupSteps` counts, then `after` shifted to start at 0:
 * lr(t) = baseLr (t + 1) / warmupSteps for t < warmupSteps (the first step is not wasted at lr 0;
 * the full lr is reached at t = warmupSteps - 1), and after(t - warmupSteps, baseLr) from then on.
 */
export function linearWarmup(o: { warmupSteps: number; after?: Schedule }): Schedule {
  const w = positiveInt(o?.warmupSteps, 'linearWarmup', 'warmupSteps');
  const after = o.after ?? constantLr();
  if (typeof after !== 'function') throw new TypeError("linearWarmup: option 'after' must be a schedule function");
  return (t, baseLr) => {
    checkT(t, 'linearWarmup');
    return t < w ? (baseLr * (t + 1)) / w : after(t - w, baseLr);
  };
}

/** Sets every group's lr to schedule(t, group.initialLr) and returns the new lrs. */
export function applySchedule(optimizer: { readonly paramGroups: { lr: number; initialLr: number }[] }, schedule: Schedule, t: number): number[] {
  checkT(t, 'applySchedule');
  const lrs = optimizer.paramGroups.map((g) => schedule(t, g.initialLr));
  lrs.forEach((lr, i) => {
    if (!Number.isFinite(lr) || lr < 0) throw new RangeError(`applySchedule: the schedule gave lr ${lr} at t = ${t} (group ${i})`);
    optimizer.paramGroups[i]!.lr = lr;
  });
  return lrs;
}
