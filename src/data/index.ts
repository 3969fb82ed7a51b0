// Datasets and loaders: MNIST, Fashion-MNIST, CIFAR-10, Multi30K; seeded, resumable batching.
export { type BaseBatch, type BatchOptions, type Dataset, type ImageBatch, type TranslationBatch, disposeBatch } from './dataset.js';
export { DataError, defaultDataRoot } from './files.js';
export { parseIdx, readIdx, type IdxArray } from './idx.js';
export { ImageDataset, type Augmentation, type ImageDatasetInit } from './image.js';
export {
  loadMnist, loadFashionMnist, loadIdxFiles, type MnistOptions, type MnistSplits, IDX_FILES,
  MNIST_MEAN, MNIST_STD, FASHION_MNIST_MEAN, FASHION_MNIST_STD, FASHION_MNIST_CLASSES, FASHION_MNIST_SYSTEM_DIR,
} from './mnist.js';
export {
  loadCifar10, loadCifar10File, cifar10Dir, type Cifar10Options, type Cifar10Splits,
  CIFAR10_MEAN, CIFAR10_STD, CIFAR10_CLASSES, CIFAR10_RECORD_BYTES, CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE,
} from './cifar10.js';
export { tokenize, detokenize, Vocab, PAD, BOS, EOS, UNK, SPECIAL_TOKENS, type TokenizeOptions, type VocabBuildOptions } from './text.js';
export { loadMulti30k, multi30kDir, multi30kVocabs, readLines, readSentences, TranslationDataset, type Multi30k, type Multi30kOptions, type TranslationDatasetInit, type Language } from './multi30k.js';
export { DataLoader, Epoch, type DataLoaderOptions } from './loader.js';
export { deriveSeed, permutation, Rng, STREAM } from './rng.js';
