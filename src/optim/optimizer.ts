// The one optimizer interface (torch.optim-like): parameter groups with their own hyperparameters,
// per-parameter state, an exact state dict, and a step that receives the batch's per-sample losses.
//
// A step has two phases:
//   1. the gradient phase writes each parameter's `.grad`: the gradient of the mean of the per-sample
//      losses, or, when the optimizer was given a preconditioner (NGD, FNGD, iEF, KFAC, ...:
//      src/precondition), the preconditioner's direction, read from per-sample statistics of the
//      same graph. Any preconditioner pairs with any rule: NGD+SGD, NGD+AdamW, ...
//   2. update(): the first-order rule (SGD, AdamW, ...) applied to `.grad`, under noGrad.
// Gradient hooks (`addGradientHook`, e.g. `clipGradNorm`) run between the two, for every method.
// `step()` runs both; `computeDirection()` then `update()` is the same step in two calls.
import type { Preconditioner, PreconditionerStateDict } from '../precondition/preconditioner.js';
import { grad as autogradGrad, keep, noGrad, scope, Tensor } from '../tensor/index.js';
import type { StepInput, StepStats } from './step.js';

export type { StepInput, StepStats } from './step.js';

/**
 * Runs between the gradient phase and the update of every step, with `.grad` holding the direction
 * the rule is about to apply (change it in place: clip it, log it). `stats` is the step's report so
 * far; numbers added to it are reported with the step.
 */
export type GradientHook = (params: readonly Tensor[], stats: StepStats) => void;

/** Hyperparameters every optimizer has. Group hyperparameters must be JSON values. */
export interface BaseHyper {
  lr: number;
}

/** A parameter group: its tensors, its hyperparameters, and the lr it started with (for schedules). */
export type ParamGroup<H extends BaseHyper> = H & {
  readonly params: Tensor[];
  /** The group's lr at construction; schedules scale from it (PyTorch's `initial_lr`). */
  initialLr: number;
};

/** A group as given to a constructor: hyperparameters left out take the optimizer's defaults. */
export type ParamGroupInput<H extends BaseHyper> = { params: Tensor[] } & Partial<H>;
export type ParamsInput<H extends BaseHyper> = Tensor[] | ParamGroupInput<H>[];

/** Per-parameter state: tensors (moments, buffers) and numbers (step counters). */
export type ParamState = Record<string, Tensor | number>;

/** JSON part of a state dict. Tensors live in the `tensors` map under `state.<index>.<name>`. */
export interface OptimizerMeta {
  format: 'fngd.optim.v1';
  /** The optimizer class, e.g. 'SGD'; loading into another kind throws. */
  kind: string;
  /** How many times `update()` ran. */
  stepCount: number;
  /** Hyperparameters per group; `params` lists the global indices of its parameters. */
  paramGroups: (Record<string, unknown> & { params: number[] })[];
  /** Number-valued state per parameter index (e.g. AdamW's step counter). */
  state: Record<string, Record<string, number>>;
  /**
   * The preconditioner's name, settings and JSON state (null without one); its tensors are under
   * `extra.` keys.
   */
  extra: { preconditioner: string; settings: unknown; state: unknown } | null;
}

/**
 * An optimizer's complete state: tensors (save them as a safetensors file) and JSON meta. Parameters
 * are numbered in group order, as in PyTorch. Tensors are copies owned by the caller.
 */
export interface OptimizerStateDict {
  tensors: Map<string, Tensor>;
  meta: OptimizerMeta;
}

/** Throws a RangeError naming the option unless `value` is a finite number inside the bounds. */
export function checkOption(
  owner: string,
  name: string,
  value: unknown,
  bounds: { min?: number; max?: number; minExclusive?: boolean; maxExclusive?: boolean } = {},
): number {
  const { min, max, minExclusive = false, maxExclusive = false } = bounds;
  const lo = min === undefined ? '(-inf' : `${minExclusive ? '(' : '['}${min}`;
  const hi = max === undefined ? 'inf)' : `${max}${maxExclusive ? ')' : ']'}`;
  const ok = typeof value === 'number' && Number.isFinite(value)
    && (min === undefined || (minExclusive ? value > min : value >= min))
    && (max === undefined || (maxExclusive ? value < max : value <= max));
  if (!ok) throw new RangeError(`${owner}: option '${name}' must be a finite number in ${lo}, ${hi}, got ${String(value)}`);
  return value as number;
}

