// Multi30K task 1 (Elliott et al. 2016), English -> German by default, from the raw files
// train.{en,de}[.gz] (29,000 pairs), val.{en,de}[.gz] (1,014) and test_2016_flickr.{en,de}[.gz] (1,000).
//
// Sentences are tokenized by `tokenize` (text.ts); one vocabulary per language is built on the
// whole training split (before any `maxLen` filtering) with a minimum frequency (default 2) and
// specials PAD=0, BOS=1, EOS=2, UNK=3. `maxLen` drops TRAINING pairs with more than maxLen tokens
// on either side; validation and test pairs are never dropped or cut (their batches are just wider).
//
// Batches are cut from padded id matrices kept as int32 tensors ([N, maxSrc], [N, maxTgt + 1]):
// one index_select + narrow per tensor, no per-token JS work. PAD is 0, so the matrices start as zeros.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { keep, scope, tensor, type Device, type Tensor } from '../tensor/index.js';
import type { BatchOptions, Dataset, TranslationBatch } from './dataset.js';
import { DataError, defaultDataRoot, findFile, pickDir, readData } from './files.js';
import { BOS, EOS, tokenize, Vocab } from './text.js';

export type Language = 'en' | 'de' | 'fr' | 'cs';

export interface Multi30kOptions {
  /** The folder with the raw files (or a data root holding `multi30k/`). Default `$FNGD_DATA_DIR/multi30k`, else `../shared/data/multi30k`. */
  dataDir?: string;
  src?: Language;
  tgt?: Language;
  /** Lower-case before tokenizing (default true). */
  lowercase?: boolean;
  /** Vocabulary minimum frequency (default 2). */
  minFreq?: number;
  /** Drop training pairs with more than this many tokens on either side (default: keep all). */
  maxLen?: number;
  /** Append EOS to every source sentence (default false). */
  srcEos?: boolean;
  /** Name of the test split files (default 'test_2016_flickr'). */
  testName?: string;
  device?: Device;
}

export interface Multi30k {
  train: TranslationDataset;
  val: TranslationDataset;
  test: TranslationDataset;
  srcVocab: Vocab;
  tgtVocab: Vocab;
  dir: string;
}

interface Encoded {
  ids: Int32Array[];
  lengths: Int32Array;
}

export interface TranslationDatasetInit {
  name: string;
  srcText: string[];
  tgtText: string[];
  srcVocab: Vocab;
  tgtVocab: Vocab;
  lowercase?: boolean;
  srcEos?: boolean;
  /** Line number in the original files of each pair (default 0..n-1). */
  lines?: Int32Array;
  /** `tokenize` of each sentence, when already computed (must match `lowercase`). */
  srcTokens?: string[][];
  tgtTokens?: string[][];
  device?: Device;
}

export class TranslationDataset implements Dataset<TranslationBatch> {
  readonly name: string;
  readonly length: number;
  readonly srcVocab: Vocab;
  readonly tgtVocab: Vocab;
  /** The raw sentences. */
  readonly srcText: readonly string[];
  readonly tgtText: readonly string[];
  /** Line number (0-based) in the original files of each sample. */
  readonly lines: Int32Array;
  /** Source length in ids (tokens, + EOS with srcEos). */
  readonly srcLengths: Int32Array;
  /** Target length in ids: tokens + 1 (the row length of tgtIn and of tgtOut). */
  readonly tgtLengths: Int32Array;
  /** Bucketing key: srcLength * 65536 + tgtLength (source length first, then target length). */
  readonly sortKeys: Float64Array;
  readonly device: Device;
  readonly lowercase: boolean;
  /** int32 [N, maxSrc], PAD-padded. */
  readonly srcMatrix: Tensor;
  /** int32 [N, maxTgt]: BOS + tokens, PAD-padded. */
  readonly tgtInMatrix: Tensor;
  /** int32 [N, maxTgt]: tokens + EOS, PAD-padded. */
  readonly tgtOutMatrix: Tensor;

