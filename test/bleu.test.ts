// Corpus BLEU against (a) scores published in sacreBLEU's README and tests, (b) hand-computed
// cases, (c) the independent Python reference scripts/fixtures/bleu_reference.py, whose outputs
// are test/fixtures/bleu_reference.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { computeBleu, corpusBleu, formatBleu, sentenceBleu, tokenize13a, type BleuOptions, type BleuScore } from '../src/train/bleu.js';

interface Case {
  name: string;
  hypotheses: string[];
  references: string[][];
  options: Record<string, unknown>;
  expected: BleuScore;
}
const fx = JSON.parse(readFileSync(new URL('../../test/fixtures/bleu_reference.json', import.meta.url), 'utf8')) as {
  tokenizer13a: { input: string; output: string }[];
  cases: Case[];
};

const REFS = [
  ['The dog bit the man.', 'It was not unexpected.', 'The man bit him first.'],
  ['The dog had bit the man.', 'No one was surprised.', 'The man had bitten the dog.'],
];
const SYS = ['The dog bit the man.', "It wasn't surprising.", 'The man had just bitten him.'];

function close(actual: number, expected: number, rel: number, what: string): void {
  const err = Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-300);
  assert.ok(actual === expected || err <= rel, `${what}: ${actual} vs ${expected} (relative error ${err})`);
}

test("sacreBLEU README: corpus_bleu(sys, refs) = 'BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ...)'", () => {
  const s = corpusBleu(SYS, REFS);
  assert.equal(formatBleu(s), 'BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)');
  // sacrebleu test/test_bleu.py: |score - 48.530827| < 1e-8 for the defaults, tokenize '13a' and smooth 'none'.
  assert.ok(Math.abs(s.score - 48.530827) < 1e-8, String(s.score));
  assert.ok(Math.abs(corpusBleu(SYS, REFS, { smoothMethod: 'none' }).score - 48.530827) < 1e-8);
  assert.ok(Math.abs(corpusBleu(SYS, REFS, { tokenize: '13a' }).score - 48.530827) < 1e-8);
  assert.ok(Math.abs(corpusBleu(SYS, REFS, { tokenize: 'none' }).score - 49.1919566) < 1e-8);
  // Empty hypotheses are kept (and score 0).
  assert.equal(corpusBleu(['', '', ''], REFS).score, 0);
  // README "Variable Number of References": an empty reference is skipped.
  const variable = corpusBleu(SYS, [['', ...REFS[0]!.slice(1)], REFS[1]!]);
  assert.equal(formatBleu(variable), 'BLEU = 29.44 82.4/42.9/27.3/12.5 (BP = 0.889 ratio = 0.895 hyp_len = 17 ref_len = 19)');
});

test('sacreBLEU tests: statistics, scoring from statistics, effective order, degenerate statistics', () => {
  // test_case_statistics
  const st = corpusBleu(['am I am a character sequence'], ['I am a symbol string sequence a a']);
  assert.deepEqual([st.counts, st.totals], [[4, 2, 1, 0], [6, 5, 4, 3]]);
  // test_case_scoring: compute_bleu([9,7,5,3], [10,8,6,4], 11, 11) / 100
  assert.ok(Math.abs(computeBleu([9, 7, 5, 3], [10, 8, 6, 4], 11, 11, { smoothMethod: 'none' }).score / 100 - 0.8375922397) < 1e-8);
  // raw_corpus_bleu(hyps, [refs], .01): floor smoothing 0.01, no tokenization, effective order.
  const raw: BleuOptions = { smoothMethod: 'floor', smoothValue: 0.01, tokenize: 'none', effectiveOrder: true };
  const rawCases: [string, string, number][] = [
    ['this is a test', 'this is a test', 1.0],
    ['this is a fest', 'this is a test', 0.223606797749979],
    ['test', 'a test', 0.3678794411714425],
    ['a test', 'a test', 1.0],
    ['a little test', 'a test', 0.03218297948685433],
  ];
  for (const [h, r, want] of rawCases) assert.ok(Math.abs(corpusBleu([h], [r], raw).score / 100 - want) < 1e-8, `${h} | ${r}`);
  // test_degenerate_statistics (floor smoothing with various values): all exactly 0.
  const degenerate: [number[], number[], number, number, number][] = [
    [[0, 0, 0, 0], [4, 4, 2, 1], 0, 1, 0.0],
    [[0, 0, 0, 0], [10, 11, 12, 0], 14, 10, 0.0],
    [[0, 0, 0, 0], [0, 0, 0, 0], 0, 0, 0.0],
    [[6, 5, 4, 0], [6, 5, 4, 3], 6, 6, 0.0],
    [[0, 0, 0, 0], [0, 0, 0, 0], 0, 0, 0.1],
    [[0, 0, 0, 0], [0, 0, 0, 0], 1, 5, 0.01],
  ];
  for (const [c, t, sys, ref, v] of degenerate) {
    assert.equal(computeBleu(c, t, sys, ref, { smoothMethod: 'floor', smoothValue: v }).score, 0);
  }
});

