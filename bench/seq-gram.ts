// Gram cost at Multi30K size: the multi30k-transformer task's own model (d 256, 4 heads, 3+3 layers,
// FFN 512, vocabularies 5,977 and 7,857) on real training batches of 128 sentence pairs, one thread.
//   npm run bench:seq-gram [-- --json] [-- --reps N] [-- --data-dir DIR]
// Three batches of epoch 0 (seed 0, bucketed as in training): the shortest, the median and the
// longest target length. Per batch:
//   ms_forward, ms_capture      the forward and the capture's one backward (median of reps)
//   ms_grams_auto               every covered layer's Gram by the cost model's choice, summed by kind:
//                               linear (sequence Linears), embedding, output (the generator, V = 7,857)
//   layers                      for one layer of each kind, both methods forced: ms, the cost model's
//                               estimate (multiply-adds), work-buffer bytes, and which one it picks
//   peak                        resident memory, each in a child process: the RSS with the model and
//                               batch made (base), after the capture (held), and the high-water marks
//                               after the capture and after all the Grams; `gram_phase_mb_at_most`
//                               bounds what the Grams added above the held capture
// Every timed Gram follows one untimed run (the product routes are measured on first use,
// src/curvature/gemm.ts), except a run that took over 10 s: it is the one sample.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CurvatureEngine, layerGram, planGram, type Capture, type GramMethod } from '../src/curvature/index.js';
import type { TranslationBatch } from '../src/data/index.js';
import { AdamW } from '../src/optim/index.js';
import { getNumThreads, noGrad, scope, setNumThreads } from '../src/tensor/index.js';
import { createTask } from '../src/train/tasks.js';
import type { Task } from '../src/train/task.js';
import { flag, median, positiveFlag, report } from './timing.js';

const argv = process.argv.slice(2);
const json = argv.includes('--json');
const reps = positiveFlag(argv, 'reps', 'bench:seq-gram') ?? 2;
const dataDir = flag(argv, 'data-dir');
const B = 128;
const MAX_BYTES = 256 * 2 ** 20; // the engine's default bound
const SINGLE_RUN_MS = 10_000;
/** One layer of each kind (sequence Linears over source and target, embeddings, the output projection). */
const PROBES = [
  'encoder.layers.0.self_attn.q_proj', 'decoder.layers.0.multihead_attn.k_proj', 'decoder.layers.0.linear1', 'decoder.layers.0.linear2',
  'src_embed', 'tgt_embed', 'generator',
];
const kindOf = (name: string, kind: string): string => (name === 'generator' ? 'output' : kind);

setNumThreads(1);
const task = createTask('multi30k-transformer', { batchSize: B, seed: 0, dataDir }) as Task<TranslationBatch>;
const epoch = task.trainLoader.epoch(0);

/** Batch indices of the shortest, median and longest target length in epoch 0. */
function pickBatches(): { label: string; index: number }[] {
  const lens: { k: number; t: number }[] = [];
  for (let k = 0; k < epoch.length; k++) lens.push({ k, t: scope(() => epoch.batch(k).tgtIn.size(1)) });
  lens.sort((a, b) => a.t - b.t || a.k - b.k);
  return [['short', 0], ['median', lens.length >> 1], ['long', lens.length - 1]].map(([label, i]) => ({ label: label as string, index: lens[i as number]!.k }));
}

const ms = (t0: number): number => performance.now() - t0;

/** Median ms of `fn` over reps after one untimed run; a first run over SINGLE_RUN_MS is the only sample. */
function timeGram(fn: () => void): { ms: number; runs: number } {
  let t0 = performance.now();
  scope(fn);
  const first = ms(t0);
  if (first > SINGLE_RUN_MS) return { ms: first, runs: 1 };
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    t0 = performance.now();
    scope(fn);
    ts.push(ms(t0));
  }
  return { ms: median(ts), runs: reps };
}

// ---- child mode: peak memory of one batch's capture and Grams ---------------------------------
if (argv[0] === '--child') {
  const index = Number(argv[1]);
  const engine = new CurvatureEngine(task.model, { maxBytes: MAX_BYTES });
  const kb = (): number => process.resourceUsage().maxRSS;
  const mb = (bytes: number): number => Math.round(bytes / 2 ** 20);
  scope(() => {
    const batch = epoch.batch(index);
    const base = process.memoryUsage().rss;
    const cap = engine.capture(task.perSampleLoss(batch));
    const held = process.memoryUsage().rss;
    const peakCapture = kb() * 1024;
    cap.grams();
    const peakGrams = kb() * 1024;
    console.log(JSON.stringify({
      base_mb: mb(base), held_mb: mb(held), peak_after_capture_mb: mb(peakCapture), peak_after_grams_mb: mb(peakGrams),
      gram_phase_mb_at_most: mb(peakGrams - held),
    }));
  });
  process.exit(0);
}

