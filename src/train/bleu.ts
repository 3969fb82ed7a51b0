// Corpus BLEU equal to sacreBLEU's default `corpus_bleu` (sacrebleu 2.x, BLEU class defaults):
// BLEU-4 with uniform weights, 'exp' smoothing (mteval-v13a's NIST smoothing), no effective order,
// mixed case, the '13a' tokenizer, brevity penalty against the closest reference length (the
// shorter one on ties). Ported from sacrebleu/metrics/bleu.py, sacrebleu/tokenizers/tokenizer_13a.py
// and tokenizer_re.py; the other smoothing methods and effective order are there for sentence BLEU
// and for checking against sacreBLEU's published test values.

export type SmoothMethod = 'exp' | 'none' | 'floor' | 'add-k';

export interface BleuOptions {
  /** 'exp' (sacreBLEU's default), 'none', 'floor' (value 0.1 by default) or 'add-k' (value 1). */
  smoothMethod?: SmoothMethod;
  smoothValue?: number;
  /** '13a' (default, mteval-v13a) or 'none' (split on whitespace only). */
  tokenize?: '13a' | 'none';
  /** Lowercase before tokenizing (JS toLowerCase; equals Python's str.lower() except rare letters). */
  lowercase?: boolean;
  /** Drop n-gram orders with no hypothesis n-grams (sacreBLEU's effective_order; for sentence BLEU). */
  effectiveOrder?: boolean;
  maxNgramOrder?: number;
}

export interface BleuScore {
  /** BLEU in 0..100. */
  score: number;
  /** n-gram precisions in percent (smoothed as sacreBLEU reports them). */
  precisions: number[];
  /** Brevity penalty. */
  bp: number;
  sysLen: number;
  refLen: number;
  /** Matched and total hypothesis n-grams per order (after add-k smoothing, as sacreBLEU). */
  counts: number[];
  totals: number[];
}

// Python's str.isspace() characters: what str.split() and str.rstrip() use. JS's \s differs (it
// has U+FEFF, lacks U+001C..U+001F and U+0085), so sacreBLEU's splitting is spelled out.
const PY_WS = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPLIT = new RegExp(`[${PY_WS}]+`, 'u');
const PY_SPACE = new RegExp(`^[${PY_WS}]$`, 'u');

/** Python's str.rstrip() without arguments (every whitespace character is in the BMP). */
function pyRstrip(s: string): string {
  let end = s.length;
  while (end > 0 && PY_SPACE.test(s[end - 1]!)) end--;
  return s.slice(0, end);
}

/** Python's str.split() without arguments. */
function pySplit(s: string): string[] {
  return s.split(PY_SPLIT).filter((w) => w.length > 0);
}

// tokenizer_re.py: the mteval-v13a regexes, in order. The first class is the same ranges as
// [\{-\~\[-\` -\&\(-\+\:-\@\/] written with code points: { | } ~, [ \ ] ^ _ `, space ! " # $ % &,
// ( ) * +, : ; < = > ? @, and /. Digits are ASCII only ([0-9], as in Python).
const RE_PUNCT = /([\x7b-\x7e\x5b-\x60\x20-\x26\x28-\x2b\x3a-\x40\x2f])/gu;
const RE_PERIOD_COMMA_AFTER_NONDIGIT = /([^0-9])([.,])/gu;
const RE_PERIOD_COMMA_BEFORE_NONDIGIT = /([.,])([^0-9])/gu;
const RE_DASH_AFTER_DIGIT = /([0-9])(-)/gu;

/** sacreBLEU's '13a' tokenizer (mteval-v13a), exactly: returns tokens joined by single spaces. */
export function tokenize13a(line: string): string {
  let s = line.replaceAll('<skipped>', '').replaceAll('-\n', '').replaceAll('\n', ' ');
  if (s.includes('&')) {
    s = s.replaceAll('&quot;', '"').replaceAll('&amp;', '&').replaceAll('&lt;', '<').replaceAll('&gt;', '>');
  }
  s = ` ${s} `;
  s = s.replace(RE_PUNCT, ' $1 ');
  s = s.replace(RE_PERIOD_COMMA_AFTER_NONDIGIT, '$1 $2 ');
  s = s.replace(RE_PERIOD_COMMA_BEFORE_NONDIGIT, ' $1 $2');
  s = s.replace(RE_DASH_AFTER_DIGIT, '$1 $2 ');
  return pySplit(s).join(' ');
}

interface Resolved {
  smoothMethod: SmoothMethod;
  smoothValue: number | null;
  tokenize: '13a' | 'none';
  lowercase: boolean;
  effectiveOrder: boolean;
  maxNgramOrder: number;
}

const SMOOTH_DEFAULTS: Record<SmoothMethod, number | null> = { none: null, floor: 0.1, 'add-k': 1, exp: null };