  constructor(init: TranslationDatasetInit) {
    const n = init.srcText.length;
    if (init.tgtText.length !== n) throw new RangeError(`TranslationDataset ${init.name}: ${n} source vs ${init.tgtText.length} target sentences`);
    this.name = init.name;
    this.length = n;
    this.srcVocab = init.srcVocab;
    this.tgtVocab = init.tgtVocab;
    this.srcText = init.srcText;
    this.tgtText = init.tgtText;
    this.lowercase = init.lowercase ?? true;
    this.lines = init.lines ?? Int32Array.from({ length: n }, (_, i) => i);
    this.device = init.device ?? 'cpu';
    const tok = { lowercase: this.lowercase };
    const src = encodeAll(init.srcTokens ?? init.srcText.map((t) => tokenize(t, tok)), init.srcVocab);
    const tgt = encodeAll(init.tgtTokens ?? init.tgtText.map((t) => tokenize(t, tok)), init.tgtVocab);
    const srcEos = init.srcEos ?? false;
    this.srcLengths = src.lengths.map((l) => l + (srcEos ? 1 : 0));
    this.tgtLengths = tgt.lengths.map((l) => l + 1);
    this.sortKeys = Float64Array.from(this.srcLengths, (l, i) => l * 65536 + this.tgtLengths[i]!);
    const maxS = this.srcLengths.reduce((m, l) => Math.max(m, l), 1);
    const maxT = this.tgtLengths.reduce((m, l) => Math.max(m, l), 1);
    const s = new Int32Array(n * maxS); // PAD = 0
    const ti = new Int32Array(n * maxT);
    const to = new Int32Array(n * maxT);
    for (let i = 0; i < n; i++) {
      const a = src.ids[i]!;
      s.set(a, i * maxS);
      if (srcEos) s[i * maxS + a.length] = EOS;
      const b = tgt.ids[i]!;
      ti[i * maxT] = BOS;
      ti.set(b, i * maxT + 1);
      to.set(b, i * maxT);
      to[i * maxT + b.length] = EOS;
    }
    const dev = this.device;
    this.srcMatrix = keep(tensor(s, { shape: [n, maxS], device: dev }));
    this.tgtInMatrix = keep(tensor(ti, { shape: [n, maxT], device: dev }));
    this.tgtOutMatrix = keep(tensor(to, { shape: [n, maxT], device: dev }));
  }

  batch(indices: Int32Array, _opts?: BatchOptions): TranslationBatch {
    const ids = Int32Array.from(indices);
    const b = ids.length;
    const srcLengths = new Int32Array(b);
    const tgtLengths = new Int32Array(b);
    let maxS = 0;
    let maxT = 0;
    let numTgtTokens = 0;
    for (let k = 0; k < b; k++) {
      const i = ids[k]!;
      if (!(i >= 0 && i < this.length)) throw new RangeError(`${this.name}.batch: index ${i} is outside [0, ${this.length})`);
      const ls = this.srcLengths[i]!;
      const lt = this.tgtLengths[i]!;
      srcLengths[k] = ls;
      tgtLengths[k] = lt;
      if (ls > maxS) maxS = ls;
      if (lt > maxT) maxT = lt;
      numTgtTokens += lt;
    }
    return scope(() => {
      const idx = tensor(ids, { dtype: 'int64', device: this.device });
      const cut = (m: Tensor, len: number): Tensor => m.indexSelect(0, idx).narrow(1, 0, Math.max(len, 1)).to('int64');
      return {
        src: cut(this.srcMatrix, maxS),
        tgtIn: cut(this.tgtInMatrix, maxT),
        tgtOut: cut(this.tgtOutMatrix, maxT),
        ids,
        srcLengths,
        tgtLengths,
        numTgtTokens,
      };
    });
  }

  /** The tokenized reference of sample i (no UNK replacement): what BLEU compares against. */
  tgtTokens(i: number): string[] {
    return tokenize(this.tgtText[i]!, { lowercase: this.lowercase });
  }
  srcTokens(i: number): string[] {
    return tokenize(this.srcText[i]!, { lowercase: this.lowercase });
  }

  dispose(): void {
    this.srcMatrix.dispose();
    this.tgtInMatrix.dispose();
    this.tgtOutMatrix.dispose();
  }
}

function encodeAll(tokens: readonly string[][], vocab: Vocab): Encoded {
  const ids = tokens.map((t) => vocab.encode(t));
  return { ids, lengths: Int32Array.from(ids, (a) => a.length) };
}

const HINT = 'Pass dataDir (--data-dir) pointing at a folder with the raw Multi30K task-1 files train.en.gz, train.de.gz, ' +
  'val.en.gz, val.de.gz, test_2016_flickr.en.gz, test_2016_flickr.de.gz (plain or gzipped; ' +
  'https://github.com/multi30k/dataset/tree/master/data/task1/raw), or set FNGD_DATA_DIR to a folder containing multi30k/';

/** The folder `loadMulti30k` would read, or a DataError saying where it looked. */
export function multi30kDir(dataDir?: string): string {
  const base = dataDir ?? join(defaultDataRoot(), 'multi30k');
  const candidates = [base, join(base, 'multi30k')];
  const dir = pickDir(candidates, 'train.en');
  if (dir === null) {
    const why = existsSync(base) ? `no train.en[.gz] in ${candidates.join(', ')}` : `${base} does not exist`;
    throw new DataError(`Multi30K: ${why}. ${HINT}.`, base);
  }
  return dir;
}

/** One sentence per line (a final newline ends the last line; \r\n accepted). */
export function readLines(dir: string, name: string): string[] {
  const p = findFile(dir, name);
  if (p === null) throw new DataError(`Multi30K: ${join(dir, name)}[.gz] is missing. ${HINT}.`, join(dir, name));
  return readSentences(p, `Multi30K: `, ` ${HINT}.`);
}

