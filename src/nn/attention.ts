// Multi-head attention with the math of torch.nn.MultiheadAttention (batch-first layout).
//
// One difference in layout, none in math: PyTorch packs the query/key/value projections into one
// `in_proj_weight` [3E, E] (+ `in_proj_bias`); here they are three Linear children q_proj, k_proj,
// v_proj, so that each is an ordinary (tappable) Linear for the curvature code. A PyTorch state dict
// converts by splitting in_proj_weight/in_proj_bias into three row blocks (q, k, v in that order);
// see `fromTorchAttentionKeys`. The init matches PyTorch draw for draw: out_proj's default Linear
// init, then xavier_uniform over the packed [3E, E] matrix (q, k, v rows), zero biases.
import { noGrad, ones, scope, type Tensor } from '../tensor/index.js';
import { uniform_, xavierUniformBound, type InitOptions } from './init.js';
import { Dropout } from './basic.js';
import { Linear } from './linear.js';
import { Module } from './module.js';

export interface MultiheadAttentionOptions extends InitOptions {
  /** Dropout on the attention weights in training mode (default 0). */
  dropout?: number;
  /** Biases on the projections (default true). */
  bias?: boolean;
}

/** Projected keys and values, [B, H, S, headDim] each. */
export interface KeysValues {
  k: Tensor;
  v: Tensor;
}

export interface AttentionMasks {
  /** [B, S] bool (true = this key is padding and is ignored) or float (added to the scores). */
  keyPaddingMask?: Tensor | null;
  /**
   * [L, S] or [B*H, L, S]: bool (true = may not attend) or float (added to the scores, -inf to
   * block). Rows that end up fully blocked give NaN, as in PyTorch.
   */
  attnMask?: Tensor | null;
}

/** A [T, T] bool mask, true above the diagonal: position t may attend to positions <= t only. */
export function causalMask(t: number, device?: string): Tensor {
  return noGrad(() => scope(() => ones([t, t], { dtype: 'bool', device }).triu(1)));
}

/** bool/uint8 masks block (true = -inf), float masks are added. */
function applyMask(scores: Tensor, m: Tensor): Tensor {
  if (m.dtype === 'bool') return scores.maskedFill(m, -Infinity);
  if (m.dtype === 'uint8') return scores.maskedFill(m.bool(), -Infinity);
  return scores.add(m);
}

export class MultiheadAttention extends Module {
  readonly headDim: number;
  readonly dropoutP: number;
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly outProj: Linear;
  private readonly attnDrop: Dropout;

  constructor(readonly embedDim: number, readonly numHeads: number, o: MultiheadAttentionOptions = {}) {
    super();
    if (embedDim % numHeads !== 0) throw new RangeError(`MultiheadAttention: embedDim ${embedDim} not divisible by numHeads ${numHeads}`);
    this.headDim = embedDim / numHeads;
    this.dropoutP = o.dropout ?? 0;
    const bias = o.bias ?? true;
    // PyTorch's order of random draws: out_proj (Linear default), then the packed in-projection.
    const outProj = new Linear(embedDim, embedDim, { ...o, bias });
    const proj = (name: string) => this.registerModule(name, new Linear(embedDim, embedDim, { ...o, bias, init: false }));
    this.qProj = proj('q_proj');
    this.kProj = proj('k_proj');
    this.vProj = proj('v_proj');
    this.outProj = this.registerModule('out_proj', outProj);
    this.attnDrop = this.registerModule('attn_drop', new Dropout(this.dropoutP));
    const bound = xavierUniformBound(embedDim, 3 * embedDim);
    for (const l of [this.qProj, this.kProj, this.vProj]) uniform_(l.weight, bound, o.generator ?? null);
    noGrad(() => outProj.bias?.zero_());
  }

  /** query [B, L, E], key/value [B, S, E] (default: the query) -> [B, L, E]. */
  forward(query: Tensor, key: Tensor = query, value: Tensor = key, masks: AttentionMasks = {}): Tensor {
    return this.attend(query, key, value, masks, false).output;
  }

  /** Like forward, also returning the attention weights averaged over heads, [B, L, S]. */
  forwardWithWeights(query: Tensor, key: Tensor = query, value: Tensor = key, masks: AttentionMasks = {}): { output: Tensor; weights: Tensor } {
    const r = this.attend(query, key, value, masks, true);
    return { output: r.output, weights: r.weights! };
  }

