// The curvature engine and the sample-space methods on a tiny encoder-decoder Transformer, against
// brute force in float64. The batch has sentences of different lengths padded with PAD, and the
// per-sample loss is the multi30k-transformer task's: the sum of sentence i's token losses (label
// smoothing on, PAD targets ignored) times B / (target tokens in the batch).
// The oracle runs each sentence ALONE, unpadded, through the model and back-propagates its loss:
// B separate forwards and backwards that never see a PAD position or another sentence. From these
// per-sample gradients U it forms every layer's Gram, the dense float64 NGD and iEF solves, and the
// logit-gradient norms by their definitions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CurvatureEngine, layerGram, planGram, type Capture } from '../src/curvature/index.js';
import { crossEntropyPerSample, Embedding, Linear, Module, transformerSeq2Seq, type TransformerSeq2Seq } from '../src/nn/index.js';
import { SGD } from '../src/optim/index.js';
import { ief, ngd, rightHandSide, type SampleSpacePreconditioner } from '../src/precondition/index.js';
import { cat, eye, grad, linalg, manualSeed, scope, stack, tensor, zeros, type Tensor } from '../src/tensor/index.js';
import { assertRelClose as close, leakCheck } from './helpers.js';

const f64 = { dtype: 'float64' as const };
const PAD = 0;
const BOS = 1;
const EOS = 2;
const SMOOTHING = 0.1;
const DAMPING = 0.1;

/** Sentences of lengths 5, 2, 4, 3 (source) and 3, 5, 1, 4 words (target), token ids >= 3. */
const SRC = [[4, 7, 3, 9, 5], [8, 8], [3, 10, 6, 4], [5, 9, 9]];
const TGT = [[3, 6, 4], [7, 3, 3, 8, 5], [6], [4, 8, 7, 3]];

interface Batch { src: Tensor; tgtIn: Tensor; tgtOut: Tensor; tokens: number }

/** The padded batch as the data loader makes it (tgtIn = BOS + words, tgtOut = words + EOS), `extra` more PAD columns. */
function makeBatch(extra = 0): Batch {
  const s = Math.max(...SRC.map((x) => x.length)) + extra;
  const t = Math.max(...TGT.map((x) => x.length)) + 1 + extra;
  const padded = (rows: number[][], n: number): Tensor => tensor(BigInt64Array.from(rows.flatMap((r) => [...r, ...new Array<number>(n - r.length).fill(PAD)].map(BigInt))), { shape: [rows.length, n] });
  return {
    src: padded(SRC, s),
    tgtIn: padded(TGT.map((w) => [BOS, ...w]), t),
    tgtOut: padded(TGT.map((w) => [...w, EOS]), t),
    tokens: TGT.reduce((n, w) => n + w.length + 1, 0),
  };
}

function model(): TransformerSeq2Seq {
  manualSeed(21);
  return transformerSeq2Seq({ srcVocab: 11, tgtVocab: 9, dModel: 8, heads: 2, layers: 1, ffn: 12, dropout: 0, maxLen: 16, padIdx: PAD, dtype: 'float64' });
}

/** The task's per-sample loss: sentence sums times B / (target tokens in the batch). */
function perSampleLoss(logits: Tensor, b: { tgtOut: Tensor }, batchSize: number, tokens: number): Tensor {
  return crossEntropyPerSample(logits, b.tgtOut, { ignoreIndex: PAD, labelSmoothing: SMOOTHING }).mul(batchSize / tokens);
}
const batchLoss = (m: TransformerSeq2Seq, b: Batch): Tensor => perSampleLoss(m.forward(b.src, b.tgtIn), b, SRC.length, b.tokens);

interface Oracle {
  /** Per-sample gradients by parameter name, [B, ...shape]. */
  u: Map<string, Tensor>;
  /** s_i = sum over sentence i's target tokens of ||d l_i / d logits_t||^2. */
  s: Tensor;
}

/** Each sentence alone and unpadded: its own forward and backward (the loss scaled as in the batch). */
function bruteForce(m: TransformerSeq2Seq): Oracle {
  const b = SRC.length;
  const tokens = makeBatch().tokens;
  const named = m.namedParameters();
  const rows: Tensor[][] = [];
  const s: number[] = [];
  for (let i = 0; i < b; i++) {
    const one = (xs: number[]): Tensor => tensor(BigInt64Array.from(xs.map(BigInt)), { shape: [1, xs.length] });
    const logits = m.forward(one(SRC[i]!), one([BOS, ...TGT[i]!]));
    const loss = perSampleLoss(logits, { tgtOut: one([...TGT[i]!, EOS]) }, b, tokens).select(0, 0);
    const [dz, ...g] = grad(loss, [logits, ...named.map(([, p]) => p)], { allowUnused: true });
    rows.push(g.map((t, k) => t ?? zeros(named[k]![1].shape, f64)));
    s.push(dz!.square().sum().item());
  }
  return { u: new Map(named.map(([n], k) => [n, stack(rows.map((r) => r[k]!))] as const)), s: tensor(s, f64) };
}

