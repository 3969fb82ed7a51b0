// Fuzzing the native boundary: seeded random calls across the tensor API and `callOp` (every
// registered schema, internal and refused ones included), with random shapes (empty and zero-size
// too), dtypes, scalars (NaN, Inf, huge) and wrongly typed arguments. The calls run in a child
// process, so a crash shows as a signal and a hang as a timeout; the parent reports the seed and the
// last call. Every error must be a JS Error whose message starts with the operator or function it
// came from (docs/native-policy.md).
//   npm run fuzz                                          100,000 calls, one JSON line
//   node dist/bench/fuzz.js --calls N [--seed S] [--timeout SECONDS]
import { spawn } from 'node:child_process';
import { writeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { flag, positiveFlag } from './timing.js';

export interface FuzzResult {
  seed: number;
  /** Calls made (all of them unless the child died). */
  calls: number;
  ok: number;
  errors: number;
  /** Errors that were refusals by the operator policy. */
  refused: number;
  /** Distinct operators and API functions called. */
  covered: number;
  /** Errors that were not Errors, or whose message did not start with the operator's name: count and a few. */
  unnamed: number;
  unnamedExamples: { call: string; message: string }[];
  /** Set when the child died (signal or exit code) or hung: what it was doing. */
  crash: { signal: string | null; exitCode: number | null; timedOut: boolean; lastCall: string; stderrTail: string } | null;
  seconds: number;
}

/** Runs `calls` seeded random calls in a child process and reports how they ended. */
export function fuzz(o: { calls: number; seed: number; timeoutS?: number }): Promise<FuzzResult> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', '--calls', String(o.calls), '--seed', String(o.seed)], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    // one libtorch thread: the fuzz is about the boundary, not speed, and shares small machines
    env: { ...process.env, FNGD_NUM_THREADS: '1' },
  });
  let lastCall = '(none yet)';
  let summary: Omit<FuzzResult, 'crash' | 'seconds'> | null = null;
  let pending = '';
  const progress = child.stdio[3] as Readable;
  progress.setEncoding('utf8');
  progress.on('data', (chunk: string) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith('call ')) lastCall = line.slice(5);
      else if (line.startsWith('arg ') && lastCall.length < 2000) lastCall += ` <- ${line.slice(4)}`;
      else if (line.startsWith('done ')) summary = JSON.parse(line.slice(5));
    }
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => { stderr = (stderr + s).slice(-4000); });
  let timedOut = false;
  const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, (o.timeoutS ?? 600) * 1000);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const seconds = (performance.now() - t0) / 1000;
      const s = summary as Omit<FuzzResult, 'crash' | 'seconds'> | null;
      if (s !== null && code === 0 && !timedOut) {
        resolve({ ...s, crash: null, seconds });
        return;
      }
      const callsMade = Number(/^(\d+) /.exec(lastCall)?.[1] ?? 0);
      resolve({
        seed: o.seed, calls: s?.calls ?? callsMade, ok: s?.ok ?? 0, errors: s?.errors ?? 0, refused: s?.refused ?? 0, covered: s?.covered ?? 0,
        unnamed: s?.unnamed ?? 0, unnamedExamples: s?.unnamedExamples ?? [],
        crash: { signal, exitCode: code, timedOut, lastCall, stderrTail: stderr.slice(-1500) }, seconds,
      });
    });
  });
}

// ---- the child: the calls themselves ------------------------------------------------------------

type T = typeof import('../src/tensor/index.js');
type Tensor = import('../src/tensor/index.js').Tensor;