/**
 * The lines of a UTF-8 text file (gunzipped when its name ends in .gz): one sentence per line, a
 * final newline ending the last line, \r\n accepted. Errors start with `prefix` and end with `hint`.
 */
export function readSentences(path: string, prefix = '', hint = ''): string[] {
  const buf = readData(path, hint.trim());
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    throw new DataError(`${prefix}${path} is not valid UTF-8 text (a binary file, or corrupt?).${hint}`, path);
  }
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

function readPairs(dir: string, split: string, src: string, tgt: string): { s: string[]; t: string[] } {
  const s = readLines(dir, `${split}.${src}`);
  const t = readLines(dir, `${split}.${tgt}`);
  // An empty split would train to "loss 0" or evaluate to "BLEU 0" without a word.
  for (const [lines, lang] of [[s, src], [t, tgt]] as const) {
    if (lines.length === 0) throw new DataError(`Multi30K: ${findFile(dir, `${split}.${lang}`)} is empty (no sentence). ${HINT}.`, join(dir, `${split}.${lang}`));
  }
  if (s.length !== t.length) {
    throw new DataError(`Multi30K: ${join(dir, `${split}.${src}`)} has ${s.length} lines but ${join(dir, `${split}.${tgt}`)} has ${t.length}: ` +
      `a file is truncated or the pair does not match. ${HINT}.`, join(dir, `${split}.${tgt}`));
  }
  return { s, t };
}

/** The training split's tokens and the vocabularies built from them (shared by the two loaders below). */
function trainingVocabs(dir: string, o: Multi30kOptions) {
  const train = readPairs(dir, 'train', o.src ?? 'en', o.tgt ?? 'de');
  const lowercase = o.lowercase ?? true;
  const srcTok = train.s.map((x) => tokenize(x, { lowercase }));
  const tgtTok = train.t.map((x) => tokenize(x, { lowercase }));
  const vo = { minFreq: o.minFreq ?? 2 };
  return { train, lowercase, srcTok, tgtTok, srcVocab: Vocab.build(srcTok, vo), tgtVocab: Vocab.build(tgtTok, vo) };
}

/**
 * The vocabularies `loadMulti30k` builds with the same options (from the whole training split), without
 * making any dataset.
 */
export function multi30kVocabs(o: Multi30kOptions = {}): { srcVocab: Vocab; tgtVocab: Vocab } {
  const { srcVocab, tgtVocab } = trainingVocabs(multi30kDir(o.dataDir), o);
  return { srcVocab, tgtVocab };
}

export function loadMulti30k(o: Multi30kOptions = {}): Multi30k {
  const dir = multi30kDir(o.dataDir);
  const srcLang = o.src ?? 'en';
  const tgtLang = o.tgt ?? 'de';
  const { train, lowercase, srcTok, tgtTok, srcVocab, tgtVocab } = trainingVocabs(dir, o);
  const val = readPairs(dir, 'val', srcLang, tgtLang);
  const test = readPairs(dir, o.testName ?? 'test_2016_flickr', srcLang, tgtLang);

  let trS = train.s;
  let trT = train.t;
  let trSTok = srcTok;
  let trTTok = tgtTok;
  let lines: Int32Array | undefined;
  const maxLen = o.maxLen;
  if (maxLen !== undefined) {
    if (!Number.isInteger(maxLen) || maxLen < 1) throw new RangeError(`loadMulti30k: maxLen must be a positive integer, got ${maxLen}`);
    const keepIdx: number[] = [];
    for (let i = 0; i < train.s.length; i++) if (srcTok[i]!.length <= maxLen && tgtTok[i]!.length <= maxLen) keepIdx.push(i);
    trS = keepIdx.map((i) => train.s[i]!);
    trT = keepIdx.map((i) => train.t[i]!);
    trSTok = keepIdx.map((i) => srcTok[i]!);
    trTTok = keepIdx.map((i) => tgtTok[i]!);
    lines = Int32Array.from(keepIdx);
    if (keepIdx.length === 0) throw new RangeError(`loadMulti30k: maxLen ${maxLen} drops every one of the ${train.s.length} training pairs`);
  }
  const common = { srcVocab, tgtVocab, lowercase, srcEos: o.srcEos ?? false, device: o.device ?? 'cpu' };
  return {
    train: new TranslationDataset({ name: `multi30k/train.${srcLang}-${tgtLang}`, srcText: trS, tgtText: trT, srcTokens: trSTok, tgtTokens: trTTok, lines, ...common }),
    val: new TranslationDataset({ name: `multi30k/val.${srcLang}-${tgtLang}`, srcText: val.s, tgtText: val.t, ...common }),
    test: new TranslationDataset({ name: `multi30k/${o.testName ?? 'test_2016_flickr'}.${srcLang}-${tgtLang}`, srcText: test.s, tgtText: test.t, ...common }),
    srcVocab,
    tgtVocab,
    dir,
  };
}
