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

/** PyTorch's MultiStepLR: baseLr * gamma^(number of milestones <= t). */
export function multiStep(o: { milestones: number[]; gamma?: number }): Schedule {
  const ms = o?.milestones;
  if (!Array.isArray(ms) || ms.length === 0) throw new RangeError("multiStep: option 'milestones' must be a non-empty array of positive integers");
  ms.forEach((m, i) => {
    positiveInt(m, 'multiStep', `milestones[${i}]`);
    if (i > 0 && m <= ms[i - 1]!) throw new RangeError(`multiStep: option 'milestones' must increase, got ${ms.join(', ')}`);
  });
  const milestones = [...ms];
  const gamma = finiteAtLeast(o.gamma ?? 0.1, 0, 'multiStep', 'gamma', true);
  return (t, baseLr) => {
    checkT(t, 'multiStep');
    return baseLr * gamma ** milestones.filter((m) => m <= t).length;
  };
}

/** PyTorch's ExponentialLR: baseLr * gamma^t. */
export function exponential(o: { gamma: number }): Schedule {
  const gamma = finiteAtLeast(o?.gamma, 0, 'exponential', 'gamma', true);
  return (t, baseLr) => {
    checkT(t, 'exponential');
    return baseLr * gamma ** t;
  };
}

/**
 * PyTorch's OneCycleLR (two phases, cosine or linear annealing) with the group's lr as the peak
 * (`max_lr`): from peak / divFactor up to the peak over the first pctStart of `totalSteps`, then
 * down to peak / (divFactor * finalDivFactor) at t = totalSteps - 1. As in PyTorch, t must stay
 * below totalSteps. Only the lr cycles (PyTorch also cycles momentum by default).
 */
export function oneCycle(o: { totalSteps: number; pctStart?: number; divFactor?: number; finalDivFactor?: number; anneal?: 'cos' | 'linear' }): Schedule {
  const total = positiveInt(o?.totalSteps, 'oneCycle', 'totalSteps');
  const pct = o.pctStart ?? 0.3;
  if (!(typeof pct === 'number' && pct > 0 && pct < 1)) throw new RangeError(`oneCycle: option 'pctStart' must be in (0, 1), got ${String(pct)}`);
  const div = finiteAtLeast(o.divFactor ?? 25, 0, 'oneCycle', 'divFactor', true);
  const finalDiv = finiteAtLeast(o.finalDivFactor ?? 1e4, 0, 'oneCycle', 'finalDivFactor', true);
  const anneal = o.anneal ?? 'cos';
  if (anneal !== 'cos' && anneal !== 'linear') throw new RangeError(`oneCycle: option 'anneal' must be 'cos' or 'linear', got ${String(anneal)}`);
  const upEnd = pct * total - 1;
  const downEnd = total - 1;
  const interp = (from: number, to: number, x: number): number =>
    anneal === 'cos' ? to + ((from - to) / 2) * (Math.cos(Math.PI * x) + 1) : (to - from) * x + from;
  return (t, baseLr) => {
    checkT(t, 'oneCycle');
    if (t >= total) throw new RangeError(`oneCycle: t = ${t} is past totalSteps = ${total}`);
    const start = baseLr / div;
    const end = start / finalDiv;
    // PyTorch's phase boundaries: the first phase ends at step pct * total - 1.
    if (t <= upEnd) return interp(start, baseLr, upEnd <= 0 ? 1 : t / upEnd);
    return interp(baseLr, end, (t - upEnd) / (downEnd - upEnd));
  };
}

export interface ReduceLrOnPlateauOptions {
  /** 'min': lower is better (a loss); 'max': higher is better (an accuracy). Default 'min'. */
  mode?: 'min' | 'max';
  /** The lr is multiplied by this on a plateau (default 0.1). */
  factor?: number;
  /** Epochs without improvement tolerated before reducing (default 10). */
  patience?: number;
  /** Improvement needed to count, relative ('rel') or absolute ('abs') (default 1e-4, 'rel'). */
  threshold?: number;
  thresholdMode?: 'rel' | 'abs';
  /** Epochs to wait after a reduction before counting again (default 0). */
  cooldown?: number;
  /** The lr never goes below this (default 0). */
  minLr?: number;
  /** Reductions smaller than this are skipped (default 1e-8). */
  eps?: number;
}

/** The JSON state of a ReduceLrOnPlateau (save it beside the optimizer for an exact resume). */
export interface ReduceLrOnPlateauState {
  best: number | null;
  badEpochs: number;
  cooldownLeft: number;
}

