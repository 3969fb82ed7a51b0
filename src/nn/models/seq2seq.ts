// An encoder-decoder Transformer for translation (the Multi30K setup of PyTorch's tutorial):
// token embeddings scaled by sqrt(dModel) plus sinusoidal positions, dropout, a post-norm encoder
// and decoder (each with a final LayerNorm, as torch.nn.Transformer), and an UNTIED output
// projection 'generator' (a Linear of its own: simpler for per-layer curvature, and the tutorial's
// choice). Every parameter with 2+ dimensions is re-drawn xavier_uniform (as the tutorial and
// nn.Transformer do; the split q/k/v projections use the packed [3E, E] fans, PyTorch's bound),
// then the PAD embedding rows are zeroed. Keys equal to `padIdx` are masked in every attention.
import { noGrad, scope, tensor, type Tensor } from '../../tensor/index.js';
import { causalMask, type KeysValues } from '../attention.js';
import { Dropout } from '../basic.js';
import { fans, initTensor, uniform_, xavierUniformBound, type InitOptions } from '../init.js';
import { Embedding, Linear } from '../linear.js';
import { Module } from '../module.js';
import { TransformerDecoder, TransformerEncoder } from '../transformer.js';

export interface Seq2SeqOptions extends InitOptions {
  srcVocab: number;
  tgtVocab: number;
  dModel?: number;
  heads?: number;
  /** Encoder and decoder layers each (default 3). */
  layers?: number;
  /** Feed-forward width (default 512). */
  ffn?: number;
  dropout?: number;
  /** Longest sequence the positional table covers (default 256). */
  maxLen?: number;
  padIdx?: number;
  normFirst?: boolean;
}

/** Sinusoidal positions [maxLen, d]: even columns sin(p w_i), odd columns cos(p w_i), w_i = 10000^(-2i/d). */
export function sinusoidalPositions(maxLen: number, d: number): Float64Array {
  if (d % 2 !== 0) throw new RangeError(`sinusoidalPositions: dModel must be even, got ${d}`);
  const pe = new Float64Array(maxLen * d);
  for (let i = 0; i < d / 2; i++) {
    const w = Math.exp(-(2 * i) * Math.log(10000) / d);
    for (let p = 0; p < maxLen; p++) {
      pe[p * d + 2 * i] = Math.sin(p * w);
      pe[p * d + 2 * i + 1] = Math.cos(p * w);
    }
  }
  return pe;
}

/** The encoder's output for a source batch: memory [B, S, E] and the source padding mask [B, S]. */
export interface Encoded {
  memory: Tensor;
  srcPad: Tensor;
}

export class TransformerSeq2Seq extends Module {
  readonly dModel: number;
  readonly padIdx: number;
  readonly maxLen: number;
  readonly srcEmbed: Embedding;
  readonly tgtEmbed: Embedding;
  readonly encoder: TransformerEncoder;
  readonly decoder: TransformerDecoder;
  readonly generator: Linear;
  private readonly dropout: Dropout;

  constructor(o: Seq2SeqOptions) {
    super();
    const d = this.dModel = o.dModel ?? 512;
    const heads = o.heads ?? 8;
    const layers = o.layers ?? 3;
    this.padIdx = o.padIdx ?? 0;
    this.maxLen = o.maxLen ?? 256;
    const lo = { ...o, dimFeedforward: o.ffn ?? 512, dropout: o.dropout ?? 0.1, normFirst: o.normFirst ?? false };
    this.srcEmbed = this.registerModule('src_embed', new Embedding(o.srcVocab, d, { ...o, paddingIdx: this.padIdx }));
    this.tgtEmbed = this.registerModule('tgt_embed', new Embedding(o.tgtVocab, d, { ...o, paddingIdx: this.padIdx }));
    this.encoder = this.registerModule('encoder', new TransformerEncoder(d, heads, layers, lo));
    this.decoder = this.registerModule('decoder', new TransformerDecoder(d, heads, layers, lo));
    this.generator = this.registerModule('generator', new Linear(d, o.tgtVocab, o));
    this.dropout = this.registerModule('dropout', new Dropout(lo.dropout));
    const pe = sinusoidalPositions(this.maxLen, d);
    this.registerBuffer('pos_encoding', initTensor([this.maxLen, d], o, (t) => t.copy_(tensor(pe, { shape: [this.maxLen, d], dtype: 'float64' }))), { persistent: false });

    for (const [name, p] of this.namedParameters()) {
      if (p.dim < 2) continue;
      const [fi, fo] = /[qkv]_proj\.weight$/.test(name) ? [d, 3 * d] : fans(p.shape);
      uniform_(p, xavierUniformBound(fi, fo), o.generator ?? null);
    }
    noGrad(() => scope(() => {
      this.srcEmbed.weight.select(0, this.padIdx).zero_();
      this.tgtEmbed.weight.select(0, this.padIdx).zero_();
    }));
  }

