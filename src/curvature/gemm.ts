// The two matrix products the curvature engine lives on, X Y^T (Grams) and X^T Y (weight gradients,
// KFAC factors), each with two routes on the CPU in float32: BLAS `mm`, or oneDNN's 1x1 convolution.
// Which is faster depends on the shape and on the machine: on the 2-core Intel dev machine oneDNN
// won from P = 192 (X Y^T, 646 -> 271 us at [128, 784]) and BLAS below, but the thresholds measured
// there were wrong on an AMD EPYC (issue 13). So routes are chosen by measurement, the way
// cudnn.benchmark does, but timed where they run: the first products of a given (kind, shape, dtype,
// device) alternate between the routes inside the training steps, each timed, and once each route
// has run TRIALS times the faster (median, warm-up runs dropped) is cached for the process. Why not
// time them apart, on the first use: on that AMD a product's time depends on what ran just before it
// (libtorch's OpenMP threads and OpenBLAS's own pool share two cores), and isolated timings picked
// oneDNN for the MLP's weight products in some processes, where inside a step `mm` is 1.6x faster:
// that reuse step cost 1.35x SGD's instead of 1.07x. The trial products are the step's own (no
// extra work); their results differ only by float32 rounding.
// Sequence models change the row counts every batch (B x T with T the batch's longest sentence), so
// the cache key rounds the row counts (NT: both operands' rows; TN: the summed rows) up to a power
// of two: a new measurement per octave, not per length. Before that, a Multi30K epoch re-measured
// its output projection's [B T, 7857] Gram product (8 runs of up to 16 s) for nearly every new T.
// Products that take long (over SLOW_MS a run) are decided from one run per route: their timing
// noise is small beside the difference, and every run of the slower route costs a whole product.
// `setGemmAutotune(false)` (or FNGD_GEMM_AUTOTUNE=0) turns measurement off for exact reproducibility:
// the fixed thresholds above decide, so the route (and its rounding) depends on the shape alone.
// `setGemmCache(file)` (or FNGD_GEMM_CACHE=file) keeps the measured routes across processes: read
// at the first product, merged and rewritten (atomically) after each new measurement, and used only
// on the machine that measured them (CPU model, cores, libtorch, OpenBLAS's kernel set); the thread
// count is part of every key.
// Both routes give `mm`'s result up to float32 rounding; other devices and dtypes always use `mm`.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { blasInfo, buildInfo, F, getNumThreads, type Tensor } from '../tensor/index.js';
import { warn } from '../warnings.js';

export type GemmRoute = 'mm' | 'conv';
type Kind = 'NT' | 'TN';

const isRoute = (r: unknown): r is GemmRoute => r === 'mm' || r === 'conv';

/** Row length from which `gemmNT` goes through oneDNN when autotuning is off. */
const NT_CONV_MIN_P = 192;
/** Output size (rows x cols) from which `gemmTN` goes through oneDNN when autotuning is off. */
const TN_CONV_MIN_OUT = 1 << 16;
/** Timed runs per route before a route is chosen (the first of each is a warm-up and not counted). */
const TRIALS = 4;
/** A first run slower than this (ms) on both routes decides alone. */
const SLOW_MS = 50;
/** oneDNN must beat `mm` by 5% to be chosen: `mm` is the plain path, and a near tie should not flip between runs. */
const CONV_MARGIN = 0.95;

let autotune = process.env.FNGD_GEMM_AUTOTUNE !== '0';
const routes = new Map<string, GemmRoute>();
/** Products still being timed: each route's run times (ms) so far. */
const trials = new Map<string, Record<GemmRoute, number[]>>();

let cacheFile: string | null = process.env.FNGD_GEMM_CACHE || null;
let cacheRead = false;

/** Turns measured routing on or off (off: fixed thresholds); clears the cache either way. */
export function setGemmAutotune(on: boolean): void {
  autotune = on;
  routes.clear();
  trials.clear();
  cacheRead = false;
}

/** Where measured routes persist across processes (null: nowhere, the default); clears the in-process cache. */
export function setGemmCache(file: string | null): void {
  cacheFile = file;
  routes.clear();
  trials.clear();
  cacheRead = false;
  writeFailed = false;
}

/**
 * What makes a measurement valid elsewhere: the same CPU, cores, libtorch and OpenBLAS kernel set.
 * The thread count is part of each route's key instead (routeKey), so one file holds both.
 */
function machineKey(): string {
  const b = blasInfo();
  return JSON.stringify({ cpu: cpus()[0]?.model.trim() ?? '?', cores: availableParallelism(), torch: buildInfo().torchVersion, blas: b?.core ?? null });
}

interface CacheFile { machine: string; routes: Record<string, GemmRoute> }

