// The native boundary never kills the process: calls that crashed or hung it (issue 14) now end as
// a JS Error naming the operator and why. Each runs in a child process, so that a crash shows as a
// signal here instead of taking the test runner down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import * as T from '../src/tensor/index.js';
import { native } from '../src/tensor/native.js';
import { callOp, scope, tensor } from '../src/tensor/index.js';

const INDEX = new URL('../src/tensor/index.js', import.meta.url).href;

/** Runs `body` (an ES module body with the tensor module as T) in a fresh node process. */
function child(body: string, env: Record<string, string> = {}): { code: number | null; signal: string | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import * as T from '${INDEX}';\n${body}`], {
    encoding: 'utf8', timeout: 60_000, env: { ...process.env, FNGD_NUM_THREADS: '1', ...env },
  });
  return { code: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

/** The child must end with a JS error (exit code 1, the message on stderr), not a signal or a hang. */
function assertJsError(body: string, message: RegExp, env: Record<string, string> = {}): void {
  const r = child(body, env);
  assert.equal(r.signal, null, `killed by ${r.signal} (stderr: ${r.err.slice(-800)})`);
  assert.equal(r.code, 1, `exit code ${r.code}, expected 1 (stderr: ${r.err.slice(-800)})`);
  assert.match(r.err, message);
}

test('_local_scalar_dense on an empty tensor (segfaulted) is refused: internal operators are', () => {
  assertJsError(`T.callOp('aten::_local_scalar_dense', T.zeros([0]));`,
    /Error: aten::_local_scalar_dense: refused: internal operators \(a leading underscore\) trust their callers/);
});

test('set_ with a storage offset of 1e8 (read out of bounds) is refused', () => {
  assertJsError(`const x = T.zeros([3]);
    T.callOp('aten::set_.source_Tensor_storage_offset', x, x, 1e8, [3], [1]);
    console.log(x.toArray());`,
  /Error: aten::set_\.source_Tensor_storage_offset: refused: set_ with a storage offset can point the tensor outside its memory/);
});

test('_sparse_coo_tensor_unsafe with an index past the size is refused; the checked operator reports the index', () => {
  assertJsError(`T.callOp('aten::_sparse_coo_tensor_unsafe', T.tensor([[5]], { dtype: 'int64' }), T.ones([1]), [2]);`,
    /Error: aten::_sparse_coo_tensor_unsafe: refused: /);
  assertJsError(`T.callOp('aten::sparse_coo_tensor.indices_size', T.tensor([[5]], { dtype: 'int64' }), T.ones([1]), [2]);`,
    /Error: aten::sparse_coo_tensor\.indices_size: .*size is inconsistent with indices/);
});

test('as_strided views must lie inside their storage, also where libtorch\'s own check overflows', () => {
  assertJsError(`T.callOp('aten::as_strided', T.zeros([4]), [1], [1], 2 ** 62);`,
    /Error: aten::as_strided: a view with sizes \[1\], strides \[1\] and storage offset 4611686018427387904 reaches element 4611686018427387904 of a storage of 4 elements/);
  assertJsError(`T.callOp('aten::as_strided', T.zeros([4]), [2, 2], [2 ** 62, 2 ** 62]);`, /Error: aten::as_strided: .*int64 overflow/);
  assertJsError(`T.callOp('aten::as_strided_', T.zeros([4]), [2], [1], 1e8);`, /Error: aten::as_strided_: .*storage offset 100000000 reaches element 100000001 of a storage of 4 elements/);
  // in bounds: a plain view still works
  const r = child(`console.log(T.callOp('aten::as_strided', T.arange(6), [2, 2], [1, 2], 1).toArray().join(','));`);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.trim(), '1,3,2,4');
});

test('other namespaces, unsafe variants and from_file are refused by name', () => {
  const foreign = native.opSchemas().find((s) => !s.startsWith('aten::'));
  assert.ok(foreign !== undefined, 'libtorch registers operators outside aten::');
  const name = foreign.slice(0, foreign.indexOf('('));
  assertJsError(`T.callOp(${JSON.stringify(name)});`, new RegExp(`Error: ${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: refused: only aten:: operators`));
  assertJsError(`T.callOp('aten::unsafe_split.Tensor', T.ones([4]), 2);`, /Error: aten::unsafe_split\.Tensor: refused: an unsafe variant/);
  assertJsError(`T.callOp('aten::from_file', '/tmp/fngd-never-written', true, 4);`, /Error: aten::from_file: refused: from_file maps a file/);
});

test('every crash and hang the fuzzer found (bench/fuzz.ts) now ends as a JS error naming the operator', () => {
  const cases: [string, RegExp][] = [
    // refused families: kernels behind public operators
    [`T.callOp('aten::native_channel_shuffle', T.zeros([1, 0]), 1);`, /aten::native_channel_shuffle: refused: native_ operators .*call channel_shuffle/],
    [`T.callOp('aten::slow_conv3d', T.zeros([2, 3, 0]), T.zeros([3, 0]), [3, 4, 1]);`, /aten::slow_conv3d: refused: kernels of one backend \(slow_conv/],
    [`T.callOp('aten::quantized_lstm_cell', T.zeros([1, 4]), [], T.zeros([8, 4]), T.zeros([8, 2]), T.zeros([8]), T.zeros([8]), T.zeros([8, 4]), T.zeros([8, 2]), T.zeros([8]), T.zeros([8]), 1, 1, 0, 0);`,
      /aten::quantized_lstm_cell: refused: kernels of one backend \(quantized_/],
    [`T.callOp('aten::batch_norm_update_stats', T.zeros([0, 0]), T.zeros([1, 0]), T.zeros([0, 0]), 1);`, /aten::batch_norm_update_stats: refused: the building blocks of SyncBatchNorm/],
    [`T.callOp('aten::reflection_pad1d_backward', T.zeros([]), T.zeros([4]), []);`, /aten::reflection_pad1d_backward: refused: backward kernels assume the inputs their forward produced/],
    [`T.callOp('aten::choose_qparams_optimized', T.zeros([0]), 0, 1, 0.5, 1);`, /aten::choose_qparams_optimized: refused: .*reads its input without checking its size/],
    // checked arguments
    [`T.callOp('aten::slow_conv3d_forward', T.zeros([3, 0]), T.zeros([0, 0]), []);`, /aten::slow_conv3d_forward: refused/],
    [`T.callOp('aten::avg_pool3d', T.zeros([1, 2, 2, 2]), []);`, /aten::avg_pool3d: argument 'kernel_size' \(int\[3\]\) needs 3 integers \(or one, for all\), got 0/],
    [`T.callOp('aten::align_tensors', []);`, /aten::align_tensors: argument 'tensors' needs at least one tensor/],
    [`T.callOp('aten::histogramdd', T.zeros([3, 2], { dtype: 'float64' }), []);`, /aten::histogramdd: needs one bin count or edge tensor per coordinate: self's last dimension is 2, got 0 bins/],
    [`T.callOp('aten::max_pool1d', T.zeros([2, 2]), 2 ** 40);`, /aten::max_pool1d: the window \(kernel_size 1099511627776, dilation 1\) is wider than the padded input \(2 \+ 2 x 0\)/],
    [`T.callOp('aten::pixel_shuffle', T.zeros([2, 2, 1, 3]), 2 ** 40);`, /aten::pixel_shuffle: upscale_factor squared overflows int64, got 1099511627776/],
    [`T.callOp('aten::special_hermite_polynomial_h.x_scalar', -1, T.tensor([2 ** 53]));`, /aten::special_hermite_polynomial_h\.x_scalar: degree n must be finite and at most 100000/],
    [`T.callOp('aten::linalg_svd', T.tensor([1, 2, 3, Infinity, 5, 6, 7, 8, 10], { shape: [3, 3] }));`, /aten::linalg_svd: argument 'A' holds Inf or NaN, on which LAPACK's SVD does not return/],
    [`T.callOp('aten::nuclear_norm', T.tensor([1, 2, 3, Infinity, 5, 6, 7, 8, 10], { shape: [3, 3] }).requiresGrad_());`, /aten::nuclear_norm: argument 'self' holds Inf or NaN/],
    // public API: the lowest integer divided by -1 traps (SIGFPE)
    [`T.tensor([-(2n ** 63n)]).remainder(-1);`, /aten::remainder\.Scalar: integer division of -9223372036854775808 by -1 overflows int64/],
    [`T.callOp('aten::floor_divide', T.tensor([-(2 ** 31), 5], { dtype: 'int32' }), T.tensor([3, -1], { dtype: 'int32' }));`, /aten::floor_divide: integer division of -2147483648 by -1 overflows int32/],
  ];
  for (const [body, message] of cases) assertJsError(body, message);
  // what still works: a max_pool2d stride left at its default [], a window inside the input, the
  // vector 2-norm of an Inf vector, the svd of a finite matrix
  const ok = child(`console.log([
    T.callOp('aten::max_pool2d', T.zeros([1, 4, 4]), 2, []).shape.join('x'),
    T.callOp('aten::max_pool1d', T.arange(4, undefined, 1, { dtype: 'float32' }).view(1, 4), 3, 1, 1).toArray().join(' '),
    T.callOp('aten::linalg_norm', T.tensor([Infinity, 1]), 2).item(),
    T.callOp('aten::linalg_svdvals', T.eye(2)).toArray().join(' '),
  ].join(','));`);
  assert.equal(ok.code, 0, ok.err);
  assert.equal(ok.out.trim(), '1x2x2,1 2 3 3,Infinity,1 1');
});

test('a call that fails leaves the tensors it writes as they were (a failed resize kept its new sizes over the old memory)', () => {
  const r = child(`const x = T.zeros([2]);
    for (const call of [() => T.callOp('aten::resize_', x, [2 ** 40]), () => T.callOp('aten::randn.generator_out', [2 ** 40], null, x),
                        () => T.callOp('aten::resize_', x, [1, 2 ** 62])]) {
      try { call(); } catch (e) { console.log(e.message.split('\\n')[0].slice(0, 40)); }
    }
    console.log(x.shape.join(','), x.sum().item());`);
  assert.equal(r.signal, null, r.err);
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trim().split('\n');
  assert.match(lines[0]!, /^aten::resize_: /);
  assert.match(lines[1]!, /^aten::randn\.generator_out: /);
  assert.match(lines[2]!, /^aten::resize_: /);
  assert.equal(lines[3], '2 0', 'the tensor keeps its shape [2] and its data');
});

test('FNGD_ALLOW_INTERNAL_OPS=1 lifts the refusal of internal operators (the bounds checks stay)', () => {
  const r = child(`console.log(T.callOp('aten::_log_softmax', T.zeros([2]), 0, false).toArray().join(','));`, { FNGD_ALLOW_INTERNAL_OPS: '1' });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^-0\.69314\d*,-0\.69314\d*$/m);
});

test('getters on sparse tensors (an exception out of a getter aborted) return or throw a JS error', () => {
  const r = child(`const s = T.callOp('aten::to_sparse', T.eye(2));
    console.log(JSON.stringify([s.shape, s.dtype, s.memoryLayout.contiguous, s.numel]));
    try { s.toArray(); } catch (e) { console.log('error: ' + e.message.split('\\n')[0]); }`);
  assert.equal(r.signal, null, r.err);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^\[\[2,2\],"float32",false,4\]\nerror: toTypedArray: /);
});

test('setNumThreads(1e6) (hung) throws naming the bound; so do counts above the cores unless forced', () => {
  const cores = availableParallelism();
  assertJsError(`T.setNumThreads(1e6);`, new RegExp(`Error: setNumThreads: 1000000 threads is more than the ${cores} cores of this machine`));
  assertJsError(`T.setNumThreads(1e6, { force: true });`, /RangeError: setNumThreads: expected an integer from 1 to 1024, got 1000000/);
  assertJsError(``, new RegExp(`FNGD_NUM_THREADS: ${cores + 1} threads is more than the ${cores} cores`), { FNGD_NUM_THREADS: String(cores + 1) });
  const forced = child(`console.log(T.getNumThreads());`, { FNGD_NUM_THREADS: String(cores + 1), FNGD_FORCE_THREADS: '1' });
  assert.equal(forced.code, 0, forced.err);
  assert.equal(forced.out.trim(), String(cores + 1));
});

test('thread counts are bounded in process too, and force lifts the bound', () => {
  const cores = availableParallelism();
  const before = T.getNumThreads();
  assert.throws(() => T.setNumThreads(cores + 1), new RegExp(`setNumThreads: ${cores + 1} threads is more than the ${cores} cores .*force: true.*FNGD_FORCE_THREADS=1`));
  assert.throws(() => T.setNumThreads(2.5), /setNumThreads: expected a positive integer, got 2\.5/);
  assert.throws(() => T.setNumThreads(0), /positive integer/);
  T.setNumThreads(cores + 1, { force: true });
  assert.equal(T.getNumThreads(), cores + 1);
  T.setNumThreads(before);
  assert.equal(T.getNumThreads(), before);
});

test('numbers that an argument cannot hold are errors naming the operator and the argument', () => scope(() => {
  const x = T.ones([2, 3]);
  for (const bad of [NaN, 1e30, 2 ** 63, Infinity, 1.5]) {
    assert.throws(() => callOp('aten::sum.dim_IntList', x, [bad]), /^TypeError: aten::sum\.dim_IntList: argument 'dim' expects int\[\]\?, got number/);
  }
  // the lowest int64 is an int64: it reaches libtorch, which reports the dimension
  assert.throws(() => callOp('aten::size.int', x, -(2 ** 63)), /^Error: aten::size\.int: Dimension out of range/);
  assert.throws(() => callOp('aten::zeros', [2], 99), /aten::zeros: argument 'dtype' \(ScalarType\?\) must be in 0\.\.\d+, got 99/);
  assert.throws(() => callOp('aten::zeros', [2], 'float7'), /aten::zeros: argument 'dtype': unknown dtype 'float7'/);
  assert.throws(() => callOp('aten::zeros', [2], null, 42), /aten::zeros: argument 'layout' \(Layout\?\) must be in 0\.\.6, got 42/);
  assert.throws(() => callOp('aten::zeros', [2], null, null, 'tpu'), /aten::zeros: argument 'device': unknown device 'tpu'/);
  assert.throws(() => callOp('aten::contiguous', x, 9), /aten::contiguous: argument 'memory_format' \(MemoryFormat\) must be in 0\.\.3, got 9/);
  assert.equal((callOp('aten::zeros', [2], 7) as T.Tensor).dtype, 'float64', "libtorch's own enum values still work");
}));

test('size(dim) takes integer dimensions only', () => scope(() => {
  const x = T.ones([2, 3]);
  assert.equal(x.size(1), 3);
  assert.equal(x.size(-1), 3);
  for (const bad of [1.5, NaN, '1', undefined]) {
    assert.throws(() => x.size(bad as number), /^TypeError: size: argument 'dim' must be an integer, got/);
  }
  assert.throws(() => x.size(2), /size\(2\): tensor has 2 dimensions/);
}));

test('JS values converted into integer dtypes must fit exactly (300 wrapped to 44, NaN became INT64_MIN)', () => scope(() => {
  const cases: [() => unknown, RegExp][] = [
    [() => tensor([NaN], { dtype: 'int64' }), /cannot store NaN \(element 0\) in dtype int64 exactly: it holds the integers -9223372036854775808\.\.9223372036854775807/],
    [() => tensor([1, 1e30], { dtype: 'int64' }), /cannot store 1e\+30 \(element 1\) in dtype int64/],
    [() => tensor([2 ** 63], { dtype: 'int64' }), /cannot store 9223372036854775808 \(element 0\) in dtype int64/],
    [() => tensor([300], { dtype: 'uint8' }), /cannot store 300 \(element 0\) in dtype uint8 exactly: it holds the integers 0\.\.255/],
    [() => tensor([-1], { dtype: 'uint8' }), /cannot store -1 \(element 0\) in dtype uint8/],
    [() => tensor([0, 1.5], { dtype: 'int32' }), /cannot store 1\.5 \(element 1\) in dtype int32/],
    [() => tensor([1 + 1e-9], { dtype: 'int16' }), /cannot store 1\.000000001 \(element 0\) in dtype int16/],
    [() => tensor([128], { dtype: 'int8' }), /cannot store 128 \(element 0\) in dtype int8 exactly: it holds the integers -128\.\.127/],
    [() => tensor(new Float32Array([Infinity]), { dtype: 'int32' }), /cannot store Infinity \(element 0\) in dtype int32/],
    [() => tensor(new Int32Array([5, 256]), { dtype: 'uint8' }), /cannot store 256 \(element 1\) in dtype uint8/],
    [() => tensor(new BigInt64Array([2n ** 40n]), { dtype: 'int32' }), /cannot store 1099511627776 \(element 0\) in dtype int32/],
    [() => T.scalar(0.5, { dtype: 'int64' }), /cannot store 0\.5 \(element 0\) in dtype int64/],
    [() => T.full([2], 1.5, { dtype: 'int64' }), /^RangeError: full: cannot store 1\.5 in dtype int64 exactly/],
    [() => T.full([2], 300, { dtype: 'uint8' }), /full: cannot store 300 in dtype uint8 exactly: it holds the integers 0\.\.255/],
    [() => T.zeros([2], { dtype: 'int64' }).fill_(NaN), /fill_: cannot store NaN in dtype int64/],
    [() => T.zeros([2], { dtype: 'uint8' }).maskedFill(tensor([true, false]), -1), /maskedFill: cannot store -1 in dtype uint8/],
  ];
  for (const [f, re] of cases) assert.throws(f, re);
  // what fits still goes through, at the edges of each range
  assert.deepEqual(tensor([0, 255], { dtype: 'uint8' }).toArray(), [0, 255]);
  assert.deepEqual(tensor([-128, 127], { dtype: 'int8' }).toArray(), [-128, 127]);
  assert.deepEqual(tensor([-(2 ** 31), 2 ** 31 - 1], { dtype: 'int32' }).toArray(), [-(2 ** 31), 2 ** 31 - 1]);
  assert.deepEqual(Array.from(tensor([-(2 ** 63), 2 ** 53], { dtype: 'int64' }).data() as BigInt64Array), [-(2n ** 63n), 2n ** 53n]);
  assert.deepEqual(tensor([1.5, NaN], { dtype: 'float32' }).toArray(), [1.5, NaN]);
  assert.deepEqual(tensor([2, 0], { dtype: 'bool' }).toArray(), [1, 0]);
  assert.deepEqual(T.full([2], 7, { dtype: 'int64' }).toArray(), [7, 7]);
  assert.deepEqual(T.zeros([2], { dtype: 'float32' }).fill_(NaN).toArray(), [NaN, NaN]);
}));
