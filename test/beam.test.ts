// Beam search (TransformerSeq2Seq.beamDecode) against oracles: greedy decoding for a beam of 1,
// the model's own teacher-forced log-probabilities for the score of what it finds, and an
// exhaustive search over every short sequence of a tiny vocabulary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manualSeed, noGrad, randint, scope, tensor, type Tensor } from '../src/tensor/index.js';
import { transformerSeq2Seq, type TransformerSeq2Seq } from '../src/nn/index.js';
import { leakCheck } from './helpers.js';

const PAD = 0;
const BOS = 1;
const EOS = 2;

/**
 * A random model whose output distributions are more peaked than at initialization (the generator
 * doubled), as a trained model's are: greedy decoding is then often not the most probable sequence.
 */
function tinyModel(seed: number, tgtVocab: number, dtype: 'float32' | 'float64'): TransformerSeq2Seq {
  manualSeed(seed);
  const m = transformerSeq2Seq({ srcVocab: 9, tgtVocab, dModel: 8, heads: 2, layers: 1, ffn: 16, maxLen: 16, padIdx: PAD, dtype });
  noGrad(() => scope(() => m.generator.weight.mul_(2)));
  return m;
}

/** Source rows [B, S] of random non-special ids, the last row shorter (PAD-padded). */
function sources(seed: number, b: number, s: number): Tensor {
  manualSeed(seed);
  return scope(() => {
    const ids = randint(3, 9, [b, s]).toArray();
    for (let j = s - 2; j < s; j++) ids[(b - 1) * s + j] = PAD;
    return tensor(ids, { dtype: 'int64', shape: [b, s] });
  });
}

/**
 * The oracle: log P(y | x) by one teacher-forced forward pass of `model`, summing the log-softmax of
 * each token of y and of the EOS after it when the hypothesis ended there (it is shorter than
 * `maxLen`; one of `maxLen` tokens was cut off there, as decoding stops).
 */
function logProb(model: TransformerSeq2Seq, src: Tensor, row: number, ys: number[][], maxLen: number): number[] {
  const training = model.training;
  model.eval();
  const scores = noGrad(() => scope(() => {
    const width = 1 + Math.max(...ys.map((y) => y.length));
    const tgtIn = tensor(ys.flatMap((y) => [BOS, ...y, ...new Array<number>(width - 1 - y.length).fill(PAD)]), { dtype: 'int64', shape: [ys.length, width] });
    const srcRows = src.narrow(0, row, 1).expand([ys.length, src.size(1)]).contiguous();
    const logp = model.forward(srcRows, tgtIn).to('float64').logSoftmax(-1);
    const lp = logp.toArray();
    const v = logp.size(2);
    return ys.map((y, i) => {
      const targets = y.length < maxLen ? [...y, EOS] : y;
      return targets.reduce((s, tok, t) => s + lp[(i * width + t) * v + tok]!, 0);
    });
  }));
  model.train(training);
  return scores;
}

/** GNMT's length penalty of a hypothesis y (its length counting the EOS it ended with). */
function penalty(y: number[], maxLen: number, alpha: number): number {
  return ((5 + y.length + (y.length < maxLen ? 1 : 0)) / 6) ** alpha;
}

test('a beam of 1 is greedy decoding exactly, in float32 and float64, for any length limit', () => leakCheck(() => {
  for (const dtype of ['float32', 'float64'] as const) {
    for (const seed of [1, 2, 3]) {
      const m = tinyModel(seed, 12, dtype);
      const src = sources(seed + 10, 6, 5);
      for (const maxLen of [1, 4, 15]) {
        const greedy = m.greedyDecode(src, { bos: BOS, eos: EOS, maxLen });
        assert.deepEqual(m.beamDecode(src, { bos: BOS, eos: EOS, beam: 1, maxLen }), greedy, `${dtype}, seed ${seed}, maxLen ${maxLen}`);
        assert.deepEqual(m.beamDecode(src, { bos: BOS, eos: EOS, beam: 1, maxLen, lengthPenalty: 1 }), greedy, 'the length penalty ranks beams: one beam has nothing to rank');
      }
      m.dispose();
    }
  }
}));

