// A checkpoint is ONE safetensors file: the model's state dict under `model.`, the optimizer's
// tensors under `optim.`, and everything else (where the run stands, the optimizer's JSON state,
// the history so far, the run's config) as JSON in the header's metadata under `fngd`. One file,
// written to a temporary name and renamed, so a crash never leaves a half-written checkpoint.
//
// Integrity: the file carries a SHA-256 of its header and data (safetensors.ts), verified on load.
// A tensor with NaN or Inf is refused both ways: saving one would replace the last good checkpoint
// with a useless one (the run dies on the error, the old checkpoint stays), and loading one is a
// corrupt checkpoint, named with the tensor.
import { CHECKSUM_KEY, loadSafetensors, readSafetensorsMetadata, saveSafetensors, type Module } from '../nn/index.js';
import type { GemmState } from '../curvature/index.js';
import type { Optimizer, OptimizerMeta } from '../optim/index.js';
import { scope, type Tensor } from '../tensor/index.js';
import { warn } from '../warnings.js';
import type { EpochRecord, StepRecord } from './records.js';

export const CHECKPOINT_FORMAT = 'fngd.checkpoint.v1';

/** Where a run stands. `step` is the next batch of epoch `epoch` (both from 0). */
export interface TrainerState {
  epoch: number;
  step: number;
  globalStep: number;
  wallTime: number;
  /** Every epoch's log record so far: log.jsonl holds exactly these lines. */
  epochs: EpochRecord[];
  /** Every step's record so far: steps.jsonl holds exactly these lines. */
  steps: StepRecord[];
  /** Running sums of the current epoch's training loss (so a mid-epoch resume reports it whole). */
  epochLossSum: number;
  epochSamples: number;
  /** The curvature engine's product routes so far (curvature/gemm.ts); absent in older checkpoints. */
  gemm?: GemmState;
}

interface CheckpointMeta<S> {
  format: typeof CHECKPOINT_FORMAT;
  state: S;
  optimizer: OptimizerMeta;
  config: Record<string, unknown>;
  /** The task's preprocessing (Task.preprocessing); absent in checkpoints of older fngd versions. */
  preprocessing?: Record<string, unknown>;
}

const FLOATS = new Set(['float64', 'float32', 'float16', 'bfloat16']);

/** The first floating tensor with a NaN or an infinite entry, as a message; null when all are finite. */
function nonFinite(tensors: Map<string, Tensor>): string | null {
  for (const [name, t] of tensors) {
    if (!FLOATS.has(t.dtype)) continue;
    const bad = scope(() => t.numel - t.detach().isfinite().sum().item());
    if (bad > 0) return `tensor '${name}' has ${bad} NaN or infinite value${bad === 1 ? '' : 's'} (of ${t.numel})`;
  }
  return null;
}

/**
 * Saves the model, the optimizer (its rule's state, its preconditioner's state: FNGD's stored
 * coefficients, KFAC's factors) and `state`, any JSON value saying where the run stands (the
 * Trainer's `TrainerState`; in your own loop, say `{ epoch, step }`), in one safetensors file,
 * written to a temporary name and renamed. A model or optimizer tensor with NaN or Inf is an error
 * and nothing is written: the previous checkpoint stays the last good one.
 */
export function saveCheckpoint<S = TrainerState>(
  path: string, model: Module, optimizer: Optimizer, state: S, config: Record<string, unknown> = {}, preprocessing?: Record<string, unknown>,
): void {
  scope(() => {
    const tensors = new Map<string, Tensor>();
    for (const [k, v] of model.stateDict()) tensors.set(`model.${k}`, v);
    const opt = optimizer.stateDict();
    for (const [k, v] of opt.tensors) tensors.set(`optim.${k}`, v);
    const bad = nonFinite(tensors);
    if (bad !== null) throw new Error(`refusing to write the checkpoint ${path}: ${bad}; the training has diverged (the previous checkpoint, if any, is kept)`);
    const meta: CheckpointMeta<S> = { format: CHECKPOINT_FORMAT, state, optimizer: opt.meta, config, preprocessing };
    saveSafetensors(path, tensors, { fngd: JSON.stringify(meta) }, { checksum: true });
  });
}

function parseMeta<S>(path: string, metadata: Record<string, string>): CheckpointMeta<S> {
  let meta: CheckpointMeta<S>;
  try {
    meta = JSON.parse(metadata.fngd ?? 'null') as CheckpointMeta<S>;
  } catch {
    throw new Error(`${path}: checkpoint metadata is not valid JSON`);
  }
  if (meta?.format !== CHECKPOINT_FORMAT) throw new Error(`${path}: not an fngd checkpoint (format ${String(meta?.format)})`);
  return meta;
}

/** What a checkpoint says besides its tensors (reads the header only). */
export function readCheckpointInfo<S = TrainerState>(path: string): { state: S; config: Record<string, unknown>; preprocessing?: Record<string, unknown> } {
  const meta = parseMeta<S>(path, readSafetensorsMetadata(path));
  return { state: meta.state, config: meta.config ?? {}, preprocessing: meta.preprocessing };
}

/** The checkpoint's tensors, verified, split into the model's and the optimizer's (in the current scope). */
function readTensors<S>(path: string): { model: Map<string, Tensor>; optim: Map<string, Tensor>; meta: CheckpointMeta<S> } {
  const { tensors, metadata } = loadSafetensors(path);
  const meta = parseMeta<S>(path, metadata);
  // Checkpoints from before the checksum load unverified (runs in flight must stay resumable).
  if (metadata[CHECKSUM_KEY] === undefined) warn('checkpoint', `${path} has no checksum (written by an older fngd): loaded without verification`);
  const bad = nonFinite(tensors);
  if (bad !== null) throw new Error(`${path}: corrupt checkpoint: ${bad}`);
  const model = new Map<string, Tensor>();
  const optim = new Map<string, Tensor>();
  for (const [k, v] of tensors) {
    if (k.startsWith('model.')) model.set(k.slice(6), v);
    else if (k.startsWith('optim.')) optim.set(k.slice(6), v);
  }
  return { model, optim, meta };
}

/**
 * Restores the model and the optimizer in place from a `saveCheckpoint` file and returns the `state`
 * saved with them. Build the model and the optimizer as they were built for the saved run (same
 * architecture, rule and preconditioner); mismatches throw before anything changes in the model.
 */
export function loadCheckpoint<S = TrainerState>(path: string, model: Module, optimizer: Optimizer): S {
  return scope(() => {
    const t = readTensors<S>(path);
    model.loadStateDict(t.model);
    optimizer.loadStateDict({ tensors: t.optim, meta: t.meta.optimizer });
    return t.meta.state;
  });
}

/** Restores only the model from a `saveCheckpoint` file (to evaluate or use it; the optimizer's state is not read into anything). */
export function loadCheckpointModel(path: string, model: Module): void {
  scope(() => model.loadStateDict(readTensors(path).model));
}