function resolve(o: BleuOptions, who: string): Resolved {
  const smoothMethod = o.smoothMethod ?? 'exp';
  if (!(smoothMethod in SMOOTH_DEFAULTS)) throw new RangeError(`${who}: option 'smoothMethod' must be 'exp', 'none', 'floor' or 'add-k', got '${smoothMethod}'`);
  const tokenize = o.tokenize ?? '13a';
  if (tokenize !== '13a' && tokenize !== 'none') throw new RangeError(`${who}: option 'tokenize' must be '13a' or 'none', got '${tokenize}'`);
  const maxNgramOrder = o.maxNgramOrder ?? 4;
  if (!Number.isInteger(maxNgramOrder) || maxNgramOrder < 1) throw new RangeError(`${who}: option 'maxNgramOrder' must be a positive integer, got ${maxNgramOrder}`);
  const smoothValue = o.smoothValue ?? SMOOTH_DEFAULTS[smoothMethod];
  if (smoothValue !== null && (typeof smoothValue !== 'number' || !Number.isFinite(smoothValue))) {
    throw new RangeError(`${who}: option 'smoothValue' must be a finite number, got ${smoothValue}`);
  }
  return { smoothMethod, smoothValue, tokenize, lowercase: o.lowercase ?? false, effectiveOrder: o.effectiveOrder ?? false, maxNgramOrder };
}

/** sacreBLEU's `_preprocess_segment`: lowercase (optional), rstrip, tokenize; then split. */
function tokens(sent: string, r: Resolved): string[] {
  let s = r.lowercase ? sent.toLowerCase() : sent;
  s = pyRstrip(s);
  return pySplit(r.tokenize === '13a' ? tokenize13a(s) : s);
}

/** n-gram counts per order (index n-1); tokens never hold whitespace, so ' ' joins unambiguously. */
function ngramCounts(toks: string[], maxOrder: number): Map<string, number>[] {
  const out: Map<string, number>[] = [];
  for (let n = 1; n <= maxOrder; n++) {
    const m = new Map<string, number>();
    for (let i = 0; i + n <= toks.length; i++) {
      const key = toks.slice(i, i + n).join(' ');
      m.set(key, (m.get(key) ?? 0) + 1);
    }
    out.push(m);
  }
  return out;
}

/** The closest reference length; the shorter one on ties (sacreBLEU's `_get_closest_ref_len`). */
function closestRefLen(hypLen: number, refLens: number[]): number {
  let bestDiff = -1;
  let best = -1;
  for (const len of refLens) {
    const diff = Math.abs(hypLen - len);
    if (bestDiff === -1 || diff < bestDiff) {
      bestDiff = diff;
      best = len;
    } else if (diff === bestDiff && len < best) {
      best = len;
    }
  }
  return best;
}

/** sacreBLEU's my_log: log, with log(0) floored to -9999999999. */
function myLog(x: number): number {
  return x === 0 ? -9999999999 : Math.log(x);
}

/**
 * BLEU from sufficient statistics (sacreBLEU's `BLEU.compute_bleu`). `correct`/`total` are per
 * n-gram order. Defaults are corpus_bleu's (smoothing 'exp'), not compute_bleu's ('none').
 */
export function computeBleu(correct: number[], total: number[], sysLen: number, refLen: number, options: BleuOptions = {}): BleuScore {
  const r = resolve(options, 'computeBleu');
  const maxOrder = r.maxNgramOrder;
  if (correct.length !== maxOrder || total.length !== maxOrder) {
    throw new RangeError(`computeBleu: expected ${maxOrder} counts and totals, got ${correct.length} and ${total.length}`);
  }
  const counts = [...correct];
  const totals = [...total];
  const bp = sysLen < refLen ? (sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0.0) : 1.0;
  const precisions = new Array<number>(maxOrder).fill(0);
  if (!counts.some((c) => c !== 0)) return { score: 0.0, precisions, bp, sysLen, refLen, counts, totals };

  let smoothMteval = 1.0;
  let effOrder = maxOrder;
  for (let n = 1; n <= maxOrder; n++) {
    if (r.smoothMethod === 'add-k' && n > 1) {
      counts[n - 1]! += r.smoothValue!;
      totals[n - 1]! += r.smoothValue!;
    }
    if (totals[n - 1] === 0) break;
    if (r.effectiveOrder) effOrder = n;
    if (counts[n - 1] === 0) {
      if (r.smoothMethod === 'exp') {
        smoothMteval *= 2;
        precisions[n - 1] = 100.0 / (smoothMteval * totals[n - 1]!);
      } else if (r.smoothMethod === 'floor') {
        precisions[n - 1] = (100.0 * r.smoothValue!) / totals[n - 1]!;
      }
    } else {
      precisions[n - 1] = (100.0 * counts[n - 1]!) / totals[n - 1]!;
    }
  }
  let logSum = 0;
  for (let i = 0; i < effOrder; i++) logSum += myLog(precisions[i]!);
  const score = bp * Math.exp(logSum / effOrder);
  return { score, precisions, bp, sysLen, refLen, counts, totals };
}

