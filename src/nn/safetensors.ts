// safetensors files (https://github.com/huggingface/safetensors), read and written here:
//
//   [8 bytes]  N, unsigned 64-bit little-endian: the length of the header
//   [N bytes]  UTF-8 JSON object: { "<name>": { "dtype": "F32", "shape": [2, 3],
//              "data_offsets": [begin, end] }, ..., "__metadata__": { "<key>": "<string>" } }
//              (padded with spaces to a multiple of 8 bytes; __metadata__ optional)
//   [rest]     the byte buffer: each tensor's elements, row-major, little-endian, at
//              [begin, end) relative to the start of this buffer; no gaps, no overlaps
//
// dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL (one byte, 0/1). Writing is atomic: a temporary
// file in the same folder, fsync, then rename over the target.
//
// Checksum (opt-in, checkpoints use it): the metadata entry `fngd.sha256` holds the hex SHA-256 of
// the header JSON as it would be written without that entry, followed by the byte buffer. Reading
// verifies it whenever it is present, after the structural checks: a flipped bit anywhere in the
// tensors or in the metadata (a checkpoint's trainer state) is an error, not a silently wrong run.
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, openSync, readFileSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { callOp, tensor, type DType, type Tensor, type TypedArray } from '../tensor/index.js';
import type { LoadStateDictOptions, Module } from './module.js';

const CODES: Record<string, { dtype: DType; bytes: number }> = {
  F64: { dtype: 'float64', bytes: 8 },
  F32: { dtype: 'float32', bytes: 4 },
  F16: { dtype: 'float16', bytes: 2 },
  BF16: { dtype: 'bfloat16', bytes: 2 },
  I64: { dtype: 'int64', bytes: 8 },
  I32: { dtype: 'int32', bytes: 4 },
  I16: { dtype: 'int16', bytes: 2 },
  I8: { dtype: 'int8', bytes: 1 },
  U8: { dtype: 'uint8', bytes: 1 },
  BOOL: { dtype: 'bool', bytes: 1 },
};
const CODE_OF = new Map<DType, string>(Object.entries(CODES).map(([c, v]) => [v.dtype, c]));
const MAX_HEADER = 100 * 1024 * 1024;
/** The metadata key of the content checksum (see the top of this file). */
export const CHECKSUM_KEY = 'fngd.sha256';

function contentHash(headerJson: string, data: readonly Uint8Array[]): string {
  const h = createHash('sha256').update(headerJson, 'utf8');
  for (const d of data) h.update(d);
  return h.digest('hex');
}

function checkHost(): void {
  if (endianness() !== 'LE') throw new Error('safetensors: only little-endian hosts are supported');
}

/** The raw little-endian bytes of a tensor (any device/layout). */
function tensorBytes(t: Tensor): Uint8Array {
  let data: TypedArray;
  if (t.dtype === 'float16' || t.dtype === 'bfloat16') {
    const d = t.detach();
    const bits = callOp('aten::view.dtype', d, 'int16') as Tensor;
    data = bits.data();
    bits.dispose();
    d.dispose();
  } else {
    data = t.data();
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function fromBytes(bytes: Uint8Array, dtype: DType, shape: number[]): Tensor {
  // A fresh, aligned copy for the typed array view.
  const buf = new Uint8Array(bytes.byteLength);
  buf.set(bytes);
  const ab = buf.buffer;
  switch (dtype) {
    case 'float64': return tensor(new Float64Array(ab), { shape });
    case 'float32': return tensor(new Float32Array(ab), { shape });
    case 'int64': return tensor(new BigInt64Array(ab), { shape });
    case 'int32': return tensor(new Int32Array(ab), { shape });
    case 'int16': return tensor(new Int16Array(ab), { shape });
    case 'int8': return tensor(new Int8Array(ab), { shape });
    case 'uint8': return tensor(new Uint8Array(ab), { shape });
    case 'bool': return tensor(new Uint8Array(ab), { shape, dtype: 'bool' });
    case 'float16': case 'bfloat16': {
      const bits = tensor(new Int16Array(ab), { shape });
      const t = callOp('aten::view.dtype', bits, dtype) as Tensor;
      bits.dispose(); // the view keeps the storage
      return t;
    }
    default: throw new TypeError(`safetensors: unsupported dtype ${dtype as string}`);
  }
}

export interface SaveSafetensorsOptions {
  /** Record a SHA-256 of the header and the data under `fngd.sha256` (verified on every load). */
  checksum?: boolean;
}

/** Writes `tensors` (in map order) and optional string metadata to `path`, atomically. */
export function saveSafetensors(path: string, tensors: Map<string, Tensor>, metadata?: Record<string, string>, o: SaveSafetensorsOptions = {}): void {
  checkHost();
  const header: Record<string, unknown> = {};
  let meta: Record<string, string> | null = null;
  if (metadata !== undefined || o.checksum === true) {
    for (const [k, v] of Object.entries(metadata ?? {})) {
      if (typeof v !== 'string') throw new TypeError(`saveSafetensors: metadata '${k}' must be a string, got ${typeof v}`);
    }
    if (o.checksum === true && metadata?.[CHECKSUM_KEY] !== undefined) throw new TypeError(`saveSafetensors: metadata '${CHECKSUM_KEY}' is reserved for the checksum`);
    meta = { ...metadata };
    header.__metadata__ = meta;
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === '__metadata__') throw new TypeError("saveSafetensors: '__metadata__' is reserved");
    const code = CODE_OF.get(t.dtype);
    if (code === undefined) throw new TypeError(`saveSafetensors: '${name}' has unsupported dtype ${t.dtype}`);
    const bytes = tensorBytes(t);
    header[name] = { dtype: code, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  if (o.checksum === true) meta![CHECKSUM_KEY] = contentHash(JSON.stringify(header), chunks);
  const raw = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Buffer.alloc(Math.ceil((raw.byteLength + 8) / 8) * 8 - 8, 0x20);
  raw.copy(padded);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded.byteLength));

  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, len);
    writeSync(fd, padded);
    for (const c of chunks) {
      let done = 0;
      while (done < c.byteLength) done += writeSync(fd, c, done, c.byteLength - done);
    }
    fsyncSync(fd);
    closeSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  renameSync(tmp, path);
  // Make the rename itself durable (best effort: not every file system lets a folder be synced).
  try {
    const dfd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // The data is synced; only the rename could be lost by a power failure here.
  }
}

