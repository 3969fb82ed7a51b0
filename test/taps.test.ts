// Taps: recorded layer outputs give exact per-sample output gradients of a summed loss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { grad, liveTensors, manualSeed, randint, randn, scope, tensor, type Tensor } from '../src/tensor/index.js';
import {
  Conv2d, crossEntropyPerSample, Flatten, Linear, MaxPool2d, mlp, ReLU, Sequential, tapLayers, transformerSeq2Seq,
  type Module, type TapRecorder,
} from '../src/nn/index.js';

function close(actual: Tensor, expected: Tensor, tol: number, what: string): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const a = actual.toArray();
  const e = expected.toArray();
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - e[i]!));
  assert.ok(worst <= tol, `${what}: max abs error ${worst} > ${tol}`);
}
function leakCheck(fn: () => void): void {
  const before = liveTensors().tensors;
  scope(fn);
  assert.equal(liveTensors().tensors, before, 'tensors leaked');
}

/**
 * One backward of sum_i loss_i w.r.t. the recorded outputs, against B separate single-sample
 * forward/backward passes: row i of each batched gradient must equal d loss_i / d output_i.
 * `perSample(sel)` runs the model on the batch rows picked by `sel` and returns per-sample losses.
 */
function checkAgainstBruteForce(rec: TapRecorder, b: number, perSample: (sel: (t: Tensor) => Tensor) => Tensor): string[] {
  rec.clear();
  const losses = perSample((t) => t);
  const recs = [...rec.records];
  assert.ok(recs.length > 0, 'something was recorded');
  const gs = grad(losses.sum(), recs.map((r) => r.output));
  for (let i = 0; i < b; i++) {
    scope(() => {
      rec.clear();
      const li = perSample((t) => t.narrow(0, i, 1));
      const single = [...rec.records];
      assert.deepEqual(single.map((r) => r.name), recs.map((r) => r.name));
      const gi = grad(li.sum(), single.map((r) => r.output));
      recs.forEach((r, j) => close(gi[j]!, gs[j]!.narrow(0, i, 1), 1e-12, `${r.name} (${r.kind}) sample ${i}`));
    });
  }
  rec.clear();
  return recs.map((r) => `${r.name}:${r.kind}`);
}

test('Linear taps: inputs/outputs in forward order; per-sample output gradients match brute force', () => leakCheck(() => {
  manualSeed(1);
  const model = mlp({ inputSize: 6, hidden: [5], classes: 3, dtype: 'float64' });
  const rec = tapLayers(model);
  assert.deepEqual(rec.layers.map((l) => `${l.name}:${l.kind}`), ['1:linear', '3:linear']);
  const x = randn([4, 2, 3], { dtype: 'float64' });
  const y = tensor(BigInt64Array.from([0n, 2n, 1n, 2n]));

  model.forward(x);
  assert.equal(rec.records.length, 0, 'off by default');
  assert.ok((model.at(1) as Linear).tap === null);

  rec.enable();
  const out = model.forward(x);
  assert.deepEqual(rec.records.map((r) => r.name), ['1', '3']);
  const [r1, r2] = rec.records as [typeof rec.records[0], typeof rec.records[0]];
  assert.deepEqual(r1.input.toArray(), x.flatten(1).toArray());
  assert.deepEqual(r2.input.toArray(), r1.output.relu().toArray());
  assert.deepEqual(r2.output.toArray(), out.toArray());
  assert.equal(r1.layer, model.at(1));

  const kinds = checkAgainstBruteForce(rec, 4, (sel) => crossEntropyPerSample(model.forward(sel(x)), sel(y)));
  assert.deepEqual(kinds, ['1:linear', '3:linear']);
  rec.disable();
  model.forward(x);
  assert.equal(rec.records.length, 0, 'disabled again');
  model.dispose();
}));