/** Per-sentence statistics: [hypLen, refLen, correct_1..N, total_1..N] as sacreBLEU. */
function segmentStats(hyp: string, refs: string[], r: Resolved): number[] {
  const N = r.maxNgramOrder;
  const refNgrams: Map<string, number>[] = Array.from({ length: N }, () => new Map());
  const refLens: number[] = [];
  for (const ref of refs) {
    const toks = tokens(ref, r);
    refLens.push(toks.length);
    ngramCounts(toks, N).forEach((m, n) => {
      const merged = refNgrams[n]!;
      for (const [k, c] of m) merged.set(k, Math.max(merged.get(k) ?? 0, c));
    });
  }
  const htoks = tokens(hyp, r);
  const correct = new Array<number>(N).fill(0);
  const total = new Array<number>(N).fill(0);
  ngramCounts(htoks, N).forEach((m, n) => {
    for (const [k, c] of m) {
      total[n]! += c;
      const rc = refNgrams[n]!.get(k);
      if (rc !== undefined) correct[n]! += Math.min(c, rc);
    }
  });
  return [htoks.length, closestRefLen(htoks.length, refLens), ...correct, ...total];
}

/**
 * Corpus BLEU, as sacreBLEU's `corpus_bleu(hypotheses, references)`. `references` is one reference
 * per hypothesis (string[]), or sacreBLEU's layout for several: a list of reference streams, each as
 * long as `hypotheses` (references[k][i] is the k-th reference of sentence i). As in sacreBLEU, an
 * empty reference is skipped (variable numbers of references), empty hypotheses count.
 */
export function corpusBleu(hypotheses: string[], references: string[] | string[][], options: BleuOptions = {}): BleuScore {
  const who = 'corpusBleu';
  const r = resolve(options, who);
  if (!Array.isArray(hypotheses) || hypotheses.length === 0) throw new TypeError(`${who}: hypotheses must be a non-empty array of strings`);
  hypotheses.forEach((h, i) => {
    if (typeof h !== 'string') throw new TypeError(`${who}: hypothesis ${i} is not a string`);
  });
  if (!Array.isArray(references) || references.length === 0) throw new TypeError(`${who}: references must be a non-empty array`);
  const streams: string[][] = typeof references[0] === 'string' ? [references as string[]] : (references as string[][]);
  streams.forEach((s, k) => {
    if (!Array.isArray(s)) throw new TypeError(`${who}: references must be string[] or string[][] (reference streams)`);
    if (s.length !== hypotheses.length) {
      throw new RangeError(`${who}: reference stream ${k} has ${s.length} sentences for ${hypotheses.length} hypotheses ` +
        '(several references are given as streams, as in sacreBLEU: references[k][i] is the k-th reference of sentence i)');
    }
  });
  const N = r.maxNgramOrder;
  const sums = new Array<number>(2 + 2 * N).fill(0);
  hypotheses.forEach((hyp, i) => {
    const refs: string[] = [];
    for (const s of streams) {
      const ref = s[i];
      if (ref === undefined || ref === null || ref === '') continue;
      if (typeof ref !== 'string') throw new TypeError(`${who}: reference ${i} is not a string`);
      refs.push(ref);
    }
    if (refs.length === 0) throw new Error(`${who}: sentence ${i} has no (non-empty) reference`);
    segmentStats(hyp, refs, r).forEach((v, j) => {
      sums[j]! += v;
    });
  });
  return computeBleu(sums.slice(2, 2 + N), sums.slice(2 + N), sums[0]!, sums[1]!, options);
}

/** Sentence BLEU (sacreBLEU's BLEU.sentence_score: same defaults as the corpus score). */
export function sentenceBleu(hypothesis: string, references: string[], options: BleuOptions = {}): BleuScore {
  return corpusBleu([hypothesis], references.map((ref) => [ref]), options);
}

/**
 * sacreBLEU's printout, e.g. "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len =
 * 17 ref_len = 18)". Rounding is JS toFixed (it differs from Python's only on exact binary ties).
 */
export function formatBleu(s: BleuScore, width = 2): string {
  const ratio = s.refLen ? s.sysLen / s.refLen : 0;
  const prec = s.precisions.map((p) => p.toFixed(1)).join('/');
  return `BLEU = ${s.score.toFixed(width)} ${prec} (BP = ${s.bp.toFixed(3)} ratio = ${ratio.toFixed(3)} hyp_len = ${s.sysLen} ref_len = ${s.refLen})`;
}
