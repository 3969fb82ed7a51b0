// `fngd eval`: a run's checkpoint evaluated on any data of its task, or again on the run's own
// evaluation sets; the numbers are computed by the code training evaluates with (train/evaluate.ts).
import { writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import {
  DataError, DataLoader, loadCifar10File, loadIdxFiles, readIdx, readSentences, TranslationDataset, CIFAR10_RECORD_BYTES,
  type ImageBatch, type ImageDataset, type TranslationBatch,
} from '../data/index.js';
import { readData } from '../data/files.js';
import { setNumThreads, type Device } from '../tensor/index.js';
import { evaluateImages, evaluateTranslation, type DecodeOptions } from '../train/evaluate.js';
import { withProgressBar } from '../train/progress.js';
import { kebab } from '../precondition/registry.js';
import { loadCheckpointModel } from '../train/checkpoint.js';
import { loadSavedModel, readSavedRun, type SavedModel, type SavedRun } from '../train/saved-run.js';
import { createTask, type TaskName } from '../train/tasks.js';
import { helpText, parseFlags, UsageError, type FlagSpec, type FlagValues } from './args.js';
import { deviceFlag, TRAIN_FLAGS } from './train.js';

/** Flags of every command that loads a run's model. */
export const RUN_MODEL_FLAGS: Record<string, FlagSpec> = {
  run: { kind: 'string', help: 'the run folder (fngd train --out DIR), or its checkpoint.safetensors' },
  'data-dir': { kind: 'string', help: 'datasets folder: the run\'s own sets, and vocabularies older checkpoints lack (default: the run\'s)' },
  threads: TRAIN_FLAGS.threads!,
  device: TRAIN_FLAGS.device!,
  progress: TRAIN_FLAGS.progress!,
};

/** multi30k-transformer's decoding flags (eval and translate). */
export const DECODE_FLAGS: Record<string, FlagSpec> = {
  beam: { kind: 'int', min: 1, max: 1000, shownDefault: 1, help: 'hypotheses kept per sentence: 1 is greedy decoding, more is beam search' },
  'length-penalty': {
    kind: 'number', min: 0, shownDefault: 0,
    help: 'beam search: GNMT\'s alpha; the final hypotheses are ranked by log P / ((5 + length) / 6)^alpha, length counting the EOS (0: plain log-probability)',
  },
  'max-len': { kind: 'int', min: 1, help: 'most tokens generated per sentence (default: the batch\'s longest source + 10)' },
};

const EVAL_FLAGS: Record<string, FlagSpec> = {
  ...RUN_MODEL_FLAGS,
  data: { kind: 'string', help: 'image tasks: a CIFAR-10 binary batch (data_batch_N.bin, test_batch.bin) or an IDX image file (t10k-images-idx3-ubyte); plain or .gz' },
  labels: { kind: 'string', help: 'with an IDX --data: its labels file (default: the file named like it, -images-idx3- -> -labels-idx1-, in its folder)' },
  src: { kind: 'string', help: 'multi30k-transformer: English sentences, one per line; plain or .gz' },
  ref: { kind: 'string', help: 'multi30k-transformer: their German reference translations, line by line' },
  limit: { kind: 'int', min: 1, help: 'evaluate on the first N samples only (default: all; the run\'s own sets: the run\'s --eval-limit)' },
  'batch-size': { kind: 'int', min: 1, help: 'evaluation batch size (default: as training evaluates: 500 images, 128 sentences)' },
  ...DECODE_FLAGS,
  json: { kind: 'string', help: 'write the metrics to this JSON file (default: eval-NAME.json in the run folder, NAME the data file\'s name without extensions; eval.json for the run\'s own sets)' },
};

const EVAL_USAGE = `usage: fngd eval --run DIR [--data FILE | --src FILE --ref FILE] [flags]

Evaluates the model in a run's checkpoint, with the code training evaluates with, and prints and
writes its metrics (accuracy or BLEU, and the cross-entropy loss). Data, by the run's task:
  mnist-mlp, fashion-cnn   --data IDX image file (+ --labels), e.g. t10k-images-idx3-ubyte.gz
  cifar10-resnet, -mlp     --data CIFAR-10 binary batch, e.g. test_batch.bin or data_batch_5.bin.gz
  multi30k-transformer     --src FILE.en --ref FILE.de, e.g. Multi30K's test_2017_flickr.en.gz and
                           test_2017_flickr.de.gz; corpus BLEU (sacreBLEU's default) on lower-cased text
Without data: the run's own evaluation sets, as its log has them (needs the run's data).`;

export function evalHelp(): string {
  return helpText(EVAL_USAGE, EVAL_FLAGS);
}

/** Parses the shared flags: threads set, device resolved, the run read (its task known). */
export function openRun(f: FlagValues): { run: SavedRun; device: Device } {
  if (f.run === undefined) throw new UsageError('--run is required (a run folder made by fngd train --out DIR, or its checkpoint.safetensors)');
  if (f.threads !== undefined) setNumThreads(f.threads as number);
  const device = deviceFlag(f.device as string);
  return { run: readSavedRun(f.run as string), device };
}

/** Decoding options from the flags (for multi30k-transformer); --length-penalty without beam search is an error. */
export function decodeOptions(f: FlagValues): DecodeOptions {
  const beam = (f.beam as number | undefined) ?? 1;
  if (f.lengthPenalty !== undefined && beam === 1) {
    throw new UsageError('--length-penalty ranks the hypotheses of beam search; greedy decoding (--beam 1) has none to rank: add --beam N');
  }
  return { beam, lengthPenalty: (f.lengthPenalty as number | undefined) ?? 0, maxLen: f.maxLen as number | undefined };
}

/** One evaluated set: how many samples and the metrics. */
interface SetResult {
  samples: number;
  [metric: string]: number;
}

export interface EvalReport {
  checkpoint: string;
  task: TaskName;
  /** Epochs the checkpoint's run had finished (and the step in the next one, for a checkpoint written mid-epoch). */
  epochs_trained: number;
  step: number;
  data: Record<string, string> | 'the run\'s evaluation sets';
  decode?: { beam: number; length_penalty: number; max_len: number | 'longest source + 10' };
  sets: Record<string, SetResult>;
}

export async function evalCommand(argv: string[]): Promise<EvalReport | null> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(evalHelp());
    return null;
  }
  const f = parseFlags(argv, EVAL_FLAGS);
  const { run, device } = openRun(f);
  const translation = run.task === 'multi30k-transformer';
  const given = (names: string[]): string[] => names.filter((n) => f[n] !== undefined);
  const wrong = translation ? given(['data', 'labels'])
    : given(['src', 'ref', 'beam', 'lengthPenalty', 'maxLen', ...(run.task.startsWith('cifar10-') ? ['labels'] : [])]);
  if (wrong.length > 0) {
    const flags = wrong.map((n) => `--${kebab(n)}`).join(', ');
    throw new UsageError(`${flags} ${wrong.length > 1 ? 'are' : 'is'} not for the run's task ${run.task} (${run.checkpoint}); `
      + (translation ? 'it evaluates on --src FILE --ref FILE' : 'it evaluates on --data FILE (an image file), without decoding flags'));
  }
  if (translation && (f.src === undefined) !== (f.ref === undefined)) throw new UsageError('--src and --ref go together: the sentences and their references');
  if (f.labels !== undefined && f.data === undefined) throw new UsageError('--labels goes with --data (the IDX image file)');
  const decode = translation ? decodeOptions(f) : undefined;

  const own = f.data === undefined && f.src === undefined;
  const sets = own ? evaluateRunSets(run, f, device, decode) : { [dataName(f)]: evaluateFiles(run, f, device, decode) };
  const report: EvalReport = {
    checkpoint: run.checkpoint,
    task: run.task,
    epochs_trained: run.state.epoch,
    step: run.state.step,
    data: own ? 'the run\'s evaluation sets' : dataFiles(f),
    ...(decode && { decode: { beam: decode.beam!, length_penalty: decode.lengthPenalty!, max_len: decode.maxLen ?? 'longest source + 10' } }),
    sets,
  };

  const count = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;
  const mid = run.state.step > 0 ? ` and ${count(run.state.step, 'step')} of the next` : '';
  console.log(`${run.checkpoint}: ${run.task} after ${count(run.state.epoch, 'epoch')}${mid}`);
  for (const [name, r] of Object.entries(sets)) console.log(`${name} (${r.samples} ${translation ? 'sentences' : 'images'}${decodeText(decode)}): ${metricsText(r)}`);
  const json = (f.json as string | undefined) ?? join(dirname(run.checkpoint), own ? 'eval.json' : `eval-${dataName(f)}.json`);
  try {
    writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  } catch (e) {
    throw new Error(`cannot write the metrics to ${json}: ${(e as Error).message} (choose another file with --json)`);
  }
  console.log(`metrics written to ${json}`);
  return report;
}

