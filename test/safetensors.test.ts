// safetensors reader/writer: bitwise round trips, module state dicts, atomic writes, corrupt files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { callOp, liveTensors, randn, scope, tensor, type Tensor } from '../src/tensor/index.js';
import { loadModule, loadSafetensors, resnetSmall, saveModule, saveSafetensors } from '../src/nn/index.js';

const dir = mkdtempSync(join(tmpdir(), 'fngd-safetensors-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The raw bytes of a tensor as hex, for bitwise comparison (floats via an integer view). */
function bits(t: Tensor): string {
  const view: Record<string, string> = { float64: 'int64', float32: 'int32', float16: 'int16', bfloat16: 'int16' };
  const d = view[t.dtype];
  const data = (d === undefined ? t : callOp('aten::view.dtype', t.detach(), d) as Tensor).data();
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex');
}

function sample(): Map<string, Tensor> {
  return new Map<string, Tensor>([
    ['f64', tensor([1.5, -0, Infinity, -Infinity, NaN, 1e-310, Math.PI], { dtype: 'float64' })],
    ['f32', randn([3, 4])],
    ['f16', randn([2, 3]).to('float16')],
    ['bf16', randn([5]).to('bfloat16')],
    ['i64', tensor(BigInt64Array.from([-(2n ** 62n), 0n, 2n ** 62n + 1n]))],
    ['i32', tensor(Int32Array.from([-5, 7, 2 ** 31 - 1]), { shape: [1, 3] })],
    ['i16', tensor(Int16Array.from([-3, 4]))],
    ['i8', tensor(Int8Array.from([-128, 127]))],
    ['u8', tensor(Uint8Array.from([0, 200, 255]))],
    ['bool', tensor([true, false, true])],
    ['scalar', tensor([2.5], { shape: [] })],
    ['empty', randn([0, 3])],
    ['strided', randn([4, 3]).t()],
  ]);
}

test('round trip of every dtype is bitwise, with shapes, order and metadata', () => scope(() => {
  const path = join(dir, 'all.safetensors');
  const src = sample();
  saveSafetensors(path, src, { format: 'pt', note: 'ünïcode' });
  const { tensors, metadata } = loadSafetensors(path);
  assert.deepEqual(metadata, { format: 'pt', note: 'ünïcode' });
  assert.deepEqual([...tensors.keys()], [...src.keys()]);
  for (const [k, t] of src) {
    const u = tensors.get(k)!;
    assert.equal(u.dtype, t.dtype, k);
    assert.deepEqual(u.shape, t.shape, k);
    assert.deepEqual(bits(u), bits(t), k);
  }
  // Header: 8-byte length, then JSON padded so that the data starts 8-byte aligned.
  const file = readFileSync(path);
  const n = Number(file.readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0);
  const header = JSON.parse(file.subarray(8, 8 + n).toString('utf8'));
  assert.deepEqual(header.bool, { dtype: 'BOOL', shape: [3], data_offsets: header.bool.data_offsets });
  assert.equal(header.f16.dtype, 'F16');
  assert.equal(header.bf16.dtype, 'BF16');
}));

test('a file written here is read by an independent Python reader', () => scope(() => {
  const path = join(dir, 'py.safetensors');
  saveSafetensors(path, new Map([['w', tensor([[1, 2], [3, 4.5]], { dtype: 'float64' })], ['i', tensor(BigInt64Array.from([7n, -9n]))]]), { k: 'v' });
  const py = `
import json, struct, sys
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n]); d = b[8 + n:]
w, i = h['w'], h['i']
print(json.dumps([h['__metadata__'], w['shape'], list(struct.unpack('<4d', d[w['data_offsets'][0]:w['data_offsets'][1]])),
                  list(struct.unpack('<2q', d[i['data_offsets'][0]:i['data_offsets'][1]]))]))`;
  const out = JSON.parse(execFileSync('/usr/bin/python3', ['-c', py, path], { encoding: 'utf8' }));
  assert.deepEqual(out, [{ k: 'v' }, [2, 2], [1, 2, 3, 4.5], [7, -9]]);
}));

test('module state dict round trip through a file is bitwise (parameters and buffers)', () => {
  const before = liveTensors().tensors;
  const a = resnetSmall({ depth: 8, width: 0.25 });
  scope(() => { a.forward(randn([4, 3, 8, 8])); }); // moves the running statistics and the counter
  const b = resnetSmall({ depth: 8, width: 0.25 });
  const path = join(dir, 'model.safetensors');
  saveModule(path, a, { epoch: '3' });
  assert.deepEqual(loadModule(path, b), { epoch: '3' });
  const sb = b.stateDict();
  for (const [k, t] of a.stateDict()) scope(() => assert.deepEqual(bits(sb.get(k)!), bits(t), k));
  assert.equal(new Map(b.namedBuffers()).get('bn1.num_batches_tracked')!.item(), 1);
  const c = resnetSmall({ depth: 8, width: 0.5 });
  assert.throws(() => loadModule(path, c), /shape mismatch: conv1\.weight: checkpoint \[4,3,3,3\], model \[8,3,3,3\]/);
  a.dispose();
  b.dispose();
  c.dispose();
  assert.equal(liveTensors().tensors, before, 'no leaked tensors');
});

test('writes are atomic: replace in one step, no temporary files left, target untouched on failure', () => scope(() => {
  const path = join(dir, 'atomic.safetensors');
  saveSafetensors(path, new Map([['x', tensor([1, 2, 3])]]));
  saveSafetensors(path, new Map([['y', tensor([4])]]));
  assert.deepEqual([...loadSafetensors(path).tensors.keys()], ['y']);
  const old = readFileSync(path);
  assert.throws(() => saveSafetensors(path, new Map([['__metadata__', tensor([1])]])), /reserved/);
  assert.throws(() => saveSafetensors(path, new Map(), { n: 3 as unknown as string }), /must be a string/);
  assert.deepEqual(readFileSync(path), old);
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp')), []);
}));

test('truncated and corrupt files give clear errors', () => scope(() => {
  const good = join(dir, 'good.safetensors');
  saveSafetensors(good, new Map([['a', tensor([1, 2, 3, 4])], ['b', tensor([5, 6])]]));
  const bytes = readFileSync(good);
  const n = Number(bytes.readBigUInt64LE(0));
  const bad = join(dir, 'bad.safetensors');
  const expectError = (content: Buffer, re: RegExp) => {
    writeFileSync(bad, content);
    assert.throws(() => loadSafetensors(bad), re);
  };
  expectError(bytes.subarray(0, 5), /truncated: 5 bytes/);
  expectError(bytes.subarray(0, 20), /truncated: header length/);
  expectError(bytes.subarray(0, bytes.length - 4), /truncated: 'b' ends at byte 24 of the data, which has 20/);
  expectError(Buffer.concat([bytes, Buffer.from([0, 0, 0, 0])]), /4 bytes after the last tensor/);
  const huge = Buffer.from(bytes);
  huge.writeBigUInt64LE(2n ** 40n);
  expectError(huge, /exceeds the 100 MB limit/);
  const withHeader = (h: object) => {
    const j = Buffer.from(JSON.stringify(h));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(j.length));
    return Buffer.concat([len, j, bytes.subarray(8 + n)]);
  };
  const notJson = Buffer.from(bytes);
  notJson[8] = 0x7b + 1;
  expectError(notJson, /corrupt header \(not JSON\)/);
  expectError(withHeader([1, 2]), /not a JSON object/);
  expectError(withHeader({ a: { dtype: 'F33', shape: [4], data_offsets: [0, 16] } }), /'a': unknown dtype "F33"/);
  expectError(withHeader({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 12] } }), /hold 12 bytes, but float32 \[4\] needs 16/);
  expectError(withHeader({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 16] } }), /bad shape/);
  expectError(withHeader({ a: { dtype: 'F32', shape: [4], data_offsets: [16, 0] } }), /bad data_offsets/);
  expectError(withHeader({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }), /gap or overlap/);
  expectError(withHeader({ __metadata__: { k: 1 }, a: { dtype: 'F32', shape: [6], data_offsets: [0, 24] } }), /__metadata__ must map strings to strings/);
  assert.throws(() => loadSafetensors(join(dir, 'missing.safetensors')), /ENOENT/);
}));
