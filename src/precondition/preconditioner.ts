// A preconditioner turns a batch's per-sample losses into a direction and writes it into the
// parameters' `.grad`; a first-order rule (SGD, AdamW: src/optim) then applies `.grad`. Any
// preconditioner pairs with any rule, as ASDL's gradient makers pair with any torch optimizer, or
// optax chains a transformation before an update:
//   const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, preconditioner: ngd(model) });
//   opt.step({ perSampleLoss, sampleIds, epoch });   // ngd writes .grad, SGD's rule updates
// Without a preconditioner a rule uses the mean-loss gradient.
import type { StepInput, StepStats } from '../optim/step.js';
import type { Tensor } from '../tensor/index.js';

export type JsonValue = number | string | boolean | null | JsonValue[] | { [k: string]: JsonValue };

/** A preconditioner's state: tensors (saved in the checkpoint's safetensors) and JSON meta. */
export interface PreconditionerStateDict {
  tensors: Map<string, Tensor>;
  meta: JsonValue;
}

/** What a preconditioner may ask of the rule that applies its direction. */
export interface RuleContext {
  /** The lr of the group holding `p` (KFAC's KL clipping). */
  lrOf(p: Tensor): number;
}

export interface Preconditioner {
  /** The method's registry name ('ngd', 'fngd', 'ief', 'kfac', ...): state dicts check it. */
  readonly name: string;
  /** Its name in messages ('NGD', 'fast iEF', ...). */
  readonly label: string;
  /** Every setting that shapes the direction, as JSON: saved in state dicts and reports. */
  readonly settings: { [k: string]: JsonValue };
  /**
   * Steps after which the per-step cost repeats (1: every step costs the same; KFAC: its
   * factor-update interval). Benchmarks time whole periods.
   */
  readonly costPeriod: number;
  /**
   * Writes `.grad` of every parameter it was built for (replacing what was there) from the batch's
   * per-sample losses, and returns the step's numbers (`loss` is mean_i l_i, already checked finite).
   */
  computeGradients(input: StepInput, loss: number, rule: RuleContext): StepStats;
  /** Called once by the optimizer it is given to, with the optimizer's parameters. */
  attach?(params: readonly Tensor[]): void;
  /** Forgets what the current forward recorded (a step that stops before its gradient phase). */
  clear?(): void;
  /** Copies the caller will own. */
  stateDict(): PreconditionerStateDict;
  /**
   * Restores what stateDict() saved, and the settings it was saved with (hyperparameters come from
   * the state dict, as in PyTorch); builds the new state fully before replacing the current one.
   */
  loadStateDict(sd: PreconditionerStateDict, settings: unknown): void;
  /** Frees its state and stops tapping the model. */
  dispose(): void;
}
