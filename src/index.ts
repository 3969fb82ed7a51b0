// fngd: natural-gradient training on libtorch. The public API.
export * from './tensor/index.js';
export * as nn from './nn/index.js';
export * as data from './data/index.js';
export * as optim from './optim/index.js';
export * as precondition from './precondition/index.js';
export { warn, setWarningHandler, type WarningHandler } from './warnings.js';
export { Trainer, type TrainerOptions, type EpochRecord, type StepRecord, type TrainResult } from './train/trainer.js';
export type { Task } from './train/task.js';
export { supervisedTask, type SupervisedTaskInit } from './train/supervised.js';
export * as metrics from './train/metrics.js';
export type { Metric } from './train/metrics.js';
export { saveCheckpoint, loadCheckpoint, loadCheckpointModel, readCheckpointInfo, CHECKPOINT_FORMAT, type TrainerState } from './train/checkpoint.js';
export { createTask, imageModel, translationModel, TASKS, type TaskName, type TaskOptions, type TranslationPreprocessing } from './train/tasks.js';
export { evaluateImages, evaluateTranslation, translateBatch, type DecodeOptions, type TranslationEvalOptions } from './train/evaluate.js';
export { corpusBleu, type BleuOptions, type BleuScore, type SmoothMethod } from './train/bleu.js';
export * from './curvature/index.js';