/**
 * PyTorch's ReduceLROnPlateau: the one schedule that depends on the run's results, so it is a small
 * stateful object rather than a function of t. Call `step(metric)` once per epoch (from the
 * trainer's `onEpoch`, say); it lowers every group's lr in place. Do not combine it with a
 * `schedule` that sets the lr every step.
 */
export class ReduceLrOnPlateau {
  readonly o: Required<ReduceLrOnPlateauOptions>;
  #state: ReduceLrOnPlateauState = { best: null, badEpochs: 0, cooldownLeft: 0 };

  constructor(readonly optimizer: { readonly paramGroups: { lr: number }[] }, o: ReduceLrOnPlateauOptions = {}) {
    const r = { mode: 'min', factor: 0.1, patience: 10, threshold: 1e-4, thresholdMode: 'rel', cooldown: 0, minLr: 0, eps: 1e-8, ...o } as const;
    if (r.mode !== 'min' && r.mode !== 'max') throw new RangeError(`ReduceLrOnPlateau: option 'mode' must be 'min' or 'max', got ${String(r.mode)}`);
    if (r.thresholdMode !== 'rel' && r.thresholdMode !== 'abs') throw new RangeError(`ReduceLrOnPlateau: option 'thresholdMode' must be 'rel' or 'abs', got ${String(r.thresholdMode)}`);
    if (!(typeof r.factor === 'number' && r.factor > 0 && r.factor < 1)) throw new RangeError(`ReduceLrOnPlateau: option 'factor' must be in (0, 1), got ${String(r.factor)}`);
    if (!Number.isInteger(r.patience) || r.patience < 0) throw new RangeError(`ReduceLrOnPlateau: option 'patience' must be a non-negative integer, got ${String(r.patience)}`);
    if (!Number.isInteger(r.cooldown) || r.cooldown < 0) throw new RangeError(`ReduceLrOnPlateau: option 'cooldown' must be a non-negative integer, got ${String(r.cooldown)}`);
    finiteAtLeast(r.threshold, 0, 'ReduceLrOnPlateau', 'threshold');
    finiteAtLeast(r.minLr, 0, 'ReduceLrOnPlateau', 'minLr');
    finiteAtLeast(r.eps, 0, 'ReduceLrOnPlateau', 'eps');
    this.o = r;
  }

  #better(a: number, best: number): boolean {
    const { mode, threshold, thresholdMode } = this.o;
    if (mode === 'min') return thresholdMode === 'rel' ? a < best * (1 - threshold) : a < best - threshold;
    return thresholdMode === 'rel' ? a > best * (1 + threshold) : a > best + threshold;
  }

  /** Records one epoch's metric; reduces the lrs on a plateau. Returns the lrs after the call. */
  step(metric: number): number[] {
    if (typeof metric !== 'number' || Number.isNaN(metric)) throw new TypeError(`ReduceLrOnPlateau.step: the metric must be a number, got ${String(metric)}`);
    const s = this.#state;
    if (s.best === null || this.#better(metric, s.best)) {
      s.best = metric;
      s.badEpochs = 0;
    } else {
      s.badEpochs += 1;
    }
    if (s.cooldownLeft > 0) {
      s.cooldownLeft -= 1;
      s.badEpochs = 0;
    }
    if (s.badEpochs > this.o.patience) {
      for (const g of this.optimizer.paramGroups) {
        const lr = Math.max(g.lr * this.o.factor, this.o.minLr);
        if (g.lr - lr > this.o.eps) g.lr = lr;
      }
      s.cooldownLeft = this.o.cooldown;
      s.badEpochs = 0;
    }
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  stateDict(): ReduceLrOnPlateauState {
    return { ...this.#state };
  }

  loadStateDict(s: ReduceLrOnPlateauState): void {
    const ok = s !== null && typeof s === 'object' && (s.best === null || typeof s.best === 'number')
      && Number.isInteger(s.badEpochs) && s.badEpochs >= 0 && Number.isInteger(s.cooldownLeft) && s.cooldownLeft >= 0;
    if (!ok) throw new TypeError(`ReduceLrOnPlateau.loadStateDict: not a ReduceLrOnPlateau state: ${JSON.stringify(s)}`);
    this.#state = { best: s.best, badEpochs: s.badEpochs, cooldownLeft: s.cooldownLeft };
  }
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
