// Seeded random calls across the tensor API and every operator schema (bench/fuzz.ts): the process
// never dies, and every error names the operator or function it came from. A fixed seed, so that
// CI is reproducible (FNGD_FUZZ_SEED=N picks another, =random a new one per run; `npm run fuzz`
// runs 100,000 calls); a failure reports the seed and the last call, to rerun with
// `node dist/bench/fuzz.js --calls 2000 --seed S`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzz, parseSchema } from '../bench/fuzz.js';

test('schemas parse into typed arguments, defaults and alias annotations included', () => {
  const s = parseSchema('aten::conv2d(Tensor input, Tensor weight, Tensor? bias=None, int[2] stride=[1, 1], str padding="valid", *, Tensor(a!) out) -> Tensor(a!)');
  assert.equal(s.name, 'aten::conv2d');
  assert.deepEqual(s.args.map((a) => [a.type, a.name, a.hasDefault]), [
    ['Tensor', 'input', false], ['Tensor', 'weight', false], ['Tensor?', 'bias', true], ['int[2]', 'stride', true],
    ['str', 'padding', true], ['Tensor(a!)', 'out', false],
  ]);
});

test('2,000 random calls (tensor API and callOp, refused operators too): no crash, no hang, every error named', async () => {
  const env = process.env.FNGD_FUZZ_SEED;
  const seed = env === undefined ? 1714196124 : env === 'random' ? Math.floor(Math.random() * 2 ** 31) : Number(env);
  const r = await fuzz({ calls: 2000, seed, timeoutS: 90 });
  const rerun = `rerun: node dist/bench/fuzz.js --calls 2000 --seed ${seed}`;
  assert.equal(r.crash, null, `seed ${seed}: the fuzz child died or hung at call ${JSON.stringify(r.crash)}; ${rerun}`);
  assert.equal(r.calls, 2000);
  assert.equal(r.unnamed, 0, `seed ${seed}: errors that do not start with their operator's name: ${JSON.stringify(r.unnamedExamples, null, 1)}; ${rerun}`);
  // not vacuous: calls ran, failed, and were refused, over many operators
  assert.ok(r.ok > 200 && r.errors > 200 && r.refused > 50, JSON.stringify(r));
  assert.ok(r.covered > 500, `only ${r.covered} distinct operators and API functions`);
});