/** `o` without its undefined entries (an option given as undefined takes the default). */
export function definedOnly<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Throws a RangeError naming the option and its choices ("must be 'a', 'b' or 'c'") unless `value` is one of them. */
export function checkChoice<T extends string>(owner: string, name: string, value: unknown, choices: readonly T[]): T {
  if (!choices.includes(value as T)) {
    const quoted = choices.map((c) => `'${c}'`);
    const list = quoted.length > 1 ? `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)!}` : quoted.join('');
    throw new RangeError(`${owner}: option '${name}' must be ${list}, got ${typeof value === 'string' ? `'${value}'` : String(value)}`);
  }
  return value as T;
}

export function checkBoolOption(owner: string, name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`${owner}: option '${name}' must be a boolean, got ${String(value)}`);
  return value;
}

/** What every rule's options may add: the preconditioner whose direction the rule applies. */
export interface PreconditionerOption {
  preconditioner?: Preconditioner | null;
}

export abstract class Optimizer<H extends BaseHyper = BaseHyper> {
  /** The first-order rule's name in state dicts ('SGD', 'AdamW'). */
  abstract readonly kind: string;
  readonly paramGroups: ParamGroup<H>[];
  /** Per-parameter state, created lazily by `update()`. */
  readonly state = new Map<Tensor, ParamState>();
  /** How many times `update()` ran (restored by `loadStateDict`). */
  stepCount = 0;
  /** Writes the direction in the gradient phase (null: the mean-loss gradient). */
  readonly preconditioner: Preconditioner | null;
  readonly #hooks: GradientHook[] = [];
  /** A gradient phase wrote a direction that update() has not applied yet. */
  #directionPending = false;

  constructor(params: ParamsInput<H>, defaults: H, preconditioner: Preconditioner | null = null) {
    const owner = new.target.name;
    this.preconditioner = preconditioner;
    if (!Array.isArray(params) || params.length === 0) throw new TypeError(`${owner}: got an empty parameter list`);
    const groups: ParamGroupInput<H>[] = params[0] instanceof Tensor
      ? [{ params: params as Tensor[] } as ParamGroupInput<H>]
      : (params as ParamGroupInput<H>[]);
    const seen = new Set<Tensor>();
    this.paramGroups = groups.map((g, gi) => {
      if (g === null || typeof g !== 'object' || !Array.isArray(g.params)) {
        throw new TypeError(`${owner}: parameter group ${gi} must be { params: Tensor[], ...hyperparameters }`);
      }
      for (const p of g.params) {
        if (!(p instanceof Tensor)) throw new TypeError(`${owner}: parameter group ${gi} holds something that is not a Tensor`);
        if (seen.has(p)) throw new Error(`${owner}: a parameter appears twice (in group ${gi}); each parameter belongs to one group`);
        if (!p.isLeaf) throw new Error(`${owner}: can't optimize a non-leaf tensor (group ${gi}); pass the parameters themselves`);
        seen.add(p);
      }
      for (const k of Object.keys(g)) {
        if (k !== 'params' && !(k in defaults)) throw new TypeError(`${owner}: parameter group ${gi} has unknown option '${k}'`);
      }
      // Copies, so that groups never share an array (e.g. AdamW's betas).
      const group = structuredClone(defaults) as Record<string, unknown>;
      for (const [k, v] of Object.entries(g)) if (k !== 'params' && v !== undefined) group[k] = structuredClone(v);
      group.params = [...g.params];
      const pg = group as unknown as ParamGroup<H>;
      this.validateHyper(pg, groups.length > 1 ? `${owner} (group ${gi})` : owner);
      pg.initialLr = pg.lr;
      return pg;
    });
    preconditioner?.attach?.(this.params);
  }

