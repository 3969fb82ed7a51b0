// A checkpoint is ONE safetensors file: the model's state dict under `model.`, the optimizer's
// tensors under `optim.`, and everything else (where the run stands, the optimizer's JSON state,
// the history so far, the run's config) as JSON in the header's metadata under `fngd`. One file,
// written to a temporary name and renamed, so a crash never leaves a half-written checkpoint.
import { loadSafetensors, saveSafetensors, type Module } from '../nn/index.js';
import type { Optimizer, OptimizerMeta } from '../optim/index.js';
import { scope, type Tensor } from '../tensor/index.js';
import type { EpochRecord, StepRecord } from './trainer.js';

export const CHECKPOINT_FORMAT = 'fngd.checkpoint.v1';

/** Where a run stands. `step` is the next batch of epoch `epoch` (both from 0). */
export interface TrainerState {
  epoch: number;
  step: number;
  globalStep: number;
  wallTime: number;
  epochs: EpochRecord[];
  steps: StepRecord[];
  /** Running sums of the current epoch's training loss (so a mid-epoch resume reports it whole). */
  epochLossSum: number;
  epochSamples: number;
}

interface CheckpointMeta {
  format: typeof CHECKPOINT_FORMAT;
  state: TrainerState;
  optimizer: OptimizerMeta;
  config: Record<string, unknown>;
}

export function saveCheckpoint(path: string, model: Module, optimizer: Optimizer, state: TrainerState, config: Record<string, unknown>): void {
  scope(() => {
    const tensors = new Map<string, Tensor>();
    for (const [k, v] of model.stateDict()) tensors.set(`model.${k}`, v);
    const opt = optimizer.stateDict();
    for (const [k, v] of opt.tensors) tensors.set(`optim.${k}`, v);
    const meta: CheckpointMeta = { format: CHECKPOINT_FORMAT, state, optimizer: opt.meta, config };
    saveSafetensors(path, tensors, { fngd: JSON.stringify(meta) });
  });
}

/** Restores the model and the optimizer in place and returns where the run stands. */
export function loadCheckpoint(path: string, model: Module, optimizer: Optimizer): TrainerState {
  return scope(() => {
    const { tensors, metadata } = loadSafetensors(path);
    let meta: CheckpointMeta;
    try {
      meta = JSON.parse(metadata.fngd ?? 'null') as CheckpointMeta;
    } catch {
      throw new Error(`${path}: checkpoint metadata is not valid JSON`);
    }
    if (meta?.format !== CHECKPOINT_FORMAT) throw new Error(`${path}: not an fngd checkpoint (format ${String(meta?.format)})`);
    const modelState = new Map<string, Tensor>();
    const optimState = new Map<string, Tensor>();
    for (const [k, v] of tensors) {
      if (k.startsWith('model.')) modelState.set(k.slice(6), v);
      else if (k.startsWith('optim.')) optimState.set(k.slice(6), v);
    }
    model.loadStateDict(modelState);
    optimizer.loadStateDict({ tensors: optimState, meta: meta.optimizer });
    return meta.state;
  });
}