// Not a theorem of beam search (greedy's prefix can be pruned for ones that fare worse later), but
// it holds on these models, and a failure would more likely be a scoring bug than such a case.
test('beam search finds sequences at least as probable as greedy decoding (scored by a teacher-forced pass)', () => leakCheck(() => {
  const maxLen = 8;
  let better = 0;
  for (const seed of [4, 5, 6, 7]) {
    const m = tinyModel(seed, 12, 'float64');
    m.train(); // decoding runs in eval mode and restores the flags
    const src = sources(seed + 20, 5, 6);
    const greedy = m.greedyDecode(src, { bos: BOS, eos: EOS, maxLen });
    for (const beam of [2, 3, 5]) {
      const found = m.beamDecode(src, { bos: BOS, eos: EOS, beam, maxLen });
      assert.ok(m.training, 'training flags restored');
      for (let i = 0; i < found.length; i++) {
        const [g, b] = logProb(m, src, i, [greedy[i]!, found[i]!], maxLen);
        assert.ok(b! >= g! - 1e-9, `seed ${seed}, beam ${beam}, sentence ${i}: beam's log P ${b} < greedy's ${g}`);
        if (b! > g! + 1e-6) better++;
      }
    }
    m.dispose();
  }
  assert.ok(better > 0, 'beam search beat greedy somewhere (else the check above is vacuous)');
}));

test('with a beam as wide as the search space, beam search finds the best sequence of an exhaustive search, with and without length penalty', () => leakCheck(() => {
  // Vocabulary of 5 (PAD, BOS, EOS, UNK, one word), at most 3 tokens: 4 + 4^2 + 4^3 continuations
  // plus the EOS-ended ones, 85 sequences in all; a beam of 128 never prunes.
  const vocab = 5;
  const maxLen = 3;
  const all: number[][] = [[]];
  for (let len = 1; len <= maxLen; len++) {
    for (const y of all.filter((a) => a.length === len - 1)) for (let v = 0; v < vocab; v++) if (v !== EOS) all.push([...y, v]);
  }
  assert.equal(all.length, 1 + 4 + 16 + 64);
  let penaltyMattered = false;
  for (const seed of [8, 9, 10]) {
    const m = tinyModel(seed, vocab, 'float64');
    const src = sources(seed + 30, 3, 4);
    const answers: number[][][] = [];
    for (const alpha of [0, 1, 3]) {
      const found = m.beamDecode(src, { bos: BOS, eos: EOS, beam: 128, maxLen, lengthPenalty: alpha });
      for (let i = 0; i < found.length; i++) {
        const scores = logProb(m, src, i, all, maxLen).map((s, j) => s / penalty(all[j]!, maxLen, alpha));
        const best = Math.max(...scores);
        const mine = logProb(m, src, i, [found[i]!], maxLen)[0]! / penalty(found[i]!, maxLen, alpha);
        assert.ok(Math.abs(mine - best) <= 1e-9, `seed ${seed}, alpha ${alpha}, sentence ${i}: beam found ${mine}, the best is ${best}`);
        assert.deepEqual(found[i], all[scores.indexOf(best)], 'the same sequence (no ties here)');
      }
      answers.push(found);
    }
    if (JSON.stringify(answers[0]) !== JSON.stringify(answers[2])) penaltyMattered = true;
    m.dispose();
  }
  assert.ok(penaltyMattered, 'some best sequence changed with the length penalty (else its check is vacuous)');
}));

test('beamDecode refuses a beam that is not a positive integer and a negative length penalty', () => leakCheck(() => {
  const m = tinyModel(1, 6, 'float32');
  const src = sources(2, 1, 3);
  assert.throws(() => m.beamDecode(src, { bos: BOS, eos: EOS, beam: 0 }), /beam must be a positive integer, got 0/);
  assert.throws(() => m.beamDecode(src, { bos: BOS, eos: EOS, beam: 2.5 }), /beam must be a positive integer/);
  assert.throws(() => m.beamDecode(src, { bos: BOS, eos: EOS, lengthPenalty: -1 }), /lengthPenalty must be at least 0/);
  m.dispose();
}));

