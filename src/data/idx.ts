// The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/): a big-endian
// magic number 0x0000TTNN (TT = element type, NN = number of dimensions), NN big-endian uint32
// sizes, then the elements in row-major order. Only unsigned bytes (TT = 0x08) are needed here.
import { DataError, readData } from './files.js';

export interface IdxArray {
  dims: number[];
  /** The elements (a view into the file's buffer). */
  data: Uint8Array;
}

const UBYTE = 0x08;

/** Parses an IDX buffer of unsigned bytes; `expectDims` checks the number of dimensions. */
export function parseIdx(buf: Uint8Array, file: string, expectDims?: number, hint = ''): IdxArray {
  const fail = (why: string): never => {
    throw new DataError(`${file}: not a valid IDX file (${why})${hint ? `. ${hint}` : ''}`, file);
  };
  if (buf.length < 4) fail(`only ${buf.length} bytes`);
  if (buf[0] !== 0 || buf[1] !== 0) fail(`bad magic number 0x${Buffer.from(buf.subarray(0, 4)).toString('hex')}; an IDX file starts with two zero bytes`);
  if (buf[2] !== UBYTE) fail(`element type 0x${buf[2]!.toString(16)}, expected 0x08 (unsigned byte)`);
  const nd = buf[3]!;
  if (expectDims !== undefined && nd !== expectDims) fail(`magic number says ${nd} dimensions, expected ${expectDims}`);
  const header = 4 + 4 * nd;
  if (buf.length < header) fail(`truncated header: ${buf.length} bytes`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < nd; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  if (buf.length !== header + count) {
    fail(`header says [${dims.join(', ')}] = ${header + count} bytes in all, but the file has ${buf.length}${buf.length < header + count ? ': truncated' : ''}`);
  }
  return { dims, data: buf.subarray(header) };
}

/** Reads (and gunzips, for `.gz`) an IDX file of unsigned bytes. */
export function readIdx(path: string, expectDims?: number, hint = ''): IdxArray {
  return parseIdx(readData(path, hint), path, expectDims, hint);
}