/** mulberry32: small, seedable, good enough to pick arguments (and the kill moments of test/runs.test.ts). */
export class Rng {
  #s: number;
  constructor(seed: number) { this.#s = seed >>> 0; }
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number { return Math.floor(this.next() * n); }
  chance(p: number): boolean { return this.next() < p; }
  pick<V>(xs: readonly V[]): V { return xs[this.int(xs.length)]!; }
}

// Sizes stay small (a few dozen elements, ints up to 4) so that no operator can build a huge output
// from them (combinations, cartesian_prod, repeat); "huge" ints are 2^40 and up, which no allocator
// grants, never 2^31..2^35, which one might (and then fill, swapping a shared machine).
const SPECIAL = [NaN, Infinity, -Infinity, 1e30, -1e30, 1e308, 5e-324, -0, 2 ** 53, 2 ** 63, -(2 ** 63), 300, 1.5, -0.5];
const HUGE_INT = [2 ** 40, -(2 ** 40), 2 ** 62, 2 ** 63, -(2 ** 63), 1e30, NaN, Infinity, 1.5, -2.5];
const DTYPES = ['float32', 'float32', 'float64', 'float64', 'int64', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool', 'float16', 'bfloat16'] as const;
const STRINGS = ['mean', 'none', 'sum', 'L', 'U', 'reduced', 'complete', 'tanh', 'floor', 'trunc', 'left', 'right', 'ij', 'xy', 'valid', 'same',
  'fro', 'nuc', 'reflect', 'constant', 'bilinear', 'nearest', 'ortho', 'backward', 'ii->i', 'ij,jk->ik', 'bij->', '', 'x', '\u00e9'];

class Gen {
  pool: Tensor[] = [];
  graveyard: Tensor[] = [];
  generator: unknown;
  /** Told of each argument drawn for an API call (the call's description is written before it runs). */
  onDraw: ((v: unknown) => void) | null = null;
  constructor(readonly T: T, readonly rng: Rng) {
    this.generator = new T.Generator(rng.int(1000));
  }

  shape(): number[] {
    for (;;) {
      const rank = this.rng.pick([0, 1, 1, 2, 2, 2, 3, 3, 4]);
      const s = Array.from({ length: rank }, () => this.rng.pick([0, 1, 2, 2, 3, 3, 4]));
      if (s.reduce((a, b) => a * b, 1) <= 24) return s;
    }
  }

  /** A fresh tensor of a random dtype, shape and layout; values include NaN, Inf and extremes. */
  fresh(): Tensor {
    const { T, rng } = this;
    const dtype = rng.pick(DTYPES);
    const shape = this.shape();
    const n = shape.reduce((a, b) => a * b, 1);
    let t: Tensor;
    if (dtype === 'bool') {
      t = T.tensor(Array.from({ length: n }, () => rng.chance(0.5)), { shape });
    } else if (dtype.startsWith('int') || dtype === 'uint8') {
      // small values (valid indices, mostly), and far out-of-range indices in the wide types
      const lo = dtype === 'uint8' ? 0 : -3;
      const far = dtype === 'int64' || dtype === 'int32' ? [100_000, -100_000, 2 ** 30, -(2 ** 30)] : [];
      t = T.tensor(Array.from({ length: n }, () => (far.length && rng.chance(0.05) ? rng.pick(far) : lo + rng.int(8))), { dtype, shape });
    } else {
      const vals = Array.from({ length: n }, () => (rng.chance(0.15) ? rng.pick(SPECIAL) : (rng.next() - 0.5) * 6));
      t = T.tensor(vals, { dtype: 'float64', shape }).to(dtype);
    }
    if (shape.length >= 2 && rng.chance(0.2)) t = t.transpose(0, shape.length - 1);
    else if (shape.length >= 1 && shape[0] === 1 && rng.chance(0.3)) t = t.expand([3, ...shape.slice(1)]);
    else if (shape.length >= 1 && rng.chance(0.1)) t = t.slice(0, 0, null, 2);
    if (t.dtype.startsWith('float') && t.isLeaf && rng.chance(0.15)) t.requiresGrad_();
    return t;
  }

  fill(n: number): void {
    for (let i = 0; i < n; i++) this.pool.push(this.T.keep(this.T.scope(() => this.fresh())));
    for (let i = 0; i < 2; i++) {
      const d = this.T.keep(this.T.zeros([2]));
      d.dispose();
      this.graveyard.push(d);
    }
  }

  /** Replaces a pool slot; the old tensor is disposed (callers do this outside the call's scope). */
  replace(t: Tensor): void {
    if (this.pool.includes(t)) return; // an in-place method returned its pool tensor
    const i = this.rng.int(this.pool.length);
    this.pool[i]!.dispose();
    this.pool[i] = t;
  }

  drawn<V>(v: V): V {
    this.onDraw?.(v);
    return v;
  }
  tensor(): Tensor {
    return this.drawn(this.rng.chance(0.03) ? this.rng.pick(this.graveyard) : this.rng.pick(this.pool));
  }
  tensors(): Tensor[] {
    return Array.from({ length: this.rng.int(4) }, () => this.tensor());
  }
  int(): number {
    return this.drawn(this.rng.chance(0.08) ? this.rng.pick(HUGE_INT) : this.rng.int(7) - 2);
  }
  dim(): number {
    return this.drawn(this.rng.chance(0.05) ? this.rng.pick(HUGE_INT) : this.rng.int(7) - 3);
  }
  ints(fixed?: number): number[] {
    return this.drawn(Array.from({ length: fixed ?? this.rng.int(5) }, () => (this.rng.chance(0.05) ? this.rng.pick(HUGE_INT) : this.rng.int(5))));
  }
  scalar(): number {
    return this.drawn(this.rng.chance(0.25) ? this.rng.pick(SPECIAL) : this.rng.pick([0, 1, -1, 2, 0.5, 3, 1e-3, -2]));
  }
  scalarOrBool(): number | boolean {
    return this.rng.chance(0.1) ? this.drawn(this.rng.chance(0.5)) : this.scalar();
  }
  dtype(): unknown {
    return this.drawn(this.rng.chance(0.1) ? this.rng.pick(['float7', 3, 12, 99, -1, 1.5, null]) : this.rng.pick(DTYPES));
  }
  device(): unknown {
    return this.drawn(this.rng.pick(['cpu', 'cpu', 'cpu', 'meta', 'cuda', 'cuda:7', 'tpu', 'cpu:0', 3]));
  }
  str(): string {
    return this.drawn(this.rng.pick(STRINGS));
  }
  /** Any value at all: the wrong type for most arguments. */
  any(): unknown {
    const { rng } = this;
    switch (rng.int(13)) {
      case 0: return this.tensor();
      case 1: return this.scalar();
      case 2: return this.int();
      case 3: return this.str();
      case 4: return this.drawn(rng.chance(0.5));
      case 5: return this.drawn(null);
      case 6: return this.drawn(undefined);
      case 7: return this.ints();
      case 8: return this.tensors();
      case 9: return this.drawn({});
      case 10: return this.drawn(BigInt(rng.int(5000))); // a guessed tensor id
      case 11: return this.drawn([this.scalar(), 'x']);
      default: return this.drawn(this.rng.pick(this.graveyard));
    }
  }
  /** `make()` most of the time, a wrong value sometimes. */
  or<V>(make: () => V): V | unknown {
    return this.rng.chance(0.08) ? this.any() : make();
  }
}

/** One argument of an operator schema, e.g. "int[2] stride=[1, 1]" or "Tensor(a!) self". */
interface SchemaArg { type: string; name: string; hasDefault: boolean }

function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote = '';
  let cur = '';
  for (const c of s) {
    if (quote) {
      if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (c === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
      continue;
    }
    cur += c;
  }
  if (cur.trim() !== '') out.push(cur.trim());
  return out;
}

export function parseSchema(schema: string): { name: string; args: SchemaArg[] } {
  const open = schema.indexOf('(');
  const name = schema.slice(0, open);
  let depth = 0;
  let close = open;
  for (let i = open; i < schema.length; i++) {
    if (schema[i] === '(') depth++;
    else if (schema[i] === ')' && --depth === 0) { close = i; break; }
  }
  const args: SchemaArg[] = [];
  for (const part of splitTopLevel(schema.slice(open + 1, close))) {
    if (part === '*') continue;
    let d = 0;
    let split = part.length;
    for (let i = 0; i < part.length; i++) {
      const c = part[i];
      if (c === '(' || c === '[') d++;
      else if (c === ')' || c === ']') d--;
      else if (c === ' ' && d === 0) { split = i; break; }
    }
    const type = part.slice(0, split);
    const rest = part.slice(split + 1);
    const eq = rest.indexOf('=');
    args.push({ type, name: eq < 0 ? rest : rest.slice(0, eq), hasDefault: eq >= 0 });
  }
  return { name, args };
}

/** A value for a schema type, usually of the right kind. */
function valueFor(g: Gen, type: string): unknown {
  const rng = g.rng;
  if (rng.chance(0.07)) return g.any();
  if (type.endsWith('?') && rng.chance(0.25)) return null;
  const t = type.replace(/\(.*?\)/g, '').replace(/\?$/, '');
  const fixed = /\[(\d+)\]$/.exec(t);
  if (/^Tensor\??\[\]$/.test(t)) return g.tensors().map((x) => (t.startsWith('Tensor?') && rng.chance(0.2) ? null : x));
  if (t === 'Tensor') return g.tensor();
  if (/^(int|SymInt)\[\d*\]$/.test(t)) return rng.chance(0.1) && fixed ? g.int() : g.ints(fixed ? Number(fixed[1]) : undefined);
  if (t === 'int' || t === 'SymInt') return g.int();
  if (t === 'float') return g.scalar();
  if (/^float\[\d*\]$/.test(t)) return Array.from({ length: fixed ? Number(fixed[1]) : rng.int(4) }, () => g.scalar());
  if (t === 'bool') return rng.chance(0.5);
  if (/^bool\[\d*\]$/.test(t)) return Array.from({ length: fixed ? Number(fixed[1]) : rng.int(4) }, () => rng.chance(0.5));
  if (t === 'Scalar') return g.scalarOrBool();
  if (t === 'str') return g.str();
  if (t === 'ScalarType') return g.dtype();
  if (t === 'Layout') return rng.pick(['strided', 0, 1, 2, 7, 99]);
  if (t === 'MemoryFormat') return rng.pick(['contiguous', 'channels_last', 'preserve', 0, 3, 4, 9]);
  if (t === 'Device') return g.device();
  if (t === 'Generator') return g.generator;
  return g.any();
}

type ApiCall = [names: string, run: (g: Gen) => unknown];

/** The public tensor API, each entry with the names its errors may start with. */
function apiCalls(T: T): ApiCall[] {
  const { F, linalg } = T;
  const t = (g: Gen): Tensor => g.tensor();
  const ts = (g: Gen): unknown => g.or(() => g.tensor());
  const tsOrScalar = (g: Gen): unknown => (g.rng.chance(0.5) ? ts(g) : g.or(() => g.scalarOrBool()));
  const dim = (g: Gen): unknown => g.or(() => g.dim());
  const int = (g: Gen): unknown => g.or(() => g.int());
  const sc = (g: Gen): unknown => g.or(() => g.scalar());
  const shape = (g: Gen): unknown => g.or(() => g.ints());
  const u = <V>(v: V): never => v as never;
  const calls: ApiCall[] = [];
  const binary = ['add', 'sub', 'mul', 'div'] as const;
  for (const m of binary) calls.push([`aten::${m}`, (g) => t(g)[m](u(tsOrScalar(g)))]);
  for (const m of binary) calls.push([`aten::${m}_`, (g) => t(g)[`${m}_`](u(tsOrScalar(g)))]);
  calls.push(['aten::add', (g) => t(g).add(u(tsOrScalar(g)), u(sc(g)))]);
  calls.push(['aten::pow', (g) => t(g).pow(u(tsOrScalar(g)))]);
  calls.push(['aten::remainder', (g) => t(g).remainder(u(sc(g)))]);
  const unary = ['neg', 'abs', 'sign', 'exp', 'log', 'log1p', 'sqrt', 'rsqrt', 'square', 'reciprocal', 'sin', 'cos', 'floor', 'round',
    'relu', 'tanh', 'sigmoid', 'silu', 'isnan', 'all', 'any', 'isfinite', 't', 'clone', 'contiguous', 'detach', 'float', 'double', 'long',
    'bool', 'cpu', 'zero_', 'sqrt_'] as const;
  for (const m of unary) {
    calls.push([`aten::(${m}|to)`, (g) => {
      const x = t(g);
      return (x[m] as () => unknown).call(x);
    }]);
  }
  calls.push(['aten::gelu', (g) => t(g).gelu(u(g.or(() => g.rng.pick(['none', 'tanh', 'erf'])))) ]);
  calls.push(['aten::clamp', (g) => t(g).clamp(u(g.rng.chance(0.3) ? null : sc(g)), u(g.rng.chance(0.3) ? null : sc(g)))]);
  calls.push(['aten::clamp_', (g) => t(g).clamp_(u(g.rng.chance(0.3) ? null : sc(g)), u(g.rng.chance(0.3) ? null : sc(g)))]);
  calls.push(['aten::(maximum|minimum)', (g) => (g.rng.chance(0.5) ? t(g).maximum(u(ts(g))) : t(g).minimum(u(ts(g))))]);
  calls.push(['aten::where', (g) => t(g).where(u(ts(g)), u(tsOrScalar(g)))]);
  calls.push(['(aten::masked_fill|maskedFill)', (g) => t(g).maskedFill(u(ts(g)), u(g.or(() => g.scalarOrBool())))]);
  for (const m of ['softmax', 'logSoftmax', 'cumsum', 'unsqueeze', 'unbind'] as const) {
    calls.push([`aten::(${m === 'logSoftmax' ? 'log_softmax' : m})`, (g) => t(g)[m](u(dim(g)))]);
  }
  for (const m of ['eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const) calls.push([`aten::${m}`, (g) => t(g)[m](u(tsOrScalar(g)))]);
  for (const m of ['matmul', 'mm', 'bmm', 'dot', 'outer', 'copy_'] as const) calls.push([`aten::${m}`, (g) => t(g)[m](u(ts(g)))]);
  const dims = (g: Gen): unknown => (g.rng.chance(0.3) ? undefined : g.rng.chance(0.5) ? dim(g) : g.or(() => [g.dim(), g.dim()].slice(0, 1 + g.rng.int(2))));
  calls.push(['aten::sum', (g) => t(g).sum(u(dims(g)), u(g.or(() => g.rng.chance(0.5))))]);
  calls.push(['aten::mean', (g) => t(g).mean(u(dims(g)))]);
  calls.push(['aten::(var|std)', (g) => (g.rng.chance(0.5) ? t(g).var(u(dims(g)), { correction: u(int(g)) }) : t(g).std(u(dims(g))))]);
  calls.push(['aten::norm', (g) => t(g).norm(u(sc(g)), u(dims(g)))]);
  calls.push(['aten::(max|min)', (g) => (g.rng.chance(0.5) ? t(g).max(u(dims(g))) : t(g).min(u(dims(g))))]);
  calls.push(['aten::argmax', (g) => t(g).argmax(u(g.rng.chance(0.3) ? undefined : dim(g)))]);
  calls.push(['aten::logsumexp', (g) => t(g).logsumexp(u(dims(g) ?? 0))]);
  calls.push(['aten::sort', (g) => t(g).sort(u(dim(g)), u(g.or(() => g.rng.chance(0.5))))]);
  calls.push(['aten::topk', (g) => t(g).topk(u(int(g)), u(dim(g)))]);
  calls.push(['aten::(reshape|view|permute|expand|repeat)', (g) => {
    const s = shape(g);
    const x = t(g);
    switch (g.rng.int(5)) {
      case 0: return x.reshape(u(s));
      case 1: return x.view(u(s));
      case 2: return x.permute(u(s));
      case 3: return x.expand(u(s));
      default: return x.repeat(u(s));
    }
  }]);
  calls.push(['aten::flatten', (g) => t(g).flatten(u(dim(g)), u(dim(g)))]);
  calls.push(['aten::transpose', (g) => t(g).transpose(u(dim(g)), u(dim(g)))]);
  calls.push(['aten::squeeze', (g) => t(g).squeeze(u(g.rng.chance(0.3) ? undefined : dim(g)))]);
  calls.push(['aten::slice', (g) => t(g).slice(u(dim(g)), u(g.rng.chance(0.2) ? null : int(g)), u(g.rng.chance(0.3) ? null : int(g)), u(int(g)))]);
  calls.push(['aten::narrow', (g) => t(g).narrow(u(dim(g)), u(int(g)), u(int(g)))]);
  calls.push(['aten::select', (g) => t(g).select(u(dim(g)), u(int(g)))]);
  calls.push(['aten::(split|chunk)', (g) => (g.rng.chance(0.5) ? t(g).split(u(int(g)), u(dim(g))) : t(g).chunk(u(int(g)), u(dim(g))))]);
  calls.push(['aten::diagonal', (g) => t(g).diagonal(u(int(g)), u(dim(g)), u(dim(g)))]);
  calls.push(['aten::(tril|triu)', (g) => (g.rng.chance(0.5) ? t(g).tril(u(int(g))) : t(g).triu(u(int(g))))]);
  calls.push(['aten::index_select', (g) => t(g).indexSelect(u(dim(g)), u(ts(g)))]);
  calls.push(['aten::index', (g) => t(g).index(u(g.or(() => g.tensors().map((x) => (g.rng.chance(0.2) ? null : x)))))]);
  calls.push(['aten::gather', (g) => t(g).gather(u(dim(g)), u(ts(g)))]);
  calls.push(['aten::(scatter|scatter_add|index_add)', (g) => {
    const [x, d, i, s] = [t(g), dim(g), ts(g), ts(g)];
    return g.rng.pick([() => x.scatter(u(d), u(i), u(s)), () => x.scatterAdd(u(d), u(i), u(s)), () => x.indexAdd(u(d), u(i), u(s))])();
  }]);
  calls.push(['(aten::fill_|fill_)', (g) => t(g).fill_(u(g.or(() => g.scalarOrBool())))]);
  calls.push(['aten::(addcmul_|addcdiv_|lerp_)', (g) => g.rng.pick([
    () => t(g).addcmul_(u(ts(g)), u(ts(g)), u(sc(g))), () => t(g).addcdiv_(u(ts(g)), u(ts(g)), u(sc(g))), () => t(g).lerp_(u(ts(g)), u(sc(g)))])()]);
  calls.push(['aten::(bernoulli_|uniform_|normal_)', (g) => g.rng.pick([
    () => t(g).bernoulli_(u(sc(g)), u(g.rng.chance(0.5) ? null : g.generator)),
    () => t(g).uniform_(u(sc(g)), u(sc(g)), u(g.rng.chance(0.5) ? null : g.generator)),
    () => t(g).normal_(u(sc(g)), u(sc(g)), u(g.rng.chance(0.5) ? null : g.generator))])()]);
  calls.push(['(aten::)?to', (g) => t(g).to(u(g.rng.chance(0.5) ? g.dtype() : g.rng.chance(0.5) ? g.device() : g.or(() => ({ dtype: g.dtype(), device: g.device() })))) ]);
  calls.push(['(toTypedArray|item|shape|dim|numel|dtype|device|memoryLayout|size)', (g) => {
    const x = t(g);
    return g.rng.pick([() => x.item(), () => x.toArray(), () => x.data(), () => x.shape, () => x.numel, () => x.dtype, () => x.device,
      () => x.memoryLayout, () => x.size(u(dim(g))), () => x.dim, () => x.isDisposed, () => String(x)])();
  }]);
  calls.push(['(requiresGrad|grad|setGrad|backward|isLeaf|aten::)', (g) => {
    const x = t(g);
    return g.rng.pick([() => x.requiresGrad_(u(g.or(() => g.rng.chance(0.5)))), () => x.grad, () => x.zeroGrad(), () => x.isLeaf,
      () => x.sum().backward(), () => x.backward(u(g.rng.chance(0.5) ? null : ts(g))), () => T.grad(u(x.sum()), u([ts(g)]))])();
  }]);
  calls.push(['(tensor|fromTypedArray)', (g) => {
    const nested = g.rng.chance(0.5) ? Array.from({ length: g.rng.int(4) }, () => g.scalar()) : [[g.scalar(), g.scalar()], [g.scalar()]];
    return T.tensor(u(g.or(() => nested)), u(g.or(() => ({ dtype: g.dtype() }))));
  }]);
  calls.push(['(tensor|fromTypedArray)', (g) => T.scalar(u(sc(g)), u({ dtype: g.dtype() }))]);
  for (const m of ['zeros', 'ones', 'empty', 'randn', 'rand'] as const) {
    calls.push([`(aten::)?${m}`, (g) => T[m](u(shape(g)), u(g.or(() => ({ dtype: g.dtype() }))))]);
  }
  calls.push(['(aten::)?full', (g) => T.full(u(shape(g)), u(g.or(() => g.scalarOrBool())), u({ dtype: g.dtype() }))]);
  calls.push(['(aten::)?arange', (g) => T.arange(u(sc(g)), u(sc(g)), u(sc(g)), u(g.or(() => ({ dtype: g.dtype() }))))]);
  calls.push(['(aten::)?(linspace|eye|randperm)', (g) => g.rng.pick([() => T.linspace(u(sc(g)), u(sc(g)), u(int(g))), () => T.eye(u(int(g))),
    () => T.randperm(u(int(g)))])()]);
  calls.push(['(aten::)?randint', (g) => T.randint(u(int(g)), u(int(g)), u(shape(g)))]);
  calls.push(['(cat|stack|aten::cat|aten::stack)', (g) => (g.rng.chance(0.5) ? T.cat(u(g.or(() => g.tensors())), u(dim(g))) : T.stack(u(g.or(() => g.tensors())), u(dim(g))))]);
  calls.push(['aten::einsum', (g) => T.einsum(u(g.or(() => g.str())), ...(g.tensors() as never[]))]);
  calls.push(['aten::(zeros_like|ones_like)', (g) => (g.rng.chance(0.5) ? T.zerosLike(u(ts(g))) : T.onesLike(u(ts(g))))]);
  calls.push(['aten::linear', (g) => F.linear(u(ts(g)), u(ts(g)), u(g.rng.chance(0.5) ? null : ts(g)))]);
  calls.push(['(aten::conv2d|aten::convolution_backward|size|shape)', (g) => (g.rng.chance(0.5)
    ? F.conv2d(u(ts(g)), u(ts(g)), u(g.rng.chance(0.5) ? null : ts(g)), { stride: u(int(g)), padding: u(int(g)) })
    : F.conv2dBackward(u(ts(g)), u(ts(g)), t(g), { need: { input: true, weight: true, bias: g.rng.chance(0.5) } }))]);
  calls.push(['aten::(max_pool2d|avg_pool2d|adaptive_avg_pool2d|adaptive_max_pool2d|im2col)', (g) => g.rng.pick([
    () => F.maxPool2d(u(ts(g)), u(int(g))), () => F.avgPool2d(u(ts(g)), u(int(g))), () => F.adaptiveAvgPool2d(u(ts(g)), u(int(g))),
    () => F.adaptiveMaxPool2d(u(ts(g)), u(int(g))), () => F.unfold(u(ts(g)), u(int(g)))])()]);
  calls.push(['aten::(batch_norm|layer_norm)', (g) => (g.rng.chance(0.5)
    ? F.batchNorm(u(ts(g)), u(g.rng.chance(0.3) ? null : ts(g)), u(g.rng.chance(0.3) ? null : ts(g)), null, null, { training: g.rng.chance(0.5) })
    : F.layerNorm(u(ts(g)), u(shape(g))))]);
  calls.push(['(aten::embedding|aten::one_hot|aten::constant_pad_nd|aten::dropout|dropout)', (g) => g.rng.pick([
    () => F.embedding(u(ts(g)), u(ts(g))), () => F.oneHot(u(ts(g)), u(int(g))), () => F.pad(u(ts(g)), u(g.ints()), u(sc(g))),
    () => F.dropout(u(ts(g)), u(sc(g)), u(g.rng.chance(0.5)))])()]);
  calls.push(['(aten::cross_entropy_loss|aten::nll_loss_nd|aten::mse_loss|crossEntropy|nllLoss|mseLoss)', (g) => g.rng.pick([
    () => F.crossEntropy(u(ts(g)), u(ts(g)), { reduction: u(g.or(() => g.rng.pick(['none', 'mean', 'sum']))), labelSmoothing: u(g.rng.chance(0.5) ? 0 : sc(g)) }),
    () => F.nllLoss(u(ts(g)), u(ts(g))), () => F.mseLoss(u(ts(g)), u(ts(g)))])()]);
  calls.push(['aten::(linalg_cholesky|linalg_cholesky_ex|cholesky_solve|linalg_solve|linalg_inv|linalg_eigh|linalg_det|linalg_solve_triangular)', (g) => g.rng.pick([
    () => linalg.cholesky(u(ts(g))), () => linalg.choleskyEx(u(ts(g))), () => linalg.choleskySolve(u(ts(g)), u(ts(g))),
    () => linalg.solve(u(ts(g)), u(ts(g))), () => linalg.inverse(u(ts(g))), () => linalg.eigh(u(ts(g))), () => linalg.det(u(ts(g))),
    () => linalg.solveTriangular(u(ts(g)), u(ts(g)), { upper: g.rng.chance(0.5) })])()]);
  calls.push(['(setNumThreads|manualSeed)', (g) => (g.rng.chance(0.5) ? T.setNumThreads(u(g.or(() => g.rng.int(4)))) : T.manualSeed(u(int(g))))]);
  return calls;
}

function describe(v: unknown, T: T, depth = 0): string {
  if (v instanceof T.Tensor) {
    try {
      return v.isDisposed ? 'Tensor<disposed>' : `Tensor<${v.dtype} [${v.shape.join(',')}]${v.requiresGrad ? ' grad' : ''}>`;
    } catch {
      return 'Tensor<?>';
    }
  }
  if (v instanceof T.Generator) return 'Generator';
  if (Array.isArray(v)) return depth > 2 ? '[...]' : `[${v.map((x) => describe(x, T, depth + 1)).join(', ')}]`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (v !== null && typeof v === 'object') {
    return depth > 2 ? '{...}' : `{${Object.entries(v).map(([k, x]) => `${k}: ${describe(x, T, depth + 1)}`).join(', ')}}`;
  }
  return String(v);
}

/**
 * Small results go back into the pool, so later calls see views, odd layouts and dtypes; integer ones
 * only with small values (an operator that allocates by value, repeat_interleave or bincount, could
 * otherwise be asked for gigabytes).
 */
function feedable(T: T, r: Tensor): boolean {
  try {
    if (r.isDisposed || r.numel > 64) return false;
    if (r.dtype.startsWith('float') || r.dtype === 'bool') return true;
    return T.scope(() => r.numel === 0 || r.abs().max().item() <= 64);
  } catch {
    return false;
  }
}

// A tensor's getters name themselves when the tensor was disposed (a disposed tensor passed where an
// options object goes is read through them).
const GETTER_AFTER_DISPOSE = /^(shape|dtype|device|numel|dim|memoryLayout|requiresGrad|isLeaf|grad|setGrad|toTypedArray|item): tensor used after dispose\(\)/;

async function child(calls: number, seed: number): Promise<void> {
  const T = await import('../src/tensor/index.js');
  const { native } = await import('../src/tensor/native.js');
  const rng = new Rng(seed);
  const g = new Gen(T, rng);
  g.fill(16);
  const schemas = native.opSchemas().map(parseSchema);
  const api = apiCalls(T);
  const line = (s: string): void => { writeSync(3, `${s.replace(/\n/g, ' ')}\n`); };
  let ok = 0;
  let errors = 0;
  let refused = 0;
  let unnamed = 0;
  const unnamedExamples: { call: string; message: string }[] = [];
  const covered = new Set<string>();
  for (let i = 0; i < calls; i++) {
    let names: string;
    let desc: string;
    let run: () => unknown;
    if (rng.chance(0.5)) {
      const { name, args } = rng.pick(schemas);
      const values: unknown[] = [];
      for (const a of args) {
        if (a.hasDefault && rng.chance(0.3)) break; // leave the rest to the schema's defaults
        values.push(valueFor(g, a.type));
      }
      if (rng.chance(0.03)) values.push(g.any()); // one too many
      names = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      desc = `callOp(${JSON.stringify(name)}${values.map((v) => `, ${describe(v, T)}`).join('')})`;
      covered.add(name);
      run = () => T.callOp(name, ...values);
    } else {
      const k = rng.int(api.length);
      const [n, f] = api[k]!;
      names = n;
      covered.add(`api#${k}`);
      // Arguments are drawn as the call is made: each is written out as drawn, after the call line.
      desc = `api#${k} ${n}`;
      run = () => {
        g.onDraw = (v) => line(`arg ${describe(v, T)}`);
        try {
          return f(g);
        } finally {
          g.onDraw = null;
        }
      };
    }
    line(`call ${i} ${desc}`);
    let keep: Tensor | null = null;
    try {
      T.scope(() => {
        const r = run();
        // Feed small results back into the pool: later calls then see views, odd layouts and dtypes.
        if (r instanceof T.Tensor && rng.chance(0.2) && feedable(T, r)) keep = T.keep(r);
      });
      ok++;
    } catch (e) {
      errors++;
      const message = e instanceof Error ? e.message : `(not an Error) ${String(e)}`;
      if (/: refused: /.test(message)) refused++;
      if (!(e instanceof Error) || !(new RegExp(`^(${names})`).test(message) || GETTER_AFTER_DISPOSE.test(message))) {
        unnamed++;
        if (unnamedExamples.length < 10) unnamedExamples.push({ call: desc.slice(0, 400), message: message.slice(0, 300) });
      }
    }
    if (keep !== null) g.replace(keep);
    // In-place calls (resize_, as_strided_ with zero strides) can give a pool tensor trillions of
    // elements over a few bytes: valid, but every later reduction over it would run for hours.
    for (let j = 0; j < g.pool.length; j++) {
      if (g.pool[j]!.isDisposed || g.pool[j]!.numel > 4096) {
        g.pool[j]!.dispose();
        g.pool[j] = T.keep(T.scope(() => g.fresh()));
      }
    }
    if (i % 97 === 96) g.replace(T.keep(T.scope(() => g.fresh())));
  }
  line(`done ${JSON.stringify({ seed, calls, ok, errors, refused, covered: covered.size, unnamed, unnamedExamples })}`);
}

const argv = process.argv.slice(2);
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const calls = positiveFlag(argv, 'calls', 'fuzz') ?? 100_000;
  const seedFlag = flag(argv, 'seed');
  const seed = seedFlag === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(seedFlag);
  if (!Number.isInteger(seed) || seed < 0) throw new RangeError(`fuzz: --seed must be a non-negative integer, got '${seedFlag}'`);
  if (argv.includes('--child')) {
    await child(calls, seed);
  } else {
    const r = await fuzz({ calls, seed, timeoutS: positiveFlag(argv, 'timeout', 'fuzz') ?? 1800 });
    console.log(JSON.stringify(r));
    if (r.crash !== null || r.unnamed > 0) process.exitCode = 1;
  }
}
