// Helpers shared by the benchmarks: flags, medians, interleaved side-by-side runs, and a Python
// (Debian python3-torch) worker timed in the same rounds as our code.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { gemmRoutes, gemmRoutesTiming } from '../src/curvature/gemm.js';
import { benchMachine } from './machine.js';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** `--name value` from argv (undefined when absent; a flag without its value is an error). */
export function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new RangeError(`--${name} needs a value`);
  return v;
}

/** `--name N` as a positive integer (undefined when absent); anything else is an error naming the flag. */
export function positiveFlag(argv: string[], name: string, owner: string): number | undefined {
  const v = flag(argv, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${owner}: --${name} must be a positive integer, got '${v}'`);
  return n;
}

/**
 * Untimed steps of every contender before a small model's step timing (the MNIST MLP; bench:optimizers,
 * `fngd bench`, the demo): V8 compiles, and after deoptimizations recompiles, a step's JavaScript over
 * its first few hundred steps, on a thread that competes with BLAS's on two cores. On an 8 ms step
 * that shows; a training run pays it once. ResNet-20's and the Transformer's steps hide it.
 */
export const MLP_WARMUP_STEPS = 300;

/** A flag that must be a non-negative integer (undefined when absent). */
export function nonNegativeFlag(argv: string[], name: string, owner: string): number | undefined {
  const v = flag(argv, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${owner}: --${name} must be a non-negative integer, got '${v}'`);
  return n;
}

/**
 * Seconds that `iters` steps take, measured over whole periods of `period` steps (an optimizer's
 * `costPeriod`) and scaled to `iters`: a step whose cost repeats every `period` steps is timed over
 * full cycles, never over a block that misses or repeats the costly one.
 */
export function timeWholePeriods(iters: number, period: number, step: () => void): number {
  const steps = Math.ceil(iters / period) * period;
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  return ((performance.now() - t0) / 1000) * (iters / steps);
}

/** Seconds taken by `n` calls of `fn`. */
export function timeIt(fn: () => void, n: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Per-call seconds of every contender, one entry per timed round (rounds are aligned across contenders). */
export type RoundSamples = Record<string, number[]>;

/** A seeded shuffler (xorshift32: small and deterministic, enough for a handful of names). */
function shuffler(seed: number): <T>(xs: readonly T[]) => T[] {
  let state = seed >>> 0 || 1;
  const random = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  return (xs) => {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  };
}

/**
 * Runs each contender `iters` times per round, for `rounds` rounds after one warm-up round, in a
 * fresh random order every round (seeded, so reruns time the same schedule). Why shuffled: a
 * contender's time depends a few percent on which one ran just before it (caches, the allocator's
 * free lists, sleeping thread pools); a fixed order turns that into a bias, a shuffled one into noise
 * that the median removes. Short blocks (small `iters`) keep slow machine drift out of the ratios.
 * Returns per-call seconds per round.
 */
export async function interleaveRounds(
  contenders: Record<string, (iters: number) => number | Promise<number>>,
  o: { rounds: number; iters: number; seed?: number },
): Promise<RoundSamples> {
  const names = Object.keys(contenders);
  const samples: RoundSamples = {};
  for (const k of names) samples[k] = [];
  const shuffle = shuffler(o.seed ?? 1);
  for (let r = -1; r < o.rounds; r++) {
    for (const k of shuffle(names)) {
      const secs = await contenders[k]!(o.iters);
      if (r >= 0) samples[k]!.push(secs / o.iters);
    }
  }
  return samples;
}

/**
 * Times every contender against a reference that brackets it: each round (after a warm-up round)
 * runs the reference, then each other contender in a fresh seeded order, each followed by the
 * reference again. A contender's sample for the round is its time over the mean of the two reference
 * blocks around it. Why: on a shared machine the step time drifts with the other tenants of the
 * host (successive ResNet-20 steps correlate, r = 0.57 at lag 1, with a 10% spread), and the
 * blocks right before and after cancel a drift that is linear over the bracket, which one reference
 * block per round does not: for two identical SGD contenders the per-round spread of the ratio
 * halved. Returns each contender's per-round ratios and per-call seconds, and every reference
 * block's per-call seconds.
 */
export async function bracketedRatios(
  contenders: Record<string, (iters: number) => number | Promise<number>>,
  reference: string,
  o: { rounds: number; iters: number; seed?: number },
): Promise<{ ratios: RoundSamples; times: RoundSamples; reference: number[] }> {
  const ref = contenders[reference];
  if (ref === undefined) throw new RangeError(`bracketedRatios: no contender named '${reference}'`);
  const others = Object.keys(contenders).filter((k) => k !== reference);
  const ratios: RoundSamples = {};
  const times: RoundSamples = {};
  for (const k of others) {
    ratios[k] = [];
    times[k] = [];
  }
  const refTimes: number[] = [];
  const shuffle = shuffler(o.seed ?? 1);
  for (let r = -1; r < o.rounds; r++) {
    let before = (await ref(o.iters)) / o.iters;
    if (r >= 0) refTimes.push(before);
    for (const k of shuffle(others)) {
      const t = (await contenders[k]!(o.iters)) / o.iters;
      const after = (await ref(o.iters)) / o.iters;
      if (r >= 0) {
        ratios[k]!.push(t / ((before + after) / 2));
        times[k]!.push(t);
        refTimes.push(after);
      }
      before = after;
    }
  }
  return { ratios, times, reference: refTimes };
}

/** The median of ratios, their interquartile range, and a 95% confidence interval of the median. */
export interface RatioSummary {
  median: number;
  q1: number;
  q3: number;
  /**
   * Distribution-free, from order statistics (Conover, Practical Nonparametric Statistics): the
   * r-th and s-th smallest of n ratios, r = round(n/2 - 0.98 sqrt(n)), s = round(1 + n/2 + 0.98 sqrt(n)),
   * clamped to the sample; the interquartile range says how much rounds differ, this how well the
   * median itself is known.
   */
  ci95: [number, number];
}

export function summarizeRatios(ratios: readonly number[]): RatioSummary {
  if (ratios.length === 0) throw new RangeError('summarizeRatios: no ratios');
  const r = [...ratios].sort((x, y) => x - y);
  const n = r.length;
  const at = (q: number): number => {
    const pos = q * (n - 1);
    const lo = Math.floor(pos);
    return r[lo]! + (r[Math.min(lo + 1, n - 1)]! - r[lo]!) * (pos - lo);
  };
  const half = 0.98 * Math.sqrt(n);
  const lo = Math.min(n, Math.max(1, Math.round(n / 2 - half)));
  const hi = Math.min(n, Math.max(1, Math.round(1 + n / 2 + half)));
  return { median: median(r), q1: at(0.25), q3: at(0.75), ci95: [r[lo - 1]!, r[hi - 1]!] };
}

/** `interleaveRounds`, reduced to each contender's median per-call seconds. */
export async function interleave(
  contenders: Record<string, (iters: number) => number | Promise<number>>,
  o: { rounds: number; iters: number; seed?: number },
): Promise<Record<string, number>> {
  const samples = await interleaveRounds(contenders, o);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(samples)) out[k] = median(v);
  return out;
}