  /** Embeddings of tokens [B, T] at positions start..start + T - 1 (scaled, plus positions, dropout). */
  private embed(e: Embedding, tokens: Tensor, start = 0): Tensor {
    const t = tokens.size(1);
    if (start + t > this.maxLen) throw new RangeError(`TransformerSeq2Seq: sequence length ${start + t} exceeds maxLen ${this.maxLen}`);
    const pos = this.buffer('pos_encoding').narrow(0, start, t);
    return this.dropout.forward(e.forward(tokens).mul(Math.sqrt(this.dModel)).add(pos));
  }

  /** src [B, S] int64 -> memory [B, S, E] and its padding mask [B, S]. */
  encode(src: Tensor): Encoded {
    const srcPad = src.eq(this.padIdx);
    return { memory: this.encoder.forward(this.embed(this.srcEmbed, src), { srcKeyPaddingMask: srcPad }), srcPad };
  }

  /** tgtIn [B, T] int64 (starting with BOS) -> logits [B, T, tgtVocab]. */
  decode(tgtIn: Tensor, memory: Tensor, srcPad: Tensor): Tensor {
    const y = this.decoder.forward(this.embed(this.tgtEmbed, tgtIn), memory, {
      tgtMask: causalMask(tgtIn.size(1), tgtIn.device),
      tgtKeyPaddingMask: tgtIn.eq(this.padIdx),
      memoryKeyPaddingMask: srcPad,
    });
    return this.generator.forward(y);
  }

  /** Teacher-forced logits [B, T, tgtVocab] for src [B, S] and tgtIn [B, T] (PAD-padded int64). */
  forward(src: Tensor, tgtIn: Tensor): Tensor {
    const { memory, srcPad } = this.encode(src);
    return this.decode(tgtIn, memory, srcPad);
  }

  /** `fn` in eval mode without gradients; every module's training flag is restored afterwards. */
  private inference<T>(fn: () => T): T {
    const flags = this.modules().map((m) => [m, m.training] as const);
    this.eval();
    try {
      return noGrad(() => scope(fn));
    } finally {
      for (const [m, t] of flags) m.training = t;
    }
  }

  /** `encoded` when given (checked against `src`), else `encode(src)`. */
  private encodedFor(src: Tensor, encoded: Encoded | undefined): Encoded {
    if (encoded === undefined) return this.encode(src);
    if (encoded.memory.size(0) !== src.size(0) || encoded.srcPad.size(0) !== src.size(0) || encoded.srcPad.size(1) !== src.size(1)) {
      throw new RangeError(`TransformerSeq2Seq: encoded memory [${encoded.memory.shape}] and padding [${encoded.srcPad.shape}] are not those of src [${src.shape}]`);
    }
    return encoded;
  }

  /** The most tokens a decoder may generate: `maxLen` capped by the positional table (BOS takes one row). */
  private decodeLimit(maxLen: number | undefined): number {
    return Math.min(maxLen ?? this.maxLen - 1, this.maxLen - 1);
  }