function corrupt(path: string, why: string): Error {
  return new Error(`loadSafetensors(${path}): ${why}`);
}

/** The header's byte length from the first 8 bytes, checked against the file's size. */
function headerLength(path: string, first8: Buffer, fileBytes: number): number {
  if (fileBytes < 8) throw corrupt(path, `truncated: ${fileBytes} bytes, need at least 8 for the header length`);
  const n = first8.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER)) throw corrupt(path, `corrupt: header length ${n} exceeds the 100 MB limit`);
  if (Number(n) > fileBytes - 8) throw corrupt(path, `truncated: header length ${n} but only ${fileBytes - 8} bytes follow`);
  return Number(n);
}

/** The JSON header object and its `__metadata__` (strings to strings; {} when absent). */
function parseHeader(path: string, bytes: Buffer): { header: Record<string, unknown>; metadata: Record<string, string> } {
  let header: unknown;
  try {
    header = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw corrupt(path, `corrupt header (not JSON): ${(e as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw corrupt(path, 'corrupt header: not a JSON object');
  const m = (header as { __metadata__?: unknown }).__metadata__ ?? {};
  if (m === null || typeof m !== 'object' || Array.isArray(m) || !Object.values(m).every((v) => typeof v === 'string')) {
    throw corrupt(path, 'corrupt header: __metadata__ must map strings to strings');
  }
  return { header: header as Record<string, unknown>, metadata: m as Record<string, string> };
}

/** Reads a safetensors file; tensors come back on the CPU, in header order, in the current scope. */
export function loadSafetensors(path: string): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  checkHost();
  const file = readFileSync(path);
  const n = headerLength(path, file, file.byteLength);
  const { header, metadata } = parseHeader(path, file.subarray(8, 8 + n));
  const data = file.subarray(8 + n);

  const entries: { name: string; dtype: DType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const code = typeof e?.dtype === 'string' ? CODES[e.dtype] : undefined;
    if (code === undefined) throw corrupt(path, `'${name}': unknown dtype ${JSON.stringify(e?.dtype)}`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw corrupt(path, `'${name}': bad shape ${JSON.stringify(shape)}`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1]) {
      throw corrupt(path, `'${name}': bad data_offsets ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as [number, number];
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== numel * code.bytes) {
      throw corrupt(path, `'${name}': data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${code.dtype} [${shape}] needs ${numel * code.bytes}`);
    }
    if (end > data.byteLength) throw corrupt(path, `truncated: '${name}' ends at byte ${end} of the data, which has ${data.byteLength}`);
    entries.push({ name, dtype: code.dtype, shape: shape as number[], begin, end });
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of sorted) {
    if (e.begin !== pos) throw corrupt(path, `corrupt: '${e.name}' starts at byte ${e.begin}, expected ${pos} (gap or overlap)`);
    pos = e.end;
  }
  if (pos !== data.byteLength) throw corrupt(path, `corrupt: ${data.byteLength - pos} bytes after the last tensor`);
  const recorded = metadata[CHECKSUM_KEY];
  if (recorded !== undefined) {
    const { [CHECKSUM_KEY]: _, ...rest } = metadata;
    const actual = contentHash(JSON.stringify({ ...header, __metadata__: rest }), [data]);
    if (actual !== recorded) throw corrupt(path, `corrupt: checksum mismatch (the file records SHA-256 ${recorded}, its content hashes to ${actual}); the file was damaged after it was written`);
  }

  const tensors = new Map<string, Tensor>();
  for (const e of entries) tensors.set(e.name, fromBytes(data.subarray(e.begin, e.end), e.dtype, e.shape));
  return { tensors, metadata };
}

/**
 * The `__metadata__` of a safetensors file, reading only its header (no tensor, no checksum
 * verification: for a quick look, e.g. at a checkpoint's config before loading it).
 */
export function readSafetensorsMetadata(path: string): Record<string, string> {
  checkHost();
  const fd = openSync(path, 'r');
  try {
    const first8 = Buffer.alloc(8);
    readSync(fd, first8, 0, 8, 0);
    const n = headerLength(path, first8, fstatSync(fd).size);
    const bytes = Buffer.alloc(n);
    if (readSync(fd, bytes, 0, n, 8) < n) throw corrupt(path, `truncated: header length ${n} but the file is shorter`);
    return parseHeader(path, bytes).metadata;
  } finally {
    closeSync(fd);
  }
}

/** Saves a module's state dict. */
export function saveModule(path: string, module: Module, metadata?: Record<string, string>): void {
  saveSafetensors(path, module.stateDict(), metadata);
}

/** Loads a state dict file into a module (see Module.loadStateDict); returns the file's metadata. */
export function loadModule(path: string, module: Module, o: LoadStateDictOptions = {}): Record<string, string> {
  const { tensors, metadata } = loadSafetensors(path);
  try {
    module.loadStateDict(tensors, o);
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  return metadata;
}
