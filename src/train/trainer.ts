// The training loop. One step, top to bottom:
//   seed the step's randomness -> make batch k of epoch e -> task.perSampleLoss(batch)
//   -> optimizer.step({ perSampleLoss, sampleIds, epoch })  (gradients + update, see src/optim)
// all inside one `scope`, so every temporary of the step is freed when it ends.
// After each epoch: evaluation, one JSONL log line, an atomic checkpoint. Ctrl-C checkpoints the
// current step and stops; `resume` continues from the checkpoint exactly where the run stopped.
// The run folder (lock, fresh/resume rules, logs that never run ahead of the checkpoint) is
// run-dir.ts. Failing loudly: an empty training or evaluation set, a non-finite loss or metric,
// a checkpoint with NaN weights are errors; the last good checkpoint is never replaced by a bad one.
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gemmState, restoreGemmState } from '../curvature/index.js';
import { deriveSeed, type BaseBatch, type DataLoader } from '../data/index.js';
import { applySchedule, type Optimizer, type Schedule } from '../optim/index.js';
import { manualSeed, scope } from '../tensor/index.js';
import { warn } from '../warnings.js';
import { loadCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.js';
import { epochsCsv } from './csv.js';
import { ProgressBar, withProgressBar } from './progress.js';
import type { EpochRecord, StepRecord } from './records.js';
import { CHECKPOINT_FILE, RunDir } from './run-dir.js';
import type { Task } from './task.js';

// The log records live in records.ts (the checkpoint keeps them too); exported here beside the trainer.
export type { EpochRecord, StepRecord };

/** Empty data would train to "loss 0" and evaluate to NaN or 0: an error naming the set instead. */
function checkData(task: Task<BaseBatch>): void {
  const name = (l: DataLoader<BaseBatch>): string => (l.dataset as { name?: string }).name ?? 'dataset';
  const l = task.trainLoader;
  if (l.batchesPerEpoch === 0) {
    throw new Error(`the training set ${name(l)} has ${l.numSamples} samples: not one ${l.dropLast ? 'full ' : ''}batch of ${l.batchSize}`
      + `${l.numSamples > 0 ? ' (lower the batch size)' : ''}`);
  }
  for (const [k, e] of Object.entries(task.evalLoaders)) {
    if (e.numSamples === 0) throw new Error(`the evaluation set '${k}' (${name(e)}) is empty`);
  }
}

/** The trainer's own random stream ids (the data loader's are in src/data/rng.ts). */
const STEP_STREAM = 101;

export interface TrainerOptions {
  epochs: number;
  seed: number;
  /**
   * Folder for log.jsonl (and the same as log.csv), steps.jsonl and checkpoint.safetensors: a path (fit() opens and locks it
   * for the run, run-dir.ts), a RunDir the caller opened (and closes), or null: all in memory.
   */
  outDir?: string | RunDir | null;
  /** Continue from the folder's checkpoint (an error when there is none). */
  resume?: boolean;
  /** A fresh run into a folder holding a checkpoint deletes it (without: fit() refuses). */
  overwrite?: boolean;
  /** lr schedule over the global step (PyTorch-style: a pure function of the step count). */
  schedule?: Schedule | null;
  /** Also checkpoint every N steps (0: only after each epoch and on Ctrl-C). */
  checkpointEvery?: number;
  /** Stop (with a checkpoint) after this many steps of this call: simulates an interruption. */
  stopAfterSteps?: number;
  progress?: boolean;
  /** Checkpoint and stop on SIGINT (default true when outDir is set). */
  handleSigint?: boolean;
  /** The run's configuration, saved in checkpoints and the log header (CLI flags, say). */
  config?: Record<string, unknown>;
  /** Called with each epoch's log record. */
  onEpoch?: (record: EpochRecord) => void;
  /** Called after every step with its record (the line written to steps.jsonl). */
  onStep?: (record: StepRecord) => void;
}

export interface TrainResult {
  epochs: EpochRecord[];
  steps: StepRecord[];
  /** 'done', or 'stopped' when interrupted (stopAfterSteps or Ctrl-C) with a checkpoint written. */
  status: 'done' | 'stopped';
}

export class Trainer<B extends BaseBatch> {
  readonly task: Task<B>;
  readonly optimizer: Optimizer;
  readonly o: Required<Omit<TrainerOptions, 'onEpoch' | 'onStep' | 'outDir' | 'schedule' | 'stopAfterSteps'>> & TrainerOptions;
  #interrupted = false;

  constructor(task: Task<B>, optimizer: Optimizer, o: TrainerOptions) {
    if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new RangeError(`Trainer: epochs must be a positive integer, got ${o.epochs}`);
    if (!Number.isInteger(o.seed) || o.seed < 0) throw new RangeError(`Trainer: seed must be a non-negative integer, got ${o.seed}`);
    if (o.resume && !o.outDir) throw new Error('Trainer: resume needs an outDir holding the checkpoint');
    if (o.outDir instanceof RunDir && (o.outDir.mode === 'resume') !== Boolean(o.resume)) {
      throw new Error(`Trainer: resume is ${Boolean(o.resume)} but the run folder was opened for a ${o.outDir.mode} run`);
    }
    this.task = task;
    this.optimizer = optimizer;
    this.o = {
      resume: false, overwrite: false, checkpointEvery: 0, progress: true, handleSigint: Boolean(o.outDir), config: {}, ...o,
    };
  }

  get checkpointPath(): string | null {
    const d = this.o.outDir;
    return d instanceof RunDir ? d.checkpointPath : d ? resolve(d, CHECKPOINT_FILE) : null;
  }

  async fit(): Promise<TrainResult> {
    const { task, optimizer, o } = this;
    const loader = task.trainLoader;
    checkData(task);
    const given = o.outDir ?? null;
    const dir = given === null || given instanceof RunDir ? given : RunDir.open(given, { resume: o.resume, overwrite: o.overwrite });

    const onSigint = (): void => {
      this.#interrupted = true;
    };
    let stepsThisCall = 0;
    try {
      let state: TrainerState = { epoch: 0, step: 0, globalStep: 0, wallTime: 0, epochs: [], steps: [], epochLossSum: 0, epochSamples: 0 };
      const ckpt = dir?.checkpointPath ?? null;
      // The product routes go with the state: a resumed run takes the ones this run took.
      const save = (): void => {
        if (ckpt) saveCheckpoint(ckpt, task.model, optimizer, { ...state, gemm: gemmState() }, o.config, task.preprocessing);
      };
      if (dir?.mode === 'resume') {
        state = loadCheckpoint(dir.checkpointPath, task.model, optimizer);
        // The product routes the run took so far: the same ones from here on (they round differently).
        restoreGemmState(state.gemm);
        // The logs hold exactly the checkpoint's history: lines written after it are dropped.
        dir.restoreLogs(state.epochs, state.steps);
        this.log(`resuming from ${ckpt}: epoch ${state.epoch}, step ${state.step}`);
      }
      // log.csv is log.jsonl as a table, rewritten whole from the history (resumed runs included).
      if (dir) writeFileSync(join(dir.path, 'log.csv'), epochsCsv(state.epochs));
      if (o.handleSigint) process.on('SIGINT', onSigint);
      while (state.epoch < o.epochs) {
        const epoch = loader.epoch(state.epoch);
        const bar = new ProgressBar(`epoch ${state.epoch} (${state.epoch + 1}/${o.epochs})`, epoch.length, { enabled: o.progress });
        let t0 = performance.now();
        const flushTime = (): void => {
          const now = performance.now();
          state.wallTime += (now - t0) / 1000;
          t0 = now;
        };
        task.model.train();
        while (state.step < epoch.length) {
          const lr = o.schedule ? applySchedule(optimizer, o.schedule, state.globalStep)[0]! : optimizer.getLr();
          manualSeed(deriveSeed(o.seed, STEP_STREAM, state.epoch, state.step));
          const { loss, n, extra } = scope(() => {
            const batch = epoch.batch(state.step);
            const perSampleLoss = task.perSampleLoss(batch);
            const { loss: l, ...rest } = optimizer.step({ perSampleLoss, sampleIds: batch.ids, epoch: state.epoch, batchIndex: state.step });
            return { loss: l, n: batch.ids.length, extra: rest };
          });
          if (!Number.isFinite(loss)) throw new Error(`training diverged: loss ${loss} at epoch ${state.epoch}, step ${state.step}`);
          const rec: StepRecord = { epoch: state.epoch, step: state.step, loss, lr };
          if (Object.keys(extra).length > 0) rec.stats = extra;
          state.steps.push(rec);
          dir?.appendStep(rec);
          o.onStep?.(rec);
          state.epochLossSum += loss * n;
          state.epochSamples += n;
          state.step += 1;
          state.globalStep += 1;
          stepsThisCall += 1;
          bar.update(state.step, `loss ${loss.toFixed(4)}`);
          // Let signal handlers run between steps.
          await new Promise((r) => setImmediate(r));
          const stop = this.#interrupted || (o.stopAfterSteps !== undefined && stepsThisCall >= o.stopAfterSteps);
          if (stop || (o.checkpointEvery > 0 && state.globalStep % o.checkpointEvery === 0 && state.step < epoch.length)) {
            flushTime();
            save();
          }
          if (stop) {
            bar.done();
            this.log(`stopped at epoch ${state.epoch}, step ${state.step}${ckpt ? `; checkpoint in ${ckpt}` : ''}`);
            return { epochs: state.epochs, steps: state.steps, status: 'stopped' };
          }
        }
        bar.done();
        flushTime();
        const metrics: Record<string, number> = {};
        for (const [name, l] of Object.entries(task.evalLoaders)) {
          // A beam-searched BLEU takes minutes: a bar of its own.
          const scores = withProgressBar(`epoch ${state.epoch} eval ${name}`, l.batchesPerEpoch, o.progress, (onBatch) => task.evaluate(l, onBatch));
          for (const [k, v] of Object.entries(scores)) metrics[`${name}_${k}`] = v;
        }
        const evalSeconds = (performance.now() - t0) / 1000;
        const epochLoss = state.epochLossSum / Math.max(1, state.epochSamples);
        const bad = Object.entries({ train_loss: epochLoss, ...metrics }).filter(([, v]) => !Number.isFinite(v));
        if (bad.length > 0) {
          throw new Error(`epoch ${state.epoch}: ${bad.map(([k, v]) => `${k} is ${v}`).join(', ')}: the model has diverged or the evaluation `
            + `is broken; the run stops${dir?.hasCheckpoint() ? ` (its last good checkpoint, ${ckpt}, is kept)` : ''}`);
        }
        flushTime();
        const trainSeconds = state.wallTime;
        const record: EpochRecord = {
          epoch: state.epoch,
          wall_time: trainSeconds,
          eval_time: (state.epochs.at(-1)?.eval_time ?? 0) + evalSeconds,
          train_loss: epochLoss,
          lr: optimizer.getLr(),
          steps: epoch.length,
          samples_per_s: state.epochSamples / Math.max(1e-9, trainSeconds - (state.epochs.at(-1)?.wall_time ?? 0) - evalSeconds),
          ...metrics,
        };
        state.epochs.push(record);
        dir?.appendEpoch(record);
        // Rewritten whole from the history (a resumed run's included), so its columns stay aligned.
        if (dir) writeFileSync(join(dir.path, 'log.csv'), epochsCsv(state.epochs));
        o.onEpoch?.(record);
        state.epoch += 1;
        state.step = 0;
        state.epochLossSum = 0;
        state.epochSamples = 0;
        save();
      }
      return { epochs: state.epochs, steps: state.steps, status: 'done' };
    } finally {
      if (o.handleSigint) process.off('SIGINT', onSigint);
      if (dir !== null && dir !== given) dir.close();
    }
  }

  /** Resume and stop notices, through the reporting hook (the CLI prints them on stderr). */
  private log(msg: string): void {
    warn('Trainer', msg);
  }
}
