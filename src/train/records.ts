// What a run logs: a record per epoch (log.jsonl, log.csv) and per step (steps.jsonl). The trainer
// writes them, and its checkpoint keeps them so that a resumed run continues the same log.

export interface EpochRecord {
  /**
   * The epoch just finished, counted from 0 as everywhere in fngd (StepRecord.epoch, the optimizer's
   * StepInput.epoch, DataLoader.epoch(e), checkpoints): the first epoch's record says 0.
   */
  epoch: number;
  /** Seconds of training and evaluation since the run started (summed across resumes). */
  wall_time: number;
  /** The part of `wall_time` spent evaluating (so training time to a target is wall_time - eval_time). */
  eval_time: number;
  train_loss: number;
  lr: number;
  steps: number;
  samples_per_s: number;
  [metric: string]: number;
}

export interface StepRecord {
  epoch: number;
  step: number;
  loss: number;
  lr: number;
  /** The method's own numbers for the step (jitter, reused, missing, analog_s, ...), when it has any. */
  stats?: Record<string, number>;
}