  /**
   * The projected keys and values [B, H, S, d] of key/value [B, S, E]: what a decoder caches (its
   * memory's once, its own positions' one step at a time) to attend without projecting them again.
   */
  keysValues(key: Tensor, value: Tensor = key): KeysValues {
    if (key.dim !== 3 || value.dim !== 3) throw new RangeError(`MultiheadAttention: expected batch-first [B, S, E] keys and values, got [${key.shape}], [${value.shape}]`);
    return { k: this.heads(this.kProj.forward(key)), v: this.heads(this.vProj.forward(value)) };
  }

  /** query [B, L, E] attending to projected keys and values (`keysValues`) -> [B, L, E]. */
  attendTo(query: Tensor, kv: KeysValues, masks: AttentionMasks = {}): Tensor {
    if (query.dim !== 3) throw new RangeError(`MultiheadAttention: expected a batch-first [B, L, E] query, got [${query.shape}]`);
    return this.attendProjected(this.queries(query), kv, masks, false).output;
  }

  /** [B, n, E] -> [B, H, n, d]. */
  private heads(x: Tensor): Tensor {
    return x.view(x.size(0), x.size(1), this.numHeads, this.headDim).transpose(1, 2);
  }

  /** The scaled projected queries [B, H, L, d]. */
  private queries(query: Tensor): Tensor {
    return this.heads(this.qProj.forward(query)).div(Math.sqrt(this.headDim));
  }

  private attend(query: Tensor, key: Tensor, value: Tensor, masks: AttentionMasks, needWeights: boolean): { output: Tensor; weights: Tensor | null } {
    if (query.dim !== 3 || key.dim !== 3 || value.dim !== 3) {
      throw new RangeError(`MultiheadAttention: expected batch-first [B, L, E] inputs, got [${query.shape}], [${key.shape}], [${value.shape}]`);
    }
    // Queries first: the projections run (and a curvature engine's taps see them) in q, k, v order.
    const q = this.queries(query);
    return this.attendProjected(q, this.keysValues(key, value), masks, needWeights);
  }

  /** q [B, H, L, d] (scaled) attending to k, v [B, H, S, d]. */
  private attendProjected(q: Tensor, { k, v }: KeysValues, masks: AttentionMasks, needWeights: boolean): { output: Tensor; weights: Tensor | null } {
    const [b, h, l] = q.shape as [number, number, number, number];
    const s = k.size(2);
    if (k.size(0) !== b || v.size(0) !== b || v.size(2) !== s) {
      throw new RangeError(`MultiheadAttention: query batch ${b} against keys [${k.shape}] and values [${v.shape}] (projected [B, H, S, d]): batches and lengths must agree`);
    }
    let scores = q.matmul(k.transpose(-2, -1)); // [B, H, L, S]
    const am = masks.attnMask ?? null;
    if (am !== null) {
      const m = am.dim === 2 ? am : am.view(b, h, l, s);
      scores = applyMask(scores, m);
    }
    const kpm = masks.keyPaddingMask ?? null;
    if (kpm !== null) {
      if (kpm.dim !== 2 || kpm.size(0) !== b || kpm.size(1) !== s) {
        throw new RangeError(`MultiheadAttention: keyPaddingMask must be [${b}, ${s}], got [${kpm.shape}]`);
      }
      scores = applyMask(scores, kpm.view(b, 1, 1, s));
    }
    let attn = scores.softmax(-1);
    const probs = attn;
    if (this.training && this.dropoutP > 0) attn = this.attnDrop.forward(attn);
    const out = attn.matmul(v).transpose(1, 2).reshape(b, l, this.embedDim);
    return { output: this.outProj.forward(out), weights: needWeights ? probs.mean(1) : null };
  }
}

/**
 * Renames a PyTorch state dict's attention entries to this layout: for every prefix that has
 * `in_proj_weight`/`in_proj_bias`, yields `q_proj`, `k_proj`, `v_proj` weights/biases (row blocks).
 * Other entries pass through. The new tensors are views of the old ones.
 */
export function fromTorchAttentionKeys(sd: Map<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, t] of sd) {
    const m = /^(.*?)in_proj_(weight|bias)$/.exec(k);
    if (m === null) {
      out.set(k, t);
      continue;
    }
    const [qt, kt, vt] = t.chunk(3, 0) as [Tensor, Tensor, Tensor];
    out.set(`${m[1]}q_proj.${m[2]}`, qt);
    out.set(`${m[1]}k_proj.${m[2]}`, kt);
    out.set(`${m[1]}v_proj.${m[2]}`, vt);
  }
  return out;
}
