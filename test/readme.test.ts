// The README's code example runs as written (against the built package).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

test('the README usage example runs: FNGD solves in epoch 0, reuses after, and its loss decreases', () => {
  const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
  // The package example (its own test: package.test.ts) comes first; this is the plain-JS one.
  const block = /<!-- example: using-it -->\n```ts\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'README has a ts example');
  const entry = fileURLToPath(new URL('../src/index.js', import.meta.url));
  const code = block[1]!.replace(/from 'fngd'/g, `from ${JSON.stringify(entry)}`);
  const dir = mkdtempSync(join(tmpdir(), 'fngd-readme-'));
  try {
    const file = join(dir, 'example.mjs');
    writeFileSync(file, code);
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    // Each line: epoch, loss, reused (FNGD solves in epoch 0 and reuses after).
    const lines = r.stdout.trim().split('\n').map((l) => l.split(/\s+/).map(Number));
    assert.deepEqual(lines.map((l) => l[0]), [0, 1, 2]);
    assert.deepEqual(lines.map((l) => l[2]), [0, 1, 1]);
    const losses = lines.map((l) => l[1]!);
    assert.ok(losses.every(Number.isFinite));
    assert.ok(losses[2]! < losses[0]!, `loss went from ${losses[0]} to ${losses[2]}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