function childPeak(index: number): Record<string, number> {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, [self, '--child', String(index), ...(dataDir === undefined ? [] : ['--data-dir', dataDir])], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bench child ${index} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, number>;
}

// ---- main ---------------------------------------------------------------------------------------
const engine = new CurvatureEngine(task.model, { maxBytes: MAX_BYTES });
const adamw = new AdamW(task.model.parameters(), { lr: 1e-9 });
const result: Record<string, unknown> = {};
for (const { label, index } of pickBatches()) {
  const out: Record<string, unknown> = {};
  scope(() => {
    const batch = epoch.batch(index);
    out.src_T = batch.src.size(1);
    out.tgt_T = batch.tgtIn.size(1);
    out.tgt_tokens = batch.numTgtTokens;
    // A plain AdamW step on the same batch, for scale (engine off).
    engine.disable();
    const steps: number[] = [];
    for (let r = 0; r <= reps; r++) {
      const t0 = performance.now();
      scope(() => adamw.step({ perSampleLoss: task.perSampleLoss(batch), sampleIds: batch.ids, epoch: 0 }));
      if (r > 0) steps.push(ms(t0));
    }
    out.ms_adamw_step = median(steps);
    engine.enable();
    const fwd: number[] = [];
    const bwd: number[] = [];
    let cap: Capture | null = null;
    for (let r = 0; r <= reps; r++) {
      cap?.dispose();
      let t0 = performance.now();
      const loss = task.perSampleLoss(batch);
      fwd.push(ms(t0));
      t0 = performance.now();
      cap = engine.capture(loss);
      bwd.push(ms(t0));
    }
    out.ms_forward = median(fwd.slice(1));
    out.ms_capture = median(bwd.slice(1));
    const c = cap!;
    const byKind: Record<string, number> = {};
    const plans = c.plan({ maxBytes: MAX_BYTES });
    for (const p of plans) {
      if (p.bytes > MAX_BYTES) throw new Error(`${p.name}: plan needs ${p.bytes} bytes > maxBytes`);
      const k = kindOf(p.name, p.kind);
      byKind[k] = (byKind[k] ?? 0) + timeGram(() => { layerGram(c.layer(p.name), p); }).ms;
    }
    out.ms_grams_auto = Object.fromEntries(Object.entries(byKind).map(([k, v]) => [k, Math.round(v)]));
    out.ms_grams_auto_total = Math.round(Object.values(byKind).reduce((a, b) => a + b, 0));
    out.chosen = Object.fromEntries(['pairwise', 'materialize'].map((m) => [m, plans.filter((p) => p.method === m).length]));
    const layers: Record<string, unknown> = {};
    for (const name of PROBES) {
      const l = c.layer(name);
      const auto = planGram(l, MAX_BYTES);
      const entry: Record<string, unknown> = { T: l.positions, params: l.paramCount, chosen: auto.method };
      for (const m of ['pairwise', 'materialize'] as GramMethod[]) {
        let plan;
        try {
          plan = planGram(l, MAX_BYTES, m);
        } catch {
          entry[m] = 'does not fit';
          continue;
        }
        const t = noGrad(() => timeGram(() => { layerGram(l, plan); }));
        entry[m] = { ms: Math.round(t.ms), runs: t.runs, est_madds: Number(plan.flops.toPrecision(3)), mb: Math.round(plan.bytes / 2 ** 20), block: plan.block, ...(plan.split ? { split: plan.split } : {}) };
      }
      const times = ['pairwise', 'materialize'].map((m) => (entry[m] as { ms?: number }).ms ?? Infinity);
      entry.faster = times[0]! <= times[1]! ? 'pairwise' : 'materialize';
      layers[name] = entry;
    }
    out.layers = layers;
    c.dispose();
  });
  out.peak = childPeak(index);
  result[label] = out;
}
adamw.dispose();
engine.dispose();
task.dispose();
report({ ...result, batch: B, max_bytes: MAX_BYTES, reps, threads: getNumThreads() }, json);