function decodeText(d: DecodeOptions | undefined): string {
  if (d === undefined) return '';
  const how = d.beam === 1 ? 'greedy' : `beam ${d.beam}, length penalty ${d.lengthPenalty}`;
  return `, ${how}${d.maxLen === undefined ? '' : `, at most ${d.maxLen} tokens`}`;
}

function metricsText(r: SetResult): string {
  const parts: string[] = [];
  if (r.accuracy !== undefined) parts.push(`accuracy ${(100 * r.accuracy).toFixed(2)}%`);
  if (r.bleu !== undefined) parts.push(`bleu ${r.bleu.toFixed(2)}`);
  parts.push(`loss ${r.loss!.toFixed(4)}`);
  return parts.join(', ');
}

/** The files evaluated, by flag (absolute paths). */
function dataFiles(f: FlagValues): Record<string, string> {
  if (f.src !== undefined) return { src: resolve(f.src as string), ref: resolve(f.ref as string) };
  const labels = imageLabels(f);
  return labels === null ? { data: resolve(f.data as string) } : { data: resolve(f.data as string), labels: resolve(labels) };
}

/** The name of the data: its file's name without .gz and its last extension (test_2017_flickr.en.gz -> test_2017_flickr). */
function dataName(f: FlagValues): string {
  return basename((f.src ?? f.data) as string).replace(/\.gz$/, '').replace(/\.[^.]*$/, '');
}

