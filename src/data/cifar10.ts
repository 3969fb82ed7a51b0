// CIFAR-10 from the official "binary version" files (https://www.cs.toronto.edu/~kriz/cifar.html):
// data_batch_1.bin ... data_batch_5.bin (50,000 training images) and test_batch.bin (10,000), each
// optionally gzipped. A record is 3073 bytes: <label 0-9><1024 R><1024 G><1024 B>, rows of 32.
//
// Validation split: by default the LAST `valSize` (5,000) images of the 50,000 training images in
// file order (= the last 5,000 records of data_batch_5) are held out as `val`, and `train` is the
// first 45,000. With `valSeed` the held-out images are instead a seeded random subset (both parts
// kept in ascending file order). `test` is test_batch.bin when present, else null (our shared copy
// has no test split: report results on `val` and say which split).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { keep, scope, tensor, type Device, type Tensor } from '../tensor/index.js';
import { DataError, defaultDataRoot, findFile, pickDir, readData } from './files.js';
import { ImageDataset, type Augmentation } from './image.js';
import { permutation, deriveSeed, STREAM } from './rng.js';

export const CIFAR10_MEAN = [0.4914, 0.4822, 0.4465];
export const CIFAR10_STD = [0.247, 0.2435, 0.2616];
export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
export const CIFAR10_RECORD_BYTES = 3073;
export const CIFAR10_TRAIN_FILES = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'];
export const CIFAR10_TEST_FILE = 'test_batch.bin';

export interface Cifar10Options {
  /**
   * The folder with the binary version files; may also be a data root holding `cifar10/` or
   * `cifar-10-batches-bin/`. Default: `$FNGD_DATA_DIR/cifar10`, else `../shared/data/cifar10`
   * relative to the working directory.
   */
  dataDir?: string;
  /** Training images held out for validation (default 5000; 0 = none, `val` is null). */
  valSize?: number;
  /** When given, the validation images are a seeded random subset instead of the last `valSize`. */
  valSeed?: number;
  /** Training augmentation (default: random crop with 4-pixel zero padding + horizontal flip; false = none). */
  augment?: boolean | Augmentation;
  device?: Device;
}

export interface Cifar10Splits {
  train: ImageDataset;
  val: ImageDataset | null;
  /** test_batch.bin, when the data folder has it. */
  test: ImageDataset | null;
  /** The folder the files came from. */
  dir: string;
  /** How `val` was carved, for reports: e.g. "last 5000 of the 50000 training images". */
  valSplit: string;
}

const HINT = 'Pass dataDir (--data-dir) pointing at a folder with the CIFAR-10 binary version files data_batch_1.bin ... ' +
  'data_batch_5.bin and optionally test_batch.bin (plain or .gz; from https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz), ' +
  'or set FNGD_DATA_DIR to a folder containing cifar10/';

/** The folder `loadCifar10` would read, or a DataError saying where it looked. */
export function cifar10Dir(dataDir?: string): string {
  const base = dataDir ?? join(defaultDataRoot(), 'cifar10');
  const candidates = [base, join(base, 'cifar10'), join(base, 'cifar-10-batches-bin')];
  const dir = pickDir(candidates, CIFAR10_TRAIN_FILES[0]!);
  if (dir === null) {
    const why = existsSync(base) ? `no ${CIFAR10_TRAIN_FILES[0]}[.gz] in ${candidates.join(', ')}` : `${base} does not exist`;
    throw new DataError(`CIFAR-10: ${why}. ${HINT}.`, base);
  }
  return dir;
}

/** Reads binary-version records: raw bytes [n, 3073] checked for size and label range. */
function readRecords(path: string): { bytes: Buffer; n: number } {
  const bytes = readData(path, HINT);
  if (bytes.length === 0 || bytes.length % CIFAR10_RECORD_BYTES !== 0) {
    throw new DataError(`CIFAR-10: ${path} has ${bytes.length} bytes, not a positive multiple of the ${CIFAR10_RECORD_BYTES}-byte record ` +
      `(1 label byte + 3072 pixel bytes): the file is truncated or not the binary version. ${HINT}.`, path);
  }
  const n = bytes.length / CIFAR10_RECORD_BYTES;
  for (let i = 0; i < n; i++) {
    const l = bytes[i * CIFAR10_RECORD_BYTES]!;
    if (l > 9) throw new DataError(`CIFAR-10: ${path}: record ${i} has label byte ${l} (expected 0-9): not the CIFAR-10 binary version. ${HINT}.`, path);
  }
  return { bytes, n };
}

