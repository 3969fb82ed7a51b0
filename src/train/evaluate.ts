// Evaluation shared by training (each task's `evaluate`), `fngd eval` and `fngd translate`, so the
// three compute the same numbers: accuracy and cross-entropy for images; token cross-entropy,
// decoding and corpus BLEU for translation.
import { BOS, EOS, PAD, detokenize, type BaseBatch, type DataLoader, type ImageBatch, type TranslationBatch, type TranslationDataset } from '../data/index.js';
import { crossEntropyPerSample, type Encoded, type Module, type TransformerSeq2Seq } from '../nn/index.js';
import { noGrad, scope, type Device, type Tensor } from '../tensor/index.js';
import { corpusBleu } from './bleu.js';

/** `t` on `device` (the same tensor when it is there already). */
export function onDevice(t: Tensor, device: Device): Tensor {
  return t.device === device ? t : t.to({ device });
}

/** How translations are decoded. The defaults are what training evaluates with: greedy decoding. */
export interface DecodeOptions {
  /** Hypotheses kept per sentence; 1 (default) is greedy decoding, more is beam search. */
  beam?: number;
  /** GNMT's alpha: beam search ranks its final hypotheses by log P / ((5 + length) / 6)^alpha (default 0). */
  lengthPenalty?: number;
  /** Most tokens generated per sentence (default: the batch's longest source + 10). */
  maxLen?: number;
}

/**
 * Token ids (without BOS and EOS) of each row of `src` [B, S], whose sources have `srcLengths` ids.
 * `encoded`: the model's `encode(src)` in eval mode, when the caller has it already.
 */
export function translateBatch(model: TransformerSeq2Seq, src: Tensor, srcLengths: ArrayLike<number>, o: DecodeOptions = {}, encoded?: Encoded): number[][] {
  const maxLen = o.maxLen ?? Math.max(...Array.from(srcLengths)) + 10;
  const beam = o.beam ?? 1;
  // beamDecode with a beam of 1 is greedy decoding exactly; greedyDecode gets there cheaper.
  if (beam === 1) return model.greedyDecode(src, { bos: BOS, eos: EOS, maxLen, encoded });
  return model.beamDecode(src, { bos: BOS, eos: EOS, beam, maxLen, lengthPenalty: o.lengthPenalty, encoded });
}

/** Told after each evaluation batch how many are done of how many (a progress bar's update). */
export type OnEvalBatch = (done: number, total: number) => void;

/**
 * `fn` on every batch of `loader` in order (epoch 0 of an evaluation loader reads every sample once),
 * one scope each, the model in eval mode without autograd; its previous mode is restored after.
 */
export function eachEvalBatch<B extends BaseBatch>(model: Module, loader: DataLoader<B>, fn: (b: B) => void, onBatch?: OnEvalBatch): void {
  const wasTraining = model.training;
  model.eval();
  try {
    noGrad(() => {
      const ep = loader.epoch(0);
      for (let k = 0; k < ep.length; k++) {
        scope(() => fn(ep.batch(k)));
        onBatch?.(k + 1, ep.length);
      }
    });
  } finally {
    model.train(wasTraining);
  }
}

/** Accuracy and mean cross-entropy of a classifier over a loader, in eval mode without autograd. */
export function evaluateImages(model: Module & { forward(x: Tensor): Tensor }, loader: DataLoader<ImageBatch>, device: Device, onBatch?: OnEvalBatch): Record<string, number> {
  let correct = 0;
  let lossSum = 0;
  let n = 0;
  eachEvalBatch(model, loader, (b) => {
    const y = onDevice(b.y, device);
    const logits = model.forward(onDevice(b.x, device));
    lossSum += crossEntropyPerSample(logits, y).sum().item();
    correct += logits.argmax(1).eq(y).sum().item();
    n += b.ids.length;
  }, onBatch);
  return { loss: lossSum / n, accuracy: correct / n, metric: correct / n };
}

/** What `evaluateTranslation` decodes besides the teacher-forced loss, and whom it tells. */
export interface TranslationEvalOptions {
  /** How the metric's translations are decoded (default: greedy, as training evaluates). */
  decode?: DecodeOptions;
  /** Also decode with this beam and length penalty, reported as `bleu_beamN` beside the metric. */
  beamEval?: Required<Pick<DecodeOptions, 'beam' | 'lengthPenalty'>>;
  onBatch?: OnEvalBatch;
}

/**
 * Token-averaged cross-entropy (teacher forced) and corpus BLEU of the decoded translations over a
 * loader of a TranslationDataset, in eval mode without autograd. The vocabulary is lower-cased
 * when the dataset is, so the references are lower-cased too (BLEU is then case-insensitive).
 */
export function evaluateTranslation(
  model: TransformerSeq2Seq, loader: DataLoader<TranslationBatch>, device: Device, { decode = {}, beamEval, onBatch }: TranslationEvalOptions = {},
): Record<string, number> {
  const data = loader.dataset as TranslationDataset;
  const hyps: string[] = [];
  const beamHyps: string[] = [];
  const refs: string[] = [];
  let lossSum = 0;
  let tokens = 0;
  const text = (ids: number[]): string => detokenize(data.tgtVocab.decode(ids));
  eachEvalBatch(model, loader, (b) => {
    const src = onDevice(b.src, device);
    // One encoder pass for the teacher-forced loss and the decodings (forward = encode + decode).
    const encoded = model.encode(src);
    const logits = model.decode(onDevice(b.tgtIn, device), encoded.memory, encoded.srcPad);
    lossSum += crossEntropyPerSample(logits, onDevice(b.tgtOut, device), { ignoreIndex: PAD }).sum().item();
    tokens += b.numTgtTokens;
    for (const [j, ids] of translateBatch(model, src, b.srcLengths, decode, encoded).entries()) {
      hyps.push(text(ids));
      const ref = data.tgtText[b.ids[j]!]!;
      refs.push(data.lowercase ? ref.toLowerCase() : ref);
    }
    if (beamEval !== undefined) for (const ids of translateBatch(model, src, b.srcLengths, { ...decode, ...beamEval }, encoded)) beamHyps.push(text(ids));
  }, onBatch);
  const bleu = corpusBleu(hyps, refs).score;
  const beam = beamEval === undefined ? {} : { [`bleu_beam${beamEval.beam}`]: corpusBleu(beamHyps, refs).score };
  return { loss: lossSum / tokens, bleu, ...beam, metric: bleu };
}
