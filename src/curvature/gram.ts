// Exact per-layer Grams K_l = U_l^T U_l (B x B, float64) and the per-layer choice of method.
// Cost model: each layer reports, for both exact forms (layers.ts), estimated multiply-adds and the
// peak bytes of their work buffers under the memory bound `maxBytes`; the cheaper form that fits is
// used. Materialized gradients are made a chunk of samples at a time; when all of them fit under the
// bound they are kept and K is filled block by block (lower triangle, mirrored), otherwise chunk
// pairs are formed and chunks recomputed (the cost model charges the recomputation). Linear layers
// instead make a block of weight rows for every sample at a time and sum the blocks' Grams: each
// block is made once (a Multi30K output projection has 2M parameters per sample, 1 GB for B = 128
// in float32: sample chunks under the default bound would be made 4.5 times over on average).
// Products run in the model's dtype; every block is cast to float64 before it is accumulated into K.
import { noGrad, scope, zeros, type Tensor } from '../tensor/index.js';
import { gemmNT } from './gemm.js';
import type { LayerCurvature, MethodCost } from './layers.js';

export type GramMethod = 'pairwise' | 'materialize';

export interface GramPlan extends MethodCost {
  name: string;
  kind: string;
  method: GramMethod;
  /** Positions per sample (T). */
  positions: number;
  /** Per-sample parameters covered (weight plus bias). */
  params: number;
  /** The other method's estimate (null: it does not fit under the bound). */
  alternative: MethodCost | null;
}

/** Picks the Gram method of one layer (`force` overrides the cost model). */
export function planGram(l: LayerCurvature, maxBytes: number, force: GramMethod | 'auto' = 'auto'): GramPlan {
  const c = l.costs(maxBytes);
  let method: GramMethod;
  if (force !== 'auto') method = force;
  else if (c.pairwise === null) method = 'materialize';
  else if (c.materialize === null) method = 'pairwise';
  else method = c.pairwise.flops <= c.materialize.flops ? 'pairwise' : 'materialize';
  const cost = c[method];
  if (cost === null) {
    throw new RangeError(
      `curvature: layer '${l.name}' (${l.kind}, ${l.positions} positions, ${l.paramCount} parameters) cannot build its Gram `
      + `by ${method === 'pairwise' ? 'pairwise positions' : 'materialized gradients'} within maxBytes = ${maxBytes}; raise maxBytes`
      + (force === 'auto' ? '' : ' or use method "auto"'),
    );
  }
  const alternative = c[method === 'pairwise' ? 'materialize' : 'pairwise'];
  return { name: l.name, kind: l.kind, method, positions: l.positions, params: l.paramCount, alternative, ...cost };
}

/** K_l in float64 by the planned method. */
export function layerGram(l: LayerCurvature, plan: GramPlan): Tensor {
  noGrad(() => l.prepare(plan.method));
  if (plan.method === 'pairwise') return noGrad(() => pairwiseGram(l, plan.block));
  return noGrad(() => (plan.split === 'rows' ? rowBlockGram(l, plan.block) : materializedGram(l, plan)));
}

/** K = sum over blocks of weight rows of G_r G_r^T (G_r: every sample's gradient of those rows). */
function rowBlockGram(l: LayerCurvature, rows: number): Tensor {
  const total = l.params[0].size(0);
  if (rows >= total) return scope(() => { const g = l.perSampleRows(0, total); return dotRows(g, g); });
  const K = zeros([l.batch, l.batch], { dtype: 'float64', device: l.uses[0]!.delta.device });
  for (let s = 0; s < total; s += rows) {
    scope(() => {
      const g = l.perSampleRows(s, Math.min(rows, total - s));
      K.add_(dotRows(g, g));
    });
  }
  return K;
}

function pairwiseGram(l: LayerCurvature, rows: number): Tensor {
  const b = l.batch;
  // In a scope: the block's float32 and float64 products would otherwise live until the caller's
  // scope ends, every layer's at once (a Multi30K capture's Grams: 2 GB above the bound).
  if (rows >= b) return scope(() => l.pairwiseRows(0, b));
  const K = zeros([b, b], { dtype: 'float64', device: l.uses[0]!.delta.device });
  for (let s = 0; s < b; s += rows) {
    const n = Math.min(rows, b - s);
    scope(() => {
      K.narrow(0, s, n).copy_(l.pairwiseRows(s, n));
    });
  }
  return K;
}

/** Per-sample gradients of a chunk as matrices [count, *] (weight, then bias if any). */
function chunkRows(l: LayerCurvature, start: number, count: number): Tensor[] {
  const g = l.perSample(start, count);
  return g.bias === null ? [g.weight.reshape(count, -1)] : [g.weight.reshape(count, -1), g.bias.reshape(count, -1)];
}

/** sum_k X_k Y_k^T in float64. */
function dotRows(xs: Tensor[], ys: Tensor[]): Tensor {
  let k: Tensor | null = null;
  xs.forEach((x, i) => {
    const p = gemmNT(x, ys[i]!).double();
    k = k === null ? p : k.add(p);
  });
  return k!;
}

function materializedGram(l: LayerCurvature, plan: GramPlan): Tensor {
  const b = l.batch;
  const c = plan.block;
  const starts: number[] = [];
  for (let s = 0; s < b; s += c) starts.push(s);
  const size = (i: number): number => Math.min(c, b - starts[i]!);
  const K = zeros([b, b], { dtype: 'float64', device: l.uses[0]!.delta.device });
  const put = (i: number, j: number, blk: Tensor): void => {
    K.narrow(0, starts[i]!, size(i)).narrow(1, starts[j]!, size(j)).copy_(blk);
    if (i !== j) K.narrow(0, starts[j]!, size(j)).narrow(1, starts[i]!, size(i)).copy_(blk.t());
  };
  const allFit = b * l.paramCount * l.eltBytes <= plan.bytes;
  if (allFit) {
    scope(() => {
      const rows = starts.map((s, i) => chunkRows(l, s, size(i)));
      for (let i = 0; i < rows.length; i++) {
        for (let j = 0; j <= i; j++) scope(() => put(i, j, dotRows(rows[i]!, rows[j]!)));
      }
    });
  } else {
    for (let i = 0; i < starts.length; i++) {
      scope(() => {
        const ri = chunkRows(l, starts[i]!, size(i));
        put(i, i, dotRows(ri, ri));
        for (let j = i + 1; j < starts.length; j++) scope(() => put(i, j, dotRows(ri, chunkRows(l, starts[j]!, size(j)))));
      });
    }
  }
  return K;
}
