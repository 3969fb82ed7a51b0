// The two matrix products the curvature engine lives on, X Y^T (Grams) and X^T Y (weight gradients,
// KFAC factors), each with two routes on the CPU in float32: BLAS `mm`, or oneDNN's 1x1 convolution.
// Which is faster depends on the shape and on the machine: on the 2-core Intel dev machine oneDNN
// won from P = 192 (X Y^T, 646 -> 271 us at [128, 784]) and BLAS below, but the thresholds measured
// there were wrong on an AMD EPYC (issue 13). So routes are chosen by measurement, the way
// cudnn.benchmark does: on the first product of a given (kind, shape, dtype, device) both routes are
// timed (interleaved, median of a few runs) and the faster is cached for the process.
// Sequence models change the row counts every batch (B x T with T the batch's longest sentence), so
// the cache key rounds the row counts (NT: both operands' rows; TN: the summed rows) up to a power
// of two: a new measurement per octave, not per length. Before that, a Multi30K epoch re-measured
// its output projection's [B T, 7857] Gram product (8 runs of up to 16 s) for nearly every new T.
// Products that take long (over SLOW_MS a run) are decided from one run per route: their timing
// noise is small beside the difference, and every extra run costs a whole product.
// `setGemmAutotune(false)` (or FNGD_GEMM_AUTOTUNE=0) turns measurement off for exact reproducibility:
// the fixed thresholds above decide, so the route (and its rounding) depends on the shape alone.
// `setGemmCache(file)` (or FNGD_GEMM_CACHE=file) keeps the measured routes across processes: read
// at the first product, merged and rewritten (atomically) after each new measurement, and used only
// on the machine that measured them (CPU model, cores, libtorch, OpenBLAS's kernel set); the thread
// count is part of every key.
// Both routes give `mm`'s result up to float32 rounding; other devices and dtypes always use `mm`.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { blasInfo, buildInfo, F, getNumThreads, scope, type Tensor } from '../tensor/index.js';
import { warn } from '../warnings.js';

export type GemmRoute = 'mm' | 'conv';
type Kind = 'NT' | 'TN';

/** Row length from which `gemmNT` goes through oneDNN when autotuning is off. */
const NT_CONV_MIN_P = 192;
/** Output size (rows x cols) from which `gemmTN` goes through oneDNN when autotuning is off. */
const TN_CONV_MIN_OUT = 1 << 16;
/** Timed runs per route (after one warm-up each). */
const TRIALS = 3;
/** A warm-up run slower than this (ms) on both routes decides alone. */
const SLOW_MS = 50;

let autotune = process.env.FNGD_GEMM_AUTOTUNE !== '0';
const routes = new Map<string, GemmRoute>();

let cacheFile: string | null = process.env.FNGD_GEMM_CACHE || null;
let cacheRead = false;

/** Turns measured routing on or off (off: fixed thresholds); clears the cache either way. */
export function setGemmAutotune(on: boolean): void {
  autotune = on;
  routes.clear();
  cacheRead = false;
}

/** Where measured routes persist across processes (null: nowhere, the default); clears the in-process cache. */
export function setGemmCache(file: string | null): void {
  cacheFile = file;
  routes.clear();
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
  for (const [k, r] of Object.entries(c.routes)) if (r === 'mm' || r === 'conv') out[k] = r;
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

/** The routes chosen so far, by `kind:shape:dtype:device:tTHREADS`, row counts rounded (for diagnostics and benchmarks). */
export function gemmRoutes(): Map<string, GemmRoute> {
  return new Map(routes);
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

/** The route for this product: measured once per key, or the fixed rule. */
export function gemmRoute(kind: Kind, x: Tensor, y: Tensor): GemmRoute {
  if (!viaConv(x)) return 'mm';
  if (!autotune) return fixedRoute(kind, x, y);
  if (!cacheRead) readCache();
  const key = routeKey(kind, x, y);
  const known = routes.get(key);
  if (known !== undefined) return known;
  const route = measure(kind, x, y);
  routes.set(key, route);
  writeCache();
  return route;
}

/** Times both routes on this product (interleaved, median of TRIALS after a warm-up) and names the faster. */
function measure(kind: Kind, x: Tensor, y: Tensor): GemmRoute {
  const time = (r: GemmRoute): number => scope(() => {
    const t0 = performance.now();
    RUN[kind][r](x, y).sum().item(); // .item() waits for the result
    return performance.now() - t0;
  });
  const warm = { mm: time('mm'), conv: time('conv') };
  if (Math.min(warm.mm, warm.conv) > SLOW_MS) return warm.conv < warm.mm ? 'conv' : 'mm';
  const t: Record<GemmRoute, number[]> = { mm: [], conv: [] };
  for (let i = 0; i < TRIALS; i++) for (const r of (i % 2 === 0 ? ['mm', 'conv'] : ['conv', 'mm']) as GemmRoute[]) t[r].push(time(r));
  const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  return median(t.conv) < median(t.mm) ? 'conv' : 'mm';
}

const octave = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(n, 1)));

/**
 * The cache key: row counts (NT: m and n; TN: the summed N) rounded up to a power of two, and the
 * thread count (a route measured at one count says little about another).
 */
function routeKey(kind: Kind, x: Tensor, y: Tensor): string {
  const dims = kind === 'NT' ? [octave(x.size(0)), octave(y.size(0)), x.size(1)] : [octave(x.size(0)), x.size(1), y.size(1)];
  return `${kind}:${dims.join('x')}:${x.dtype}:${x.device}:t${getNumThreads()}`;
}

/** X Y^T for X [m, P], Y [n, P]: every pair of rows' dot product (Grams). */
export function gemmNT(x: Tensor, y: Tensor, route?: GemmRoute): Tensor {
  return RUN.NT[route ?? gemmRoute('NT', x, y)](x, y);
}

/** X^T Y for X [N, m], Y [N, n]: a sum over the N rows (weight gradients, KFAC factors). */
export function gemmTN(x: Tensor, y: Tensor, route?: GemmRoute): Tensor {
  return RUN.TN[route ?? gemmRoute('TN', x, y)](x, y);
}