/** Raw records -> uint8 images [n, 3, 32, 32] and int64 labels [n], in libtorch. */
function toTensors(bytes: Uint8Array, n: number, device: Device): { images: Tensor; labels: Tensor } {
  return scope(() => {
    const raw = tensor(bytes, { shape: [n, CIFAR10_RECORD_BYTES], dtype: 'uint8', device });
    const images = raw.narrow(1, 1, 3072).reshape([n, 3, 32, 32]).contiguous();
    const labels = raw.select(1, 0).to('int64');
    return { images, labels };
  });
}

function classNames(dir: string): string[] {
  const meta = join(dir, 'batches.meta.txt');
  if (!existsSync(meta)) return CIFAR10_CLASSES.slice();
  const names = readFileSync(meta, 'utf8').split('\n').map((s) => s.trim()).filter((s) => s !== '');
  return names.length === 10 ? names : CIFAR10_CLASSES.slice();
}

/** One binary-version file (data_batch_N.bin, test_batch.bin, or any file of such records; plain or .gz) as an unaugmented dataset. */
export function loadCifar10File(path: string, o: { device?: Device } = {}): ImageDataset {
  const { bytes, n } = readRecords(path);
  return scope(() => {
    const { images, labels } = toTensors(bytes, n, o.device ?? 'cpu');
    return new ImageDataset({ name: path, images: keep(images), labels: keep(labels), mean: CIFAR10_MEAN, std: CIFAR10_STD, numClasses: 10, classNames: CIFAR10_CLASSES });
  });
}

export function loadCifar10(o: Cifar10Options = {}): Cifar10Splits {
  const dir = cifar10Dir(o.dataDir);
  const device = o.device ?? 'cpu';
  const parts: Buffer[] = [];
  for (const name of CIFAR10_TRAIN_FILES) {
    const p = findFile(dir, name);
    if (p === null) throw new DataError(`CIFAR-10: ${join(dir, name)}[.gz] is missing (the training set needs all five data_batch files). ${HINT}.`, join(dir, name));
    parts.push(readRecords(p).bytes);
  }
  const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  parts.length = 0;
  const nAll = all.length / CIFAR10_RECORD_BYTES;
  const valSize = o.valSize ?? 5000;
  if (!Number.isInteger(valSize) || valSize < 0 || valSize >= nAll) throw new RangeError(`loadCifar10: valSize must be an integer in [0, ${nAll}), got ${valSize}`);
  const aug: Augmentation | undefined = o.augment === false ? undefined
    : o.augment === undefined || o.augment === true ? { cropPadding: 4, hflip: true } : o.augment;
  const names = classNames(dir);
  const common = { mean: CIFAR10_MEAN, std: CIFAR10_STD, numClasses: 10, classNames: names };

  const { train, val, valSplit } = scope(() => {
    const { images, labels } = toTensors(all, nAll, device);
    let trIdx: Tensor | null = null;
    let vaIdx: Tensor | null = null;
    let valSplit: string;
    if (valSize === 0) {
      valSplit = 'none';
    } else if (o.valSeed === undefined) {
      valSplit = `last ${valSize} of the ${nAll} training images`;
    } else {
      const perm = permutation(nAll, deriveSeed(o.valSeed, STREAM.split));
      const isVal = new Uint8Array(nAll);
      for (let i = 0; i < valSize; i++) isVal[perm[i]!] = 1;
      const tr = new Int32Array(nAll - valSize);
      const va = new Int32Array(valSize);
      for (let i = 0, a = 0, b = 0; i < nAll; i++) if (isVal[i]) va[b++] = i; else tr[a++] = i;
      trIdx = tensor(tr, { dtype: 'int64', device });
      vaIdx = tensor(va, { dtype: 'int64', device });
      valSplit = `seeded random ${valSize} of the ${nAll} training images (valSeed ${o.valSeed})`;
    }
    const pick = (t: Tensor, idx: Tensor | null, start: number, len: number): Tensor => keep(idx !== null ? t.indexSelect(0, idx) : t.narrow(0, start, len).contiguous());
    const nTrain = nAll - valSize;
    const train = new ImageDataset({ name: 'cifar10/train', images: pick(images, trIdx, 0, nTrain), labels: pick(labels, trIdx, 0, nTrain), augmentation: aug, ...common });
    const val = valSize === 0 ? null
      : new ImageDataset({ name: 'cifar10/val', images: pick(images, vaIdx, nTrain, valSize), labels: pick(labels, vaIdx, nTrain, valSize), ...common });
    return { train, val, valSplit };
  });

  let test: ImageDataset | null = null;
  const testPath = findFile(dir, CIFAR10_TEST_FILE);
  if (testPath !== null) {
    const { bytes, n } = readRecords(testPath);
    test = scope(() => {
      const { images, labels } = toTensors(bytes, n, device);
      return new ImageDataset({ name: 'cifar10/test', images: keep(images), labels: keep(labels), ...common });
    });
  }
  return { train, val, test, dir, valSplit };
}