export const PYTHON = process.env.FNGD_PYTHON ?? '/usr/bin/python3';

/** Whether Debian's python3-torch (or FNGD_PYTHON's torch) can be imported. */
export function pythonTorchVersion(): string | null {
  const r = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/**
 * A long-lived Python process that runs a benchmark body on request: `setup` runs once, then each
 * `run(n)` executes `body` n times and reports the seconds taken. It waits on stdin between
 * requests, so it never competes with our own timed code for the cores.
 */
export class PythonWorker {
  #proc: ChildProcessWithoutNullStreams;
  #lines: Interface;
  #pending: ((line: string) => void)[] = [];
  #stderr = '';

  constructor(setup: string, body: string, threads: number) {
    const indent = (s: string, n: number): string => s.split('\n').map((l) => ' '.repeat(n) + l).join('\n');
    const script = [
      'import sys, time, torch',
      `torch.set_num_threads(${threads})`,
      setup,
      'def _body():',
      indent(body, 4),
      'for _line in sys.stdin:',
      '    _n = int(_line)',
      '    _t0 = time.perf_counter()',
      '    for _ in range(_n):',
      '        _body()',
      '    print(time.perf_counter() - _t0, flush=True)',
    ].join('\n');
    this.#proc = spawn(PYTHON, ['-c', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#proc.stderr.on('data', (d: Buffer) => { this.#stderr += d.toString(); });
    this.#lines = createInterface({ input: this.#proc.stdout });
    this.#lines.on('line', (l) => this.#pending.shift()?.(l));
    this.#proc.on('exit', (code) => {
      for (const p of this.#pending.splice(0)) p(`ERROR exit ${code}: ${this.#stderr}`);
    });
  }

  run(n: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#pending.push((line) => {
        const v = Number(line);
        if (Number.isFinite(v)) resolve(v);
        else reject(new Error(`python worker: ${line}`));
      });
      this.#proc.stdin.write(`${n}\n`);
    });
  }

  close(): void {
    this.#proc.stdin.end();
    this.#lines.close();
  }
}

/**
 * Prints a benchmark's result: one JSON line with --json, which also records the machine and the
 * gemm routes this process measured ('timing' for keys not decided yet; a route picked wrongly moves a
 * step ratio by tens of percent);
 * otherwise a readable table.
 */
export function report(result: Record<string, unknown>, json: boolean): void {
  if (json) {
    const timing = Object.fromEntries(gemmRoutesTiming().map((k) => [k, 'timing']));
    console.log(JSON.stringify({ ...result, gemm_routes: { ...Object.fromEntries(gemmRoutes()), ...timing }, machine: benchMachine() }));
    return;
  }
  const w = Math.max(...Object.keys(result).map((k) => k.length));
  for (const [k, v] of Object.entries(result)) {
    console.log(`${k.padEnd(w)}  ${typeof v === 'number' ? Number(v.toPrecision(4)) : JSON.stringify(v)}`);
  }
}
