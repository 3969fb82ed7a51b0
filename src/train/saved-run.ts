// A trained model back from a run folder (`fngd train --out DIR`) or its checkpoint file: the task
// and architecture from the flags saved in the checkpoint, the weights from its `model.` tensors,
// and for the Transformer its preprocessing (lower-casing, vocabularies). Checkpoints keep the
// preprocessing (Task.preprocessing); those of older fngd do not, and get it rebuilt from the
// training data, which gives the same vocabularies when the data is the same (Vocab.build is
// deterministic), and an error naming the mismatch when the data differs.
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { multi30kVocabs, Vocab } from '../data/index.js';
import type { Module, TransformerSeq2Seq } from '../nn/index.js';
import type { Device, Tensor } from '../tensor/index.js';
import { loadCheckpointModel, readCheckpointInfo, type TrainerState } from './checkpoint.js';
import { CHECKPOINT_FILE } from './run-dir.js';
import { imageModel, TASKS, translationModel, type TaskName, type TranslationPreprocessing } from './tasks.js';

export interface SavedRun {
  /** The checkpoint file. */
  checkpoint: string;
  task: TaskName;
  /** The flags the run was trained with (camelCase keys, as `fngd train` saved them). */
  config: Record<string, unknown>;
  /** Where the run stood when the checkpoint was written. */
  state: TrainerState;
  /** The Transformer's preprocessing, when the checkpoint has it. */
  preprocessing?: TranslationPreprocessing;
}

export type SavedModel =
  | { task: Exclude<TaskName, 'multi30k-transformer'>; model: Module & { forward(x: Tensor): Tensor } }
  | { task: 'multi30k-transformer'; model: TransformerSeq2Seq; srcVocab: Vocab; tgtVocab: Vocab; lowercase: boolean };

/** The checkpoint of `run`: the run folder's checkpoint.safetensors, or `run` itself when it is a file. */
export function checkpointPath(run: string): string {
  let isDir: boolean;
  try {
    isDir = statSync(run).isDirectory();
  } catch {
    throw new Error(`${run} does not exist (expected a run folder made by fngd train --out DIR, or its ${CHECKPOINT_FILE})`);
  }
  if (!isDir) return resolve(run);
  const path = resolve(run, CHECKPOINT_FILE);
  try {
    statSync(path);
  } catch {
    throw new Error(`${resolve(run)} holds no ${CHECKPOINT_FILE}: not a run folder, or its run has not finished a checkpoint yet`);
  }
  return path;
}

/** Reads a run's checkpoint header: its task, flags and where it stands (no tensor is loaded). */
export function readSavedRun(run: string): SavedRun {
  const checkpoint = checkpointPath(run);
  const info = readCheckpointInfo(checkpoint);
  const task = info.config.task;
  if (!TASKS.includes(task as TaskName)) {
    throw new Error(`${checkpoint}: its saved flags name no task of fngd train (task: ${JSON.stringify(task)}); `
      + 'a checkpoint saved from your own training loop has no task to rebuild');
  }
  return { checkpoint, task: task as TaskName, config: info.config, state: info.state, preprocessing: info.preprocessing as TranslationPreprocessing | undefined };
}

/**
 * Builds the run's model on `device` and loads its weights. The Transformer's vocabularies come from
 * the checkpoint, else they are rebuilt from the Multi30K training files in `dataDir` (default: the
 * run's --data-dir).
 */
export function loadSavedModel(run: SavedRun, o: { device?: Device; dataDir?: string } = {}): SavedModel {
  let saved: SavedModel;
  if (run.task === 'multi30k-transformer') {
    const p = run.preprocessing ?? rebuiltPreprocessing(run, o.dataDir);
    const srcVocab = new Vocab(p.srcVocab);
    const tgtVocab = new Vocab(p.tgtVocab);
    saved = { task: run.task, model: translationModel(srcVocab.size, tgtVocab.size), srcVocab, tgtVocab, lowercase: p.lowercase };
  } else {
    saved = { task: run.task, model: imageModel(run.task, run.config.arch as 'small' | 'resnet18' | undefined) };
  }
  try {
    if (o.device !== undefined && o.device !== 'cpu') saved.model.to(o.device);
    loadCheckpointModel(run.checkpoint, saved.model);
  } catch (e) {
    saved.model.dispose();
    const why = run.task === 'multi30k-transformer' && run.preprocessing === undefined
      ? ' (its vocabularies were rebuilt from the training data: is it the data the run trained on?)' : '';
    throw new Error(`${run.checkpoint}: the ${run.task} model cannot take these weights${why}: ${(e as Error).message}`);
  }
  saved.model.eval();
  return saved;
}

/** Lower-casing and vocabularies as `createTask` builds them, for checkpoints that lack them. */
function rebuiltPreprocessing(run: SavedRun, dataDir?: string): TranslationPreprocessing {
  const dir = dataDir ?? (run.config.dataDir as string | undefined);
  const v = multi30kVocabs({ dataDir: dir });
  return { lowercase: true, srcVocab: v.srcVocab.toJSON(), tgtVocab: v.tgtVocab.toJSON() };
}