test('Conv2d taps: per-sample output gradients match brute force', () => leakCheck(() => {
  manualSeed(2);
  const o = { dtype: 'float64' as const };
  const model = new Sequential(
    new Conv2d(1, 2, 3, { ...o, padding: 1 }), new ReLU(), new MaxPool2d(2),
    new Conv2d(2, 3, 3, { ...o, stride: 1 }), new ReLU(), new Flatten(), new Linear(12, 3, o),
  );
  const rec = tapLayers(model).enable();
  const x = randn([3, 1, 8, 8], o);
  const y = tensor(BigInt64Array.from([2n, 0n, 1n]));
  const kinds = checkAgainstBruteForce(rec, 3, (sel) => crossEntropyPerSample(model.forward(sel(x)), sel(y)));
  assert.deepEqual(kinds, ['0:conv2d', '3:conv2d', '6:linear']);
  scope(() => {
    model.forward(x);
    assert.deepEqual(rec.records[0]!.input.shape, [3, 1, 8, 8], 'conv input is recorded before padding');
    assert.deepEqual(rec.records[1]!.output.shape, [3, 3, 2, 2]);
    rec.clear();
  });
  rec.disable();
  model.dispose();
}));

test('Embedding (and sequence Linear) taps in a Transformer: per-sample output gradients of summed token losses match', () => leakCheck(() => {
  manualSeed(3);
  const pad = 0;
  const model = transformerSeq2Seq({ srcVocab: 9, tgtVocab: 7, dModel: 4, heads: 2, layers: 1, ffn: 6, dropout: 0, maxLen: 8, padIdx: pad, dtype: 'float64' });
  const rec = tapLayers(model).enable();
  const src = tensor(BigInt64Array.from([1n, 4n, 5n, 2n, 1n, 3n, 0n, 0n, 1n, 6n, 7n, 8n]), { shape: [3, 4] });
  const tgtIn = tensor(BigInt64Array.from([1n, 3n, 4n, 1n, 5n, 0n, 1n, 6n, 2n]), { shape: [3, 3] });
  const tgtOut = tensor(BigInt64Array.from([3n, 4n, 2n, 5n, 2n, 0n, 6n, 2n, 3n]), { shape: [3, 3] });
  const kinds = checkAgainstBruteForce(rec, 3, (sel) =>
    crossEntropyPerSample(model.forward(sel(src), sel(tgtIn)), sel(tgtOut), { ignoreIndex: pad }));
  assert.equal(kinds[0], 'src_embed:embedding');
  assert.ok(kinds.includes('tgt_embed:embedding'));
  assert.ok(kinds.includes('decoder.layers.0.multihead_attn.k_proj:linear'));
  assert.equal(kinds.at(-1), 'generator:linear');
  assert.equal(kinds.length, 2 + 6 + 10 + 1, 'embeddings, encoder (q,k,v,out,ff1,ff2), decoder (2 attentions + ff), generator');
  rec.disable();
  model.dispose();
}));

test('scope rule: records live in the forward scope, can be returned from it, and clear() frees only the handles', () => {
  const before = liveTensors().tensors;
  const model: Module & { forward(x: Tensor): Tensor } = mlp({ inputSize: 3, hidden: [4], classes: 2 });
  const rec = tapLayers(model).enable();
  const x = randn([2, 3]);

  // Not returned: freed with the scope.
  scope(() => { model.forward(x); });
  assert.equal(rec.records.length, 2);
  assert.ok(rec.records.every((r) => r.output.isDisposed && r.input.isDisposed));
  rec.clear();

  // Returned: they move to the enclosing scope (here none: the caller owns them).
  const { out, records } = scope(() => ({ out: model.forward(x), records: rec.records }));
  assert.ok(records.every((r) => !r.output.isDisposed));
  rec.clear();
  assert.ok(records.every((r) => r.output.isDisposed), 'clear() disposes the recorder handles');
  assert.equal(out.isDisposed, false, 'the model output itself is untouched');
  assert.deepEqual(out.shape, [2, 2]);
  out.dispose();

  const other = tapLayers(model);
  assert.throws(() => other.enable(), /tapped by another recorder/);
  rec.disable();
  other.enable().disable();
  assert.deepEqual(tapLayers(model, { filter: (n) => n === '3' }).layers.map((l) => l.name), ['3']);
  model.dispose();
  x.dispose();
  assert.equal(liveTensors().tensors, before, 'no leaked tensors');
});

test('disabled taps cost one null check: outputs identical with and without a recorder', () => leakCheck(() => {
  const model = mlp({ inputSize: 4, hidden: [3], classes: 2 });
  const x = randint(0, 5, [2, 4]).float();
  const a = model.forward(x).toArray();
  const rec = tapLayers(model).enable();
  assert.deepEqual(model.forward(x).toArray(), a);
  rec.clear();
  rec.disable();
  assert.ok(model.modules().every((m) => !('tap' in m) || (m as Linear).tap === null));
  model.dispose();
}));
