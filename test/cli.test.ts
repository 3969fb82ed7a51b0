// The command line: bad input and missing data give clear errors; Ctrl-C checkpoints; --resume finishes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseFlags, type FlagSpec } from '../src/cli/args.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

function fngd(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, FNGD_NUM_THREADS: '1' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('--help lists every training flag with its default', () => {
  const r = fngd('train', '--help');
  assert.equal(r.code, 0);
  for (const flag of ['--task', '--optimizer', '--epochs', '--batch-size', '--lr', '--seed', '--data-dir', '--out', '--resume', '--momentum']) {
    assert.ok(r.out.includes(flag), `help mentions ${flag}`);
  }
  assert.match(r.out, /--momentum N\s+SGD momentum \(default: 0\.9\)/);
});

test('invalid flags and values are named in the error', () => {
  const cases: [string[], RegExp][] = [
    [['train', '--task', 'imagenet'], /--task must be one of mnist-mlp, fashion-cnn, cifar10-resnet, cifar10-mlp, multi30k-transformer; got 'imagenet'/],
    [['train', '--task', 'mnist-mlp', '--epochs', 'two'], /--epochs must be a number, got 'two'/],
    [['train', '--task', 'mnist-mlp', '--epochs', '1.5'], /--epochs must be an integer, got '1\.5'/],
    [['train', '--task', 'mnist-mlp', '--lr', '-1'], /--lr must be at least 0, got -1/],
    [['train', '--task', 'mnist-mlp', '--lr', '0x10'], /--lr must be a decimal number, got '0x10'/],
    [['train', '--task', 'mnist-mlp', '--optimizer', 'lbfgs'], /--optimizer must be one of sgd, adamw/],
    [['train', '--task', 'mnist-mlp', '--learning-rate', '0.1'], /unknown flag --learning-rate/],
    [['train', '--task', 'mnist-mlp', '--batch-size'], /--batch-size needs a value/],
    [['train', '--epochs', '1'], /--task is required/],
    [['train', '--task', 'mnist-mlp', '--resume'], /--resume needs --out/],
    [['train', '--task', 'mnist-mlp', '--optimizer', 'adamw', '--betas', '0.9'], /--betas needs two numbers/],
    [['train', '--task', 'mnist-mlp', '--eval-beam', '4'], /--eval-beam is for multi30k-transformer runs, not mnist-mlp/],
    [['train', '--task', 'multi30k-transformer', '--eval-length-penalty', '1'], /--eval-length-penalty needs --eval-beam N/],
    [['train', '--task', 'multi30k-transformer', '--eval-beam', '1'], /--eval-beam must be at least 2, got 1/],
    [['frobnicate'], /unknown command 'frobnicate'/],
  ];
  for (const [args, re] of cases) {
    const r = fngd(...args);
    assert.equal(r.code, 2, `${args.join(' ')} exits with 2 (stderr: ${r.err})`);
    assert.match(r.err, re);
  }
});

test('flag numbers are decimal: hex, octal, binary, padded, Infinity and NaN are errors naming the flag', () => {
  const specs: Record<string, FlagSpec> = { lr: { kind: 'number', help: '' }, epochs: { kind: 'int', help: '' }, betas: { kind: 'numbers', help: '' } };
  for (const v of ['0x10', '0X1F', '0o7', '0b101', ' 5', '5 ', '\t1']) {
    assert.throws(() => parseFlags(['--lr', v], specs), (e: Error) => e.message === `--lr must be a decimal number, got '${v}'`);
  }
  for (const v of ['Infinity', '-Infinity', 'NaN', '1e400', '1_000', '', '.', 'e5', '--1']) {
    assert.throws(() => parseFlags([`--lr=${v}`], specs), (e: Error) => e.message === `--lr must be a number, got '${v}'`);
  }
  assert.throws(() => parseFlags(['--epochs', '0x2'], specs), /--epochs must be a decimal number, got '0x2'/);
  assert.throws(() => parseFlags(['--betas', '0.9,0x1'], specs), /--betas must be a decimal number, got '0x1'/);
  const ok = parseFlags(['--lr', '1e-3', '--epochs', '+3', '--betas', '.5,5.,-2,1E2'], specs);
  assert.deepEqual(ok, { lr: 1e-3, epochs: 3, betas: [0.5, 5, -2, 100] });
});

test('--threads above the cores is an error naming the bound (1,000 threads made a run 10x slower)', () => {
  const r = fngd('train', '--task', 'mnist-mlp', '--threads', '1000');
  assert.equal(r.code, 1, r.err);
  assert.match(r.err, new RegExp(`setNumThreads: 1000 threads is more than the ${availableParallelism()} cores of this machine.*FNGD_FORCE_THREADS=1`));
});

test('missing data names the file and how to get it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fngd-nodata-'));
  try {
    const r = fngd('train', '--task', 'cifar10-resnet', '--data-dir', dir, '--epochs', '1');
    assert.equal(r.code, 1);
    assert.match(r.err, /data_batch_1\.bin/);
    const m = fngd('train', '--task', 'multi30k-transformer', '--data-dir', dir);
    assert.equal(m.code, 1);
    assert.match(m.err, /train\.en/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--seed fixes the initialization: the same seed gives the same run, another seed another one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fngd-seed-'));
  try {
    const losses = (seed: number, name: string): number[] => {
      const r = fngd('train', '--task', 'mnist-mlp', '--epochs', '1', '--train-limit', '512', '--eval-limit', '100', '--seed', String(seed), '--no-progress', '--out', join(dir, name));
      assert.equal(r.code, 0, r.err);
      return readFileSync(join(dir, name, 'steps.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { loss: number }).loss);
    };
    const a = losses(3, 'a');
    assert.deepEqual(losses(3, 'b'), a, 'seed 3 twice: the same losses, step by step');
    assert.notEqual(losses(4, 'c')[0], a[0], 'seed 4: another initialization (the first loss differs)');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Ctrl-C writes a checkpoint and stops; --resume finishes the run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fngd-sigint-'));
  const args = ['train', '--task', 'mnist-mlp', '--epochs', '2', '--batch-size', '32', '--train-limit', '6400', '--eval-limit', '500', '--out', dir, '--no-progress'];
  try {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, FNGD_NUM_THREADS: '1' } });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const steps = join(dir, 'steps.jsonl');
    // Interrupt once a few steps are done.
    await new Promise<void>((resolve, reject) => {
      const started = Date.now();
      const poll = setInterval(() => {
        const n = existsSync(steps) ? readFileSync(steps, 'utf8').split('\n').length - 1 : 0;
        if (n >= 5) {
          clearInterval(poll);
          child.kill('SIGINT');
          resolve();
        } else if (Date.now() - started > 60_000 || child.exitCode !== null) {
          clearInterval(poll);
          reject(new Error(`the run did not start: ${err}`));
        }
      }, 20);
    });
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    assert.equal(code, 130, `interrupted run exits with 130 (stderr: ${err})`);
    assert.match(err, /stopped at epoch 0, step \d+; checkpoint in/);
    assert.ok(existsSync(join(dir, 'checkpoint.safetensors')));
    const done = readFileSync(steps, 'utf8').trim().split('\n').length;
    assert.ok(done < 400, 'stopped before the end');
    const r = fngd(...args, '--resume');
    assert.equal(r.code, 0, r.err);
    const all = readFileSync(steps, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { epoch: number; step: number });
    assert.equal(all.length, 400, '2 epochs of 200 steps, each once');
    assert.deepEqual(all.map((s) => s.epoch * 200 + s.step), Array.from({ length: 400 }, (_, i) => i));
    const log = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n');
    assert.equal(log.length, 2);
    assert.match(r.out, /epoch 1: train loss [\d.]+, test accuracy \d+\.\d+%/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('fngd compare: metric per epoch, training time without evaluation, time to target, SVG and JSON; bad input named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fngd-compare-'));
  try {
    // Two hand-written logs (wall_time and eval_time are cumulative, as the trainer writes them).
    const write = (name: string, epochs: [number, number, number][]): string => {
      const d = join(dir, name);
      mkdirSync(d);
      writeFileSync(join(d, 'log.jsonl'), epochs.map(([wall, ev, m], i) => JSON.stringify({ epoch: i, wall_time: wall, eval_time: ev, train_loss: 2 - m, test_metric: m })).join('\n') + '\n');
      return d;
    };
    const a = write('fast', [[100, 10, 0.5], [200, 20, 0.75]]);
    const b = write('slow', [[300, 30, 0.25], [600, 60, 0.625], [900, 90, 0.875]]);
    const svg = join(dir, 'c.svg');
    const json = join(dir, 'c.json');
    const r = fngd('compare', a, b, '--target', '0.6', '--svg', svg, '--json', json);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^\| run \| epoch 1 \| epoch 2 \| epoch 3 \| training time \(s\) \| time to test_metric 0\.6 \(s\) \|$/m);
    assert.match(r.out, /^\| fast \| 0\.5000 \| 0\.7500 \|  \| 180 \| 180 \(epoch 2\) \|$/m);
    assert.match(r.out, /^\| slow \| 0\.2500 \| 0\.6250 \| 0\.8750 \| 810 \| 540 \(epoch 2\) \|$/m);
    assert.match(readFileSync(svg, 'utf8'), /^<svg [^]*>fast<[^]*>slow<[^]*<\/svg>\n$/);
    const j = JSON.parse(readFileSync(json, 'utf8')) as { runs: { reached: { trainSeconds: number } | null }[] };
    assert.deepEqual(j.runs.map((x) => x.reached?.trainSeconds), [180, 540]);
    // A loss is met from above.
    const loss = fngd('compare', a, b, '--metric', 'train_loss', '--target', '1.3');
    assert.match(loss.out, /\| fast \| 1\.500 \| 1\.250 \|  \| 180 \| 180 \(epoch 2\) \|/);
    // Two folders of one name are told apart by their parents.
    mkdirSync(join(dir, 'x'));
    mkdirSync(join(dir, 'y'));
    const out1 = write(join('x', 'out'), [[10, 1, 0.1]]);
    const out2 = write(join('y', 'out'), [[10, 1, 0.2]]);
    const same = fngd('compare', out1, out2);
    assert.match(same.out, /^\| x\/out \| 0\.1000 \|/m);
    assert.match(same.out, /^\| y\/out \| 0\.2000 \|/m);
    const nullLine = write('nulls', [[1, 0, 0.5]]);
    writeFileSync(join(nullLine, 'log.jsonl'), 'null\n');
    for (const [args, re] of [
      [['compare', nullLine], /line 1: not an epoch record \(a JSON object\)/],
      [['compare'], /name at least one run folder/],
      [['compare', dir], /no log\.jsonl \(a folder made by fngd train --out DIR\?\)/],
      [['compare', a, '--metric', 'bleu'], /line 1: no 'bleu' \(it has epoch, wall_time/],
      [['compare', a, '--target', 'x'], /--target/],
    ] as [string[], RegExp][]) {
      const e = fngd(...args);
      assert.equal(e.code, 2, `${args.join(' ')}: ${e.err}`);
      assert.match(e.err, re);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