/** The file's routes when it was written on this machine; {} when absent, foreign or unreadable (said once). */
function fileRoutes(file: string): Record<string, GemmRoute> {
  let text: string;
  try {
    if (!existsSync(file)) return {};
    text = readFileSync(file, 'utf8');
  } catch (e) {
    warn('gemm', `gemm route cache ${file} cannot be read (${(e as Error).message}): measuring again`);
    return {};
  }
  let c: Partial<CacheFile> | null;
  try {
    c = JSON.parse(text) as Partial<CacheFile> | null;
  } catch (e) {
    warn('gemm', `gemm route cache ${file} is not JSON (${(e as Error).message}): measuring again, and rewriting it`);
    return {};
  }
  // Routes measured on another machine would be guesses: measure again.
  if (c?.machine !== machineKey() || c.routes === null || typeof c.routes !== 'object') return {};
  const out: Record<string, GemmRoute> = {};
  for (const [k, r] of Object.entries(c.routes)) if (isRoute(r)) out[k] = r;
  return out;
}

function readCache(): void {
  cacheRead = true;
  if (cacheFile === null) return;
  for (const [k, r] of Object.entries(fileRoutes(cacheFile))) routes.set(k, r);
}

let writeFailed = false;

/**
 * Rewrites the file atomically with its current routes and ours (ours win: another run sharing the
 * file keeps what it measured). A failed write is said once and never stops a training step.
 */
function writeCache(): void {
  if (cacheFile === null || writeFailed) return;
  const tmp = `${cacheFile}.${process.pid}.tmp`;
  try {
    const merged = { ...fileRoutes(cacheFile), ...Object.fromEntries(routes) };
    writeFileSync(tmp, `${JSON.stringify({ machine: machineKey(), routes: merged } satisfies CacheFile, null, 1)}\n`);
    renameSync(tmp, cacheFile);
  } catch (e) {
    writeFailed = true;
    rmSync(tmp, { force: true });
    warn('gemm', `gemm route cache ${cacheFile} cannot be written (${(e as Error).message}): routes are kept for this process only`);
  }
}

/** The autotuner's state as a checkpoint keeps it (JSON). */
export interface GemmState {
  /** The machine that measured it (see machineKey). */
  machine: string;
  routes: Record<string, GemmRoute>;
  /** Keys still being timed: each route's run times so far (ms). */
  trials: Record<string, Record<GemmRoute, number[]>>;
}

/**
 * The routes measured so far and the timings in progress. The routes round differently, so a
 * resumed run that measured afresh would not continue the run exactly: the trainer keeps this in
 * its checkpoints and restores it (`restoreGemmState`) on resume.
 */
export function gemmState(): GemmState {
  const t: GemmState['trials'] = {};
  for (const [k, v] of trials) t[k] = { mm: [...v.mm], conv: [...v.conv] };
  return { machine: machineKey(), routes: Object.fromEntries(routes), trials: t };
}

/**
 * Takes over a saved state: its routes and its timings in progress (over any measured here or read
 * from the cache file). Returns whether it was taken; a state that cannot be (autotuning off now, or
 * measured on another machine, where its routes would be guesses) is said through the warning hook,
 * since the products may then round differently from the run that saved it. A key still being timed
 * at the save continues its timing here: its route can then differ from the one the uninterrupted
 * run would have chosen (bit-exact resumes need FNGD_GEMM_AUTOTUNE=0, or every key decided).
 */
export function restoreGemmState(s: GemmState | null | undefined): boolean {
  if (s === null || s === undefined) return false;
  if (!autotune || s.machine !== machineKey()) {
    warn('gemm', `the checkpoint's matrix-product routes are not used (${!autotune ? 'autotuning is off' : 'they were measured on another machine'}): `
      + 'products may round differently from the run that saved it');
    return false;
  }
  if (!cacheRead) readCache();
  const times = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x));
  for (const [k, r] of Object.entries(s.routes ?? {})) if (isRoute(r)) routes.set(k, r);
  for (const [k, t] of Object.entries(s.trials ?? {})) {
    if (!times(t?.mm) || !times(t?.conv)) continue;
    routes.delete(k);
    trials.set(k, { mm: [...t.mm], conv: [...t.conv] });
  }
  return true;
}

/** The routes chosen so far, by `kind:shape:dtype:device:tTHREADS`, row counts rounded (for diagnostics and benchmarks). */
export function gemmRoutes(): Map<string, GemmRoute> {
  return new Map(routes);
}

/** Keys still being timed (used fewer than 2 TRIALS times so far): they alternate between the routes. */
export function gemmRoutesTiming(): string[] {
  return [...trials.keys()];
}

const viaConv = (x: Tensor): boolean => x.dtype === 'float32' && x.device === 'cpu';

function ntConv(x: Tensor, y: Tensor): Tensor {
  const [m, p] = x.shape as [number, number];
  const n = y.size(0);
  // input [1, P, m, 1] whose memory is X row-major (channels last); weight Y as [n, P, 1, 1].
  return F.conv2d(x.contiguous().view(1, m, 1, p).permute(0, 3, 1, 2), y.contiguous().view(n, p, 1, 1)).view(n, m).t();
}

