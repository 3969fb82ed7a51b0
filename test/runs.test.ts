// Run folders and checkpoints (issue 14): one run per folder, no silent overwrite, logs that never
// run ahead of the checkpoint (SIGKILL at any moment, then --resume: the uninterrupted run's logs,
// line for line), checksummed checkpoints without NaN, and errors where bad input used to pass.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../bench/fuzz.js';
import { loadMnist, loadMulti30k } from '../src/data/index.js';
import { crossEntropyPerSample, loadSafetensors, mlp, readSafetensorsMetadata, saveSafetensors } from '../src/nn/index.js';
import { SGD } from '../src/optim/index.js';
import { ngd } from '../src/precondition/index.js';
import { liveTensors, manualSeed, randn, scope, tensor, type Tensor } from '../src/tensor/index.js';
import { loadCheckpoint, saveCheckpoint, type TrainerState } from '../src/train/checkpoint.js';
import { RunDir } from '../src/train/run-dir.js';
import { createTask } from '../src/train/tasks.js';
import { Trainer, type TrainResult } from '../src/train/trainer.js';
import { setWarningHandler } from '../src/warnings.js';
import { assertClose } from './helpers.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const ENV = { ...process.env, FNGD_NUM_THREADS: '1' };
/** One epoch of 2 steps on 64 MNIST images: a whole run in about a second. */
const TINY = ['train', '--task', 'mnist-mlp', '--epochs', '1', '--batch-size', '32', '--train-limit', '64', '--eval-limit', '50', '--no-progress'];

function fngd(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: ENV });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function tmp(name: string): string {
  return mkdtempSync(join(tmpdir(), `fngd-${name}-`));
}

const lines = (path: string): string[] => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l !== '') : []);

/** Log lines without the fields that measure time (they differ between any two runs). */
function timeless(path: string): unknown[] {
  return lines(path).map((l) => {
    const { wall_time: _w, eval_time: _e, samples_per_s: _s, ...rest } = JSON.parse(l) as Record<string, unknown>;
    return rest;
  });
}

/** Resolves when `cond()` holds (polled every millisecond); rejects if the child exits first. */
function when(child: ChildProcess, cond: () => boolean, what: string, stderr: () => string): Promise<'ready' | 'exited'> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      if (cond()) {
        clearInterval(poll);
        resolve('ready');
      } else if (child.exitCode !== null) {
        clearInterval(poll);
        resolve('exited');
      } else if (Date.now() - started > 60_000) {
        clearInterval(poll);
        reject(new Error(`timed out waiting for ${what}: ${stderr()}`));
      }
    }, 1);
  });
}

function start(args: string[]): { child: ChildProcess; err: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, ...args], { env: ENV });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  child.stdout!.resume();
  const exit = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { child, err: () => err, exit };
}