test('sacreBLEU test_sentence_bleu.py: smoothing methods and tokenizers with effective order (issue #98)', () => {
  const REF = 'producţia de zahăr brut se exprimă în zahăr alb;';
  const SYS1 = 'Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;';
  const cases: [BleuOptions, number][] = [
    [{ smoothMethod: 'exp' }, 8.493],
    [{ smoothMethod: 'none' }, 0.0],
    [{ smoothMethod: 'floor' }, 4.51688],
    [{ smoothMethod: 'floor', smoothValue: 0.1 }, 4.51688],
    [{ smoothMethod: 'floor', smoothValue: 0.5 }, 10.10],
    [{ smoothMethod: 'add-k' }, 14.882],
    [{ smoothMethod: 'add-k', smoothValue: 1 }, 14.882],
    [{ smoothMethod: 'add-k', smoothValue: 2 }, 21.389],
    [{ smoothMethod: 'exp', tokenize: 'none' }, 7.347],
  ];
  for (const [o, want] of cases) {
    const got = sentenceBleu(SYS1, [REF], { ...o, effectiveOrder: true }).score;
    assert.ok(Math.abs(got - want) < 1e-3, `${JSON.stringify(o)}: ${got} vs ${want}`);
  }
  // issue #141: no matching unigram gives 0 whatever the smoothing.
  for (const smoothMethod of ['exp', 'none', 'floor', 'add-k'] as const) {
    assert.equal(sentenceBleu('this is a cat', ['okay thanks'], { smoothMethod, effectiveOrder: true }).score, 0);
  }
});

test('hand-computed cases', () => {
  // Identical: 100 (exp(log 100) = 100.00000000000004 in Python too). One-word hypothesis: no
  // 2-grams, so sacreBLEU breaks out of the loop and the missing orders make the score 0.
  close(corpusBleu(['a b c d'], ['a b c d']).score, 100, 1e-15, 'identical');
  assert.equal(corpusBleu(['a'], ['a']).score, 0);
  // 'the cat sat on the mat' vs 'the cat is on the mat': p = 5/6, 3/5, 1/4, 'exp' 1/(2*3).
  const s = corpusBleu(['the cat sat on the mat'], ['the cat is on the mat']);
  const p = [500 / 6, 300 / 5, 100 / 4, 100 / (2 * 3)];
  assert.deepEqual(s.counts, [5, 3, 1, 0]);
  assert.deepEqual(s.totals, [6, 5, 4, 3]);
  assert.deepEqual(s.precisions, p);
  close(s.score, Math.exp(p.reduce((a, v) => a + Math.log(v), 0) / 4), 1e-15, 'score');
  // Brevity penalty: 3 hypothesis tokens against the closest reference, 5 tokens (not 7).
  const b = corpusBleu(['a b c'], [['a b c d e'], ['a b c d e f g']]);
  assert.equal(b.refLen, 5);
  close(b.bp, Math.exp(1 - 5 / 3), 1e-15, 'bp');
  // Equally close references (1 and 5 tokens for 3): the shorter one counts, so no penalty.
  const tie = corpusBleu(['a b c'], [['a b c d e'], ['a']]);
  assert.equal(tie.refLen, 1);
  assert.equal(tie.bp, 1);
  // 13a: '-' is split off after a digit only; '.'/',' stay inside numbers.
  assert.equal(tokenize13a('1-800 re-use 3.5, 1,000. &lt;x&gt;'), '1 - 800 re-use 3.5 , 1,000 . < x >');
});

test('13a tokenizer equals the Python reference on every fixture string', () => {
  for (const { input, output } of fx.tokenizer13a) {
    // The fixture tokenized input.rstrip(), as sacreBLEU does before tokenizing.
    const rstripped = input.replace(/[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/u, '');
    assert.equal(tokenize13a(rstripped), output, JSON.stringify(input));
  }
});

test(`corpus BLEU equals the Python reference on ${fx.cases.length} corpora (relative 1e-9)`, () => {
  for (const c of fx.cases) {
    const refs = c.references.length === 1 ? c.references[0]! : c.references;
    const got = corpusBleu(c.hypotheses, refs, c.options as BleuOptions);
    const e = c.expected;
    close(got.score, e.score, 1e-9, `${c.name}: score`);
    close(got.bp, e.bp, 1e-12, `${c.name}: bp`);
    assert.equal(got.sysLen, e.sysLen, `${c.name}: sysLen`);
    assert.equal(got.refLen, e.refLen, `${c.name}: refLen`);
    assert.deepEqual(got.counts, e.counts, `${c.name}: counts`);
    assert.deepEqual(got.totals, e.totals, `${c.name}: totals`);
    got.precisions.forEach((p, i) => close(p, e.precisions[i]!, 1e-12, `${c.name}: precision ${i + 1}`));
  }
});

test('bad input throws clear errors', () => {
  assert.throws(() => corpusBleu([], ['a']), /hypotheses must be a non-empty array/);
  assert.throws(() => corpusBleu(['a', 'b'], ['a']), /reference stream 0 has 1 sentences for 2 hypotheses/);
  assert.throws(() => corpusBleu(['a b'], [[''], ['']]), /sentence 0 has no \(non-empty\) reference/);
  assert.throws(() => corpusBleu(['a'], ['a'], { smoothMethod: 'bogus' as never }), /option 'smoothMethod'/);
  assert.throws(() => corpusBleu(['a'], ['a'], { tokenize: 'intl' as never }), /option 'tokenize'/);
});