/** The run's own evaluation sets, loaded as training loaded them (its flags, --data-dir and --eval-limit unless given now). */
function evaluateRunSets(run: SavedRun, f: FlagValues, device: Device, decode: DecodeOptions | undefined): Record<string, SetResult> {
  const c = run.config;
  const task = createTask(run.task, {
    batchSize: (c.batchSize as number | undefined) ?? 1, seed: (c.seed as number | undefined) ?? 0,
    dataDir: (f.dataDir ?? c.dataDir) as string | undefined, evalLimit: (f.limit ?? c.evalLimit) as number | undefined,
    evalBatchSize: f.batchSize as number | undefined, arch: c.arch as 'small' | 'resnet18' | undefined, device, decode,
  });
  try {
    if (run.preprocessing !== undefined && JSON.stringify(task.preprocessing) !== JSON.stringify(run.preprocessing)) {
      throw new Error(`the vocabularies built from the training data now differ from those in ${run.checkpoint}: `
        + 'the data is not what the run trained on (evaluate on files instead: --src FILE --ref FILE)');
    }
    loadCheckpointModel(run.checkpoint, task.model);
    const sets: Record<string, SetResult> = {};
    for (const [name, loader] of Object.entries(task.evalLoaders)) {
      sets[name] = withProgressBar(`eval ${name}`, loader.batchesPerEpoch, f.progress as boolean, (onBatch) => ({ samples: loader.numSamples, ...task.evaluate(loader as never, onBatch) }));
    }
    return sets;
  } finally {
    task.dispose();
  }
}

function evaluateFiles(run: SavedRun, f: FlagValues, device: Device, decode: DecodeOptions | undefined): SetResult {
  const saved = loadSavedModel(run, { device, dataDir: f.dataDir as string | undefined });
  try {
    if (saved.task === 'multi30k-transformer') {
      const data = translationData(saved, f.src as string, f.ref as string);
      try {
        const loader = new DataLoader<TranslationBatch>(data, { batchSize: (f.batchSize as number | undefined) ?? 128, limit: f.limit as number | undefined });
        return withProgressBar(`eval ${dataName(f)}`, loader.batchesPerEpoch, f.progress as boolean, (onBatch) => ({ samples: loader.numSamples, ...evaluateTranslation(saved.model, loader, device, { decode, onBatch }) }));
      } finally {
        data.dispose();
      }
    }
    const data = imageData(saved.task, f.data as string, imageLabels(f));
    try {
      const loader = new DataLoader<ImageBatch>(data, { batchSize: (f.batchSize as number | undefined) ?? 500, limit: f.limit as number | undefined });
      return withProgressBar(`eval ${dataName(f)}`, loader.batchesPerEpoch, f.progress as boolean, (onBatch) => ({ samples: loader.numSamples, ...evaluateImages(saved.model, loader, device, onBatch) }));
    } finally {
      data.dispose();
    }
  } finally {
    saved.model.dispose();
  }
}