  /**
   * The method's name in messages: the preconditioner's label (paired with a rule other than SGD,
   * its default, the rule too: 'NGD+AdamW'), or the rule's.
   */
  get label(): string {
    const p = this.preconditioner;
    if (p === null) return this.kind;
    return this.kind === 'SGD' ? p.label : `${p.label}+${this.kind}`;
  }

  /** The lr of the group that holds `p` (KFAC's KL clipping weighs each parameter by it). */
  lrOf(p: Tensor): number {
    for (const g of this.paramGroups) if (g.params.includes(p)) return g.lr;
    throw new Error(`${this.label}: a tensor that is not one of this optimizer's parameters`);
  }

  /** Throws a clear error for invalid hyperparameters. `owner` names the optimizer (and group). */
  protected abstract validateHyper(h: H, owner: string): void;

  /**
   * The first-order rule for one parameter, under noGrad inside a scope: read `grad`, change `p` in
   * place, keep moments in `state`. New tensors put in `state` are kept for you; replaced ones freed.
   */
  protected abstract updateParam(p: Tensor, grad: Tensor, state: ParamState, group: ParamGroup<H>): void;

  /**
   * Steps after which this optimizer's per-step cost repeats (1: every step costs the same; KFAC:
   * its factor-update interval). Benchmarks time whole periods, so that a periodic update is neither
   * missed by a short timing block nor counted in every one.
   */
  get costPeriod(): number {
    return this.preconditioner?.costPeriod ?? 1;
  }