test('incremental decoding equals the whole-prefix decoder: every step\'s logits (float64, post- and pre-norm, padding in source and prefix), and greedy decoding', () => leakCheck(() => {
  for (const normFirst of [false, true]) {
    manualSeed(31);
    const model = transformerSeq2Seq({ srcVocab: 9, tgtVocab: 7, dModel: 8, heads: 2, layers: 2, ffn: 16, maxLen: 16, padIdx: PAD, dtype: 'float64', normFirst });
    model.eval();
    const src = sources(32, 3, 5);
    noGrad(() => scope(() => {
      const { memory, srcPad } = model.encode(src);
      const memories = model.decoder.memoryKeysValues(memory);
      // Prefixes with a PAD mid-way in row 1 (a finished beam hypothesis looks like this).
      const prefix = [[BOS, 4, 5, 3, 6, 4], [BOS, 3, EOS, PAD, PAD, PAD], [BOS, 6, 6, 5, 4, 3]];
      let selfs: ReturnType<typeof model.decodeStep>['selfs'] = [];
      for (let t = 0; t < 6; t++) {
        const tgt = tensor(prefix.flatMap((p) => p.slice(0, t + 1)), { dtype: 'int64', shape: [3, t + 1] });
        const step = model.decodeStep(tgt, selfs, memories, srcPad);
        const full = model.decode(tgt, memory, srcPad).select(1, t);
        const err = step.logits.sub(full).abs().max().item();
        assert.ok(err < 1e-12, `normFirst ${normFirst}, step ${t}: incremental logits differ from the full decoder's by ${err}`);
        selfs = step.selfs;
      }
    }));
    // Greedy decoding the slow way: the whole prefix through the decoder at every step.
    const oracle = noGrad(() => scope(() => {
      const { memory, srcPad } = model.encode(src);
      const ys = [[BOS], [BOS], [BOS]];
      const done = [false, false, false];
      for (let t = 0; t < 12 && !done.every(Boolean); t++) {
        const next = model.decode(tensor(ys.flat(), { dtype: 'int64', shape: [3, t + 1] }), memory, srcPad).select(1, t).argmax(-1).toArray();
        ys.forEach((y, i) => {
          y.push(done[i] ? PAD : next[i]!);
          if (next[i] === EOS) done[i] = true;
        });
      }
      return ys.map((y) => { const out = y.slice(1); const e = out.indexOf(EOS); return e < 0 ? out : out.slice(0, e); });
    }));
    assert.deepEqual(model.greedyDecode(src, { bos: BOS, eos: EOS, maxLen: 12 }), oracle, `normFirst ${normFirst}`);
    src.dispose();
    model.dispose();
  }
}));

// Ended sentences leave the decoder batch (their rows' memory, padding and prefix keys and values
// are dropped), and beam search reorders the rows it keeps: each sentence decoded alone is the
// oracle, since rows of one batch never interact.
const EOS_BIAS = 2;
test('batched greedy and beam decoding equal each sentence decoded alone, while sentences end at different steps', () => leakCheck(() => {
  let endedEarly = 0;
  for (const seed of [11, 12, 13, 14, 15, 16, 17, 18]) {
    const m = tinyModel(seed, 8, 'float64');
    // EOS made likelier, so that whole beams end (and leave the batch) at different steps.
    noGrad(() => scope(() => m.generator.bias!.select(0, EOS).add_(EOS_BIAS)));
    const src = sources(seed + 40, 8, 5);
    const maxLen = 12;
    for (const beam of [1, 2, 3, 5]) {
      for (const lengthPenalty of beam === 1 ? [0] : [0, 1]) {
        const batched = beam === 1 ? m.greedyDecode(src, { bos: BOS, eos: EOS, maxLen }) : m.beamDecode(src, { bos: BOS, eos: EOS, beam, maxLen, lengthPenalty });
        const lengths = new Set(batched.map((y) => y.length));
        if (lengths.size > 1 && Math.min(...lengths) < maxLen) endedEarly++;
        for (let i = 0; i < src.size(0); i++) {
          const one = src.narrow(0, i, 1);
          const alone = beam === 1 ? m.greedyDecode(one, { bos: BOS, eos: EOS, maxLen }) : m.beamDecode(one, { bos: BOS, eos: EOS, beam, maxLen, lengthPenalty });
          assert.deepEqual(batched[i], alone[0], `seed ${seed}, beam ${beam}, length penalty ${lengthPenalty}, sentence ${i}`);
        }
      }
    }
    m.dispose();
  }
  assert.ok(endedEarly >= 6, `sentences of one batch ended at different steps in ${endedEarly} searches (else no row ever left the batch)`);
}));