function translationData(saved: Extract<SavedModel, { task: 'multi30k-transformer' }>, src: string, ref: string): TranslationDataset {
  const srcText = readSentences(src, '--src ');
  const refText = readSentences(ref, '--ref ');
  if (srcText.length === 0) throw new DataError(`--src ${src} holds no sentence`, src);
  if (srcText.length !== refText.length) {
    throw new DataError(`--src ${src} has ${srcText.length} lines but --ref ${ref} has ${refText.length}: a file is truncated or they are not a pair`, ref);
  }
  return new TranslationDataset({ name: basename(src), srcText, tgtText: refText, srcVocab: saved.srcVocab, tgtVocab: saved.tgtVocab, lowercase: saved.lowercase });
}

/** An IDX --data's labels: --labels, else the file named like it (…-images-idx3-ubyte -> …-labels-idx1-ubyte), else null. */
function imageLabels(f: FlagValues): string | null {
  if (f.labels !== undefined) return f.labels as string;
  const data = f.data as string | undefined;
  if (data === undefined || !basename(data).includes('-images-idx3-ubyte')) return null;
  return join(dirname(data), basename(data).replace('-images-idx3-ubyte', '-labels-idx1-ubyte'));
}

const CIFAR_FILES = 'CIFAR-10 binary batches (data_batch_N.bin, test_batch.bin)';
const IDX_FILES = 'IDX image files (t10k-images-idx3-ubyte[.gz], with --labels)';

/** What a file holds, for naming a mismatch with the task: 'idx', 'cifar10' or 'other'. */
function fileKind(path: string): 'idx' | 'cifar10' | 'other' {
  let b: Buffer;
  try {
    b = readData(path, '');
  } catch {
    return 'other';
  }
  if (b.length >= 4 && b[0] === 0 && b[1] === 0 && b[2] === 0x08) return 'idx';
  if (b.length > 0 && b.length % CIFAR10_RECORD_BYTES === 0) {
    for (let i = 0; i < b.length; i += CIFAR10_RECORD_BYTES) if (b[i]! > 9) return 'other';
    return 'cifar10';
  }
  return 'other';
}

/** The image file(s) as a dataset of the task's kind; a file of another image task's kind is a usage error saying so. */
function imageData(task: Exclude<TaskName, 'multi30k-transformer'>, data: string, labels: string | null): ImageDataset {
  const mismatch = (kind: string, takes: string): UsageError => new UsageError(`--data ${data} is ${kind}, but the run's task ${task} takes ${takes}`);
  if (task === 'cifar10-resnet' || task === 'cifar10-mlp') {
    try {
      return loadCifar10File(data);
    } catch (e) {
      if (e instanceof DataError && fileKind(data) === 'idx') throw mismatch('an IDX file (MNIST\'s format)', CIFAR_FILES);
      throw e;
    }
  }
  if (labels === null) {
    if (fileKind(data) === 'cifar10') throw mismatch('a CIFAR-10 binary batch', IDX_FILES);
    readIdx(data, 3); // a file that is no IDX image file fails here, naming what is wrong with it
    throw new UsageError(`--labels is needed: ${data} is not named like an IDX image file (…-images-idx3-ubyte), so its labels file is unknown`);
  }
  let ds: ImageDataset;
  try {
    ds = loadIdxFiles(data, labels, task === 'mnist-mlp' ? 'mnist' : 'fashion-mnist');
  } catch (e) {
    if (e instanceof DataError && e.path === data && fileKind(data) === 'cifar10') throw mismatch('a CIFAR-10 binary batch', IDX_FILES);
    throw e;
  }
  const [c, h, w] = ds.sampleShape;
  if (c !== 1 || h !== 28 || w !== 28) {
    ds.dispose();
    throw new DataError(`--data ${data} holds ${c}x${h}x${w} images; the ${task} model takes 1x28x28`, data);
  }
  return ds;
}