  /** Every parameter, in group order (the numbering used by state dicts). */
  get params(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  // ---- learning rates ----------------------------------------------------------------------------
  getLr(group = 0): number {
    return this.group(group).lr;
  }
  /** Sets the lr of one group, or of every group when `group` is left out. */
  setLr(lr: number, group?: number): void {
    checkOption(this.kind, 'lr', lr, { min: 0 });
    if (group === undefined) for (const g of this.paramGroups) g.lr = lr;
    else this.group(group).lr = lr;
  }
  get lrs(): number[] {
    return this.paramGroups.map((g) => g.lr);
  }
  private group(i: number): ParamGroup<H> {
    const g = this.paramGroups[i];
    if (!Number.isInteger(i) || g === undefined) throw new RangeError(`${this.kind}: no parameter group ${i} (it has ${this.paramGroups.length})`);
    return g;
  }

  // ---- the step ----------------------------------------------------------------------------------
  /** Drops every parameter's gradient (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  /**
   * Adds a hook that runs after the gradient phase of every step, before the update (see
   * `GradientHook`); returns a function that removes it. Works with and without a preconditioner:
   * `opt.addGradientHook((params) => clipGradNorm(params, 1))`.
   */
  addGradientHook(hook: GradientHook): () => void {
    if (typeof hook !== 'function') throw new TypeError(`${this.label}.addGradientHook: the hook must be a function`);
    this.#hooks.push(hook);
    return () => {
      const i = this.#hooks.indexOf(hook);
      if (i >= 0) this.#hooks.splice(i, 1);
    };
  }

  /** One training step on a batch: the gradient phase, the gradient hooks, then `update()`. */
  step(input: StepInput): StepStats {
    const stats = this.computeDirection(input);
    // computeDirection() has just checked the parameters and written the direction: what update()
    // checks again for a caller who splits the step.
    this.#applyRule();
    return stats;
  }

  /**
   * The first half of `step()`: the gradient phase (every parameter's `.grad` becomes the direction:
   * the preconditioner's, or the mean-loss gradient) and the gradient hooks. Call `update()` next.
   */
  computeDirection(input: StepInput): StepStats {
    checkStepInput(this.label, input);
    this.#checkParamsAlive('step');
    // A NaN or infinite loss would turn every parameter into NaN: stop before any gradient.
    const loss = scope(() => input.perSampleLoss.detach().mean().item());
    if (!Number.isFinite(loss)) {
      this.preconditioner?.clear?.();
      throw new Error(`${this.label}.step: the loss is ${loss} at epoch ${input.epoch}; parameters left unchanged (lower the learning rate, or check the data)`);
    }
    const stats = this.computeGradients(input, loss);
    this.#directionPending = true;
    for (const hook of this.#hooks) hook(this.params, stats);
    return stats;
  }

  /**
   * A parameter disposed under the optimizer means its model was disposed (or rebuilt) while the
   * optimizer lived on: say so, instead of failing deep inside autograd. (`Module.to()` moves
   * parameters in place, so it keeps an optimizer's parameters alive.)
   */
  #checkParamsAlive(what: string): void {
    const params = this.params;
    const i = params.findIndex((p) => p.isDisposed);
    if (i < 0) return;
    throw new Error(`${this.label}.${what}: parameter ${i} (of ${params.length}) of this optimizer has been disposed ` +
      '(its model was disposed, or the parameter itself). This optimizer is stale: dispose() it and build one ' +
      'on the parameters of the model you train.');
  }

  /**
   * The gradient phase: sets each parameter's `.grad`, replacing what was there: the
   * preconditioner's direction, or the gradient of mean_i perSampleLoss_i (SGD's coefficients
   * alpha_i = 1/B). `loss` is mean_i perSampleLoss_i, already computed (and checked finite) by `step`.
   */
  protected computeGradients(input: StepInput, loss: number): StepStats {
    if (this.preconditioner !== null) return this.preconditioner.computeGradients(input, loss, this);
    return { loss: this.writeWeightedGradient(input.perSampleLoss, null) };
  }

  /**
   * Sets `.grad` of every parameter that requires grad to d(sum_i w_i l_i)/d(param) (w = 1/B when
   * `weights` is null) and returns mean_i l_i. Parameters the loss does not reach get `.grad = null`.
   */
  protected writeWeightedGradient(perSampleLoss: Tensor, weights: Tensor | null, o: { retainGraph?: boolean } = {}): number {
    const params = this.params.filter((p) => p.requiresGrad);
    if (params.length === 0) throw new Error(`${this.kind}: no parameter requires grad`);
    return scope(() => {
      const mean = perSampleLoss.mean();
      const objective = weights === null ? mean : perSampleLoss.mul(weights.detach()).sum();
      const grads = autogradGrad(objective, params, { allowUnused: true, retainGraph: o.retainGraph ?? false });
      params.forEach((p, i) => {
        p.grad = grads[i] ?? null;
      });
      return mean.item();
    });
  }

  /**
   * Applies the first-order rule to every parameter that has a `.grad`, and counts the step. With a
   * preconditioner, only after `computeDirection()`: its direction needs the per-sample losses, and
   * `.grad` left by `loss.backward()` would silently make the step plain SGD.
   */
  update(): void {
    this.#checkParamsAlive('update');
    if (this.preconditioner !== null && !this.#directionPending) {
      throw new Error(`${this.label}.update: no ${this.preconditioner.label} direction to apply. ${this.preconditioner.label} ` +
        'computes its direction from per-sample losses: call step({ perSampleLoss, sampleIds, epoch }), or computeDirection(...) ' +
        'then update(). (update() after loss.backward() would apply the plain gradient, i.e. SGD.)');
    }
    this.#applyRule();
  }

  #applyRule(): void {
    this.#directionPending = false;
    noGrad(() => scope(() => {
      for (const group of this.paramGroups) {
        for (const p of group.params) {
          const g = p.grad;
          if (g === null) continue;
          let st = this.state.get(p);
          if (st === undefined) {
            st = {};
            this.state.set(p, st);
          }
          const before = Object.values(st).filter((v): v is Tensor => v instanceof Tensor);
          this.updateParam(p, g, st, group);
          const after = new Set(Object.values(st).filter((v): v is Tensor => v instanceof Tensor));
          for (const t of after) keep(t);
          for (const t of before) if (!after.has(t)) t.dispose();
        }
      }
    }));
    this.stepCount += 1;
  }