function tnConv(x: Tensor, y: Tensor): Tensor {
  const [rows, m] = x.shape as [number, number];
  const n = y.size(1);
  // input Y as [1, N, 1, n] (channel = row), weight X^T as [m, N, 1, 1]: out[o, w] = sum_r X[r, o] Y[r, w].
  return F.conv2d(y.contiguous().view(1, rows, 1, n), x.t().contiguous().view(m, rows, 1, 1)).view(m, n);
}

const RUN: Record<Kind, Record<GemmRoute, (x: Tensor, y: Tensor) => Tensor>> = {
  NT: { mm: (x, y) => x.mm(y.t()), conv: ntConv },
  TN: { mm: (x, y) => x.t().mm(y), conv: tnConv },
};

function fixedRoute(kind: Kind, x: Tensor, y: Tensor): GemmRoute {
  return kind === 'NT' ? (x.size(1) >= NT_CONV_MIN_P ? 'conv' : 'mm') : (x.size(1) * y.size(1) >= TN_CONV_MIN_OUT ? 'conv' : 'mm');
}

/**
 * The route this product takes from now on: the fixed rule (autotuning off, other devices and
 * dtypes), the route measured for its key, or null while its key is still being timed.
 */
export function gemmRoute(kind: Kind, x: Tensor, y: Tensor): GemmRoute | null {
  return lookup(kind, x, y).route;
}

/** The route and, when autotuned, the cache key (computed once: metadata reads are native calls). */
function lookup(kind: Kind, x: Tensor, y: Tensor): { route: GemmRoute | null; key: string | null } {
  if (!viaConv(x)) return { route: 'mm', key: null };
  if (!autotune) return { route: fixedRoute(kind, x, y), key: null };
  if (!cacheRead) readCache();
  const key = routeKey(kind, x.shape, y.shape);
  return { route: routes.get(key) ?? null, key };
}

/** The product on its route; a key still being timed runs the route with fewer runs, timed. */
function product(kind: Kind, x: Tensor, y: Tensor): Tensor {
  const { route: known, key } = lookup(kind, x, y);
  if (known !== null || key === null) return RUN[kind][known ?? 'mm'](x, y);
  let t = trials.get(key);
  if (t === undefined) trials.set(key, (t = { mm: [], conv: [] }));
  // The n-th timed call takes conv when n has an odd number of 1 bits (mm, conv, conv, mm, conv, mm,
  // mm, conv: the Thue-Morse sequence): a key used 2 or 4 times per step then times each route in
  // each of its places in the step, where strict alternation would time mm always in the same ones.
  const route: GemmRoute = oddBits(t.mm.length + t.conv.length) ? 'conv' : 'mm';
  // On the CPU an op returns when its result is complete: the wall time is the product's.
  const t0 = performance.now();
  const out = RUN[kind][route](x, y);
  t[route].push(performance.now() - t0);
  const decided = decide(t);
  if (decided !== null) {
    trials.delete(key);
    routes.set(key, decided);
    writeCache();
  }
  return out;
}

/**
 * The faster route once both have their runs (null before): medians without the warm-up runs,
 * oneDNN by a margin; slow products by their first runs.
 * @internal exported for tests
 */
export function decide(t: Record<GemmRoute, number[]>): GemmRoute | null {
  if (t.mm.length === 0 || t.conv.length === 0) return null;
  if (Math.min(t.mm[0]!, t.conv[0]!) > SLOW_MS) return t.conv[0]! < t.mm[0]! * CONV_MARGIN ? 'conv' : 'mm';
  if (t.mm.length < TRIALS || t.conv.length < TRIALS) return null;
  const median = (v: number[]): number => [...v.slice(1)].sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)]!;
  return median(t.conv) < median(t.mm) * CONV_MARGIN ? 'conv' : 'mm';
}

function oddBits(n: number): boolean {
  let odd = false;
  for (let m = n; m > 0; m &= m - 1) odd = !odd;
  return odd;
}

const octave = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(n, 1)));

/**
 * The cache key: row counts (NT: m and n; TN: the summed N) rounded up to a power of two, and the
 * thread count (a route measured at one count says little about another).
 */
function routeKey(kind: Kind, x: number[], y: number[]): string {
  const dims = kind === 'NT' ? [octave(x[0]!), octave(y[0]!), x[1]] : [octave(x[0]!), x[1], y[1]];
  // Only float32 CPU products are routed (viaConv).
  return `${kind}:${dims.join('x')}:float32:cpu:t${getNumThreads()}`;
}

/** X Y^T for X [m, P], Y [n, P]: every pair of rows' dot product (Grams). */
export function gemmNT(x: Tensor, y: Tensor, route?: GemmRoute): Tensor {
  return route === undefined ? product('NT', x, y) : RUN.NT[route](x, y);
}

/** X^T Y for X [N, m], Y [N, n]: a sum over the N rows (weight gradients, KFAC factors). */
export function gemmTN(x: Tensor, y: Tensor, route?: GemmRoute): Tensor {
  return route === undefined ? product('TN', x, y) : RUN.TN[route](x, y);
}
