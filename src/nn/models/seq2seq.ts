// An encoder-decoder Transformer for translation (the Multi30K setup of PyTorch's tutorial):
// token embeddings scaled by sqrt(dModel) plus sinusoidal positions, dropout, a post-norm encoder
// and decoder (each with a final LayerNorm, as torch.nn.Transformer), and an UNTIED output
// projection 'generator' (a Linear of its own: simpler for per-layer curvature, and the tutorial's
// choice). Every parameter with 2+ dimensions is re-drawn xavier_uniform (as the tutorial and
// nn.Transformer do; the split q/k/v projections use the packed [3E, E] fans, PyTorch's bound),
// then the PAD embedding rows are zeroed. Keys equal to `padIdx` are masked in every attention.
import { noGrad, scope, tensor, type Tensor } from '../../tensor/index.js';
import { causalMask } from '../attention.js';
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

  private embed(e: Embedding, tokens: Tensor): Tensor {
    const t = tokens.size(1);
    if (t > this.maxLen) throw new RangeError(`TransformerSeq2Seq: sequence length ${t} exceeds maxLen ${this.maxLen}`);
    const pos = this.buffer('pos_encoding').narrow(0, 0, t);
    return this.dropout.forward(e.forward(tokens).mul(Math.sqrt(this.dModel)).add(pos));
  }

  /** src [B, S] int64 -> memory [B, S, E] and its padding mask [B, S]. */
  encode(src: Tensor): { memory: Tensor; srcPad: Tensor } {
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

  /**
   * Greedy decoding in eval mode without gradients (training flags are restored afterwards). Returns,
   * per source row, the generated token ids after BOS, up to but excluding EOS, at most `maxLen`
   * tokens (default: what the positional table allows).
   */
  greedyDecode(src: Tensor, o: { bos: number; eos: number; maxLen?: number }): number[][] {
    const flags = this.modules().map((m) => [m, m.training] as const);
    this.eval();
    try {
      return noGrad(() => scope(() => {
        const b = src.size(0);
        const limit = Math.min(o.maxLen ?? this.maxLen - 1, this.maxLen - 1);
        const { memory, srcPad } = this.encode(src);
        const ys: number[][] = Array.from({ length: b }, () => [o.bos]);
        const done = new Array<boolean>(b).fill(false);
        for (let step = 0; step < limit && !done.every(Boolean); step++) {
          const next = scope(() => {
            const tgt = tensor(ys.flat(), { dtype: 'int64', shape: [b, step + 1], device: src.device });
            return this.decode(tgt, memory, srcPad).select(1, step).argmax(-1).toArray();
          });
          for (let i = 0; i < b; i++) {
            if (done[i]) {
              ys[i]!.push(this.padIdx);
            } else {
              ys[i]!.push(next[i]!);
              if (next[i] === o.eos) done[i] = true;
            }
          }
        }
        return ys.map((y) => {
          const out = y.slice(1);
          const e = out.indexOf(o.eos);
          return e < 0 ? out : out.slice(0, e);
        });
      }));
    } finally {
      for (const [m, t] of flags) m.training = t;
    }
  }
}

export function transformerSeq2Seq(o: Seq2SeqOptions): TransformerSeq2Seq {
  return new TransformerSeq2Seq(o);
}
