// The README's code example runs as written (against the built package).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

test('the README usage example runs and its loss decreases', () => {
  const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
  const block = /```ts\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'README has a ts example');
  const entry = fileURLToPath(new URL('../src/index.js', import.meta.url));
  const code = block[1]!.replace(/from 'fngd'/g, `from ${JSON.stringify(entry)}`);
  const dir = mkdtempSync(join(tmpdir(), 'fngd-readme-'));
  try {
    const file = join(dir, 'example.mjs');
    writeFileSync(file, code);
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const losses = r.stdout.trim().split('\n').map(Number);
    assert.equal(losses.length, 10);
    assert.ok(losses.every(Number.isFinite));
    assert.ok(losses[9]! < losses[0]!, `loss went from ${losses[0]} to ${losses[9]}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