  /**
   * Greedy decoding in eval mode without gradients (training flags are restored afterwards). Returns,
   * per source row, the generated token ids after BOS, up to but excluding EOS, at most `maxLen`
   * tokens (default: what the positional table allows). `encoded`: `encode(src)` made in eval mode,
   * when the caller has it already (evaluation does, for the loss), so the encoder is not run again.
   */
  greedyDecode(src: Tensor, o: { bos: number; eos: number; maxLen?: number; encoded?: Encoded }): number[][] {
    return this.inference(() => {
      const limit = this.decodeLimit(o.maxLen);
      const { memory, srcPad } = this.encodedFor(src, o.encoded);
      const ys: number[][] = Array.from({ length: src.size(0) }, () => [o.bos]);
      // Row j of the decoder batch decodes sentence live[j]; a sentence leaves at its EOS.
      let live = ys.map((_, i) => i);
      const rows = new DecoderRows(this.decoder.memoryKeysValues(memory), srcPad);
      try {
        for (let step = 0; step < limit && live.length > 0; step++) {
          const r = scope(() => {
            const tgt = tensor(live.flatMap((i) => ys[i]!), { dtype: 'int64', shape: [live.length, step + 1], device: src.device });
            const { logits, selfs } = this.decodeStep(tgt, rows.selfs, rows.memories, rows.srcPad);
            return { next: logits.argmax(-1).toArray(), selfs };
          });
          live.forEach((i, j) => ys[i]!.push(r.next[j]!));
          const keep = live.flatMap((_, j) => (r.next[j] === o.eos ? [] : [j]));
          const shrinks = keep.length < live.length;
          rows.advance(r.selfs, shrinks ? keep : null, shrinks ? keep : null);
          if (shrinks) live = keep.map((j) => live[j]!);
        }
      } finally {
        rows.dispose();
      }
      return ys.map((y) => untilEos(y, o.eos));
    });
  }

  /**
   * One step of incremental decoding: the next-token logits [B, vocab] after the prefixes `tgt`
   * [B, t + 1] (PAD-padded int64, starting with BOS), equal to `decode(tgt, ...)`'s last row, from
   * the decoder's keys and values of positions < t (`selfs`, empty at t = 0) and of the memory
   * (`memories`: decoder.memoryKeysValues). Returns the keys and values extended by position t.
   * Greedy and beam search run one of these per token instead of the whole prefix again.
   */
  decodeStep(tgt: Tensor, selfs: readonly KeysValues[], memories: readonly KeysValues[], srcPad: Tensor): { logits: Tensor; selfs: KeysValues[] } {
    const t = tgt.size(1) - 1;
    const r = this.decoder.step(this.embed(this.tgtEmbed, tgt.narrow(1, t, 1), t), selfs, memories, tgt.eq(this.padIdx), srcPad);
    return { logits: this.generator.forward(r.out).select(1, 0), selfs: r.selfs };
  }