/** A covered layer's per-sample gradients as one matrix [B, P] (weight, then bias). */
function layerU(o: Oracle, layer: string): Tensor {
  const parts = [...o.u].filter(([n]) => n.startsWith(`${layer}.`)).map(([, u]) => u.reshape(u.size(0), -1));
  assert.ok(parts.length > 0, `no parameters of '${layer}'`);
  return cat(parts, 1);
}

/** `fn` on a fresh model and its curvature engine, in a scope; both freed afterwards. */
function withEngine(fn: (m: TransformerSeq2Seq, engine: CurvatureEngine) => void): void {
  const m = model();
  const engine = new CurvatureEngine(m);
  scope(() => fn(m, engine));
  engine.dispose();
  m.dispose();
}

test('the Transformer\'s coverage: every Linear and both embeddings, untied; only LayerNorm left to first order', () => leakCheck(() => {
  const m = model();
  const engine = new CurvatureEngine(m);
  const { covered, uncovered } = engine.coverage();
  assert.ok(uncovered.length > 0 && uncovered.every((n) => /norm\d?\.(weight|bias)$/.test(n)), `uncovered: ${uncovered.join(', ')}`);
  assert.ok(['src_embed.weight', 'tgt_embed.weight', 'generator.weight', 'generator.bias'].every((n) => covered.includes(n)));
  // 1 + 1 layers: encoder self-attention (4 Linears) + FFN (2), decoder self- and cross-attention (8) + FFN (2).
  assert.equal(engine.layers.filter((l) => l.kind === 'linear').length, 4 + 2 + 8 + 2 + 1);
  assert.equal(engine.layers.filter((l) => l.kind === 'embedding').length, 2);
  assert.notEqual(m.generator.weight, m.tgtEmbed.weight, 'the output projection has its own weight');
  engine.dispose();
  m.dispose();
}));

/** A Linear that reads its weight from an embedding (tied input and output embeddings). */
class TiedLinear extends Linear {
  constructor(readonly source: Embedding) {
    super(source.embeddingDim, source.numEmbeddings, { bias: false, ...f64 });
  }
  override get weight(): Tensor {
    return this.source.weight;
  }
}
class TiedLm extends Module {
  readonly emb = this.registerModule('emb', new Embedding(6, 4, f64));
  readonly mid = this.registerModule('mid', new Linear(4, 4, f64));
  readonly out = this.registerModule('out', new TiedLinear(this.emb));
  forward(x: Tensor): Tensor {
    return this.out.forward(this.mid.forward(this.emb.forward(x)).tanh());
  }
}

test('tied weights: layers sharing a parameter are left uncovered, the shared weight gets the mean-loss gradient', () => leakCheck(() => {
  manualSeed(4);
  const m = new TiedLm();
  const engine = new CurvatureEngine(m);
  assert.deepEqual(engine.tiedLayers, ['emb', 'out']);
  assert.deepEqual(engine.layers.map((l) => l.name), ['mid']);
  assert.ok(engine.coverage().uncovered.includes('emb.weight'));
  scope(() => {
    const x = tensor(BigInt64Array.from([1n, 4n, 2n, 5n, 5n, 3n]), { shape: [2, 3] });
    const y = tensor(BigInt64Array.from([2n, 0n, 1n, 3n, 4n, 5n]), { shape: [2, 3] });
    const loss = crossEntropyPerSample(m.forward(x), y);
    const [want] = grad(loss.mean(), [m.emb.weight], { retainGraph: true });
    engine.capture(loss).writeWeightedGradients(tensor([0.5, 0.5], f64), { consume: true });
    close(m.emb.weight.grad!, want!, 'tied weight: mean-loss gradient (both uses)');
  });
  engine.dispose();
  // Leaving one of the two out by a filter does not make the other one's statistics whole.
  const filtered = new CurvatureEngine(m, { filter: (name) => name !== 'out' });
  assert.deepEqual(filtered.tiedLayers, ['emb']);
  filtered.dispose();
  m.dispose();
}));

test('per-sample Grams of every layer (sequence Linears, embeddings, the output projection) equal brute force, both methods', () => leakCheck(() => withEngine((m, engine) => {
  const o = bruteForce(m);
  engine.clear(); // the oracle's one-sentence forwards were recorded too
  const cap = engine.capture(batchLoss(m, makeBatch()));
  assert.equal(cap.layers.length, engine.layers.length, 'every covered layer took part');
  for (const method of ['auto', 'pairwise', 'materialize'] as const) {
    for (const [name, K] of cap.grams({ method })) {
      const u = layerU(o, name);
      close(K, u.mm(u.t()), `${name} Gram (${method})`);
    }
  }
  // The output projection's materialized Gram by blocks of weight rows (3 rows per block of 9).
  const gen = cap.layer('generator');
  const plan = planGram(gen, 3 * 4 * 9 * 8, 'materialize');
  assert.equal(plan.split, 'rows');
  assert.equal(plan.block, 3);
  const u = layerU(o, 'generator');
  close(layerGram(gen, plan), u.mm(u.t()), 'generator Gram in row blocks');
})));