test('a second run on one --out fails at once, naming the first run\'s PID; a killed run\'s stale lock is taken over, saying so', async () => {
  const dir = tmp('lock');
  // 1000 steps: still running while the other runs are refused.
  const args = ['train', '--task', 'mnist-mlp', '--epochs', '1', '--batch-size', '32', '--train-limit', '32000', '--eval-limit', '50', '--no-progress', '--out', dir];
  try {
    const a = start(args);
    const steps = join(dir, 'steps.jsonl');
    assert.equal(await when(a.child, () => lines(steps).length >= 2, 'the first run to train', a.err), 'ready');
    const b = fngd(...args);
    assert.equal(b.code, 1, b.err);
    assert.match(b.err, new RegExp(`run folder .* is in use by process ${a.child.pid} \\(lock `));
    a.child.kill('SIGKILL');
    await a.exit;
    const seen = lines(steps).map((l) => (JSON.parse(l) as { step: number }).step);
    assert.deepEqual(seen, seen.map((_, i) => i), 'the first run\'s log is untouched by the refused runs');
    assert.ok(existsSync(join(dir, '.fngd.lock')), 'SIGKILL leaves the lock behind');
    const d = fngd(...TINY, '--out', dir);
    assert.equal(d.code, 0, d.err);
    assert.match(d.err, new RegExp(`took over the stale lock of process ${a.child.pid}, which is no longer running`));
    assert.ok(!existsSync(join(dir, '.fngd.lock')), 'the lock is released at the end');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('no silent overwrite: fresh over a checkpoint needs --overwrite, --resume needs a checkpoint and keeps the run\'s flags', () => {
  const dir = tmp('fresh');
  const out = ['--out', dir];
  try {
    const none = fngd(...TINY, ...out, '--resume');
    assert.equal(none.code, 1, none.err);
    assert.match(none.err, /--resume: .* holds no checkpoint\.safetensors, so there is no run to continue/);
    assert.equal(fngd(...TINY, ...out).code, 0);
    const ckpt = readFileSync(join(dir, 'checkpoint.safetensors'));
    const log = readFileSync(join(dir, 'log.jsonl'), 'utf8');
    const again = fngd(...TINY, ...out);
    assert.equal(again.code, 1);
    assert.match(again.err, /already holds a checkpoint\.safetensors: continue that run with --resume, replace it with --overwrite, or use another --out/);
    assert.deepEqual(readFileSync(join(dir, 'checkpoint.safetensors')), ckpt, 'the checkpoint is untouched');
    assert.equal(readFileSync(join(dir, 'log.jsonl'), 'utf8'), log, 'the log is untouched');

    // --lr used to be silently ignored by --resume; a flag equal to the saved one is fine.
    const changed = fngd(...TINY, ...out, '--resume', '--lr', '0.3', '--train-limit', '128');
    assert.equal(changed.code, 2, changed.err);
    assert.match(changed.err, /--train-limit 128 \(the run has 64\), --lr 0\.3 \(the run has 0\.02\) cannot change/);
    const same = fngd('train', ...out, '--resume', '--lr', '0.02', '--threads', '1');
    assert.equal(same.code, 0, `the task and every other flag come from the checkpoint: ${same.err}`);
    assert.equal(readFileSync(join(dir, 'log.jsonl'), 'utf8'), log, 'a finished run resumes to the same log');
    assert.match(fngd(...TINY, ...out, '--resume', '--overwrite').err, /--resume and --overwrite contradict/);

    const over = fngd(...TINY, ...out, '--overwrite', '--seed', '5');
    assert.equal(over.code, 0, over.err);
    assert.notEqual(readFileSync(join(dir, 'log.jsonl'), 'utf8'), log, 'a new run, a new log');
    assert.equal(lines(join(dir, 'log.jsonl')).length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('unusable --out paths fail at once with the reason', () => {
  const dir = tmp('paths');
  try {
    const file = join(dir, 'file');
    writeFileSync(file, 'x');
    // --out /proc/x used to hang forever in Node's recursive mkdir.
    const r = fngd(...TINY, '--out', '/proc/fngd-x');
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /run folder \/proc\/fngd-x: cannot create \/proc\/fngd-x: E/);
    const cases: [string, RegExp][] = [
      [file, /run folder .*file exists and is not a folder/],
      [join(file, 'sub'), /run folder .*: .*file is a file, not a folder/],
      ['/proc/self/fngd/x', /run folder \/proc\/self\/fngd\/x: cannot create \/proc\/self\/fngd: E/],
    ];
    if (process.getuid?.() !== 0) { // root writes anywhere
      const ro = join(dir, 'ro');
      mkdirSync(ro);
      chmodSync(ro, 0o500);
      cases.push([ro, /run folder .*ro is not writable: EACCES/]);
      cases.push([join(ro, 'sub'), /cannot create .*sub: EACCES/]);
    }
    for (const [out, re] of cases) assert.throws(() => RunDir.open(out), re);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGKILL at random moments, then --resume: log.jsonl and steps.jsonl equal the uninterrupted run\'s, line for line', async () => {
  const root = tmp('kill');
  // 2 epochs of 20 steps, a checkpoint every 3 steps and after each epoch.
  const args = ['train', '--task', 'mnist-mlp', '--epochs', '2', '--batch-size', '32', '--train-limit', '640', '--eval-limit', '200', '--checkpoint-every', '3', '--no-progress'];
  const total = 40;
  try {
    const full = join(root, 'full');
    const ref = fngd(...args, '--out', full);
    assert.equal(ref.code, 0, ref.err);
    const out = join(root, 'killed');
    const steps = join(out, 'steps.jsonl');
    const ckpt = join(out, 'checkpoint.safetensors');
    const kill = new Rng(14);
    const next = (): number => kill.next();
    // Kill when the step log reaches a random step, one in each third of the run (so every run makes
    // progress), plus 0-20 ms: mid-epoch, around checkpoints, around the epoch's evaluation and log line.
    const targets = [0, 1, 2].map((i) => 2 + Math.floor(((i + next()) * (total - 4)) / 3));
    let kills = 0;
    let trimmed = 0;
    let stale = 0;
    for (const target of targets) {
      const resume = existsSync(ckpt);
      if (resume) {
        const state = (JSON.parse(readSafetensorsMetadata(ckpt).fngd!) as { state: TrainerState }).state;
        trimmed += Math.max(0, lines(steps).length - state.steps.length);
      }
      const run = start([...args, '--out', out, ...(resume ? ['--resume'] : [])]);
      const at = (): number => {
        const last = lines(steps).at(-1);
        if (last === undefined) return -1;
        try {
          const r = JSON.parse(last) as { epoch: number; step: number };
          return r.epoch * 20 + r.step;
        } catch {
          return -1; // a torn line
        }
      };
      const reached = await when(run.child, () => at() >= target, `step ${target}`, run.err);
      if (reached === 'ready') {
        await new Promise((r) => setTimeout(r, Math.floor(next() * 20)));
        run.child.kill('SIGKILL');
      }
      const code = await run.exit;
      if (/took over the stale lock/.test(run.err())) stale += 1;
      if (code === null) kills += 1;
      else assert.equal(code, 0, run.err());
    }
    const resume = existsSync(ckpt);
    const last = fngd(...args, '--out', out, ...(resume ? ['--resume'] : []));
    assert.equal(last.code, 0, last.err);
    assert.ok(kills >= 2, `${kills} runs were killed`);
    assert.ok(stale >= 1, 'a killed run\'s lock was taken over');
    if (process.env.FNGD_TEST_VERBOSE) console.log(`kill test: targets ${targets}, ${kills} kills, ${trimmed} step lines trimmed on resume`);
    assert.deepEqual(timeless(steps), timeless(join(full, 'steps.jsonl')), 'steps.jsonl: the same lines');
    assert.deepEqual(timeless(join(out, 'log.jsonl')), timeless(join(full, 'log.jsonl')), 'log.jsonl: the same lines');
    assert.equal(lines(steps).length, total);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

/** A tiny trainer run in this process (64 MNIST images, 2 steps per epoch). */
async function tinyRun(outDir: string, o: { epochs?: number; resume?: boolean; stopAfter?: number; every?: number; tweak?: (t: ReturnType<typeof createTask>, opt: SGD) => void } = {}): Promise<TrainResult> {
  manualSeed(1);
  const task = createTask('mnist-mlp', { batchSize: 16, seed: 2, trainLimit: 64, evalLimit: 50, evalBatchSize: 50 });
  const opt = new SGD(task.model.parameters(), { lr: 0.05, momentum: 0.9 });
  o.tweak?.(task, opt);
  try {
    return await new Trainer(task as never, opt, {
      epochs: o.epochs ?? 2, seed: 2, outDir, resume: o.resume, stopAfterSteps: o.stopAfter, checkpointEvery: o.every ?? 0, progress: false,
    }).fit();
  } finally {
    opt.dispose();
    task.dispose();
  }
}

test('resume trims the logs to the checkpoint exactly: duplicate epoch and step lines, a torn line, all gone', async () => {
  const dir = tmp('trim');
  try {
    const full = await tinyRun(join(dir, 'full'));
    const out = join(dir, 'b');
    await tinyRun(out, { stopAfter: 5 }); // epoch 2, step 1: one epoch line, five step lines
    // What a kill after appending, before checkpointing, leaves: lines the checkpoint lacks.
    const log = join(out, 'log.jsonl');
    const steps = join(out, 'steps.jsonl');
    appendFileSync(log, lines(log)[0]! + '\n');
    appendFileSync(steps, `${lines(steps).at(-1)!}\n{"epoch":1,"step":2,"loss":1.`);
    const rest = await tinyRun(out, { resume: true });
    assert.equal(rest.status, 'done');
    assert.deepEqual(timeless(steps), timeless(join(dir, 'full', 'steps.jsonl')));
    assert.deepEqual(timeless(log), timeless(join(dir, 'full', 'log.jsonl')));
    assert.equal(lines(steps).length, full.steps.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a run that dies mid-way keeps its last good checkpoint; NaN weights are never checkpointed', async () => {
  const root = tmp('die');
  const dir = join(root, 'a');
  try {
    // 4 steps per epoch, a checkpoint every 2. After step 6 the weights turn NaN: the checkpoint due
    // then is refused, and the one of the epoch's end (step 4) stays.
    const poison = (_: unknown, opt: SGD): void => {
      const step = opt.step.bind(opt);
      opt.step = (input) => {
        const r = step(input);
        if (opt.stepCount === 6) scope(() => { opt.params[0]!.detach().fill_(Number.NaN); });
        return r;
      };
    };
    await assert.rejects(tinyRun(dir, { every: 2, tweak: poison }),
      /refusing to write the checkpoint .*checkpoint\.safetensors: tensor 'model\.1\.weight' has \d+ NaN or infinite values .*the previous checkpoint, if any, is kept/);
    assert.ok(!existsSync(join(dir, '.fngd.lock')), 'the lock is released on an error');
    assert.equal(lines(join(dir, 'steps.jsonl')).length, 6);
    const state = (JSON.parse(readSafetensorsMetadata(join(dir, 'checkpoint.safetensors')).fngd!) as { state: TrainerState }).state;
    assert.equal(state.globalStep, 4, 'the last good checkpoint');
    const rest = await tinyRun(dir, { resume: true, every: 2 });
    const full = await tinyRun(join(root, 'full'), { every: 2 });
    assert.deepEqual(rest.steps.map((s) => s.loss), full.steps.map((s) => s.loss));
    assert.deepEqual(timeless(join(dir, 'steps.jsonl')), timeless(join(root, 'full', 'steps.jsonl')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('checkpoints carry a checksum: a flipped byte, or NaN in a weight, is a corrupt checkpoint named as such', () => {
  const dir = tmp('sum');
  const base = liveTensors().tensors;
  try {
    const path = join(dir, 'checkpoint.safetensors');
    const model = mlp({ inputSize: 4, hidden: [3], classes: 2 });
    const opt = new SGD(model.parameters(), { lr: 0.1 });
    const state: TrainerState = { epoch: 1, step: 0, globalStep: 3, wallTime: 1, epochs: [], steps: [], epochLossSum: 0, epochSamples: 0 };
    saveCheckpoint(path, model, opt, state, { lr: 0.1 });
    assert.equal(loadCheckpoint(path, model, opt).globalStep, 3);
    const good = readFileSync(path);

    const flipped = Buffer.from(good);
    const i = flipped.length - 5; // inside the last tensor's data
    flipped[i] = flipped[i]! ^ 0x10;
    writeFileSync(path, flipped);
    assert.throws(() => loadCheckpoint(path, model, opt), /checkpoint\.safetensors\): corrupt: checksum mismatch/);
    const meta = Buffer.from(good);
    const at = meta.indexOf('globalStep\\":3'); // JSON inside the header's JSON: quotes escaped
    meta[at + 13] = '4'.charCodeAt(0); // the trainer state in the header: covered too
    writeFileSync(path, meta);
    assert.throws(() => loadCheckpoint(path, model, opt), /checksum mismatch/);

    // NaN with a valid checksum (written by hand): refused by name, not loaded.
    writeFileSync(path, good);
    scope(() => {
      const { tensors, metadata } = loadSafetensors(path);
      const w = [...tensors.keys()].find((k) => k.startsWith('model.') && k.endsWith('weight'))!;
      (tensors.get(w) as Tensor).view(-1).select(0, 2).fill_(Number.NaN);
      const { 'fngd.sha256': _, ...rest } = metadata;
      saveSafetensors(path, tensors, rest, { checksum: true });
      assert.throws(() => loadCheckpoint(path, model, opt), new RegExp(`corrupt checkpoint: tensor '${w.replace(/\./g, '\\.')}' has 1 NaN or infinite value \\(of \\d+\\)`));
    });
    // And saving NaN weights is refused, leaving the file as it was.
    const before = readFileSync(path);
    scope(() => { model.parameters()[0]!.detach().fill_(Number.POSITIVE_INFINITY); });
    assert.throws(() => saveCheckpoint(path, model, opt, state, {}), /refusing to write the checkpoint/);
    assert.deepEqual(readFileSync(path), before);
    opt.dispose();
    model.dispose();
    assert.equal(liveTensors().tensors, base, 'no tensor leaked');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stale temporaries are cleaned when a run opens its folder', () => {
  const dir = tmp('tmpfiles');
  const notes: string[] = [];
  const prev = setWarningHandler((m) => notes.push(m));
  try {
    writeFileSync(join(dir, '.checkpoint.safetensors.12345.1700000000000.tmp'), 'partial');
    writeFileSync(join(dir, '.steps.jsonl.12345.tmp'), 'partial');
    const rd = RunDir.open(dir);
    assert.throws(() => RunDir.open(dir), new RegExp(`in use by process ${process.pid}`), 'one run per folder, in one process too');
    assert.throws(() => RunDir.open(dir, { resume: true }), /in use by process/, 'a resume too: the lock comes first');
    rd.close();
    assert.deepEqual(readdirSync(dir).sort(), ['log.jsonl', 'steps.jsonl']);
    assert.match(notes.join('\n'), /removed \.checkpoint\.safetensors\.12345\.1700000000000\.tmp, a partial checkpoint/);
  } finally {
    setWarningHandler(prev);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('empty data and non-finite metrics are errors, not "loss 0.0000, BLEU 0.00"', async () => {
  const dir = tmp('empty');
  try {
    // Empty Multi30K training files used to train to "loss 0.0000, BLEU 0.00" and exit 0.
    const mt = join(dir, 'multi30k');
    mkdirSync(mt);
    for (const s of ['train', 'val', 'test_2016_flickr']) {
      writeFileSync(join(mt, `${s}.en`), s === 'train' ? '' : 'A dog runs.\n');
      writeFileSync(join(mt, `${s}.de`), s === 'train' ? '' : 'Ein Hund rennt.\n');
    }
    const m = fngd('train', '--task', 'multi30k-transformer', '--data-dir', dir, '--no-progress');
    assert.equal(m.code, 1, m.err);
    assert.match(m.err, /Multi30K: .*multi30k\/train\.en is empty/);
    writeFileSync(join(mt, 'train.en'), 'A dog runs.\n');
    writeFileSync(join(mt, 'train.de'), 'Ein Hund rennt.\n');
    writeFileSync(join(mt, 'val.de'), '');
    assert.throws(() => loadMulti30k({ dataDir: dir }), /Multi30K: .*multi30k\/val\.de is empty/);

    // Fewer samples than one (dropped-last) batch: no step at all.
    manualSeed(1);
    const task = createTask('mnist-mlp', { batchSize: 32, seed: 1, trainLimit: 10, evalLimit: 10 });
    const opt = new SGD(task.model.parameters(), { lr: 0.1 });
    await assert.rejects(new Trainer(task as never, opt, { epochs: 1, seed: 1, progress: false }).fit(),
      /the training set mnist\/train has 10 samples: not one full batch of 32 \(lower the batch size\)/);
    opt.dispose();
    task.dispose();

    // An evaluation that gives NaN stops the run (it used to be logged as null, exit 0).
    const out = join(dir, 'nan');
    const nanEval = (t: ReturnType<typeof createTask>): void => {
      (t as { evaluate: unknown }).evaluate = () => ({ loss: Number.NaN, accuracy: 0.5, metric: 0.5 });
    };
    await assert.rejects(tinyRun(out, { tweak: nanEval }), /epoch 0: test_loss is NaN: the model has diverged or the evaluation is broken; the run stops/);
    assert.deepEqual(lines(join(out, 'log.jsonl')), [], 'nothing logged');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('MNIST files without images are named', () => {
  const dir = tmp('mnist0');
  try {
    const idx = (dims: number[]): Buffer => {
      const b = Buffer.alloc(4 + 4 * dims.length);
      b[2] = 8;
      b[3] = dims.length;
      dims.forEach((d, i) => b.writeUInt32BE(d, 4 + 4 * i));
      return b;
    };
    writeFileSync(join(dir, 'train-images-idx3-ubyte'), idx([0, 28, 28]));
    writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idx([0]));
    copyFileSync(join(dir, 'train-images-idx3-ubyte'), join(dir, 't10k-images-idx3-ubyte'));
    copyFileSync(join(dir, 'train-labels-idx1-ubyte'), join(dir, 't10k-labels-idx1-ubyte'));
    assert.throws(() => loadMnist({ dataDir: dir }), /mnist: .*train-images-idx3-ubyte holds no image/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('batch size 1 with a sum-normalized sample-space method is refused at start; overflowed gradients are named, not an internal error', () => {
  // Every step would be plain SGD on one sample at the batch learning rate: it diverged (loss 9e18).
  for (const opt of ['fngd', 'ngd']) {
    const r = fngd(...TINY, '--optimizer', opt, '--batch-size', '1', '--out', join(tmpdir(), 'fngd-never-made'));
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, new RegExp(`--batch-size 1 with ${opt}: 'sum' normalization turns the 1 x 1 coefficient system into alpha = 1`));
  }
  assert.ok(!existsSync(join(tmpdir(), 'fngd-never-made')), 'refused before the run folder is made');

  const base = liveTensors().tensors;
  // Why: with one sample, 'sum' normalization makes alpha = 1, and NGD's step is SGD's.
  scope(() => {
    const step = (pre: boolean, run = true): number[] => {
      manualSeed(3);
      const model = mlp({ inputSize: 4, hidden: [8], classes: 3 });
      const opt = new SGD(model.parameters(), { lr: 0.5, preconditioner: pre ? ngd(model, { damping: 30 }) : null });
      manualSeed(4);
      const perSampleLoss = crossEntropyPerSample(model.forward(randn([1, 4])) as Tensor, tensor(BigInt64Array.from([2n])));
      const prev = setWarningHandler(() => {});
      if (run) opt.step({ perSampleLoss, sampleIds: Int32Array.from([0]), epoch: 0 });
      setWarningHandler(prev);
      const w = model.parameters().flatMap((p) => p.toArray());
      opt.dispose();
      model.dispose();
      return w;
    };
    const sgd = step(false);
    assertClose(step(true), sgd, 1e-6, 'NGD at B = 1 vs SGD');
    const init = step(false, false);
    assert.ok(sgd.some((w, i) => Math.abs(w - init[i]!) > 1e-3), 'the step moved the weights');
  });
  // What the divergence ended in: per-sample gradients beyond float32 (|h|^2 ~ 1e40), the loss still finite.
  scope(() => {
    manualSeed(3);
    const model = mlp({ inputSize: 4, hidden: [8], classes: 3 });
    const [w1, , w2] = model.parameters();
    scope(() => {
      w1!.detach().mul_(1e19);
      w2!.detach().mul_(1e-5);
    });
    const opt = new SGD(model.parameters(), { lr: 0.1, preconditioner: ngd(model) });
    const x = randn([4, 4]);
    const perSampleLoss = crossEntropyPerSample(model.forward(x) as Tensor, tensor(BigInt64Array.from([0n, 1n, 2n, 0n])));
    assert.ok(Number.isFinite(perSampleLoss.sum().item()), 'the loss is finite');
    assert.throws(() => opt.step({ perSampleLoss, sampleIds: Int32Array.from([0, 1, 2, 3]), epoch: 0 }),
      /NGD: the per-sample gradients overflowed at epoch 0 \(their Gram has NaN or infinite entries\): the training has diverged; lower the learning rate/);
    opt.dispose();
    model.dispose();
  });
  assert.equal(liveTensors().tensors, base, 'no tensor leaked');
});