  // ---- state dicts -------------------------------------------------------------------------------
  /** The preconditioner's state (FNGD's coefficient store, KFAC's factors, ...), saved under `extra.`. */
  #extraStateDict(): { tensors: Map<string, Tensor>; meta: OptimizerMeta['extra'] } {
    const p = this.preconditioner;
    if (p === null) return { tensors: new Map(), meta: null };
    const sd = p.stateDict();
    return { tensors: sd.tensors, meta: { preconditioner: p.name, settings: structuredClone(p.settings), state: sd.meta } };
  }
  /** Restores what `#extraStateDict` saved (the preconditioner copies the tensors). */
  #loadExtraStateDict(tensors: Map<string, Tensor>, meta: OptimizerMeta['extra'] | undefined): void {
    const who = `${this.label}.loadStateDict`;
    const p = this.preconditioner;
    const saved = meta === null || meta === undefined ? null : meta.preconditioner;
    if ((p?.name ?? null) !== saved) {
      throw new Error(`${who}: the state dict is from ${saved === null ? 'a plain' : `a '${saved}'`} ${meta === null || meta === undefined ? 'optimizer' : 'preconditioner'}, this optimizer ${p === null ? 'has no preconditioner' : `uses '${p.name}'`}`);
    }
    if (p !== null) p.loadStateDict({ tensors, meta: (meta!.state ?? null) as PreconditionerStateDict['meta'] }, meta!.settings);
  }
  /** Checks a loaded state tensor against its parameter (default: same shape). */
  protected checkStateTensor(name: string, t: Tensor, p: Tensor, index: number): void {
    const a = t.shape;
    const b = p.shape;
    if (a.length !== b.length || a.some((d, i) => d !== b[i])) {
      throw new Error(`${this.kind}.loadStateDict: state '${name}' of parameter ${index} has shape [${a}], the parameter [${b}]`);
    }
  }

  /** A snapshot of the whole state: copies of the state tensors plus JSON meta. */
  stateDict(): OptimizerStateDict {
    const tensors = new Map<string, Tensor>();
    const state: Record<string, Record<string, number>> = {};
    const index = new Map<Tensor, number>();
    this.params.forEach((p, i) => index.set(p, i));
    noGrad(() => {
      this.params.forEach((p, i) => {
        const st = this.state.get(p);
        if (st === undefined) return;
        const nums: Record<string, number> = {};
        for (const [k, v] of Object.entries(st)) {
          if (v instanceof Tensor) tensors.set(`state.${i}.${k}`, v.clone());
          else nums[k] = v;
        }
        state[String(i)] = nums;
      });
    });
    const extra = this.#extraStateDict();
    for (const [k, t] of extra.tensors) tensors.set(`extra.${k}`, t);
    const paramGroups = this.paramGroups.map((g) => {
      const { params, ...hyper } = g;
      return { ...structuredClone(hyper), params: params.map((p) => index.get(p)!) } as Record<string, unknown> & { params: number[] };
    });
    return {
      tensors,
      meta: { format: 'fngd.optim.v1', kind: this.kind, stepCount: this.stepCount, paramGroups, state, extra: extra.meta },
    };
  }

  /**
   * Restores a state dict made by `stateDict()` of the same kind of optimizer over parameters of the
   * same shapes, in the same groups. Hyperparameters come from the dict (as in PyTorch); tensors are
   * copied (to each parameter's dtype and device), so the caller may free the dict afterwards.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    const who = `${this.label}.loadStateDict`;
    const { meta, tensors } = sd;
    if (meta === null || typeof meta !== 'object' || meta.format !== 'fngd.optim.v1') throw new Error(`${who}: not an fngd optimizer state dict (format ${String(meta?.format)})`);
    if (meta.kind !== this.kind) throw new Error(`${who}: the state dict is from a ${meta.kind} optimizer`);
    if (!Number.isInteger(meta.stepCount) || meta.stepCount < 0) throw new Error(`${who}: bad stepCount ${meta.stepCount}`);
    if (!Array.isArray(meta.paramGroups) || meta.paramGroups.length !== this.paramGroups.length) {
      throw new Error(`${who}: the state dict has ${meta.paramGroups?.length} parameter group(s), this optimizer ${this.paramGroups.length}`);
    }
    const params = this.params;
    let next = 0;
    const newHyper = meta.paramGroups.map((saved, gi) => {
      const group = this.paramGroups[gi]!;
      const ids = saved.params;
      if (!Array.isArray(ids) || ids.length !== group.params.length || ids.some((id, j) => id !== next + j)) {
        throw new Error(`${who}: group ${gi} has ${ids?.length} parameters in the state dict, ${group.params.length} here`);
      }
      next += ids.length;
      const h: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(saved)) {
        if (k === 'params') continue;
        if (!(k in group)) throw new Error(`${who}: group ${gi} has unknown hyperparameter '${k}'`);
        h[k] = structuredClone(v);
      }
      this.validateHyper({ ...group, ...h } as H, `${who} (group ${gi})`);
      return h;
    });
    // Build the new state completely before touching the current one.
    const newState = new Map<Tensor, ParamState>();
    const used = new Set<string>();
    noGrad(() => {
      for (const [idx, nums] of Object.entries(meta.state ?? {})) {
        const p = params[Number(idx)];
        if (p === undefined || String(Number(idx)) !== idx) throw new Error(`${who}: state for unknown parameter '${idx}'`);
        const st: ParamState = {};
        for (const [k, v] of Object.entries(nums)) {
          if (typeof v !== 'number') throw new Error(`${who}: state '${k}' of parameter ${idx} is not a number`);
          st[k] = v;
        }
        newState.set(p, st);
      }
      try {
        for (const [key, t] of tensors) {
          if (key.startsWith('extra.')) continue;
          const m = /^state\.(\d+)\.(.+)$/.exec(key);
          const p = m ? params[Number(m[1])] : undefined;
          if (m === null || p === undefined) throw new Error(`${who}: unexpected tensor '${key}'`);
          this.checkStateTensor(m[2]!, t, p, Number(m[1]));
          let st = newState.get(p);
          if (st === undefined) newState.set(p, (st = {}));
          st[m[2]!] = keep(scope(() => t.to({ dtype: p.dtype, device: p.device }).clone()));
          used.add(key);
        }
      } catch (e) {
        disposeState(newState);
        throw e;
      }
    });
    const extraTensors = new Map<string, Tensor>();
    for (const [key, t] of tensors) if (key.startsWith('extra.')) extraTensors.set(key.slice(6), t);
    try {
      this.#loadExtraStateDict(extraTensors, meta.extra);
    } catch (e) {
      disposeState(newState);
      throw e;
    }
    disposeState(this.state);
    this.state.clear();
    for (const [p, st] of newState) this.state.set(p, st);
    this.paramGroups.forEach((g, gi) => Object.assign(g, newHyper[gi]));
    this.stepCount = meta.stepCount;
  }

  /** Frees every state tensor and the preconditioner's state (it stops tapping the model). */
  dispose(): void {
    disposeState(this.state);
    this.state.clear();
    this.preconditioner?.dispose();
  }
}