  /**
   * Beam search, batched over the source rows (the encoder runs once; each sentence's `beam`
   * hypotheses are rows of one decoder batch). Returns what `greedyDecode` returns.
   *
   * Each step keeps, per sentence, the `beam` best hypotheses by log-probability log P(y|x) among
   * every one-token extension of the live ones; a hypothesis that emitted EOS is finished and keeps
   * its slot and score (it competes with the live ones, so a beam of 1 is greedy decoding exactly).
   * A sentence's search ends when all its hypotheses are finished (it then leaves the batch: every
   * later step would keep them as they are) or after `maxLen` tokens (unfinished ones end there, as
   * in greedy decoding). The answer is the best of the final hypotheses by GNMT's length-normalized
   * score log P(y|x) / ((5 + |y|) / 6)^alpha (Wu et al. 2016), |y| counting the EOS, alpha =
   * `lengthPenalty` (default 0: the plain log-probability). Scores are summed in float64, so the
   * ranking of float32 logits is kept.
   */
  beamDecode(src: Tensor, o: { bos: number; eos: number; beam?: number; maxLen?: number; lengthPenalty?: number; encoded?: Encoded }): number[][] {
    const k = o.beam ?? 4;
    const alpha = o.lengthPenalty ?? 0;
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`beamDecode: beam must be a positive integer, got ${k}`);
    if (!(alpha >= 0)) throw new RangeError(`beamDecode: lengthPenalty must be at least 0, got ${alpha}`);
    return this.inference(() => {
      const b = src.size(0);
      const limit = this.decodeLimit(o.maxLen);
      const device = src.device;
      const encoded = this.encodedFor(src, o.encoded);
      // Row r of the decoder batch is hypothesis r % k of sentence live[floor(r / k)].
      let live = Array.from({ length: b }, (_, i) => i);
      const sentenceOf = tensor(Int32Array.from({ length: b * k }, (_, r) => Math.floor(r / k)), { dtype: 'int64', device });
      const rows = new DecoderRows(this.decoder.memoryKeysValues(encoded.memory.indexSelect(0, sentenceOf)), encoded.srcPad.indexSelect(0, sentenceOf));
      const vocab = this.generator.weight.size(0);
      // A finished hypothesis's one extension: PAD at log-probability 0 (its score unchanged).
      const padOnly = tensor(Float64Array.from({ length: vocab }, (_, v) => (v === this.padIdx ? 0 : -Infinity)), { shape: [1, vocab], device });
      let ys: number[][] = Array.from({ length: b * k }, () => [o.bos]);
      // Only hypothesis 0 of each sentence starts live: k copies of BOS would fill the beam with duplicates.
      let scores = Float64Array.from({ length: b * k }, (_, r) => (r % k === 0 ? 0 : -Infinity));
      let lengths = new Int32Array(b * k);
      let finished = new Array<boolean>(b * k).fill(false);
      const over = (r: number): boolean => finished[r]! || scores[r] === -Infinity;
      const penalty = (len: number): number => ((5 + len) / 6) ** alpha;
      /** The best final hypothesis of the sentence in batch position s. */
      const answer = (s: number): number[] => {
        let pick = s * k;
        for (let r = s * k + 1; r < (s + 1) * k; r++) {
          if (scores[r]! / penalty(lengths[r]!) > scores[pick]! / penalty(lengths[pick]!)) pick = r;
        }
        return untilEos(ys[pick]!, o.eos);
      };
      const answers: number[][] = new Array<number[]>(b);
      try {
        for (let step = 0; step < limit && live.length > 0; step++) {
          const n = live.length * k;
          const { best, at, extended } = scope(() => {
            const tgt = tensor(ys.flat(), { dtype: 'int64', shape: [n, step + 1], device });
            const { logits, selfs } = this.decodeStep(tgt, rows.selfs, rows.memories, rows.srcPad);
            const logp = logits.to('float64').logSoftmax(-1);
            const liveRows = tensor(finished.map((f) => !f), { dtype: 'bool', shape: [n, 1], device });
            const total = logp.where(liveRows, padOnly).add(tensor(scores, { shape: [n, 1], device }));
            const [v, i] = total.view([live.length, k * vocab]).topk(k, -1);
            return { best: v.toArray(), at: i.toArray(), extended: selfs };
          });
          const parents = Array.from({ length: n }, (_, r) => Math.floor(r / k) * k + Math.floor(at[r]! / vocab));
          const next = { ys: [] as number[][], scores: new Float64Array(n), lengths: new Int32Array(n), finished: [] as boolean[] };
          for (let r = 0; r < n; r++) {
            const parent = parents[r]!;
            const token = at[r]! % vocab;
            const wasFinished = finished[parent]!;
            next.ys.push([...ys[parent]!, wasFinished ? this.padIdx : token]);
            next.scores[r] = best[r]!;
            next.lengths[r] = lengths[parent]! + (wasFinished ? 0 : 1);
            next.finished.push(wasFinished || token === o.eos);
          }
          ({ ys, scores, lengths, finished } = next);
          // Sentences whose hypotheses have all ended give their answer and leave the batch.
          const staying: number[] = [];
          for (let s = 0; s < live.length; s++) {
            let ended = true;
            for (let r = s * k; r < (s + 1) * k && ended; r++) ended = over(r);
            if (ended) answers[live[s]!] = answer(s);
            else staying.push(s);
          }
          if (staying.length === live.length) {
            rows.advance(extended, parents, null);
          } else {
            const keep = staying.flatMap((s) => Array.from({ length: k }, (_, h) => s * k + h));
            rows.advance(extended, keep.map((r) => parents[r]!), keep);
            ({ ys, scores, lengths, finished } = {
              ys: keep.map((r) => ys[r]!), scores: Float64Array.from(keep, (r) => scores[r]!),
              lengths: Int32Array.from(keep, (r) => lengths[r]!), finished: keep.map((r) => finished[r]!),
            });
            live = staying.map((s) => live[s]!);
          }
        }
        // Sentences still searching at the length limit end there.
        live.forEach((i, s) => {
          answers[i] = answer(s);
        });
      } finally {
        rows.dispose();
      }
      return answers;
    });
  }
}