test('padding gives nothing: extra PAD positions change no per-sample gradient, Gram or logit-gradient norm', () => leakCheck(() => withEngine((m, engine) => {
  const caps: Capture[] = [0, 3].map((extra) => engine.capture(batchLoss(m, makeBatch(extra))));
  const [tight, wide] = caps as [Capture, Capture];
  assert.equal(wide.layer('generator').positions, tight.layer('generator').positions + 3);
  const o = bruteForce(m);
  for (const l of tight.layers) {
    for (const [label, cap] of [['tight', tight], ['3 PAD more', wide]] as const) {
      const g = cap.perSampleGradients(l.name);
      const got = cat([g.weight.reshape(g.weight.size(0), -1), ...(g.bias === null ? [] : [g.bias])], 1);
      close(got, layerU(o, l.name), `${l.name} per-sample gradients (${label})`);
    }
    close(wide.gram(l.name), tight.gram(l.name), `${l.name} Gram, 3 PAD more`);
  }
  close(wide.outputGradSqNorms('generator'), tight.outputGradSqNorms('generator'), 'logit-gradient norms, 3 PAD more');
})));

test('iEF\'s right-hand side is sum over the sentence\'s tokens of ||d l_i / d logits_t||^2, read at the output projection', () => leakCheck(() => withEngine((m, engine) => {
  const o = bruteForce(m);
  engine.clear();
  const cap = engine.capture(batchLoss(m, makeBatch(2)));
  assert.equal(cap.layers.at(-1)!.name, 'generator', 'the last covered layer to run is the output projection');
  close(rightHandSide('ief', cap, 1, null).squeeze(0), o.s, 'iEF right-hand side');
  close(rightHandSide('ief', cap, 1, 'generator').squeeze(0), o.s, 'iEF right-hand side, output layer named');
})));

/** Dense (U U^T + lambda B I)^-1 U r per block of parameters (P x P float64 solves; r = 1 is NGD). */
function denseDirection(U: Tensor, blocks: number[][], r: Tensor): Tensor {
  const b = U.size(1);
  return cat(blocks.map((rows) => {
    const Ub = U.index([tensor(rows, { dtype: 'int64' })]);
    const M = Ub.mm(Ub.t()).add(eye(rows.length, f64).mul(DAMPING * b));
    return linalg.solve(M, Ub.mm(r.unsqueeze(1))).squeeze(1);
  }));
}

for (const [label, make] of [['NGD', ngd], ['iEF', ief]] as const) {
  test(`${label} on the Transformer: .grad equals the dense float64 solve over brute-force per-sample gradients, layer-wise and global`, () => leakCheck(() => {
    const m = model();
    scope(() => {
      const o = bruteForce(m);
      const r = label === 'NGD' ? tensor([1, 1, 1, 1], f64) : o.s;
      for (const mode of ['layerwise', 'global'] as const) {
        const pre: SampleSpacePreconditioner = make(m, { mode, damping: DAMPING, dampingMode: 'absolute', normalize: 'none' });
        const opt = new SGD(m.parameters(), { lr: 0, preconditioner: pre });
        opt.step({ perSampleLoss: batchLoss(m, makeBatch(1)), sampleIds: Int32Array.from([0, 1, 2, 3]), epoch: 0 });
        // Covered parameters, by layer; U [P, B] in the same order.
        const layers = pre.engine.layers.map((l) => l.name);
        const params = layers.map((n) => m.namedParameters().filter(([k]) => k.startsWith(`${n}.`)));
        const U = cat(params.flat().map(([k]) => o.u.get(k)!.reshape(SRC.length, -1)), 1).t();
        const blocks: number[][] = [];
        let at = 0;
        for (const ps of params) {
          const n = ps.reduce((s, [, p]) => s + p.numel, 0);
          blocks.push(Array.from({ length: n }, (_, k) => at + k));
          at += n;
        }
        const want = denseDirection(U, mode === 'global' ? [blocks.flat()] : blocks, r);
        const got = cat(params.flat().map(([, p]) => p.grad!.reshape(-1)));
        close(got, want, `${label} ${mode} direction`, 1e-8);
        // LayerNorm parameters: the mean-loss gradient.
        for (const { name, param } of pre.engine.uncoveredParams) close(param.grad!, o.u.get(name)!.mean(0), `${name}: mean-loss gradient`, 1e-8);
        opt.dispose();
      }
    });
    m.dispose();
  }));
}