function disposeState(state: Map<Tensor, ParamState>): void {
  for (const st of state.values()) for (const v of Object.values(st)) if (v instanceof Tensor) v.dispose();
}

function checkStepInput(owner: string, input: StepInput): void {
  const { perSampleLoss, sampleIds, epoch } = input ?? ({} as StepInput);
  if (!(perSampleLoss instanceof Tensor)) throw new TypeError(`${owner}.step: perSampleLoss must be a Tensor`);
  if (perSampleLoss.dim !== 1) throw new Error(`${owner}.step: perSampleLoss must have shape [B], got [${perSampleLoss.shape}]`);
  if (!perSampleLoss.requiresGrad) {
    throw new Error(`${owner}.step: perSampleLoss is not attached to the autograd graph (computed under noGrad, or detached?)`);
  }
  if (!(sampleIds instanceof Int32Array)) throw new TypeError(`${owner}.step: sampleIds must be an Int32Array`);
  if (sampleIds.length !== perSampleLoss.shape[0]) {
    throw new Error(`${owner}.step: ${sampleIds.length} sample ids for ${perSampleLoss.shape[0]} per-sample losses`);
  }
  if (!Number.isInteger(epoch) || epoch < 0) throw new RangeError(`${owner}.step: epoch must be a non-negative integer, got ${epoch}`);
}