/**
 * The decoder batch's per-row state while decoding: the memory's keys and values and its padding
 * (fixed per sentence) and the keys and values of each row's prefix. Rows of ended sentences leave,
 * so later steps cost only what the unfinished ones need: before, a batch ran until its longest
 * output ended, and on a trained Multi30K model 3/4 of a beam search's row-steps were rows of
 * sentences already done.
 */
class DecoderRows {
  selfs: KeysValues[] = [];
  memories: KeysValues[];
  /** A [rows, S] mask; replaced ones are left to the decoding's scope (they are small). */
  srcPad: Tensor;

  constructor(memories: KeysValues[], srcPad: Tensor) {
    this.memories = memories;
    this.srcPad = srcPad;
  }

  /**
   * Takes a step's extended prefix keys and values: new row j is row `from[j]` of `extended` (null:
   * row j, and then no row leaves), and only the memory rows `keep` stay (null: all of them). One
   * index tensor per distinct list (greedy decoding passes the same one twice).
   */
  advance(extended: KeysValues[], from: number[] | null, keep: number[] | null): void {
    disposeKeysValues(this.selfs);
    if (from === null) {
      this.selfs = extended;
      return;
    }
    const next = scope(() => {
      const index = (rows: number[]): Tensor => tensor(Int32Array.from(rows), { dtype: 'int64', device: this.srcPad.device });
      const fromIndex = index(from);
      const keepIndex = keep === null ? null : keep === from ? fromIndex : index(keep);
      return {
        selfs: selectRows(extended, fromIndex),
        left: keepIndex === null ? null : { memories: selectRows(this.memories, keepIndex), srcPad: this.srcPad.indexSelect(0, keepIndex) },
      };
    });
    disposeKeysValues(extended);
    this.selfs = next.selfs;
    if (next.left !== null) {
      disposeKeysValues(this.memories);
      this.memories = next.left.memories;
      this.srcPad = next.left.srcPad;
    }
  }

  dispose(): void {
    disposeKeysValues(this.selfs);
    disposeKeysValues(this.memories);
  }
}

/** Rows `index` (int64) of every layer's keys and values, as new tensors. */
function selectRows(kvs: readonly KeysValues[], index: Tensor): KeysValues[] {
  return kvs.map((e) => ({ k: e.k.indexSelect(0, index), v: e.v.indexSelect(0, index) }));
}

function disposeKeysValues(kvs: readonly KeysValues[]): void {
  for (const kv of kvs) {
    kv.k.dispose();
    kv.v.dispose();
  }
}

/** The tokens after BOS, up to but excluding the first EOS. */
function untilEos(y: number[], eos: number): number[] {
  const out = y.slice(1);
  const e = out.indexOf(eos);
  return e < 0 ? out : out.slice(0, e);
}

export function transformerSeq2Seq(o: Seq2SeqOptions): TransformerSeq2Seq {
  return new TransformerSeq2Seq(o);
}
